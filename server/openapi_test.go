package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hibiken/asynq"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/metrics"
)

// loadOpenAPI parses and validates the checked-in document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("server/openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("server/openapi.json is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// TestOpenAPIDescribesEveryRoute: every pattern Handler and OpsHandler
// route (ops endpoints and the queue UI included) is an operation of the document,
// and every operation of the document is routed: neither can gain a route
// the other lacks. A pattern without a method (a subtree such as
// /ops/queues/) must be described at least for GET.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	s := &Server{Config: &config.Config{}, Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler),
		RedisOpt: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}}
	// Both listeners: HTTP_ADDR (Handler) and OPS_ADDR (OpsHandler).
	var patterns []string
	for _, mux := range []*routeMux{s.routes(), s.opsRoutes()} {
		patterns = append(patterns, mux.patterns...)
	}
	routed := map[string]bool{}
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = http.MethodGet, p
		}
		routed[method+" "+path] = true
	}
	described := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			described[method+" "+path] = true
			if op.OperationID == "" || op.Description == "" {
				t.Errorf("%s %s: no operationId or description", method, path)
			}
			for code, r := range op.Responses.Map() {
				if r.Value == nil || r.Value.Description == nil || *r.Value.Description == "" {
					t.Errorf("%s %s %s: response without a description", method, path, code)
				}
			}
		}
	}
	for r := range routed {
		if !described[r] {
			t.Errorf("routed but not in server/openapi.json: %s", r)
		}
	}
	for d := range described {
		if !routed[d] {
			t.Errorf("in server/openapi.json but not routed: %s", d)
		}
	}
	if len(routed) < 10 {
		t.Fatalf("only %d routes seen: %v", len(routed), patterns)
	}
}

// TestOpenAPISchemasDocumented: every property of every schema says what
// it is (units and meanings live there), and every response object that
// lists its properties refuses others, so a field added to an answer
// without its description fails the e2e contract test.
func TestOpenAPISchemasDocumented(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for name, ref := range doc.Components.Schemas {
		sc := ref.Value
		if sc.Description == "" {
			t.Errorf("schema %s: no description", name)
		}
		for prop, p := range sc.Properties {
			if p.Ref == "" && p.Value.Description == "" {
				t.Errorf("schema %s.%s: no description", name, prop)
			}
		}
		if len(sc.Properties) > 0 && sc.AdditionalProperties.Has != nil && *sc.AdditionalProperties.Has {
			continue // evidence and receipts: open by design
		}
		if len(sc.Properties) > 0 && (sc.AdditionalProperties.Has == nil || *sc.AdditionalProperties.Has) {
			t.Errorf("schema %s lists properties but allows others", name)
		}
	}
}
