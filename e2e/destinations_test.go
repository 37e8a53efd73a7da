package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/cli"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/lib/pq"
)

// everyKind adds the demo's destinations (one of every other kind, each
// against its sandbox fake) to cfg.
func everyKind(t testing.TB) func(*configT) {
	return func(cfg *configT) {
		sbURL := strings.TrimSuffix(cfg.Destinations[0].BaseURL, "/sendgrid")
		raw, err := fixtures.DemoDestinations()
		if err != nil {
			t.Fatal(err)
		}
		more, err := config.Parse(raw, func(k string) (string, bool) { return sbURL, k == "SANDBOX_URL" })
		if err != nil {
			t.Fatal(err)
		}
		cfg.Destinations = append(cfg.Destinations, more.Destinations...)
		cfg.Worker.VerifyAfter = 300 * time.Millisecond
	}
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

// A Mailgun unsubscribe reaches every other destination kind, the CRMs
// included, and is verified there; Mailgun itself is not called back (its
// own event). The CRMs' own change events coming back afterwards (HubSpot's
// hs_email_optout propertyChange, Salesforce's outbound message for
// HasOptedOutOfEmail, as each sends it once we set the field) are recorded
// and change nothing: no second push anywhere.
func TestEveryDestinationKindAndCRMEcho(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: everyKind(t)})
	const addr = "Lena.Martin@Example.com" // HubSpot contact 501 in the sandbox
	o := e.Sandbox.Others()
	sfID := o.Salesforce.AddContact(addr)
	e.mailgunEvent("unsubscribed", "mg-every-kind", addr)
	want := len(e.App.Config.Destinations) - 1 // all but Mailgun: the echo
	e.waitFor("every destination verified", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE verified_at IS NOT NULL`) == want
	})
	lower := strings.ToLower(addr)
	held := map[string]bool{
		"sendgrid":   e.Sandbox.SendGrid().IsSuppressed(addr),
		"mailchimp":  e.Sandbox.MailchimpStatus("a6b5da1054", addr) == "unsubscribed",
		"klaviyo":    slices.Contains(lowerAll(o.Klaviyo.Unsubscribed()), lower),
		"ses":        o.SES.Unsubscribed(sandbox.DefaultSESContactList, addr),
		"hubspot":    slices.Contains(lowerAll(o.HubSpot.OptedOutOfAll()), lower),
		"salesforce": slices.Contains(o.Salesforce.OptedOut(), sfID),
		"brevo":      o.Brevo.EmailBlocklisted(addr),
		"postmark":   o.Postmark.IsSuppressed("broadcast", addr),
	}
	for k, ok := range held {
		if !ok {
			t.Errorf("%s does not hold the suppression", k)
		}
	}
	if n := o.Mailgun.CallCount(); n != 0 {
		t.Errorf("Mailgun called %d times for its own unsubscribe", n)
	}
	rows := e.count(`SELECT count(*) FROM suppression_outbox`)
	calls := e.Sandbox.SendGrid().CallCount()

	// HubSpot's echo of the status we set.
	body := fmt.Sprintf(`[{"eventId":9101,"subscriptionId":4410,"portalId":9001,"appId":771,"occurredAt":%d,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":501,"propertyName":"hs_email_optout","propertyValue":"true","changeSource":"INTEGRATION","sourceId":"consentsync"}]`,
		time.Now().UnixMilli())
	if r := e.postHubSpot(body); r.Status != 202 {
		t.Fatalf("hubspot echo: HTTP %d: %s", r.Status, r.Body)
	}
	// Salesforce's outbound message for the field we set.
	raw, err := fixtures.Get("salesforce-optout")
	if err != nil {
		t.Fatal(err)
	}
	sf := strings.NewReplacer("camille.henry@example.com", addr, "2025-11-20T10:50:00.000Z", time.Now().UTC().Format("2006-01-02T15:04:05.000Z")).Replace(string(raw.Body))
	if r := e.do("POST", "/webhooks/salesforce-acme", "", http.Header{"Content-Type": {"text/xml; charset=utf-8"}, "SOAPAction": {`""`}}, []byte(sf)); r.Status != 200 {
		t.Fatalf("salesforce echo: HTTP %d: %s", r.Status, r.Body)
	}
	e.waitDrained()
	for _, src := range []string{"hubspot-acme", "salesforce-acme"} {
		if n := e.count(`SELECT count(*) FROM consent_events WHERE source = $1`, src); n != 1 {
			t.Fatalf("%s's echo left %d ledger rows, want 1 (recorded, not pushed)", src, n)
		}
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox`); n != rows {
		t.Errorf("the CRM's echo queued %d more suppressions", n-rows)
	}
	if n := e.Sandbox.SendGrid().CallCount(); n != calls {
		t.Errorf("SendGrid called %d more times after the echo", n-calls)
	}
	// One answer: `consentsync subject` shows each destination's push and
	// read-back as the API's subject view does.
	view := e.admin("GET", "/v1/subjects/"+addr)
	if view.Status != 200 {
		t.Fatalf("subject view: HTTP %d", view.Status)
	}
	var out bytes.Buffer
	if err := cli.PrintSubject(context.Background(), &out, e.App.Service, addr); err != nil {
		t.Fatal(err)
	}
	cliRows := map[string]string{}
	section := false
	for _, line := range strings.Split(out.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "SUPPRESSIONS"):
			section = true
		case section && (line == "" || strings.HasPrefix(line, "NOTICES")):
			section = false
		case section && !strings.HasPrefix(line, "DESTINATION"):
			f := strings.Fields(line)
			// DESTINATION ADDRESS CONSENT ACTION STATUS ATTEMPTS SENT(2) VERIFIED(2) ...
			if len(f) >= 10 {
				cliRows[f[0]] = f[4] + " verified=" + f[8]
			}
		}
	}
	n := 0
	for _, x := range view.JSON["suppressions"].([]any) {
		r := x.(map[string]any)
		verified := ""
		if v, ok := r["verified_at"].(string); ok {
			ts, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				t.Fatal(err)
			}
			verified = ts.UTC().Format("2006-01-02")
		}
		want := fmt.Sprintf("%v verified=%s", r["status"], verified)
		if got := cliRows[fmt.Sprint(r["destination"])]; got != want {
			t.Errorf("%s: consentsync subject shows %q, the subject view %q", r["destination"], got, want)
		}
		n++
	}
	if n != want || len(cliRows) != n {
		t.Errorf("subject view lists %d suppressions, consentsync subject %d, want %d", n, len(cliRows), want)
	}
}

// withdrawals is how many addresses TestManyWithdrawalsEveryKind
// withdraws: $CONSENTSYNC_E2E_WITHDRAWALS, else 400 (`make test`, under
// the race detector); `make scale` runs it with 10,000.
func withdrawals(t *testing.T) int {
	if v := os.Getenv("CONSENTSYNC_E2E_WITHDRAWALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CONSENTSYNC_E2E_WITHDRAWALS=%q: want a positive count", v)
		}
		return n
	}
	return 400
}

// Many withdrawals at once across every destination kind: each address is
// suppressed exactly once per destination (one outbox row, one attempt),
// held by every fake and read back as verified; each destination that has
// a batch call gets at most ceil(N / batch) push calls plus one per retry.
func TestManyWithdrawalsEveryKind(t *testing.T) {
	t.Parallel()
	n := withdrawals(t)
	e := start(t, envOptions{noWorker: true, mutate: func(cfg *configT) {
		everyKind(t)(cfg)
		for i := range cfg.Destinations {
			cfg.Destinations[i].RateLimit = 100000 // the fakes have no published limit to honour
		}
	}})
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("bulk%05d@example.com", i)
		e.Sandbox.Others().Salesforce.AddContact(addrs[i])
	}
	// Ingest from 8 senders at once, all before the worker starts, so the
	// worker finds full batches.
	var wg sync.WaitGroup
	next := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range next {
				e.withdrawByPostmark(a)
			}
		}()
	}
	for _, a := range addrs {
		next <- a
	}
	close(next)
	wg.Wait()
	// Every destination but postmark-acme, the source the withdrawals come
	// from (its own event: not echoed back).
	want := n * (len(e.App.Config.Destinations) - 1)
	// Hold every destination (its retry schedule) while the withdrawals
	// are reconciled, then release them all: the pushes find the whole
	// backlog, as after an outage, and must carry it in full batches.
	ctx := context.Background()
	if _, err := e.App.Store.DB.Exec(`INSERT INTO destination_status (destination, hold_until)
		SELECT unnest($1::text[]), now() + interval '1 hour'`, pq.Array(destinationNames(e))); err != nil {
		t.Fatal(err)
	}
	e.StartWorker()
	progress := progressLogger(t, e)
	e.waitForWithin("every withdrawal reconciled", time.Duration(n/10+120)*time.Second, func() bool {
		progress()
		return e.count(`SELECT count(*) FROM suppression_outbox`) == want
	})
	started := time.Now()
	if _, err := e.App.Store.DB.Exec(`UPDATE destination_status SET hold_until = now()`); err != nil {
		t.Fatal(err)
	}
	for _, d := range destinationNames(e) {
		if err := e.App.Enqueuer.PushAt(ctx, d, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.waitForWithin("every suppression verified", time.Duration(n/10+120)*time.Second, func() bool {
		progress()
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE verified_at IS NOT NULL`) == want
	})
	t.Logf("%d withdrawals × %d destinations pushed and verified in %s", n, len(e.App.Config.Destinations)-1, time.Since(started).Round(time.Millisecond))
	if k := e.count(`SELECT count(*) FROM (SELECT destination, lower(email) FROM suppression_outbox GROUP BY 1, 2 HAVING count(*) > 1 OR max(attempts) > 1) d`); k != 0 {
		t.Errorf("%d (destination, address) pairs pushed more than once", k)
	}
	o := e.Sandbox.Others()
	for _, a := range addrs {
		if !e.Sandbox.SendGrid().IsSuppressed(a) || !o.SES.Unsubscribed(sandbox.DefaultSESContactList, a) || !o.Brevo.EmailBlocklisted(a) {
			t.Fatalf("%s not held by every fake", a)
		}
	}
	if got := len(o.Klaviyo.Unsubscribed()); got != n {
		t.Errorf("Klaviyo holds %d unsubscribed, want %d", got, n)
	}
	// Push calls: the batch calls each kind makes, its batch size, the
	// calls it answered and how many of them failed (retries).
	sandboxCalls := func(p sandbox.Provider) []fakeapi.Call {
		var out []fakeapi.Call
		for _, c := range e.Sandbox.Calls(p) {
			out = append(out, fakeapi.Call{Method: c.Method, Path: c.Path, Status: c.Status})
		}
		return out
	}
	batch := func(name string) int {
		return min(e.App.Worker.Destinations[name].MaxBatch(), e.App.Config.Worker.PushBatch)
	}
	for _, k := range []struct {
		name, method, path string
		calls              []fakeapi.Call
	}{
		{"sendgrid-acme", "POST", "/sendgrid/v3/asm/suppressions/global", sandboxCalls(sandbox.SendGrid)},
		{"mailchimp-acme", "POST", "/mailchimp/3.0/lists/a6b5da1054", sandboxCalls(sandbox.Mailchimp)},
		{"mailgun-acme", "POST", "/v3/" + sandbox.DefaultMailgunDomain + "/unsubscribes", o.Mailgun.Calls()},
		{"klaviyo-acme", "POST", "/api/profile-subscription-bulk-delete-jobs", o.Klaviyo.Calls()},
		{"hubspot-acme", "POST", "/communication-preferences/v4/statuses/batch/unsubscribe-all", o.HubSpot.Calls()},
	} {
		pushes, retries := 0, 0
		for _, c := range k.calls {
			if c.Method != k.method || c.Path != k.path {
				continue
			}
			pushes++
			if c.Status == http.StatusTooManyRequests || c.Status >= 500 {
				retries++
			}
		}
		ideal := (n + batch(k.name) - 1) / batch(k.name)
		if pushes == 0 || pushes > ideal+retries {
			t.Errorf("%s: %d push calls for %d addresses, want at most ceil(%d/%d) = %d + %d retries", k.name, pushes, n, n, batch(k.name), ideal, retries)
		}
		t.Logf("%s: %d push calls for %d addresses (ideal %d)", k.name, pushes, n, ideal)
	}
}

