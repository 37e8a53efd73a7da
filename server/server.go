// Package server is consentsync's HTTP layer, on two listeners: the public
// one (Handler: the webhook receiver POST /webhooks/{source} and the
// probes) and the ops one (OpsHandler: the admin API /v1/..., the queue UI
// /ops/queues/, /metrics and pprof, behind the admin and viewer tokens).
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/internal/metrics"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/store"
)

// Inbox is where the receiver commits requests before answering
// (store.Store).
type Inbox interface {
	InsertInbound(ctx context.Context, in store.Inbound) (int64, bool, error)
	Ping(ctx context.Context) error
}

// Server holds the HTTP handlers' dependencies.
type Server struct {
	Config *config.Config
	Inbox  Inbox
	// Consents answers the admin API.
	Consents Consents
	Enqueuer *jobs.Enqueuer
	Sources  map[string]connectors.Source
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Redis is pinged by /readyz; RedisOpt serves asynqmon.
	Redis    redis.UniversalClient
	RedisOpt asynq.RedisConnOpt
	// Now is the clock signatures are checked against (time.Now when nil).
	Now func() time.Time
	// Pages, when set, routes the public pages (/u/, /p/, /c/:
	// server/pages) on the same listener.
	Pages interface{ Register(mux *http.ServeMux) }

	// InboundSources names inbound events' sources in the queue UI
	// (optional).
	InboundSources InboundSources
	// Tracing, when set, records a webhook.receive span per webhook
	// (internal/tracing); nil: tracing off.
	Tracing trace.TracerProvider

	kinds    map[string]string
	draining atomic.Bool
	uiOnce   sync.Once
	ui       *queueUI
}

// Drain makes /readyz answer 503 "draining" from now on, so load
// balancers stop sending new requests while the listener still answers
// (App.RunHTTP keeps it open for server.drain_grace).
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handler returns the public listener's handler (HTTP_ADDR): the webhook
// receiver, the public pages and the probes (/healthz, /readyz), nothing
// else — the admin API, the queue UI, /metrics and pprof are on
// OpsHandler.
func (s *Server) Handler() http.Handler {
	return s.closeWhenDraining(recoverer(s.Logger, s.routes()))
}

// routes routes every endpoint Handler serves (each API one is described
// in OpenAPI; the pages are HTML for people).
func (s *Server) routes() *routeMux {
	s.kinds = map[string]string{}
	for _, src := range s.Config.Sources {
		s.kinds[src.Name] = src.Kind
	}
	mux := newRouteMux()
	mux.HandleFunc("POST /webhooks/{source}", s.handleWebhook)
	mux.HandleFunc("POST /webhooks/{source}/oauth/token", s.handleToken)
	mux.HandleFunc("GET /webhooks/{source}", s.handleProbe)
	mux.HandleFunc("HEAD /webhooks/{source}", s.handleProbe)
	if s.Pages != nil {
		s.Pages.Register(mux.ServeMux)
	}
	s.probes(mux)
	return mux
}

// OpsHandler returns the ops listener's handler (OPS_ADDR), every route
// but the probes and the API description behind a token (guard):
//
//	/healthz, /readyz       open (probes)
//	/v1/openapi.json        open (the API description)
//	/v1/...                 admin API: viewer GET/HEAD, admin everything
//	/ops/queues/            queue UI (asynqmon): viewer read-only, admin full
//	/metrics                either token, or open with server.metrics_open
//	/debug/pprof/           admin only
//	/                       redirects to /ops/queues/
func (s *Server) OpsHandler() http.Handler {
	return s.closeWhenDraining(recoverer(s.Logger, s.opsRoutes()))
}

// opsRoutes routes what OpsHandler serves (each one is described in
// OpenAPI).
func (s *Server) opsRoutes() *routeMux {
	mux := newRouteMux()
	s.probes(mux)
	mux.Handle("GET /metrics", s.guard(scrape, promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{})))

	mux.HandleFunc("GET /v1/openapi.json", handleOpenAPI)
	mux.Handle("GET /v1/subjects/{id}", s.guard(reads, http.HandlerFunc(s.handleSubject)))
	mux.Handle("GET /v1/subjects/{id}/eligibility", s.guard(reads, http.HandlerFunc(s.handleEligibility)))
	mux.Handle("GET /v1/subjects/{id}/history", s.guard(reads, http.HandlerFunc(s.handleHistory)))
	mux.Handle("DELETE /v1/subjects/{id}", s.guard(reads, http.HandlerFunc(s.handleErase)))
	mux.Handle("POST /v1/eligibility", s.guard(reads, http.HandlerFunc(s.handleEligibilityBatch)))
	mux.Handle("POST /v1/subjects/{id}/links", s.guard(reads, http.HandlerFunc(s.handleLinks)))

	// Go's profiler (CPU, heap, goroutines), admin only: a profile shows
	// code paths, never request data, but it costs CPU.
	mux.Handle("GET /debug/pprof/", s.guard(adminOnly, http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", s.guard(adminOnly, http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", s.guard(adminOnly, http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", s.guard(adminOnly, http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", s.guard(adminOnly, http.HandlerFunc(pprof.Trace)))

	if s.RedisOpt != nil {
		s.uiOnce.Do(func() { s.ui = s.newQueueUI() })
		mux.Handle(QueueUIPath+"/", s.guard(reads, s.ui))
	}
	// Not an API route (not in OpenAPI): a browser landing on the listener.
	mux.ServeMux.Handle("GET /{$}", http.RedirectHandler(QueueUIPath+"/", http.StatusFound))
	return mux
}

// Close releases the queue UI's Redis connections.
func (s *Server) Close() {
	if s.ui != nil {
		s.ui.Close()
	}
}

// probes routes /healthz (the process runs) and /readyz (it can serve).
func (s *Server) probes(mux *routeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
}

// handleReady is /readyz: 200 when Postgres and Redis answer within 2 s and
// Redis does not evict keys (maxmemory-policy noeviction, or a server that
// does not say), else 503 naming which check failed (no connection
// strings). After SIGTERM (Drain) it is 503 {"status": "draining"}.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"postgres": "ok", "redis": "ok"}
	code := http.StatusOK
	if err := s.Inbox.Ping(ctx); err != nil {
		checks["postgres"], code = "unavailable", http.StatusServiceUnavailable
	}
	if s.Redis == nil {
		checks["redis"], code = "not configured", http.StatusServiceUnavailable
	} else if err := s.Redis.Ping(ctx).Err(); err != nil {
		checks["redis"], code = "unavailable", http.StatusServiceUnavailable
	} else if p, err := jobs.EvictionPolicy(ctx, s.Redis); err == nil && p != "" && p != "noeviction" {
		// Redis may evict queued tasks: degraded (Postgres still has the
		// work, re-enqueued only after worker.sweep_after).
		checks["redis"], code = "degraded: maxmemory-policy "+p+" can evict queued tasks (want noeviction)", http.StatusServiceUnavailable
	}
	writeJSON(w, code, checks)
}

// closeWhenDraining answers "Connection: close" once Drain was called: each client
// closes its connection after its answer and reconnects (through a load
// balancer, elsewhere).
func (s *Server) closeWhenDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// recoverer turns a handler panic into a 500 without the panic's text (it
// may hold request data) and logs it.
func recoverer(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panic", "route", r.Pattern, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
