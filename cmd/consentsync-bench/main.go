// Command consentsync-bench measures consentsync against the goals of
// issue 7 on this machine, with its baselines in the same run, and prints a
// Markdown table: goal | target | measured | ratio to baseline | met?.
//
// It builds ./cmd/consentsync, creates its own Postgres database
// (consentsync_bench_<random> on the server of TEST_DATABASE_URL, dropped at
// the end) and leases a free Redis database index on TEST_REDIS_URL
// (internal/redislease), starts fake SendGrid and Mailchimp accounts
// (internal/fakeprovider), writes a configuration with a `form` source, a
// `sendgrid` source and both destinations pointed at the fakes, runs
// `consentsync migrate`, then `serve` and `work` as separate processes, and
// measures:
//
//   - pgbench: one-row INSERT transactions/s at 32 clients on the same
//     database, twice (before and after the ingest phase), mean reported;
//   - durable ingest: accepted webhooks/s, closed loop, at 32 and 64
//     connections (worker stopped), and the ack p99 at 50% of the best rate;
//   - processing alone: the backlog those phases left, drained by a
//     freshly started worker (webhooks/s);
//   - sustained: 80% of the best ingest rate for -sustain with the worker
//     running: processing rate, backlog at the end, time to drain it,
//     Postgres transactions per webhook (pg_stat_database delta, the
//     bench's own queries subtracted) and consentsync CPU per webhook
//     (utime+stime of serve and work from /proc/<pid>/stat);
//   - withdrawal latency: opt-ins for -withdrawals addresses, then their
//     withdrawals at -withdrawal-rate/s: 202 → fake provider receive time,
//     p50/p99 per provider, and provider calls vs ceil(N / batch);
//   - big requests: one form webhook carrying -big-events submissions, then
//     three at once (two form, one SendGrid event webhook): 202 → the inbox
//     row processed (inbound_events.status seen leaving 'received',
//     polled every 200 ms);
//   - peak RSS (VmHWM) of serve and work.
//
// A phase whose backlog does not drain within -drain-timeout leaves it
// behind: the queued rows are marked failed in the bench's database and its
// Redis index is flushed, so that the next phase starts from an empty inbox
// (a note in the report says how many).
//
// Everything it started is stopped and its database dropped on exit,
// Ctrl-C included. Process logs go to a temp directory whose path is
// printed (kept). Exit status: 0 when every phase ran (goals met or not;
// -strict: 1 when one is not met), 1 on an error.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/consentsync/consentsync/internal/fakeprovider"
	"github.com/consentsync/consentsync/internal/loadgen"
	"github.com/consentsync/consentsync/internal/redislease"
	"github.com/redis/go-redis/v9"
)

type options struct {
	quick          bool
	out            string
	profile        string
	bin            string
	repo           string
	pgbenchFor     time.Duration
	pgbenchClients int
	ingestFor      time.Duration
	ingestConns    string
	sustain        time.Duration
	drainTimeout   time.Duration
	settle         time.Duration
	withdrawals    int
	withdrawalRate float64
	withdrawalWait time.Duration
	bigEvents      int
	bigTimeout     time.Duration
	logLevel       string
	strict         bool
	keepDB         bool
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "short run: every phase, shorter durations and fewer events (defaults below are the full run's)")
	flag.StringVar(&o.out, "out", "", "also write the report (Markdown) to this file (default: report.md in the run's temp directory)")
	flag.StringVar(&o.profile, "profile", "", "directory: save CPU profiles (pprof) of serve and work (on its OPS_ADDR) taken during the sustained phase, and work's heap profile after it")
	flag.StringVar(&o.bin, "bin", "", "consentsync binary to run (default: build ./cmd/consentsync into the temp directory)")
	flag.StringVar(&o.repo, "repo", ".", "repository root (where ./cmd/consentsync is built from)")
	flag.DurationVar(&o.pgbenchFor, "pgbench", 12*time.Second, "duration of each pgbench baseline run")
	flag.IntVar(&o.pgbenchClients, "pgbench-clients", 32, "pgbench clients")
	flag.DurationVar(&o.ingestFor, "ingest", 10*time.Second, "duration of each ingest measurement")
	flag.StringVar(&o.ingestConns, "ingest-conns", "32,64", "connection counts for the max-ingest measurement (comma-separated)")
	flag.DurationVar(&o.sustain, "sustain", 60*time.Second, "duration of the sustained phase (80% of max ingest, worker running)")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 5*time.Minute, "longest wait for a backlog to drain")
	flag.DurationVar(&o.settle, "settle", 11*time.Second, "idle wait before reading pg_stat_database (Postgres flushes an idle backend's counters within 10 s)")
	flag.IntVar(&o.withdrawals, "withdrawals", 10000, "withdrawals sent in the latency phase")
	flag.Float64Var(&o.withdrawalRate, "withdrawal-rate", 1000, "withdrawals per second")
	flag.DurationVar(&o.withdrawalWait, "withdrawal-timeout", 3*time.Minute, "longest wait for every withdrawal to reach every provider")
	flag.IntVar(&o.bigEvents, "big-events", 10000, "events per big webhook")
	flag.DurationVar(&o.bigTimeout, "big-timeout", 2*time.Minute, "longest wait for a big webhook to be processed")
	flag.StringVar(&o.logLevel, "log-level", "warn", "LOG_LEVEL of the consentsync processes")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a goal is not met")
	flag.BoolVar(&o.keepDB, "keep-db", false, "do not drop the database at the end")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		quick := map[string]func(){
			"pgbench":            func() { o.pgbenchFor = 5 * time.Second },
			"ingest":             func() { o.ingestFor = 4 * time.Second },
			"ingest-conns":       func() { o.ingestConns = "64" },
			"sustain":            func() { o.sustain = 15 * time.Second },
			"drain-timeout":      func() { o.drainTimeout = 60 * time.Second },
			"withdrawals":        func() { o.withdrawals = 2000 },
			"withdrawal-timeout": func() { o.withdrawalWait = 60 * time.Second },
			"big-timeout":        func() { o.bigTimeout = 30 * time.Second },
		}
		for name, f := range quick {
			if !set[name] {
				f()
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the bench at once (children die with it: Pdeathsig)
	}()
	met, err := run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "consentsync-bench: %v\n", err)
		os.Exit(1)
	}
	if o.strict && !met {
		os.Exit(1)
	}
}

