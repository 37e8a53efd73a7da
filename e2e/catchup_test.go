package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/cli"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/worker"
)

// catchUpConfig is rulesEnv's configuration with a partners withdrawal
// box on the form and, when purposes is not nil, a Mailgun destination
// named like the Mailgun source (so the echo rule applies to it) that
// honours those purposes.
func catchUpConfig(t *testing.T, purposes []string) func(*configT) {
	return func(c *configT) {
		rulesConfig(false)(c)
		c.Worker.VerifyAfter = 200 * time.Millisecond
		for i := range c.Sources {
			if c.Sources[i].Name == "signup-form" {
				f := c.Sources[i].Fields
				f.Consents = append(f.Consents, config.ConsentField{Field: "partners_pref", Channel: "email", Purpose: "partners", Withdrawal: true})
			}
		}
		if purposes == nil {
			return
		}
		raw, err := fixtures.DemoDestinations()
		if err != nil {
			t.Fatal(err)
		}
		sbURL := strings.TrimSuffix(c.Destinations[0].BaseURL, "/sendgrid")
		more, err := config.Parse(raw, func(k string) (string, bool) { return sbURL, k == "SANDBOX_URL" })
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range more.Destinations {
			if d.Name == "mailgun-acme" {
				d.Purposes = purposes
				c.Destinations = append(c.Destinations, d)
				return
			}
		}
		t.Fatal("no mailgun-acme among the demo destinations")
	}
}

