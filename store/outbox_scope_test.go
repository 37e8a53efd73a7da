package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// scopeRows builds, for one subject at destination "d0", outbox rows of
// the given actions and scopes (purpose per row), each on its own ledger
// entry, in order; it returns their ids.
func scopeRows(t *testing.T, st *store.Store, email string, rows ...struct{ action, purpose string }) (subject int64, ids []int64) {
	t.Helper()
	ctx := context.Background()
	err := st.Tx(ctx, func(tx *store.Tx) error {
		id, _, err := tx.EnsureSubject(ctx, consent.Subject{Email: email})
		if err != nil {
			return err
		}
		subject = id
		for i, r := range rows {
			status := consent.StatusWithdrawn
			if r.action == store.OutboxLift {
				status = consent.StatusGranted
			}
			sig := consent.Signal{Subject: consent.Subject{Email: email}, Channel: consent.ChannelEmail, Brand: "acme",
				Purpose: consent.Purpose(r.purpose), Status: status, OccurredAt: time.Now().UTC().Add(time.Duration(i) * time.Second), Source: "test"}
			event, err := tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: id, DedupKey: consent.FactKey(sig), Signal: sig,
				RecordedAt: time.Now().UTC(), Outcome: "applied", Hash: []byte{byte(i + 1)}})
			if err != nil {
				return err
			}
			if _, err := tx.AddOutbox(ctx, store.OutboxRow{Destination: "d0", ConsentEventID: event, SubjectID: id, TargetSubjectID: id,
				Action: r.action, Email: sql.NullString{String: email, Valid: true}, Channel: "email", Brand: "acme", Purpose: r.purpose}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DB.Select(&ids, `SELECT id FROM suppression_outbox WHERE target_subject_id = $1 ORDER BY id`, subject); err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(rows) {
		t.Fatalf("%d rows queued, want %d", len(ids), len(rows))
	}
	return subject, ids
}

type act = struct{ action, purpose string }

// A lift retried later (a per-item transient error) cannot land after a
// newer withdrawal of its scope: the withdrawal waits behind it. And
// `repush` does not bring back a failed lift that a newer suppression
// superseded.
func TestClaimPushKeepsScopeOrder(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, ids := scopeRows(t, st, "order@example.com", act{store.OutboxSuppress, "marketing"}, act{store.OutboxLift, "marketing"}, act{store.OutboxSuppress, "marketing"})
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	// The lift failed transiently for its row: due again in an hour.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = now() + interval '1 hour' WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	c, err := st.ClaimPush(ctx, "d0", 10, time.Minute, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != 0 {
		t.Fatalf("claimed %+v while an older lift of its scope is pending", c.Rows)
	}
	// The lift comes due and is pushed; only then the newer suppression.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = now() WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if c, err = st.ClaimPush(ctx, "d0", 10, time.Minute, 5); err != nil || len(c.Rows) != 1 || c.Rows[0].ID != ids[1] {
		t.Fatalf("claim = %+v, %v: want the lift alone", c.Rows, err)
	}
	if err := st.CompleteOutbox(ctx, []store.OutboxDone{{ID: ids[1], Status: store.OutboxFailed, Error: "refused"}}, store.PushCall{Destination: "d0", Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	if c, err = st.ClaimPush(ctx, "d0", 10, time.Minute, 5); err != nil || len(c.Rows) != 1 || c.Rows[0].ID != ids[2] {
		t.Fatalf("claim = %+v, %v: want the newer suppression", c.Rows, err)
	}
	got, err := st.RequeueFailed(ctx, "d0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got["d0"] != 0 {
		t.Errorf("repush requeued %d rows: a lift older than a suppression of its scope must stay failed", got["d0"])
	}
}

// A lift is not queued where another standing withdrawal of the address
// (another purpose) would be undone with it.
func TestOtherSuppressionStands(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	stands := func(subject int64, purpose string) bool {
		t.Helper()
		var ok bool
		err := st.Tx(ctx, func(tx *store.Tx) error {
			var err error
			ok, err = tx.OtherSuppressionStands(ctx, "d0", subject, consent.Key{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.Purpose(purpose)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	both, _ := scopeRows(t, st, "two@example.com", act{store.OutboxSuppress, "marketing"}, act{store.OutboxSuppress, "partners"})
	if !stands(both, "marketing") {
		t.Error("lifting marketing: the partners withdrawal stands, want true")
	}
	lifted, _ := scopeRows(t, st, "lifted@example.com", act{store.OutboxSuppress, "marketing"}, act{store.OutboxSuppress, "partners"}, act{store.OutboxLift, "partners"})
	if stands(lifted, "marketing") {
		t.Error("lifting marketing after partners was lifted: want false")
	}
	refused, ids := scopeRows(t, st, "refused@example.com", act{store.OutboxSuppress, "marketing"}, act{store.OutboxSuppress, "partners"})
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'failed' WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if stands(refused, "marketing") {
		t.Error("the partners suppression was refused for good: want false")
	}
}

// Read-back bookkeeping: a superseded row or one whose address an erasure
// removed is settled without a call; a suppression the destination keeps
// undoing fails after store.MaxMismatches pushes; a withdrawal refused
// somewhere is not honoured and is listed overdue.
func TestVerifySettlesAndBounds(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, ids := scopeRows(t, st, "verify@example.com",
		act{store.OutboxSuppress, "marketing"}, act{store.OutboxLift, "marketing"}, act{store.OutboxSuppress, "partners"}, act{store.OutboxSuppress, "cookies"})
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now(), verify_due_at = now() - interval '1s'`); err != nil {
		t.Fatal(err)
	}
	// ids[0] is superseded by the lift; ids[3] lost its address.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET email = NULL WHERE id = $1`, ids[3]); err != nil {
		t.Fatal(err)
	}
	rows, err := st.ClaimVerify(ctx, "d0", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var claimed []int64
	for _, r := range rows {
		claimed = append(claimed, r.ID)
	}
	// The lift (ids[1]) is read back like any sent row; partners (ids[2]) too.
	if len(claimed) != 2 || claimed[0] != ids[1] || claimed[1] != ids[2] {
		t.Fatalf("claimed %v, want [%d %d]", claimed, ids[1], ids[2])
	}
	var due int
	if err := st.DB.Get(&due, `SELECT count(*) FROM suppression_outbox WHERE id = ANY($1) AND verify_due_at IS NOT NULL`, pq.Array([]int64{ids[0], ids[3]})); err != nil {
		t.Fatal(err)
	}
	if due != 0 {
		t.Errorf("%d superseded or erased rows still await a read-back", due)
	}
	// partners keeps being found missing.
	for i := 1; i <= store.MaxMismatches; i++ {
		if _, err := st.CompleteVerify(ctx, []store.VerifyDone{{ID: ids[2], Outcome: store.VerifyMissing, Receipt: "not there"}}); err != nil {
			t.Fatal(err)
		}
		var status string
		if err := st.DB.Get(&status, `SELECT status FROM suppression_outbox WHERE id = $1`, ids[2]); err != nil {
			t.Fatal(err)
		}
		want := "pending"
		if i == store.MaxMismatches {
			want = "failed"
		}
		if status != want {
			t.Fatalf("after mismatch %d: status %s, want %s", i, status, want)
		}
		if want == "pending" {
			if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', verify_due_at = now() WHERE id = $1`, ids[2]); err != nil {
				t.Fatal(err)
			}
		}
	}
	var event int64
	if err := st.DB.Get(&event, `SELECT consent_event_id FROM suppression_outbox WHERE id = $1`, ids[2]); err != nil {
		t.Fatal(err)
	}
	h, err := st.Honoured(ctx, []int64{event})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 0 {
		t.Error("a withdrawal refused at its destination counts as honoured")
	}
	over, err := st.ListOverdue(ctx, time.Now().Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range over {
		if o.ConsentEventID == event {
			found = true
		}
	}
	if !found {
		t.Errorf("overdue %+v does not list the refused withdrawal", over)
	}
}

// TestClaimVerifyLooksPastSettled: a claim looks at the head of the due
// order only, limit rows at a time; when every row there is settled
// (superseded), it goes on to the next ones rather than answer "none due".
func TestClaimVerifyLooksPastSettled(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := act{store.OutboxSuppress, "marketing"}
	_, ids := scopeRows(t, st, "heads@example.com", m, m, m, m, m)
	// Oldest due first, in id order: the first four are each superseded
	// by the next.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now(), verify_due_at = now() - interval '1 minute' + id * interval '1 ms'`); err != nil {
		t.Fatal(err)
	}
	rows, err := st.ClaimVerify(context.Background(), "d0", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ID != ids[4] || rows[0].VerifyAttempts != 1 {
		t.Fatalf("claimed %+v, want only the newest row %d", rows, ids[4])
	}
	var due int
	if err := st.DB.Get(&due, `SELECT count(*) FROM suppression_outbox WHERE id = ANY($1) AND verify_due_at IS NOT NULL`, pq.Array(ids[:4])); err != nil {
		t.Fatal(err)
	}
	if due != 0 {
		t.Errorf("%d superseded rows still await a read-back", due)
	}
	if rows, err := st.ClaimVerify(context.Background(), "d0", 2, time.Minute); err != nil || len(rows) != 0 {
		t.Fatalf("second claim: %+v %v, want none due (the newest is leased)", rows, err)
	}
}

// TestVerifyMissingAfterErasure: a row claimed for a read-back whose
// address an erasure removed meanwhile, then found missing, is settled
// (nothing left to ask about or push), not put back to pending without an
// address — where the next push would refuse it for good, and the erased
// person's withdrawal would show failed.
func TestVerifyMissingAfterErasure(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	_, ids := scopeRows(t, st, "erased.later@example.com", act{store.OutboxSuppress, "marketing"})
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now(), verify_due_at = now() - interval '1s'`); err != nil {
		t.Fatal(err)
	}
	rows, err := st.ClaimVerify(ctx, "d0", 10, time.Minute)
	if err != nil || len(rows) != 1 {
		t.Fatalf("claimed %+v, %v", rows, err)
	}
	// The erasure (store.Tx.EraseData) clears a sent row's address.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET email = NULL WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CompleteVerify(ctx, []store.VerifyDone{{ID: ids[0], Outcome: store.VerifyMissing, Receipt: "not there"}}); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Status string `db:"status"`
		Due    bool   `db:"due"`
	}
	if err := st.DB.Get(&r, `SELECT status, verify_due_at IS NOT NULL AS due FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if r.Status != store.OutboxSent || r.Due {
		t.Errorf("erased row after a mismatch: %+v, want sent and settled", r)
	}
}
