// Package worker runs consentsync's asynq handlers and sweeper: it turns
// stored inbound events into reconciled consent (inbound:process) and pushes
// queued suppressions to destinations (suppression:push).
//
// Guarantees: a task may run any number of times (redelivery, sweeper,
// replay) and changes the record once; a lost Redis loses no work, because
// Postgres holds every unfinished inbound and outbox row and the sweeper
// re-enqueues them.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/metrics"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/store"
)

// Worker holds the handlers' dependencies.
type Worker struct {
	Store        Store
	Enqueuer     *jobs.Enqueuer
	Sources      map[string]connectors.Source
	Destinations map[string]connectors.Destination
	Routes       []Route
	Config       *config.Config
	Metrics      *metrics.Metrics
	Logger       *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// reconciler applies batches with the worker's routes and clock.
func (w *Worker) reconciler() Reconciler {
	return Reconciler{Store: w.Store, Routes: w.Routes, Now: w.now, Policy: w.Config.Policy.Rules()}
}

// prepareOptions reads inbound event in as its source is configured.
func (w *Worker) prepareOptions(in *store.Inbound) PrepareOptions {
	o := PrepareOptions{Source: in.Source, Region: w.Config.Policy.PhoneRegion, ReceivedAt: in.ReceivedAt, Brands: w.Config.Brands()}
	for _, s := range w.Config.Sources {
		if s.Name == in.Source {
			o.Scope = consent.Scope(s.WithdrawalScope)
		}
	}
	return o
}

// Mux returns the asynq handler for consentsync's task types.
func (w *Worker) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(jobs.TypeInboundProcess, w.HandleInbound)
	mux.HandleFunc(jobs.TypeSuppressionPush, w.HandlePush)
	return mux
}

// ServerConfig is the asynq server configuration: weighted queues, the
// configured concurrency, and a retry delay that honours a provider's
// requested wait (connectors.RetryAfterError) before asynq's default
// exponential backoff.
func (w *Worker) ServerConfig() asynq.Config {
	return asynq.Config{
		Concurrency: w.Config.Worker.Concurrency,
		Queues:      jobs.Queues,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			if d, ok := connectors.RetryDelay(err); ok {
				// A little after the rows' next attempt time, so the retry
				// finds them due.
				return max(d, time.Second) + 500*time.Millisecond
			}
			return asynq.DefaultRetryDelayFunc(n, err, t)
		},
		// Poll idle queues every 250 ms (asynq's default is 1 s): a withdrawal
		// should reach providers in well under a second. Delayed and retried
		// tasks are checked every second.
		TaskCheckInterval:        250 * time.Millisecond,
		DelayedTaskCheckInterval: time.Second,
		Logger:                   asynqLogger{w.Logger},
		LogLevel:                 asynq.WarnLevel,
		ShutdownTimeout:          20 * time.Second,
	}
}

// HandleInbound processes one inbound event: parse the stored raw request
// with its source's connector, resolve sender ids, normalize, reconcile in
// one transaction, then enqueue pushes for the destinations that got
// suppressions. Errors: unknown source or unparseable body → the row is
// marked failed and the task is not retried; anything else is retried, and
// the row is marked failed after the last retry.
func (w *Worker) HandleInbound(ctx context.Context, t *asynq.Task) error {
	var p jobs.InboundPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ID <= 0 {
		return fmt.Errorf("inbound: bad payload: %w", asynq.SkipRetry)
	}
	in, err := w.Store.GetInbound(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("inbound %d: not found: %w", p.ID, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if in.Status != store.InboundReceived {
		return nil // processed already (redelivery, sweeper, replay)
	}
	log := w.Logger.With("inbound", in.ID, "source", in.Source)
	src, ok := w.Sources[in.Source]
	if !ok {
		return w.giveUp(ctx, in, "source not configured", true)
	}
	var header http.Header
	_ = json.Unmarshal(in.Headers, &header)
	batch, err := src.Parse(&connectors.Request{Method: in.Method, Path: in.Path, RawQuery: in.Query, Header: header, Body: in.Body, ReceivedAt: in.ReceivedAt.UTC()})
	if err != nil {
		return w.giveUp(ctx, in, "parse: "+err.Error(), true)
	}
	if r, ok := src.(connectors.Resolver); ok {
		more, err := r.Resolve(ctx, batch)
		if err != nil {
			return w.retryOrGiveUp(ctx, in, "resolve: "+err.Error())
		}
		batch.Skipped = append(batch.Skipped, more...)
	}
	prep := PrepareBatch(batch, w.prepareOptions(in))
	res, err := w.reconciler().Reconcile(ctx, in.ID, prep)
	if err != nil {
		return w.retryOrGiveUp(ctx, in, "reconcile: "+err.Error())
	}
	if res.AlreadyDone {
		return nil
	}
	n := res.Notes
	for outcome, c := range map[string]int{"applied": n.Applied, "stale": n.Stale, "invalid": n.Invalid, "duplicate": n.Duplicate} {
		if c > 0 {
			w.Metrics.Signals.WithLabelValues(in.Source, outcome).Add(float64(c))
		}
	}
	log.Info("inbound processed", "signals", n.Signals, "applied", n.Applied, "stale", n.Stale,
		"invalid", n.Invalid, "duplicate", n.Duplicate, "suppressions", n.Suppressions, "activities", n.Activities,
		"profiles", n.Profiles, "erasures", n.Erasures, "skipped", len(n.Skipped))
	for _, d := range res.Destinations {
		if err := w.Enqueuer.Push(ctx, d, 0); err != nil {
			// The outbox rows are committed: the sweeper will push them.
			log.Warn("enqueue push failed; the sweeper will retry", "destination", d, "err", err)
		}
	}
	return nil
}

// retryOrGiveUp records a failed attempt; on the task's last retry the row
// is marked failed (an operator replays it), else the error makes asynq
// retry.
func (w *Worker) retryOrGiveUp(ctx context.Context, in *store.Inbound, cause string) error {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	return w.giveUp(ctx, in, cause, ok && retried >= maxRetry)
}

func (w *Worker) giveUp(ctx context.Context, in *store.Inbound, cause string, final bool) error {
	if err := w.Store.RecordInboundAttempt(context.WithoutCancel(ctx), in.ID, cause, final); err != nil {
		w.Logger.Error("record inbound attempt", "inbound", in.ID, "err", err)
	}
	if final {
		w.Metrics.InboundFailed.WithLabelValues(in.Source).Inc()
		w.Logger.Error("inbound failed", "inbound", in.ID, "source", in.Source, "cause", cause)
		return fmt.Errorf("inbound %d: %s: %w", in.ID, cause, asynq.SkipRetry)
	}
	return fmt.Errorf("inbound %d: %s", in.ID, cause)
}

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