// bench is one run's state.
type bench struct {
	o        options
	tmp      string
	runID    string
	db       *benchDB
	sg, mc   *fakeprovider.Provider
	addr     string // consentsync's HTTP address
	workOps  string // work's OPS_ADDR (ops endpoints and pprof)
	serveOps string // serve's OPS_ADDR
	admin    string // admin token
	env      []string
	bin      string
	redisURL string
	serve    *proc
	work     *proc
	form     loadgen.Form
	sgSrc    loadgen.SendGridEvents
	rows     []row
	notes    []string
	logLine  func(string)
}

// row is one line of the report.
type row struct {
	goal, target, measured, ratio string
	met                           string // "yes", "no", "—"
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

func (b *bench) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	b.notes = append(b.notes, s)
	b.logLine("note: " + s)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func randHex(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}

func run(ctx context.Context, o options) (met bool, err error) {
	serverURL := envOr("TEST_DATABASE_URL", "postgres://postgres:consentsync@127.0.0.1:5432/postgres?sslmode=disable")
	redisURL := envOr("TEST_REDIS_URL", "redis://127.0.0.1:6379")
	tmp, err := os.MkdirTemp("", "consentsync-bench-")
	if err != nil {
		return false, err
	}
	b := &bench{o: o, tmp: tmp, runID: randHex(4), logLine: func(s string) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), s)
	}}
	b.logLine("bench directory (process logs, config, report): " + tmp)
	loadStart := loadAvg()
	startedAt := time.Now()

	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		if o.bin == "" {
			_ = os.Remove(filepath.Join(tmp, "consentsync")) // the built binary; logs stay
		}
		b.logLine("cleaned up; logs kept in " + tmp)
	}()

	// Binary.
	b.bin = o.bin
	if b.bin == "" {
		b.bin = filepath.Join(tmp, "consentsync")
		b.logLine("building ./cmd/consentsync")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/consentsync")
		cmd.Dir = o.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return false, fmt.Errorf("go build ./cmd/consentsync: %w: %s", err, tail(out, 2000))
		}
	}

	// Database and Redis index.
	dbName := "consentsync_bench_" + b.runID
	b.db, err = createDB(ctx, serverURL, dbName)
	if err != nil {
		return false, err
	}
	cleanups = append(cleanups, func() {
		b.db.db.Close()
		if o.keepDB {
			b.logLine("database kept: " + dbName)
			return
		}
		if err := dropDB(serverURL, dbName); err != nil {
			b.logLine("drop database " + dbName + ": " + err.Error())
		}
	})
	rURL, release, err := redislease.Lease(ctx, redisURL, 30*time.Second)
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	cleanups = append(cleanups, release)
	b.redisURL = rURL

	// Fakes.
	sgKey, mcKey, listID := "SG.bench-"+randHex(8), randHex(16)+"-us21", "bench"+randHex(4)
	b.sg = fakeprovider.NewSendGrid(sgKey)
	b.mc = fakeprovider.NewMailchimp(mcKey, listID)
	cleanups = append(cleanups, b.sg.Close, b.mc.Close)

	// Configuration.
	formSecret := randHex(16)
	sgPriv, sgPub, err := loadgen.NewSendGridKey()
	if err != nil {
		return false, err
	}
	cfgPath := filepath.Join(tmp, "consentsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchConfig(b.sg.URL, b.mc.URL, listID)), 0o600); err != nil {
		return false, err
	}
	port, err := freePort()
	if err != nil {
		return false, err
	}
	b.addr = fmt.Sprintf("127.0.0.1:%d", port)
	opsPort, err := freePort()
	if err != nil {
		return false, err
	}
	b.workOps = fmt.Sprintf("127.0.0.1:%d", opsPort)
	if opsPort, err = freePort(); err != nil {
		return false, err
	}
	b.serveOps = fmt.Sprintf("127.0.0.1:%d", opsPort)
	b.admin = randHex(16)
	b.env = []string{
		"CONSENTSYNC_CONFIG=" + cfgPath, "DATABASE_URL=" + b.db.url, "REDIS_URL=" + rURL, "HTTP_ADDR=" + b.addr,
		"CONSENTSYNC_ADMIN_TOKEN=" + b.admin, "LOG_LEVEL=" + o.logLevel,
		"BENCH_FORM_SECRET=" + formSecret, "BENCH_SENDGRID_PUBLIC_KEY=" + sgPub,
		"BENCH_SENDGRID_API_KEY=" + sgKey, "BENCH_MAILCHIMP_API_KEY=" + mcKey,
	}
	b.form = loadgen.Form{URL: "http://" + b.addr + "/webhooks/bench-form", Secret: formSecret, Header: "X-Signature",
		Extra: map[string]any{"consent_version": "bench-2026-01"}}
	b.sgSrc = loadgen.SendGridEvents{URL: "http://" + b.addr + "/webhooks/bench-sendgrid", Key: sgPriv}

	b.logLine("consentsync migrate")
	if err := runProc(tmp, "migrate", b.bin, append(slices.Clone(b.env), "OPS_ADDR=off"), "migrate", "up"); err != nil {
		return false, err
	}
	b.serve, err = startProc(tmp, "serve", b.bin, append(slices.Clone(b.env), "OPS_ADDR="+b.serveOps), "serve", "-migrate=false")
	if err != nil {
		return false, err
	}
	cleanups = append(cleanups, func() { b.serve.stop(20 * time.Second) }, func() { b.work.stop(20 * time.Second) })
	if err := b.waitReady(ctx, 60*time.Second); err != nil {
		return false, err
	}

	if err := b.phases(ctx); err != nil {
		return false, err
	}

	// Peak RSS, read before the processes stop.
	for _, p := range []*proc{b.serve, b.work} {
		if p == nil {
			continue
		}
		h := max(vmHWM(p.pid()), p.lastHWM)
		mb := float64(h) / 1024
		b.add(row{"Memory: peak RSS of `" + p.name + "` (VmHWM)", "≤ 150 MB", fmt.Sprintf("%.0f MB", mb), "—", yesNo(h > 0 && mb <= 150)})
	}

	loadEnd := loadAvg()
	report := b.report(startedAt, loadStart, loadEnd)
	fmt.Println(report)
	out := o.out
	if out == "" {
		out = filepath.Join(tmp, "report.md")
	}
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		return false, fmt.Errorf("write report: %w", err)
	}
	b.logLine("report written to " + out)
	met = true
	for _, r := range b.rows {
		if r.met == "no" {
			met = false
		}
	}
	return met, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// benchConfig is the YAML the processes run with; secrets come from the
