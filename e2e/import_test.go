package e2e

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/backfill"
	"github.com/consentsync/consentsync/internal/sandbox"
)

// importer is a backfill against the running env, waiting for its worker.
func (e *env) importer() *backfill.Importer {
	return &backfill.Importer{Store: e.App.Store, Queue: e.App.Enqueuer, Wait: 30 * time.Second, Poll: 50 * time.Millisecond}
}

// TestImportCSV: `consentsync import csv` end to end. A dry run reports
// the rows and writes nothing; the import records good rows through the
// worker (withdrawals pushed to every destination covering them, a grant
// without proof answered with quality unknown) and reports every bad row
// with its line number; a re-run imports nothing twice.
func TestImportCSV(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{})
	ctx := context.Background()
	const data = "\uFEFFEmail Address,Status,Changed,wording_version\r\n" +
		"Old.Unsub@Example.org,unsubscribed,2021-06-01 08:00:00,\r\n" + // 2
		"not-an-address,unsubscribed,2021-06-01 08:00:00,\r\n" + // 3
		"\r\n" +
		"imported.grant@example.org,subscribed,2026-01-15T09:30:00Z,v3\r\n" + // 5
		"second.unsub@example.org,opted_out,1622534400,\r\n" + // 6
		"who@example.org,maybe,2021-06-01,\r\n" // 7
	opts := func(dry bool, rejects *[]string) backfill.CSVOptions {
		return backfill.CSVOptions{
			Source: "crm-export", Columns: backfill.Columns{backfill.FieldEmail: "Email Address", backfill.FieldOccurredAt: "Changed"},
			Defaults: backfill.Defaults{Brand: "acme"}, Brands: e.App.Config.Brands(), Region: "FR", ChunkRows: 2, DryRun: dry,
			Reject: func(line int, reason string) { *rejects = append(*rejects, strconv.Itoa(line)+": "+reason) },
		}
	}
	wantRejects := `3: bad email|7: unknown status "maybe"`

	var dryRejects []string
	dry, err := e.importer().CSV(ctx, strings.NewReader(data), opts(true, &dryRejects))
	if err != nil {
		t.Fatal(err)
	}
	if dry.Items != 5 || dry.Rejected != 2 || dry.Withdrawals != 2 || dry.Grants != 1 || dry.GrantsWithoutProof != 1 || dry.InboxRows != 2 ||
		dry.WouldChange != 3 || dry.AlreadySo != 0 {
		t.Errorf("dry run summary: %+v", dry)
	}
	if got := strings.Join(dryRejects, "|"); got != wantRejects {
		t.Errorf("dry run rejections %q, want %q", got, wantRejects)
	}
	if n := e.count(`SELECT count(*) FROM inbound_events`) + e.count(`SELECT count(*) FROM consent_events`) + e.count(`SELECT count(*) FROM import_runs`); n != 0 {
		t.Fatalf("dry run wrote %d rows", n)
	}

	var rejects []string
	s, err := e.importer().CSV(ctx, strings.NewReader(data), opts(false, &rejects))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rejects, "|"); got != wantRejects {
		t.Errorf("rejections %q, want %q", got, wantRejects)
	}
	if s.InboxRows != 2 || s.DuplicatePages != 0 || s.Applied != 3 || s.Processed != 2 || s.Unprocessed != 0 || s.Rejected != 2 {
		t.Errorf("summary: %+v", s)
	}
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE kind = 'import' AND source = 'crm-export'`); n != 2 {
		t.Errorf("%d import inbox rows, want 2 (chunks of 2)", n)
	}
	e.waitDrained()
	got := e.ledger("crm-export")
	want := []string{
		"old.unsub@example.org email acme marketing withdrawn 2021-06-01T08:00:00Z",
		"imported.grant@example.org email acme marketing granted 2026-01-15T09:30:00Z",
		"second.unsub@example.org email acme marketing withdrawn 2021-06-01T08:00:00Z",
	}
	if !sameSet(got, want) {
		t.Errorf("ledger %q, want %q", got, want)
	}
	var ev string
	if err := e.App.Store.DB.Get(&ev, `SELECT evidence->>'imported' FROM consent_events WHERE source = 'crm-export' LIMIT 1`); err != nil ||
		!strings.HasPrefix(ev, "imported from crm-export at ") {
		t.Errorf("evidence.imported = %q, %v", ev, err)
	}
	// Every destination covering acme email marketing got both withdrawals.
	e.waitFor("withdrawals pushed to SendGrid", func() bool {
		return e.Sandbox.SendGrid().IsSuppressed("old.unsub@example.org") && e.Sandbox.SendGrid().IsSuppressed("second.unsub@example.org")
	})
	if n := e.count(`SELECT count(DISTINCT destination) FROM suppression_outbox o JOIN subjects s ON s.id = o.subject_id
		WHERE s.email = 'old.unsub@example.org'`); n != len(e.App.Config.Destinations) {
		t.Errorf("withdrawal queued for %d destinations, want every one (%d)", n, len(e.App.Config.Destinations))
	}
	a, err := e.App.Service.Eligibility(ctx, "imported.grant@example.org", consent.Question{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Allowed || a.Quality != consent.Unknown || !strings.Contains(a.Detail, consent.ReasonImported) {
		t.Errorf("eligibility of an imported grant without proof: %+v", a)
	}
	events := e.count(`SELECT count(*) FROM consent_events`)
	outbox := e.count(`SELECT count(*) FROM suppression_outbox`)

	// Re-run: nothing imported twice.
	again, err := e.importer().CSV(ctx, strings.NewReader(data), opts(false, new([]string)))
	if err != nil {
		t.Fatal(err)
	}
	if again.InboxRows != 0 || again.DuplicatePages != 2 || again.Applied != 0 {
		t.Errorf("re-run summary: %+v", again)
	}
	// A dry run with other chunk boundaries: a new chunk, but every row is
	// the current state already.
	od := opts(true, new([]string))
	od.ChunkRows = 3
	if d2, err := e.importer().CSV(ctx, strings.NewReader(data), od); err != nil || d2.InboxRows != 1 || d2.DuplicatePages != 0 ||
		d2.WouldChange != 0 || d2.AlreadySo != 3 {
		t.Errorf("dry run after the import: %+v %v", d2, err)
	}
	// Re-run with other chunk boundaries: new inbox rows, but every signal
	// is a ledger duplicate.
	o := opts(false, new([]string))
	o.ChunkRows = 3
	shifted, err := e.importer().CSV(ctx, strings.NewReader(data), o)
	if err != nil {
		t.Fatal(err)
	}
	if shifted.Applied != 0 || shifted.Duplicates != 3 {
		t.Errorf("re-run in other chunks: %+v", shifted)
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM consent_events`); n != events {
		t.Errorf("re-runs recorded %d ledger rows more", n-events)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox`); n != outbox {
		t.Errorf("re-runs queued %d suppressions more", n-outbox)
	}
}

// TestImportProvider: `consentsync import provider` end to end. Mailchimp
// holds a member unsubscribed and one cleaned before consentsync existed;
// the import is interrupted after its first page and resumed from the
// persisted cursor; both become withdrawals dated by Mailchimp, pushed to
// SendGrid and never back to Mailchimp; a re-run imports nothing twice.
// SendGrid's import waits out a 429 with X-RateLimit-Reset.
func TestImportProvider(t *testing.T) {
	t.Parallel()
	unsubAt := time.Date(2019, 5, 6, 7, 8, 9, 0, time.UTC)
	cleanedAt := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	e := start(t, envOptions{sandbox: []sandbox.Option{
		sandbox.WithMailchimpMemberAt("a6b5da1054", "Early.Leaver@Example.net", "unsubscribed", unsubAt),
		sandbox.WithMailchimpMemberAt("a6b5da1054", "bounced@example.net", "cleaned", cleanedAt),
		sandbox.WithMailchimpMember("a6b5da1054", "still.here@example.net", "subscribed"),
		sandbox.WithSendGridSuppressedAt("sg.only@example.net", unsubAt),
	}})
	ctx := context.Background()
	mc, _ := e.App.Config.Destination("mailchimp-acme")
	lister := e.App.Worker.Destinations["mailchimp-acme"].(connectors.Lister)

	// Interrupted after one page: the cursor is kept, the run left open.
	first, err := e.importer().Provider(ctx, lister, backfill.ProviderOptions{Destination: mc, MaxPages: 1})
	if err != nil {
		t.Fatal(err)
	}
	var cursor, status string
	if err := e.App.Store.DB.QueryRow(`SELECT cursor, status FROM import_runs WHERE name = 'mailchimp-acme'`).Scan(&cursor, &status); err != nil {
		t.Fatal(err)
	}
	if first.Pages != 1 || first.Withdrawals != 1 || cursor != "cleaned:0" || status != "running" {
		t.Fatalf("after one page: %+v, cursor %q, status %s", first, cursor, status)
	}
	e.Sandbox.ResetCalls()
	rest, err := e.importer().Provider(ctx, lister, backfill.ProviderOptions{Destination: mc})
	if err != nil {
		t.Fatal(err)
	}
	if !rest.Resumed || rest.RunID != first.RunID || rest.Pages != 2 || rest.Withdrawals != 1 || rest.Applied != 1 {
		t.Errorf("resumed run: %+v", rest)
	}
	if calls := e.Sandbox.Calls(sandbox.Mailchimp); len(calls) == 0 || !strings.Contains(calls[0].RawQuery, "status=cleaned") {
		t.Errorf("the resumed run did not start at the saved cursor: %+v", calls)
	}
	e.waitDrained()
	got := e.ledger("mailchimp-acme")
	want := []string{
		"early.leaver@example.net email acme marketing withdrawn 2019-05-06T07:08:09Z",
		"bounced@example.net email acme marketing withdrawn 2020-02-03T04:05:06Z",
	}
	if !sameSet(got, want) {
		t.Errorf("ledger %q, want %q", got, want)
	}
	var ev, event string
	if err := e.App.Store.DB.QueryRow(`SELECT e.evidence->>'imported', e.evidence->>'event' FROM consent_events e JOIN subjects s ON s.id = e.subject_id
		WHERE s.email = 'early.leaver@example.net'`).Scan(&ev, &event); err != nil || !strings.HasPrefix(ev, "imported from mailchimp-acme at ") || event != "unsubscribed" {
		t.Errorf("evidence %q %q %v", ev, event, err)
	}
	// Reaches the other destinations, never its own (echo rule).
	e.waitFor("the Mailchimp unsubscribe suppressed in SendGrid", func() bool {
		return e.Sandbox.SendGrid().IsSuppressed("Early.Leaver@Example.net") && e.Sandbox.SendGrid().IsSuppressed("bounced@example.net")
	})
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'mailchimp-acme'`); n != 0 {
		t.Errorf("%d suppressions queued back to Mailchimp", n)
	}
	for _, c := range e.Sandbox.Calls(sandbox.Mailchimp) {
		if c.Method == "POST" {
			t.Errorf("pushed back to Mailchimp: %s %s", c.Method, c.Path)
		}
	}
	if st := e.Sandbox.MailchimpStatus("a6b5da1054", "still.here@example.net"); st != "subscribed" {
		t.Errorf("a subscribed member became %q", st)
	}

	// Re-run: every page is a duplicate, nothing recorded or pushed again.
	events, outbox := e.count(`SELECT count(*) FROM consent_events`), e.count(`SELECT count(*) FROM suppression_outbox`)
	again, err := e.importer().Provider(ctx, lister, backfill.ProviderOptions{Destination: mc})
	if err != nil {
		t.Fatal(err)
	}
	if again.Resumed || again.InboxRows != 0 || again.DuplicatePages != 2 {
		t.Errorf("re-run: %+v", again)
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM consent_events`); n != events {
		t.Errorf("re-run recorded %d ledger rows", n-events)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox`); n != outbox {
		t.Errorf("re-run queued %d suppressions", n-outbox)
	}

	// SendGrid: a 429 whose reset is far (connectors.RetryAfterError, see
	// the sendgrid contract tests) is waited out by the importer, which
	// then asks for the same page again.
	sg, _ := e.App.Config.Destination("sendgrid-acme")
	var waited []time.Duration
	busy := &busyOnce{Lister: e.App.Worker.Destinations["sendgrid-acme"].(connectors.Lister), delay: time.Hour}
	s, err := e.importer().Provider(ctx, busy, backfill.ProviderOptions{
		Destination: sg, Sleep: func(_ context.Context, d time.Duration) error { waited = append(waited, d); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	// SendGrid lists sg.only and the two Mailchimp unsubscribes we pushed
	// there: those two are our echoes, not new withdrawals.
	if len(waited) != 1 || waited[0] != 10*time.Minute || strings.Join(busy.cursors, ",") != "," ||
		s.Items != 3 || s.Withdrawals != 1 || s.Echoes != 2 || s.Applied != 1 {
		t.Errorf("SendGrid import: waited %v, %+v", waited, s)
	}
	e.waitFor("the SendGrid suppression reaches Mailchimp", func() bool {
		return e.Sandbox.MailchimpStatus("a6b5da1054", "sg.only@example.net") == "unsubscribed"
	})
}

// busyOnce answers its first List with the *RetryAfterError a 429 gives,
// then lists for real; it records the cursors asked for.
type busyOnce struct {
	connectors.Lister
	delay   time.Duration
	cursors []string
}

func (b *busyOnce) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	b.cursors = append(b.cursors, cursor)
	if len(b.cursors) == 1 {
		return nil, "", &connectors.RetryAfterError{Delay: b.delay, Err: errors.New("HTTP 429")}
	}
	return b.Lister.List(ctx, cursor)
}
