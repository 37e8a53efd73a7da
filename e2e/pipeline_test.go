package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/store"
)

// TestFixturesEndToEnd posts every bundled fixture over HTTP and checks the
// answer, the ledger (exactly the expected signals) and the suppressions
// that reached the sandbox.
func TestFixturesEndToEnd(t *testing.T) {
	e := start(t, envOptions{})
	all, err := fixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range all {
		r := e.postFixture(fx)
		if r.Status != fx.Expect.Status {
			t.Fatalf("%s: HTTP %d, want %d: %s", fx.Name, r.Status, fx.Expect.Status, r.Body)
		}
		if c := fx.Expect.ResponseContains; c != "" && !strings.Contains(r.Body, c) {
			t.Fatalf("%s: answer %q lacks %q", fx.Name, r.Body, c)
		}
		if fx.Expect.Status == http.StatusAccepted && (r.JSON["id"] == nil || r.JSON["duplicate"] != false) {
			t.Fatalf("%s: answer %s, want {id, duplicate:false}", fx.Name, r.Body)
		}
	}
	e.waitDrained()
	for _, fx := range all {
		if got, want := e.ledger(source(fx)), keys(fx.Expect.Signals); !sameSet(got, want) {
			t.Errorf("%s: ledger\n  %s\nwant\n  %s", fx.Name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE status <> 'processed'`); n != 0 {
		t.Fatalf("%d inbound events not processed", n)
	}
	// Every withdrawal reached both providers, except its own (echo).
	sg := strings.Join(e.Sandbox.SendGridSuppressed(), ",")
	for _, want := range []string{"Lena.Martin@Example.com", "paul.durand@example.org", "Chloe.Bernard@example.net", "jules.blanc@example.org"} {
		if !strings.Contains(sg, want) {
			t.Errorf("SendGrid suppressions %s lack %s", sg, want)
		}
	}
	for _, own := range []string{"noah.petit@example.com", "ines.roux@example.org", "hugo.lambert@example.net"} {
		if strings.Contains(strings.ToLower(sg), own) {
			t.Errorf("SendGrid's own unsubscribe for %s was pushed back to SendGrid (echo)", own)
		}
		if st := e.Sandbox.MailchimpStatus("a6b5da1054", own); st != "unsubscribed" {
			t.Errorf("Mailchimp status of %s = %q, want unsubscribed", own, st)
		}
	}
	if st := e.Sandbox.MailchimpStatus("a6b5da1054", "chloe.bernard@example.net"); st != "" {
		t.Errorf("Mailchimp's own unsubscribe for chloe was pushed back to Mailchimp (status %q)", st)
	}
	// The typeform grant then Mailchimp withdrawal: withdrawn, shown by the admin API.
	r := e.admin("GET", "/v1/subjects/%20Chloe.Bernard@EXAMPLE.net")
	if r.Status != 200 || !strings.Contains(r.Body, `"status":"withdrawn"`) {
		t.Fatalf("admin subject: %d %s", r.Status, r.Body)
	}
	// Signed timestamps outside the window are refused.
	e.SetNow(time.Now())
	if r := e.do("POST", "/webhooks/hubspot-acme", "", fixture(t, "hubspot-optout-batch").ConnectorRequest().Header, fixture(t, "hubspot-optout-batch").Body); r.Status != http.StatusUnauthorized {
		t.Fatalf("stale HubSpot timestamp: HTTP %d, want 401", r.Status)
	}
}

// TestTamperedFixturesAreRefused flips one body byte of each signed
// fixture: 401, and nothing stored.
func TestTamperedFixturesAreRefused(t *testing.T) {
	e := start(t, envOptions{noWorker: true})
	all, _ := fixtures.All()
	for _, fx := range all {
		req := fx.ConnectorRequest()
		body := append([]byte(nil), req.Body...)
		switch source(fx) {
		case "mailchimp-acme", "postmark-acme", "salesforce-acme", "pipedrive-acme", "didomi-acme", "axeptio-acme", "preference-page", "pipedrive-v1":
			continue // authenticated by URL secret / org id / basic auth / bearer token, not a body signature
		case "mailgun-acme":
			// Mailgun signs timestamp + token only: tamper with the token.
			body = []byte(strings.Replace(string(body), `"token": "3f`, `"token": "4f`, 1))
		default:
			body[len(body)/2] ^= 0x01
		}
		e.SetNow(fx.Now)
		if r := e.do(fx.Request.Method, fx.Request.Path, fx.Request.Query, req.Header, body); r.Status != http.StatusUnauthorized {
			t.Errorf("%s tampered: HTTP %d, want 401 (%s)", fx.Name, r.Status, r.Body)
		}
	}
	// Wrong URL key for Mailchimp, wrong org id for Salesforce.
	mc := fixture(t, "mailchimp-unsubscribe")
	if r := e.do("POST", mc.Request.Path, "key=wrong", mc.ConnectorRequest().Header, mc.Body); r.Status != http.StatusUnauthorized {
		t.Errorf("mailchimp wrong key: HTTP %d", r.Status)
	}
	ax := fixture(t, "axeptio-consent")
	if r := e.do("POST", ax.Request.Path, "key=wrong", ax.ConnectorRequest().Header, ax.Body); r.Status != http.StatusUnauthorized {
		t.Errorf("axeptio wrong key: HTTP %d", r.Status)
	}
	pd := fixture(t, "pipedrive-unsubscribe")
	pdh := pd.ConnectorRequest().Header
	pdh.Set("Authorization", "Basic Y29uc2VudHN5bmM6d3Jvbmc=") // consentsync:wrong
	if r := e.do("POST", pd.Request.Path, "", pdh, pd.Body); r.Status != http.StatusUnauthorized {
		t.Errorf("pipedrive wrong password: HTTP %d", r.Status)
	}
	dd := fixture(t, "didomi-consent")
	e.SetNow(dd.Now.Add(2 * time.Hour)) // the fixture's token expired an hour ago
	if r := e.do("POST", dd.Request.Path, "", dd.ConnectorRequest().Header, dd.Body); r.Status != http.StatusUnauthorized {
		t.Errorf("didomi expired token: HTTP %d", r.Status)
	}
	sf := fixture(t, "salesforce-optout")
	bad := strings.Replace(string(sf.Body), "00D5e000000AbCdEAK", "00D5e000000ZZZZZZZ", 1)
	if r := e.do("POST", sf.Request.Path, "", sf.ConnectorRequest().Header, []byte(bad)); r.Status != http.StatusUnauthorized {
		t.Errorf("salesforce wrong org: HTTP %d", r.Status)
	}
	if n := e.count(`SELECT count(*) FROM inbound_events`); n != 0 {
		t.Fatalf("%d refused requests were stored", n)
	}
}

// TestReceiverAnswers covers the status codes of docs/design.md §5.1.
func TestReceiverAnswers(t *testing.T) {
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Server.BodyLimit = 4096 }})
	form := fixture(t, "form-signup")
	e.SetNow(form.Now)
	cases := []struct {
		name   string
		path   string
		body   []byte
		sign   bool
		want   int
		header http.Header
	}{
		{"unknown source", "/webhooks/nope", form.Body, true, 404, nil},
		{"too large", "/webhooks/signup-form", []byte(`{"email":"` + strings.Repeat("a", 5000) + `@x.fr"}`), true, 413, nil},
		{"not json", "/webhooks/signup-form", []byte(`{"email": "a@b.fr", `), true, 400, nil},
		{"a JSON string, not a submission", "/webhooks/signup-form", []byte(`"just text"`), true, 400, nil},
		{"no signature", "/webhooks/signup-form", form.Body, false, 401, nil},
		{"accepted", "/webhooks/signup-form", form.Body, true, 202, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {"application/json"}}
			if c.sign {
				h.Set("X-Signature", formSig(c.body))
			}
			if r := e.do("POST", c.path, "", h, c.body); r.Status != c.want {
				t.Fatalf("HTTP %d, want %d: %s", r.Status, c.want, r.Body)
			}
		})
	}
	// Mailchimp's validation GET.
	mc := fixture(t, "mailchimp-unsubscribe")
	if r := e.do("GET", mc.Request.Path, mc.Request.Query, nil, nil); r.Status != 200 {
		t.Fatalf("mailchimp validation GET: HTTP %d", r.Status)
	}
	if r := e.do("GET", mc.Request.Path, "key=wrong", nil, nil); r.Status != 401 {
		t.Fatalf("mailchimp validation GET with a wrong key: HTTP %d", r.Status)
	}
	// Postgres down: 503, so the sender retries.
	_ = e.App.Store.DB.Close()
	h := http.Header{"Content-Type": {"application/json"}, "X-Signature": {formSig(form.Body)}}
	body := []byte(strings.Replace(string(form.Body), "10:30:00Z", "10:31:00Z", 1))
	h.Set("X-Signature", formSig(body))
	if r := e.do("POST", "/webhooks/signup-form", "", h, body); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("Postgres down: HTTP %d, want 503: %s", r.Status, r.Body)
	}
}

func formSig(body []byte) string {
	m := hmac.New(sha256.New, []byte("form-secret-3e8b"))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// postForm posts a signed JSON body to the example form source.
func (e *env) postForm(body string) response {
	e.t.Helper()
	h := http.Header{"Content-Type": {"application/json"}, "X-Signature": {formSig([]byte(body))}}
	return e.do("POST", "/webhooks/signup-form", "", h, []byte(body))
}

// TestDuplicatesConcurrent: the same delivery 5× at once → one inbox row,
// four duplicates, one ledger row, one push per destination.
func TestDuplicatesConcurrent(t *testing.T) {
	e := start(t, envOptions{})
	pm := fixture(t, "postmark-unsubscribe")
	var wg sync.WaitGroup
	answers := make(chan response, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers <- e.postFixture(pm)
		}()
	}
	wg.Wait()
	close(answers)
	dups, ids := 0, map[any]bool{}
	for r := range answers {
		if r.Status != 202 {
			t.Fatalf("HTTP %d: %s", r.Status, r.Body)
		}
		if r.JSON["duplicate"] == true {
			dups++
		}
		ids[r.JSON["id"]] = true
	}
	if dups != 4 || len(ids) != 1 {
		t.Fatalf("duplicates = %d (want 4), distinct ids = %d (want 1)", dups, len(ids))
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM consent_events`); n != 1 {
		t.Fatalf("ledger rows = %d, want 1", n)
	}
	if n := e.Sandbox.CallCount(sandbox.SendGrid); n != 1 {
		t.Fatalf("SendGrid calls = %d, want 1", n)
	}
	if n := e.Sandbox.CallCount(sandbox.Mailchimp); n != 1 {
		t.Fatalf("Mailchimp calls = %d, want 1", n)
	}
}

// TestOrderAndTies: a withdrawal that occurred at 10:02 delivered before an
// opt-in that occurred at 10:00 leaves the subject withdrawn; a tie too.
func TestOrderAndTies(t *testing.T) {
	e := start(t, envOptions{})
	submit := func(email, at, newsletter string) {
		t.Helper()
		body := fmt.Sprintf(`{"email":%q,"submitted_at":%q,"newsletter":%q}`, email, at, newsletter)
		if r := e.postForm(body); r.Status != 202 {
			t.Fatalf("HTTP %d: %s", r.Status, r.Body)
		}
	}
	// A form cannot withdraw (unticked grants nothing), so withdrawals come
	// from Postmark, which carries its own time.
	withdraw := func(email, at string) {
		t.Helper()
		body := fmt.Sprintf(`{"RecordType":"SubscriptionChange","MessageStream":"broadcast","ChangedAt":%q,"Recipient":%q,"SuppressSending":true,"SuppressionReason":"ManualSuppression"}`, at, email)
		if r := e.do("POST", "/webhooks/postmark-acme", "token=pm-url-token-6a7c", http.Header{"Content-Type": {"application/json"}}, []byte(body)); r.Status != 202 {
			t.Fatalf("HTTP %d: %s", r.Status, r.Body)
		}
	}
	withdraw("late@example.com", "2025-11-20T10:02:00Z")
	e.waitDrained()
	submit("late@example.com", "2025-11-20T10:00:00Z", "on")
	withdraw("tie@example.com", "2025-11-20T10:00:00Z")
	submit("tie@example.com", "2025-11-20T10:00:00Z", "yes")
	e.waitDrained()
	for _, email := range []string{"late@example.com", "tie@example.com"} {
		r := e.admin("GET", "/v1/subjects/"+email)
		if !strings.Contains(r.Body, `"status":"withdrawn"`) || strings.Contains(r.Body, `"status":"granted"`) {
			t.Errorf("%s: %s, want withdrawn", email, r.Body)
		}
	}
}

// TestCheckboxValues: ticked values grant, unticked and absent change
// nothing, ambiguous ones are recorded invalid.
func TestCheckboxValues(t *testing.T) {
	e := start(t, envOptions{})
	ticked := []string{`true`, `1`, `"1"`, `"on"`, `"yes"`, `"true"`, `["I agree"]`}
	unticked := []string{`false`, `0`, `"0"`, `"off"`, `"no"`, `""`, `null`}
	n := 0
	post := func(val string, omit bool) string {
		n++
		email := fmt.Sprintf("box%d@example.com", n)
		field := fmt.Sprintf(`,"newsletter":%s`, val)
		if omit {
			field = ""
		}
		body := fmt.Sprintf(`{"email":%q,"submitted_at":"2025-11-20T10:00:00Z"%s}`, email, field)
		if r := e.postForm(body); r.Status != 202 {
			t.Fatalf("%s: HTTP %d: %s", val, r.Status, r.Body)
		}
		return email
	}
	var grants, nothing []string
	for _, v := range ticked {
		grants = append(grants, post(v, false))
	}
	for _, v := range unticked {
		nothing = append(nothing, post(v, false))
	}
	nothing = append(nothing, post("", true))
	maybe := post(`"maybe"`, false)
	e.waitDrained()
	for _, email := range grants {
		if r := e.admin("GET", "/v1/subjects/"+email); !strings.Contains(r.Body, `"status":"granted"`) {
			t.Errorf("%s: %s, want granted", email, r.Body)
		}
	}
	for _, email := range nothing {
		if n := e.count(`SELECT count(*) FROM consent_states cs JOIN subjects s ON s.id = cs.subject_id WHERE s.email = $1`, email); n != 0 {
			t.Errorf("%s: %d states, want none (absence is not withdrawal)", email, n)
		}
	}
	if n := e.count(`SELECT count(*) FROM consent_events e JOIN subjects s ON s.id = e.subject_id WHERE s.email = $1 AND NOT e.valid`, maybe); n != 1 {
		t.Errorf("ambiguous value: %d invalid ledger rows, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM consent_states cs JOIN subjects s ON s.id = cs.subject_id WHERE s.email = $1`, maybe); n != 0 {
		t.Errorf("ambiguous value changed state")
	}
}

// TestHostileStrings: NUL characters and invalid UTF-8 inside JSON strings
// are stored and processed, never a 500.
func TestHostileStrings(t *testing.T) {
	e := start(t, envOptions{})
	bodies := []string{
		`{"email":"nul@example.com","submitted_at":"2025-11-20T10:00:00Z","newsletter":"on","user_agent":"Moz\u0000illa","page_url":"https://x/\u0000"}`,
		"{\"email\":\"utf@example.com\",\"submitted_at\":\"2025-11-20T10:00:00Z\",\"newsletter\":\"on\",\"user_agent\":\"\xff\xfe bad\"}",
		`{"email":"a\u0000b@example.com","submitted_at":"2025-11-20T10:00:00Z","newsletter":"on"}`,
		"{\"email\":\"\xc3\x28@example.com\",\"submitted_at\":\"2025-11-20T10:00:00Z\",\"newsletter\":\"on\"}",
	}
	for i, b := range bodies {
		if r := e.postForm(b); r.Status != 202 {
			t.Fatalf("body %d: HTTP %d: %s", i, r.Status, r.Body)
		}
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE status = 'processed'`); n != len(bodies) {
		t.Fatalf("processed = %d, want %d", n, len(bodies))
	}
	for _, email := range []string{"nul@example.com", "utf@example.com"} {
		if r := e.admin("GET", "/v1/subjects/"+email); !strings.Contains(r.Body, `"status":"granted"`) {
			t.Errorf("%s: %s", email, r.Body)
		}
	}
}

// TestBatchTwoSignalsOneSubject: one HubSpot request carrying two events for
// the same contact is applied whole.
func TestBatchTwoSignalsOneSubject(t *testing.T) {
	e := start(t, envOptions{})
	body := `[{"eventId":1,"subscriptionId":4410,"portalId":9001,"appId":771,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","objectId":501,"propertyName":"hs_email_optout","propertyValue":"true","changeSource":"CRM_UI"},` +
		`{"eventId":2,"subscriptionId":4410,"portalId":9001,"appId":771,"occurredAt":1763632860000,"subscriptionType":"contact.propertyChange","objectId":501,"propertyName":"hs_email_optout","propertyValue":"true","changeSource":"CRM_UI"},` +
		`{"eventId":2,"subscriptionId":4410,"portalId":9001,"appId":771,"occurredAt":1763632860000,"subscriptionType":"contact.propertyChange","objectId":501,"propertyName":"hs_email_optout","propertyValue":"true","changeSource":"CRM_UI"}]`
	if r := e.postHubSpot(body); r.Status != 202 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM consent_events`); n != 2 {
		t.Fatalf("ledger rows = %d, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE status = 'processed'`); n != 1 {
		t.Fatalf("inbound not processed")
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox`); n != 2 {
		t.Fatalf("outbox rows = %d, want 2 (one per destination)", n)
	}
}

// postHubSpot signs body as HubSpot v3 does, now.
func (e *env) postHubSpot(body string) response {
	e.t.Helper()
	now := time.Now()
	e.SetNow(now)
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range hubspotSign("hs-client-secret-7f3a", "POST", "https://hooks.example.com/webhooks/hubspot-acme", []byte(body), now) {
		h.Set(k, v)
	}
	return e.do("POST", "/webhooks/hubspot-acme", "", h, []byte(body))
}

// TestAdversarialInputs: regressions for what an adversarial review found.
func TestAdversarialInputs(t *testing.T) {
	e := start(t, envOptions{})
	// A grant dated in the far future must not outrank a later real withdrawal.
	if r := e.postForm(`{"email":"future@example.com","submitted_at":"9999-12-31T23:59:59Z","newsletter":"on","consent_version":"v1"}`); r.Status != 202 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	time.Sleep(1100 * time.Millisecond) // the withdrawal arrives (and occurs) later
	now := time.Now().UTC().Format(time.RFC3339)
	body := fmt.Sprintf(`{"RecordType":"SubscriptionChange","MessageStream":"broadcast","ChangedAt":%q,"Recipient":"future@example.com","SuppressSending":true,"SuppressionReason":"SpamComplaint"}`, now)
	if r := e.do("POST", "/webhooks/postmark-acme", "token=pm-url-token-6a7c", http.Header{"Content-Type": {"application/json"}}, []byte(body)); r.Status != 202 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	// A year-10000 time (negative offset) is refused, not stored.
	mc := "type=unsubscribe&fired_at=9999-12-31T23%3A59%3A59-23%3A59&data%5Bemail%5D=y10k%40example.com&data%5Blist_id%5D=a6b5da1054"
	e.do("POST", "/webhooks/mailchimp-acme", "key=mc-url-key-55d0", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(mc))
	// Corrupt addresses (bytes that were not UTF-8) are never stored or pushed.
	corrupt := "{\"RecordType\":\"SubscriptionChange\",\"MessageStream\":\"broadcast\",\"ChangedAt\":\"2025-11-20T10:40:00Z\",\"Recipient\":\"jules\xff\xfe@example.org\",\"SuppressSending\":true,\"SuppressionReason\":\"ManualSuppression\"}"
	e.do("POST", "/webhooks/postmark-acme", "token=pm-url-token-6a7c", http.Header{"Content-Type": {"application/json"}}, []byte(corrupt))
	// Repeated empty checkbox values are no answer, not an opt-in.
	form := "email=empty.box%40example.com&submitted_at=2025-11-20T10%3A00%3A00Z&newsletter=&newsletter="
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Signature": {formSig([]byte(form))}}
	if r := e.do("POST", "/webhooks/signup-form", "", h, []byte(form)); r.Status != 202 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	if r := e.admin("GET", "/v1/subjects/future@example.com"); !strings.Contains(r.Body, `"status":"withdrawn"`) {
		t.Errorf("future-dated grant outranked a later withdrawal: %s", r.Body)
	}
	if n := e.count(`SELECT count(*) FROM consent_events WHERE occurred_at > now() + interval '1 minute'`); n != 0 {
		t.Errorf("%d ledger rows dated in the future", n)
	}
	if n := e.count(`SELECT count(*) FROM subjects WHERE email LIKE '%' || chr(65533) || '%'`); n != 0 {
		t.Errorf("%d corrupt addresses stored", n)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE email LIKE '%' || chr(65533) || '%'`); n != 0 {
		t.Errorf("%d corrupt addresses pushed", n)
	}
	if n := e.count(`SELECT count(*) FROM consent_states cs JOIN subjects s ON s.id = cs.subject_id WHERE s.email = 'empty.box@example.com'`); n != 0 {
		t.Errorf("repeated empty checkbox values granted consent")
	}
	if r := e.admin("GET", "/v1/subjects/y10k@example.com"); r.Status == 200 && r.Body == "" {
		t.Error("a year-10000 subject answers an empty body")
	}
	var breaks []store.Break
	if _, _, err := e.App.Store.VerifyLedger(context.Background(), func(b store.Break) { breaks = append(breaks, b) }); err != nil || len(breaks) > 0 {
		t.Errorf("ledger: %v %v", breaks, err)
	}
}

// TestHostileEventIDs: event ids Postgres text cannot hold, or too long for
// an index, still store the delivery once (no 503 loop for the sender).
func TestHostileEventIDs(t *testing.T) {
	e := start(t, envOptions{noWorker: true})
	for _, id := range []string{"a\u0000b", strings.Repeat("x", 5000)} {
		quoted, _ := json.Marshal(id)
		body := fmt.Sprintf(`{"event_id":%s,"event_type":"form_response","form_response":{"form_id":"f","submitted_at":"2025-11-20T10:00:00Z","answers":[]}}`, quoted)
		m := hmac.New(sha256.New, []byte("tf-secret-91c2"))
		m.Write([]byte(body))
		h := http.Header{"Content-Type": {"application/json"}, "Typeform-Signature": {"sha256=" + base64.StdEncoding.EncodeToString(m.Sum(nil))}}
		for i, want := range []any{false, true} {
			r := e.do("POST", "/webhooks/typeform-acme", "", h, []byte(body))
			if r.Status != 202 || r.JSON["duplicate"] != want {
				t.Fatalf("id of %d bytes, delivery %d: HTTP %d %s", len(id), i, r.Status, r.Body)
			}
		}
	}
}
