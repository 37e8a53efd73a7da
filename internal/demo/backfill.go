package demo

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/internal/backfill"
	"github.com/consentsync/consentsync/internal/sandbox"
)

// Day one: the sandbox's providers already hold unsubscribes made before
// consentsync existed. The demo imports them first (`consentsync import
// provider`), so that a person who left through Mailchimp years ago is
// suppressed in SendGrid and every other destination after the first run.
const demoList = "a6b5da1054"

// priorSuppression is one unsubscribe a sandbox provider holds before the
// demo starts.
type priorSuppression struct {
	// Destination is the destination whose provider holds it.
	Destination string
	Email       string
	// Status is the Mailchimp member status.
	Status string
	At     time.Time
}

var priorSuppressions = []priorSuppression{
	{Destination: "mailchimp-acme", Email: "Early.Leaver@example.net", Status: "unsubscribed", At: time.Date(2021, 3, 4, 9, 15, 0, 0, time.UTC)},
	{Destination: "mailchimp-acme", Email: "bounced.2022@example.net", Status: "cleaned", At: time.Date(2022, 11, 20, 17, 2, 0, 0, time.UTC)},
	{Destination: "sendgrid-acme", Email: "sendgrid.2020@example.net", At: time.Date(2020, 6, 30, 12, 0, 0, 0, time.UTC)},
	{Destination: "brevo-acme", Email: "brevo.2019@example.net", At: time.Date(2019, 2, 3, 4, 5, 6, 0, time.UTC)},
	{Destination: "postmark-acme", Email: "postmark.2022@example.net", At: time.Date(2022, 8, 9, 10, 11, 12, 0, time.UTC)},
	{Destination: "mailgun-acme", Email: "mailgun.2018@example.net", At: time.Date(2018, 12, 24, 18, 0, 0, 0, time.UTC)},
	{Destination: "klaviyo-acme", Email: "klaviyo.2023@example.net", At: time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)},
	{Destination: "ses-acme", Email: "ses.2024@example.net", At: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
	// HubSpot and Salesforce keep no date of an opt-out: dated by the import.
	{Destination: "hubspot-acme", Email: "hubspot.optout@example.net"},
	{Destination: "salesforce-acme", Email: "salesforce.optout@example.net"},
}

// seedOthers puts the prior suppressions of the other destinations' fakes
// in place.
func seedOthers(sb *sandbox.Sandbox) {
	o := sb.Others()
	for _, p := range priorSuppressions {
		switch p.Destination {
		case "brevo-acme":
			o.Brevo.Blocklist(p.Email, p.At)
		case "postmark-acme":
			o.Postmark.SuppressAt("broadcast", "ManualSuppression", p.Email, p.At)
		case "mailgun-acme":
			o.Mailgun.UnsubscribeAt(sandbox.DefaultMailgunDomain, p.Email, p.At)
		case "klaviyo-acme":
			o.Klaviyo.SetSuppressed(p.Email, "USER_SUPPRESSED", p.At)
		case "ses-acme":
			o.SES.AddContact(sandbox.DefaultSESContactList, p.Email, true, nil)
			o.SES.SetUpdated(sandbox.DefaultSESContactList, p.Email, p.At)
		case "hubspot-acme":
			o.HubSpot.UnsubscribedBySelf(p.Email)
		case "salesforce-acme":
			o.Salesforce.SetOptedOut(o.Salesforce.AddContact(p.Email), true)
		}
	}
}

// seedPriorSuppressions returns the sandbox options that put
// priorSuppressions in place.
func seedPriorSuppressions() []sandbox.Option {
	var opts []sandbox.Option
	for _, p := range priorSuppressions {
		switch p.Destination {
		case "mailchimp-acme":
			opts = append(opts, sandbox.WithMailchimpMemberAt(demoList, p.Email, p.Status, p.At))
		case "sendgrid-acme":
			opts = append(opts, sandbox.WithSendGridSuppressedAt(p.Email, p.At))
		}
	}
	return opts
}

// backfilled is what the demo's backfill did, for the report.
type backfilled struct {
	summaries []backfill.Summary
	err       error
}

