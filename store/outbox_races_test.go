package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/store"
)

// A drift check reads a sent suppression, a lift of its scope is queued
// and pushed while the read-back is in flight, and the provider (rightly)
// answers "not suppressed": recording that drift must neither put the old
// suppression back to pending (pushed again, it would undo the person's
// new opt-in) nor write a false "drift" line. CompleteVerify already
// skips superseded rows; RecordDrift did not.
func TestRecordDriftSkipsSupersededRow(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, ids := scopeRows(t, st, "drift-lift@example.com", act{store.OutboxSuppress, "marketing"}, act{store.OutboxLift, "marketing"})
	// The suppression was sent; the drift check read it (HeldSuppressions)
	// before the lift existed, then the lift was pushed.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now() WHERE id = ANY($1)`, pq.Array(ids)); err != nil {
		t.Fatal(err)
	}
	for _, repair := range []bool{false, true} {
		n, err := st.RecordDrift(ctx, []int64{ids[0]}, []string{"not suppressed"}, repair)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("repair=%v: RecordDrift changed %d rows; the suppression was superseded by a lift", repair, n)
		}
	}
	var status string
	var drifts int
	if err := st.DB.Get(&status, `SELECT status FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := st.DB.Get(&drifts, `SELECT count(*) FROM destination_events WHERE outbox_id = $1 AND kind = 'drift'`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if status != store.OutboxSent || drifts != 0 {
		t.Errorf("superseded suppression after drift: status %s, %d drift lines; want sent, 0 (it would be pushed over the lift)", status, drifts)
	}
	c, err := st.ClaimPush(ctx, "d0", 10, time.Minute, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != 0 {
		t.Errorf("claimed %d rows: the old suppression would be pushed after the lift", len(c.Rows))
	}
}

// A pusher whose lease ended mid-call (a slow answer, Postgres down while
// it records the outcome) must not record over a row another pusher has
// claimed since: clearing that pusher's lease lets a third claim, and
// push, the row while the second's call is still in flight.
func TestStaleCompletionKeepsNewerLease(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, ids := scopeRows(t, st, "stale-lease@example.com", act{store.OutboxSuppress, "marketing"})
	a, err := st.ClaimPush(ctx, "d0", 10, 50*time.Millisecond, 5)
	if err != nil || len(a.Rows) != 1 {
		t.Fatalf("first claim = %+v, %v", a.Rows, err)
	}
	time.Sleep(150 * time.Millisecond) // the first pusher's lease ends mid-call
	b, err := st.ClaimPush(ctx, "d0", 10, time.Minute, 5)
	if err != nil || len(b.Rows) != 1 || b.Rows[0].ID != ids[0] {
		t.Fatalf("second claim = %+v, %v: want the row whose lease ended", b.Rows, err)
	}
	// The first pusher's call failed transiently (it timed out): it records
	// a retry for a row that is now the second pusher's.
	stale := store.OutboxDone{ID: ids[0], Status: store.OutboxPending, Error: "timeout", Attempt: a.Rows[0].Attempts}
	if err := st.CompleteOutbox(ctx, []store.OutboxDone{stale}); err != nil {
		t.Fatal(err)
	}
	c, err := st.ClaimPush(ctx, "d0", 10, time.Minute, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != 0 {
		t.Errorf("a third pusher claimed row %d while the second holds it: the stale outcome cleared its lease", c.Rows[0].ID)
	}
	// The second pusher's own outcome is recorded.
	if err := st.CompleteOutbox(ctx, []store.OutboxDone{{ID: ids[0], Status: store.OutboxSent, Receipt: "ok", Attempt: b.Rows[0].Attempts}}); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := st.DB.Get(&status, `SELECT status FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if status != store.OutboxSent {
		t.Errorf("status %s after the holder's outcome; want sent", status)
	}
	// A stale "sent" is not recorded over a newer claim either (its
	// provider answer belongs to an older call), and a lease that ended
	// with nobody claiming since still takes its pusher's outcome.
	_, ids2 := scopeRows(t, st, "stale-lease2@example.com", act{store.OutboxSuppress, "marketing"})
	a, err = st.ClaimPush(ctx, "d0", 10, 50*time.Millisecond, 5)
	if err != nil || len(a.Rows) != 1 || a.Rows[0].ID != ids2[0] {
		t.Fatalf("claim = %+v, %v", a.Rows, err)
	}
	time.Sleep(150 * time.Millisecond)
	if err := st.CompleteOutbox(ctx, []store.OutboxDone{{ID: ids2[0], Status: store.OutboxSent, Receipt: "late", Attempt: a.Rows[0].Attempts}}); err != nil {
		t.Fatal(err)
	}
	if err := st.DB.Get(&status, `SELECT status FROM suppression_outbox WHERE id = $1`, ids2[0]); err != nil {
		t.Fatal(err)
	}
	if status != store.OutboxSent {
		t.Errorf("status %s: a late outcome with no newer claim must still be recorded", status)
	}
}