// environment (${VAR}).
func benchConfig(sgURL, mcURL, listID string) string {
	return fmt.Sprintf(`# written by consentsync-bench
server:
  body_limit: 33554432
worker:
  push_batch: 500
sources:
  - name: bench-form
    kind: form
    brand: acme
    secrets: ["${BENCH_FORM_SECRET}"]
    signature: {header: X-Signature, algorithm: sha256, encoding: hex}
    fields:
      email: email
      occurred_at: submitted_at
      event_id: event_id
      wording_version: consent_version
      consents:
        - {field: newsletter, channel: email, purpose: marketing, withdrawal: true}
  - name: bench-sendgrid
    kind: sendgrid
    brand: acme
    secrets: ["${BENCH_SENDGRID_PUBLIC_KEY}"]
destinations:
  - name: sendgrid-acme
    kind: sendgrid
    brand: acme
    base_url: %s
    api_key: "${BENCH_SENDGRID_API_KEY}"
  - name: mailchimp-acme
    kind: mailchimp
    brand: acme
    base_url: %s
    list_id: %s
    api_key: "${BENCH_MAILCHIMP_API_KEY}"
`, sgURL, mcURL, listID)
}

// pushBatch is worker.push_batch in benchConfig.
const pushBatch = 500

func (b *bench) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if b.serve.exited() {
			return fmt.Errorf("serve exited at start (see %s)", b.serve.log)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve not ready after %v (see %s)", timeout, b.serve.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// discardBacklog makes the next phase start from an empty inbox when the
// previous one left rows queued: it stops the worker, marks the queued rows
// failed (bench database only; they are not counted as processed anywhere
// after this), flushes the bench's Redis index and starts the worker again.
func (b *bench) discardBacklog(ctx context.Context, before string) error {
	n, err := b.db.backlog(ctx)
	if err != nil || n == 0 {
		return err
	}
	b.work.stop(20 * time.Second)
	b.db.own.Add(1)
	res, err := b.db.db.ExecContext(ctx, `UPDATE inbound_events SET status = 'failed', error = 'discarded by consentsync-bench' WHERE status = 'received'`)
	if err != nil {
		return fmt.Errorf("discard backlog: %w", err)
	}
	done, _ := res.RowsAffected()
	opt, err := redis.ParseURL(b.redisURL)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	err = c.FlushDB(ctx).Err()
	c.Close()
	if err != nil {
		return fmt.Errorf("discard backlog: flush redis: %w", err)
	}
	b.note("%d webhooks still queued were discarded (marked failed, queue flushed) so that %s starts from an empty inbox", done, before)
	return b.startWorker()
}

func (b *bench) startWorker() error {
	if b.work != nil && !b.work.exited() {
		return nil
	}
	p, err := startProc(b.tmp, "work", b.bin, append(slices.Clone(b.env), "OPS_ADDR="+b.workOps), "work", "-migrate=false")
	if err != nil {
		return err
	}
	b.work = p
	return nil
}

// alive fails when a consentsync process died.
func (b *bench) alive() error {
	for _, p := range []*proc{b.serve, b.work} {
		if p != nil && p.exited() {
			return fmt.Errorf("consentsync %s exited: %v (see %s)", p.name, p.err, p.log)
		}
	}
	return nil
}

func (b *bench) email(kind string, i int) string {
	return fmt.Sprintf("b%s-%s-%d@example.com", b.runID, kind, i)
}

// formGen returns a generator of opt-ins (or withdrawals) for addresses
// kind-0, kind-1, ...
func (b *bench) formGen(kind string, optIn bool) func(i int) *http.Request {
	return func(i int) *http.Request {
		req, err := b.form.Request(b.email(kind, i), optIn, time.Now())
		if err != nil {
			return nil
		}
		return req
	}
}

func (b *bench) phases(ctx context.Context) error {
	o := b.o
	// (a) pgbench baseline, first run.
	b.logLine(fmt.Sprintf("pgbench baseline 1: %d clients, %v", o.pgbenchClients, o.pgbenchFor))
	tps1, err := pgbench(ctx, b.db, b.tmp, o.pgbenchClients, o.pgbenchFor, b.logLine)
	if err != nil {
		return err
	}

	// (b) durable ingest, worker stopped: closed loop at each connection count.
	var best float64
	bestConns := 0
	ingested := 0
	for _, s := range strings.Split(o.ingestConns, ",") {
		var conns int
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d", &conns); err != nil || conns <= 0 {
			return fmt.Errorf("-ingest-conns: %q is not a connection count", s)
		}
		b.logLine(fmt.Sprintf("max ingest: closed loop, %d connections, %v", conns, o.ingestFor))
		kind := fmt.Sprintf("ing%d", conns)
		st := loadgen.RunClosed(ctx, o.ingestFor, conns, b.formGen(kind, true))
		if err := ctx.Err(); err != nil {
			return err
		}
		ingested += st.OK()
		b.logLine(fmt.Sprintf("  %d accepted, %.0f/s, ack p50 %v p99 %v, status %v, errors %d", st.OK(), st.Rate(), ms(st.AckPercentile(0.5)), ms(st.AckPercentile(0.99)), st.Status, st.Errors))
		b.note("ingest at %d connections: %.0f accepted/s (ack p50 %s, p99 %s; answers %v, transport errors %d)", conns, st.Rate(), ms(st.AckPercentile(0.5)), ms(st.AckPercentile(0.99)), st.Status, st.Errors)
		if st.Rate() > best {
			best, bestConns = st.Rate(), conns
		}
	}
	if best <= 0 {
		return fmt.Errorf("no webhook accepted during the ingest phase (see %s)", b.serve.log)
	}
	half := best / 2
	b.logLine(fmt.Sprintf("ack latency at 50%% of max: %.0f/s open loop, %d connections, %v", half, bestConns, o.ingestFor))
	stHalf := loadgen.Run(ctx, half, o.ingestFor, bestConns, b.formGen("half", true))
	if err := ctx.Err(); err != nil {
		return err
	}
	ingested += stHalf.OK()
	p99 := stHalf.AckPercentile(0.99)
	b.note("at 50%% of max ingest (%.0f/s offered, %.0f/s accepted): ack p50 %s, p99 %s; scheduled→answer p99 %s; answers %v, skipped %d", half, stHalf.Rate(), ms(stHalf.AckPercentile(0.5)), ms(p99), ms(stHalf.IntendedPercentile(0.99)), stHalf.Status, stHalf.Skipped)

	// (a) pgbench baseline, second run (interleaved).
	b.logLine("pgbench baseline 2")
	tps2, err := pgbench(ctx, b.db, b.tmp, o.pgbenchClients, o.pgbenchFor, b.logLine)
	if err != nil {
		return err
	}
	tps := (tps1 + tps2) / 2
	b.add(row{fmt.Sprintf("Baseline: pgbench one-row INSERT tps, %d clients, same database", o.pgbenchClients), "—", fmt.Sprintf("%.0f tps (runs: %.0f, %.0f)", tps, tps1, tps2), "1.00", "—"})
	b.add(row{fmt.Sprintf("Ingest: durable accepted webhooks/s, closed loop (connections tried: %s; best at %d)", o.ingestConns, bestConns), "≥ 2× pgbench tps",
		fmt.Sprintf("%.0f/s", best), fmt.Sprintf("%.2f× pgbench", best/tps), yesNo(best >= 2*tps)})
	b.add(row{"Ingest: ack p99 at 50% of max ingest", "≤ 50 ms", fmt.Sprintf("%s (at %.0f/s)", ms(p99), stHalf.Rate()), "—", yesNo(p99 > 0 && p99 <= 50*time.Millisecond)})

	// (c) processing alone: drain the backlog with a fresh worker.
	backlog, err := b.db.backlog(ctx)
	if err != nil {
		return err
	}
	b.logLine(fmt.Sprintf("processing alone: starting the worker on a backlog of %d", backlog))
	if err := b.startWorker(); err != nil {
		return err
	}
	took, drained, err := b.db.waitDrained(ctx, o.drainTimeout)
	if err != nil {
		return err
	}
	if err := b.alive(); err != nil {
		return err
	}
	left, _ := b.db.backlog(ctx)
	procAlone := float64(backlog-left) / took.Seconds()
	measured := fmt.Sprintf("%.0f/s (%d in %s)", procAlone, backlog-left, secs(took))
	if !drained {
		measured += fmt.Sprintf(", %d left after the %s timeout", left, secs(o.drainTimeout))
	}
	b.add(row{"Processing alone: backlog drained by the worker", "≥ ingest rate", measured, fmt.Sprintf("%.2f× max ingest", procAlone/best), yesNo(procAlone >= best)})
	if !drained {
		b.note("the backlog did not drain within %s: the sustained phase starts with %d rows still queued", secs(o.drainTimeout), left)
	}

	if err := b.discardBacklog(ctx, "the sustained phase"); err != nil {
		return err
	}
	if err := b.sustained(ctx, best); err != nil {
		return err
	}
	if err := b.discardBacklog(ctx, "the withdrawal phase"); err != nil {
		return err
	}
	if err := b.withdrawalLatency(ctx); err != nil {
		return err
	}
	if err := b.discardBacklog(ctx, "the big-request phase"); err != nil {
		return err
	}
	if err := b.bigRequests(ctx); err != nil {
		return err
	}
	return b.alive()
}

