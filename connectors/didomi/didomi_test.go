package didomi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const (
	secret   = "didomi-client-secret-2b7d"
	clientID = "consentsync-didomi"
)

func fixture(t testing.TB) (fixtures.Fixture, *Source) {
	t.Helper()
	return fixtures.LoadSource(t, "didomi-consent", NewSource)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func TestFixture(t *testing.T) {
	t.Parallel()
	f, s := fixture(t)
	b := f.Run(t, s)
	if b.DedupKey != "event:7c0e2f5a-93d1-4b6e-a8f2-1d4c5b6a7e80" {
		t.Errorf("dedup %q", b.DedupKey)
	}
	ev := b.Signals[0].Evidence
	if !strings.HasPrefix(ev.ConsentString, "CQJtD4AQJtD4AAHABBENBOFsAP_gAEPgAAAAKYtV") || ev.WordingVersion != "dep-2025-11-04-v7" || ev.Event != "event.created" ||
		ev.EventID != "7c0e2f5a-93d1-4b6e-a8f2-1d4c5b6a7e80" || ev.PageURL != "www.acme.example" || ev.Field != "purpose:analytics" || ev.Checkbox != "true" {
		t.Errorf("evidence %+v", ev)
	}
	if b.Signals[0].Subject.Email != "Nora.Leroy@Example.com" {
		t.Errorf("email kept as sent: %q", b.Signals[0].Subject.Email)
	}
	if got := "Bearer " + Token(secret, "didomi-acme", clientID, time.Date(2025, 11, 20, 11, 30, 0, 0, time.UTC)); got != f.Request.Headers["Authorization"] {
		t.Errorf("Token does not reproduce the fixture's header: %s", got)
	}
	for _, sig := range b.Signals {
		if err := sig.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f, s := fixture(t)
	now := f.Now
	good := Token(secret, "didomi-acme", clientID, now.Add(time.Hour))
	for _, tc := range []struct {
		name  string
		h     http.Header
		now   time.Time
		ok    bool
		stale bool
	}{
		{"fresh", bearer(good), now, true, false},
		{"lower-case scheme", http.Header{"Authorization": {"bearer " + good}}, now, true, false},
		{"expired", bearer(good), now.Add(time.Hour), false, true},
		{"issued for too long", bearer(Token(secret, "didomi-acme", clientID, now.Add(48*time.Hour))), now, false, false},
		{"other source's token", bearer(Token(secret, "didomi-other", clientID, now.Add(time.Hour))), now, false, false},
		{"other client id", bearer(Token(secret, "didomi-acme", "someone", now.Add(time.Hour))), now, false, false},
		{"other secret", bearer(Token("nope", "didomi-acme", clientID, now.Add(time.Hour))), now, false, false},
		{"exp edited", bearer(strings.Replace(good, "cs1.17636", "cs1.17637", 1)), now, false, false},
		{"mac cut", bearer(good[:len(good)-2]), now, false, false},
		{"no header", http.Header{}, now, false, false},
		{"basic", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(clientID+":"+secret))}}, now, false, false},
		{"secret as token", bearer(secret), now, false, false},
		{"empty bearer", bearer(""), now, false, false},
		{"negative exp", bearer("cs1.-5.AAAA"), now, false, false},
		{"huge exp", bearer("cs1.99999999999999999999.AAAA"), now, false, false},
		{"bad base64", bearer("cs1.1763638200.***"), now, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Verify(&connectors.Request{Header: tc.h, Body: f.Body}, tc.now)
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, connectors.ErrUnauthorized) || errors.Is(err, connectors.ErrStale) != tc.stale {
				t.Fatalf("Verify = %v, want ok %v stale %v", err, tc.ok, tc.stale)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatal("secret in error")
			}
		})
	}
}

// tokenCall posts a token request to IssueToken and decodes the answer.
func tokenCall(t *testing.T, s *Source, h http.Header, form url.Values, now time.Time) (int, map[string]any, http.Header) {
	t.Helper()
	w := httptest.NewRecorder()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	s.IssueToken(w, &connectors.Request{Method: "POST", Header: h, Body: []byte(form.Encode())}, now)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body, w.Header()
}

