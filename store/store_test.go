package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropTemplate()
	os.Exit(code)
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st := testenv.Store(t)
	return st
}

// Concurrent requests gathered into group commits: identical deliveries
// give exactly one new row (the others are duplicates with its id), and a
// request Postgres refuses (a NUL byte in text) fails alone.
func TestGroupInbox(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	g := &store.GroupInbox{Store: st, Wait: 20 * time.Millisecond, Max: 64, Flushers: 2}
	ctx := context.Background()
	const keys, copies = 40, 3
	type got struct {
		id  int64
		dup bool
		err error
	}
	results := make([][]got, keys)
	for i := range results {
		results[i] = make([]got, copies)
	}
	var wg sync.WaitGroup
	for k := range keys {
		for c := range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, dup, err := g.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: fmt.Sprintf("key-%d", k),
					Method: "POST", Path: "/webhooks/form", Body: []byte(fmt.Sprintf(`{"n":%d}`, k))})
				results[k][c] = got{id, dup, err}
			}()
		}
	}
	wg.Add(1)
	var badErr error
	go func() {
		defer wg.Done()
		_, _, badErr = g.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: "bad", Method: "POST", Path: "/webhooks/\x00"})
	}()
	wg.Wait()
	if badErr == nil {
		t.Error("a path with a NUL byte was stored")
	}
	seen := map[int64]bool{}
	for k, rs := range results {
		fresh := 0
		for _, r := range rs {
			if r.err != nil {
				t.Fatalf("key %d: %v", k, r.err)
			}
			if r.id != rs[0].id {
				t.Errorf("key %d: ids %d and %d", k, rs[0].id, r.id)
			}
			if !r.dup {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("key %d: %d deliveries reported new, want 1", k, fresh)
		}
		if seen[rs[0].id] {
			t.Errorf("id %d given to two keys", rs[0].id)
		}
		seen[rs[0].id] = true
	}
	var n int
	if err := st.DB.Get(&n, `SELECT count(*) FROM inbound_events`); err != nil || n != keys {
		t.Fatalf("%d rows stored (err %v), want %d", n, err, keys)
	}
}

// A destination's schedule: a failed call holds every claim until its
// retry time; circuit_failures failures open the circuit, so that only one
// probe claim is given at a time; a success closes it.
func TestClaimPushSchedule(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	err := st.Tx(ctx, func(tx *store.Tx) error {
		id, _, err := tx.EnsureSubject(ctx, consent.Subject{Email: "a@example.com"})
		if err != nil {
			return err
		}
		sig := consent.Signal{Subject: consent.Subject{Email: "a@example.com"}, Channel: consent.ChannelEmail, Brand: "acme",
			Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: time.Now().UTC(), Source: "test"}
		event, err := tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: id, DedupKey: consent.FactKey(sig), Signal: sig,
			RecordedAt: time.Now().UTC(), Outcome: "applied", Hash: []byte{1}})
		if err != nil {
			return err
		}
		_, err = tx.AddOutbox(ctx, store.OutboxRow{Destination: "d0", ConsentEventID: event, SubjectID: id, TargetSubjectID: id,
			Email: sql.NullString{String: "a@example.com", Valid: true}, Channel: "email", Brand: "acme", Purpose: "marketing"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	claim := func() store.Claim {
		t.Helper()
		c, err := st.ClaimPush(ctx, "d0", 10, time.Minute, 2)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := claim()
	if len(c.Rows) != 1 || c.Failures != 0 || !c.HeldUntil.IsZero() {
		t.Fatalf("first claim = %+v", c)
	}
	fail := func(in time.Duration) {
		t.Helper()
		done := []store.OutboxDone{{ID: c.Rows[0].ID, Status: store.OutboxPending, RetryIn: in, Error: "429"}}
		if err := st.CompleteOutbox(ctx, done, store.PushCall{Destination: "d0", Failed: true, RetryIn: in, Error: "429"}); err != nil {
			t.Fatal(err)
		}
	}
	fail(time.Hour)
	if h := claim(); h.HeldUntil.IsZero() || len(h.Rows) != 0 {
		t.Fatalf("claim during the hold = %+v, want held", h)
	}
	// Second failure (no wait: the hold ends at once): the circuit opens.
	fail(0)
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = now() - interval '1s', lease_until = NULL`); err != nil {
		t.Fatal(err)
	}
	c = claim()
	if c.Failures != 2 || len(c.Rows) != 1 {
		t.Fatalf("claim with the circuit open = %+v, want a probe", c)
	}
	if h := claim(); h.HeldUntil.IsZero() {
		t.Fatalf("second claim while the probe is out = %+v, want held", h)
	}
	if err := st.CompleteOutbox(ctx, []store.OutboxDone{{ID: c.Rows[0].ID, Status: store.OutboxSent}}, store.PushCall{Destination: "d0", Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	ds, err := st.DestinationStatuses(ctx)
	if err != nil || len(ds) != 1 || ds[0].Failures != 0 || ds[0].HoldUntil.Valid {
		t.Fatalf("after a success: %+v (err %v), want closed", ds, err)
	}
}

// A transaction naming thousands of identities takes almost nothing of the
// server's shared lock table, and still excludes a small transaction naming
// one of them.
func TestLockIdentitiesBounded(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	key := []byte("0123456789abcdef0123456789abcdef")
	big := map[string]consent.Subject{}
	for i := range 5000 {
		e := fmt.Sprintf("p%d@example.com", i)
		big[e] = consent.Subject{Email: e}
	}
	locked := make(chan struct{})
	release := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- st.Tx(ctx, func(tx *store.Tx) error {
			if err := tx.LockIdentities(ctx, key, big); err != nil {
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	var n int
	if err := st.DB.Get(&n, `SELECT count(*) FROM pg_locks WHERE granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	if n > 64 {
		t.Errorf("%d lock table entries held for 5000 identities, want a few", n)
	}
	small := map[string]consent.Subject{"p42@example.com": {Email: "p42@example.com"}}
	err := st.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.SetLockTimeout(ctx, 200*time.Millisecond); err != nil {
			return err
		}
		return tx.LockIdentities(ctx, key, small)
	})
	if err == nil {
		t.Error("a small transaction locked an identity the big one holds")
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := st.Tx(ctx, func(tx *store.Tx) error { return tx.LockIdentities(ctx, key, small) }); err != nil {
		t.Fatalf("after the big one: %v", err)
	}
}
