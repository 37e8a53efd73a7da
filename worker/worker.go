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
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/imported"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/metrics"
	"github.com/consentsync/consentsync/internal/tracing"
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
	// Tracing, when set, records the tasks', reconciliations' and provider
	// calls' spans (internal/tracing); nil: tracing off.
	Tracing trace.TracerProvider

	initOnce sync.Once
	// done holds the ids of inbound rows this process processed lately.
	done *lru.Cache[int64, struct{}]
	// inflight maps the inbound rows batches of this process hold to a
	// channel closed when that batch ends.
	inflightMu sync.Mutex
	inflight   map[int64]chan struct{}
	// largeSlot admits one large request (store.LargeBody) at a time.
	largeSlot chan struct{}
	// resolved names the sources whose rows only their own task claims.
	resolved []string
}

// doneCacheSize bounds the ids of processed inbound rows remembered:
// several batches' worth, so their tasks end without a query.
const doneCacheSize = 1 << 16

func (w *Worker) initState() {
	for name, src := range w.Sources {
		if _, ok := src.(connectors.Resolver); ok {
			w.resolved = append(w.resolved, name)
		}
	}
	w.largeSlot = make(chan struct{}, 1)
	w.done, _ = lru.New[int64, struct{}](doneCacheSize)
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Worker) tracer() trace.Tracer { return tracing.Tracer(w.Tracing) }

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

// ServerConfigs are the asynq servers a worker process runs, one per
// queue, each with its own concurrency: inbound (worker.concurrency) and
// suppression pushes (worker.push_concurrency). A provider storm holds push
// slots only; reconciliation goes on at its own pace.
func (w *Worker) ServerConfigs() []asynq.Config {
	base := func(queue string, n int) asynq.Config {
		return asynq.Config{
			Concurrency: n,
			Queues:      map[string]int{queue: 1},
			RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
				if d, ok := connectors.RetryDelay(err); ok {
					return max(d, time.Second)
				}
				return asynq.DefaultRetryDelayFunc(n, err, t)
			},
			// Poll idle queues every 100 ms (asynq's default is 1 s): a
			// withdrawal should reach providers in well under a second.
			// Delayed tasks (the push of a linger window, a destination's
			// retry) are checked every 100 ms too.
			TaskCheckInterval:        100 * time.Millisecond,
			DelayedTaskCheckInterval: 100 * time.Millisecond,
			Logger:                   asynqLogger{w.Logger},
			LogLevel:                 asynq.WarnLevel,
			ShutdownTimeout:          20 * time.Second,
		}
	}
	return []asynq.Config{
		base(jobs.QueueInbound, w.Config.Worker.Concurrency),
		base(jobs.QueueSuppression, w.Config.Worker.PushConcurrency),
	}
}

