package worker

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// Route says which destination must hear a withdrawal: the destination's
// brand, channels and purposes. Routes come from config.Destinations.
type Route struct {
	Destination string
	Brand       string
	Channels    []consent.Channel
	Purposes    []consent.Purpose
}

// RoutesFrom builds the routes of the configured destinations.
func RoutesFrom(ds []config.Destination) []Route {
	out := make([]Route, 0, len(ds))
	for _, d := range ds {
		r := Route{Destination: d.Name, Brand: d.Brand}
		for _, c := range d.Channels {
			r.Channels = append(r.Channels, consent.Channel(c))
		}
		for _, p := range d.Purposes {
			r.Purposes = append(r.Purposes, consent.Purpose(p))
		}
		out = append(out, r)
	}
	return out
}

// Matches reports whether a withdrawal described by sig must be pushed to
// r: same brand, a channel and purpose r sends on, and not the destination
// the withdrawal came from (echo: a provider's own unsubscribe webhook is
// never pushed back to it).
func (r Route) Matches(sig consent.Signal) bool {
	return r.Brand == sig.Brand && r.Destination != sig.Source &&
		slices.Contains(r.Channels, sig.Channel) && slices.Contains(r.Purposes, sig.Purpose)
}

// Prepared is a batch ready to reconcile: signals normalized and validated,
// and what was left out, for the inbox row's notes.
type Prepared struct {
	Signals []consent.Signal
	Notes   Notes
}

// Notes is stored on the inbox row (JSON): what the request held besides
// applied signals. No addresses: counts and positions only.
type Notes struct {
	Signals       int      `json:"signals"`
	Applied       int      `json:"applied"`
	Stale         int      `json:"stale,omitempty"`
	Invalid       int      `json:"invalid,omitempty"`
	Duplicate     int      `json:"duplicate,omitempty"`
	Suppressions  int      `json:"suppressions,omitempty"`
	Undeliverable int      `json:"undeliverable,omitempty"`
	Erasures      int      `json:"erasures,omitempty"`
	Skipped       []string `json:"skipped,omitempty"`
}

// Prepare normalizes every signal's subject (consent.NormalizeSubject),
// puts its times at the ledger's precision, and drops, with a note, signals
// that cannot be stored (no usable identifier, unknown channel). The order
// of the result is by subject key, then occurrence: the order subject rows
// are locked in, which rules out deadlocks between concurrent batches.
func Prepare(signals []consent.Signal, region string) Prepared {
	var p Prepared
	for i, s := range signals {
		sub, err := consent.NormalizeSubject(s.Subject, region)
		if err != nil {
			p.Notes.Skipped = append(p.Notes.Skipped, fmt.Sprintf("signal %d: %v", i, err))
			continue
		}
		s = s.Clean()
		s.Subject = sub
		s.OccurredAt = consent.CanonicalTime(s.OccurredAt)
		if s.Evidence.ConfirmedAt != nil {
			t := consent.CanonicalTime(*s.Evidence.ConfirmedAt)
			s.Evidence.ConfirmedAt = &t
		}
		if err := s.Validate(); err != nil {
			p.Notes.Skipped = append(p.Notes.Skipped, fmt.Sprintf("signal %d: %v", i, err))
			continue
		}
		p.Signals = append(p.Signals, s)
	}

	slices.SortStableFunc(p.Signals, func(a, b consent.Signal) int {
		return cmp.Or(cmp.Compare(a.Subject.Key(), b.Subject.Key()), a.OccurredAt.Compare(b.OccurredAt))
	})
	p.Notes.Signals = len(p.Signals)
	return p
}

// Reconciled is what Reconcile did.
type Reconciled struct {
	// AlreadyDone: the inbound event had been processed; nothing changed.
	AlreadyDone bool
	Notes       Notes
	// Destinations that got new outbox rows.
	Destinations []string
}

