package server

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/metrics"
)

const (
	testAdmin  = "admin-0123456789"
	testViewer = "viewer-0123456789"
)

func opsServer(p config.Process, metricsOpen bool) http.Handler {
	cfg := &config.Config{Process: p}
	cfg.Server.MetricsOpen = metricsOpen
	s := &Server{Config: cfg, Metrics: metrics.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return s.OpsHandler()
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// TestGuard: every route of the ops listener by credential, method and
// configuration; the answers the e2e test cannot reach without a second
// process (no token configured, metrics_open).
func TestGuard(t *testing.T) {
	t.Parallel()
	both := config.Process{AdminToken: testAdmin, ViewerToken: testViewer}
	cases := []struct {
		name        string
		p           config.Process
		metricsOpen bool
		method      string
		path        string
		auth        string
		want        int
	}{
		{"metrics without token", both, false, "GET", "/metrics", "", 401},
		{"metrics viewer", both, false, "GET", "/metrics", "Bearer " + testViewer, 200},
		{"metrics admin basic", both, false, "GET", "/metrics", basic("prom", testAdmin), 200},
		{"metrics open", both, true, "GET", "/metrics", "", 200},
		{"metrics open, no token configured", config.Process{}, true, "GET", "/metrics", "", 200},
		{"metrics closed, no token configured", config.Process{}, false, "GET", "/metrics", "", 403},
		{"open metrics do not open pprof", both, true, "GET", "/debug/pprof/", "", 401},
		{"no token configured: admin API closed", config.Process{}, false, "GET", "/v1/subjects/x", "Bearer ", 403},
		{"no token configured: pprof closed", config.Process{}, false, "GET", "/debug/pprof/", basic("a", ""), 403},
		{"viewer only configured: admin route", config.Process{ViewerToken: testViewer}, false, "GET", "/debug/pprof/", "Bearer " + testViewer, 403},
		{"empty admin token never matches", config.Process{ViewerToken: testViewer}, false, "GET", "/debug/pprof/", "Bearer ", 401},
		{"lower-case bearer scheme", both, false, "GET", "/debug/pprof/", "bearer " + testAdmin, 200},
		{"token with trailing space", both, false, "GET", "/debug/pprof/", "Bearer " + testAdmin + "  ", 200},
		{"token prefix", both, false, "GET", "/debug/pprof/", "Bearer " + testAdmin[:len(testAdmin)-1], 401},
		{"token in the user name", both, false, "GET", "/debug/pprof/", basic(testAdmin, "x"), 401},
		{"other scheme", both, false, "GET", "/debug/pprof/", "Token " + testAdmin, 401},
		{"viewer pprof", both, false, "GET", "/debug/pprof/", basic("v", testViewer), 403},
		{"viewer erase", both, false, "DELETE", "/v1/subjects/x", "Bearer " + testViewer, 403},
		{"viewer batch", both, false, "POST", "/v1/eligibility", "Bearer " + testViewer, 403},
		{"probe open", both, false, "GET", "/healthz", "", 200},
		{"root redirects to the queue UI", both, false, "GET", "/", "", 302},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := opsServer(c.p, c.metricsOpen)
			req := httptest.NewRequest(c.method, c.path, nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("%s %s (%q): %d %s, want %d", c.method, c.path, c.auth, rec.Code, rec.Body, c.want)
			}
			if c.want == 401 && len(rec.Header().Values("WWW-Authenticate")) != 2 {
				t.Errorf("401 with WWW-Authenticate %q", rec.Header().Values("WWW-Authenticate"))
			}
		})
	}
}

// FuzzRoleOf: any Authorization header is parsed without a panic, and
// grants a role only when it carries that role's token exactly.
func FuzzRoleOf(f *testing.F) {
	for _, seed := range []string{"Bearer " + testAdmin, "bearer " + testViewer, basic("u", testAdmin), basic("", testViewer),
		"Basic !!!", "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), "Bearer", "Bearer  ", " ", "Digest x", "BEARER\t" + testAdmin} {
		f.Add(seed)
	}
	s := &Server{Config: &config.Config{Process: config.Process{AdminToken: testAdmin, ViewerToken: testViewer}}}
	f.Fuzz(func(t *testing.T, auth string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["Authorization"] = []string{auth}
		role := s.RoleOf(req)
		tok, _ := credential(req)
		switch role {
		case RoleAdmin:
			if tok != testAdmin {
				t.Fatalf("%q: admin for token %q", auth, tok)
			}
		case RoleViewer:
			if tok != testViewer {
				t.Fatalf("%q: viewer for token %q", auth, tok)
			}
		case RoleNone:
			if tok == testAdmin || tok == testViewer {
				t.Fatalf("%q: token %q refused", auth, tok)
			}
		}
		if role != RoleNone && !strings.Contains(auth, tok) && !strings.HasPrefix(strings.ToLower(auth), "basic ") {
			t.Fatalf("%q: role %s from a token it does not carry", auth, role)
		}
	})
}

