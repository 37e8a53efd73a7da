package salesforcefake

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestFake(t *testing.T) {
	f := New(WithClient("id", "secret"))
	id := f.AddContact("O'Brien@example.com")
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	do := func(method, path, tok, ctype, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const form = "application/x-www-form-urlencoded"
	if st, b := do("POST", "/services/oauth2/token", "", form, "grant_type=client_credentials&client_id=id&client_secret=nope"); st != 400 || !strings.Contains(b, `"error":"invalid_client"`) {
		t.Fatalf("%d %s", st, b)
	}
	if st, b := do("POST", "/services/oauth2/token", "", form, "grant_type=password&client_id=id&client_secret=secret"); st != 400 || !strings.Contains(b, "unsupported_grant_type") {
		t.Fatalf("%d %s", st, b)
	}
	st, b := do("POST", "/services/oauth2/token", "", form, "grant_type=client_credentials&client_id=id&client_secret=secret")
	if st != 200 || !strings.Contains(b, `"token_type":"Bearer"`) {
		t.Fatalf("%d %s", st, b)
	}
	tok := b[strings.Index(b, `"access_token":"`)+16:]
	tok = tok[:strings.IndexByte(tok, '"')]
	q := "/services/data/v62.0/query?q=" + url.QueryEscape(`SELECT Id, Email, HasOptedOutOfEmail FROM Contact WHERE Email IN ('o\'brien@example.com')`)
	tests := []struct {
		name, method, path, tok, body string
		status                        int
		contains                      string
	}{
		{"no token", "GET", q, "", "", 401, `[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]`},
		{"query", "GET", q, tok, "", 200, `"Id":"` + id + `"`},
		{"bad version", "GET", strings.Replace(q, "v62.0", "62", 1), tok, "", 404, "NOT_FOUND"},
		{"other shape", "GET", "/services/data/v62.0/query?q=SELECT+Name+FROM+Account", tok, "", 400, "MALFORMED_QUERY"},
		{"other object", "GET", strings.Replace(q, "FROM+Contact", "FROM+Account", 1), tok, "", 400, "INVALID_TYPE"},
		{"update", "PATCH", "/services/data/v62.0/composite/sobjects", tok, `{"allOrNone":false,"records":[{"attributes":{"type":"Contact"},"id":"` + id + `","HasOptedOutOfEmail":true},{"attributes":{"type":"Lead"},"id":"` + id + `","HasOptedOutOfEmail":true}]}`, 200, `"statusCode":"INVALID_CROSS_REFERENCE_KEY"`},
	}
	for _, tc := range tests {
		st, b := do(tc.method, tc.path, tc.tok, "", tc.body)
		if st != tc.status || !strings.Contains(b, tc.contains) {
			t.Errorf("%s: %d %s", tc.name, st, b)
		}
	}
	if r, _ := f.Get(id); !r.OptedOut {
		t.Fatal("not opted out")
	}
	if !f.Forget("o'brien@EXAMPLE.com") || len(f.OptedOut()) != 0 {
		t.Fatal("forget")
	}
	f.ExpireTokens()
	if st, _ := do("GET", q, tok, "", ""); st != 401 {
		t.Fatalf("expired token: %d", st)
	}
}
