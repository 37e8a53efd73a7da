package hubspotfake

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFake(t *testing.T) {
	f := New(WithKey("pat-k"), WithSubscriptionTypes("1"))
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	do := func(path, key, body string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const w = "/communication-preferences/v4/statuses/batch/write?channel=EMAIL"
	const all = "/communication-preferences/v4/statuses/batch/unsubscribe-all?channel=EMAIL"
	many := `{"inputs":["a@b.co"` + strings.Repeat(`,"a@b.co"`, MaxInputs) + `]}`
	tests := []struct {
		name, path, key, body string
		status                int
		contains              string
	}{
		{"no key", all, "", `{"inputs":["a@b.co"]}`, 401, `"category":"INVALID_AUTHENTICATION"`},
		{"wrong key", all, "pat-x", `{"inputs":["a@b.co"]}`, 401, `Authentication credentials not found`},
		{"no channel", strings.TrimSuffix(all, "?channel=EMAIL"), "pat-k", `{"inputs":["a@b.co"]}`, 400, `VALIDATION_ERROR`},
		{"too many", all, "pat-k", many, 400, `exceeds the limit of 100`},
		{"empty", all, "pat-k", `{"inputs":[]}`, 400, `non-empty`},
		{"unsubscribe all", all, "pat-k", `{"inputs":["A@b.co"]}`, 200, `"subscriberIdString":"A@b.co"`},
		{"repeat", all, "pat-k", `{"inputs":["a@b.co"]}`, 200, `NO_STATUS_CHANGE`},
		{"write unknown type", w, "pat-k", `{"inputs":[{"subscriberIdString":"c@b.co","statusState":"NOT_SUBSCRIBED","channel":"EMAIL","subscriptionId":"2"}]}`, 207, `"context":{"subscriberIdString":["c@b.co"]}`},
		{"write", w, "pat-k", `{"inputs":[{"subscriberIdString":"c@b.co","statusState":"NOT_SUBSCRIBED","channel":"EMAIL","subscriptionId":1}]}`, 200, `"subscriptionId":1,"status":"NOT_SUBSCRIBED"`},
		{"unknown path", "/crm/v3/x", "pat-k", `{}`, 404, `OBJECT_NOT_FOUND`},
	}
	for _, tc := range tests {
		status, body := do(tc.path, tc.key, tc.body)
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
	if got := f.OptedOutOfAll(); len(got) != 1 || got[0] != "A@b.co" || f.Status("a@b.co", "1") != NotSubscribed {
		t.Fatalf("state %v", got)
	}
	if !f.Forget("a@b.co") || f.Forget("a@b.co") || len(f.OptedOutOfAll()) != 0 || f.Status("a@b.co", "1") != NotSpecified {
		t.Fatal("forget")
	}
	for _, c := range f.Calls() {
		if c.Header.Get("Authorization") != "" {
			t.Fatal("recorded the token")
		}
	}
}
