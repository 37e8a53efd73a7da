package harness

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DBName is the database consentsync uses on the test's cluster.
const DBName = "consentsync"

// Options configures NewCluster.
type Options struct {
	// Config is consentsync's configuration (destinations' URLs required).
	Config Config
	// Redis configures the Redis server.
	Redis RedisOptions
	// LogLevel is LOG_LEVEL of every process (default info).
	LogLevel string
}

// Cluster is everything one fault test runs against: its own Postgres
// cluster and Redis server, a configuration file, the consentsync binary,
// and the consentsync processes it started. NewCluster registers the
// teardown with t.Cleanup: processes are killed (their logs printed when
// the test failed), then Redis and Postgres are stopped and removed.
type Cluster struct {
	PG     *Postgres
	Redis  *Redis
	Config Config
	// Bin is the consentsync binary.
	Bin string
	// Dir holds the configuration file and the processes' logs.
	Dir string

	t     testing.TB
	opts  Options
	mu    sync.Mutex
	procs []*Proc
	db    *sql.DB
}

// NewCluster builds the binary (once per test binary), starts Postgres and
// Redis, writes the configuration and runs `consentsync migrate up`.
func NewCluster(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Config.SendGridURL == "" || o.Config.MailchimpURL == "" {
		t.Fatal("harness: Options.Config needs SendGridURL and MailchimpURL")
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	bin := Binary(t)
	c := &Cluster{Bin: bin, Dir: t.TempDir(), Config: o.Config.withDefaults(), t: t, opts: o}
	c.PG = StartPostgres(t)
	c.Redis = StartRedis(t, o.Redis)
	if err := c.Config.write(c.ConfigPath()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.teardown)
	if err := c.Migrate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// ConfigPath is the YAML file CONSENTSYNC_CONFIG names.
func (c *Cluster) ConfigPath() string { return filepath.Join(c.Dir, "consentsync.yaml") }

// DatabaseURL is DATABASE_URL of every process.
func (c *Cluster) DatabaseURL() string { return c.PG.URL(DBName) }

// Env is the environment of a consentsync process listening on addr ("" for
// none): only what it needs (PATH, HOME and its settings). Its ops listener
// is off (OPS_ADDR=off); Start gives serve, all and work one of their own.
func (c *Cluster) Env(addr string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.Dir,
		"CONSENTSYNC_CONFIG=" + c.ConfigPath(),
		"DATABASE_URL=" + c.DatabaseURL(),
		"REDIS_URL=" + c.Redis.URL(),
		"CONSENTSYNC_ADMIN_TOKEN=" + AdminToken,
		"LOG_LEVEL=" + c.opts.LogLevel,
		"OPS_ADDR=off",
	}
	if addr != "" {
		env = append(env, "HTTP_ADDR="+addr)
	}
	return env
}

// Migrate runs `consentsync migrate up` (creating the database).
func (c *Cluster) Migrate() error {
	p, err := startProc(c.t, c.Bin, "migrate", "migrate", "", logPath(c.Dir, "migrate"), c.Env(""), "up")
	if err != nil {
		return err
	}
	if err := p.Wait(2 * time.Minute); err != nil {
		return fmt.Errorf("harness: consentsync migrate up: %v\n%s", err, p.Tail(30))
	}
	return nil
}

// Start starts `consentsync <mode> -migrate=false` named name (its log is
// <Dir>/<name>.log; a name used again appends to the same log). serve and
// all get a free HTTP port, and they and work a free ops port (OPS_ADDR). It does not wait for readiness: see
// StartServe, StartWork.
func (c *Cluster) Start(name, mode string, args ...string) *Proc {
	c.t.Helper()
	addr := ""
	if mode == "serve" || mode == "all" {
		port, err := FreePort()
		if err != nil {
			c.t.Fatal(err)
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	lp := logPath(c.Dir, name)
	if f, err := os.OpenFile(lp, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintf(f, "=== harness: start %s %s at %s\n", mode, strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
		_ = f.Close()
	}
	env := c.Env(addr)
	opsAddr := ""
	if mode == "serve" || mode == "all" || mode == "work" {
		port, err := FreePort()
		if err != nil {
			c.t.Fatal(err)
		}
		opsAddr = fmt.Sprintf("127.0.0.1:%d", port)
		env = append(env, "OPS_ADDR="+opsAddr) // the last value wins (os/exec)
	}
	p, err := startProc(c.t, c.Bin, name, mode, addr, lp, env, append([]string{"-migrate=false"}, args...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	p.OpsAddr = opsAddr
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// StartServe starts `consentsync serve` and waits until /readyz answers 200.
func (c *Cluster) StartServe(name string) *Proc {
	c.t.Helper()
	p := c.Start(name, "serve")
	if err := p.WaitHTTP(context.Background(), "/readyz", 200, 60*time.Second); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// StartServeHealthy starts `consentsync serve` and waits until /healthz
// answers 200 (for a test whose Redis keeps /readyz at 503).
func (c *Cluster) StartServeHealthy(name string) *Proc {
	c.t.Helper()
	p := c.Start(name, "serve")
	if err := p.WaitHTTP(context.Background(), "/healthz", 200, 60*time.Second); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// StartWork starts `consentsync work` and waits for its "worker started"
// log line.
func (c *Cluster) StartWork(name string) *Proc {
	c.t.Helper()
	p := c.Start(name, "work")
	if err := p.WaitLog(context.Background(), 60*time.Second, `"worker started"`); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// Procs returns every process started so far (running or not).
func (c *Cluster) Procs() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Proc(nil), c.procs...)
}

// DB is a connection pool to consentsync's database for checks and the
// audit (closed at the test's end).
func (c *Cluster) DB() *sql.DB {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		c.db = c.PG.Open(DBName)
	}
	return c.db
}

func (c *Cluster) teardown() {
	procs := c.Procs()
	for _, p := range procs {
		p.Kill()
	}
	if !c.t.Failed() {
		return
	}
	seen := map[string]bool{}
	for _, p := range procs {
		if seen[p.LogPath] {
			continue
		}
		seen[p.LogPath] = true
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			continue
		}
		warn := grepAny(b, `"level":"WARN"`, `"level":"ERROR"`, "=== harness:")
		c.t.Logf("--- %s log (%s): %d warning/error lines (first 25):\n%s\n--- last 15 lines:\n%s",
			p.Name, p.LogPath, len(warn), strings.Join(first(warn, 25), "\n"), tail(b, 15))
	}
}
