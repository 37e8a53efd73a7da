package worker

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/internal/tracing"
	"github.com/consentsync/consentsync/store"
)

// verify reads back the destination's sent suppressions whose read-back
// is due (store.ClaimVerify), in at most batchesPerTask batches of limit,
// each call bounded by timeout:
//   - held: verified_at is set;
//   - missing: the row is pending again (pushed again) and a mismatch is
//     counted; verify then reports again = true;
//   - unknown (the provider cannot say yet): asked again after
//     worker.verify_after × 2^(attempts-1), up to worker.verify_attempts,
//     then left unverified;
//   - a failed call: the rows are asked again after the provider's wait or
//     worker.verify_after; only a permanent failure (ErrPermanent) after
//     worker.verify_attempts claims gives them up.
//
// again also reports that batchesPerTask batches were read: more may be
// due, for a later task (so one destination's long read-back does not
// hold a push worker while others wait). next is the earliest time a
// read-back asked again is due (zero: none): the caller schedules one
// task, never one per batch, so a destination's tasks never multiply.
//
// read reports that some row was read back.
//
// hold, when not nil, renews the caller's push lease before each batch
// (first: before the first); when it reports the lease lost, verify stops,
// and when it fails, verify returns its error.
func (w *Worker) verify(ctx context.Context, name string, checker connectors.Checker, limit int, timeout time.Duration, hold func(first bool) (bool, error)) (again bool, next time.Time, read bool, err error) {
	soonest := func(at time.Time) {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for i := 0; ; i++ {
		if i == batchesPerTask {
			return true, next, read, nil
		}
		if hold != nil {
			if ok, err := hold(i == 0); err != nil || !ok {
				return false, next, read, err
			}
		}
		rows, err := w.Store.ClaimVerify(ctx, name, limit, timeout+leaseMargin)
		if err != nil || len(rows) == 0 {
			return again, next, read, err
		}
		read = true
		batch := suppressionsOf(rows)
		sctx, span := w.tracer().Start(ctx, tracing.SpanReadBack, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(tracing.AttrDestination.String(name), tracing.AttrSuppressions.Int(len(rows))))
		cctx, cancel := context.WithTimeout(sctx, timeout)
		statuses, cerr := checker.Check(cctx, batch)
		cancel()
		if cerr != nil {
			tracing.Fail(span, "read-back failed", errorKind(cerr))
		}
		span.End()
		rctx := context.WithoutCancel(ctx)
		done := make([]store.VerifyDone, 0, len(rows))
		if cerr != nil {
			delay, named := connectors.RetryDelay(cerr)
			if !named {
				delay = w.Config.Worker.VerifyAfter
			}
			retryAt := w.now().Add(delay)
			for _, r := range rows {
				// Retry times by Postgres's clock (RetryIn; positive: asked again).
				retry := max(delay, time.Millisecond)
				if errors.Is(cerr, connectors.ErrPermanent) && r.VerifyAttempts >= w.Config.Worker.VerifyAttempts {
					retry = 0 // this row is given up; the others keep their tries
				}
				done = append(done, store.VerifyDone{ID: r.ID, Outcome: store.VerifyUnknown, Receipt: connectors.MaskAddresses(cerr.Error()), RetryIn: retry,
					Lease: r.VerifyDueAt.Time})
			}
			w.Metrics.Verifications.WithLabelValues(name, "error").Add(float64(len(rows)))
			w.Logger.Warn("read-back failed", "destination", name, "rows", len(rows), "err", connectors.MaskAddresses(cerr.Error()))
			if _, err := w.Store.CompleteVerify(rctx, done); err != nil {
				return again, next, read, err
			}
			soonest(retryAt)
			return again, next, read, nil
		}
		byID := make(map[int64]connectors.Status, len(statuses))
		for _, st := range statuses {
			byID[st.ID] = st
		}
		var retryAt time.Time
		backoffCap := verifyBackoffCap(w.Config.Policy.WithdrawalDeadline)
		for _, r := range rows {
			st, ok := byID[r.ID]
			d := store.VerifyDone{ID: r.ID, Receipt: connectors.MaskAddresses(st.Receipt), Lease: r.VerifyDueAt.Time}
			switch {
			case ok && st.Suppressed:
				d.Outcome = store.VerifyHeld
			case ok && !st.Unknown:
				d.Outcome = store.VerifyMissing
				again = true
			default:
				d.Outcome = store.VerifyUnknown
				if r.VerifyAttempts < w.Config.Worker.VerifyAttempts {
					d.RetryIn = max(verifyBackoff(w.Config.Worker.VerifyAfter, r.VerifyAttempts, backoffCap), time.Millisecond)
					if at := w.now().Add(d.RetryIn); retryAt.IsZero() || at.Before(retryAt) {
						retryAt = at
					}
				}
			}
			outcome := d.Outcome
			if outcome == store.VerifyUnknown && d.RetryIn > 0 {
				outcome = "retried"
			}
			w.Metrics.Verifications.WithLabelValues(name, outcome).Inc()
			done = append(done, d)
		}
		settled, err := w.Store.CompleteVerify(rctx, done)
		if err != nil {
			return again, next, read, err
		}
		w.observeHonoured(rctx, settled)
		soonest(retryAt)
	}
}

// maxVerifyBackoff caps the wait before a read-back is asked again: 24 h,
// half the default withdrawal deadline (policy.withdrawal_deadline, 48h).
const maxVerifyBackoff = 24 * time.Hour

// verifyBackoffCap is the longest wait before an unanswered read-back is
// asked again: half of deadline (policy.withdrawal_deadline), so it is
// asked at least twice within it, and at most maxVerifyBackoff.
func verifyBackoffCap(deadline time.Duration) time.Duration {
	if deadline <= 0 {
		return maxVerifyBackoff
	}
	return min(maxVerifyBackoff, deadline/2)
}

// verifyBackoff is how long after its attempt-th read-back (1 for the
// first) a row whose answer was unknown is asked again: after (config
// worker.verify_after) doubled per earlier attempt, at most limit
// (verifyBackoffCap) — which also keeps large settings from overflowing
// (verify_after << attempts wraps negative past about 292 years).
func verifyBackoff(after time.Duration, attempt int, limit time.Duration) time.Duration {
	d := after
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// observeHonoured observes, for those of ledger ids whose every
// suppression is settled, the time from the withdrawal's receipt
// (consentsync_withdrawal_honoured_seconds). A failure to read is logged:
// the metric is not worth failing a push for.
func (w *Worker) observeHonoured(ctx context.Context, eventIDs []int64) {
	if len(eventIDs) == 0 {
		return
	}
	at, err := w.Store.Honoured(ctx, eventIDs)
	if err != nil {
		w.Logger.Warn("withdrawal-honoured metric skipped", "err", err)
		return
	}
	now := w.now()
	for _, t := range at {
		w.Metrics.WithdrawalHonoured.Observe(now.Sub(t).Seconds())
	}
}
