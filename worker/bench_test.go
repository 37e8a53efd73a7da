package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/store"
)

// benchReconcile reconciles b.N form-like requests (an opt-in of a new
// address) in batches of size: ns/op is the cost of one webhook, and
// tx/op the Postgres transactions it took.
func benchReconcile(b *testing.B, size int) {
	st, err := store.Open(context.Background(), testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	rc := Reconciler{Store: st, Routes: testRoutes}
	ids := make([]int64, b.N)
	for i := range ids {
		id, _, err := st.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: fmt.Sprintf("b%d", i), Method: "POST", Path: "/webhooks/form"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	at := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	// Transactions that write take a transaction id: the difference of
	// pg_current_xact_id() counts them (pg_stat_database lags by seconds).
	// Ids are server-wide: other databases' work on the same server counts
	// too, so read tx/op on a quiet server.
	xacts := func() int64 {
		var n int64
		if err := st.DB.Get(&n, `SELECT pg_current_xact_id()::text::bigint`); err != nil {
			b.Fatal(err)
		}
		return n
	}
	before := xacts()
	byID := make(map[int64]Prepared, b.N)
	for i, id := range ids {
		s := consent.Signal{Subject: consent.Subject{Email: fmt.Sprintf("p%d@example.com", i)}, Channel: consent.ChannelEmail, Brand: "acme",
			Purpose: consent.PurposeMarketing, Status: consent.StatusGranted, OccurredAt: at, Source: "form",
			Evidence: consent.Evidence{Checkbox: "unticked", WordingVersion: "v1", IP: "192.0.2.1", Field: "newsletter"}}
		if i%4 == 0 {
			s.Status, s.Evidence = consent.StatusWithdrawn, consent.Evidence{}
		}
		byID[id] = Prepare([]consent.Signal{s}, "FR", at)
	}
	read := func(_ context.Context, in *store.Inbound) (Prepared, error) { return byID[in.ID], nil }
	b.ResetTimer()
	for start := 0; start < b.N; start += size {
		if _, err := rc.ProcessBatch(ctx, BatchClaim{Own: ids[start], Limit: size}, read); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(xacts()-before-1)/float64(b.N), "tx/op")
}

func BenchmarkReconcileOneByOne(b *testing.B) { benchReconcile(b, 1) }
func BenchmarkReconcileBatch100(b *testing.B) { benchReconcile(b, 100) }

// BenchmarkCatchUp catches a new destination up on b.N subjects (one in
// four withdrawn, written straight into the ledger and states), 1,000 per
// transaction: ns/op is the cost per subject read, rows/op the
// suppressions queued per subject.
func BenchmarkCatchUp(b *testing.B) {
	st, err := store.Open(context.Background(), testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.DB.Exec(`INSERT INTO subjects (email, email_original, mailbox_key)
		SELECT 'c' || i || '@example.com', 'c' || i || '@example.com', 'c' || i || '@example.com' FROM generate_series(1, $1) i`, b.N); err != nil {
		b.Fatal(err)
	}
	if _, err := st.DB.Exec(`INSERT INTO consent_events (subject_id, dedup_key, channel, brand, purpose, status, occurred_at, source, valid, outcome, evidence_hash, hash)
		SELECT id, int8send(id), 'email', 'acme', 'marketing', CASE WHEN id % 4 = 0 THEN 'withdrawn' ELSE 'granted' END,
			'2025-11-20T10:00:00Z', 'form', true, 'applied', '\x00', '\x00' FROM subjects`); err != nil {
		b.Fatal(err)
	}
	if _, err := st.DB.Exec(`INSERT INTO consent_states (subject_id, channel, brand, purpose, status, occurred_at, source, event_id)
		SELECT subject_id, channel, brand, purpose, status, occurred_at, source, id FROM consent_events`); err != nil {
		b.Fatal(err)
	}
	c := CatchUp{Store: st, Routes: []Route{{Destination: "new", Brand: "acme", Channels: []consent.Channel{consent.ChannelEmail},
		Purposes: []consent.Purpose{consent.PurposeMarketing}}}}
	b.ResetTimer()
	reports, err := c.Run(ctx, CatchUpOptions{Remember: true})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if want := int64(b.N / 4); reports[0].Queued != want || reports[0].Subjects != int64(b.N) {
		b.Fatalf("%+v, want %d subjects and %d queued", reports[0], b.N, want)
	}
	b.ReportMetric(float64(reports[0].Queued)/float64(b.N), "rows/op")
}