// A row behind an older pending lift of its scope waits for it; it must
// not hold back the other rows of the destination. The claim's action was
// the oldest due row's, blocked or not: with a lift waiting behind another
// lift that retries later, no suppression of anyone was claimed until
// then — an unrelated person's withdrawal waited on another's lift.
func TestBlockedRowDoesNotHoldBackOthers(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, lifts := scopeRows(t, st, "lifts@example.com", act{store.OutboxLift, "marketing"}, act{store.OutboxLift, "marketing"})
	_, other := scopeRows(t, st, "withdraws@example.com", act{store.OutboxSuppress, "marketing"})
	// The older lift failed for its row: due again in an hour.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = now() + interval '1 hour' WHERE id = $1`, lifts[0]); err != nil {
		t.Fatal(err)
	}
	c, err := st.ClaimPush(ctx, "d0", 10, time.Minute, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != 1 || c.Rows[0].ID != other[0] {
		t.Fatalf("claimed %d rows; want the other person's withdrawal (row %d), not blocked by the lift waiting behind a lift", len(c.Rows), other[0])
	}
}

// A verifier whose read-back lease ended mid-call (a stalled process)
// must not record its answer over a newer read-back or push of the row:
// its "held", landing after a newer read-back found the suppression
// missing and the row was pushed again, marked that new push verified
// without it ever being read back.
func TestStaleReadBackNotRecorded(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, ids := scopeRows(t, st, "stale-verify@example.com", act{store.OutboxSuppress, "marketing"})
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now(), verify_due_at = now() - interval '1 second' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	a, err := st.ClaimVerify(ctx, "d0", 10, 50*time.Millisecond)
	if err != nil || len(a) != 1 {
		t.Fatalf("first read-back claim = %d rows, %v", len(a), err)
	}
	time.Sleep(150 * time.Millisecond) // the first verifier stalls past its lease
	b, err := st.ClaimVerify(ctx, "d0", 10, time.Minute)
	if err != nil || len(b) != 1 {
		t.Fatalf("second read-back claim = %d rows, %v", len(b), err)
	}
	if _, err := st.CompleteVerify(ctx, []store.VerifyDone{{ID: ids[0], Outcome: store.VerifyMissing, Receipt: "not there", Lease: b[0].VerifyDueAt.Time}}); err != nil {
		t.Fatal(err)
	}
	// Pushed again, sent, its read-back due in 30 s.
	c, err := st.ClaimPush(ctx, "d0", 10, time.Minute, 5)
	if err != nil || len(c.Rows) != 1 {
		t.Fatalf("push claim = %+v, %v", c.Rows, err)
	}
	if err := st.CompleteOutbox(ctx, []store.OutboxDone{{ID: ids[0], Status: store.OutboxSent, Attempt: c.Rows[0].Attempts, VerifyAfter: 30 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	// The stalled verifier wakes with its old answer.
	if _, err := st.CompleteVerify(ctx, []store.VerifyDone{{ID: ids[0], Outcome: store.VerifyHeld, Receipt: "held (old)", Lease: a[0].VerifyDueAt.Time}}); err != nil {
		t.Fatal(err)
	}
	var verified, due bool
	if err := st.DB.QueryRow(`SELECT verified_at IS NOT NULL, verify_due_at IS NOT NULL FROM suppression_outbox WHERE id = $1`, ids[0]).Scan(&verified, &due); err != nil {
		t.Fatal(err)
	}
	if verified || !due {
		t.Errorf("after a stale read-back: verified %v, read-back due %v; want false, true (the new push is still to be read back)", verified, due)
	}
}

// A report-only drift check records its finding (a "drift" line) but
// pushes nothing, so it does not spend the row's mismatch budget
// (MaxMismatches counts pushes); a repair does both.
func TestReportOnlyDriftCountsNoMismatch(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, ids := scopeRows(t, st, "drift-report@example.com", act{store.OutboxSuppress, "marketing"})
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now() WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	state := func() (status string, mismatches, drifts int) {
		t.Helper()
		if err := st.DB.QueryRow(`SELECT status, mismatches, (SELECT count(*) FROM destination_events WHERE outbox_id = $1 AND kind = 'drift')
			FROM suppression_outbox WHERE id = $1`, ids[0]).Scan(&status, &mismatches, &drifts); err != nil {
			t.Fatal(err)
		}
		return
	}
	for range 6 { // more than MaxMismatches report-only runs
		if n, err := st.RecordDrift(ctx, []int64{ids[0]}, []string{"not suppressed"}, false); err != nil || n != 1 {
			t.Fatalf("report-only drift: %d rows, %v", n, err)
		}
	}
	if status, m, d := state(); status != store.OutboxSent || m != 0 || d != 6 {
		t.Errorf("after 6 report-only checks: %s, %d mismatches, %d drift lines; want sent, 0, 6", status, m, d)
	}
	if n, err := st.RecordDrift(ctx, []int64{ids[0]}, []string{"not suppressed"}, true); err != nil || n != 1 {
		t.Fatalf("repair: %d rows, %v", n, err)
	}
	if status, m, d := state(); status != store.OutboxPending || m != 1 || d != 7 {
		t.Errorf("after a repair: %s, %d mismatches, %d drift lines; want pending, 1, 7", status, m, d)
	}
}
