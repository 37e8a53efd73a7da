package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/store"
)

// pushLease is how long a claimed outbox row stays reserved for one push:
// longer than a call with its in-place retries can take (4 attempts of at
// most 10 s plus waits of at most 30 s each), short enough that a crashed
// pusher's rows are soon claimable again.
const pushLease = 5 * time.Minute

// transientBackoff is the wait before retrying rows after a transient
// failure that named no wait.
const transientBackoff = 30 * time.Second

// HandlePush drains a destination's due outbox rows, in batches of the
// destination's MaxBatch (capped by worker.push_batch):
//   - accepted rows become sent, with the provider's answer as receipt;
//   - rows refused for good (ErrPermanent) become failed, never retried;
//   - on a transient failure the batch goes back to pending with its next
//     attempt time and the task returns a *connectors.RetryAfterError, so
//     asynq retries it after the provider's requested wait (never a retry
//     storm: one task per wait).
func (w *Worker) HandlePush(ctx context.Context, t *asynq.Task) error {
	var p jobs.PushPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Destination == "" {
		return fmt.Errorf("push: bad payload: %w", asynq.SkipRetry)
	}
	dest, ok := w.Destinations[p.Destination]
	if !ok {
		// Rows stay pending: they are pushed once the destination is configured again.
		w.Logger.Error("push: destination not configured", "destination", p.Destination)
		return fmt.Errorf("push: destination %q not configured: %w", p.Destination, asynq.SkipRetry)
	}
	limit := min(dest.MaxBatch(), w.Config.Worker.PushBatch)
	for {
		rows, err := w.Store.ClaimOutbox(ctx, p.Destination, limit, pushLease)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		if err := w.pushBatch(ctx, p.Destination, dest, rows); err != nil {
			return err
		}
	}
}

func (w *Worker) pushBatch(ctx context.Context, name string, dest connectors.Destination, rows []store.OutboxRow) error {
	batch := make([]connectors.Suppression, len(rows))
	for i, r := range rows {
		batch[i] = connectors.Suppression{
			ID: r.ID, Email: r.Email.String, Phone: r.Phone.String, Channel: consent.Channel(r.Channel),
			Brand: r.Brand, Purpose: consent.Purpose(r.Purpose), Reason: r.Reason.String,
		}
	}
	start := time.Now()
	results, err := dest.Push(ctx, batch)
	w.Metrics.PushSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	// Record outcomes even when the task's context has ended.
	rctx := context.WithoutCancel(ctx)
	if err != nil {
		if errors.Is(err, connectors.ErrPermanent) {
			done := make([]store.OutboxDone, len(rows))
			for i, r := range rows {
				done[i] = store.OutboxDone{ID: r.ID, Status: store.OutboxFailed, Error: err.Error()}
			}
			w.Metrics.SuppressionsPushed.WithLabelValues(name, "failed").Add(float64(len(rows)))
			w.Logger.Error("push refused for good", "destination", name, "rows", len(rows), "err", err)
			return w.complete(rctx, done)
		}
		delay, named := connectors.RetryDelay(err)
		if !named {
			delay = transientBackoff
		}
		retry := w.now().Add(delay)
		done := make([]store.OutboxDone, len(rows))
		for i, r := range rows {
			done[i] = store.OutboxDone{ID: r.ID, Status: store.OutboxPending, Error: err.Error(), Retry: retry}
		}
		w.Metrics.SuppressionsPushed.WithLabelValues(name, "retry").Add(float64(len(rows)))
		w.Logger.Warn("push failed, will retry", "destination", name, "rows", len(rows), "in", delay.String(), "err", err)
		if cerr := w.complete(rctx, done); cerr != nil {
			return cerr
		}
		return &connectors.RetryAfterError{Delay: delay, Err: err}
	}
	byID := make(map[int64]connectors.Result, len(results))
	for _, r := range results {
		byID[r.ID] = r
	}
	done := make([]store.OutboxDone, len(rows))
	var sent, failed, missing int
	for i, r := range rows {
		res, ok := byID[r.ID]
		switch {
		case !ok:
			// A destination that forgot a row: try it again later.
			missing++
			done[i] = store.OutboxDone{ID: r.ID, Status: store.OutboxPending, Error: "no result from destination", Retry: w.now().Add(transientBackoff)}
		case res.Err == nil:
			sent++
			done[i] = store.OutboxDone{ID: r.ID, Status: store.OutboxSent, Receipt: res.Receipt}
		case errors.Is(res.Err, connectors.ErrPermanent):
			failed++
			done[i] = store.OutboxDone{ID: r.ID, Status: store.OutboxFailed, Receipt: res.Receipt, Error: res.Err.Error()}
		default:
			missing++
			done[i] = store.OutboxDone{ID: r.ID, Status: store.OutboxPending, Error: res.Err.Error(), Retry: w.now().Add(transientBackoff)}
		}
	}
	w.Metrics.SuppressionsPushed.WithLabelValues(name, "sent").Add(float64(sent))
	if failed > 0 {
		w.Metrics.SuppressionsPushed.WithLabelValues(name, "failed").Add(float64(failed))
		w.Logger.Error("suppressions refused by destination", "destination", name, "rows", failed)
	}
	if missing > 0 {
		w.Metrics.SuppressionsPushed.WithLabelValues(name, "retry").Add(float64(missing))
	}
	return w.complete(rctx, done)
}

// recordAttempts and recordBackoff bound how long a push's outcome is
// retried when Postgres cannot record it (a restart, a failover): about
// 30 s in all, so a blip never leaves the rows leased for pushLease.
const (
	recordAttempts = 8
	recordBackoff  = 250 * time.Millisecond
)

// complete records the outcome of a push (store.CompleteOutbox), retrying
// with doubling waits while Postgres refuses. The provider has already
// answered: giving up at once would keep the rows leased until pushLease
// ends and push them again. If every attempt fails the error is returned
// (asynq retries the task; the rows are pushed again once the lease ends —
// harmless, provider suppression calls are idempotent).
func (w *Worker) complete(ctx context.Context, done []store.OutboxDone) error {
	wait := recordBackoff
	var err error
	for i := 0; i < recordAttempts; i++ {
		if err = w.Store.CompleteOutbox(ctx, done); err == nil {
			return nil
		}
		if i == recordAttempts-1 {
			break
		}
		w.Logger.Warn("cannot record push outcome, retrying", "rows", len(done), "attempt", i+1, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		wait = min(2*wait, 8*time.Second)
	}
	return err
}
