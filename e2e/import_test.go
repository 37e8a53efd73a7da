package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/backfill"
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
	if dry.Items != 5 || dry.Rejected != 2 || dry.Withdrawals != 2 || dry.Grants != 1 || dry.GrantsWithoutProof != 1 || dry.InboxRows != 2 {
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