// TestTaskFormatter: a payload shows as its ids and names, never its bytes.
func TestTaskFormatter(t *testing.T) {
	t.Parallel()
	f := &taskFormatter{sources: sourcesFunc(func(id int64) (string, error) { return map[int64]string{7: "hubspot-acme"}[id], nil })}
	for _, c := range []struct{ typ, payload, want string }{
		{"inbound:process", `{"id":7}`, `{"inbound_event":7,"source":"hubspot-acme"}`},
		{"inbound:process", `{"id":8,"again":true}`, `{"again":true,"inbound_event":8}`},
		{"suppression:push", `{"destination":"sendgrid-acme","at":1767225600200}`, `{"destination":"sendgrid-acme","due":"2026-01-01T00:00:00.2Z"}`},
		{"inbound:process", `{"email":"ada@example.com"}`, `(inbound:process payload, 27 bytes, not shown)`},
		{"suppression:push", `not json ada@example.com`, `(suppression:push payload, 24 bytes, not shown)`},
		{"other:type", `{"email":"ada@example.com"}`, `(other:type payload, 27 bytes, not shown)`},
	} {
		if got := f.FormatPayload(c.typ, []byte(c.payload)); got != c.want {
			t.Errorf("FormatPayload(%s, %s) = %s, want %s", c.typ, c.payload, got, c.want)
		}
	}
	if got := f.FormatResult("x", []byte("ada@example.com")); strings.Contains(got, "@") {
		t.Errorf("FormatResult shows the result: %s", got)
	}
}

type sourcesFunc func(int64) (string, error)

func (f sourcesFunc) InboundSource(_ context.Context, id int64) (string, error) { return f(id) }

// TestSelfContained: the page loses its links to other hosts; files and the
// API pass untouched; every answer carries the CSP.
func TestSelfContained(t *testing.T) {
	t.Parallel()
	page := `<!doctype html><html><head><link rel="icon" href="/ops/queues/favicon.ico"/><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto:300,400,500,700&display=swap"/><link rel="stylesheet" href="https://fonts.googleapis.com/icon?family=Material+Icons"/></head><body></body></html>`
	h := selfContained(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, page)
	}))
	for path, keep := range map[string]bool{"/ops/queues/": false, "/ops/queues/queues/inbound": false, "/ops/queues/api/queues": true, "/ops/queues/static/js/x.js": true} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body := rec.Body.String()
		if got := strings.Contains(body, "googleapis"); got != keep {
			t.Errorf("%s: external links kept = %v, want %v", path, got, keep)
		}
		if !strings.Contains(body, `href="/ops/queues/favicon.ico"`) {
			t.Errorf("%s: own link lost: %s", path, body)
		}
		if rec.Header().Get("Content-Security-Policy") != queueUICSP {
			t.Errorf("%s: no CSP", path)
		}
	}
	// The API's answers lose their addresses (a task's last error may
	// quote one); the files are served as they are.
	api := selfContained(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"tasks":[{"id":"inbound:7","error_message":"parse: bad address Ada.Lovelace@Example.com in field"}]}`)
	}))
	for path, masked := range map[string]bool{"/ops/queues/api/queues/inbound/archived_tasks": true, "/ops/queues/static/js/main.js": false} {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := !strings.Contains(rec.Body.String(), "Lovelace@"); got != masked || masked && !strings.Contains(rec.Body.String(), `"id":"inbound:7"`) {
			t.Errorf("%s: %s (masked %v, want %v)", path, rec.Body, got, masked)
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: content type lost: %q", path, rec.Header().Get("Content-Type"))
		}
	}
}
