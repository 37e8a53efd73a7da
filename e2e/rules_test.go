package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/store"
)

// rulesEnv is an env whose signup form also maps a profile field, with a
// professional domain in the policy.
func rulesEnv(t *testing.T, strict bool) *env {
	return start(t, envOptions{mutate: rulesConfig(strict)})
}

// rulesConfig is rulesEnv's configuration.
func rulesConfig(strict bool) func(*configT) {
	return func(c *configT) {
		c.Policy.StrictQuality = strict
		// A second brand that collects nothing itself.
		c.Destinations = append(c.Destinations, config.Destination{Name: "sendgrid-other", Kind: "sendgrid", Brand: "other-brand",
			Channels: []string{"email"}, Purposes: []string{"marketing"}, BaseURL: c.Destinations[0].BaseURL, APIKey: c.Destinations[0].APIKey, Timeout: 10 * time.Second})
		c.Policy.ProfessionalDomains = []string{"acme-corp.fr"}
		for i := range c.Sources {
			if c.Sources[i].Name == "signup-form" {
				f := c.Sources[i].Fields
				f.Profile, f.Phone, f.ConfirmedAt = "profile", "phone", "confirmed_at"
				f.Consents = append(f.Consents,
					config.ConsentField{Field: "email_pref", Channel: "email", Purpose: "marketing", Withdrawal: true},
					config.ConsentField{Field: "sms_pref", Channel: "sms", Purpose: "marketing", Withdrawal: true},
					config.ConsentField{Field: "doi_newsletter", Channel: "email", Purpose: "marketing", DoubleOptIn: true},
					config.ConsentField{Field: "required_box", Channel: "email", Purpose: "marketing", Required: true})
			}
		}
	}
}

// submit posts a form submission built from fields.
func (e *env) submit(fields map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(fields)
	if r := e.postForm(string(b)); r.Status != 202 {
		e.t.Fatalf("form: HTTP %d: %s", r.Status, r.Body)
	}
}

// eligible asks GET /v1/subjects/{id}/eligibility.
func (e *env) eligible(id, channel, brand, purpose string) map[string]any {
	e.t.Helper()
	r := e.admin("GET", fmt.Sprintf("/v1/subjects/%s/eligibility?channel=%s&brand=%s&purpose=%s", id, channel, brand, purpose))
	if r.Status != 200 {
		e.t.Fatalf("eligibility %s: HTTP %d: %s", id, r.Status, r.Body)
	}
	return r.JSON
}

func postShopify(e *env, body string, eventID string) {
	e.t.Helper()
	m := hmac.New(sha256.New, []byte("shpss_demo_0c1d"))
	m.Write([]byte(body))
	h := http.Header{"Content-Type": {"application/json"}, "X-Shopify-Hmac-Sha256": {base64.StdEncoding.EncodeToString(m.Sum(nil))},
		"X-Shopify-Topic": {"customers/email_marketing_consent_update"}, "X-Shopify-Event-Id": {eventID},
		"X-Shopify-Shop-Domain": {"acme-demo.myshopify.com"}}
	if r := e.do("POST", "/webhooks/shopify-acme", "", h, []byte(body)); r.Status != 202 {
		e.t.Fatalf("shopify: HTTP %d: %s", r.Status, r.Body)
	}
}

