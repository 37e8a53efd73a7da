package server

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.0 description of every route Handler serves
// (https://spec.openapis.org/oas/v3.0.3): the webhook receiver's answers,
// the admin API with each body's shape, units and meaning, and the ops
// endpoints. It is the checked-in server/openapi.json; the contract tests
// (server/openapi_test.go: every routed pattern is described and every
// description is routed; e2e/openapi_test.go: real answers validate
// against it) keep it true.
//
//go:embed openapi.json
var OpenAPI []byte

// handleOpenAPI is GET /v1/openapi.json: the document, no token needed
// (it describes the API, it holds no data).
func handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(OpenAPI)
}

// routeMux is an http.ServeMux that remembers the patterns routed on it,
// so the contract test can compare them with the OpenAPI document.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}
