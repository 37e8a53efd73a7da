package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/sandbox"
)

// honouredCount is how many withdrawals the withdrawal-honoured histogram
// has observed.
func (e *env) honouredCount() uint64 {
	e.t.Helper()
	mfs, err := e.App.Metrics.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "consentsync_withdrawal_honoured_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

type receiptView struct {
	Destination string     `json:"destination"`
	SentAt      *time.Time `json:"sent_at"`
	VerifiedAt  *time.Time `json:"verified_at"`
	Mismatches  int        `json:"mismatches"`
	Checks      []struct {
		Kind string `json:"kind"`
	} `json:"checks"`
}

// suppressionsOf is GET /v1/subjects/{email}'s suppressions.
func (e *env) suppressionsOf(email string) map[string]receiptView {
	e.t.Helper()
	r := e.admin("GET", "/v1/subjects/"+email)
	if r.Status != 200 {
		e.t.Fatalf("subject: HTTP %d: %s", r.Status, r.Body)
	}
	var v struct {
		Suppressions []receiptView `json:"suppressions"`
	}
	if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]receiptView{}
	for _, s := range v.Suppressions {
		out[s.Destination] = s
	}
	return out
}

func kinds(r receiptView) string {
	var k []string
	for _, c := range r.Checks {
		k = append(k, c.Kind)
	}
	return strings.Join(k, ",")
}

// A pushed suppression is read back: verified where the provider holds
// it; where it does not (lost between push and read-back), pushed again
// and then verified. The withdrawal counts as honoured once every
// destination is verified, and is overdue until then.
func TestReadBackVerifiesAndRepushesMismatch(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: func(cfg *configT) { cfg.Worker.VerifyAfter = 1500 * time.Millisecond }})
	const addr = "verify@example.com"
	e.withdrawByPostmark(addr)
	e.waitFor("the pushes, recorded", func() bool {
		return e.Sandbox.SendGrid().IsSuppressed(addr) && e.Sandbox.MailchimpStatus("a6b5da1054", addr) == "unsubscribed" &&
			e.count(`SELECT count(*) FROM suppression_outbox WHERE status = 'sent'`) == 2
	})
	// Not read back yet: overdue for a deadline that has passed.
	od, err := e.App.Store.ListOverdue(context.Background(), time.Now().Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(od) != 1 || !strings.Contains(strings.Join(od[0].Destinations, ";"), "not verified") {
		t.Fatalf("overdue before read-back = %+v", od)
	}
	// SendGrid loses it before the read-back.
	if !e.Sandbox.SendGrid().Forget(addr) {
		t.Fatal("the fake did not hold the address")
	}
	e.waitFor("both verified", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE verified_at IS NOT NULL`) == 2
	})
	if !e.Sandbox.SendGrid().IsSuppressed(addr) {
		t.Fatal("the mismatch was not pushed again")
	}
	got := e.suppressionsOf(addr)
	sg, mc := got["sendgrid-acme"], got["mailchimp-acme"]
	if sg.VerifiedAt == nil || sg.SentAt == nil || sg.Mismatches != 1 || kinds(sg) != "mismatch,verified" {
		t.Errorf("sendgrid view = %+v (checks %s), want verified after one mismatch", sg, kinds(sg))
	}
	if mc.VerifiedAt == nil || mc.Mismatches != 0 || kinds(mc) != "verified" {
		t.Errorf("mailchimp view = %+v (checks %s), want verified", mc, kinds(mc))
	}
	if n := e.honouredCount(); n != 1 {
		t.Errorf("withdrawals honoured = %d, want 1", n)
	}
	if od, _ := e.App.Store.ListOverdue(context.Background(), time.Now().Add(time.Hour), 10); len(od) != 0 {
		t.Errorf("overdue after verification = %+v", od)
	}
}

// A suppression the provider drops later (re-subscribed in its UI) is found
// by a drift check; without -repair it is only reported, with it pushed
// again; each finding is a line in the subject's history.
func TestDriftFoundAndRepaired(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: func(cfg *configT) { cfg.Worker.VerifyAfter = 200 * time.Millisecond }})
	for _, a := range []string{"drift1@example.com", "drift2@example.com"} {
		e.withdrawByPostmark(a)
	}
	e.waitFor("all verified", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE verified_at IS NOT NULL`) == 4
	})
	e.Sandbox.SendGrid().Forget("drift2@example.com")
	ctx := context.Background()
	reps, err := e.App.Worker.Drift(ctx, "", false, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{"sendgrid-acme": {2, 1}, "mailchimp-acme": {2, 0}}
	for _, r := range reps {
		if w, ok := want[r.Destination]; !ok || r.Checked != w[0] || r.Missing != w[1] || r.Repaired != 0 {
			t.Errorf("drift report %+v, want checked/missing %v", r, w)
		}
	}
	if e.Sandbox.SendGrid().IsSuppressed("drift2@example.com") {
		t.Fatal("a drift check without repair pushed")
	}
	reps, err = e.App.Worker.Drift(ctx, "sendgrid-acme", true, 0, nil)
	if err != nil || len(reps) != 1 || reps[0].Missing != 1 || reps[0].Repaired != 1 {
		t.Fatalf("drift -repair = %+v, %v", reps, err)
	}
	e.waitFor("the repair push", func() bool { return e.Sandbox.SendGrid().IsSuppressed("drift2@example.com") })
	// Two drift lines (the report and the repair), one mismatch: only
	// the repair pushed.
	if sg := e.suppressionsOf("drift2@example.com")["sendgrid-acme"]; sg.Mismatches != 1 || !strings.HasPrefix(kinds(sg), "verified,drift,drift") {
		t.Errorf("history of the drifted suppression = %+v (checks %s)", sg, kinds(sg))
	}
	if sg := e.suppressionsOf("drift1@example.com")["sendgrid-acme"]; sg.Mismatches != 0 || kinds(sg) != "verified" {
		t.Errorf("the suppression that held = %+v (checks %s)", sg, kinds(sg))
	}
	if _, err := e.App.Worker.Drift(ctx, "nope", false, 0, nil); err == nil {
		t.Error("drift of an unknown destination: no error")
	}
}

