package e2e

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDidomiTokenFlow runs Didomi's documented authentication end to end:
// the client credentials grant against the source's token endpoint, then
// the consent webhook with that bearer token. The banner's choices land
// in the ledger as cookies:<purpose>, answer eligibility for those
// purposes, show in the history with their consent string, and push no
// suppression: only the purpose the source maps to marketing does.
func TestDidomiTokenFlow(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{})
	fx := fixture(t, "didomi-consent")
	e.SetNow(fx.Now)
	tokenPath := "/webhooks/didomi-acme/oauth/token"
	form := []byte(url.Values{"grant_type": {"client_credentials"}}.Encode())
	basic := func(id, secret string) http.Header {
		return http.Header{"Content-Type": {"application/x-www-form-urlencoded"},
			"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}}
	}
	if r := e.do("POST", tokenPath, "", basic("consentsync-didomi", "wrong"), form); r.Status != 401 || r.JSON["error"] != "invalid_client" {
		t.Fatalf("bad client secret: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/webhooks/pipedrive-acme/oauth/token", "", basic("consentsync-didomi", "didomi-client-secret-2b7d"), form); r.Status != 404 {
		t.Fatalf("token endpoint of a source that issues none: %d", r.Status)
	}
	r := e.do("POST", tokenPath, "", basic("consentsync-didomi", "didomi-client-secret-2b7d"), form)
	tok, _ := r.JSON["access_token"].(string)
	if r.Status != 200 || tok == "" || r.JSON["token_type"] != "Bearer" {
		t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + tok}}
	if r := e.do("POST", fx.Request.Path, "", http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + tok + "x"}}, fx.Body); r.Status != 401 {
		t.Fatalf("tampered token: %d", r.Status)
	}
	if r := e.do("POST", fx.Request.Path, "", h, fx.Body); r.Status != 202 {
		t.Fatalf("webhook: %d %s", r.Status, r.Body)
	}
	e.waitDrained()
	if got, want := e.ledger("didomi-acme"), keys(fx.Expect.Signals); !sameSet(got, want) {
		t.Fatalf("ledger\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	subject := "/v1/subjects/nora.leroy%40example.com"
	for _, c := range []struct{ purpose, want string }{
		{"cookies:advertising_personalization", `"reason":"withdrawn"`},
		{"cookies:vendor.iab-755", `"reason":"withdrawn"`},
		{"marketing", `"reason":"withdrawn"`},
		{"cookies:analytics", `"allowed":true`},
		{"cookies:never_asked", `"allowed":false`},
	} {
		r := e.admin("GET", subject+"/eligibility?brand=acme&purpose="+url.QueryEscape(c.purpose))
		if r.Status != 200 || !strings.Contains(r.Body, c.want) {
			t.Errorf("eligibility for %s: %d %s, want %s", c.purpose, r.Status, r.Body, c.want)
		}
	}
	if r := e.admin("GET", subject+"/eligibility?brand=acme&purpose=cookies:Bad"); r.Status != 400 {
		t.Errorf("invalid cookie purpose: %d %s", r.Status, r.Body)
	}
	hist := e.admin("GET", subject+"/history")
	if hist.Status != 200 || !strings.Contains(hist.Body, `"purpose":"cookies:analytics"`) || !strings.Contains(hist.Body, `"consent_string":"CQJtD4AQJtD4AAHABBENBOFsAP_gAEPgAAAAKYtV`) ||
		!strings.Contains(hist.Body, `"wording_version":"dep-2025-11-04-v7"`) {
		t.Errorf("history lacks the cookie choices and their evidence: %d %.600s", hist.Status, hist.Body)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE purpose LIKE 'cookies%'`); n != 0 {
		t.Errorf("%d suppressions for cookie purposes: a banner choice must not drive email suppression", n)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE purpose = 'marketing' AND lower(email) = 'nora.leroy@example.com'`); n == 0 {
		t.Error("the purpose mapped to marketing was not pushed to the destinations")
	}
}

// TestGlobalPrivacyControl posts a preference page's submission relaying
// Sec-GPC: 1: the ledger holds a sale_sharing withdrawal beside the
// newsletter grant, the stored request keeps the header (and not the
// bearer token), eligibility for sale_sharing is refused, and no
// destination is asked to suppress (none honours sale_sharing).
func TestGlobalPrivacyControl(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{})
	fx := fixture(t, "preference-gpc")
	if r := e.postFixture(fx); r.Status != 202 {
		t.Fatalf("HTTP %d %s", r.Status, r.Body)
	}
	// The same page without the header: no objection.
	h := fx.ConnectorRequest().Header
	h.Del("Sec-GPC")
	other := []byte(strings.Replace(string(fx.Body), "Lucas.Fontaine@Example.com", "zoe.perrin@example.com", 1))
	if r := e.do("POST", fx.Request.Path, "", h, other); r.Status != 202 {
		t.Fatalf("HTTP %d %s", r.Status, r.Body)
	}
	e.waitDrained()
	want := append(keys(fx.Expect.Signals), "zoe.perrin@example.com email acme marketing granted 2025-11-20T10:45:00Z")
	if got := e.ledger("preference-page"); !sameSet(got, want) {
		t.Fatalf("ledger\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	var stored string
	if err := e.App.Store.DB.Get(&stored, `SELECT headers::text FROM inbound_events WHERE source = 'preference-page' ORDER BY id LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stored, `"Sec-Gpc": ["1"]`) || strings.Contains(stored, "pref-token-91aa") {
		t.Errorf("stored headers %s: want Sec-Gpc kept, the token dropped", stored)
	}
	subject := "/v1/subjects/lucas.fontaine%40example.com"
	if r := e.admin("GET", subject+"/eligibility?brand=acme&purpose=sale_sharing"); r.Status != 200 || !strings.Contains(r.Body, `"reason":"withdrawn"`) {
		t.Errorf("sale_sharing eligibility: %d %s", r.Status, r.Body)
	}
	if r := e.admin("GET", subject+"/history"); !strings.Contains(r.Body, `"gpc":true`) {
		t.Errorf("history lacks the GPC evidence: %.500s", r.Body)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE purpose = 'sale_sharing'`); n != 0 {
		t.Errorf("%d sale_sharing suppressions queued: no destination honours sale_sharing", n)
	}
}
