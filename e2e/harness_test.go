// Package e2e drives the whole pipeline over HTTP with real Postgres and
// Redis: receiver → inbox → asynq → worker → ledger/state/outbox → provider
// sandbox. Each test gets its own database and Redis index (testenv).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors/hubspot"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropTemplate()
	os.Exit(code)
}

// env is one running consentsync with its sandbox.
type env struct {
	t       testing.TB
	App     *app.App
	Sandbox *sandbox.Sandbox
	SBURL   string
	// URL is the public listener (webhooks, probes), OpsURL the ops one
	// (admin API, queue UI, metrics, pprof).
	URL    string
	OpsURL string
	Logs   *fixtures.SyncBuffer
	clock  atomic.Pointer[time.Time]

	workerStop context.CancelFunc
	workerDone chan struct{}
}

// Now is the clock the receiver verifies signatures with.
func (e *env) Now() time.Time {
	if t := e.clock.Load(); t != nil {
		return *t
	}
	return time.Now()
}

// SetNow sets the verification clock (fixtures are signed at fixed times).
func (e *env) SetNow(t time.Time) { e.clock.Store(&t) }

type envOptions struct {
	// configFile, when set, is the configuration (a path from the
	// repository root) instead of the fixtures' example; ${SANDBOX_URL} is
	// the sandbox's URL in both.
	configFile string
	// on, when set, starts this consentsync on the database, Redis index
	// and sandbox of an earlier env (stop its worker first): a restart,
	// with another configuration if mutate says so.
	on       *env
	noWorker bool
	mutate   func(*config.Config)
	sandbox  []sandbox.Option
	// tracing, when set, records the app's spans (app.Options.Tracing).
	tracing trace.TracerProvider
}

// start runs receiver + worker against a fresh database and Redis index,
// with the example config pointed at a fresh sandbox.
func start(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, Logs: &fixtures.SyncBuffer{}}
	if o.on != nil {
		e.Sandbox, e.SBURL = o.on.Sandbox, o.on.SBURL
	} else {
		contacts, err := sandbox.FixtureContacts()
		if err != nil {
			t.Fatal(err)
		}
		e.Sandbox = sandbox.New(append([]sandbox.Option{sandbox.WithHubSpotContacts(contacts)}, o.sandbox...)...)
		sb, err := e.Sandbox.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sb.Close() })
		e.SBURL = sb.URL
	}
	raw, err := fixtures.ExampleConfig()
	if o.configFile != "" {
		raw, err = os.ReadFile(filepath.Join("..", o.configFile))
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(raw, func(k string) (string, bool) { return e.SBURL, k == "SANDBOX_URL" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Worker.SweepAfter = time.Second
	cfg.Worker.SweepEvery = 200 * time.Millisecond
	cfg.Server.DrainGrace = time.Millisecond // the test's own shutdown: no load balancer to wait for
	if o.on != nil {
		cfg.Process = o.on.App.Config.Process
	} else {
		cfg.Process = config.Process{DatabaseURL: testenv.Postgres(t), RedisURL: testenv.Redis(t), AdminToken: "test-admin-token", ViewerToken: viewerToken}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.URL = "http://" + ln.Addr().String()
	if o.mutate != nil {
		o.mutate(cfg)
	}
	if cfg.Pages.Enabled() && cfg.Pages.PublicURL == "" {
		cfg.Pages.PublicURL = e.URL // links point at this test's listener
	}
	log := slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, app.Options{VerifyNow: e.Now, Tracing: o.tracing})
	if err != nil {
		ln.Close()
		cancel()
		t.Fatal(err)
	}
	e.App = a
	opsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.OpsURL = "http://" + opsLn.Addr().String()
	httpDone, opsDone := make(chan struct{}), make(chan struct{})
	go func() { _ = a.RunHTTP(ctx, ln); close(httpDone) }()
	go func() { _ = a.RunOps(ctx, opsLn); close(opsDone) }()
	if !o.noWorker {
		e.StartWorker()
	}
	t.Cleanup(func() {
		e.StopWorker()
		cancel()
		<-httpDone
		<-opsDone
		a.Close()
	})
	return e
}

// StartWorker starts the asynq worker and sweeper.
func (e *env) StartWorker() {
	ctx, cancel := context.WithCancel(context.Background())
	e.workerStop, e.workerDone = cancel, make(chan struct{})
	go func() { _ = e.App.RunWorker(ctx); close(e.workerDone) }()
}

// StopWorker stops the worker and waits for it.
func (e *env) StopWorker() {
	if e.workerStop != nil {
		e.workerStop()
		<-e.workerDone
		e.workerStop = nil
	}
}

// response is an HTTP answer.
type response struct {
	Status int
	Body   string
	JSON   map[string]any
}

// viewerToken is CONSENTSYNC_VIEWER_TOKEN of every test process.
const viewerToken = "test-viewer-token"

// onOps reports a path served by the ops listener.
func onOps(path string) bool {
	for _, p := range []string{"/v1/", "/metrics", "/ops/", "/debug/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// do sends a request to consentsync: to the ops listener for the admin
// API, the queue UI, /metrics and pprof, else to the public one.
func (e *env) do(method, path, query string, header http.Header, body []byte) response {
	e.t.Helper()
	u := e.URL + path
	if onOps(path) {
		u = e.OpsURL + path
	}
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if header != nil {
		req.Header = header.Clone()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Body: string(b)}
	_ = json.Unmarshal(b, &r.JSON)
	return r
}

// postFixture posts fixture fx as sent, verified at the fixture's time.
func (e *env) postFixture(fx fixtures.Fixture) response {
	e.t.Helper()
	e.SetNow(fx.Now)
	req := fx.ConnectorRequest()
	return e.do(fx.Request.Method, fx.Request.Path, fx.Request.Query, req.Header, req.Body)
}

// admin sends an authenticated admin API request.
func (e *env) admin(method, path string) response {
	e.t.Helper()
	return e.do(method, path, "", http.Header{"Authorization": {"Bearer test-admin-token"}}, nil)
}

// waitFor polls cond every 50 ms for up to 30 s.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	e.waitForWithin(what, 30*time.Second, cond)
}

// waitForWithin polls cond every 50 ms for up to limit.
func (e *env) waitForWithin(what string, limit time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("timed out waiting for %s", what)
}

// count runs a count query.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.App.Store.DB.Get(&n, q, args...); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitDrained waits until no inbound row is unprocessed and no outbox row
// pending.
func (e *env) waitDrained() {
	e.t.Helper()
	e.waitFor("inbox and outbox to drain", func() bool {
		return e.count(`SELECT (SELECT count(*) FROM inbound_events WHERE status = 'received')
			+ (SELECT count(*) FROM suppression_outbox WHERE status = 'pending')`) == 0
	})
}

// ledger returns the ledger as "email channel brand purpose status time"
// keys (fixtures.Signal.Key form) for one source.
func (e *env) ledger(source string) []string {
	e.t.Helper()
	var rows []fixtures.Signal
	err := e.App.Store.DB.Select(&rows, `SELECT s.email, e.channel, e.brand, e.purpose, e.status, e.occurred_at
		FROM consent_events e JOIN subjects s ON s.id = e.subject_id WHERE e.source = $1 ORDER BY e.id`, source)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Key()
	}
	return out
}

func fixture(t *testing.T, name string) fixtures.Fixture {
	t.Helper()
	fx, err := fixtures.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

func keys(ss []fixtures.Signal) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Key()
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func source(fx fixtures.Fixture) string { return strings.TrimPrefix(fx.Request.Path, "/webhooks/") }

type configT = config.Config

var hubspotSign = hubspot.Sign