func TestEligibilityOverHTTP(t *testing.T) {
	e := rulesEnv(t, false)
	now := time.Now().UTC()
	recent := now.Add(-24 * time.Hour).Format(time.RFC3339)
	old := now.AddDate(-4, 0, 0).Format(time.RFC3339)
	e.submit(map[string]any{"email": "Opt.In@Example.com", "submitted_at": recent, "newsletter": "on", "consent_version": "v3"})
	e.submit(map[string]any{"email": "old@example.com", "submitted_at": old, "newsletter": "on", "consent_version": "v1"})
	e.submit(map[string]any{"email": "preticked@example.com", "submitted_at": recent, "newsletter": "on", "newsletter_pre_ticked": "true", "consent_version": "v3"})
	e.submit(map[string]any{"email": "buyer@example.com", "submitted_at": recent, "profile": "customer"})
	e.submit(map[string]any{"email": "jane.doe@acme-corp.fr", "submitted_at": recent})
	e.submit(map[string]any{"email": "jane.doe@gmail.com", "submitted_at": recent})
	e.submit(map[string]any{"email": "contact@somecorp.fr", "submitted_at": recent})
	e.withdrawByPostmark("opt.in@example.com") // withdrawal occurred 2025-11-20: older than the grant, stale
	e.withdrawByPostmark("gone@example.com")
	postShopify(e, `{"id":1,"email":"pending@example.com","email_marketing_consent":{"state":"pending","opt_in_level":"confirmed_opt_in","consent_updated_at":"`+recent+`"}}`, "evt-pending-1")
	e.waitDrained()

	cases := []struct {
		id, channel, brand, purpose string
		allowed                     bool
		basis, reason               string
	}{
		{"opt.in@example.com", "email", "acme", "marketing", true, "consent", "valid_opt_in"},
		{"OPT.IN@example.com", "email", "acme", "partners", false, "none", "partners_need_opt_in"},

		{"opt.in@example.com", "email", "other-brand", "marketing", false, "none", "no_opt_in"},
		{"buyer@example.com", "email", "other-brand", "marketing", false, "", "no_opt_in"},
		// Marketing calls to consumers need a prior opt-in since 2026-08-11
		// (Code de la consommation art. L223-1, loi n° 2025-594).
		{"opt.in@example.com", "phone", "acme", "marketing", false, "none", "no_opt_in"},
		{"opt.in@example.com", "post", "acme", "marketing", true, "opt_out_regime", ""},
		{"buyer@example.com", "phone", "acme", "marketing", true, "soft_opt_in", "customer_ongoing_contract"},
		{"jane.doe@acme-corp.fr", "phone", "acme", "marketing", true, "", ""},
		{"old@example.com", "email", "acme", "marketing", false, "", "expired"},
		{"preticked@example.com", "email", "acme", "marketing", false, "", "invalid_opt_in"},
		{"buyer@example.com", "email", "acme", "marketing", true, "soft_opt_in", "customer_soft_opt_in"},
		{"buyer@example.com", "email", "acme", "partners", false, "", "partners_need_opt_in"},

		{"jane.doe@acme-corp.fr", "email", "acme", "marketing", true, "legitimate_interest_b2b", ""},
		{"jane.doe@acme-corp.fr", "email", "acme", "partners", false, "", "partners_need_opt_in"},
		{"jane.doe@gmail.com", "email", "acme", "marketing", false, "", "no_opt_in"},
		{"contact@somecorp.fr", "email", "acme", "marketing", true, "legitimate_interest_b2b", "role_address_no_objection"},
		{"gone@example.com", "email", "acme", "marketing", false, "", "withdrawn"},
		{"gone@example.com", "phone", "acme", "marketing", false, "none", "no_opt_in"},
		{"pending@example.com", "email", "acme", "marketing", false, "", "pending_confirmation"},
		{"nobody@example.com", "email", "acme", "marketing", false, "none", "unknown_subject"},
	}
	for _, c := range cases {
		got := e.eligible(c.id, c.channel, c.brand, c.purpose)
		if got["allowed"] != c.allowed || (c.basis != "" && got["basis"] != c.basis) || (c.reason != "" && got["reason"] != c.reason) {
			t.Errorf("%s %s/%s/%s = %v, want allowed=%v basis=%q reason=%q", c.id, c.brand, c.channel, c.purpose, got, c.allowed, c.basis, c.reason)
		}
	}
	if got := e.eligible("preticked@example.com", "email", "acme", "marketing"); !strings.Contains(fmt.Sprint(got["detail"]), "pre-ticked") {
		t.Errorf("invalid opt-in answer lacks its detail: %v", got)
	}
	if got := e.eligible("opt.in@example.com", "email", "acme", "marketing"); got["since"] == nil || got["expires_at"] == nil {
		t.Errorf("consent answer lacks since/expires_at: %v", got)
	}
	// Bad questions are 400s.
	for _, q := range []string{"?brand=acme&channel=fax", "?brand=acme&purpose=spam", "?channel=email", "?brand=Acme", "?brand=acme%20", "?brand=globex"} {
		if r := e.admin("GET", "/v1/subjects/opt.in@example.com/eligibility"+q); r.Status != 400 {
			t.Errorf("eligibility%s: HTTP %d, want 400", q, r.Status)
		}
	}
	if r := e.do("GET", "/v1/subjects/opt.in@example.com/eligibility?brand=acme", "", nil, nil); r.Status != 401 {
		t.Errorf("eligibility without the admin token: HTTP %d, want 401", r.Status)
	}
}