// backfillSandbox imports every listable destination's suppressions,
// waiting for the worker to record them.
func backfillSandbox(ctx context.Context, a *app.App, wait time.Duration) backfilled {
	var b backfilled
	im := &backfill.Importer{Store: a.Store, Queue: a.Enqueuer, Wait: wait, Poll: 50 * time.Millisecond}
	for _, d := range a.Config.Destinations {
		l, ok := a.Worker.Destinations[d.Name].(connectors.Lister)
		if !ok {
			continue
		}
		s, err := im.Provider(ctx, l, backfill.ProviderOptions{Destination: d})
		b.summaries = append(b.summaries, s)
		if err != nil {
			b.err = fmt.Errorf("import provider %s: %w", d.Name, err)
			return b
		}
	}
	return b
}

// reportBackfill prints the backfill and checks that every prior
// unsubscribe reached the ledger and every other destination's provider
// holds it (SendGrid's global suppressions, Mailchimp's list) while its
// own was not pushed to. It returns the problems found.
func reportBackfill(ctx context.Context, out io.Writer, a *app.App, sb *sandbox.Sandbox, b backfilled) []string {
	var problems []string
	fmt.Fprintln(out, "BACKFILL (day one: suppressions the providers held before consentsync, `consentsync import provider`)")
	for _, s := range b.summaries {
		// Items give withdrawals per channel and purpose the destination
		// covers; each is recorded, already known, or older than the
		// state the person has (stale: kept in the ledger, nothing changed);
		// items that are our own earlier pushes read back are echoes.
		echoes := ""
		if s.Echoes > 0 {
			echoes = fmt.Sprintf(", %d our own pushes (echoes, left out)", s.Echoes)
		}
		fmt.Fprintf(out, "  %-16s %d pages, %d items (%d unreadable%s) -> %d withdrawals: %d recorded, %d already known, %d older than the state\n",
			s.Name, s.Pages, s.Items, s.Rejected, echoes, s.Withdrawals, s.Applied, s.Duplicates, s.Stale)
	}
	if b.err != nil {
		problems = append(problems, b.err.Error())
	}
	snap := sb.Snapshot()
	for _, p := range priorSuppressions {
		var n int
		_ = a.Store.DB.GetContext(ctx, &n, `SELECT count(*) FROM consent_events e JOIN subjects s ON s.id = e.subject_id
			WHERE s.email = lower($1) AND e.status = 'withdrawn' AND e.source = $2 AND e.purpose = 'marketing'
			  AND ($3::timestamptz IS NULL OR e.occurred_at = $3)`, p.Email, p.Destination, nullTime(p.At))
		var where []string
		if slices.ContainsFunc(snap.SendGridSuppressed, func(e string) bool { return strings.EqualFold(e, p.Email) }) {
			where = append(where, "SendGrid")
		}
		if st := sb.MailchimpStatus(demoList, p.Email); st == "unsubscribed" || st == "cleaned" {
			where = append(where, "Mailchimp "+st)
		}
		var pushed []string
		_ = a.Store.DB.SelectContext(ctx, &pushed, `SELECT DISTINCT o.destination FROM suppression_outbox o JOIN subjects s ON s.id = o.subject_id
			WHERE s.email = lower($1) AND o.status = 'sent' ORDER BY 1`, p.Email)
		since := "undated"
		if !p.At.IsZero() {
			since = "since " + p.At.Format("2006-01-02")
		}
		fmt.Fprintf(out, "  %s (%s %s): held by %s; pushed to %s\n", p.Email, p.Destination, since,
			strings.Join(where, ", "), strings.Join(pushed, ", "))
		switch {
		case n != 1:
			problems = append(problems, fmt.Sprintf("backfill: the %s withdrawal of %s is not in the ledger", p.Destination, p.Email))
		case len(where) < 2:
			problems = append(problems, fmt.Sprintf("backfill: %s is not suppressed at both SendGrid and Mailchimp", p.Email))
		case slices.Contains(pushed, p.Destination):
			problems = append(problems, fmt.Sprintf("backfill: %s was pushed back to %s, where it came from", p.Email, p.Destination))
		case len(pushed) != len(a.Config.Destinations)-1:
			problems = append(problems, fmt.Sprintf("backfill: %s reached %d of the %d other destinations", p.Email, len(pushed), len(a.Config.Destinations)-1))
		}
	}
	fmt.Fprintln(out)
	return problems
}

// nullTime is t, or NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