func (b *bench) sustained(ctx context.Context, maxIngest float64) error {
	o := b.o
	rate := 0.8 * maxIngest
	b.logLine(fmt.Sprintf("sustained: waiting %s for Postgres counters to settle", secs(o.settle)))
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	x0, err := b.db.xacts(ctx)
	if err != nil {
		return err
	}
	backlog0, err := b.db.backlog(ctx)
	if err != nil {
		return err
	}
	own0 := b.db.own.Load()
	cpu0s, cpu0w := cpuTime(b.serve.pid()), cpuTime(b.work.pid())
	start := time.Now()

	var profDone chan struct{}
	if o.profile != "" {
		profDone = make(chan struct{})
		secs := int(math.Min(20, math.Max(1, o.sustain.Seconds()-2)))
		go func() {
			defer close(profDone)
			b.profiles(ctx, secs)
		}()
	}
	b.logLine(fmt.Sprintf("sustained: %.0f/s (80%% of max) open loop for %s, worker running", rate, secs(o.sustain)))
	st := loadgen.Run(ctx, rate, o.sustain, 64, b.formGen("sus", true))
	if err := ctx.Err(); err != nil {
		return err
	}
	end := time.Now()
	backlog, err := b.db.backlog(ctx)
	if err != nil {
		return err
	}
	// Rows processed meanwhile: those queued at the start plus those
	// accepted, less those still queued (every webhook is new: no duplicate).
	processedDuring := backlog0 + int64(st.OK()) - backlog
	b.logLine(fmt.Sprintf("sustained: %d accepted (%.0f/s), %d processed meanwhile, backlog %d; draining", st.OK(), st.Rate(), processedDuring, backlog))
	took, drained, err := b.db.waitDrained(ctx, o.drainTimeout)
	if err != nil {
		return err
	}
	if err := b.alive(); err != nil {
		return err
	}
	cpu1s, cpu1w := cpuTime(b.serve.pid()), cpuTime(b.work.pid())
	if profDone != nil {
		<-profDone
	}
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	x1, err := b.db.xacts(ctx)
	if err != nil {
		return err
	}
	own := b.db.own.Load() - own0
	left, err := b.db.backlog(ctx)
	if err != nil {
		return err
	}
	// Webhooks processed over the window: the costs below are per each.
	n := int(backlog0) + st.OK() - int(left)
	procRate := float64(processedDuring) / end.Sub(start).Seconds()
	b.add(row{fmt.Sprintf("Processing while ingesting at 80%% of max (%s)", secs(o.sustain)), "≥ ingest rate",
		fmt.Sprintf("%.0f/s processed while %.0f/s accepted", procRate, st.Rate()), fmt.Sprintf("%.2f× accepted rate", procRate/math.Max(st.Rate(), 1e-9)), yesNo(procRate >= 0.99*st.Rate())})
	drainTxt := secs(took)
	if !drained {
		drainTxt = fmt.Sprintf("> %s (%d left)", secs(o.drainTimeout), left)
	}
	b.add(row{fmt.Sprintf("Backlog after %s at 80%% of max, then time to drain", secs(o.sustain)), "gone ≤ 10 s",
		fmt.Sprintf("%d queued; drained in %s", backlog, drainTxt), "—", yesNo(drained && took <= 10*time.Second)})
	if n > 0 {
		xpw := float64(x1-x0-own) / float64(n)
		b.add(row{"Postgres transactions per webhook (sustained phase, end to end)", "≤ 1.2", fmt.Sprintf("%.2f (%d xacts / %d webhooks)", xpw, x1-x0-own, n), "—", yesNo(drained && xpw <= 1.2)})
		cs, cw := cpu1s-cpu0s, cpu1w-cpu0w
		cpw := float64((cs + cw).Microseconds()) / 1000 / float64(n)
		b.add(row{"consentsync CPU per webhook (serve + work, utime+stime)", "≤ 0.5 ms", fmt.Sprintf("%.2f ms (serve %.2f, work %.2f)", cpw,
			float64(cs.Microseconds())/1000/float64(n), float64(cw.Microseconds())/1000/float64(n)), "—", yesNo(drained && cpw <= 0.5)})
		if !drained {
			b.note("the sustained phase ended undrained (%d rows queued): transactions and CPU are divided by the %d webhooks processed in the window, which still includes serve's share for the unprocessed ones", left, n)
		}
	}
	b.note("sustained phase: ack p99 %s at %.0f/s offered; answers %v, skipped %d", ms(st.AckPercentile(0.99)), rate, st.Status, st.Skipped)
	return nil
}