func TestIssueToken(t *testing.T) {
	t.Parallel()
	f, s := fixture(t)
	now := f.Now
	basic := func(id, sec string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(sec)))}}
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
	// Basic auth, then parameters: the token verifies.
	for _, tc := range []struct {
		name string
		h    http.Header
		form url.Values
	}{
		{"basic", basic(clientID, secret), cc},
		{"parameters", nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}},
	} {
		code, body, hdr := tokenCall(t, s, tc.h, tc.form, now)
		if code != 200 || body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) || hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %d %v", tc.name, code, body)
		}
		tok, _ := body["access_token"].(string)
		if err := s.Verify(&connectors.Request{Header: bearer(tok)}, now.Add(59*time.Minute)); err != nil {
			t.Errorf("%s: issued token refused: %v", tc.name, err)
		}
		if err := s.Verify(&connectors.Request{Header: bearer(tok)}, now.Add(61*time.Minute)); !errors.Is(err, connectors.ErrStale) {
			t.Errorf("%s: token outlived its hour: %v", tc.name, err)
		}
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		form url.Values
		code int
		err  string
	}{
		{"wrong secret", basic(clientID, "nope"), cc, 401, "invalid_client"},
		{"wrong client", basic("other", secret), cc, 401, "invalid_client"},
		{"no client auth", nil, cc, 401, "invalid_client"},
		{"empty secret parameter", nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {""}}, 401, "invalid_client"},
		{"password grant", basic(clientID, secret), url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type"},
		{"no grant", basic(clientID, secret), url.Values{}, 400, "unsupported_grant_type"},
	} {
		code, body, hdr := tokenCall(t, s, tc.h, tc.form, now)
		if code != tc.code || body["error"] != tc.err || body["access_token"] != nil {
			t.Errorf("%s: %d %v", tc.name, code, body)
		}
		if code == 401 && hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
		if strings.Contains(strings.Join(hdr.Values("WWW-Authenticate"), ""), secret) {
			t.Errorf("%s: secret leaked", tc.name)
		}
	}
	w := httptest.NewRecorder()
	s.IssueToken(w, &connectors.Request{Method: "POST", Body: []byte("%zz")}, now)
	if w.Code != 400 {
		t.Errorf("bad form: %d", w.Code)
	}
}

func entity(purposes, vendors, extra string) string {
	return `{"id":"e1","created_at":"2025-11-20T10:30:00Z","user":{"organization_user_id":"a@b.fr"},"consents":{"purposes":[` + purposes + `],"vendors":{` + vendors + `}}` + extra + `}`
}

