package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/cli"
)

// mailchimpEvent posts a Mailchimp webhook (form-encoded, secret as ?key=)
// of type typ ("subscribe", "unsubscribe") for email on the acme list.
func (e *env) mailchimpEvent(typ, email string, at time.Time) {
	e.t.Helper()
	v := url.Values{"type": {typ}, "fired_at": {at.UTC().Format("2006-01-02 15:04:05")},
		"data[id]": {"id-" + email}, "data[list_id]": {"a6b5da1054"}, "data[email]": {email}, "data[email_type]": {"html"}}
	if typ == "unsubscribe" {
		v.Set("data[action]", "unsub")
		v.Set("data[reason]", "manual")
	}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if r := e.do("POST", "/webhooks/mailchimp-acme", "key=mc-url-key-55d0", h, []byte(v.Encode())); r.Status != 202 {
		e.t.Fatalf("mailchimp %s: HTTP %d: %s", typ, r.Status, r.Body)
	}
}

// pushedTo lists the addresses the outbox sent to destination.
func (e *env) pushedTo(destination string) []string {
	e.t.Helper()
	var out []string
	if err := e.App.Store.DB.Select(&out, `SELECT coalesce(email, phone, '') FROM suppression_outbox
		WHERE destination = $1 AND status = 'sent' ORDER BY 1`, destination); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestAliasWithdrawalEverywhere is the first scenario: an opt-in
// through the form for one spelling of a Gmail mailbox, an unsubscribe at
// Mailchimp for another. Every view says withdrawn for every alias, the
// suppression reaches the address the form collected at every provider,
// and an alias never seen is the same person.
func TestAliasWithdrawalEverywhere(t *testing.T) {
	e := rulesEnv(t, false)
	granted := time.Now().UTC().Add(-2 * time.Hour)
	e.submit(map[string]any{"email": "Alice.Newcomer+promo@gmail.com", "submitted_at": granted.Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"})
	e.waitDrained()
	e.mailchimpEvent("unsubscribe", "alicenewcomer@googlemail.com", granted.Add(time.Hour))
	e.waitDrained()

	for _, id := range []string{"Alice.Newcomer+promo@gmail.com", "alicenewcomer@googlemail.com", "alicenewcomer@gmail.com", "a.l.i.c.e.newcomer@gmail.com"} {
		if got := e.eligible(id, "email", "acme", "marketing"); got["allowed"] != false || got["reason"] != "withdrawn" {
			t.Errorf("eligibility %s: %v, want withdrawn", id, got)
		}
		v := e.admin("GET", "/v1/subjects/"+id)
		if v.Status != 200 {
			t.Errorf("GET /v1/subjects/%s: HTTP %d, want 200 (one person)", id, v.Status)
			continue
		}
		for _, c := range v.JSON["consents"].([]any) {
			c := c.(map[string]any)
			if c["brand"] == "acme" && c["channel"] == "email" && c["purpose"] == "marketing" && c["status"] != "withdrawn" {
				t.Errorf("subject view %s: %v, want withdrawn", id, c)
			}
		}
		if n := len(v.JSON["identities"].([]any)); n != 2 {
			t.Errorf("subject view %s: %d identities, want the 2 addresses seen", id, n)
		}
		var out bytes.Buffer
		if err := cli.PrintSubject(context.Background(), &out, e.App.Service, id); err != nil {
			t.Fatal(err)
		}
		if got := cliEligibility(out.String())["acme/email/marketing"]; strings.Contains(out.String(), "valid_opt_in") || got != "false none withdrawn" {
			t.Errorf("consentsync subject %s:\n%s", id, out.String())
		}
	}
	exp, err := e.App.Service.Expiring(context.Background(), 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range exp {
		for _, id := range x.Identities {
			if strings.Contains(strings.ToLower(id.Email), "newcomer") {
				t.Errorf("expiring lists a withdrawn person: %+v", x)
			}
		}
	}
	// Every literal address at every provider that could mail it; the
	// address that unsubscribed at Mailchimp is not pushed back to it.
	e.waitFor("suppressions pushed", func() bool { return len(e.pushedTo("sendgrid-acme")) == 2 && len(e.pushedTo("mailchimp-acme")) == 1 })
	if got := e.pushedTo("sendgrid-acme"); !slices.Equal(got, []string{"Alice.Newcomer+promo@gmail.com", "alicenewcomer@googlemail.com"}) {
		t.Errorf("sendgrid pushes: %v", got)
	}
	if got := e.pushedTo("mailchimp-acme"); !slices.Equal(got, []string{"Alice.Newcomer+promo@gmail.com"}) {
		t.Errorf("mailchimp pushes: %v (want the form's address, not the echo)", got)
	}
	if !slices.Contains(e.Sandbox.Snapshot().SendGridSuppressed, "Alice.Newcomer+promo@gmail.com") {
		t.Errorf("SendGrid does not hold the form's address: %v", e.Sandbox.Snapshot().SendGridSuppressed)
	}
}

// TestProviderSubscribeLiftsNothing: after a withdrawal, a Mailchimp
// "subscribe" — of the same address or of another alias — is recorded but
// lifts nothing, and the subscribing address is suppressed again at every
// provider, Mailchimp included. A ticked box after it does lift it.
func TestProviderSubscribeLiftsNothing(t *testing.T) {
	e := rulesEnv(t, false)
	at := time.Now().UTC().Add(-3 * time.Hour)
	e.submit(map[string]any{"email": "bob.keeper@gmail.com", "submitted_at": at.Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"})
	e.submit(map[string]any{"email": "bob.keeper@gmail.com", "submitted_at": at.Add(time.Minute).Format(time.RFC3339), "email_pref": false})
	e.waitDrained()
	e.mailchimpEvent("subscribe", "bobkeeper+news@gmail.com", at.Add(time.Hour))
	e.waitDrained()
	for _, id := range []string{"bob.keeper@gmail.com", "bobkeeper+news@gmail.com"} {
		if got := e.eligible(id, "email", "acme", "marketing"); got["reason"] != "withdrawn" {
			t.Errorf("%s after a provider subscribe: %v, want withdrawn", id, got)
		}
	}
	e.waitFor("the subscribing alias suppressed at Mailchimp", func() bool {
		return slices.Contains(e.pushedTo("mailchimp-acme"), "bobkeeper+news@gmail.com")
	})
	e.submit(map[string]any{"email": "bob.keeper@gmail.com", "submitted_at": at.Add(2 * time.Hour).Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"})
	e.waitDrained()
	if got := e.eligible("bobkeeper+news@gmail.com", "email", "acme", "marketing"); got["allowed"] != true {
		t.Errorf("after a ticked box: %v, want allowed", got)
	}
}

// TestErasureIsFinal: after DELETE, a Mailchimp subscribe of the erased
// address (or an alias) brings nobody back, and the refused request keeps
// no address; a bounce naming the person before the erasure loses its raw
// body too.
func TestErasureIsFinal(t *testing.T) {
	e := rulesEnv(t, false)
	at := time.Now().UTC().Add(-3 * time.Hour)
	e.submit(map[string]any{"email": "carla.gone@gmail.com", "submitted_at": at.Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"})
	e.mailgunBounce("Carla.Gone@gmail.com")
	e.waitDrained()
	if r := e.admin("DELETE", "/v1/subjects/carlagone@googlemail.com"); r.Status != 200 {
		t.Fatalf("erase through an alias: HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	e.mailchimpEvent("subscribe", "carla.gone@gmail.com", time.Now().UTC())
	e.mailchimpEvent("subscribe", "carla.gone+x@gmail.com", time.Now().UTC())
	e.waitDrained()
	for _, id := range []string{"carla.gone@gmail.com", "carla.gone+x@gmail.com"} {
		if got := e.eligible(id, "email", "acme", "marketing"); got["allowed"] != false || got["reason"] != "erased" {
			t.Errorf("%s after a provider subscribe: %v, want erased", id, got)
		}
		if r := e.admin("GET", "/v1/subjects/"+id); r.Status != 404 {
			t.Errorf("GET %s: HTTP %d, want 404", id, r.Status)
		}
	}
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE position('carla' in lower(convert_from(coalesce(body, ''), 'UTF8'))) > 0
		OR position('carla' in lower(headers::text || query || coalesce(error, ''))) > 0`); n != 0 {
		t.Errorf("%d stored requests still name the erased person", n)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE status = 'sent' AND (email ILIKE '%carla%' OR last_error ILIKE '%carla%')`); n != 0 {
		t.Errorf("%d sent suppressions still hold the address", n)
	}
	if n := e.count(`SELECT count(*) FROM subjects WHERE email ILIKE '%carla%'`); n != 0 {
		t.Errorf("%d subjects hold the address", n)
	}
}

// mailgunBounce posts a signed Mailgun permanent failure for recipient: a
// request naming the person that produces no consent signal.
func (e *env) mailgunBounce(recipient string) {
	e.t.Helper()
	ts := fmt.Sprint(time.Now().Unix())
	token := "tok-bounce-" + recipient
	m := hmac.New(sha256.New, []byte("mg-signing-key-0b9e"))
	m.Write([]byte(ts + token))
	body := fmt.Sprintf(`{"signature":{"timestamp":%q,"token":%q,"signature":"%x"},"event-data":{"event":"failed","severity":"permanent","id":"b1","timestamp":%s,"recipient":%q}}`,
		ts, token, m.Sum(nil), ts, recipient)
	if r := e.do("POST", "/webhooks/mailgun-acme", "", http.Header{"Content-Type": {"application/json"}}, []byte(body)); r.Status != 202 {
		e.t.Fatalf("mailgun: HTTP %d: %s", r.Status, r.Body)
	}
}

// TestAllBrandsWithdrawal: a source declared withdrawal_scope: all_brands
// (an "unsubscribe from all our brands" page) withdraws every configured
// brand, and the suppression reaches every brand's destinations.
func TestAllBrandsWithdrawal(t *testing.T) {
	e := start(t, envOptions{mutate: func(c *configT) {
		c.Destinations = append(c.Destinations, config.Destination{Name: "sendgrid-other", Kind: "sendgrid", Brand: "other-brand",
			Channels: []string{"email"}, Purposes: []string{"marketing"}, BaseURL: c.Destinations[0].BaseURL, APIKey: c.Destinations[0].APIKey, Timeout: 10 * time.Second})
		for _, s := range c.Sources {
			if s.Name == "signup-form" {
				page := s
				page.Name, page.WithdrawalScope = "unsubscribe-all", "all_brands"
				f := *s.Fields
				f.Consents = []config.ConsentField{{Field: "email_pref", Channel: "email", Purpose: "marketing", Withdrawal: true}}
				page.Fields = &f
				c.Sources = append(c.Sources, page)
				break
			}
		}
	}})
	at := time.Now().UTC().Add(-time.Hour)
	e.submit(map[string]any{"email": "dora@example.com", "submitted_at": at.Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"})
	e.waitDrained()
	body := fmt.Sprintf(`{"email":"dora@example.com","submitted_at":%q,"email_pref":false}`, at.Add(time.Minute).Format(time.RFC3339))
	h := http.Header{"Content-Type": {"application/json"}, "X-Signature": {formSig([]byte(body))}}
	if r := e.do("POST", "/webhooks/unsubscribe-all", "", h, []byte(body)); r.Status != 202 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	for _, brand := range []string{"acme", "other-brand"} {
		if got := e.eligible("dora@example.com", "email", brand, "marketing"); got["reason"] != "withdrawn" {
			t.Errorf("%s after an all-brands withdrawal: %v, want withdrawn", brand, got)
		}
	}
	e.waitFor("every brand's destinations", func() bool {
		return len(e.pushedTo("sendgrid-acme")) == 1 && len(e.pushedTo("mailchimp-acme")) == 1 && len(e.pushedTo("sendgrid-other")) == 1
	})
}

// TestNewAliasJoinsWithdrawn: an alias first seen after the person
// withdrew (here through a click reported by Mailgun) is suppressed at
// every provider too, and so is a work address linked later through the
// person's number.
func TestNewAliasJoinsWithdrawn(t *testing.T) {
	e := rulesEnv(t, false)
	at := time.Now().UTC().Add(-time.Hour)
	e.submit(map[string]any{"email": "erin.late@gmail.com", "phone": "06 11 22 33 44", "submitted_at": at.Format(time.RFC3339), "newsletter": "on", "sms_pref": "on", "consent_version": "v3"})
	e.waitDrained()
	e.postmarkUnsubscribe("erin.late@gmail.com", at.Add(time.Minute))
	e.waitDrained()
	e.mailgunEvent("clicked", "c-erin", "erinlate+shop@gmail.com")
	e.submit(map[string]any{"email": "erin@acme-corp.fr", "phone": "+33611223344", "submitted_at": at.Add(2 * time.Minute).Format(time.RFC3339), "sms_pref": "on", "consent_version": "v3"})
	e.waitDrained()
	e.waitFor("the new alias and the linked work address suppressed", func() bool {
		sg := e.pushedTo("sendgrid-acme")
		return slices.Contains(sg, "erinlate+shop@gmail.com") && slices.Contains(sg, "erin@acme-corp.fr") &&
			slices.Contains(e.pushedTo("mailchimp-acme"), "erinlate+shop@gmail.com")
	})
	if got := e.eligible("erin@acme-corp.fr", "email", "acme", "marketing"); got["reason"] != "withdrawn" {
		t.Errorf("linked work address: %v, want withdrawn", got)
	}
}

// TestReadyzReportsEviction: /readyz is 200 while Redis keeps every key,
// and 503 "degraded" once its maxmemory-policy may evict queued tasks.
// (The policy is the Redis server's; it is restored at once. With no
// maxmemory limit set nothing is evicted meanwhile.)
func TestReadyzReportsEviction(t *testing.T) {
	e := start(t, envOptions{noWorker: true})
	ctx := context.Background()
	old, err := e.App.Redis.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		t.Skipf("Redis refuses CONFIG: %v", err)
	}
	if p := old["maxmemory-policy"]; p != "noeviction" {
		t.Skipf("this Redis runs %s", p)
	}
	if r := e.do("GET", "/readyz", "", nil, nil); r.Status != 200 {
		t.Fatalf("readyz with noeviction: HTTP %d: %s", r.Status, r.Body)
	}
	if err := e.App.Redis.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Skipf("cannot change the policy: %v", err)
	}
	r := e.do("GET", "/readyz", "", nil, nil)
	if err := e.App.Redis.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Errorf("restore policy: %v", err)
	}
	if r.Status != 503 || !strings.Contains(r.Body, "degraded") {
		t.Errorf("readyz with allkeys-lru: HTTP %d %s, want 503 degraded", r.Status, r.Body)
	}
}

// TestErasedIdentityLeavesNoBody: after an erasure, requests that name the
// erased address without a consent signal (a profile update, a click) keep
// no raw body; and a new address given with the erased number, dated before
// the erasure, is held to the erasure (found by adversarial review).
func TestErasedIdentityLeavesNoBody(t *testing.T) {
	e := rulesEnv(t, false)
	at := time.Now().UTC().Add(-3 * time.Hour)
	e.submit(map[string]any{"email": "kept.body@example.com", "phone": "+33688776655", "submitted_at": at.Format(time.RFC3339), "newsletter": "on", "sms_pref": "on", "consent_version": "v3"})
	e.waitDrained()
	if r := e.admin("DELETE", "/v1/subjects/+33688776655"); r.Status != 200 {
		t.Fatalf("erase: %d", r.Status)
	}
	e.waitDrained()
	e.submit(map[string]any{"email": "kept.body@example.com", "submitted_at": time.Now().UTC().Format(time.RFC3339), "profile": "customer"})
	e.mailgunEvent("clicked", "c-after", "kept.body@example.com")
	e.submit(map[string]any{"email": "second@example.com", "phone": "06 88 77 66 55", "submitted_at": at.Add(time.Minute).Format(time.RFC3339), "newsletter": "on", "sms_pref": "on", "consent_version": "v3"})
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE position('kept.body' in convert_from(coalesce(body, ''), 'UTF8')) > 0
		OR position('second@' in convert_from(coalesce(body, ''), 'UTF8')) > 0`); n != 0 {
		t.Errorf("%d raw bodies still name the erased person", n)
	}
	if got := e.eligible("second@example.com", "email", "acme", "marketing"); got["allowed"] != false {
		t.Errorf("address given with the erased number, dated before the erasure: %v, want not allowed", got)
	}
}

// TestShopifyNumberIsTheCustomers: a Shopify customer record gives the
// number with the address, so the SMS consent is the same person's: every
// view by either identifier shows it, and erasing the address erases the
// number, including a request that only reported the number invalid.
func TestShopifyNumberIsTheCustomers(t *testing.T) {
	e := rulesEnv(t, false)
	at := time.Now().UTC().Add(-time.Hour)
	postShopify(e, fmt.Sprintf(`{"id":71,"email":"Sam.Shop@example.com","phone":"+33612345670",`+
		`"email_marketing_consent":{"state":"not_subscribed","consent_updated_at":null},`+
		`"sms_marketing_consent":{"state":"subscribed","opt_in_level":"confirmed_opt_in","consent_updated_at":%q}}`, at.Format(time.RFC3339)), "ev-sam-1")
	// Later Shopify finds the number invalid: a request that names the
	// number only as undeliverable.
	postShopify(e, fmt.Sprintf(`{"id":71,"phone":"+33612345670","updated_at":%q,`+
		`"sms_marketing_consent":{"state":"invalid","consent_updated_at":null}}`, at.Add(time.Minute).Format(time.RFC3339)), "ev-sam-2")
	e.waitDrained()
	byEmail := e.eligible("sam.shop@example.com", "sms", "acme", "marketing")
	byPhone := e.eligible("+33612345670", "sms", "acme", "marketing")
	if byPhone["allowed"] != true || byEmail["allowed"] != byPhone["allowed"] || byEmail["reason"] != byPhone["reason"] {
		t.Errorf("sms eligibility by address %v, by number %v: want the same, allowed", byEmail, byPhone)
	}
	if r := e.admin("DELETE", "/v1/subjects/sam.shop@example.com"); r.Status != 200 {
		t.Fatalf("erase: HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	if r := e.admin("GET", "/v1/subjects/+33612345670"); r.Status != 404 {
		t.Errorf("GET the number after erasing the address: HTTP %d, want 404: %s", r.Status, r.Body)
	}
	if n := e.count(`SELECT count(*) FROM subjects WHERE phone = '+33612345670'`); n != 0 {
		t.Errorf("%d subjects still hold the number", n)
	}
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE position('33612345670' in convert_from(coalesce(body, ''), 'UTF8')) > 0`); n != 0 {
		t.Errorf("%d stored requests still name the erased number", n)
	}
}

// TestErasureCoversSkippedRequests: a request that names the person but
// carries no consent fact (a Mailchimp profile update, a Shopify record
// whose only consent is not_subscribed) is still a stored request that
// named them: the erasure deletes its raw body too.
func TestErasureCoversSkippedRequests(t *testing.T) {
	e := rulesEnv(t, false)
	at := time.Now().UTC().Add(-time.Hour)
	e.submit(map[string]any{"email": "tess.quiet@example.com", "submitted_at": at.Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"})
	e.mailchimpEvent("profile", "tess.quiet@example.com", at.Add(time.Minute))
	postShopify(e, `{"id":81,"email":"Tess.Quiet@example.com","email_marketing_consent":{"state":"not_subscribed","consent_updated_at":null}}`, "ev-tess")
	e.waitDrained()
	if r := e.admin("DELETE", "/v1/subjects/tess.quiet@example.com"); r.Status != 200 {
		t.Fatalf("erase: HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE position('tess' in lower(convert_from(coalesce(body, ''), 'UTF8'))) > 0`); n != 0 {
		t.Errorf("%d stored requests still name the erased person", n)
	}
}
