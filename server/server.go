// Package server is consentsync's HTTP layer: the webhook receiver
// (POST /webhooks/{source}), the admin API (/v1/..., bearer token) and the
// ops endpoints (/healthz, /readyz, /metrics, /ops/queues/).
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
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
	// Tracing, when set, records a webhook.receive span per webhook
	// (internal/tracing); nil: tracing off.
	Tracing trace.TracerProvider

	kinds    map[string]string
	draining atomic.Bool
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

// OpsHandler serves the ops endpoints alone (/healthz, /readyz, /metrics,
// /debug/pprof/ behind the admin token), for the OPS_ADDR listener.
func (s *Server) OpsHandler() http.Handler {
	return s.closeWhenDraining(recoverer(s.Logger, s.opsRoutes()))
}

// opsRoutes routes what OpsHandler serves (each one is described in
// OpenAPI).
func (s *Server) opsRoutes() *routeMux {
	mux := newRouteMux()
	s.ops(mux)
	return mux
}

// ops routes the ops endpoints on mux.
func (s *Server) ops(mux *routeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	// Go's profiler (CPU, heap, goroutines), behind the admin token: a
	// profile shows code paths, never request data, but it costs CPU.
	mux.Handle("GET /debug/pprof/", s.admin(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", s.admin(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", s.admin(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", s.admin(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", s.admin(http.HandlerFunc(pprof.Trace)))
}

// Handler returns the routed HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := s.routes()
	return s.closeWhenDraining(recoverer(s.Logger, mux))
}

// routes routes every endpoint Handler serves (each one is described in
// OpenAPI).
func (s *Server) routes() *routeMux {
	s.kinds = map[string]string{}
	for _, src := range s.Config.Sources {
		s.kinds[src.Name] = src.Kind
	}
	mux := newRouteMux()
	mux.HandleFunc("POST /webhooks/{source}", s.handleWebhook)
	mux.HandleFunc("GET /webhooks/{source}", s.handleProbe)
	mux.HandleFunc("HEAD /webhooks/{source}", s.handleProbe)

	mux.Handle("GET /v1/subjects/{id}", s.admin(http.HandlerFunc(s.handleSubject)))
	mux.Handle("GET /v1/subjects/{id}/eligibility", s.admin(http.HandlerFunc(s.handleEligibility)))
	mux.Handle("GET /v1/subjects/{id}/history", s.admin(http.HandlerFunc(s.handleHistory)))
	mux.Handle("DELETE /v1/subjects/{id}", s.admin(http.HandlerFunc(s.handleErase)))
	mux.Handle("POST /v1/eligibility", s.admin(http.HandlerFunc(s.handleEligibilityBatch)))
	mux.HandleFunc("GET /v1/openapi.json", handleOpenAPI)

	s.ops(mux)
	if s.RedisOpt != nil {
		mon := asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: s.RedisOpt})
		mux.Handle("/ops/queues/", s.admin(mon))
	}
	return mux
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

// admin guards h with the admin token: "Authorization: Bearer <token>", or
// HTTP basic auth with the token as password (so a browser can open
// asynqmon). Without a configured token the admin surface is closed (403).
func (s *Server) admin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := s.Config.Process.AdminToken
		if want == "" {
			writeError(w, http.StatusForbidden, "admin API disabled: set CONSENTSYNC_ADMIN_TOKEN")
			return
		}
		got := ""
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			got = strings.TrimSpace(a[7:])
		} else if _, pw, ok := r.BasicAuth(); ok {
			got = pw
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="consentsync", Basic realm="consentsync"`)
			writeError(w, http.StatusUnauthorized, "admin token required")
			return
		}
		h.ServeHTTP(w, r)
	})
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
