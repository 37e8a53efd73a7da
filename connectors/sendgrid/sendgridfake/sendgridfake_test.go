package sendgridfake

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

func TestFake(t *testing.T) {
	f := New(WithKey("SG.k"), WithSuppressed("Old@example.com"))
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	do := func(method, path, key, body string) (int, string, http.Header) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	const p = "/v3/asm/suppressions/global"
	tests := []struct {
		name, method, path, key, body string
		status                        int
		contains                      string
	}{
		{"no key", "POST", p, "", `{"recipient_emails":["a@example.com"]}`, 401, `"message":"authorization required"`},
		{"wrong key", "GET", p + "/old@example.com", "SG.x", "", 401, `"field":null`},
		{"add", "POST", p, "SG.k", `{"recipient_emails":["a@example.com","OLD@example.com"]}`, 201, `{"recipient_emails":["a@example.com","OLD@example.com"]}`},
		{"bad body", "POST", p, "SG.k", `{"recipient_emails":[1]}`, 400, `"field":"recipient_emails"`},
		{"bad address", "POST", p, "SG.k", `{"recipient_emails":["nope"]}`, 400, "invalid"},
		{"get suppressed, first spelling", "GET", p + "/old@EXAMPLE.com", "SG.k", "", 200, `{"recipient_email":"Old@example.com"}`},
		{"get absent", "GET", p + "/b@example.com", "SG.k", "", 200, `{}`},
		{"delete", "DELETE", p + "/a@example.com", "SG.k", "", 204, ""},
		{"delete absent", "DELETE", p + "/a@example.com", "SG.k", "", 204, ""},
		{"unknown path", "GET", "/v3/nope", "SG.k", "", 404, `"errors"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := do(tt.method, tt.path, tt.key, tt.body)
			if status != tt.status || !strings.Contains(body, tt.contains) {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	if got := strings.Join(f.Suppressed(), ","); got != "Old@example.com" {
		t.Fatal(got)
	}
	if !f.Forget("OLD@example.com") || f.Forget("old@example.com") || f.IsSuppressed("old@example.com") {
		t.Fatal("Forget")
	}
	f.Script(fakeapi.TooMany(ResetHeader(time.Unix(1900000000, 0))))
	status, body, h := do("GET", p+"/x@example.com", "SG.k", "")
	if status != 429 || h.Get("X-RateLimit-Reset") != "1900000000" || h.Get("Retry-After") != "" || !strings.Contains(body, `"errors"`) {
		t.Fatalf("scripted %d %v %s", status, h, body)
	}
	calls := f.Calls()
	if len(calls) != len(tests)+1 || !calls[len(calls)-1].Scripted || calls[0].Header.Get("Authorization") != "" {
		t.Fatalf("calls %d", len(calls))
	}
}
