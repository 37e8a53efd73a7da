package tracing

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func recorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
}

// TestTraceParentRoundTrip: a span's traceparent, carried as text, makes
// the next span its child in the same trace; no span, no traceparent.
func TestTraceParentRoundTrip(t *testing.T) {
	t.Parallel()
	_, tp := recorder()
	ctx, span := Tracer(tp).Start(context.Background(), "parent")
	defer span.End()
	got := TraceParent(ctx)
	if len(got) != 55 || !strings.HasPrefix(got, "00-"+span.SpanContext().TraceID().String()+"-"+span.SpanContext().SpanID().String()) {
		t.Fatalf("traceparent %q", got)
	}
	_, child := Tracer(tp).Start(WithTraceParent(context.Background(), got), "child")
	defer child.End()
	ro := child.(sdktrace.ReadOnlySpan)
	if ro.Parent().SpanID() != span.SpanContext().SpanID() || ro.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("child of %v in trace %v, want %v", ro.Parent().SpanID(), ro.SpanContext().TraceID(), span.SpanContext())
	}
	if TraceParent(context.Background()) != "" {
		t.Fatal("traceparent without a span")
	}
	if TraceParent(WithTraceParent(context.Background(), "")) != "" {
		t.Fatal("empty traceparent gave a span")
	}
}

// TestWithTraceParentRefusesMalformed: what a payload or a row carries
// may be anything (an older or newer version, a hand-edited task);
// nothing valid-looking comes out of a bad value.
func TestWithTraceParentRefusesMalformed(t *testing.T) {
	t.Parallel()
	for _, v := range []string{
		"garbage",
		"00-00000000000000000000000000000000-0000000000000001-01", // zero trace id
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", // zero span id
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", // version ff is invalid
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",    // no flags
		"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", // upper case
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\x00",
		strings.Repeat("0", 10000),
	} {
		if sc := SpanContextOf(v); sc.IsValid() {
			t.Errorf("%q gave a valid span context %v", v, sc)
		}
	}
	if sc := SpanContextOf("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"); !sc.IsValid() || !sc.IsRemote() || !sc.IsSampled() {
		t.Errorf("a valid traceparent gave %v", sc)
	}
}

// FuzzWithTraceParent: any text read back from a task or a row is safe:
// no panic, and a valid one writes back as itself.
func FuzzWithTraceParent(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	f.Add("")
	f.Add("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")
	f.Fuzz(func(t *testing.T, v string) {
		ctx := WithTraceParent(context.Background(), v)
		sc := trace.SpanContextFromContext(ctx)
		if !sc.IsValid() {
			return
		}
		back := TraceParent(ctx)
		if SpanContextOf(back).TraceID() != sc.TraceID() || SpanContextOf(back).SpanID() != sc.SpanID() {
			t.Fatalf("%q read as %v, written back as %q", v, sc, back)
		}
	})
}

// TestTransport: a provider call through the transport is a client span
// child of the caller's span, named for the method, with host, port and
// status but not the path or query (they can hold an address or a key);
// the provider gets a traceparent of that span; the caller's request is
// not changed. Without a provider the base transport is used as is.
func TestTransport(t *testing.T) {
	t.Parallel()
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	rec, tp := recorder()
	base := http.DefaultTransport
	if Transport(base, nil) != base {
		t.Fatal("tracing off should leave the transport alone")
	}
	hc := &http.Client{Transport: Transport(base, tp)}
	ctx, parent := Tracer(tp).Start(context.Background(), "destination.push")
	req, _ := http.NewRequestWithContext(ctx, "DELETE", srv.URL+"/v3/asm/suppressions/global/jane.doe@example.com?api_key=secret", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	if req.Header.Get("Traceparent") != "" {
		t.Fatal("the caller's request was changed")
	}
	var client sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "HTTP DELETE" {
			client = s
		}
	}
	if client == nil {
		t.Fatal("no client span")
	}
	if client.SpanKind() != trace.SpanKindClient || client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("kind %v, parent %v", client.SpanKind(), client.Parent().SpanID())
	}
	if tp := got.Get("Traceparent"); SpanContextOf(tp).SpanID() != client.SpanContext().SpanID() {
		t.Fatalf("provider got traceparent %q, want the client span %v", tp, client.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range client.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
		if v := kv.Value.Emit(); strings.Contains(v, "jane") || strings.Contains(v, "secret") || strings.Contains(v, "/v3") {
			t.Errorf("attribute %s = %q leaks the URL", kv.Key, v)
		}
	}
	if attrs["http.request.method"] != "DELETE" || attrs["server.address"] != "127.0.0.1" || attrs["http.response.status_code"] != "429" || attrs["server.port"] == "" {
		t.Errorf("attributes %v", attrs)
	}
	if client.Status().Code.String() != "Error" {
		t.Errorf("a 429 should mark the span failed, status %v", client.Status())
	}
}

// TestSetupFromEnv: off unless an OTLP endpoint is named; the standard
// switches turn it off; what cannot be honoured is refused by name.
func TestSetupFromEnv(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, c := range []struct {
		name    string
		getenv  func(string) string
		on      bool
		errWord string
	}{
		{"nothing set", env(), false, ""},
		{"endpoint", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), true, ""},
		{"traces endpoint", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"), true, ""},
		{"sdk disabled", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_SDK_DISABLED", "true"), false, ""},
		{"exporter none", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER", "none"), false, ""},
		{"grpc", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), false, "http/protobuf"},
		{"zipkin", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER", "zipkin"), false, "otlp"},
	} {
		tp, shutdown, err := Setup(ctx, c.getenv, "test")
		if c.errWord != "" {
			if err == nil || !strings.Contains(err.Error(), c.errWord) {
				t.Errorf("%s: err %v, want one naming %s", c.name, err, c.errWord)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if (tp != nil) != c.on {
			t.Errorf("%s: tracing on = %v, want %v", c.name, tp != nil, c.on)
		}
		if err := shutdown(ctx); err != nil {
			t.Errorf("%s: shutdown: %v", c.name, err)
		}
	}
}

// TestSetupExportsToCollector: with OTEL_EXPORTER_OTLP_ENDPOINT naming a
// collector, spans are sent there over OTLP/HTTP (protobuf, POST
// /v1/traces) by the time shutdown returns, with service.name consentsync.
func TestSetupExportsToCollector(t *testing.T) {
	got := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == "POST" && r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			got <- b
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	ctx := context.Background()
	tp, shutdown, err := Setup(ctx, os.Getenv, "v9.9.9")
	if err != nil || tp == nil {
		t.Fatalf("Setup: %v, %v", tp, err)
	}
	_, span := Tracer(tp).Start(ctx, SpanReceive)
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		for _, want := range []string{SpanReceive, "consentsync", "v9.9.9"} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("exported spans lack %q", want)
			}
		}
	default:
		t.Fatal("no OTLP export reached the collector")
	}
}
