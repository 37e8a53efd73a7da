// Package tracing is consentsync's OpenTelemetry tracing
// (https://opentelemetry.io/docs/specs/otel/trace/api/): the tracer every
// part uses, the W3C Trace Context carrier (https://www.w3.org/TR/trace-context/)
// kept with stored webhooks and asynq task payloads, the span attribute
// names, the provider-call HTTP transport, and the OTLP exporter set up
// from the standard environment variables.
//
// One webhook is one trace: webhook.receive (the receiver, server span) →
// inbound.process (its asynq task, consumer span) → inbound.reconcile (the
// row's reconciliation in a batch) → suppression.push (the push task of
// each destination that got a suppression) → destination.push (one
// provider call) → HTTP <method> (each HTTP request of that call, client
// span, with a traceparent header sent to the provider).
//
// No personal data goes into a span: attributes name sources,
// destinations, ids, counts and outcomes only (never an address, a phone
// number, a URL path or an error text, which may quote the request).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of every consentsync span.
const ScopeName = "github.com/consentsync/consentsync"

// Span names.
const (
	SpanReceive         = "webhook.receive"
	SpanInboundTask     = "inbound.process"
	SpanReconcile       = "inbound.reconcile"
	SpanPushTask        = "suppression.push"
	SpanDestinationPush = "destination.push"
	SpanDestinationLift = "destination.lift"
	SpanReadBack        = "destination.check"
)

// Span attribute keys (consentsync's own; HTTP ones follow the OpenTelemetry
// semantic conventions, https://opentelemetry.io/docs/specs/semconv/http/).
const (
	// AttrSource is a configured source's name (config sources[].name).
	AttrSource = attribute.Key("consentsync.source")
	// AttrDestination is a configured destination's name.
	AttrDestination = attribute.Key("consentsync.destination")
	// AttrInboundID is an inbound_events row id (the inbox).
	AttrInboundID = attribute.Key("consentsync.inbound.id")
	// AttrDuplicate: the webhook repeated a stored one (same source and
	// dedup key).
	AttrDuplicate = attribute.Key("consentsync.inbound.duplicate")
	// AttrOutcome is what became of the work: for webhook.receive the
	// consentsync_webhooks_received_total outcome (accepted, duplicate,
	// unauthorized, malformed, too_large, unavailable, unknown_source); for
	// inbound.reconcile processed, failed or retry; for inbound.process
	// processed, done_elsewhere (another batch took the row) or failed.
	AttrOutcome = attribute.Key("consentsync.outcome")
	// AttrBatchRows is how many inbound rows one reconcile transaction took.
	AttrBatchRows = attribute.Key("consentsync.batch.rows")
	// AttrSignals, AttrApplied, AttrStale, AttrInvalid, AttrDuplicates:
	// consent signals read from a row and what reconciliation did with
	// them (counts).
	AttrSignals    = attribute.Key("consentsync.signals")
	AttrApplied    = attribute.Key("consentsync.signals.applied")
	AttrStale      = attribute.Key("consentsync.signals.stale")
	AttrInvalid    = attribute.Key("consentsync.signals.invalid")
	AttrDuplicates = attribute.Key("consentsync.signals.duplicate")
	// AttrSuppressions is how many suppressions (outbox rows) a row queued
	// or a provider call carried.
	AttrSuppressions = attribute.Key("consentsync.suppressions")
	// AttrDestinations is how many destinations a row queued suppressions for.
	AttrDestinations = attribute.Key("consentsync.destinations")
	// AttrSent, AttrFailed, AttrRetry: a provider call's rows by outcome
	// (consentsync_suppressions_pushed_total's outcomes).
	AttrSent   = attribute.Key("consentsync.suppressions.sent")
	AttrFailed = attribute.Key("consentsync.suppressions.failed")
	AttrRetry  = attribute.Key("consentsync.suppressions.retry")
	// AttrRetryCount is how many times asynq ran the task before (0 first).
	AttrRetryCount = attribute.Key("consentsync.task.retry")
	// AttrErrorKind classifies a failure without its text: permanent,
	// transient or timeout.
	AttrErrorKind = attribute.Key("consentsync.error.kind")
)

