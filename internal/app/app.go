// Package app wires consentsync's parts from a config: the store, Redis and
// asynq, the connectors, the worker and the HTTP server. The command and
// the end-to-end tests build the same App.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/registry"
	"github.com/consentsync/consentsync/internal/metrics"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/migrations"
	"github.com/consentsync/consentsync/server"
	"github.com/consentsync/consentsync/server/pages"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
	"github.com/consentsync/consentsync/worker"
)

// App is a wired consentsync process.
type App struct {
	Config    *config.Config
	Logger    *slog.Logger
	Store     *store.Store
	RedisOpt  asynq.RedisConnOpt
	Redis     redis.UniversalClient
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Enqueuer  *jobs.Enqueuer
	Metrics   *metrics.Metrics
	Worker    *worker.Worker
	Server    *server.Server
	// Service is the one service layer every view of a person goes
	// through (admin API, CLI, demo).
	Service *service.Service
}

// Options adjust New.
type Options struct {
	// Migrate applies pending migrations before anything else.
	Migrate bool
	// Now is the program's one clock: when rows are recorded, erasures
	// happen, retries are due and eligibility is decided (time.Now when nil).
	Now func() time.Time
	// Operator builds only the store, Redis and the service (no connectors,
	// worker or HTTP server): what replay, repush and queues need, with no
	// provider secret. Erasure is not available.
	Operator bool
	// VerifyNow, when set, replaces Now for checking webhook signatures and
	// timestamps only (tests replay fixtures signed at fixed times).
	VerifyNow func() time.Time
	// Tracing records spans of webhooks, tasks, reconciliations and
	// provider calls (internal/tracing.Setup builds it from the OTEL_*
	// variables); nil: tracing off.
	Tracing trace.TracerProvider
}

func (o Options) clock() func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// New connects to Postgres and Redis, builds the connectors and the worker
// and server. Errors name what failed; connection strings are not printed.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, o Options) (*App, error) {
	a := &App{Config: cfg, Logger: log, Metrics: metrics.New()}
	st, err := store.Open(ctx, cfg.Process.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres (DATABASE_URL): %w", err)
	}
	a.Store = st
	if err := prepareSchema(ctx, st, o.Migrate); err != nil {
		a.Close()
		return nil, err
	}
	if a.RedisOpt, err = jobs.RedisOpt(cfg.Process.RedisURL); err != nil {
		a.Close()
		return nil, err
	}
	rc, ok := a.RedisOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		a.Close()
		return nil, errors.New("redis (REDIS_URL): unsupported connection kind")
	}
	a.Redis = rc
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		a.Close()
		return nil, fmt.Errorf("redis (REDIS_URL): %w", err)
	}
	if p, err := jobs.EvictionPolicy(pctx, rc); err != nil {
		log.Warn("redis: cannot read maxmemory-policy; make sure it is noeviction, or queued tasks can be evicted", "err", err)
	} else if p != "noeviction" {
		log.Warn("redis: maxmemory-policy evicts keys; queued tasks can be lost (the sweeper recovers them after worker.sweep_after); set noeviction", "policy", p)
	}
	a.Client = asynq.NewClientFromRedisClient(rc)
	a.Inspector = asynq.NewInspectorFromRedisClient(rc)
	a.Metrics.Registry.MustRegister(asynqmetrics.NewQueueMetricsCollector(a.Inspector),
		metrics.BacklogCollector{Store: st, Logger: log, Destinations: destinationNames(cfg), CircuitFailures: cfg.Worker.CircuitFailures})
	a.Metrics.Init(sourceNames(cfg), destinationNames(cfg), rateLimitedNames(cfg))
	a.Enqueuer = &jobs.Enqueuer{Client: a.Client, MaxRetry: cfg.Worker.MaxRetry, Redis: rc, Linger: cfg.Worker.PushLinger}
	now := o.clock()
	verifyNow := now
	if o.VerifyNow != nil {
		verifyNow = o.VerifyNow
	}
	rq := jobs.Requeuer{Enqueuer: a.Enqueuer, Inspector: a.Inspector}
	a.Service = &service.Service{Store: st, Queue: rq, Archive: rq, Config: cfg, Now: now}
	if o.Operator {
		return a, nil
	}
	deps := connectors.Deps{
		HTTP:   connectors.NewHTTPClient(connectors.HTTPOptions{WaitCap: cfg.Worker.PushWaitCap, Tracing: o.Tracing}),
		Logger: log,
		Now:    verifyNow,
		RateWait: func(destination string, wait time.Duration) {
			a.Metrics.RateLimitWait.WithLabelValues(destination).Observe(wait.Seconds())
		},
	}
	srcs, dsts, err := registry.Build(cfg, deps)
	if err != nil {
		a.Close()
		return nil, err
	}
	// The worker also reads the pages' internal sources; the receiver
	// serves the configured ones only.
	workerSrcs := maps.Clone(srcs)
	for _, name := range pages.Sources {
		workerSrcs[name] = pages.Source{}
	}
	a.Worker = &worker.Worker{
		Store: st, Enqueuer: a.Enqueuer, Sources: workerSrcs, Destinations: dsts,
		Routes: worker.RoutesFrom(cfg.Destinations), Config: cfg, Metrics: a.Metrics, Logger: log, Now: now,
		Tracing: o.Tracing,
	}
	a.Service.Eraser = a.Worker
	a.Server = &server.Server{
		Config: cfg, Inbox: &store.GroupInbox{Store: st, Wait: cfg.Server.CommitWait, Max: cfg.Server.CommitRows}, Consents: a.Service, Enqueuer: a.Enqueuer, Sources: srcs, Metrics: a.Metrics, Logger: log,
		Redis: rc, RedisOpt: a.RedisOpt, Now: verifyNow, InboundSources: st, Tracing: o.Tracing,
	}
	if cfg.Pages.Enabled() {
		h, err := pages.New(cfg.Pages, a.Service, a.Server.Inbox, a.Enqueuer, log, a.Metrics.Registry, now)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("pages: %w", err)
		}
		a.Server.Pages = h
		if plainHTTPPublic(cfg.Pages.PublicURL) {
			log.Warn("pages.public_url is http://: RFC 8058 requires an https List-Unsubscribe URI, mailbox providers ignore others")
		}
	}
	return a, nil
}