// A read-back the provider cannot answer (503) neither verifies nor
// re-pushes: it is asked again later.
func TestReadBackFailureRetried(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: func(cfg *configT) { cfg.Worker.VerifyAfter = 300 * time.Millisecond }})
	const addr = "readback503@example.com"
	e.withdrawByPostmark(addr)
	e.waitFor("the push", func() bool { return e.Sandbox.SendGrid().IsSuppressed(addr) })
	e.Sandbox.Script(sandbox.SendGrid, sandbox.Unavailable(), sandbox.Unavailable())
	e.waitFor("verified after the failures", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'sendgrid-acme' AND verified_at IS NOT NULL`) == 1
	})
	if sg := e.suppressionsOf(addr)["sendgrid-acme"]; sg.Mismatches != 0 || kinds(sg) != "verified" {
		t.Errorf("sendgrid view = %+v (checks %s): a failed read-back must not count as a mismatch", sg, kinds(sg))
	}
	posts := 0
	for _, c := range e.Sandbox.Calls(sandbox.SendGrid) {
		if c.Method == "POST" {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("SendGrid POSTs = %d, want 1 (no re-push)", posts)
	}
}

// With lift: on_new_opt_in, a valid express opt-in made after the
// withdrawal lifts the suppression where the provider allows it (SendGrid:
// deleted); where it refuses (Mailchimp's compliance state), the subject
// view tells support the person must opt in through the provider's form.
func TestLiftOnNewOptIn(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: func(cfg *configT) {
		for i := range cfg.Destinations {
			cfg.Destinations[i].Lift = "on_new_opt_in"
		}
		cfg.Worker.VerifyAfter = 200 * time.Millisecond
	}})
	const addr = "lift@example.com"
	e.withdrawByPostmark(addr) // occurred 2025-11-20
	e.waitFor("the suppression", func() bool {
		return e.Sandbox.SendGrid().IsSuppressed(addr) && e.Sandbox.MailchimpStatus("a6b5da1054", addr) == "unsubscribed"
	})
	// A pre-ticked box is no express opt-in: nothing is lifted.
	recent := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	e.submit(map[string]any{"email": addr, "submitted_at": recent, "newsletter": "on", "newsletter_pre_ticked": "true", "consent_version": "v3"})
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE action = 'lift'`); n != 0 {
		t.Fatalf("%d lifts queued for a pre-ticked box", n)
	}
	e.submit(map[string]any{"email": addr, "submitted_at": time.Now().UTC().Format(time.RFC3339), "newsletter": "on", "consent_version": "v3"})
	e.waitFor("the lifts to finish", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE action = 'lift' AND status <> 'pending'`) == 2
	})
	if e.Sandbox.SendGrid().IsSuppressed(addr) {
		t.Error("SendGrid still suppresses the address after the lift")
	}
	if st := e.Sandbox.MailchimpStatus("a6b5da1054", addr); st != "unsubscribed" {
		t.Errorf("Mailchimp status = %q: a lift Mailchimp refuses must change nothing", st)
	}
	r := e.admin("GET", "/v1/subjects/"+addr)
	var v struct {
		Notices []string `json:"notices"`
	}
	if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Notices) != 1 || !strings.HasPrefix(v.Notices[0], "mailchimp-acme:") || !strings.Contains(v.Notices[0], "provider's own form") {
		t.Errorf("notices = %q, want one for mailchimp-acme", v.Notices)
	}
	// A lift is never read back as a missing suppression, nor drifted.
	reps, err := e.App.Worker.Drift(context.Background(), "sendgrid-acme", true, 0, nil)
	if err != nil || len(reps) != 1 || reps[0].Checked != 0 {
		t.Errorf("drift after the lift = %+v, %v: the lifted suppression must not be checked", reps, err)
	}
}
