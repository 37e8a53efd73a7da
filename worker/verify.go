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
// is due (store.ClaimVerify), in batches of limit, each call bounded by
// timeout:
//   - held: verified_at is set;
//   - missing: the row is pending again (pushed again) and a mismatch is
//     counted; verify then reports again = true;
//   - unknown (the provider cannot say yet): asked again after
//     worker.verify_after × 2^(attempts-1), up to worker.verify_attempts,
//     then left unverified;
//   - a failed call: the rows are asked again after the provider's wait or
//     worker.verify_after; only a permanent failure (ErrPermanent) after
//     worker.verify_attempts claims gives them up.
func (w *Worker) verify(ctx context.Context, name string, checker connectors.Checker, limit int, timeout time.Duration) (again bool, err error) {
	for {
		rows, err := w.Store.ClaimVerify(ctx, name, limit, timeout+leaseMargin)
		if err != nil || len(rows) == 0 {
			return again, err
		}
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
			retry := w.now().Add(delay)
			for _, r := range rows {
				if errors.Is(cerr, connectors.ErrPermanent) && r.VerifyAttempts >= w.Config.Worker.VerifyAttempts {
					retry = time.Time{} // given up
				}
				done = append(done, store.VerifyDone{ID: r.ID, Outcome: store.VerifyUnknown, Receipt: connectors.MaskAddresses(cerr.Error()), Retry: retry})
			}
			w.Metrics.Verifications.WithLabelValues(name, "error").Add(float64(len(rows)))
			w.Logger.Warn("read-back failed", "destination", name, "rows", len(rows), "err", connectors.MaskAddresses(cerr.Error()))
			if _, err := w.Store.CompleteVerify(rctx, done); err != nil {
				return again, err
			}
			if !retry.IsZero() {
				_ = w.pushLater(rctx, name, retry)
			}
			return again, nil
		}
		byID := make(map[int64]connectors.Status, len(statuses))
		for _, st := range statuses {
			byID[st.ID] = st
		}
		var next time.Time
		for _, r := range rows {
			st, ok := byID[r.ID]
			d := store.VerifyDone{ID: r.ID, Receipt: connectors.MaskAddresses(st.Receipt)}
			switch {
			case ok && st.Suppressed:
				d.Outcome = store.VerifyHeld
			case ok && !st.Unknown:
				d.Outcome = store.VerifyMissing
				again = true
			default:
				d.Outcome = store.VerifyUnknown
				if r.VerifyAttempts < w.Config.Worker.VerifyAttempts {
					d.Retry = w.now().Add(w.Config.Worker.VerifyAfter << min(r.VerifyAttempts-1, 16))
					if next.IsZero() || d.Retry.Before(next) {
						next = d.Retry
					}
				}
			}
			outcome := d.Outcome
			if outcome == store.VerifyUnknown && !d.Retry.IsZero() {
				outcome = "retry"
			}
			w.Metrics.Verifications.WithLabelValues(name, outcome).Inc()
			done = append(done, d)
		}
		settled, err := w.Store.CompleteVerify(rctx, done)
		if err != nil {
			return again, err
		}
		w.observeHonoured(rctx, settled)
		if !next.IsZero() {
			_ = w.pushLater(rctx, name, next)
		}
	}
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
