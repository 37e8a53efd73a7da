package worker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/tracing"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/store"
)

// leaseMargin is how much longer than one provider call (bounded by the
// destination's timeout) a claimed row stays reserved: time to record the
// outcome. A pusher that dies mid-call leaves its rows claimable again
// timeout + leaseMargin after the claim, so the sweeper pushes them within
// worker.sweep_after of a restart.
const leaseMargin = 2 * time.Second

// Retry waits of a destination's schedule when the provider names none:
// doubling from minBackoff with each failed call in a row, up to
// maxBackoff.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// backoff is the wait after the n-th failed call in a row (n ≥ 1).
func backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// batchesPerTask is how many push calls, then how many read-back calls, one
// push task makes before it hands over to a new task for the destination:
// with more destinations than worker.push_concurrency, a long backlog at
// one does not hold a worker while the others wait.
const batchesPerTask = 4

// pushCalls is how many HTTP requests a Push of n suppressions to dest
// makes at most: connectors.CallCounter's answer, else one (a batch call).
func pushCalls(dest connectors.Destination, n int) int {
	if c, ok := dest.(connectors.CallCounter); ok {
		return c.PushCalls(n)
	}
	return 1
}

// callAllowance is the time timeoutOf allows each round of
// connectors.InFlight concurrent requests: a provider API's answer
// usually takes 0.1–0.5 s; 1 s is our margin, not a provider's figure.
const callAllowance = time.Second

// timeoutOf bounds one provider operation of calls HTTP requests to
// destination name: its configured timeout (destinations[].timeout,
// default 10s, for the last request) plus the longer of the time its rate
// limit needs to let those requests go and callAllowance per round of
// connectors.InFlight requests, so a connector that makes one request per
// address (SES pushes, most read-backs: 500 Mailchimp members are 63
// rounds) is paced, not cut off, with or without a rate limit. Rows are
// leased, and the destination's push lease held, for that plus
// leaseMargin: a crashed pusher's work is free again that soon.
func (w *Worker) timeoutOf(name string, calls int) time.Duration {
	timeout := 10 * time.Second
	for _, d := range w.Config.Destinations {
		if d.Name != name {
			continue
		}
		if d.Timeout > 0 {
			timeout = d.Timeout
		}
		var paced time.Duration
		if r := connectors.RateLimitOf(d); r > 0 {
			paced = time.Duration(float64(calls) / r * float64(time.Second))
		}
		if calls > 1 {
			rounds := (calls + connectors.InFlight - 1) / connectors.InFlight
			paced = max(paced, time.Duration(rounds-1)*callAllowance)
		}
		timeout += paced
	}
	return timeout
}