func TestParse(t *testing.T) {
	t.Parallel()
	_, s := fixture(t)
	user := func(purposes string, updated string) string {
		return `{"id":"u1","organization_user_id":"a@b.fr","updated_at":"` + updated + `","consents":{"purposes":[` + purposes + `]}}`
	}
	for _, tc := range []struct {
		name      string
		body      string
		malformed bool
		want      []string // "purpose status"
		skipped   string
		dedup     string
	}{
		{"created", `{"type":"event.created","parameters":{"entity":` + entity(`{"id":"analytics","enabled":true},{"id":"ads","enabled":false}`, ``, ``) + `}}`, false,
			[]string{"cookies:analytics granted", "cookies:ads withdrawn"}, "", "event:e1"},
		{"null and junk choices", `{"type":"event.created","parameters":{"entity":` + entity(`{"id":"a","enabled":null},{"id":"b","enabled":"yes"},{"enabled":true},7,{"id":"a","enabled":true}`, ``, ``) + `}}`, false,
			[]string{"cookies:a granted"}, "", "event:e1"},
		{"odd ids sanitized", `{"type":"event.created","parameters":{"entity":` + entity(`{"id":"Mesure d'audience","enabled":true},{"id":"***","enabled":true}`, `"enabled":["IAB:1"]`, ``) + `}}`, false,
			[]string{"cookies:mesure-d-audience granted", "cookies:vendor.iab-1 granted"}, "id cannot name a purpose", "event:e1"},
		{"long id clipped", `{"type":"event.created","parameters":{"entity":` + entity(`{"id":"`+strings.Repeat("x", 100)+`","enabled":true}`, ``, ``) + `}}`, false,
			[]string{"cookies:" + strings.Repeat("x", 64) + " granted"}, "", "event:e1"},
		{"same vendor enabled and disabled: first wins", `{"type":"event.created","parameters":{"entity":` + entity(``, `"enabled":["v"],"disabled":["v"]`, ``) + `}}`, false,
			[]string{"cookies:vendor.v granted"}, "", "event:e1"},
		{"non-GDPR regulation", `{"type":"event.created","parameters":{"entity":` + entity(`{"id":"a","enabled":true}`, ``, `,"regulation":"cpra"`) + `}}`, false,
			nil, "only GDPR", "event:e1"},
		{"anonymous browser", `{"type":"event.created","parameters":{"entity":{"id":"e1","created_at":"2025-11-20T10:30:00Z","user":{"id":"d-1"},"consents":{"purposes":[{"id":"a","enabled":true}]}}}}`, false,
			nil, "anonymous", "event:e1"},
		{"user id not an email", `{"type":"event.created","parameters":{"entity":{"id":"e1","user":{"organization_user_id":"CRM-42"},"consents":{"purposes":[{"id":"a","enabled":true}]}}}}`, false,
			nil, "anonymous", "event:e1"},
		{"user.updated: only changes", `{"type":"user.updated","parameters":{"old_entity":` + user(`{"id":"a","enabled":true},{"id":"b","enabled":true}`, "2025-11-19T10:00:00Z") +
			`,"new_entity":` + user(`{"id":"a","enabled":true},{"id":"b","enabled":false},{"id":"c","enabled":true}`, "2025-11-20T10:31:00Z") + `}}`, false,
			[]string{"cookies:b withdrawn", "cookies:c granted"}, "", "user:u1:2025-11-20T10:31:00Z"},
		{"user.updated: nothing changed", `{"type":"user.updated","parameters":{"old_entity":` + user(`{"id":"a","enabled":true}`, "x") + `,"new_entity":` + user(`{"id":"a","enabled":true}`, "2025-11-20T10:31:00Z") + `}}`, false,
			nil, "no changed choice", "user:u1:2025-11-20T10:31:00Z"},
		{"event.deleted", `{"type":"event.deleted","parameters":{"entity":{}}}`, false, nil, "no consent meaning", ""},
		{"flattened", `{"type":"event.created","entity__id":"e1"}`, false, nil, "flatten", ""},
		{"no entity", `{"type":"event.created","parameters":{}}`, false, nil, "no entity", ""},
		{"no date: arrival", `{"type":"event.created","parameters":{"entity":{"id":"e1","user":{"organization_user_id":"a@b.fr"},"consents":{"purposes":[{"id":"a","enabled":false}]}}}}`, false,
			[]string{"cookies:a withdrawn"}, "dated at arrival", "event:e1"},
		{"not json", `{"type":`, true, nil, "", ""},
		{"array", `[]`, true, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, &connectors.Request{Body: []byte(tc.body), ReceivedAt: time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC)}, tc.malformed)
			if tc.malformed {
				return
			}
			var got []string
			for _, sig := range b.Signals {
				got = append(got, string(sig.Purpose)+" "+string(sig.Status))
				if err := sig.Validate(); err != nil || sig.Channel != consent.ChannelEmail || sig.Brand != "acme" {
					t.Errorf("signal %+v: %v", sig, err)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("signals %q, want %q (skipped %q)", got, tc.want, b.Skipped)
			}
			if tc.skipped != "" && !strings.Contains(strings.Join(b.Skipped, "|"), tc.skipped) {
				t.Errorf("skipped %q, want %q", b.Skipped, tc.skipped)
			}
			if b.DedupKey != tc.dedup {
				t.Errorf("dedup %q, want %q", b.DedupKey, tc.dedup)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	base := "sources:\n  - {name: d, kind: didomi, brand: acme, secrets: [s]%s}\n"
	for _, tc := range []struct{ extra, want string }{
		{``, "sources[0].client_id: is required"},
		{`, client_id: c, purposes: {news: {}}`, "sources[0].purposes.news.purpose: is required"},
		{`, client_id: c, purposes: {news: {purpose: spam}}`, "sources[0].purposes.news.purpose: invalid purpose"},
		{`, client_id: c, purposes: {news: {purpose: marketing, channel: fax}}`, "sources[0].purposes.news.channel: unknown channel"},
	} {
		_, err := config.Parse([]byte(strings.Replace(base, "%s", tc.extra, 1)), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.extra, err, tc.want)
		}
	}
	f := false
	s := fixtures.Build(t, NewSource, config.Source{Name: "d", Kind: Kind, Brand: "acme", Secrets: []string{"s"},
		Options: &SourceOptions{ClientID: "c", Vendors: &f, Purposes: map[string]Scope{"news": {Purpose: "partners", Brand: "acme-pro"}}}}, connectors.Deps{})
	b := fixtures.Parse(t, s, &connectors.Request{Body: []byte(`{"type":"event.created","parameters":{"entity":` + entity(`{"id":"news","enabled":true}`, `"enabled":["v"]`, ``) + `}}`)}, false)
	if len(b.Signals) != 1 || b.Signals[0].Purpose != consent.PurposePartners || b.Signals[0].Brand != "acme-pro" {
		t.Errorf("vendors off, mapped purpose: %+v", b.Signals)
	}
	if _, err := NewSource(config.Source{Name: "d", Kind: Kind, Brand: "acme", Secrets: []string{"s"}}, connectors.Deps{}); err == nil || !strings.HasPrefix(err.Error(), "client_id:") {
		t.Errorf("no client id: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	fx, s := fixture(f)
	f.Add(fx.Request.Headers["Authorization"])
	f.Add("Bearer cs1.1.A")
	f.Add("Bearer cs1..")
	f.Fuzz(func(t *testing.T, auth string) {
		err := s.Verify(&connectors.Request{Header: http.Header{"Authorization": {auth}}}, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil && strings.TrimSpace(auth) != fx.Request.Headers["Authorization"] && !strings.EqualFold(strings.TrimSpace(auth)[:7], "bearer ") {
			t.Fatalf("accepted %q", auth)
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, s := fixture(f)
	f.Add(fx.Body)
	f.Add([]byte(`{"type":"user.updated","parameters":{"old_entity":{"consents":{"purposes":[{"id":"a","enabled":true}]}},"new_entity":{"organization_user_id":"a@b.fr","updated_at":1e20,"consents":{"purposes":[{"id":"a","enabled":false}]}}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Body: in, ReceivedAt: fx.Now})
		if b == nil {
			return
		}
		for _, sig := range b.Signals {
			if !sig.Purpose.IsCookies() && sig.Purpose != consent.PurposeMarketing {
				t.Fatalf("unmapped choice outside cookies: %+v", sig)
			}
			if sig.Purpose == consent.PurposeMarketing && sig.Evidence.Field != "purpose:newsletter-Xk2p" {
				t.Fatalf("marketing from %q", sig.Evidence.Field)
			}
		}
	})
}

func FuzzIssueToken(f *testing.F) {
	fx, s := fixture(f)
	f.Add("grant_type=client_credentials", "Basic "+base64.StdEncoding.EncodeToString([]byte(clientID+":"+secret)))
	f.Add("grant_type=client_credentials&client_id="+clientID+"&client_secret=x", "")
	f.Add("%zz&grant_type", "Basic %%")
	f.Fuzz(func(t *testing.T, body, auth string) {
		w := httptest.NewRecorder()
		s.IssueToken(w, &connectors.Request{Method: "POST", Header: http.Header{"Authorization": {auth}}, Body: []byte(body)}, fx.Now)
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer is not JSON: %q", w.Body.String())
		}
		if strings.Contains(w.Body.String(), secret) {
			t.Fatal("secret in the answer")
		}
		switch w.Code {
		case 200:
			tok, _ := out["access_token"].(string)
			if err := s.Verify(&connectors.Request{Header: bearer(tok)}, fx.Now); err != nil {
				t.Fatalf("issued a token Verify refuses: %v", err)
			}
			form, _ := url.ParseQuery(body)
			id, sec, basic := (&http.Request{Header: http.Header{"Authorization": {auth}}}).BasicAuth()
			if !basic {
				id, sec = form.Get("client_id"), form.Get("client_secret")
			} else {
				if u, err := url.QueryUnescape(id); err == nil {
					id = u
				}
				if p, err := url.QueryUnescape(sec); err == nil {
					sec = p
				}
			}
			if id != clientID || sec != secret {
				t.Fatalf("token issued without the credentials: %q %q", body, auth)
			}
		case 400, 401:
			if out["error"] == nil || out["access_token"] != nil {
				t.Fatalf("error answer %v", out)
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}