// prepareSchema applies pending migrations when migrate is set; otherwise
// it checks the database holds consentsync's tables, so that a command run
// against an empty database (a mistyped DATABASE_URL, before the first
// serve or work) says what to do instead of failing on a missing relation.
func prepareSchema(ctx context.Context, st *store.Store, migrate bool) error {
	if migrate {
		return migrations.Up(ctx, st.DB.DB)
	}
	var ok bool
	if err := st.DB.GetContext(ctx, &ok, `SELECT to_regclass('inbound_events') IS NOT NULL`); err != nil {
		return fmt.Errorf("postgres (DATABASE_URL): %w", err)
	}
	if !ok {
		return errors.New("postgres (DATABASE_URL): the database has no consentsync tables yet: run `consentsync migrate up` (serve and work migrate at start), or point DATABASE_URL at consentsync's database")
	}
	return nil
}

// plainHTTPPublic reports whether the pages' public URL is http:// on a host
// people reach over a network. A loopback host (localhost, 127.0.0.0/8,
// ::1: the demo, a local test) is not warned about.
func plainHTTPPublic(public string) bool {
	u, err := url.Parse(public)
	if err != nil || u.Scheme != "http" {
		return false
	}
	h := strings.ToLower(u.Hostname())
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}

// ReadOnly is the service layer over Postgres alone, for the commands that
// only read (subject, expiring, verify-ledger): no Redis, no connectors,
// so no provider secret is needed. Close its store when done.
func ReadOnly(ctx context.Context, cfg *config.Config, o Options) (*service.Service, *store.Store, error) {
	st, err := store.Open(ctx, cfg.Process.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres (DATABASE_URL): %w", err)
	}
	if err := prepareSchema(ctx, st, o.Migrate); err != nil {
		st.Close()
		return nil, nil, err
	}
	return &service.Service{Store: st, Config: cfg, Now: o.clock()}, st, nil
}

