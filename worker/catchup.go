package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// catchUpLockKey is the Postgres advisory lock that makes a catch-up
// single-flight across processes (worker start-up and the command).
const catchUpLockKey int64 = 0x636f6e73656e7403 // "consent\x03"

// DefaultCatchUpBatch is how many subjects one catch-up transaction reads.
const DefaultCatchUpBatch = 1000

// CatchUpStore is what a catch-up needs of Postgres (store.Store).
type CatchUpStore interface {
	Ledger
	WithLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error)
	CatchUpState(ctx context.Context, destination string) (store.CatchUpState, bool, error)
	LedgerHigh(ctx context.Context) (int64, error)
	WithdrewSince(ctx context.Context, q store.CatchUpQuery, fromEvent, toEvent, afterSubject int64, limit int) ([]int64, error)
}

// Pusher enqueues a push task for a destination (jobs.Enqueuer).
type Pusher interface {
	Push(ctx context.Context, destination string) error
}

// CatchUp brings destinations added to the configuration later (or whose
// brand, channels or purposes changed) under the withdrawals that stood
// before: for every person (identity set) and every key the destination
// covers whose withdrawal still stands, it queues the suppression
// reconciliation would have queued had the destination been there —
// the same rows: the standing withdrawal's ledger row, every live member's
// address, the echo rule (Route.suppression).
type CatchUp struct {
	Store  CatchUpStore
	Routes []Route
	// Policy decides whether a grant lifted a withdrawal (consent.WithdrawnAt).
	Policy consent.Policy
	// Pusher, when set, is told after each page that queued rows.
	Pusher Pusher
	Logger *slog.Logger
	// Batch is the subjects read per transaction (DefaultCatchUpBatch when 0).
	Batch int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// CatchUpOptions say how CatchUp.Run runs.
type CatchUpOptions struct {
	// Destination limits the run to one destination ("" = all).
	Destination string
	// DryRun counts what would be queued and writes nothing.
	DryRun bool
	// Remember skips destinations already caught up for their current
	// route, resumes an interrupted run, and records each one's progress
	// and end (destination_catch_up): the worker's start-up run. Without it
	// every destination is read from the start and nothing is recorded
	// (the command: a later start-up still catches up a destination whose
	// workers did not run the new configuration yet).
	Remember bool
}

// CatchUpReport is what a catch-up did at one destination.
type CatchUpReport struct {
	Destination string `json:"destination"`
	// Incremental: already caught up for its current route; only the
	// people who withdrew since were read again (Remember).
	Incremental bool `json:"incremental,omitempty"`
	// Subjects read, Queued suppressions added (or, DryRun, to add).
	Subjects int64 `json:"subjects"`
	Queued   int64 `json:"queued"`
}

// RouteHash identifies what a destination must hear: its brand, channels
// and purposes (sorted). A destination whose hash changes catches up again.
func RouteHash(rt Route) string {
	ch := make([]string, len(rt.Channels))
	for i, c := range rt.Channels {
		ch[i] = string(c)
	}
	pu := make([]string, len(rt.Purposes))
	for i, p := range rt.Purposes {
		pu[i] = string(p)
	}
	slices.Sort(ch)
	slices.Sort(pu)
	sum := sha256.Sum256([]byte(rt.Brand + "\x00" + strings.Join(slices.Compact(ch), ",") + "\x00" + strings.Join(slices.Compact(pu), ",")))
	return hex.EncodeToString(sum[:16])
}

func (c CatchUp) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Run catches up every configured destination (or only o.Destination),
// one after the other, paging through live subjects in ascending id order,
// c.Batch per transaction; each page takes the identity locks of its
// people (store.Tx.CatchUpPage), queues its rows and, with o.Remember,
// records its progress, in that one transaction. Rows already queued are
// never queued twice (the outbox's unique (destination, ledger row,
// target) key, and a suppression of the key already queued for the target
// at the destination with a withdrawal as new is taken as done). A
// destination the configuration lacks is an error. It is not
// single-flight by itself: see RunLocked.
func (c CatchUp) Run(ctx context.Context, o CatchUpOptions) ([]CatchUpReport, error) {
	var routes []Route
	for _, rt := range c.Routes {
		if o.Destination == "" || rt.Destination == o.Destination {
			routes = append(routes, rt)
		}
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("catch-up: no destination named %q", o.Destination)
	}
	var reports []CatchUpReport
	for _, rt := range routes {
		rep, err := c.one(ctx, rt, o)
		reports = append(reports, rep)
		if err != nil {
			return reports, fmt.Errorf("catch-up: %s: %w", rt.Destination, err)
		}
	}
	return reports, nil
}

// RunLocked is Run under the catch-up's advisory lock: it reports false,
// having done nothing, when another process holds it.
func (c CatchUp) RunLocked(ctx context.Context, o CatchUpOptions) ([]CatchUpReport, bool, error) {
	var reports []CatchUpReport
	ran, err := c.Store.WithLock(ctx, catchUpLockKey, func(ctx context.Context) error {
		var err error
		reports, err = c.Run(ctx, o)
		return err
	})
	return reports, ran, err
}

func (c CatchUp) one(ctx context.Context, rt Route, o CatchUpOptions) (CatchUpReport, error) {
	rep := CatchUpReport{Destination: rt.Destination}
	state := store.CatchUpState{Destination: rt.Destination, RouteHash: RouteHash(rt), StartedAt: c.now().UTC()}
	batch := c.Batch
	if batch <= 0 {
		batch = DefaultCatchUpBatch
	}
	q := store.CatchUpQuery{Destination: rt.Destination, Brand: rt.Brand, Limit: batch}
	for _, ch := range rt.Channels {
		q.Channels = append(q.Channels, string(ch))
	}
	for _, p := range rt.Purposes {
		q.Purposes = append(q.Purposes, string(p))
	}
	key, err := c.Store.IdentityKey(ctx)
	if err != nil {
		return rep, err
	}
	fresh := true
	if o.Remember {
		prev, ok, err := c.Store.CatchUpState(ctx, rt.Destination)
		if err != nil {
			return rep, err
		}
		if ok && prev.RouteHash == state.RouteHash {
			if prev.DoneAt.Valid {
				return c.since(ctx, rt, prev, key, q, o)
			}
			state, fresh = prev, false // resume an interrupted run
		}
	}
	if fresh {
		// Withdrawals recorded from now on by processes still running an
		// older configuration are read by a later start (since).
		if state.LedgerHigh, err = c.Store.LedgerHigh(ctx); err != nil {
			return rep, err
		}
	}
	errDry := errors.New("dry run")
	for {
		q.AfterID = state.AfterID
		var read int
		var added, next int64
		err := c.Store.Tx(ctx, func(tx *store.Tx) error {
			page, err := tx.CatchUpPage(ctx, key, q)
			if err != nil {
				return err
			}
			read, next = page.Read, page.Next
			rows := catchUpRows(rt, page, c.Policy)
			if o.DryRun {
				added = int64(len(rows))
				return errDry // nothing written
			}
			if added, err = tx.AddOutboxRows(ctx, rows); err != nil {
				return err
			}
			if !o.Remember {
				return nil
			}
			saved := state
			if page.Read > 0 {
				saved.AfterID = page.Next
			}
			saved.Queued += added
			return tx.SaveCatchUp(ctx, saved, page.Read == 0)
		})
		if err != nil && !errors.Is(err, errDry) {
			return rep, err
		}
		if read == 0 {
			break
		}
		rep.Subjects += int64(read)
		rep.Queued += added
		state.Queued += added
		state.AfterID = next
		if added > 0 && !o.DryRun && c.Pusher != nil {
			if err := c.Pusher.Push(ctx, rt.Destination); err != nil && c.Logger != nil {
				c.Logger.Warn("catch-up: enqueue push failed; the sweeper will retry", "destination", rt.Destination, "err", err)
			}
		}
	}
	if c.Logger != nil && !o.DryRun {
		c.Logger.Info("catch-up done", "destination", rt.Destination, "subjects", rep.Subjects, "queued", rep.Queued)
	}
	return rep, nil
}

// catchUpMargin is how many ledger rows before the last run's mark an
// incremental run reads again (see since).
const catchUpMargin = 100000

// since is the run of a destination already caught up for its route: it
// reads again only the people with a covered withdrawal recorded after
// the last run began (prev.LedgerHigh, less catchUpMargin rows) — those a
// process still running an older configuration reconciled without this
// destination, during a rolling restart — and moves the mark on.
func (c CatchUp) since(ctx context.Context, rt Route, prev store.CatchUpState, key []byte, q store.CatchUpQuery, o CatchUpOptions) (CatchUpReport, error) {
	rep := CatchUpReport{Destination: rt.Destination}
	high, err := c.Store.LedgerHigh(ctx)
	if err != nil {
		return rep, err
	}
	rep.Incremental = true
	// Ledger ids are drawn before their batch commits: a row numbered
	// below the mark may have committed after it was read. The last
	// catchUpMargin rows before the mark are read again (idempotent).
	from := max(0, prev.LedgerHigh-catchUpMargin)
	var after int64
	for {
		subs, err := c.Store.WithdrewSince(ctx, q, from, high, after, q.Limit)
		if err != nil {
			return rep, err
		}
		if len(subs) == 0 {
			break
		}
		after = subs[len(subs)-1]
		page := q
		page.Subjects = subs
		var added int64
		err = c.Store.Tx(ctx, func(tx *store.Tx) error {
			p, err := tx.CatchUpPage(ctx, key, page)
			if err != nil {
				return err
			}
			rep.Subjects += int64(p.Read)
			rows := catchUpRows(rt, p, c.Policy)
			if o.DryRun {
				added = int64(len(rows))
				return nil
			}
			added, err = tx.AddOutboxRows(ctx, rows)
			return err
		})
		if err != nil {
			return rep, err
		}
		rep.Queued += added
		if added > 0 && !o.DryRun && c.Pusher != nil {
			if err := c.Pusher.Push(ctx, rt.Destination); err != nil && c.Logger != nil {
				c.Logger.Warn("catch-up: enqueue push failed; the sweeper will retry", "destination", rt.Destination, "err", err)
			}
		}
	}
	if o.DryRun {
		return rep, nil
	}
	next := prev
	next.LedgerHigh, next.Queued = high, prev.Queued+rep.Queued
	return rep, c.Store.Tx(ctx, func(tx *store.Tx) error { return tx.SaveCatchUp(ctx, next, true) })
}

// catchUpRows are the suppressions page's people still need at rt: for
// each person (the members' facts merged, consent.MergeFacts, as the
// service layer merges them) and each key rt covers that is withdrawn
// (consent.WithdrawnAt: the eligibility rule, so exactly the keys every
// view of the person answers "withdrawn" for), the person's latest
// withdrawal of the key is queued for every live member, as
// reconciliation queues it (Route.suppression: its ledger row, the member
// as target, the echo rule for the member that withdrew) — unless rt
// already holds a suppression of the key for that member whose withdrawal
// is as new.
func catchUpRows(rt Route, page store.CatchUpPage, policy consent.Policy) []store.OutboxRow {
	latest := map[store.TargetKey]store.SetWithdrawal{} // per member and key
	for _, w := range page.Withdrawals {
		latest[store.TargetKey{Target: w.SubjectID, Key: w.Key()}] = w
	}
	var rows []store.OutboxRow
	for _, p := range page.People {
		if len(p.Members) == 0 {
			continue
		}
		f := p.Facts[0]
		if len(p.Facts) > 1 {
			f = consent.MergeFacts(p.Facts[0], p.Facts[1:]...)
		}
		for _, ch := range rt.Channels {
			for _, pu := range rt.Purposes {
				k := consent.Key{Channel: ch, Brand: rt.Brand, Purpose: pu}
				if _, withdrawn := consent.WithdrawnAt(f, k, policy); !withdrawn {
					continue
				}
				// The set's latest withdrawal of k (the newest ledger row
				// on a tie), the one reconciliation pushed last.
				var w store.SetWithdrawal
				for _, m := range p.Members {
					mw, ok := latest[store.TargetKey{Target: m.SubjectID, Key: k}]
					if ok && (w.EventID == 0 || mw.OccurredAt.After(w.OccurredAt) || mw.OccurredAt.Equal(w.OccurredAt) && mw.EventID > w.EventID) {
						w = mw
					}
				}
				if w.EventID == 0 {
					continue
				}
				owner := memberOf(p.Members, w.SubjectID, consent.Signal{})
				sig := consent.Signal{Subject: owner.Subject(), Channel: k.Channel, Brand: k.Brand, Purpose: k.Purpose,
					Status: consent.StatusWithdrawn, OccurredAt: w.OccurredAt, Source: w.Source,
					Evidence: consent.Evidence{Event: w.Reason}}
				for _, m := range p.Members {
					if at, ok := page.Suppressed[store.TargetKey{Target: m.SubjectID, Key: k}]; ok && !at.Before(w.OccurredAt) {
						continue // already queued there, for this withdrawal or a newer one
					}
					if row, ok := rt.suppression(w.SubjectID, w.EventID, sig, m); ok {
						rows = append(rows, row)
					}
				}
			}
		}
	}
	return rows
}

// catchUpRetry is how long a worker waits before trying its start-up
// catch-up again, after a failure or while another process runs one.
const catchUpRetry = 30 * time.Second

// CatchUp is the worker's catch-up: its routes, policy and pushes.
func (w *Worker) CatchUp() CatchUp {
	c := CatchUp{Store: w.Store, Routes: w.Routes, Policy: w.Config.Policy.Rules(), Logger: w.Logger, Now: w.Now}
	if w.Enqueuer != nil {
		c.Pusher = w.Enqueuer
	}
	return c
}

// RunCatchUp catches up, once at start, every destination not yet caught
// up for its current route (CatchUpOptions.Remember), one process at a
// time (an advisory lock; the others try again every 30 s and then find
// the work recorded as done). A failed run is tried again after 30 s,
// resuming where it stopped. It returns when done or when ctx ends.
func (w *Worker) RunCatchUp(ctx context.Context) {
	c := w.CatchUp()
	for {
		reports, ran, err := c.RunLocked(ctx, CatchUpOptions{Remember: true})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.Logger.Error("catch-up failed; trying again", "err", err, "in", catchUpRetry.String())
		case ran:
			for _, r := range reports {
				if r.Queued > 0 {
					w.Logger.Warn("catch-up: standing withdrawals queued for a destination that had not heard them",
						"destination", r.Destination, "queued", r.Queued, "subjects", r.Subjects)
				}
			}
			return
		default:
			w.Logger.Debug("catch-up running in another process")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(catchUpRetry):
		}
	}
}
