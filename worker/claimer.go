package worker

import (
	"context"
	"time"
)

// Claimer polling: every claimerMin while rows wait, backing off to
// claimerMax when none do.
const (
	claimerMin = 100 * time.Millisecond
	claimerMax = time.Second
)

// RunClaimer reconciles waiting inbound rows in batches apart from their
// tasks until ctx ends: asynq serves tasks in order, so after a backlog a
// new webhook's task may wait behind thousands of tasks whose rows other
// batches already did (each ends at once, but each is a dequeue). The
// claimer takes the oldest waiting rows every claimerMin while it finds
// some (at once again after a full batch), every claimerMax when it does
// not, so a withdrawal waits for no queue. Batches it claims are like a
// task's (Reconciler.ProcessBatch with no own row); the rows' own tasks
// then find them done.
func (w *Worker) RunClaimer(ctx context.Context) {
	w.initOnce.Do(w.initState)
	wait := claimerMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		n, err := w.claimWaiting(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				w.Logger.Warn("claimer: batch failed", "err", err)
			}
			wait = claimerMax
		case n >= w.Config.Worker.InboundBatch:
			wait = 0
		case n > 0:
			wait = claimerMin
		default:
			wait = min(2*wait+claimerMin, claimerMax)
		}
	}
}

// claimWaiting reconciles one batch of the oldest waiting rows; it returns
// how many rows it took.
func (w *Worker) claimWaiting(ctx context.Context) (int, error) {
	n := 0
	_, err := w.processBatchCounted(ctx, BatchClaim{Limit: w.Config.Worker.InboundBatch, OwnOnly: w.resolvedSources()}, &n)
	return n, err
}
