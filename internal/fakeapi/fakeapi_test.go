package fakeapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrapScriptsThenServes(t *testing.T) {
	var r Recorder
	r.SecretHeaders = []string{"api-key"}
	r.ErrorBody = func(status int) string { return `{"code":"` + http.StatusText(status) + `"}` }
	srv := httptest.NewServer(r.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { WriteRaw(w, 201, "text/plain", "made") })))
	defer srv.Close()
	r.Script(RetryAfter(7), Status(503))
	var got []string
	for range 3 {
		req, _ := http.NewRequest("POST", srv.URL+"/x?y=1", strings.NewReader("body"))
		req.Header.Set("api-key", "secret")
		req.Header.Set("Authorization", "Bearer secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, resp.Status[:3]+" "+resp.Header.Get("Retry-After")+" "+string(b))
	}
	want := []string{`429 7 {"code":"Too Many Requests"}`, `503  {"code":"Service Unavailable"}`, "201  made"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("answer %d = %q, want %q", i, got[i], want[i])
		}
	}
	calls := r.Calls()
	if len(calls) != 3 || !calls[0].Scripted || calls[2].Scripted || calls[2].Status != 201 || string(calls[1].Body) != "body" || calls[0].RawQuery != "y=1" {
		t.Fatalf("calls = %+v", calls)
	}
	for _, c := range calls {
		if c.Header.Get("api-key") != "" || c.Header.Get("Authorization") != "" {
			t.Errorf("a credential was recorded: %v", c.Header)
		}
	}
	r.ResetCalls()
	if r.CallCount() != 0 {
		t.Error("ResetCalls kept calls")
	}
}

func TestLooksLikeEmail(t *testing.T) {
	for e, want := range map[string]bool{"a@b.co": true, "a@b": false, "@b.co": false, "a@@b.co": false, "a b@c.co": false, "": false} {
		if LooksLikeEmail(e) != want {
			t.Errorf("LooksLikeEmail(%q) = %v", e, !want)
		}
	}
}
