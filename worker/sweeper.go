package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/consentsync/consentsync/jobs"
)

// sweepLockKey is the Postgres advisory lock that makes sweeps single-flight
// across every worker process sharing the database.
const sweepLockKey int64 = 0x636f6e73656e7401 // "consent\x01"

// sweepLimit bounds the inbound rows one sweep re-enqueues.
const sweepLimit = 1000

// sweepFailures is how many enqueues in a row may fail before a sweep
// gives up on the rest of its inbound rows or destinations (Redis is down,
// not one task key refused): one key Redis refuses does not hold the
// others back, every sweep, and a Redis that is down is not asked a
// thousand times.
const sweepFailures = 3

// Sweep re-enqueues work that Redis may have lost: inbound rows still
// 'received' and outbox rows still due, both older than worker.sweep_after.
// Enqueueing is idempotent (inbound tasks carry their row id as TaskID; push
// tasks claim rows), so a sweep that races a live task does no harm. Only one
// process sweeps at a time (Postgres advisory lock); the others skip. It
// returns how many inbound events and destinations it re-enqueued: only
// tasks it actually enqueued count, not work a live task already holds.
// A destination the configuration lacks gets no task (it would be refused
// and archived every sweep); its rows stay pending, and are logged.
func (w *Worker) Sweep(ctx context.Context) (inbound, outbox int, err error) {
	orphans, archived := 0, 0
	_, err = w.Store.WithLock(ctx, sweepLockKey, func(ctx context.Context) error {
		var errs []error
		failed := 0 // in a row
		fail := func(err error) bool {
			errs = append(errs, err)
			failed++
			return failed >= sweepFailures
		}
		// Ages by Postgres's clock, which stamped the rows: this
		// process's may be off.
		age := w.Config.Worker.SweepAfter
		ids, err := w.Store.UnfinishedInbound(ctx, age, sweepLimit)
		if err != nil {
			return err
		}
		for _, id := range ids {
			got, err := w.Enqueuer.EnqueueInbound(ctx, id, true)
			if err != nil {
				if fail(fmt.Errorf("inbound %d: %w", id, err)) {
					break
				}
				continue
			}
			failed = 0
			switch got {
			case jobs.Queued:
				inbound++
			case jobs.ReplacedArchived:
				// asynq gave up on the task while the row still waited
				// (its last retry failed before a batch began): without
				// this the row would wait for good.
				inbound++
				archived++
			case jobs.ReplacedOrphan:
				// Redis lost part of the task (eviction): counted apart.
				orphans++
			}
		}
		dests, err := w.Store.DueOutboxDestinations(ctx, age)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		failed = 0
		var unknown []string
		for _, d := range dests {
			if _, ok := w.Destinations[d]; !ok {
				// Removed from (or renamed in) the configuration: its rows
				// stay pending until it is configured again. A task would
				// only be refused and archived, one per sweep.
				unknown = append(unknown, d)
				continue
			}
			got, err := w.Enqueuer.EnqueuePushAt(ctx, d, time.Now())
			if err != nil {
				if fail(fmt.Errorf("push %s: %w", d, err)) {
					break
				}
				continue
			}
			failed = 0
			if got == jobs.Queued {
				outbox++
			}
		}
		if len(unknown) > 0 {
			w.Logger.Warn("outbox rows pending for destinations not configured; kept until configured again", "destinations", unknown)
		}
		return errors.Join(errs...)
	})
	if inbound > 0 {
		w.Metrics.Sweeps.WithLabelValues("inbound").Add(float64(inbound))
	}
	if orphans > 0 {
		w.Metrics.Sweeps.WithLabelValues("inbound_orphan").Add(float64(orphans))
		w.Logger.Warn("sweeper replaced orphaned inbound task ids: Redis is losing keys (maxmemory-policy should be noeviction)", "tasks", orphans)
	}
	if archived > 0 {
		w.Logger.Warn("sweeper replaced archived inbound tasks of webhooks still waiting", "tasks", archived)
	}
	if outbox > 0 {
		w.Metrics.Sweeps.WithLabelValues("outbox").Add(float64(outbox))
	}
	return inbound, outbox, err
}

// RunSweeper sweeps at start (a restarted worker picks up what a crashed
// one left at once) and then every worker.sweep_every until ctx ends.
// Errors are logged and the next tick tries again (Redis or Postgres may
// be back).
func (w *Worker) RunSweeper(ctx context.Context) {
	t := time.NewTicker(w.Config.Worker.SweepEvery)
	defer t.Stop()
	first := make(chan time.Time, 1)
	first <- time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-first:
			w.sweepOnce(ctx)
		case <-t.C:
			w.sweepOnce(ctx)
		}
	}
}

func (w *Worker) sweepOnce(ctx context.Context) {
	in, out, err := w.Sweep(ctx)
	if err != nil && ctx.Err() == nil {
		w.Logger.Warn("sweep failed", "err", err)
	} else if in+out > 0 {
		w.Logger.Info("sweep re-enqueued work", "inbound", in, "destinations", out)
	}
}
