package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/store"
)

// driftLockKey is the Postgres advisory lock that makes the periodic drift
// check single-flight across worker processes.
const driftLockKey int64 = 0x636f6e73656e7402 // "consent\x02"

// DriftReport is what a drift check found at one destination.
type DriftReport struct {
	Destination string `json:"destination"`
	// Unsupported: the destination cannot be read back (no
	// connectors.Checker); nothing was checked.
	Unsupported bool `json:"unsupported,omitempty"`
	// Checked suppressions were read back; Missing of them the destination
	// no longer held (each a "drift" line in the subject's history);
	// Unknown the provider could not say; Repaired were put back to pending
	// to be pushed again (with repair).
	Checked  int `json:"checked"`
	Missing  int `json:"missing"`
	Unknown  int `json:"unknown"`
	Repaired int `json:"repaired"`
}

// Drift compares what each destination holds with what it should hold:
// the newest sent suppression per address and scope (store.HeldSuppressions),
// read back with the destination's Checker in batches of its MaxBatch.
// Those it no longer holds (someone re-subscribed in the provider's UI, a
// list re-imported, a provider's data loss) are counted
// (consentsync_drift_found_total) and recorded; with repair they are
// pushed again. destination "" checks every destination; sample > 0 stops
// after that many suppressions per destination, read from a random point
// onwards (wrapping round), so that successive sampled runs cover them
// all. progress,
// when not nil, is called after each batch. A provider call that fails
// ends that destination's check with an error naming it; the others go on.
func (w *Worker) Drift(ctx context.Context, destination string, repair bool, sample int, progress func(DriftReport)) ([]DriftReport, error) {
	names := make([]string, 0, len(w.Destinations))
	for name := range w.Destinations {
		if destination == "" || name == destination {
			names = append(names, name)
		}
	}
	if len(names) == 0 && destination == "" {
		return nil, errors.New("no destinations configured (destinations[] in CONSENTSYNC_CONFIG)")
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no destination named %q", destination)
	}
	sort.Strings(names)
	var reports []DriftReport
	var errs []error
	for _, name := range names {
		rep, err := w.driftOne(ctx, name, repair, sample, progress)
		reports = append(reports, rep)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return reports, errors.Join(errs...)
}

func (w *Worker) driftOne(ctx context.Context, name string, repair bool, sample int, progress func(DriftReport)) (DriftReport, error) {
	rep := DriftReport{Destination: name}
	dest := w.Destinations[name]
	checker, ok := dest.(connectors.Checker)
	if !ok {
		rep.Unsupported = true
		return rep, nil
	}
	limit := min(dest.MaxBatch(), w.Config.Worker.PushBatch)
	timeout := w.timeoutOf(name, limit)
	var after, start int64
	wrapped := false
	if sample > 0 {
		last, err := w.Store.MaxOutboxID(ctx, name)
		if err != nil {
			return rep, err
		}
		if last > 0 {
			start = rand.Int64N(last)
		}
		after = start
	}
	for sample <= 0 || rep.Checked < sample {
		n := limit
		if sample > 0 {
			n = min(n, sample-rep.Checked)
		}
		rows, err := w.Store.HeldSuppressions(ctx, name, after, n)
		if err != nil {
			return rep, err
		}
		if wrapped {
			// Second lap: up to where the first began.
			rows = slices.DeleteFunc(rows, func(r store.OutboxRow) bool { return r.ID > start })
		}
		if len(rows) == 0 {
			if sample > 0 && !wrapped && start > 0 {
				wrapped, after = true, 0
				continue
			}
			return rep, nil
		}
		batch := suppressionsOf(rows)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		statuses, err := checker.Check(cctx, batch)
		cancel()
		if err != nil {
			if d, named := connectors.RetryDelay(err); named && d <= time.Minute {
				// Rate-limited: wait as asked, then read the same batch again.
				select {
				case <-time.After(d):
					continue
				case <-ctx.Done():
					return rep, ctx.Err()
				}
			}
			return rep, errors.New(connectors.MaskAddresses(err.Error()))
		}
		after = rows[len(rows)-1].ID
		rep.Checked += len(rows)
		var missing []int64
		var receipts []string
		for _, st := range statuses {
			switch {
			case st.Unknown:
				rep.Unknown++
			case !st.Suppressed:
				missing = append(missing, st.ID)
				receipts = append(receipts, connectors.MaskAddresses(st.Receipt))
			}
		}
		if len(missing) > 0 {
			// Counted as RecordDrift finds them: a row superseded since it
			// was read (a lift pushed meanwhile) is no drift.
			changed, err := w.Store.RecordDrift(ctx, missing, receipts, repair)
			if err != nil {
				return rep, err
			}
			rep.Missing += changed
			if changed > 0 {
				w.Metrics.DriftFound.WithLabelValues(name).Add(float64(changed))
			}
			if repair && changed > 0 {
				rep.Repaired += changed
				_ = w.pushLater(ctx, name, w.now())
			}
		}
		if progress != nil {
			progress(rep)
		}
	}
	return rep, nil
}

// RunDrift runs the drift check with repair every worker.drift_every (the
// first one drift_every after start), one worker process at a time (an
// advisory lock), until ctx ends. Findings are logged as counts.
func (w *Worker) RunDrift(ctx context.Context) {
	t := time.NewTicker(w.Config.Worker.DriftEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ran, err := w.Store.WithLock(ctx, driftLockKey, func(ctx context.Context) error {
			reports, err := w.Drift(ctx, "", true, w.Config.Worker.DriftSample, nil)
			for _, r := range reports {
				if r.Missing > 0 {
					w.Logger.Warn("drift: suppressions missing at destination, pushed again", "destination", r.Destination, "checked", r.Checked, "missing", r.Missing)
				}
			}
			return err
		})
		if err != nil {
			w.Logger.Error("drift check failed", "err", err)
		} else if !ran {
			w.Logger.Debug("drift check running in another process")
		}
	}
}