// profiles fetches CPU profiles of serve and work into -profile.
func (b *bench) profiles(ctx context.Context, seconds int) {
	if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
		b.note("profile: %v", err)
		return
	}
	fetch := func(name, addr, kind string) {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
		if kind == "heap" {
			url = fmt.Sprintf("http://%s/debug/pprof/heap", addr)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+b.admin)
		c := &http.Client{Timeout: time.Duration(seconds+30) * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			b.note("profile of %s not taken: %v", name, err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.note("profile of %s not taken: /debug/pprof/profile answered HTTP %d", name, resp.StatusCode)
			return
		}
		path := filepath.Join(b.o.profile, name+"."+kind+".pprof")
		f, err := os.Create(path)
		if err != nil {
			b.note("profile: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			b.note("profile of %s: %v", name, err)
			return
		}
		b.note("%s profile of %s (sustained phase): %s", kind, name, path)
	}
	var wg sync.WaitGroup
	for _, p := range [][2]string{{"serve", b.serveOps}, {"work", b.workOps}} {
		wg.Add(1)
		go func() { defer wg.Done(); fetch(p[0], p[1], "cpu") }()
	}
	wg.Wait()
	fetch("work", b.workOps, "heap")
}

func (b *bench) withdrawalLatency(ctx context.Context) error {
	o := b.o
	n := o.withdrawals
	b.logLine(fmt.Sprintf("withdrawals: %d opt-ins first", n))
	st := loadgen.RunClosed(ctx, 10*time.Minute, 32, func(i int) *http.Request {
		if i >= n {
			return nil
		}
		return b.formGen("wd", true)(i)
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.OK() != n {
		b.note("opt-ins before the withdrawals: %d of %d accepted (%v)", st.OK(), n, st.Status)
	}
	if _, drained, err := b.db.waitDrained(ctx, o.drainTimeout); err != nil {
		return err
	} else if !drained {
		b.note("the opt-ins were not all processed within %s before the withdrawals started", secs(o.drainTimeout))
	}
	b.sg.Reset()
	b.mc.Reset()
	b.logLine(fmt.Sprintf("withdrawals: %d at %.0f/s", n, o.withdrawalRate))
	base := time.Now()
	wst := loadgen.Run(ctx, o.withdrawalRate, time.Duration(float64(n)/o.withdrawalRate*float64(time.Second)), 64, func(i int) *http.Request {
		if i >= n {
			return nil
		}
		// Later than the opt-in, so the withdrawal is current.
		req, err := b.form.Request(b.email("wd", i), false, base.Add(time.Duration(i)*time.Microsecond))
		if err != nil {
			return nil
		}
		return req
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	acked := map[string]time.Time{}
	for _, s := range wst.Samples {
		if s.Status == http.StatusAccepted {
			acked[b.email("wd", s.I)] = s.End
		}
	}
	b.logLine(fmt.Sprintf("withdrawals: %d accepted (%.0f/s); waiting for both providers", len(acked), wst.Rate()))
	deadline := time.Now().Add(o.withdrawalWait)
	for time.Now().Before(deadline) && (len(b.sg.Addresses()) < len(acked) || len(b.mc.Addresses()) < len(acked)) {
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	_ = sleep(ctx, 2*time.Second) // late doubles and stragglers
	ideal := int(math.Ceil(float64(len(acked)) / pushBatch))
	for _, p := range []*fakeprovider.Provider{b.sg, b.mc} {
		recv := p.Received()
		var lat []time.Duration
		missing, doubles := 0, 0
		for a, t := range acked {
			ts := recv[a]
			if len(ts) == 0 {
				missing++
				continue
			}
			if len(ts) > 1 {
				doubles++
			}
			lat = append(lat, ts[0].Sub(t))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p50, p99 := loadgen.Percentile(lat, 0.5), loadgen.Percentile(lat, 0.99)
		p99txt := ms(p99)
		ok := missing == 0 && p99 <= 2*time.Second
		if missing > 0 {
			p99txt = fmt.Sprintf("%s over those received; %d of %d never arrived within %s", p99txt, missing, len(acked), secs(o.withdrawalWait))
		}
		name := string(p.Kind())
		b.add(row{fmt.Sprintf("Withdrawal 202 → %s receives it, at %.0f/s (p50 / p99)", name, wst.Rate()), "p99 ≤ 2 s",
			fmt.Sprintf("p50 %s / p99 %s", ms(p50), p99txt), "—", yesNo(ok)})
		calls := p.Calls()
		b.add(row{fmt.Sprintf("Provider calls for %d withdrawals (%s, batch %d)", len(acked), name, pushBatch), fmt.Sprintf("≤ %d (ceil(N/batch) + 10%%)", int(math.Ceil(float64(ideal)*1.1))),
			fmt.Sprintf("%d calls, %d accepted, mean %.1f addresses/call; %d addresses pushed twice or more", calls, p.Accepted(), float64(len(acked)-missing)/math.Max(float64(p.Accepted()), 1), doubles),
			fmt.Sprintf("%.2f× ideal %d", float64(calls)/math.Max(float64(ideal), 1), ideal), yesNo(missing == 0 && float64(calls) <= math.Ceil(float64(ideal)*1.1))})
	}
	b.note("withdrawals: %d sent, answers %v, scheduled→answer p99 %s", n, wst.Status, ms(wst.IntendedPercentile(0.99)))
	return nil
}

// post sends one big request and returns the inbox id and the ack time.
func post(ctx context.Context, req *http.Request) (string, time.Time, error) {
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return "", time.Time{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	at := time.Now()
	if resp.StatusCode != http.StatusAccepted {
		return "", at, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var ans struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.ID == "" {
		return "", at, errors.New("202 without an inbox id")
	}
	return ans.ID, at, nil
}

type bigResult struct {
	what    string
	id      string
	ack     time.Time
	err     error
	took    time.Duration
	answer  time.Duration // POST → 202
	status  string
	applied int64
}

func (b *bench) bigRequests(ctx context.Context) error {
	o := b.o
	n := o.bigEvents
	formBig := func(tag string) (*http.Request, error) {
		evs := make([]loadgen.FormEvent, n)
		now := time.Now()
		for i := range evs {
			evs[i] = loadgen.FormEvent{Email: b.email(tag, i), OptIn: true, At: now}
		}
		return b.form.BulkRequest(evs)
	}
	sgBig := func(tag string) (*http.Request, error) {
		evs := make([]loadgen.SendGridEvent, n)
		now := time.Now()
		for i := range evs {
			evs[i] = loadgen.SendGridEvent{Email: b.email(tag, i), Event: "unsubscribe", At: now.Add(-time.Second)}
		}
		return b.sgSrc.Request(evs, now)
	}
	runSet := func(label string, makers map[string]func() (*http.Request, error)) ([]*bigResult, error) {
		var res []*bigResult
		done := make(chan *bigResult)
		for what, mk := range makers {
			req, err := mk()
			if err != nil {
				return nil, err
			}
			r := &bigResult{what: what}
			res = append(res, r)
			go func() {
				t0 := time.Now()
				r.id, r.ack, r.err = post(ctx, req)
				r.answer = time.Since(t0)
				done <- r
			}()
		}
		for range res {
			<-done
		}
		b.logLine(fmt.Sprintf("%s: posted; waiting up to %s for processing", label, secs(o.bigTimeout)))
		// Poll every pending row each tick; the time is when the status was
		// seen to change (processed_at is the worker transaction's start,
		// Postgres now(), so it would hide the time the apply took).
		deadline := time.Now().Add(o.bigTimeout)
		pending := 0
		for _, r := range res {
			if r.err == nil {
				r.took = -1
				pending++
			}
		}
		for pending > 0 {
			for _, r := range res {
				if r.err != nil || r.took >= 0 {
					continue
				}
				var status string
				b.db.own.Add(1)
				if err := b.db.db.QueryRowContext(ctx, `SELECT status FROM inbound_events WHERE id = $1`, r.id).Scan(&status); err != nil {
					return nil, fmt.Errorf("inbox row %s: %w", r.id, err)
				}
				r.status = status
				if status != "received" {
					r.took = time.Since(r.ack)
					pending--
					r.applied, _ = b.db.count(ctx, `SELECT count(*) FROM consent_events WHERE inbound_event_id = $1`, r.id)
				}
			}
			if pending == 0 || time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	describe := func(rs []*bigResult) (string, bool) {
		var parts []string
		ok := true
		sort.Slice(rs, func(i, j int) bool { return rs[i].what < rs[j].what })
		for _, r := range rs {
			switch {
			case r.err != nil:
				parts = append(parts, fmt.Sprintf("%s: not accepted (%v)", r.what, r.err))
				ok = false
			case r.took < 0:
				parts = append(parts, fmt.Sprintf("%s: 202 after %s, not processed %s later", r.what, secs(r.answer), secs(b.o.bigTimeout)))
				ok = false
			default:
				parts = append(parts, fmt.Sprintf("%s: 202 after %s, %s %s later, %d ledger rows", r.what, secs(r.answer), r.status, secs(r.took), r.applied))
				if r.status != "processed" || r.took > 10*time.Second || r.applied < int64(n) {
					ok = false
				}
			}
		}
		return strings.Join(parts, "; "), ok
	}

	b.logLine(fmt.Sprintf("big requests: one form webhook with %d submissions", n))
	one, err := runSet("one big webhook", map[string]func() (*http.Request, error){"form": func() (*http.Request, error) { return formBig("big1") }})
	if err != nil {
		return err
	}
	txt, ok := describe(one)
	b.add(row{fmt.Sprintf("Big request: one webhook of %d events, 202 → applied", n), "≤ 10 s", txt, "—", yesNo(ok)})

	if _, _, err := b.db.waitDrained(ctx, o.bigTimeout); err != nil {
		return err
	}
	if err := b.discardBacklog(ctx, "the three big requests"); err != nil {
		return err
	}
	b.logLine("big requests: three at once")
	three, err := runSet("three big webhooks", map[string]func() (*http.Request, error){
		"form A":   func() (*http.Request, error) { return formBig("big2") },
		"form B":   func() (*http.Request, error) { return formBig("big3") },
		"sendgrid": func() (*http.Request, error) { return sgBig("big4") },
	})
	if err != nil {
		return err
	}
	txt, ok = describe(three)
	b.add(row{fmt.Sprintf("Big requests: three of %d events at once (2 form, 1 SendGrid unsubscribes)", n), "each ≤ 10 s", txt, "—", yesNo(ok)})
	return nil
}

func (b *bench) report(started time.Time, loadStart, loadEnd string) string {
	var s strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&s, "## consentsync bench — %s\n\n", started.UTC().Format(time.RFC3339))
	mode := "full"
	if b.o.quick {
		mode = "quick"
	}
	fmt.Fprintf(&s, "Mode: %s. Host: %s, %d CPUs. Load average (1, 5, 15 min): start %s, end %s. Duration %s.\n\n", mode, host, numCPU(), loadStart, loadEnd, secs(time.Since(started)))
	s.WriteString("| goal | target | measured | ratio to baseline | met? |\n|---|---|---|---|---|\n")
	for _, r := range b.rows {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", esc(r.goal), esc(r.target), esc(r.measured), esc(r.ratio), r.met)
	}
	if len(b.notes) > 0 {
		s.WriteString("\nNotes:\n\n")
		for _, n := range b.notes {
			fmt.Fprintf(&s, "- %s\n", n)
		}
	}
	fmt.Fprintf(&s, "\nProcess logs: %s\n", b.tmp)
	return s.String()
}

func esc(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func numCPU() int { return runtime.NumCPU() }

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func secs(d time.Duration) string {
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