// HandlePush drains a destination's due outbox rows, in batches of the
// destination's MaxBatch (capped by worker.push_batch), under the
// destination's one retry schedule and circuit (store.ClaimPush):
//   - accepted rows become sent, with the provider's answer as receipt;
//   - rows refused for good (ErrPermanent) become failed, never retried;
//   - a transient failure (429, 5xx, timeout) puts the batch back to
//     pending and holds the whole destination until its retry time (the
//     provider's requested wait, else a doubling backoff): no other row of
//     it is tried before, by any worker, and a push is scheduled for then.
//     After worker.circuit_failures failed calls in a row the circuit is
//     open: one probe call at a time until one succeeds.
//
// Each call is bounded by the destination's timeout plus the wait its rate
// limit imposes on a batch (timeoutOf); its rows are leased for that plus
// leaseMargin.
func (w *Worker) HandlePush(ctx context.Context, t *asynq.Task) error {
	var p jobs.PushPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Destination == "" {
		return fmt.Errorf("push: bad payload: %w", asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	ctx, span := w.tracer().Start(tracing.WithTraceParent(ctx, p.TraceParent), tracing.SpanPushTask, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(tracing.AttrDestination.String(p.Destination), tracing.AttrRetryCount.Int(retried)))
	defer span.End()
	err := w.handlePush(ctx, p)
	if err != nil {
		tracing.Fail(span, "push task failed", errorKind(err))
	}
	return err
}

// handlePush is HandlePush once the payload is read.
func (w *Worker) handlePush(ctx context.Context, p jobs.PushPayload) error {
	dest, ok := w.Destinations[p.Destination]
	if !ok {
		// Rows stay pending: they are pushed once the destination is configured again.
		w.Logger.Error("push: destination not configured", "destination", p.Destination)
		return fmt.Errorf("push: destination %q not configured: %w", p.Destination, asynq.SkipRetry)
	}
	if early := time.Until(time.UnixMilli(p.At)); p.At > 0 && early > 0 {
		// Started before its window's end (asynq's second granularity):
		// wait, so that what is committed in the window, or the
		// destination's retry time, is reached.
		select {
		case <-time.After(early):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// One task at a time per destination: the others leave, the holder
	// schedules the next (its successor, below).
	limit := min(dest.MaxBatch(), w.Config.Worker.PushBatch)
	timeout := w.timeoutOf(p.Destination, pushCalls(dest, limit))
	checkTimeout := w.timeoutOf(p.Destination, limit) // read-backs: one request per address
	token := rand.Text()
	// hold takes or renews the push lease for one more operation of d.
	hold := func(d time.Duration) (bool, error) {
		return w.Store.TryPusher(ctx, p.Destination, token, d+leaseMargin)
	}
	if ok, err := hold(timeout); err != nil || !ok {
		return err
	}
	defer func() {
		if err := w.Store.ReleasePusher(context.WithoutCancel(ctx), p.Destination, token); err != nil {
			w.Logger.Warn("push lease not released; it ends by itself", "destination", p.Destination, "err", err)
		}
	}()
	worked := false // rows claimed, for the next task's time
	more := false   // pushes stopped before the end: more may be pending
	// pushRoom is what a push after the first needs of the task's time:
	// the call, and, at a destination read back, one read-back batch
	// after it, so that pushes never crowd the read-backs out.
	pushRoom := timeout
	if _, ok := dest.(connectors.Checker); ok {
		pushRoom += checkTimeout + leaseMargin
	}
	for i := 0; ; i++ {
		if i == batchesPerTask {
			// More may be pending: a later task goes on, after the other
			// destinations' tasks already queued — once this one has read
			// back what is due, so a steady backlog of pushes never starves
			// the read-backs.
			more = true
			break
		}
		if i > 0 && !roomFor(ctx, pushRoom) {
			// The task's deadline would cut the next call short, or leave
			// no time to read back what is due: a new task goes on, once
			// this one has read back.
			more = true
			break
		}
		if ok, err := hold(timeout); err != nil || !ok {
			return err // another task took over the lapsed lease: it goes on
		}
		c, err := w.Store.ClaimPush(ctx, p.Destination, limit, timeout+leaseMargin, w.Config.Worker.CircuitFailures)
		if err != nil {
			return err
		}
		if !c.HeldUntil.IsZero() {
			return w.pushLater(ctx, p.Destination, c.HeldUntil)
		}
		if len(c.Rows) == 0 {
			break
		}
		worked = true
		retryAt, err := w.pushBatch(ctx, p.Destination, dest, c.Rows, timeout, c.Failures)
		if err != nil {
			return err
		}
		if !retryAt.IsZero() {
			return w.pushLater(ctx, p.Destination, retryAt)
		}
	}
	var next time.Time
	if checker, ok := dest.(connectors.Checker); ok {
		again, at, read, err := w.verify(ctx, p.Destination, checker, limit, checkTimeout, func(first bool) (bool, error) {
			if (!first || worked) && !roomFor(ctx, checkTimeout) {
				return false, errNoRoom
			}
			return hold(checkTimeout)
		})
		if errors.Is(err, errNoRoom) {
			return w.pushLater(ctx, p.Destination, w.now())
		}
		if err != nil {
			return err
		}
		if again {
			// Read-backs found suppressions missing (pending again), or
			// more are due: one task goes on.
			return w.pushLater(ctx, p.Destination, w.now())
		}
		next, worked = at, worked || read
	}
	if more {
		return w.pushLater(ctx, p.Destination, w.now())
	}
	// One task for the destination's next work: the earliest pending row
	// or read-back due (store.NextDue), so that its tasks form one chain
	// and never multiply. Work that is due but could not be claimed (leased
	// by another worker, or behind an older lift) is looked at again a
	// second later, not at once, so an idle chain never spins.
	due, ok, err := w.Store.NextDue(ctx, p.Destination)
	if err != nil {
		w.Logger.Warn("next push time unknown; the sweeper will schedule it", "destination", p.Destination, "err", err)
		return nil
	}
	if ok && (next.IsZero() || due.Before(next)) {
		next = due
	}
	if next.IsZero() {
		return nil
	}
	if !worked {
		next = later(next, w.now().Add(time.Second))
	}
	return w.pushLater(ctx, p.Destination, next)
}

// errNoRoom: the task's deadline leaves no room for the next call.
var errNoRoom = errors.New("push task deadline")

// roomFor reports whether ctx (a task's, with asynq's deadline) leaves time
// for an operation bounded by d and the recording of its outcome: a call
// cut short by the task's end would be retried, its read-backs lost, for
// nothing.
func roomFor(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) >= d+leaseMargin
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pushLater schedules destination's next push at its retry time. If Redis
// refuses, the sweeper schedules it (the rows are pending in Postgres).
func (w *Worker) pushLater(ctx context.Context, destination string, at time.Time) error {
	// Never a time before now: a time in the calling task's own window
	// would name its id (jobs.PushTaskID), still held while it runs, and be
	// refused as a duplicate: no successor, the chain would end (rows due
	// since then but behind an older lift, say) until the sweeper.
	at = later(at, w.now())
	// Even when the task has ended (a shutdown): its successor goes on in
	// another worker.
	if err := w.Enqueuer.PushAt(context.WithoutCancel(ctx), destination, at); err != nil {
		w.Logger.Warn("schedule push failed; the sweeper will retry", "destination", destination, "err", err)
	}
	return nil
}

// suppressionsOf is what a connector is given for outbox rows.
func suppressionsOf(rows []store.OutboxRow) []connectors.Suppression {
	batch := make([]connectors.Suppression, len(rows))
	for i, r := range rows {
		batch[i] = connectors.Suppression{
			ID: r.ID, Email: r.Email.String, Phone: r.Phone.String, Channel: consent.Channel(r.Channel),
			Brand: r.Brand, Purpose: consent.Purpose(r.Purpose), Reason: r.Reason.String,
			SentAt: r.SentAt.Time, // zero when never sent: read-backs of asynchronous providers allow for it
		}
	}
	return batch
}

// pushBatch makes one provider call for rows and records its outcome. It
// returns the destination's retry time when the call failed transiently.
func (w *Worker) pushBatch(ctx context.Context, name string, dest connectors.Destination, rows []store.OutboxRow, timeout time.Duration, failures int) (time.Time, error) {
	batch := suppressionsOf(rows)
	spanName := tracing.SpanDestinationPush
	if rows[0].Action == store.OutboxLift {
		spanName = tracing.SpanDestinationLift
	}
	sctx, span := w.tracer().Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(tracing.AttrDestination.String(name), tracing.AttrSuppressions.Int(len(rows))))
	defer span.End()
	start := time.Now()
	cctx, cancel := context.WithTimeout(sctx, timeout)
	results, err := pushOrLift(cctx, dest, batch, rows)
	cancel()
	w.Metrics.PushSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	if err != nil {
		tracing.Fail(span, "provider call failed", errorKind(err))
	}
	// Record outcomes even when the task's context has ended.
	rctx := context.WithoutCancel(ctx)
	if err != nil && ctx.Err() != nil && !errors.Is(err, connectors.ErrPermanent) {
		// The task ended mid-call (shutdown, asynq's deadline), not the
		// provider: the rows are due again at once, for the next task, and
		// the destination's schedule and circuit are left as they are.
		done := make([]store.OutboxDone, len(rows))
		for i, r := range rows {
			done[i] = store.OutboxDone{ID: r.ID, Attempt: r.Attempts, Status: store.OutboxPending, Error: "push task ended mid-call: " + err.Error()}
		}
		w.Logger.Warn("push task ended mid-call; rows due again", "destination", name, "rows", len(rows))
		return w.now(), w.complete(rctx, done, store.PushCall{Destination: name})
	}
	if err != nil && errors.Is(err, connectors.ErrPermanent) {
		done := make([]store.OutboxDone, len(rows))
		for i, r := range rows {
			done[i] = store.OutboxDone{ID: r.ID, Attempt: r.Attempts, Status: store.OutboxFailed, Error: err.Error()}
		}
		w.Metrics.SuppressionsPushed.WithLabelValues(name, "failed").Add(float64(len(rows)))
		span.SetAttributes(tracing.AttrFailed.Int(len(rows)))
		w.Logger.Error("push refused for good", "destination", name, "rows", len(rows), "err", err)
		return time.Time{}, w.complete(rctx, done, store.PushCall{Destination: name})
	}
	if err != nil {
		delay, named := connectors.RetryDelay(err)
		if !named {
			delay = backoff(failures + 1)
		}
		retry := w.now().Add(delay)
		done := make([]store.OutboxDone, len(rows))
		for i, r := range rows {
			done[i] = store.OutboxDone{ID: r.ID, Attempt: r.Attempts, Status: store.OutboxPending, Error: err.Error(), RetryIn: delay}
		}
		w.Metrics.SuppressionsPushed.WithLabelValues(name, "retried").Add(float64(len(rows)))
		w.Metrics.PushCalls.WithLabelValues(name, "retried").Inc()
		span.SetAttributes(tracing.AttrRetry.Int(len(rows)))
		w.Logger.Warn("push failed; destination held", "destination", name, "rows", len(rows), "in", delay.String(), "err", err)
		return retry, w.complete(rctx, done, store.PushCall{Destination: name, Failed: true, RetryIn: delay, Error: err.Error()})
	}
	w.Metrics.PushCalls.WithLabelValues(name, "ok").Inc()
	byID := make(map[int64]connectors.Result, len(results))
	for _, r := range results {
		byID[r.ID] = r
	}
	done := make([]store.OutboxDone, len(rows))
	var verifyAfter time.Duration
	if _, ok := dest.(connectors.Checker); ok && rows[0].Action != store.OutboxLift {
		verifyAfter = w.Config.Worker.VerifyAfter
	}
	var sent, failed, missing int
	for i, r := range rows {
		res, ok := byID[r.ID]
		switch {
		case !ok:
			// A destination that forgot a row: try it again later.
			missing++
			done[i] = store.OutboxDone{ID: r.ID, Attempt: r.Attempts, Status: store.OutboxPending, Error: "no result from destination", RetryIn: itemBackoff(r)}
		case res.Err == nil:
			sent++
			done[i] = store.OutboxDone{ID: r.ID, Attempt: r.Attempts, Status: store.OutboxSent, Receipt: res.Receipt, VerifyAfter: verifyAfter}
		case errors.Is(res.Err, connectors.ErrPermanent):
			failed++
			done[i] = store.OutboxDone{ID: r.ID, Attempt: r.Attempts, Status: store.OutboxFailed, Receipt: res.Receipt, Error: res.Err.Error()}
		default:
			missing++
			done[i] = store.OutboxDone{ID: r.ID, Attempt: r.Attempts, Status: store.OutboxPending, Error: res.Err.Error(), RetryIn: itemBackoff(r)}
		}
	}
	w.Metrics.SuppressionsPushed.WithLabelValues(name, "sent").Add(float64(sent))
	span.SetAttributes(tracing.AttrSent.Int(sent), tracing.AttrFailed.Int(failed), tracing.AttrRetry.Int(missing))
	if failed > 0 {
		w.Metrics.SuppressionsPushed.WithLabelValues(name, "failed").Add(float64(failed))
		w.Logger.Error("suppressions refused by destination", "destination", name, "rows", failed)
	}
	if missing > 0 {
		w.Metrics.SuppressionsPushed.WithLabelValues(name, "retried").Add(float64(missing))
	}
	if err := w.complete(rctx, done, store.PushCall{Destination: name, Succeeded: true}); err != nil {
		return time.Time{}, err
	}
	if sent > 0 && verifyAfter > 0 {
		// The read-back of this batch is scheduled by HandlePush when it
		// ends (store.NextDue), once for all its batches.
	} else if sent+failed > 0 {
		events := make([]int64, 0, len(rows))
		for _, r := range rows {
			events = append(events, r.ConsentEventID)
		}
		w.observeHonoured(rctx, events)
	}
	return time.Time{}, nil
}

// itemBackoff is the wait before row r is tried again after a provider
// answer that left it out or refused it for now: 4 s after its first
// claim, doubling with each further claim up to maxBackoff. The
// destination's schedule is reset by every answer, so only this slows a
// row a provider keeps leaving out.
func itemBackoff(r store.OutboxRow) time.Duration { return backoff(max(r.Attempts, 1) + 2) }

// pushOrLift sends batch as suppressions (Destination.Push) or, when
// its rows are lifts (store.OutboxLift; ClaimPush never mixes the two),
// as lifts (connectors.Lifter). A destination that cannot lift refuses
// each lift for good, saying the person must opt in again through the
// provider's own form.
func pushOrLift(ctx context.Context, dest connectors.Destination, batch []connectors.Suppression, rows []store.OutboxRow) ([]connectors.Result, error) {
	if rows[0].Action != store.OutboxLift {
		return dest.Push(ctx, batch)
	}
	var (
		results []connectors.Result
		err     error
	)
	if l, ok := dest.(connectors.Lifter); ok {
		results, err = l.Lift(ctx, batch)
	} else {
		for _, s := range batch {
			results = append(results, connectors.Result{ID: s.ID, Err: connectors.ErrLiftRefused})
		}
	}
	for i, r := range results {
		if r.Err != nil && errors.Is(r.Err, connectors.ErrLiftRefused) && !errors.Is(r.Err, connectors.ErrPermanent) {
			results[i].Err = fmt.Errorf("%w: %w: re-opt-in through the provider's own form", connectors.ErrPermanent, r.Err)
		}
	}
	return results, err
}

// recordAttempts and recordBackoff bound how long a push's outcome is
// retried when Postgres cannot record it (a restart, a failover): about
// 30 s in all. If it still cannot be recorded, the rows' lease (the call's
// timeout plus leaseMargin) has ended by then, so they are pushed again at
// once when Postgres is back — harmless, provider suppression calls are
// idempotent.
const (
	recordAttempts = 8
	recordBackoff  = 250 * time.Millisecond
)

// complete records the outcome of a push (store.CompleteOutbox), retrying
// with doubling waits while Postgres refuses.
func (w *Worker) complete(ctx context.Context, done []store.OutboxDone, call store.PushCall) error {
	wait := recordBackoff
	var err error
	for i := 0; i < recordAttempts; i++ {
		if err = w.Store.CompleteOutbox(ctx, done, call); err == nil {
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

// errorKind classifies err for a span (tracing.AttrErrorKind), without its
// text: permanent (the provider refused for good), timeout, or transient.
func errorKind(err error) string {
	switch {
	case errors.Is(err, connectors.ErrPermanent):
		return "permanent"
	case errors.Is(err, connectors.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "transient"
}
