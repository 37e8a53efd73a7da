package mailchimpfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFake(t *testing.T) {
	f := New(WithKey("k-us21"), WithMember("L", "Old@example.com", "subscribed"), WithCompliance("stuck@example.com"), WithForgotten("gone@example.com"))
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	do := func(method, path, key, body string) (int, map[string]any, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.SetBasicAuth("any", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m, resp.Header.Get("Content-Type")
	}
	var many []string
	for i := range MaxMembers + 1 {
		many = append(many, fmt.Sprintf(`{"email_address":"p%d@example.com","status":"unsubscribed"}`, i))
	}
	member := "/3.0/lists/L/members/" + SubscriberHash("old@example.com")
	tests := []struct {
		name, method, path, key, body string
		status                        int
		field, want                   string // a top-level field of the answer
	}{
		{"no key", "GET", member, "", "", 401, "title", "API Key Invalid"},
		{"wrong key", "POST", "/3.0/lists/L", "x-us21", `{"members":[]}`, 401, "title", "API Key Invalid"},
		{"member", "GET", member, "k-us21", "", 200, "status", "subscribed"},
		{"not a member", "GET", "/3.0/lists/L/members/" + SubscriberHash("x@example.com"), "k-us21", "", 404, "title", "Resource Not Found"},
		{"other list", "GET", "/3.0/lists/M/members/" + SubscriberHash("old@example.com"), "k-us21", "", 404, "title", "Resource Not Found"},
		{"too many members", "POST", "/3.0/lists/L", "k-us21", `{"members":[` + strings.Join(many, ",") + `]}`, 400, "title", "Invalid Resource"},
		{"batch", "POST", "/3.0/lists/L", "k-us21", `{"members":[{"email_address":"OLD@example.com","status":"unsubscribed"},{"email_address":"stuck@example.com","status":"unsubscribed","status_if_new":"unsubscribed"},{"email_address":"gone@example.com","status_if_new":"unsubscribed"}],"update_existing":true}`, 200, "", ""},
		{"member after", "GET", member, "k-us21", "", 200, "status", "unsubscribed"},
		{"unknown path", "GET", "/3.0/nope", "k-us21", "", 404, "title", "Resource Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, ctype := do(tt.method, tt.path, tt.key, tt.body)
			if status != tt.status || (tt.field != "" && body[tt.field] != tt.want) {
				t.Fatalf("%d %v", status, body)
			}
			if status >= 400 && (!strings.HasPrefix(ctype, "application/problem+json") || body["type"] == nil || body["instance"] == nil) {
				t.Fatalf("problem detail: %s %v", ctype, body)
			}
			if tt.name == "batch" && (body["total_updated"] != float64(1) || body["error_count"] != float64(2)) {
				t.Fatalf("batch answer %v", body)
			}
		})
	}
	if f.Status("L", "old@EXAMPLE.com") != "unsubscribed" || f.Status("L", "stuck@example.com") != "" || len(f.Members("L")) != 1 || len(f.Lists()) != 1 {
		t.Fatalf("state %+v", f.Lists())
	}
	if !f.Forget("L", "OLD@example.com") || f.Forget("L", "old@example.com") {
		t.Fatal("Forget")
	}
	f.Script(Throttled())
	if status, body, _ := do("GET", member, "k-us21", ""); status != 403 || body["title"] != "Too Many Requests" {
		t.Fatalf("throttled %d %v", status, body)
	}
	if len(f.Calls()) != len(tests)+1 {
		t.Fatal("calls")
	}
}