// HandleInbound processes inbound event p.ID and, with it, up to
// worker.inbound_batch-1 other waiting ones, in one Postgres transaction
// (Reconciler.ProcessBatch), then enqueues pushes for the destinations that
// got suppressions. The tasks of the others then find their rows done:
// those processed here are remembered, so their tasks end without a query.
//
// A task whose row another batch holds claims a batch of its own first,
// then waits for that batch (in this process: until it ends; in another:
// on the row's lock) and processes the row if it is still waiting, so no
// row is ever left to the sweeper by a batch that failed.
//
// Errors: unknown source or unparseable body → the row is marked failed
// and not retried; anything else is retried. For p.ID the task returns the
// error (asynq retries, and the row is marked failed after the last retry);
// another row that fails has its attempt counted and its task enqueued again.
func (w *Worker) HandleInbound(ctx context.Context, t *asynq.Task) error {
	var p jobs.InboundPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ID <= 0 {
		return fmt.Errorf("inbound: bad payload: %w", asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	if p.TraceParent == "" {
		// Enqueued outside any trace (the sweeper, replay, a payload from
		// before tracing): the row's own reconcile span joins the trace
		// stored with the row instead of this task's.
		ctx = context.WithValue(ctx, untracedTask{}, true)
	}
	ctx, span := w.tracer().Start(tracing.WithTraceParent(ctx, p.TraceParent), tracing.SpanInboundTask, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(tracing.AttrInboundID.Int64(p.ID), tracing.AttrRetryCount.Int(retried)))
	defer span.End()
	outcome, err := w.handleInbound(ctx, p)
	if err != nil {
		outcome = "failed"
		tracing.Fail(span, "inbound task failed", "")
	}
	span.SetAttributes(tracing.AttrOutcome.String(outcome))
	return err
}

// handleInbound is HandleInbound once the payload is read; it says whether
// this task processed the row ("processed") or found it done by another
// batch or an earlier run ("done_elsewhere").
func (w *Worker) handleInbound(ctx context.Context, p jobs.InboundPayload) (string, error) {
	w.initOnce.Do(w.initState)
	if !p.Again && w.done.Contains(p.ID) {
		return "done_elsewhere", nil
	}
	claim := BatchClaim{Own: p.ID, Limit: w.Config.Worker.InboundBatch, OwnOnly: w.resolvedSources()}
	ownSeen, err := w.processBatch(ctx, claim)
	if err != nil || ownSeen {
		return "processed", err
	}
	// The row was done already, or held by another batch: wait for that
	// one, then take the row if it still waits.
	w.waitInflight(ctx, p.ID)
	if w.done.Contains(p.ID) {
		return "done_elsewhere", nil
	}
	ownSeen, err = w.processBatch(ctx, BatchClaim{Own: p.ID, Limit: 1, Wait: true})
	if err != nil || ownSeen {
		return "processed", err
	}
	if _, err := w.Store.GetInbound(ctx, p.ID); errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("inbound %d: not found: %w", p.ID, asynq.SkipRetry)
	}
	return "done_elsewhere", nil // processed already (redelivery, sweeper, replay)
}

// processBatch runs one ProcessBatch for claim and handles its results. It
// reports whether claim.Own was among them; the error is claim.Own's.
func (w *Worker) processBatch(ctx context.Context, claim BatchClaim) (bool, error) {
	var n int
	return w.processBatchCounted(ctx, claim, &n)
}

// processBatchCounted is processBatch that also sets *n to the number of
// rows the batch took.
func (w *Worker) processBatchCounted(ctx context.Context, claim BatchClaim, n *int) (bool, error) {
	done := make(chan struct{})
	var mine []int64
	var large bool
	prepare := func(ctx context.Context, in *store.Inbound) (Prepared, error) {
		if w.markInflight(in.ID, done) {
			mine = append(mine, in.ID)
		}
		if len(in.Body) > store.LargeBody && !large {
			// One large request at a time per process: its parsed events
			// and encoded writes take tens of megabytes. Only its own task
			// claims a large row, so waiting here holds nobody else's row.
			select {
			case w.largeSlot <- struct{}{}:
				large = true
			case <-ctx.Done():
				return Prepared{}, ctx.Err()
			}
		}
		return w.prepare(ctx, in)
	}
	started := time.Now()
	results, err := w.reconciler().ProcessBatch(ctx, claim, prepare)
	if large {
		<-w.largeSlot
	}
	w.endInflight(mine, done)
	if err != nil {
		return false, err // no batch: asynq retries
	}
	if *n = len(results); *n > 0 {
		w.Metrics.InboundBatch.Observe(float64(*n))
	}
	var ownSeen bool
	var ownErr error
	// dests maps each destination that got suppressions to the reconcile
	// span of the first row that queued one: its push continues that trace.
	dests := map[string]context.Context{}
	var order []string
	spans := w.reconcileSpans(ctx, claim.Own, results, started)
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	for i, r := range results {
		in := r.Inbound
		own := in.ID == claim.Own
		ownSeen = ownSeen || own
		switch {
		case r.Err != nil && r.Final:
			w.Metrics.InboundFailed.WithLabelValues(in.Source).Inc()
			w.Logger.Error("inbound failed", "inbound", in.ID, "source", in.Source, "cause", r.Err.Error())
			if own {
				ownErr = fmt.Errorf("inbound %d: %w: %w", in.ID, r.Err, asynq.SkipRetry)
			}
		case r.Err != nil && own:
			ownErr = w.retryOrGiveUp(ctx, in, r.Err.Error())
		case r.Err != nil:
			// Its attempt is counted; its own task may be gone: enqueue it
			// again.
			w.Logger.Warn("inbound not processed in a batch; enqueued again", "inbound", in.ID, "source", in.Source, "err", r.Err)
			if _, err := w.Enqueuer.EnqueueInbound(trace.ContextWithSpan(ctx, spans[i]), in.ID, true); err != nil {
				w.Logger.Warn("enqueue failed; the sweeper will pick the event up", "inbound", in.ID, "err", err)
			}
		default:
			w.done.Add(in.ID, struct{}{})
			w.observe(in, r.Reconciled)
			for _, d := range r.Destinations {
				if _, ok := dests[d]; !ok {
					dests[d] = trace.ContextWithSpan(ctx, spans[i])
					order = append(order, d)
				}
			}
		}
	}
	for _, d := range order {
		if err := w.Enqueuer.Push(dests[d], d); err != nil {
			// The outbox rows are committed: the sweeper will push them.
			w.Logger.Warn("enqueue push failed; the sweeper will retry", "destination", d, "err", err)
		}
	}
	return ownSeen, ownErr
}

// untracedTask marks the context of an inbound task whose payload carried
// no traceparent.
type untracedTask struct{}

// reconcileSpans starts one inbound.reconcile span per row of a batch that
// began at started, in the row's own trace: the task's span for the
// task's own row (when the task continues a trace), else the traceparent
// stored with the row by the receiver (linked to the batch's task span,
// when there is one); another row stored without one (tracing was off)
// starts a trace of its own. Spans carry ids, the source and counts, never
// content. The caller ends them.
func (w *Worker) reconcileSpans(ctx context.Context, own int64, results []Processed, started time.Time) []trace.Span {
	tracer := w.tracer()
	batchSpan := trace.SpanContextFromContext(ctx)
	ownJoinsTask := batchSpan.IsValid() && ctx.Value(untracedTask{}) == nil
	spans := make([]trace.Span, len(results))
	for i, r := range results {
		in := r.Inbound
		opts := []trace.SpanStartOption{trace.WithTimestamp(started), trace.WithAttributes(
			tracing.AttrInboundID.Int64(in.ID), tracing.AttrSource.String(in.Source), tracing.AttrBatchRows.Int(len(results)))}
		parent := ctx
		switch {
		case in.ID == own && ownJoinsTask:
			// The task's span: it continues the webhook's trace.
		case in.TraceParent != "":
			parent = tracing.WithTraceParent(ctx, in.TraceParent)
			if batchSpan.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: batchSpan}))
			}
		case in.ID != own:
			opts = append(opts, trace.WithNewRoot())
			if batchSpan.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: batchSpan}))
			}
		}
		_, span := tracer.Start(parent, tracing.SpanReconcile, opts...)
		switch {
		case r.Err != nil && r.Final:
			span.SetAttributes(tracing.AttrOutcome.String("failed"))
			tracing.Fail(span, "inbound failed", "permanent")
		case r.Err != nil:
			span.SetAttributes(tracing.AttrOutcome.String("retry"))
			tracing.Fail(span, "inbound not processed", "transient")
		default:
			n := r.Notes
			span.SetAttributes(tracing.AttrOutcome.String("processed"), tracing.AttrSignals.Int(n.Signals),
				tracing.AttrApplied.Int(n.Applied), tracing.AttrStale.Int(n.Stale), tracing.AttrInvalid.Int(n.Invalid),
				tracing.AttrDuplicates.Int(n.Duplicate), tracing.AttrSuppressions.Int(n.Suppressions),
				tracing.AttrDestinations.Int(len(r.Destinations)))
		}
		spans[i] = span
	}
	return spans
}

