package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/internal/tracing"
	"github.com/consentsync/consentsync/jobs"
)

// TestOneWebhookOneTrace: with an in-memory span recorder, one Postmark
// withdrawal gives one connected trace: webhook.receive (root) →
// inbound.process (its asynq task) → inbound.reconcile →
// suppression.push (one per destination that got the suppression) →
// destination.push → HTTP POST, every span in the receiver's trace, each
// parented on the one before; the provider got the client span's
// traceparent; and no span attribute carries the person's address.
func TestOneWebhookOneTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := start(t, envOptions{tracing: tp})
	const email = "traced.person@example.com"
	e.withdrawByPostmark(email)
	e.waitDrained()
	// Spans end child first: wait for a snapshot where both provider
	// calls are recorded and so is the parent of every recorded span.
	var spans []sdktrace.ReadOnlySpan
	e.waitFor("the provider calls' spans and their parents", func() bool {
		spans = rec.Ended()
		ids := map[trace.SpanID]bool{}
		pushes := 0
		for _, s := range spans {
			ids[s.SpanContext().SpanID()] = true
			if s.Name() == tracing.SpanDestinationPush {
				pushes++
			}
		}
		for _, s := range spans {
			if s.Parent().IsValid() && !s.Parent().IsRemote() && !ids[s.Parent().SpanID()] {
				return false
			}
		}
		return pushes >= 2
	})
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var root sdktrace.ReadOnlySpan
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
		if s.Name() == tracing.SpanReceive {
			if root != nil {
				t.Fatal("two webhook.receive spans for one webhook")
			}
			root = s
		}
	}
	if root == nil {
		t.Fatal("no webhook.receive span")
	}
	if root.Parent().IsValid() {
		t.Fatal("webhook.receive has a parent: a webhook starts its own trace")
	}
	if got := attr(root, tracing.AttrSource); got != "postmark-acme" {
		t.Errorf("webhook.receive source = %q", got)
	}
	if got := attr(root, "http.response.status_code"); got != "202" {
		t.Errorf("webhook.receive status = %q, want 202", got)
	}
	traceID := root.SpanContext().TraceID()
	// parentName is the name of s's parent span, which must be recorded
	// and in the same trace.
	parentName := func(s sdktrace.ReadOnlySpan) string {
		t.Helper()
		if s.SpanContext().TraceID() != traceID {
			t.Fatalf("%s is in trace %s, the webhook in %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		p, ok := byID[s.Parent().SpanID()]
		if !ok {
			t.Fatalf("%s: parent %s not recorded", s.Name(), s.Parent().SpanID())
		}
		return p.Name()
	}
	want := map[string]string{
		tracing.SpanInboundTask:     tracing.SpanReceive,
		tracing.SpanReconcile:       "", // the task's span, or the receiver's when the claimer took the row
		tracing.SpanPushTask:        tracing.SpanReconcile,
		tracing.SpanDestinationPush: tracing.SpanPushTask,
	}
	seen := map[string]int{}
	pushedTo := map[string]bool{}
	clientSpans := 0
	for _, s := range spans {
		if s.SpanContext().TraceID() != traceID {
			continue
		}
		seen[s.Name()]++
		checkNoPersonalData(t, s, "traced.person")
		if s.Name() == tracing.SpanReceive {
			continue
		}
		p := parentName(s)
		switch name := s.Name(); {
		case name == tracing.SpanReconcile:
			if p != tracing.SpanInboundTask && p != tracing.SpanReceive {
				t.Errorf("inbound.reconcile's parent is %s", p)
			}
			if attr(s, tracing.AttrOutcome) != "processed" || attr(s, tracing.AttrSuppressions) == "0" {
				t.Errorf("inbound.reconcile: outcome %q, suppressions %q", attr(s, tracing.AttrOutcome), attr(s, tracing.AttrSuppressions))
			}
		case name == tracing.SpanDestinationPush:
			if p != tracing.SpanPushTask {
				t.Errorf("destination.push's parent is %s", p)
			}
			pushedTo[attr(s, tracing.AttrDestination)] = true
			if attr(s, tracing.AttrSent) != "1" {
				t.Errorf("destination.push to %s: sent = %q, want 1", attr(s, tracing.AttrDestination), attr(s, tracing.AttrSent))
			}
		case strings.HasPrefix(name, "HTTP "):
			clientSpans++
			if p != tracing.SpanDestinationPush && p != tracing.SpanReadBack {
				t.Errorf("%s's parent is %s", name, p)
			}
		case want[name] != "" && p != want[name]:
			t.Errorf("%s's parent is %s, want %s", name, p, want[name])
		}
	}
	t.Logf("spans in the webhook's trace: %v", seen)
	for name := range want {
		if seen[name] == 0 {
			t.Errorf("no %s span in the webhook's trace (seen %v)", name, seen)
		}
	}
	if !pushedTo["sendgrid-acme"] || !pushedTo["mailchimp-acme"] {
		t.Errorf("destination.push spans for %v, want sendgrid-acme and mailchimp-acme", pushedTo)
	}
	if clientSpans == 0 {
		t.Error("no HTTP client span under the provider calls")
	}
	// The provider saw the trace: its request carried a traceparent of
	// the webhook's trace.
	calls := e.Sandbox.Calls(sandbox.SendGrid)
	if len(calls) == 0 {
		t.Fatal("SendGrid was not called")
	}
	if tpHeader := calls[0].Header.Get("Traceparent"); !strings.Contains(tpHeader, traceID.String()) {
		t.Errorf("SendGrid's request traceparent %q, want trace %s", tpHeader, traceID)
	}
}

// checkNoPersonalData fails t when an attribute, the status or an event of
// s holds an address or local part.
func checkNoPersonalData(t *testing.T, s sdktrace.ReadOnlySpan, local string) {
	t.Helper()
	check := func(what, v string) {
		if strings.Contains(v, "@") || strings.Contains(v, local) {
			t.Errorf("span %s %s carries personal data: %q", s.Name(), what, v)
		}
	}
	for _, kv := range s.Attributes() {
		check("attribute "+string(kv.Key), kv.Value.Emit())
	}
	check("status", s.Status().Description)
	for _, ev := range s.Events() {
		check("event", ev.Name)
		for _, kv := range ev.Attributes {
			check("event attribute "+string(kv.Key), kv.Value.Emit())
		}
	}
}

// attr is span s's attribute key as text ("" when absent).
func attr[K ~string](s sdktrace.ReadOnlySpan, key K) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == string(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestBatchedWebhooksKeepTheirTraces: webhooks stored while no worker
// runs are reconciled together (one batch, or the claimer); each one's
// reconcile span is still in its own webhook's trace, parented on its
// receiver or its task, with the batch's size.
func TestBatchedWebhooksKeepTheirTraces(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := start(t, envOptions{tracing: tp, noWorker: true})
	for _, who := range []string{"batch.one@example.com", "batch.two@example.com", "batch.three@example.com"} {
		e.withdrawByPostmark(who)
	}
	e.StartWorker()
	e.waitDrained()
	e.waitFor("a reconcile span per webhook", func() bool {
		n := 0
		for _, s := range rec.Ended() {
			if s.Name() == tracing.SpanReconcile {
				n++
			}
		}
		return n >= 3
	})
	spans := rec.Ended()
	names := map[trace.SpanID]string{}
	receivers := map[trace.TraceID]bool{}
	for _, s := range spans {
		names[s.SpanContext().SpanID()] = s.Name()
		if s.Name() == tracing.SpanReceive {
			receivers[s.SpanContext().TraceID()] = true
		}
	}
	if len(receivers) != 3 {
		t.Fatalf("%d webhook traces, want 3", len(receivers))
	}
	reconciled := map[trace.TraceID]int{}
	batched := false
	for _, s := range spans {
		if s.Name() != tracing.SpanReconcile {
			continue
		}
		id := s.SpanContext().TraceID()
		if !receivers[id] {
			t.Errorf("inbound.reconcile of inbound %s in a trace of no webhook", attr(s, tracing.AttrInboundID))
			continue
		}
		reconciled[id]++
		if p := names[s.Parent().SpanID()]; p != tracing.SpanReceive && p != tracing.SpanInboundTask {
			t.Errorf("inbound.reconcile's parent is %q", p)
		}
		if attr(s, tracing.AttrBatchRows) != "1" {
			batched = true
		}
		checkNoPersonalData(t, s, "batch.")
	}
	for id := range receivers {
		if reconciled[id] != 1 {
			t.Errorf("trace %s has %d reconcile spans, want 1", id, reconciled[id])
		}
	}
	t.Logf("reconciled in one batch: %v", batched)
}

// TestUntracedTaskJoinsStoredTrace: a task enqueued outside any trace
// (the sweeper after a Redis loss, replay, a payload from before tracing:
// no traceparent) reconciles its row in the trace stored with the row,
// linked to the task's own span.
func TestUntracedTaskJoinsStoredTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := start(t, envOptions{tracing: tp, noWorker: true})
	e.withdrawByPostmark("untraced.task@example.com")
	var id int64
	if err := e.App.Store.DB.Get(&id, `SELECT id FROM inbound_events`); err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf(`{"id":%d,"again":true}`, id) // as the sweeper enqueued before tracing existed
	if err := e.App.Worker.HandleInbound(context.Background(), asynq.NewTask(jobs.TypeInboundProcess, []byte(old))); err != nil {
		t.Fatal(err)
	}
	var receive, task, reconcile sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case tracing.SpanReceive:
			receive = s
		case tracing.SpanInboundTask:
			task = s
		case tracing.SpanReconcile:
			reconcile = s
		}
	}
	if receive == nil || task == nil || reconcile == nil {
		t.Fatalf("spans: receive %v, task %v, reconcile %v", receive != nil, task != nil, reconcile != nil)
	}
	if task.Parent().IsValid() || task.SpanContext().TraceID() == receive.SpanContext().TraceID() {
		t.Error("a task without traceparent should start its own trace")
	}
	if reconcile.SpanContext().TraceID() != receive.SpanContext().TraceID() || reconcile.Parent().SpanID() != receive.SpanContext().SpanID() {
		t.Errorf("reconcile in trace %s under %s, want the webhook's trace %s under its receive span", reconcile.SpanContext().TraceID(), reconcile.Parent().SpanID(), receive.SpanContext().TraceID())
	}
	if l := reconcile.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != task.SpanContext().SpanID() {
		t.Errorf("reconcile links %v, want the task span", l)
	}
	if attr(task, tracing.AttrOutcome) != "processed" {
		t.Errorf("task outcome %q", attr(task, tracing.AttrOutcome))
	}
}
