package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// insertInbound stores n empty inbound rows and returns their ids.
func insertInbound(t *testing.T, st *store.Store, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		id, _, err := st.InsertInbound(context.Background(), store.Inbound{Source: "test", Kind: "form",
			DedupKey: fmt.Sprintf("row-%d", i), Method: "POST", Path: "/webhooks/test"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// randomRequests builds n requests of 1–3 signals over a few addresses
// (grants and withdrawals, aliases of one Gmail mailbox, two brands), in a
// fixed pseudo-random order.
func randomRequests(seed uint64, n int) [][]consent.Signal {
	r := rand.New(rand.NewPCG(seed, 7))
	addrs := []string{"ann@example.com", "bob@example.com", "c.d@gmail.com", "cd+news@gmail.com", "eve@example.org"}
	base := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	out := make([][]consent.Signal, n)
	for i := range out {
		for range 1 + r.IntN(3) {
			status := consent.StatusGranted
			if r.IntN(3) == 0 {
				status = consent.StatusWithdrawn
			}
			s := consent.Signal{Subject: consent.Subject{Email: addrs[r.IntN(len(addrs))]}, Channel: consent.ChannelEmail,
				Brand: []string{"acme", "other"}[r.IntN(2)], Purpose: consent.PurposeMarketing, Status: status,
				OccurredAt: base.Add(time.Duration(r.IntN(600)) * time.Second), Source: []string{"form", "crm"}[r.IntN(2)]}
			if status == consent.StatusGranted {
				s.Evidence = consent.Evidence{Checkbox: "unticked", WordingVersion: "v1", IP: "192.0.2.1", Field: "newsletter"}
			}
			out[i] = append(out[i], s)
		}
	}
	return out
}

// snapshot is every consent fact of a database, without ids: states,
// ledger facts with their outcomes, and outbox rows.
func snapshot(t *testing.T, st *store.Store) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 'state ' || s.email || ' ' || cs.brand || ' ' || cs.status || ' ' || cs.occurred_at FROM consent_states cs JOIN subjects s ON s.id = cs.subject_id`,
		`SELECT 'ledger ' || s.email || ' ' || e.brand || ' ' || e.status || ' ' || e.occurred_at || ' ' || e.source || ' ' || e.outcome FROM consent_events e JOIN subjects s ON s.id = e.subject_id`,
		`SELECT 'outbox ' || o.destination || ' ' || coalesce(o.email, '') || ' ' || o.brand FROM suppression_outbox o`,
		`SELECT 'inbound ' || status || ' ' || coalesce(notes::text, '') FROM inbound_events`,
	} {
		var rows []string
		if err := st.DB.Select(&rows, q); err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
	}
	slices.Sort(out)
	return out
}

// Differential: the same requests reconciled one transaction each, and as
// batches of several, give the same record: states, ledger, outbox, notes.
func TestBatchEqualsOneByOne(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		reqs := randomRequests(seed, 60)
		alone, batched := openStore(t), openStore(t)
		rc := func(st *store.Store) Reconciler {
			return Reconciler{Store: st, Routes: testRoutes, Now: func() time.Time { return time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC) }}
		}
		ids := insertInbound(t, alone, len(reqs))
		for i, req := range reqs {
			if _, err := rc(alone).Reconcile(context.Background(), ids[i], Prepare(req, "FR", time.Now())); err != nil {
				t.Fatal(err)
			}
		}
		ids = insertInbound(t, batched, len(reqs))
		byID := map[int64]Prepared{}
		for i, id := range ids {
			byID[id] = Prepare(reqs[i], "FR", time.Now())
		}
		read := func(_ context.Context, in *store.Inbound) (Prepared, error) { return byID[in.ID], nil }
		for start := 0; start < len(reqs); start += 25 {
			res, err := rc(batched).ProcessBatch(context.Background(), BatchClaim{Own: ids[start], Limit: 25}, read)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != min(25, len(reqs)-start) {
				t.Fatalf("seed %d: batch at %d took %d rows", seed, start, len(res))
			}
			for i, r := range res {
				if r.Err != nil || r.Inbound.ID != ids[start+i] {
					t.Fatalf("seed %d item %d: %+v", seed, start+i, r)
				}
			}
		}
		a, b := snapshot(t, alone), snapshot(t, batched)
		if !slices.Equal(a, b) {
			t.Errorf("seed %d: one by one and batched differ:\nalone:\n%s\nbatched:\n%s", seed, strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
		if len(a) < 60 {
			t.Fatalf("seed %d: only %d facts: the requests did little", seed, len(a))
		}
	}
}

// A row another transaction holds is left by a batch (its own task waits
// for it), and the batch's own row is taken.
func TestBatchSkipsHeldRows(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ids := insertInbound(t, st, 2)
	tx, err := st.DB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SELECT 1 FROM inbound_events WHERE id = $1 FOR UPDATE`, ids[1]); err != nil {
		t.Fatal(err)
	}
	p := map[int64]Prepared{
		ids[0]: Prepare([]consent.Signal{sig("a@example.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "crm")}, "FR", time.Now()),
		ids[1]: Prepare([]consent.Signal{sig("b@example.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "crm")}, "FR", time.Now()),
	}
	read := func(_ context.Context, in *store.Inbound) (Prepared, error) { return p[in.ID], nil }
	res, err := Reconciler{Store: st, Routes: testRoutes}.ProcessBatch(context.Background(), BatchClaim{Own: ids[0], Limit: 10}, read)
	_ = tx.Rollback()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Inbound.ID != ids[0] || res[0].Err != nil {
		t.Fatalf("results = %+v, want the own row alone", res)
	}
	if stateOf(t, st, "b@example.com") != "none" || stateOf(t, st, "a@example.com") != "withdrawn" {
		t.Error("the held row was applied, or the own one was not")
	}
	// Its own task, waiting for the lock now free, takes it.
	res, err = Reconciler{Store: st, Routes: testRoutes}.ProcessBatch(context.Background(), BatchClaim{Own: ids[1], Limit: 1, Wait: true}, read)
	if err != nil || len(res) != 1 || stateOf(t, st, "b@example.com") != "withdrawn" {
		t.Fatalf("own task of the held row: %+v, %v", res, err)
	}
}

// A withdrawal and a later grant in one batch, for two aliases of a
// mailbox whose third alias the batch does not name: the grant is answered
// with a suppression (the set withdrew), as when each is its own
// transaction.
func TestBatchHoldsWithdrawalOfUnnamedMember(t *testing.T) {
	t.Parallel()
	setup := []consent.Signal{
		sig("c.d@gmail.com", consent.StatusGranted, "2025-11-20T09:00:00Z", "form"),
		sig("cd+news@gmail.com", consent.StatusGranted, "2025-11-20T09:00:00Z", "form"),
		sig("cd@gmail.com", consent.StatusGranted, "2025-11-20T09:00:00Z", "form"),
	}
	withdraw := sig("c.d@gmail.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "mailchimp-acme")
	regrant := sig("cd+news@gmail.com", consent.StatusGranted, "2025-11-20T11:00:00Z", "mailchimp-acme")
	var snaps [2][]string
	for n, together := range []bool{false, true} {
		st := openStore(t)
		for _, s := range setup {
			deliver(t, st, s)
		}
		ids := insertInbound(t, st, 2)
		p := map[int64]Prepared{ids[0]: Prepare([]consent.Signal{withdraw}, "FR", time.Now()), ids[1]: Prepare([]consent.Signal{regrant}, "FR", time.Now())}
		read := func(_ context.Context, in *store.Inbound) (Prepared, error) { return p[in.ID], nil }
		rc := Reconciler{Store: st, Routes: testRoutes}
		if together {
			if _, err := rc.ProcessBatch(context.Background(), BatchClaim{Own: ids[0], Limit: 2}, read); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, id := range ids {
				if _, err := rc.ProcessBatch(context.Background(), BatchClaim{Own: id, Limit: 1}, read); err != nil {
					t.Fatal(err)
				}
			}
		}
		snaps[n] = snapshot(t, st)
	}
	if !slices.Equal(snaps[0], snaps[1]) {
		t.Errorf("one by one and batched differ:\nalone:\n%s\nbatched:\n%s", strings.Join(snaps[0], "\n"), strings.Join(snaps[1], "\n"))
	}
	held := 0
	for _, l := range snaps[1] {
		if strings.HasPrefix(l, "outbox mailchimp-acme cd+news@gmail.com") {
			held++
		}
	}
	if held == 0 {
		t.Errorf("the re-subscribed alias was not suppressed at its source:\n%s", strings.Join(snaps[1], "\n"))
	}
}

// ProcessBatch claims the own row and waiting ones; a row its reader
// refuses for good is marked failed, a row Postgres refuses makes the batch
// fall back to one transaction per row, so every other row is applied.
func TestProcessBatchFaults(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ids := insertInbound(t, st, 4)
	withdraw := func(e string) Prepared {
		return Prepare([]consent.Signal{sig(e, consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "crm")}, "FR", time.Now())
	}
	prep := map[int64]Prepared{
		ids[0]: withdraw("zero@example.com"),
		// No address nor number: breaks a CHECK constraint in Postgres.
		ids[1]: {Signals: []consent.Signal{{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing,
			Status: consent.StatusWithdrawn, OccurredAt: time.Now().UTC(), Source: "crm"}}},
		ids[3]: withdraw("three@example.com"),
	}
	read := func(_ context.Context, in *store.Inbound) (Prepared, error) {
		if in.ID == ids[2] {
			return Prepared{}, fmt.Errorf("parse: not JSON: %w", ErrFinal)
		}
		return prep[in.ID], nil
	}
	res, err := Reconciler{Store: st, Routes: testRoutes}.ProcessBatch(context.Background(), BatchClaim{Own: ids[0], Limit: 10}, read)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]Processed{}
	for _, r := range res {
		byID[r.Inbound.ID] = r
	}
	if len(res) != 4 || byID[ids[0]].Err != nil || byID[ids[3]].Err != nil || byID[ids[1]].Err == nil || !byID[ids[2]].Final {
		t.Fatalf("results = %+v", res)
	}
	if got := stateOf(t, st, "zero@example.com") + stateOf(t, st, "three@example.com"); got != "withdrawnwithdrawn" {
		t.Errorf("states = %s, want both withdrawn", got)
	}
	statuses := map[int64]string{}
	for _, id := range ids {
		var s string
		if err := st.DB.Get(&s, `SELECT status FROM inbound_events WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		statuses[id] = s
	}
	want := map[int64]string{ids[0]: "processed", ids[1]: "received", ids[2]: "failed", ids[3]: "processed"}
	for id, w := range want {
		if statuses[id] != w {
			t.Errorf("row %d: %s, want %s", id, statuses[id], w)
		}
	}
}

// A batch claims other rows only when small: large imports are each
// reconciled by their own task, side by side.
func TestProcessBatchLeavesLargeRows(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	var ids []int64
	for i, size := range []int{200 << 10, 100, 200 << 10, 16 << 10} {
		id, _, err := st.InsertInbound(context.Background(), store.Inbound{Source: "test", Kind: "form",
			DedupKey: fmt.Sprintf("big-%d", i), Method: "POST", Path: "/webhooks/test", Body: make([]byte, size)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var claimed []int64
	read := func(_ context.Context, in *store.Inbound) (Prepared, error) {
		claimed = append(claimed, in.ID)
		return Prepared{}, nil
	}
	if _, err := (Reconciler{Store: st, Routes: testRoutes}).ProcessBatch(context.Background(), BatchClaim{Own: ids[0], Limit: 100}, read); err != nil {
		t.Fatal(err)
	}
	// Its own large row, then the small ones; the other large one waits for its own task.
	if want := []int64{ids[0], ids[1], ids[3]}; !slices.Equal(claimed, want) {
		t.Fatalf("claimed %v, want %v", claimed, want)
	}
}
