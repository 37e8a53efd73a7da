package worker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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

var testRoutes = []Route{
	{Destination: "sendgrid-acme", Brand: "acme", Channels: []consent.Channel{"email"}, Purposes: []consent.Purpose{"marketing"}},
	{Destination: "mailchimp-acme", Brand: "acme", Channels: []consent.Channel{"email"}, Purposes: []consent.Purpose{"marketing"}},
	{Destination: "sendgrid-other", Brand: "other", Channels: []consent.Channel{"email"}, Purposes: []consent.Purpose{"marketing"}},
}

func sig(email string, status consent.Status, at string, source string) consent.Signal {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		panic(err)
	}
	return consent.Signal{
		Subject: consent.Subject{Email: email}, Channel: consent.ChannelEmail, Brand: "acme",
		Purpose: consent.PurposeMarketing, Status: status, OccurredAt: t, Source: source,
	}
}

var inboundSeq int

// deliver stores an inbound row and reconciles signals as if parsed from it.
func deliver(t *testing.T, st *store.Store, signals ...consent.Signal) Reconciled {
	t.Helper()
	inboundSeq++
	id, _, err := st.InsertInbound(context.Background(), store.Inbound{
		Source: "test", Kind: "form", DedupKey: fmt.Sprintf("k%d-%d", inboundSeq, time.Now().UnixNano()), Method: "POST", Path: "/webhooks/test",
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Reconcile(context.Background(), st, id, Prepare(signals, "FR", time.Now()), testRoutes)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func stateOf(t *testing.T, st *store.Store, email string) string {
	t.Helper()
	var s string
	err := st.DB.Get(&s, `SELECT cs.status FROM consent_states cs JOIN subjects s ON s.id = cs.subject_id
		WHERE s.email = $1 AND cs.brand = 'acme' AND cs.channel = 'email' AND cs.purpose = 'marketing'`, email)
	if err != nil {
		return "none"
	}
	return s
}

func count(t *testing.T, st *store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := st.DB.Get(&n, q, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReconcileOrderByOccurrence(t *testing.T) {
	st := openStore(t)
	const e = "lena@example.com"
	// Withdrawal that occurred at 10:02 arrives first; the opt-in of 10:00 arrives late.
	r1 := deliver(t, st, sig(e, consent.StatusWithdrawn, "2025-11-20T10:02:00Z", "crm"))
	if r1.Notes.Suppressions != 2 {
		t.Fatalf("first withdrawal: want 2 suppressions (acme destinations), got %+v", r1.Notes)
	}
	r2 := deliver(t, st, sig(e, consent.StatusGranted, "2025-11-20T10:00:00Z", "form"))
	if got := stateOf(t, st, e); got != "withdrawn" {
		t.Fatalf("state = %s, want withdrawn", got)
	}
	if r2.Notes.Stale != 1 || r2.Notes.Applied != 0 {
		t.Fatalf("late grant notes = %+v, want stale", r2.Notes)
	}
	if n := count(t, st, `SELECT count(*) FROM consent_events WHERE outcome = 'stale'`); n != 1 {
		t.Fatalf("stale ledger rows = %d, want 1 (older signals still enter the ledger)", n)
	}
	// A later valid grant lifts the withdrawal.
	deliver(t, st, sig(e, consent.StatusGranted, "2025-11-20T10:05:00Z", "form"))
	if got := stateOf(t, st, e); got != "granted" {
		t.Fatalf("state after newer grant = %s, want granted", got)
	}
}

func TestReconcileTieWithdrawalWins(t *testing.T) {
	for _, order := range []string{"grant-first", "withdraw-first"} {
		t.Run(order, func(t *testing.T) {
			st := openStore(t)
			const e = "tie@example.com"
			g := sig(e, consent.StatusGranted, "2025-11-20T10:00:00Z", "form")
			w := sig(e, consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "crm")
			if order == "grant-first" {
				deliver(t, st, g)
				deliver(t, st, w)
			} else {
				deliver(t, st, w)
				deliver(t, st, g)
			}
			if got := stateOf(t, st, e); got != "withdrawn" {
				t.Fatalf("state = %s, want withdrawn", got)
			}
			if n := count(t, st, `SELECT count(*) FROM suppression_outbox`); n != 2 {
				t.Fatalf("outbox rows = %d, want 2", n)
			}
		})
	}
}

func TestReconcileConcurrentDuplicates(t *testing.T) {
	st := openStore(t)
	const e = "dup@example.com"
	w := sig(e, consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "crm")
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		id, _, err := st.InsertInbound(context.Background(), store.Inbound{
			Source: "crm", Kind: "hubspot", DedupKey: fmt.Sprintf("delivery-%d", i), Method: "POST", Path: "/webhooks/crm",
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Reconcile(context.Background(), st, id, Prepare([]consent.Signal{w}, "FR", time.Now()), testRoutes)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, st, `SELECT count(*) FROM consent_events`); n != 1 {
		t.Fatalf("ledger rows = %d, want 1", n)
	}
	if n := count(t, st, `SELECT count(*) FROM suppression_outbox WHERE destination = 'sendgrid-acme'`); n != 1 {
		t.Fatalf("sendgrid outbox rows = %d, want 1", n)
	}
}

func TestReconcileRedeliveredTaskChangesNothing(t *testing.T) {
	st := openStore(t)
	id, _, err := st.InsertInbound(context.Background(), store.Inbound{Source: "crm", Kind: "hubspot", DedupKey: "x", Method: "POST", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	p := Prepare([]consent.Signal{sig("a@example.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "crm")}, "FR", time.Now())
	if r, err := Reconcile(context.Background(), st, id, p, testRoutes); err != nil || r.AlreadyDone {
		t.Fatalf("first run: %+v %v", r, err)
	}
	r, err := Reconcile(context.Background(), st, id, p, testRoutes)
	if err != nil || !r.AlreadyDone {
		t.Fatalf("second run: want AlreadyDone, got %+v %v", r, err)
	}
	if n := count(t, st, `SELECT count(*) FROM suppression_outbox`); n != 2 {
		t.Fatalf("outbox rows = %d, want 2", n)
	}
}

func TestReconcileBatchTwoSignalsOneSubject(t *testing.T) {
	st := openStore(t)
	const e = "Batch@Example.com"
	partners := sig(e, consent.StatusGranted, "2025-11-20T10:00:00Z", "form")
	partners.Purpose = consent.PurposePartners
	partners.Evidence.PartnerList = "partners-2025-10" // informed: the list shown
	r := deliver(t, st,
		sig(e, consent.StatusGranted, "2025-11-20T10:00:00Z", "form"),
		partners,
		sig(" batch@example.com", consent.StatusWithdrawn, "2025-11-20T10:01:00Z", "form"),
		sig("batch@example.com", consent.StatusWithdrawn, "2025-11-20T10:01:00Z", "form"), // same fact twice in one request
	)
	if r.Notes.Applied != 3 || r.Notes.Duplicate != 1 {
		t.Fatalf("notes = %+v, want 3 applied and 1 duplicate", r.Notes)
	}
	if n := count(t, st, `SELECT count(*) FROM subjects`); n != 1 {
		t.Fatalf("subjects = %d, want 1 (one normalized address)", n)
	}
	if got := stateOf(t, st, "batch@example.com"); got != "withdrawn" {
		t.Fatalf("state = %s", got)
	}
}

func TestReconcileEchoAndRouting(t *testing.T) {
	st := openStore(t)
	w := sig("echo@example.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "mailchimp-acme")
	deliver(t, st, w)
	var dests []string
	if err := st.DB.Select(&dests, `SELECT destination FROM suppression_outbox ORDER BY destination`); err != nil {
		t.Fatal(err)
	}
	if len(dests) != 1 || dests[0] != "sendgrid-acme" {
		t.Fatalf("destinations = %v, want only sendgrid-acme (no echo to mailchimp-acme, no other brand)", dests)
	}
	// Withdrawing partners does not reach the marketing destinations.
	p := sig("echo@example.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "form")
	p.Purpose = consent.PurposePartners
	if r := deliver(t, st, p); r.Notes.Suppressions != 0 {
		t.Fatalf("partners withdrawal queued %d suppressions, want 0", r.Notes.Suppressions)
	}
}

func TestReconcileInvalidGrantGrantsNothing(t *testing.T) {
	st := openStore(t)
	g := sig("inv@example.com", consent.StatusGranted, "2025-11-20T10:00:00Z", "form")
	g.Problems = []string{"unambiguous: value cannot be mapped"}
	r := deliver(t, st, g)
	if r.Notes.Invalid != 1 || r.Notes.Applied != 0 {
		t.Fatalf("notes = %+v", r.Notes)
	}
	if got := stateOf(t, st, "inv@example.com"); got != "none" {
		t.Fatalf("state = %s, want none", got)
	}
	if n := count(t, st, `SELECT count(*) FROM consent_events WHERE valid = false`); n != 1 {
		t.Fatalf("invalid ledger rows = %d, want 1 (kept as record)", n)
	}
}

func TestReconcileSkipsUnusableSubjects(t *testing.T) {
	st := openStore(t)
	bad := sig("not-an-address", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "form")
	nul := sig("a\x00b@example.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "form")
	ok := sig("ok@example.com", consent.StatusWithdrawn, "2025-11-20T10:00:00Z", "form")
	r := deliver(t, st, bad, nul, ok)
	if r.Notes.Applied != 1 || len(r.Notes.Skipped) != 2 {
		t.Fatalf("notes = %+v, want 1 applied and 2 skipped", r.Notes)
	}
	for _, s := range r.Notes.Skipped {
		if bytes.Contains([]byte(s), []byte("example.com")) || bytes.Contains([]byte(s), []byte("not-an-address")) {
			t.Fatalf("skip note carries the address: %q", s)
		}
	}
}

func TestLedgerHashChain(t *testing.T) {
	st := openStore(t)
	const e = "chain@example.com"
	deliver(t, st, sig(e, consent.StatusGranted, "2025-11-20T10:00:00.123456789Z", "form"))
	deliver(t, st, sig(e, consent.StatusWithdrawn, "2025-11-20T10:01:00Z", "crm"))
	deliver(t, st, sig(e, consent.StatusGranted, "2025-11-20T09:00:00Z", "form"))
	var rows []struct {
		Prev []byte `db:"prev_hash"`
		Hash []byte `db:"hash"`
	}
	if err := st.DB.Select(&rows, `SELECT prev_hash, hash FROM consent_events ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Prev != nil {
		t.Fatalf("rows = %d, first prev = %x", len(rows), rows[0].Prev)
	}
	for i := 1; i < len(rows); i++ {
		if !bytes.Equal(rows[i].Prev, rows[i-1].Hash) {
			t.Fatalf("row %d prev_hash does not chain to row %d", i, i-1)
		}
	}
	// The ledger is append-only.
	if _, err := st.DB.Exec(`UPDATE consent_events SET status = 'granted'`); err == nil {
		t.Fatal("UPDATE of the ledger succeeded; want refusal")
	}
	if _, err := st.DB.Exec(`DELETE FROM consent_events`); err == nil {
		t.Fatal("DELETE of the ledger succeeded; want refusal")
	}
}

func TestReconcileStoresHostileEvidence(t *testing.T) {
	st := openStore(t)
	g := sig("ua@example.com", consent.StatusGranted, "2025-11-20T10:00:00Z", "form")
	g.Evidence = consent.Evidence{UserAgent: "Mozilla\x00/5.0 \xff\xfe", PageURL: "https://x/\x00", Checkbox: "on"}
	r := deliver(t, st, g)
	if r.Notes.Applied != 1 {
		t.Fatalf("notes = %+v", r.Notes)
	}
	var ua string
	if err := st.DB.Get(&ua, `SELECT evidence->>'user_agent' FROM consent_events`); err != nil {
		t.Fatal(err)
	}
	if ua != "Mozilla/5.0 \uFFFD" { // a run of invalid bytes becomes one U+FFFD
		t.Fatalf("stored user agent = %q", ua)
	}
}

// TestReconcileAnyDeliveryOrder: the same signals delivered in any order,
// each as its own webhook, leave the same state (property-based: random
// signal sets with many ties, several shuffles each, against Postgres).
func TestReconcileAnyDeliveryOrder(t *testing.T) {
	st := openStore(t)
	rng := rand.New(rand.NewPCG(7, 11))
	statuses := []consent.Status{consent.StatusGranted, consent.StatusWithdrawn, consent.StatusPending}
	base := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	for trial := 0; trial < 25; trial++ {
		n := 2 + rng.IntN(5)
		signals := make([]consent.Signal, n)
		for i := range signals {
			s := sig("x@example.com", statuses[rng.IntN(3)], "2025-11-20T10:00:00Z", fmt.Sprintf("src%d", rng.IntN(3)))
			s.OccurredAt = base.Add(time.Duration(rng.IntN(3)) * time.Minute) // many ties
			signals[i] = s
		}
		var want string
		for shuffle := 0; shuffle < 4; shuffle++ {
			email := fmt.Sprintf("order-%d-%d@example.com", trial, shuffle)
			perm := rng.Perm(n)
			for _, i := range perm {
				s := signals[i]
				s.Subject.Email = email
				deliver(t, st, s)
			}
			var got string
			err := st.DB.Get(&got, `SELECT cs.status || ' ' || to_char(cs.occurred_at AT TIME ZONE 'UTC', 'HH24:MI')
				FROM consent_states cs JOIN subjects s ON s.id = cs.subject_id WHERE s.email = $1`, email)
			if err != nil {
				t.Fatal(err)
			}
			if shuffle == 0 {
				want = got
			} else if got != want {
				t.Fatalf("trial %d: order %v gave %q, another order gave %q", trial, perm, got, want)
			}
		}
	}
}