func TestStrictQuality(t *testing.T) {
	e := rulesEnv(t, true)
	recent := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	e.submit(map[string]any{"email": "noversion@example.com", "submitted_at": recent, "newsletter": "on"})
	e.submit(map[string]any{"email": "versioned@example.com", "submitted_at": recent, "newsletter": "on", "consent_version": "v3"})
	e.waitDrained()
	if got := e.eligible("noversion@example.com", "email", "acme", "marketing"); got["allowed"] != false || got["reason"] != "invalid_opt_in" {
		t.Errorf("strict, no wording version: %v, want invalid_opt_in", got)
	}
	if got := e.eligible("versioned@example.com", "email", "acme", "marketing"); got["allowed"] != true {
		t.Errorf("strict, full evidence: %v, want allowed", got)
	}
}

func TestEligibilityBatch(t *testing.T) {
	e := rulesEnv(t, false)
	recent := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	e.submit(map[string]any{"email": "a@example.com", "submitted_at": recent, "newsletter": "on", "consent_version": "v3"})
	e.withdrawByPostmark("b@example.com")
	e.waitDrained()
	body := `{"channel":"email","brand":"acme","purpose":"marketing","subjects":[" A@Example.com","b@example.com","not an address","c@example.com","+33 6 12 34 56 78"]}`
	r := e.do("POST", "/v1/eligibility", "", http.Header{"Authorization": {"Bearer test-admin-token"}, "Content-Type": {"application/json"}}, []byte(body))
	if r.Status != 200 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	var out struct {
		Results []struct {
			Subject string `json:"subject"`
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		subject string
		allowed bool
		reason  string
	}{{" A@Example.com", true, "valid_opt_in"}, {"b@example.com", false, "withdrawn"}, {"not an address", false, "invalid_identifier"},
		{"c@example.com", false, "unknown_subject"}, {"+33 6 12 34 56 78", false, "unknown_subject"}}
	if len(out.Results) != len(want) {
		t.Fatalf("results = %d, want %d", len(out.Results), len(want))
	}
	for i, w := range want {
		g := out.Results[i]
		if g.Subject != w.subject || g.Allowed != w.allowed || g.Reason != w.reason {
			t.Errorf("result %d = %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range []string{`{"brand":"acme","subjects":[]}`, `{"brand":"acme","subjects":["a@b.fr"],"extra":1}`, `{"subjects":["a@b.fr"]}`, `not json`} {
		r := e.do("POST", "/v1/eligibility", "", http.Header{"Authorization": {"Bearer test-admin-token"}}, []byte(bad))
		if r.Status != 400 {
			t.Errorf("%s: HTTP %d, want 400", bad, r.Status)
		}
	}
	many := make([]string, 10001)
	for i := range many {
		many[i] = fmt.Sprintf("s%d@example.com", i)
	}
	b, _ := json.Marshal(map[string]any{"brand": "acme", "subjects": many})
	if r := e.do("POST", "/v1/eligibility", "", http.Header{"Authorization": {"Bearer test-admin-token"}}, b); r.Status != 400 {
		t.Errorf("10,001 subjects: HTTP %d, want 400", r.Status)
	}
}

func TestHistoryAndLedgerVerification(t *testing.T) {
	e := rulesEnv(t, false)
	e.submit(map[string]any{"email": "proof@example.com", "submitted_at": "2025-11-20T10:00:00Z", "newsletter": "on",
		"consent_version": "v3", "ip": "203.0.113.9", "user_agent": "UA/1", "page_url": "https://example.com/signup"})
	e.waitDrained()
	e.withdrawByPostmark("proof@example.com") // 10:40, after the grant
	e.waitDrained()
	r := e.admin("GET", "/v1/subjects/proof@example.com/history")
	if r.Status != 200 {
		t.Fatalf("history: HTTP %d: %s", r.Status, r.Body)
	}
	var h struct {
		Events []struct {
			Status   string            `json:"status"`
			Valid    bool              `json:"valid"`
			Evidence map[string]any    `json:"evidence"`
			Quality  []json.RawMessage `json:"quality"`
			Prev     string            `json:"prev_hash"`
			Hash     string            `json:"hash"`
			Inbound  *int64            `json:"inbound_id"`
		} `json:"events"`
		Receipts     []map[string]any `json:"consent_receipts"`
		Suppressions []map[string]any `json:"suppressions"`
	}
	if err := json.Unmarshal([]byte(r.Body), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 2 || h.Events[0].Status != "granted" || h.Events[1].Status != "withdrawn" {
		t.Fatalf("events = %+v", h.Events)
	}
	g := h.Events[0]
	if g.Evidence["ip"] != "203.0.113.9" || g.Evidence["wording_version"] != "v3" || g.Evidence["checkbox"] != "on" || g.Inbound == nil {
		t.Errorf("grant evidence = %v (inbound %v)", g.Evidence, g.Inbound)
	}
	if len(g.Quality) != 6 {
		t.Errorf("grant quality has %d criteria, want 6", len(g.Quality))
	}
	if h.Events[1].Prev != g.Hash || g.Prev != "" {
		t.Errorf("chain: second prev %s, first hash %s, first prev %q", h.Events[1].Prev, g.Hash, g.Prev)
	}
	if len(h.Receipts) != 1 || h.Receipts[0]["version"] != "KI-CR-v1.1.0" || h.Receipts[0]["policyUrl"] != "https://example.com/signup" {
		t.Errorf("consent receipts = %v", h.Receipts)
	}
	if len(h.Suppressions) != 2 {
		t.Errorf("suppressions = %v, want 2 receipts", h.Suppressions)
	}

	ctx := context.Background()
	var breaks []store.Break
	n, _, err := e.App.Store.VerifyLedger(ctx, func(b store.Break) { breaks = append(breaks, b) })
	if err != nil || n != 2 || len(breaks) != 0 {
		t.Fatalf("verify intact ledger: n=%d breaks=%v err=%v", n, breaks, err)
	}
	// Tamper with one row by SQL, going around the append-only trigger.
	if _, err := e.App.Store.DB.Exec(`ALTER TABLE consent_events DISABLE TRIGGER consent_events_append_only;
		UPDATE consent_events SET status = 'granted', outcome = 'applied' WHERE status = 'withdrawn';
		ALTER TABLE consent_events ENABLE TRIGGER consent_events_append_only`); err != nil {
		t.Fatal(err)
	}
	breaks = nil
	if _, _, err := e.App.Store.VerifyLedger(ctx, func(b store.Break) { breaks = append(breaks, b) }); err != nil {
		t.Fatal(err)
	}
	if len(breaks) == 0 || !strings.Contains(breaks[0].Problem, "does not match its hash") {
		t.Fatalf("tampered row not detected: %v", breaks)
	}
}

func TestErasure(t *testing.T) {
	e := rulesEnv(t, false)
	e.submit(map[string]any{"email": "Erase.Me@Example.com", "submitted_at": "2025-11-20T10:00:00Z", "newsletter": "on", "consent_version": "v3", "ip": "203.0.113.7"})
	e.waitDrained()
	if r := e.admin("DELETE", "/v1/subjects/erase.me@example.com"); r.Status != 200 {
		t.Fatalf("erase: HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	if r := e.admin("GET", "/v1/subjects/erase.me@example.com"); r.Status != 404 {
		t.Errorf("subject after erasure: HTTP %d, want 404", r.Status)
	}
	if got := e.eligible("erase.me@example.com", "email", "acme", "marketing"); got["allowed"] != false || got["reason"] != "erased" {
		t.Errorf("eligibility after erasure: %v", got)
	}
	if r := e.admin("DELETE", "/v1/subjects/erase.me@example.com"); r.Status != 404 {
		t.Errorf("second erasure: HTTP %d, want 404", r.Status)
	}
	b := e.do("POST", "/v1/eligibility", "", http.Header{"Authorization": {"Bearer test-admin-token"}},
		[]byte(`{"brand":"acme","subjects":["ERASE.ME@example.com","erase.me@example.com"]}`))
	if strings.Count(b.Body, `"reason":"erased"`) != 2 {
		t.Errorf("batch naming an erased person twice: %s", b.Body)
	}
	// Personal data is gone from every table.
	for _, q := range []string{
		`SELECT count(*) FROM subjects WHERE email ILIKE '%erase.me%' OR email_original ILIKE '%erase.me%'`,
		`SELECT count(*) FROM consent_events WHERE evidence::text ILIKE '%203.0.113.7%'`,
		`SELECT count(*) FROM inbound_events WHERE convert_from(coalesce(body, ''), 'UTF8') ILIKE '%erase.me%'`,
		`SELECT count(*) FROM suppression_outbox WHERE email ILIKE '%erase.me%'`,
	} {
		if n := e.count(q); n != 0 {
			t.Errorf("%s = %d, want 0", q, n)
		}
	}
	// Suppressed everywhere.
	if !strings.Contains(strings.ToLower(strings.Join(e.Sandbox.SendGridSuppressed(), ",")), "erase.me@example.com") {
		t.Error("SendGrid did not get the erasure's suppression")
	}
	if st := e.Sandbox.MailchimpStatus("a6b5da1054", "erase.me@example.com"); st != "unsubscribed" {
		t.Errorf("Mailchimp status %q, want unsubscribed", st)
	}
	// The chain still verifies without the evidence.
	var breaks []store.Break
	if _, _, err := e.App.Store.VerifyLedger(context.Background(), func(b store.Break) { breaks = append(breaks, b) }); err != nil || len(breaks) != 0 {
		t.Fatalf("verify after erasure: %v %v", breaks, err)
	}
	// A CRM re-import of the old address with an old opt-in resurrects nothing.
	e.submit(map[string]any{"email": "erase.me@example.com", "submitted_at": "2025-11-20T10:00:00Z", "newsletter": "on", "consent_version": "v3"})
	e.waitDrained()
	if got := e.eligible("erase.me@example.com", "email", "acme", "marketing"); got["reason"] != "erased" {
		t.Errorf("after re-import: %v, want erased", got)
	}
	// A new valid opt-in after the erasure starts afresh.
	e.submit(map[string]any{"email": "erase.me@example.com", "submitted_at": time.Now().UTC().Add(time.Minute).Format(time.RFC3339), "newsletter": "on", "consent_version": "v4"})
	e.waitDrained()
	if got := e.eligible("erase.me@example.com", "email", "acme", "marketing"); got["allowed"] != true {
		t.Errorf("after a new opt-in: %v, want allowed", got)
	}
}

// mailgunEvent posts a signed Mailgun event for recipient at now.
func (e *env) mailgunEvent(event, id, recipient string) {
	e.t.Helper()
	ts := fmt.Sprint(time.Now().Unix())
	token := "tok-" + id
	m := hmac.New(sha256.New, []byte("mg-signing-key-0b9e"))
	m.Write([]byte(ts + token))
	body := fmt.Sprintf(`{"signature":{"timestamp":%q,"token":%q,"signature":"%x"},"event-data":{"event":%q,"id":%q,"timestamp":%s,"recipient":%q}}`,
		ts, token, m.Sum(nil), event, id, ts, recipient)
	if r := e.do("POST", "/webhooks/mailgun-acme", "", http.Header{"Content-Type": {"application/json"}}, []byte(body)); r.Status != 202 {
		e.t.Fatalf("mailgun: HTTP %d: %s", r.Status, r.Body)
	}
}

// TestExpiry: a prospect's consent lapses consent_ttl after the last
// qualifying contact; a click renews it, an open does not.
func TestExpiry(t *testing.T) {
	e := rulesEnv(t, false)
	old := time.Now().UTC().AddDate(-4, 0, 0).Format(time.RFC3339)
	for _, email := range []string{"clicked@example.com", "opened@example.com", "idle@example.com"} {
		e.submit(map[string]any{"email": email, "submitted_at": old, "newsletter": "on", "consent_version": "v1"})
	}
	e.submit(map[string]any{"email": "fresh@example.com", "submitted_at": time.Now().UTC().AddDate(0, 0, -10).Format(time.RFC3339), "newsletter": "on", "consent_version": "v1"})
	e.waitDrained()
	e.mailgunEvent("clicked", "c1", "clicked@example.com")
	e.mailgunEvent("opened", "o1", "opened@example.com")
	e.waitDrained()
	for email, want := range map[string]any{"clicked@example.com": true, "opened@example.com": false, "idle@example.com": false, "fresh@example.com": true} {
		got := e.eligible(email, "email", "acme", "marketing")
		if got["allowed"] != want {
			t.Errorf("%s: %v, want allowed=%v", email, got, want)
		}
		if want == false && got["reason"] != "expired" {
			t.Errorf("%s: reason %v, want expired", email, got["reason"])
		}
	}
	rows, err := e.App.Service.Expiring(context.Background(), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range rows {
		listed = append(listed, r.Identities[0].Email)
	}
	if strings.Join(listed, ",") != "idle@example.com,opened@example.com" && strings.Join(listed, ",") != "opened@example.com,idle@example.com" {
		t.Errorf("expiring = %v, want idle and opened (lapsed), not clicked or fresh", listed)
	}
}

// TestGmailAliases: a withdrawal by one alias of a Gmail mailbox blocks
// every alias; a later opt-in by an alias lifts it.
func TestGmailAliases(t *testing.T) {
	e := rulesEnv(t, false)
	e.submit(map[string]any{"email": "jane.doe+news@gmail.com", "submitted_at": "2025-11-20T10:00:00Z", "newsletter": "on", "consent_version": "v3"})
	e.waitDrained()
	e.withdrawByPostmark("janedoe@gmail.com") // 10:40
	e.waitDrained()
	for _, alias := range []string{"jane.doe+news@gmail.com", "Jane.Doe@googlemail.com", "janedoe@gmail.com", "j.a.n.e.d.o.e@gmail.com"} {
		if got := e.eligible(alias, "email", "acme", "marketing"); got["allowed"] != false || got["reason"] != "withdrawn" {
			t.Errorf("%s: %v, want withdrawn", alias, got)
		}
	}
	r := e.do("POST", "/v1/eligibility", "", http.Header{"Authorization": {"Bearer test-admin-token"}},
		[]byte(`{"brand":"acme","subjects":["jane.doe+news@gmail.com","jane.doe.other@gmail.com"]}`))
	if !strings.Contains(r.Body, `"subject":"jane.doe+news@gmail.com","allowed":false,"basis":"none","reason":"withdrawn"`) {
		t.Errorf("batch: %s", r.Body)
	}
	// A new opt-in by an alias, after the withdrawal, lifts it for that alias.
	e.submit(map[string]any{"email": "jane.doe+news@gmail.com", "submitted_at": "2025-11-20T11:00:00Z", "newsletter": "on", "consent_version": "v3"})
	e.waitDrained()
	if got := e.eligible("jane.doe+news@gmail.com", "email", "acme", "marketing"); got["allowed"] != true {
		t.Errorf("after a newer opt-in: %v", got)
	}
}

// TestHubSpotPrivacyDeletion: HubSpot's contact.privacyDeletion, which names
// only the contact id, erases the subject that id was resolved to before.
func TestHubSpotPrivacyDeletion(t *testing.T) {
	e := start(t, envOptions{})
	if r := e.postFixture(fixture(t, "hubspot-optout-batch")); r.Status != 202 {
		t.Fatalf("HTTP %d", r.Status)
	}
	e.waitDrained()
	body := `[{"eventId":9001,"subscriptionId":4411,"portalId":9001,"appId":771,"occurredAt":1763632900000,"subscriptionType":"contact.privacyDeletion","objectId":501,"changeSource":"GDPR"}]`
	if r := e.postHubSpot(body); r.Status != 202 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	if r := e.admin("GET", "/v1/subjects/lena.martin@example.com"); r.Status != 404 {
		t.Errorf("after privacy deletion: HTTP %d, want 404", r.Status)
	}
	if got := e.eligible("lena.martin@example.com", "email", "acme", "marketing"); got["reason"] != "erased" {
		t.Errorf("eligibility: %v, want erased", got)
	}
	if r := e.admin("GET", "/v1/subjects/paul.durand@example.org"); r.Status != 200 {
		t.Errorf("the other contact of the batch: HTTP %d, want 200 (untouched)", r.Status)
	}
}

// TestWithdrawalsAlwaysWin: regressions for the second adversarial review —
// ways a person who said no was answered "allowed".
func TestWithdrawalsAlwaysWin(t *testing.T) {
	e := rulesEnv(t, false)
	ago := func(d time.Duration) string { return time.Now().UTC().Add(-d).Format(time.RFC3339) }

	// 1. Erased, opted in again, then withdrew: the withdrawal counts.
	e.submit(map[string]any{"email": "bob@example.com", "submitted_at": ago(48 * time.Hour), "newsletter": "on", "consent_version": "v1"})
	e.waitDrained()
	if r := e.admin("DELETE", "/v1/subjects/bob@example.com"); r.Status != 200 {
		t.Fatalf("erase: %d", r.Status)
	}
	e.waitDrained()
	e.submit(map[string]any{"email": "bob@example.com", "submitted_at": ago(-time.Second), "newsletter": "on", "consent_version": "v2"})
	e.waitDrained()
	time.Sleep(1100 * time.Millisecond)
	e.submit(map[string]any{"email": "bob@example.com", "submitted_at": ago(0), "email_pref": "off"})
	e.waitDrained()
	if got := e.eligible("bob@example.com", "email", "acme", "marketing"); got["reason"] != "withdrawn" {
		t.Errorf("withdrawal after erasure and new opt-in: %v", got)
	}

	// 2. An SMS withdrawal sent with an email and a phone reaches the number.
	e.submit(map[string]any{"phone": "+33 6 11 22 33 44", "submitted_at": ago(2 * time.Hour), "sms_pref": "on", "consent_version": "v1"})
	e.waitDrained()
	e.submit(map[string]any{"email": "sam@example.com", "phone": "06 11 22 33 44", "submitted_at": ago(time.Hour), "sms_pref": "off"})
	e.waitDrained()
	if got := e.eligible("+33611223344", "sms", "acme", "marketing"); got["reason"] != "withdrawn" {
		t.Errorf("SMS withdrawal with email and phone: %v", got)
	}

	// 3. A pending double opt-in after a withdrawal leaves the objection (no B2B).
	e.submit(map[string]any{"email": "pierre@acme-corp.fr", "submitted_at": ago(2 * time.Hour), "email_pref": "off"})
	e.waitDrained()
	e.submit(map[string]any{"email": "pierre@acme-corp.fr", "submitted_at": ago(time.Hour), "doi_newsletter": "on", "consent_version": "v1"})
	e.waitDrained()
	if got := e.eligible("pierre@acme-corp.fr", "email", "acme", "marketing"); got["reason"] != "withdrawn" {
		t.Errorf("pending after withdrawal, professional: %v", got)
	}

	// 4. An invalid grant after an erasure does not bring the person back.
	e.submit(map[string]any{"email": "marie@acme-corp.fr", "submitted_at": ago(48 * time.Hour), "newsletter": "on", "consent_version": "v1"})
	e.waitDrained()
	e.admin("DELETE", "/v1/subjects/marie@acme-corp.fr")
	e.waitDrained()
	e.submit(map[string]any{"email": "marie@acme-corp.fr", "submitted_at": ago(-time.Second), "required_box": "on", "consent_version": "v1"})
	e.waitDrained()
	if got := e.eligible("marie@acme-corp.fr", "email", "acme", "marketing"); got["reason"] != "erased" {
		t.Errorf("invalid grant after erasure: %v", got)
	}

	// 5. A provider's subscription of unknown origin does not lift a withdrawal.
	e.submit(map[string]any{"email": "mc@example.com", "submitted_at": ago(3 * time.Hour), "email_pref": "off"})
	e.waitDrained()
	fired := url.QueryEscape(time.Now().UTC().Add(-time.Hour).Format("2006-01-02 15:04:05"))
	mc := "type=subscribe&fired_at=" + fired + "&data%5Bemail%5D=mc%40example.com&data%5Blist_id%5D=a6b5da1054"
	if r := e.do("POST", "/webhooks/mailchimp-acme", "key=mc-url-key-55d0", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(mc)); r.Status != 202 {
		t.Fatalf("mailchimp: %d %s", r.Status, r.Body)
	}
	e.waitDrained()
	if got := e.eligible("mc@example.com", "email", "acme", "marketing"); got["reason"] != "withdrawn" {
		t.Errorf("provider subscribe after withdrawal: %v", got)
	}
	// ... but a ticked box later does.
	e.submit(map[string]any{"email": "mc@example.com", "submitted_at": ago(time.Minute), "newsletter": "on", "consent_version": "v1"})
	e.waitDrained()
	if got := e.eligible("mc@example.com", "email", "acme", "marketing"); got["allowed"] != true {
		t.Errorf("express opt-in after withdrawal: %v", got)
	}

	// 6. Contradictory checkbox arrays are not an opt-in.
	e.submit(map[string]any{"email": "mixed@example.com", "submitted_at": ago(time.Hour), "newsletter": []any{"on", "off"}, "consent_version": "v1"})
	e.waitDrained()
	if got := e.eligible("mixed@example.com", "email", "acme", "marketing"); got["allowed"] != false {
		t.Errorf("contradictory array: %v", got)
	}

	// 7. Erasure clears raw requests that carried no consent change.
	e.submit(map[string]any{"email": "eve@example.com", "submitted_at": ago(time.Hour), "profile": "customer", "ip": "192.0.2.77"})
	e.waitDrained()
	if r := e.admin("DELETE", "/v1/subjects/eve@example.com"); r.Status != 200 {
		t.Fatalf("erase eve: %d", r.Status)
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE convert_from(coalesce(body, ''), 'UTF8') LIKE '%192.0.2.77%'`); n != 0 {
		t.Errorf("raw request of an erased subject kept")
	}

	// 8. The ledger cannot be truncated, nor rows deleted under the erasure flag.
	if _, err := e.App.Store.DB.Exec(`TRUNCATE consent_events CASCADE`); err == nil {
		t.Error("TRUNCATE of the ledger succeeded")
	}
	for _, q := range []string{`DELETE FROM consent_events`, `UPDATE consent_events SET status = 'granted'`} {
		tx, err := e.App.Store.DB.Beginx()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`SET LOCAL consentsync.erasure = 'on'`); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(q); err == nil {
			t.Errorf("%s under the erasure flag succeeded", q)
		}
		_ = tx.Rollback()
	}
}

// TestLedgerTamperingDetected: every kind of tampering by SQL, even with the
// append-only trigger disabled, shows as a break or a changed ledger root.
func TestLedgerTamperingDetected(t *testing.T) {
	const off = `ALTER TABLE consent_events DISABLE TRIGGER consent_events_append_only; `
	const on = `; ALTER TABLE consent_events ENABLE TRIGGER consent_events_append_only`
	cases := []struct {
		name, sql string
		rootOnly  bool // detectable only by comparing the root with one kept outside
	}{
		{"state changed alone", `UPDATE consent_states SET status = 'granted'`, false},
		{"recording time rewritten", off + `UPDATE consent_events SET received_at = received_at - interval '1 day'` + on, false},
		{"quality rewritten", off + `UPDATE consent_events SET quality = replace(quality::text, 'unknown', 'pass')::jsonb WHERE quality IS NOT NULL` + on, false},
		{"raw request replaced", `UPDATE inbound_events SET body = convert_to('{"email":"x@example.com"}', 'UTF8')`, false},
		{"middle row deleted", off + `DELETE FROM suppression_outbox; UPDATE consent_states SET event_id = (SELECT max(id) FROM consent_events);
			DELETE FROM consent_events WHERE id = (SELECT min(id) FROM consent_events)` + on, false},
		{"tail withdrawal deleted, state repointed", off + `DELETE FROM suppression_outbox;
			UPDATE consent_states SET status = 'granted', occurred_at = e.occurred_at, event_id = e.id, source = e.source
				FROM consent_events e WHERE e.status = 'granted';
			DELETE FROM consent_events WHERE status = 'withdrawn'` + on, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := rulesEnv(t, false)
			e.submit(map[string]any{"email": "tamper@example.com", "submitted_at": "2025-11-20T10:00:00Z", "newsletter": "on"})
			e.waitDrained()
			e.withdrawByPostmark("tamper@example.com")
			e.waitDrained()
			var breaks []store.Break
			_, root, err := e.App.Store.VerifyLedger(context.Background(), func(b store.Break) { breaks = append(breaks, b) })
			if err != nil || len(breaks) != 0 {
				t.Fatalf("intact: %v %v", breaks, err)
			}
			if _, err := e.App.Store.DB.Exec(c.sql); err != nil {
				t.Fatal(err)
			}
			_, after, err := e.App.Store.VerifyLedger(context.Background(), func(b store.Break) { breaks = append(breaks, b) })
			if err != nil {
				t.Fatal(err)
			}
			if c.rootOnly {
				if bytes.Equal(root, after) {
					t.Fatal("ledger root unchanged")
				}
				return
			}
			if len(breaks) == 0 {
				t.Fatal("not detected")
			}
		})
	}
}

// TestErasureCoversLinkedNumber: a number given with an address is the same
// person: erasing the address erases the number (and its SMS consent).
func TestErasureCoversLinkedNumber(t *testing.T) {
	e := rulesEnv(t, false)
	e.submit(map[string]any{"email": "lea@example.com", "phone": "06 22 33 44 55", "submitted_at": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339),
		"newsletter": "on", "sms_pref": "on", "consent_version": "v1"})
	e.waitDrained()
	if got := e.eligible("+33622334455", "sms", "acme", "marketing"); got["allowed"] != true {
		t.Fatalf("SMS before erasure: %v", got)
	}
	if r := e.admin("DELETE", "/v1/subjects/lea@example.com"); r.Status != 200 {
		t.Fatalf("erase: %d", r.Status)
	}
	e.waitDrained()
	if got := e.eligible("+33622334455", "sms", "acme", "marketing"); got["reason"] != "erased" {
		t.Errorf("SMS after erasing the address: %v, want erased", got)
	}
	if n := e.count(`SELECT count(*) FROM subjects WHERE phone = '+33622334455' OR email = 'lea@example.com'`); n != 0 {
		t.Errorf("%d subjects still hold the address or the number", n)
	}
}
