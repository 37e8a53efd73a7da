package demo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/imported"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
)

// report checks the outcome and prints it. It returns an error listing
// every problem found.
func report(ctx context.Context, out io.Writer, a *app.App, sb *sandbox.Sandbox, prior backfilled, results []posted, pg pagesOutcome, drained bool, took time.Duration) error {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(out, "consentsync demo: %d real-format webhooks, signed as their senders sign them\n\n", len(results))
	problems := reportBackfill(ctx, out, a, sb, prior)

	fmt.Fprintln(tw, "WEBHOOK\tSOURCE\tHTTP\tSIGNALS IN LEDGER\tNOTE")
	for _, r := range results {
		src := strings.TrimPrefix(r.fx.Request.Path, "/webhooks/")
		httpCol := fmt.Sprintf("%d", r.status)
		switch {
		case r.err != "":
			problems = append(problems, fmt.Sprintf("%s: %s", r.fx.Name, r.err))
			httpCol = "error"
		case r.status != r.fx.Expect.Status:
			problems = append(problems, fmt.Sprintf("%s: HTTP %d, want %d (%s)", r.fx.Name, r.status, r.fx.Expect.Status, strings.TrimSpace(r.body)))
		case r.fx.Expect.ResponseContains != "" && !strings.Contains(r.body, r.fx.Expect.ResponseContains):
			problems = append(problems, fmt.Sprintf("%s: answer lacks %q", r.fx.Name, r.fx.Expect.ResponseContains))
		}
		found := 0
		for _, s := range r.fx.Expect.Signals {
			var n int
			err := a.Store.DB.GetContext(ctx, &n, `SELECT count(*) FROM consent_events e JOIN subjects s ON s.id = e.subject_id
				WHERE s.email = $1 AND e.channel = $2 AND e.brand = $3 AND e.purpose = $4 AND e.status = $5
				  AND e.occurred_at = $6 AND e.source = $7`,
				s.Email, s.Channel, s.Brand, s.Purpose, s.Status, s.OccurredAt, src)
			if err == nil && n == 1 {
				found++
			} else {
				problems = append(problems, fmt.Sprintf("%s: expected signal not in ledger: %s", r.fx.Name, s.Key()))
			}
		}
		note := ""
		if n := len(r.fx.Expect.Undeliverable); n > 0 {
			note = fmt.Sprintf("%d undeliverable (not a consent change)", n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\n", r.fx.Name, src, httpCol, found, len(r.fx.Expect.Signals), note)
	}
	_ = tw.Flush()

	people, err := a.Service.Directory(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nCONSENT RECORD (current state per person, channel, brand, purpose; a person is every address and number seen for them)")
	fmt.Fprintln(tw, "SUBJECT\tCHANNEL\tBRAND\tPURPOSE\tSTATUS\tSINCE (UTC)\tSOURCE\tVALID")
	for _, p := range people {
		for _, c := range p.Consents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\n", personName(p), c.Channel, c.Brand, c.Purpose, c.Status,
				c.OccurredAt.UTC().Format("2006-01-02 15:04:05.00"), c.Source, c.Valid)
		}
	}
	_ = tw.Flush()

	if err := eligibilityTable(ctx, out, tw, a, people); err != nil {
		return err
	}

	rows, err := a.Store.ListOutbox(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nSUPPRESSIONS PUSHED (withdrawals sent to every provider that could still mail the person)")
	fmt.Fprintln(tw, "ADDRESS\tDESTINATION\tREASON\tPUSH\tATTEMPTS\tREAD BACK\tPROVIDER RECEIPT")
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Email.String < rows[j].Email.String })
	for _, r := range rows {
		receipt := r.Receipt.String
		if len(receipt) > 60 {
			receipt = receipt[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Email.String, r.Destination, r.Reason.String, r.Status, r.Attempts, readBack(a, r), oneLine(receipt))
		if r.Status != "sent" {
			problems = append(problems, fmt.Sprintf("suppression %d to %s is %s: %s", r.ID, r.Destination, r.Status, r.LastError.String))
		}
	}
	_ = tw.Flush()

	problems = append(problems, printPages(ctx, out, a, pg)...)

	snap := sb.Snapshot()
	fmt.Fprintln(out, "\nPROVIDER SANDBOX STATE")
	fmt.Fprintf(out, "  SendGrid global suppressions: %s\n", strings.Join(snap.SendGridSuppressed, ", "))
	lists := make([]string, 0, len(snap.MailchimpMembers))
	for id := range snap.MailchimpMembers {
		lists = append(lists, id)
	}
	sort.Strings(lists)
	for _, id := range lists {
		var ms []string
		for _, m := range snap.MailchimpMembers[id] {
			ms = append(ms, m.EmailAddress+" "+m.Status)
		}
		fmt.Fprintf(out, "  Mailchimp list %s: %s\n", id, strings.Join(ms, ", "))
	}

	inbox, err := a.Store.InboxCounts(ctx)
	if err != nil {
		return err
	}
	if !drained {
		problems = append(problems, "the queues did not drain in time")
	}
	if inbox["failed"] > 0 || inbox["received"] > 0 {
		problems = append(problems, fmt.Sprintf("inbox: %d failed, %d unprocessed", inbox["failed"], inbox["received"]))
	}
	// The inbox holds every request consentsync stored, not only the
	// webhooks above: each page a backfill read from a provider, and what
	// people sent through the public pages.
	var backfillPages int64
	if err := a.Store.DB.GetContext(ctx, &backfillPages, `SELECT count(*) FROM inbound_events WHERE kind = $1`, imported.Kind); err != nil {
		return fmt.Errorf("demo: count the inbox's backfill pages: %w", err)
	}
	total := inbox["processed"] + inbox["failed"] + inbox["received"]
	fmt.Fprintf(out, "\ninbox: %d requests stored (%d webhooks above, %d backfill pages, %d from the public pages): %d processed, %d failed; outbox: %d suppressions; took %s\n",
		total, len(results), backfillPages, total-int64(len(results))-backfillPages, inbox["processed"], inbox["failed"], len(rows), took.Round(time.Millisecond))
	if len(problems) > 0 {
		fmt.Fprintln(out, "\nPROBLEMS")
		for _, p := range problems {
			fmt.Fprintln(out, "  - "+p)
		}
		return fmt.Errorf("%d problem(s)", len(problems))
	}
	fmt.Fprintln(out, "OK: every webhook stored and processed, every expected signal in the ledger, every suppression pushed, every prior suppression imported and pushed everywhere else.")
	return nil
}

// readBack says what the destination answered when asked whether it holds
// the suppression.
func readBack(a *app.App, r store.OutboxRow) string {
	if _, ok := a.Worker.Destinations[r.Destination].(connectors.Checker); !ok {
		return "cannot be read back"
	}
	switch {
	case r.VerifiedAt.Valid && r.Mismatches > 0:
		return fmt.Sprintf("verified (after %d mismatch)", r.Mismatches)
	case r.VerifiedAt.Valid:
		return "verified"
	case r.Status == store.OutboxSent:
		return "provider could not say"
	}
	return "-"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// personName lists a person's addresses and numbers.
func personName(p *service.SubjectView) string {
	names := make([]string, len(p.Identities))
	for i, id := range p.Identities {
		names[i] = id.Email + id.Phone
	}
	return strings.Join(names, " = ")
}

// eligibilityTable asks, for every person at once (the batch path), may
// acme send marketing and partner offers by email, and why.
func eligibilityTable(ctx context.Context, out io.Writer, tw *tabwriter.Writer, a *app.App, people []*service.SubjectView) error {
	ids := make([]string, 0, len(people))
	for _, p := range people {
		ids = append(ids, p.Identities[0].Email+p.Identities[0].Phone)
	}
	fmt.Fprintln(out, "\nMAY ACME SEND? (eligibility now, with its legal basis)")
	fmt.Fprintln(tw, "SUBJECT\tEMAIL MARKETING\tBASIS / REASON\tPARTNER OFFERS\tBASIS / REASON")
	answers := map[consent.Purpose][]service.BatchResult{}
	for _, pu := range service.Purposes {
		if len(ids) == 0 {
			break
		}
		q, err := a.Service.Question(string(consent.ChannelEmail), "acme", string(pu))
		if err != nil {
			return err
		}
		if answers[pu], err = a.Service.EligibilityBatch(ctx, ids, q); err != nil {
			return err
		}
	}
	word := func(x service.BatchResult) (string, string) {
		if x.Allowed {
			return "yes", string(x.Basis)
		}
		return "no", x.Reason
	}
	for i, p := range people {
		m, mb := word(answers[consent.PurposeMarketing][i])
		pa, pb := word(answers[consent.PurposePartners][i])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", personName(p), m, mb, pa, pb)
	}
	return tw.Flush()
}