// outboxOf lists destination's suppress rows as "address purpose status
// verified" lines, sorted.
func (e *env) outboxOf(destination string) []string {
	e.t.Helper()
	var out []string
	if err := e.App.Store.DB.Select(&out, `SELECT coalesce(email, phone, '') || ' ' || purpose || ' ' || status || ' ' || (verified_at IS NOT NULL)::text
		FROM suppression_outbox WHERE destination = $1 AND action = 'suppress' ORDER BY 1`, destination); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// rowsOf lists destination's outbox rows as "action address purpose
// ledger-row target" lines, sorted: what was queued, whatever became of it.
func (e *env) rowsOf(destination string) []string {
	e.t.Helper()
	var out []string
	if err := e.App.Store.DB.Select(&out, `SELECT action || ' ' || coalesce(email, phone, '') || ' ' || purpose || ' ' || consent_event_id || ' ' || target_subject_id
		FROM suppression_outbox WHERE destination = $1 ORDER BY 1`, destination); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestDestinationAddedLaterCatchesUp is the newcomer trial's defect: people
// withdrew while only SendGrid and Mailchimp were configured; Mailgun is
// added and the app restarted. Mailgun then gets exactly the withdrawals
// that still stand — one row per address and key, every address of an
// identity set, not the lifted one, not the erased one, not the address
// whose withdrawal came from Mailgun itself (echo) — pushed and verified
// at its fake; the old destinations get nothing new. A dry run first only
// counts. A withdrawal reconciled meanwhile by a process still on the old
// configuration (a rolling restart) is caught up at the next start, which
// reads only the people who withdrew since; then nothing is left to
// queue. Growing Mailgun's purposes catches up on the new purpose alone.
func TestDestinationAddedLaterCatchesUp(t *testing.T) {
	t.Parallel()
	e1 := start(t, envOptions{mutate: catchUpConfig(t, nil)})
	at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	ts := func(d time.Duration) string { return at.Add(d).Format(time.RFC3339) }
	for _, who := range []string{"alice.catch@example.com", "bob.catch@gmail.com", "carol.catch@example.com", "dave.catch@example.com", "gina.catch@example.com"} {
		e1.submit(map[string]any{"email": who, "submitted_at": ts(0), "newsletter": "on", "consent_version": "v3"})
	}
	e1.waitDrained()
	for _, who := range []string{"alice.catch@example.com", "bob.catch@gmail.com", "carol.catch@example.com", "dave.catch@example.com"} {
		e1.submit(map[string]any{"email": who, "submitted_at": ts(time.Minute), "email_pref": false})
	}
	e1.submit(map[string]any{"email": "gina.catch@example.com", "submitted_at": ts(time.Minute), "partners_pref": false})
	e1.mailgunEvent("unsubscribed", "mg-frank-catch", "frank.catch@example.com")
	e1.waitDrained()
	// Bob's alias turns up later through a provider "subscribe": it lifts
	// nothing and is held (a suppression at the old destinations).
	e1.mailchimpEvent("subscribe", "bobcatch+news@gmail.com", at.Add(time.Hour))
	// Carol opts in again with a ticked box: her withdrawal is lifted.
	e1.submit(map[string]any{"email": "carol.catch@example.com", "submitted_at": ts(2 * time.Hour), "newsletter": "on", "consent_version": "v3"})
	e1.waitDrained()
	if r := e1.admin("DELETE", "/v1/subjects/dave.catch@example.com"); r.Status != 200 {
		t.Fatalf("erase: HTTP %d: %s", r.Status, r.Body)
	}
	e1.waitDrained()
	oldSG, oldMC := e1.rowsOf("sendgrid-acme"), e1.rowsOf("mailchimp-acme")
	e1.StopWorker()

	// Mailgun added (marketing), first without a worker: a dry run counts.
	e2 := start(t, envOptions{on: e1, noWorker: true, mutate: catchUpConfig(t, []string{"marketing"})})
	ctx := context.Background()
	reports, ran, err := e2.App.CatchUp().RunLocked(ctx, worker.CatchUpOptions{Destination: "mailgun-acme", DryRun: true})
	if err != nil || !ran {
		t.Fatalf("dry run: ran %v, %v", ran, err)
	}
	if len(reports) != 1 || reports[0].Queued != 3 {
		t.Errorf("dry run: %+v, want 3 suppressions to queue at mailgun-acme (alice, bob and his alias)", reports)
	}
	var out bytes.Buffer
	if err := cli.PrintCatchUp(&out, reports, true); err != nil || !strings.Contains(out.String(), "3 suppression(s) would be queued") {
		t.Errorf("dry-run output (%v):\n%s", err, out.String())
	}
	if got := e2.outboxOf("mailgun-acme"); len(got) != 0 {
		t.Fatalf("a dry run queued %v", got)
	}
	e2.StartWorker()
	e2.waitFor("the start-up catch-up recorded", func() bool {
		return e2.count(`SELECT count(*) FROM destination_catch_up WHERE done_at IS NOT NULL`) == 3
	})
	want := []string{"alice.catch@example.com marketing sent true", "bob.catch@gmail.com marketing sent true", "bobcatch+news@gmail.com marketing sent true"}
	e2.waitFor("mailgun-acme's catch-up pushed and verified", func() bool { return slices.Equal(e2.outboxOf("mailgun-acme"), want) })
	mg := e2.Sandbox.Others().Mailgun
	for _, a := range []string{"alice.catch@example.com", "bob.catch@gmail.com", "bobcatch+news@gmail.com"} {
		if _, ok := mg.Lookup(sandbox.DefaultMailgunDomain, a); !ok {
			t.Errorf("Mailgun does not hold %s", a)
		}
	}
	for _, a := range []string{"carol.catch@example.com", "gina.catch@example.com", "frank.catch@example.com"} {
		if _, ok := mg.Lookup(sandbox.DefaultMailgunDomain, a); ok {
			t.Errorf("Mailgun holds %s (lifted, another purpose, or its own unsubscribe)", a)
		}
	}
	if n := e2.count(`SELECT count(*) FROM suppression_outbox o JOIN consent_events e ON e.id = o.consent_event_id
		WHERE o.destination = 'mailgun-acme' AND (e.status <> 'withdrawn' OR o.brand <> e.brand OR o.channel <> e.channel OR o.purpose <> e.purpose)`); n != 0 {
		t.Errorf("%d mailgun-acme rows do not name the standing withdrawal of their key", n)
	}
	if got := e2.rowsOf("sendgrid-acme"); !slices.Equal(got, oldSG) {
		t.Errorf("sendgrid-acme changed on restart:\n%v\nwas\n%v", got, oldSG)
	}
	if got := e2.rowsOf("mailchimp-acme"); !slices.Equal(got, oldMC) {
		t.Errorf("mailchimp-acme changed on restart:\n%v\nwas\n%v", got, oldMC)
	}
	for _, id := range []string{"alice.catch@example.com", "bobcatch+news@gmail.com"} {
		if got := e2.eligible(id, "email", "acme", "marketing"); got["reason"] != "withdrawn" {
			t.Errorf("%s: %v, want withdrawn", id, got)
		}
	}
	e2.StopWorker()

	// A rolling restart: a process still on the old configuration
	// reconciles Ivan's withdrawal without Mailgun.
	eOld := start(t, envOptions{on: e1, mutate: catchUpConfig(t, nil)})
	eOld.submit(map[string]any{"email": "ivan.catch@example.com", "submitted_at": ts(3 * time.Hour), "email_pref": false})
	eOld.waitDrained()
	eOld.StopWorker()

	// Restarted again with Mailgun: only the people who withdrew lately are
	// read again (Ivan among them; the last 100,000 ledger rows before the
	// mark are read again too); then nothing is left to queue,
	// whether remembered or read again from the start (the command).
	e3 := start(t, envOptions{on: e1, noWorker: true, mutate: catchUpConfig(t, []string{"marketing"})})
	reports, err = e3.App.CatchUp().Run(ctx, worker.CatchUpOptions{Remember: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		wantQueued, wantRead := int64(0), int64(1)
		switch r.Destination {
		case "mailgun-acme":
			wantQueued = 1
		case "sendgrid-other": // another brand: Ivan's withdrawal is not its
			wantRead = 0
		}
		if !r.Incremental || r.Queued != wantQueued || r.Subjects < wantRead {
			t.Errorf("run after a rolling restart: %+v, want Ivan read again and %d queued", r, wantQueued)
		}
	}
	reports, err = e3.App.CatchUp().Run(ctx, worker.CatchUpOptions{Remember: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		if !r.Incremental || r.Queued != 0 {
			t.Errorf("remembered run: %+v, want an incremental run that queues nothing", r)
		}
	}
	reports, err = e3.App.CatchUp().Run(ctx, worker.CatchUpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		if r.Queued != 0 || r.Subjects == 0 {
			t.Errorf("second catch-up: %+v, want subjects read and nothing queued", r)
		}
	}
	if _, err := e3.App.CatchUp().Run(ctx, worker.CatchUpOptions{Destination: "nowhere"}); err == nil {
		t.Error("a catch-up of an unknown destination succeeded")
	}

	// Mailgun now also honours partners: Gina's partners withdrawal alone.
	e4 := start(t, envOptions{on: e1, mutate: catchUpConfig(t, []string{"marketing", "partners"})})
	want = append(want, "gina.catch@example.com partners sent true", "ivan.catch@example.com marketing sent true")
	slices.Sort(want)
	e4.waitFor("the partners catch-up pushed and verified", func() bool { return slices.Equal(e4.outboxOf("mailgun-acme"), want) })
	e4.waitFor("the new route recorded", func() bool {
		return e4.count(`SELECT count(*) FROM destination_catch_up WHERE destination = 'mailgun-acme' AND done_at IS NOT NULL AND queued = 1`) == 1
	})
}

// TestNewBrandAllBrandsWithdrawalByReplay: an "unsubscribe from all our
// brands" made before a brand was configured has no ledger row for that
// brand, so the catch-up of the new brand's destination finds nothing to
// queue; replaying the all-brands source's webhooks (as README says)
// records the withdrawal for the new brand and pushes it there.
func TestNewBrandAllBrandsWithdrawalByReplay(t *testing.T) {
	t.Parallel()
	page := func(c *configT) {
		for _, s := range c.Sources {
			if s.Name == "signup-form" {
				p := s
				p.Name, p.WithdrawalScope = "unsubscribe-all", "all_brands"
				f := *s.Fields
				f.Consents = []config.ConsentField{{Field: "email_pref", Channel: "email", Purpose: "marketing", Withdrawal: true}}
				p.Fields = &f
				c.Sources = append(c.Sources, p)
				return
			}
		}
	}
	e1 := start(t, envOptions{mutate: page})
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	body := fmt.Sprintf(`{"email":"hugo.allbrands@example.com","submitted_at":%q,"email_pref":false}`, at.Format(time.RFC3339))
	h := http.Header{"Content-Type": {"application/json"}, "X-Signature": {formSig([]byte(body))}}
	if r := e1.do("POST", "/webhooks/unsubscribe-all", "", h, []byte(body)); r.Status != 202 {
		t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
	e1.waitDrained()
	e1.StopWorker()
	e2 := start(t, envOptions{on: e1, noWorker: true, mutate: func(c *configT) {
		page(c)
		c.Destinations = append(c.Destinations, config.Destination{Name: "sendgrid-other", Kind: "sendgrid", Brand: "other-brand",
			Channels: []string{"email"}, Purposes: []string{"marketing"}, BaseURL: c.Destinations[0].BaseURL, APIKey: c.Destinations[0].APIKey, Timeout: 10 * time.Second})
	}})
	reports, err := e2.App.CatchUp().Run(context.Background(), worker.CatchUpOptions{Destination: "sendgrid-other"})
	if err != nil || len(reports) != 1 || reports[0].Queued != 0 {
		t.Fatalf("catch-up of the new brand: %+v, %v; want nothing to queue (no ledger row for the brand)", reports, err)
	}
	e2.StartWorker()
	if _, err := e2.App.Service.Replay(context.Background(), service.ReplayRequest{From: at.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e2.waitFor("the replayed all-brands withdrawal pushed for the new brand", func() bool {
		return slices.Equal(e2.pushedTo("sendgrid-other"), []string{"hugo.allbrands@example.com"})
	})
	if got := e2.eligible("hugo.allbrands@example.com", "email", "other-brand", "marketing"); got["reason"] != "withdrawn" {
		t.Errorf("new brand after the replay: %v, want withdrawn", got)
	}
	if got := e2.rowsOf("sendgrid-acme"); len(got) != 1 {
		t.Errorf("sendgrid-acme after the replay: %v, want its one row", got)
	}
}