// Tracer is tp's consentsync tracer; a nil tp gives a tracer whose spans
// record nothing (tracing off).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

// Fail marks span failed with a fixed description (never an error's text:
// it may quote personal data) and the kind of failure.
func Fail(span trace.Span, description, kind string) {
	span.SetStatus(codes.Error, description)
	if kind != "" {
		span.SetAttributes(AttrErrorKind.String(kind))
	}
}

// propagator is the W3C Trace Context format (traceparent, tracestate).
var propagator = propagation.TraceContext{}

// TraceParent is the W3C traceparent of ctx's span
// ("00-<trace id>-<span id>-<flags>", 55 characters), or "" when ctx has
// no valid span (tracing off). It is what a stored webhook and an asynq
// task payload carry.
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceParent returns ctx carrying traceparent as its remote parent
// span context; ctx itself when traceparent is "" or malformed (a payload
// enqueued before tracing existed, or by another version, has none).
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// SpanContextOf is the span context traceparent names (invalid when ""
// or malformed).
func SpanContextOf(traceparent string) trace.SpanContext {
	return trace.SpanContextFromContext(WithTraceParent(context.Background(), traceparent))
}

// Transport wraps base (http.DefaultTransport when nil) so that each
// request is a client span "HTTP <method>" child of the request context's
// span, with the method, the server's host and port and the answer's
// status as attributes — never the URL's path or query, which can hold an
// address (SendGrid's /v3/asm/suppressions/global/{email}) or a key — and
// carries a traceparent header to the provider. With tracing off (a nil
// tp) it returns base.
func Transport(base http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if tp == nil {
		return base
	}
	return &transport{base: base, tracer: Tracer(tp)}
}

type transport struct {
	base   http.RoundTripper
	tracer trace.Tracer
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", req.URL.Hostname()),
	}
	if p := req.URL.Port(); p != "" {
		attrs = append(attrs, attribute.String("server.port", p))
	}
	ctx, span := t.tracer.Start(req.Context(), "HTTP "+req.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	defer span.End()
	if span.SpanContext().IsValid() {
		// RoundTrip must not change the caller's request: a copy carries
		// the header.
		req = req.Clone(ctx)
		propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		Fail(span, "request failed", "transport")
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	return resp, nil
}

// Setup builds the tracer provider from the standard OpenTelemetry
// environment variables
// (https://opentelemetry.io/docs/specs/otel/protocol/exporter/,
// https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/),
// read through getenv:
//
//   - tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, and neither
//     OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise;
//     off, it returns a nil provider (every span is a no-op) and a no-op
//     shutdown;
//   - the exporter is OTLP over HTTP with protobuf
//     (OTEL_EXPORTER_OTLP_PROTOCOL unset or http/protobuf; grpc is refused
//     with an error: point the endpoint at the collector's HTTP port,
//     4318), configured by the otlptracehttp package's own variables
//     (_ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, …);
//   - the sampler follows OTEL_TRACES_SAMPLER / _ARG (default
//     parentbased_always_on), the batch processor OTEL_BSP_*;
//   - the resource is service.name "consentsync" unless OTEL_SERVICE_NAME
//     or OTEL_RESOURCE_ATTRIBUTES name another, plus service.version.
//
// shutdown flushes buffered spans; call it before the process exits.
func Setup(ctx context.Context, getenv func(string) string, version string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") ||
		strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return nil, off, nil
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, off, nil
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && !strings.EqualFold(e, "otlp") {
		return nil, off, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: only otlp (or none) is supported", e)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if p := strings.TrimSpace(proto); p != "" && p != "http/protobuf" {
		return nil, off, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is supported (the collector's OTLP/HTTP port, 4318)", p)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, off, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "consentsync"), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES override the name
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, off, fmt.Errorf("tracing: resource: %w", err)
	}
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return p, p.Shutdown, nil
}
