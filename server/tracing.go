package server

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/internal/tracing"
)

// startReceive starts the webhook.receive span of a webhook request
// (internal/tracing): a server span named for the route, never the path
// (its {source} is in consentsync.source). A sender's own traceparent, if
// it sent one, is linked, not continued: a public endpoint does not let
// callers choose our trace ids or sampling. The returned writer records
// the answer's status on the span; end the span when the answer is written.
func (s *Server) startReceive(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, trace.Span) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot(),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", "/webhooks/{source}")),
	}
	if remote := tracing.SpanContextOf(r.Header.Get("Traceparent")); remote.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: remote}))
	}
	ctx, span := tracing.Tracer(s.Tracing).Start(r.Context(), tracing.SpanReceive, opts...)
	r = r.WithContext(ctx) // a sampled-out span still carries its trace's decision on
	if !span.IsRecording() {
		return w, r, span
	}
	return &statusWriter{ResponseWriter: w, span: span}, r, span
}

// statusWriter sets http.response.status_code on span at WriteHeader.
type statusWriter struct {
	http.ResponseWriter
	span  trace.Span
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.span.SetAttributes(attribute.Int("http.response.status_code", code))
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