// markInflight records that a batch of this process (ending when done is
// closed) holds inbound row id; false when one already does.
func (w *Worker) markInflight(id int64, done chan struct{}) bool {
	w.inflightMu.Lock()
	defer w.inflightMu.Unlock()
	if w.inflight == nil {
		w.inflight = map[int64]chan struct{}{}
	}
	if _, ok := w.inflight[id]; ok {
		return false
	}
	w.inflight[id] = done
	return true
}

// endInflight forgets ids and wakes the tasks waiting for them.
func (w *Worker) endInflight(ids []int64, done chan struct{}) {
	w.inflightMu.Lock()
	for _, id := range ids {
		delete(w.inflight, id)
	}
	w.inflightMu.Unlock()
	close(done)
}

// waitInflight waits until no batch of this process holds row id.
func (w *Worker) waitInflight(ctx context.Context, id int64) {
	w.inflightMu.Lock()
	done := w.inflight[id]
	w.inflightMu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// resolvedSources are the configured sources whose sender ids are
// resolved over the network (connectors.Resolver): their rows are claimed
// by their own task only. Computed once (initState).
func (w *Worker) resolvedSources() []string { return w.resolved }

// prepare parses a stored request with its source's connector and
// resolves its sender ids (PrepareFunc): an unknown source or an
// unparseable body is final, a failed resolution is not.
func (w *Worker) prepare(ctx context.Context, in *store.Inbound) (Prepared, error) {
	if in.Kind == imported.Kind {
		// A backfill's page (`consentsync import`): its source is the
		// destination or export it was read from, not a configured source.
		batch, err := imported.Parse(in.Source, in.Body)
		if err != nil {
			return Prepared{}, fmt.Errorf("parse: %v: %w", err, ErrFinal)
		}
		return PrepareBatch(batch, w.prepareOptions(in)), nil
	}
	src, ok := w.Sources[in.Source]
	if !ok {
		return Prepared{}, fmt.Errorf("source not configured: %w", ErrFinal)
	}
	var header http.Header
	_ = json.Unmarshal(in.Headers, &header)
	batch, err := src.Parse(&connectors.Request{Method: in.Method, Path: in.Path, RawQuery: in.Query, Header: header, Body: in.Body, ReceivedAt: in.ReceivedAt.UTC()})
	if err != nil {
		return Prepared{}, fmt.Errorf("parse: %v: %w", err, ErrFinal)
	}
	if r, ok := src.(connectors.Resolver); ok {
		more, err := r.Resolve(ctx, batch)
		if err != nil {
			return Prepared{}, fmt.Errorf("resolve: %w", err)
		}
		batch.Skipped = append(batch.Skipped, more...)
	}
	return PrepareBatch(batch, w.prepareOptions(in)), nil
}

// observe counts and logs what reconciling in did.
func (w *Worker) observe(in *store.Inbound, res Reconciled) {
	n := res.Notes
	for outcome, c := range map[string]int{"applied": n.Applied, "stale": n.Stale, "invalid": n.Invalid, "duplicate": n.Duplicate} {
		if c > 0 {
			w.Metrics.Signals.WithLabelValues(in.Source, outcome).Add(float64(c))
		}
	}
	for status, c := range map[string]int{"granted": n.Granted, "withdrawn": n.Withdrawn, "pending": n.Pending} {
		if c > 0 {
			w.Metrics.SignalStatuses.WithLabelValues(in.Source, status).Add(float64(c))
		}
	}
	w.Logger.Debug("inbound processed", "inbound", in.ID, "source", in.Source, "signals", n.Signals, "applied", n.Applied, "stale", n.Stale,
		"invalid", n.Invalid, "duplicate", n.Duplicate, "suppressions", n.Suppressions, "activities", n.Activities,
		"profiles", n.Profiles, "erasures", n.Erasures, "skipped", len(n.Skipped))
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