// Reconcile applies a prepared batch from inbound event inboundID in one
// Postgres transaction: for each signal it appends to the subject's
// hash-chained ledger (a fact already there appends nothing), moves the
// current state when consent.Reconcile says so, and on a move to withdrawn
// queues a suppression for every matching route. The inbound row is locked
// first and marked processed last, so a redelivered task changes nothing
// twice and a crash leaves nothing half-applied.
func Reconcile(ctx context.Context, st *store.Store, inboundID int64, p Prepared, routes []Route) (Reconciled, error) {
	var res Reconciled
	err := st.Tx(ctx, func(tx *sqlx.Tx) error {
		res = Reconciled{Notes: p.Notes}
		res.Notes.Skipped = make([]string, len(p.Notes.Skipped))
		for i, n := range p.Notes.Skipped {
			res.Notes.Skipped[i] = consent.CleanText(n, 300)
		}
		status, err := store.LockInbound(ctx, tx, inboundID)
		if err != nil {
			return fmt.Errorf("lock inbound: %w", err)
		}
		if status != store.InboundReceived {
			res.AlreadyDone = true
			return nil
		}
		dests := map[string]bool{}
		for _, sig := range p.Signals {
			added, err := applySignal(ctx, tx, inboundID, sig, routes, &res.Notes)
			if err != nil {
				return err
			}
			for _, d := range added {
				dests[d] = true
			}
		}
		for d := range dests {
			res.Destinations = append(res.Destinations, d)
		}
		slices.Sort(res.Destinations)
		return store.FinishInbound(ctx, tx, inboundID, res.Notes)
	})
	return res, err
}

// applySignal reconciles one signal inside tx and returns the destinations
// it queued suppressions for.
func applySignal(ctx context.Context, tx *sqlx.Tx, inboundID int64, sig consent.Signal, routes []Route, n *Notes) ([]string, error) {
	subjectID, err := store.LockSubject(ctx, tx, sig.Subject)
	if err != nil {
		return nil, err
	}
	cur, err := store.State(ctx, tx, subjectID, sig.Channel, sig.Brand, sig.Purpose)
	if err != nil {
		return nil, err
	}
	out := consent.Reconcile(cur, sig)
	prev, err := store.LastHash(ctx, tx, subjectID)
	if err != nil {
		return nil, err
	}
	rec := consent.NewLedgerRecord(subjectID, inboundID, sig, out.Reason)
	eventID, err := store.AppendLedger(ctx, tx, store.LedgerEntry{
		SubjectID: subjectID, InboundID: inboundID, DedupKey: consent.FactKey(sig), Signal: sig,
		Outcome: out.Reason, PrevHash: prev, Hash: consent.ChainHash(prev, rec),
	})
	if err != nil {
		return nil, err
	}
	if eventID == 0 {
		n.Duplicate++
		return nil, nil
	}
	switch out.Reason {
	case "stale", "unchanged":
		n.Stale++
	case "invalid":
		n.Invalid++
	}
	if !out.Apply {
		return nil, nil
	}
	n.Applied++
	if err := store.PutState(ctx, tx, subjectID, eventID, sig); err != nil {
		return nil, err
	}
	if !out.Suppress {
		return nil, nil
	}
	var dests []string
	for _, r := range routes {
		if !r.Matches(sig) {
			continue
		}
		ok, err := store.AddOutbox(ctx, tx, store.OutboxRow{
			Destination: r.Destination, ConsentEventID: eventID, SubjectID: subjectID,
			Email:   sql.NullString{String: cmp.Or(sig.Subject.EmailOriginal, sig.Subject.Email), Valid: sig.Subject.Email != ""},
			Phone:   sql.NullString{String: sig.Subject.Phone, Valid: sig.Subject.Phone != ""},
			Channel: string(sig.Channel), Brand: sig.Brand, Purpose: string(sig.Purpose),
			Reason: sql.NullString{String: sig.Evidence.Event, Valid: sig.Evidence.Event != ""},
		})
		if err != nil {
			return nil, err
		}
		if ok {
			n.Suppressions++
			dests = append(dests, r.Destination)
		}
	}
	return dests, nil
}
