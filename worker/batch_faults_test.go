package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// One signal of a batch of 100 that Postgres refuses half-way (a unique
// violation raised for its ledger row by a trigger the test installs: the
// batch's flush fails) must neither lose nor half-apply the other 99: the
// batch is rolled back and each row is reconciled again alone; the refused
// one is left to be retried, with nothing of it written.
func TestBatchOneRefusedRowOfHundred(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	if _, err := st.DB.Exec(`CREATE FUNCTION poison_fact() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'duplicate fact (injected)' USING ERRCODE = 'unique_violation'; END $$;
		CREATE TRIGGER poison_fact BEFORE INSERT ON consent_events FOR EACH ROW WHEN (NEW.source = 'poison') EXECUTE FUNCTION poison_fact()`); err != nil {
		t.Fatal(err)
	}
	ids := insertInbound(t, st, 100)
	const bad = 37
	p := map[int64]Prepared{}
	for i, id := range ids {
		s := sig(fmt.Sprintf("p%03d@example.com", i), consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "crm")
		if i == bad {
			s.Source = "poison"
		}
		p[id] = Prepare([]consent.Signal{s}, "FR", time.Now())
	}
	read := func(_ context.Context, in *store.Inbound) (Prepared, error) { return p[in.ID], nil }
	res, err := Reconciler{Store: st, Routes: testRoutes}.ProcessBatch(context.Background(), BatchClaim{Own: ids[0], Limit: 100}, read)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range res {
		if r.Err != nil {
			failed++
			if r.Inbound.ID != ids[bad] {
				t.Errorf("row %d failed: %v", r.Inbound.ID, r.Err)
			}
		}
	}
	if len(res) != 100 || failed != 1 {
		t.Fatalf("%d results, %d failed; want 100, 1", len(res), failed)
	}
	var processed, ledger, outbox, badLedger int
	for q, n := range map[string]*int{
		`SELECT count(*) FROM inbound_events WHERE status = 'processed'`:                                                  &processed,
		`SELECT count(*) FROM consent_events`:                                                                             &ledger,
		`SELECT count(*) FROM suppression_outbox`:                                                                         &outbox,
		`SELECT count(*) FROM consent_events e JOIN subjects s ON s.id = e.subject_id WHERE s.email = 'p037@example.com'`: &badLedger,
	} {
		if err := st.DB.Get(n, q); err != nil {
			t.Fatal(err)
		}
	}
	if processed != 99 || ledger != 99 || outbox != 99*2 || badLedger != 0 {
		t.Errorf("processed %d, ledger %d, outbox %d, ledger rows of the refused one %d; want 99, 99, 198, 0", processed, ledger, outbox, badLedger)
	}
	var status string
	var attempts int
	if err := st.DB.QueryRow(`SELECT status, attempts FROM inbound_events WHERE id = $1`, ids[bad]).Scan(&status, &attempts); err != nil {
		t.Fatal(err)
	}
	if status != "received" || attempts != 1 {
		t.Errorf("refused row: %s after %d attempts; want received (its task retries it), 1 attempt counted", status, attempts)
	}
}