// RunWorker runs the asynq servers (inbound and push, Worker.ServerConfigs)
// and the sweeper until ctx ends, then shuts down gracefully (in-flight
// tasks get the shutdown timeout).
func (a *App) RunWorker(ctx context.Context) error {
	var srvs []*asynq.Server
	defer func() {
		// In parallel: each waits for its in-flight tasks (ShutdownTimeout).
		var wg sync.WaitGroup
		for _, s := range srvs {
			wg.Add(1)
			go func() { defer wg.Done(); s.Shutdown() }()
		}
		wg.Wait()
	}()
	for _, c := range a.Worker.ServerConfigs() {
		srv := asynq.NewServerFromRedisClient(a.Redis, c)
		if err := srv.Start(a.Worker.Mux()); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		srvs = append(srvs, srv)
	}
	go a.Worker.RunSweeper(ctx)
	go a.Worker.RunClaimer(ctx)
	go a.Worker.RunDrift(ctx)
	go a.Worker.RunCatchUp(ctx)
	<-ctx.Done()
	return nil
}

// RunHTTP serves the public listener (server.Server.Handler: webhooks and
// probes) on ln until ctx ends, then drains (serve).
func (a *App) RunHTTP(ctx context.Context, ln net.Listener) error {
	return a.serve(ctx, ln, &http.Server{
		Handler:           a.Server.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	})
}

// RunOps serves the ops listener (server.Server.OpsHandler: admin API,
// queue UI, /metrics, pprof, probes) on ln until ctx ends, then drains
// (serve).
func (a *App) RunOps(ctx context.Context, ln net.Listener) error {
	return a.serve(ctx, ln, &http.Server{Handler: a.Server.OpsHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second})
}

// serve runs hs on ln until ctx ends, then drains: /readyz turns 503 at
// once, the listener keeps answering for server.drain_grace (each answer
// closes its connection, so clients reconnect and a load balancer can move
// them; idle connections are not cut under a client about to write), then
// it closes and in-flight requests get up to 10 s to finish.
func (a *App) serve(ctx context.Context, ln net.Listener, hs *http.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.Server.Drain()
	if g := a.Config.Server.DrainGrace; g > 0 {
		a.Logger.Info("draining: /readyz is 503, still answering", "addr", ln.Addr().String(), "grace", g.String())
		select {
		case <-time.After(g):
		case err := <-errc:
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// Close releases connections.
func (a *App) Close() {
	if a.Server != nil {
		a.Server.Close()
	}
	if a.Client != nil {
		_ = a.Client.Close()
	}
	if a.Inspector != nil {
		_ = a.Inspector.Close()
	}
	if a.Redis != nil {
		_ = a.Redis.Close()
	}
	if a.Store != nil {
		_ = a.Store.Close()
	}
}

func destinationNames(c *config.Config) []string {
	out := make([]string, len(c.Destinations))
	for i, d := range c.Destinations {
		out[i] = d.Name
	}
	return out
}

func sourceNames(c *config.Config) []string {
	out := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		out[i] = s.Name
	}
	return out
}

// rateLimitedNames are the destinations whose requests are paced
// (connectors.RateLimitOf).
func rateLimitedNames(c *config.Config) []string {
	var out []string
	for _, d := range c.Destinations {
		if connectors.RateLimitOf(d) > 0 {
			out = append(out, d.Name)
		}
	}
	return out
}

// CatchUp is the destinations' catch-up on standing withdrawals
// (worker.CatchUp) with this process's configuration: the worker's when
// there is one, else (operator commands) built from the store, the routes
// and the enqueuer alone — it calls no provider.
func (a *App) CatchUp() worker.CatchUp {
	if a.Worker != nil {
		return a.Worker.CatchUp()
	}
	c := worker.CatchUp{Store: a.Store, Routes: worker.RoutesFrom(a.Config.Destinations), Policy: a.Config.Policy.Rules(), Logger: a.Logger}
	if a.Enqueuer != nil {
		c.Pusher = a.Enqueuer
	}
	return c
}