// progressLogger returns a func that, every 15 s, logs the inbox and
// outbox counts by status (a long run shows where it is).
func progressLogger(t *testing.T, e *env) func() {
	last := time.Now()
	return func() {
		if time.Since(last) < 15*time.Second {
			return
		}
		last = time.Now()
		var rows []struct {
			What string `db:"what"`
			N    int    `db:"n"`
		}
		_ = e.App.Store.DB.Select(&rows, `SELECT 'inbox ' || status AS what, count(*) AS n FROM inbound_events GROUP BY 1
			UNION ALL SELECT 'outbox ' || status || CASE WHEN verified_at IS NOT NULL THEN ' verified' ELSE '' END, count(*) FROM suppression_outbox GROUP BY 1 ORDER BY 1`)
		t.Logf("progress: %v", rows)
	}
}

func destinationNames(e *env) []string {
	var out []string
	for _, d := range e.App.Config.Destinations {
		out = append(out, d.Name)
	}
	return out
}

// A destination that makes one request per address (SES) under a rate
// limit gets, for a batch, its timeout plus the time the limit needs: the
// batch is paced, not cut off at the timeout and pushed again.
func TestPacedBatchNotCutOff(t *testing.T) {
	t.Parallel()
	const n = 12
	e := start(t, envOptions{noWorker: true, mutate: func(cfg *configT) {
		everyKind(t)(cfg)
		var ses []config.Destination
		for _, d := range cfg.Destinations {
			if d.Kind == "ses" {
				d.RateLimit = 5         // 12 addresses: about 2.4 s of requests
				d.Timeout = time.Second // shorter than the batch's requests
				ses = append(ses, d)
			}
		}
		cfg.Destinations = ses
	}})
	for i := range n {
		e.withdrawByPostmark(fmt.Sprintf("paced%02d@example.com", i))
	}
	e.StartWorker()
	e.waitFor("every suppression verified", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE verified_at IS NOT NULL`) == n
	})
	if k := e.count(`SELECT max(attempts) FROM suppression_outbox`); k != 1 {
		t.Errorf("a suppression took %d attempts, want 1: the paced batch was cut off", k)
	}
}
