// Command consentsync keeps marketing consent true everywhere: it receives
// consent webhooks, reconciles them into a provable consent record in
// Postgres and pushes withdrawals to every email provider.
//
// Usage:
//
//	consentsync serve|work|all          run the HTTP receiver/API, the worker, or both
//	consentsync migrate [up|down|status]
//	consentsync demo                    the whole pipeline on bundled real-format webhooks
//	consentsync replay -id 1,2 | -from T -to T
//	consentsync repush [-destination NAME] [-id 1,2,push:NAME:SLOT]
//	consentsync deadletters [-limit N]  failed webhooks, failed suppressions, archived tasks
//	consentsync queues                  queue sizes, latency, failures; inbox and outbox counts
//	consentsync subject EMAIL|PHONE     a subject's state, eligibility and history
//	consentsync links EMAIL -brand B    List-Unsubscribe headers and the pages' links
//	consentsync expiring --within 30d   consents that lapse soon
//	consentsync verify-ledger           recompute the ledger's hash chains
//	consentsync drift [-destination NAME] [-repair]  what each destination no longer holds
//	consentsync overdue                 withdrawals not honoured everywhere within the deadline
//	consentsync healthcheck [-url URL]  exit 0 when /readyz answers 200 (container healthchecks)
//	consentsync sandbox [-addr :9200]   the fake provider APIs the demo and docker compose use
//	consentsync import provider|csv     backfill existing suppressions and exports
//	consentsync catch-up [-destination NAME] [-dry-run]  queue standing withdrawals a destination never heard
//
// Configuration: CONSENTSYNC_CONFIG (YAML), DATABASE_URL, REDIS_URL,
// HTTP_ADDR, OPS_ADDR, CONSENTSYNC_ADMIN_TOKEN, CONSENTSYNC_VIEWER_TOKEN.
// See README.md.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/internal/cli"
	"github.com/consentsync/consentsync/internal/demo"
	"github.com/consentsync/consentsync/internal/progress"
	"github.com/consentsync/consentsync/internal/tracing"
	"github.com/consentsync/consentsync/migrations"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
	"github.com/consentsync/consentsync/worker"
)

const usage = `consentsync — keeps marketing consent true everywhere

Commands:
  serve                       webhook receiver (HTTP_ADDR) and the ops listener: admin API, queue UI, metrics (OPS_ADDR)
  work                        asynq worker and sweeper
  all                         serve and work in one process
  migrate [up|down -yes|status]  apply, roll back the newest (drops data), or list migrations
  demo                        run the whole pipeline on the bundled real-format webhooks
  replay -id 1,2,3            re-process stored inbound events (or -from/-to RFC 3339 times); ids as deadletters lists them (42 or inbound:42)
  repush [-destination N] [-id 1,2]   push suppressions a destination refused for good again, once the cause is fixed; -id also takes archived push tasks (push:N:SLOT)
  deadletters [-limit N]      dead letters: failed webhooks, failed suppressions, archived tasks, with reason and age (addresses masked)
  queues                      queue sizes, latency and failures; inbox and outbox counts
  subject EMAIL|PHONE         a subject's state, eligibility per brand/channel/purpose, history
  links EMAIL|PHONE -brand B [-channel C] [-purpose P]  List-Unsubscribe headers, preference-centre and confirmation links
  expiring --within 30d       consents that lapse soon (re-consent campaigns)
  verify-ledger [-expect ROOT]  recompute every hash chain; print the ledger root; exit 1 on a break
  drift [-destination N] [-repair] [-sample N]  read back what each destination should hold; -repair pushes what is missing again
  overdue [-older-than D] [-limit N]
                              withdrawals not yet honoured everywhere after policy.withdrawal_deadline (48h); exit 1 when any
  healthcheck [-url URL]      exit 0 when /readyz answers 200 (for container healthchecks; default: this process's OPS_ADDR, else HTTP_ADDR)
  sandbox [-addr :9200]       serve the fake provider APIs (SendGrid, Mailchimp, HubSpot, ...) the demo and docker compose use
  import provider -destination N   backfill: import the suppressions a destination's provider already holds (resumable)
  import csv FILE -source N   backfill: import an export of opt-ins and opt-outs (-dry-run, -col field=Header; README "Backfill")
  catch-up [-destination N] [-dry-run]  queue, at each destination, the standing withdrawals it has no suppression for (work does it at start)

Environment: CONSENTSYNC_CONFIG (YAML file), DATABASE_URL, REDIS_URL,
HTTP_ADDR (public: webhooks and probes, default :8080),
OPS_ADDR (admin API, queue UI, /metrics, pprof; default 127.0.0.1:9090, "off" for none),
CONSENTSYNC_ADMIN_TOKEN (full access to OPS_ADDR), CONSENTSYNC_VIEWER_TOKEN (read-only), LOG_LEVEL (debug|info|warn|error),
GOMEMLIMIT (Go's soft memory limit; serve, work and all default to 128MiB).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger(os.Stderr)
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "serve", "work", "all":
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(config.DefaultMemoryLimit)
		}
		err = run(ctx, log, cmd, args)
	case "migrate":
		err = migrate(ctx, args)
	case "demo":
		err = demo.Main(ctx, args, os.Stdout, log)
	case "replay":
		err = replay(ctx, log, args)
	case "deadletters":
		err = deadletters(ctx, log, args)
	case "queues":
		err = queues(ctx, log)
	case "subject":
		err = subject(ctx, args)
	case "links":
		err = linksCmd(ctx, args)
	case "repush":
		err = repush(ctx, log, args)
	case "drift":
		err = drift(ctx, log, args)
	case "overdue":
		err = overdue(ctx, args)
	case "catch-up":
		err = catchUp(ctx, log, args)
	case "expiring":
		err = expiring(ctx, args)
	case "verify-ledger":
		err = verifyLedger(ctx, args)
	case "healthcheck":
		err = healthcheck(ctx, args, os.Stdout)
	case "sandbox":
		err = runSandbox(ctx, log, args)
	case "import":
		err = importCmd(ctx, log, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "consentsync: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "consentsync %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

// buildVersion is the module version the binary was built from ("(devel)"
// for a local build), reported as the traces' service.version.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "(devel)"
}

func newLogger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// run starts serve, work or all. Migrations are applied first (serialized
// across processes by an advisory lock) unless -migrate=false.
func run(ctx context.Context, log *slog.Logger, mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	doMigrate := fs.Bool("migrate", true, "apply pending migrations at start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Traces go to an OTLP collector only when OTEL_EXPORTER_OTLP_ENDPOINT
	// (or …_TRACES_ENDPOINT) is set (internal/tracing.Setup).
	tp, stopTracing, err := tracing.Setup(ctx, os.Getenv, buildVersion())
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: could not flush spans", "err", err)
		}
	}()
	if tp != nil {
		log.Info("tracing on: spans exported over OTLP/HTTP")
	}
	cfg, a, err := openApp(ctx, log, app.Options{Migrate: *doMigrate, Tracing: tp})
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	n := 0
	if mode == "serve" || mode == "all" {
		ln, err := net.Listen("tcp", cfg.Process.HTTPAddr)
		if err != nil {
			return fmt.Errorf("HTTP_ADDR: %w", err)
		}
		log.Info("listening", "addr", ln.Addr().String(), "sources", len(cfg.Sources), "destinations", len(cfg.Destinations))
		n++
		go func() { errc <- a.RunHTTP(ctx, ln) }()
	}
	if addr := cfg.Process.OpsAddr; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("OPS_ADDR: %w", err)
		}
		log.Info("ops listening (admin API, queue UI, metrics)", "addr", ln.Addr().String())
		if cfg.Process.AdminToken == "" && cfg.Process.ViewerToken == "" {
			closed := "the admin API, the queue UI, pprof and /metrics (server.metrics_open is off)"
			if cfg.Server.MetricsOpen {
				closed = "the admin API, the queue UI and pprof"
			}
			log.Warn("no CONSENTSYNC_ADMIN_TOKEN or CONSENTSYNC_VIEWER_TOKEN: " + closed + " answer 403")
		}
		n++
		go func() { errc <- a.RunOps(ctx, ln) }()
	}
	if mode == "work" || mode == "all" {
		log.Info("worker started", "concurrency", cfg.Worker.Concurrency)
		n++
		go func() { errc <- a.RunWorker(ctx) }()
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel() // one part failed: stop the others
		}
	}
	return first
}

// openApp loads the configuration and starts the application with it
// (store, queues, connectors). The caller closes the application.
func openApp(ctx context.Context, log *slog.Logger, o app.Options) (*config.Config, *app.App, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, nil, err
	}
	a, err := app.New(ctx, cfg, log, o)
	if err != nil {
		return nil, nil, err
	}
	return cfg, a, nil
}

// openStore opens the database named by DATABASE_URL alone (no
// configuration file needed). The caller closes the store.
func openStore(ctx context.Context) (*store.Store, error) {
	p, err := config.LoadProcess()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, p.DatabaseURL)
}

// openReadOnly opens the service layer over Postgres alone, for commands
// that only read (no Redis, no provider secret). The caller calls the
// returned function when done.
func openReadOnly(ctx context.Context) (*service.Service, func(), error) {
	cfg, err := config.LoadReadOnly()
	if err != nil {
		return nil, nil, err
	}
	svc, st, err := app.ReadOnly(ctx, cfg, app.Options{})
	if err != nil {
		return nil, nil, err
	}
	return svc, func() { st.Close() }, nil
}

// openOperator opens the store, Redis and the service layer, for commands
// that enqueue work but call no provider (replay, repush, queues): provider
// secrets may be unset. The caller closes the application.
func openOperator(ctx context.Context, log *slog.Logger) (*app.App, error) {
	cfg, err := config.LoadReadOnly()
	if err != nil {
		return nil, err
	}
	return app.New(ctx, cfg, log, app.Options{Operator: true})
}

func migrate(ctx context.Context, args []string) error {
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	action := "up"
	if len(args) > 0 {
		action = args[0]
	}
	switch action {
	case "up":
		if err := migrations.Up(ctx, st.DB.DB); err != nil {
			return err
		}
		return migrations.Status(ctx, st.DB.DB, os.Stdout)
	case "down":
		if len(args) < 2 || args[1] != "-yes" {
			return errors.New("migrate down rolls back the newest migration and can drop tables with the ledger (your proof of consent) and the outbox; back up first, then run: consentsync migrate down -yes")
		}
		return migrations.Down(ctx, st.DB.DB)
	case "status":
		return migrations.Status(ctx, st.DB.DB, os.Stdout)
	}
	return fmt.Errorf("unknown action %q (want up, down or status)", action)
}

func replay(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	idList := fs.String("id", "", "comma-separated inbound event ids")
	from := fs.String("from", "", "received at or after (RFC 3339)")
	to := fs.String("to", "", "received before (RFC 3339, default now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ids, err := parseReplayIDs(*idList)
	if err != nil {
		return err
	}
	var req service.ReplayRequest
	req.IDs = ids
	if len(ids) == 0 {
		if *from == "" {
			return errors.New("give -id or -from")
		}
		if req.From, err = time.Parse(time.RFC3339, *from); err != nil {
			return fmt.Errorf("-from: %w", err)
		}
		if *to != "" {
			if req.To, err = time.Parse(time.RFC3339, *to); err != nil {
				return fmt.Errorf("-to: %w", err)
			}
		}
	}
	a, err := openOperator(ctx, log)
	if err != nil {
		return err
	}
	defer a.Close()
	bar := cli.NewProgress(os.Stderr, "replay")
	res, err := a.Service.Replay(progress.With(ctx, bar.Func()), req)
	bar.Finish()
	fmt.Printf("re-enqueued %d inbound event(s)\n", len(res.Requeued))
	if len(res.Erased) > 0 {
		fmt.Printf("%d inbound event(s) emptied by an erasure, nothing to replay: %s\n", len(res.Erased), joinIDs(res.Erased))
	}
	return err
}

func repush(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("repush", flag.ContinueOnError)
	dest := fs.String("destination", "", "only this destination's failed suppressions")
	idList := fs.String("id", "", "only these outbox ids, or archived push tasks (push:NAME:SLOT), comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ids, tasks, err := parseRepushIDs(*idList)
	if err != nil {
		return err
	}
	a, err := openOperator(ctx, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if len(tasks) > 0 {
		dests, err := a.Service.RepushTasks(ctx, tasks)
		fmt.Printf("dropped archived push task(s); pushing %d destination(s) now: %s\n", len(dests), strings.Join(dests, ", "))
		if err != nil || len(ids) == 0 {
			return err
		}
	}
	bar := cli.NewProgress(os.Stderr, "repush")
	back, err := a.Service.Repush(progress.With(ctx, bar.Func()), *dest, ids)
	bar.Finish()
	if err != nil {
		return err
	}
	total := 0
	for _, n := range back {
		total += n
	}
	fmt.Printf("re-queued %d failed suppression(s) for %d destination(s)\n", total, len(back))
	return nil
}

func deadletters(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("deadletters", flag.ContinueOnError)
	limit := fs.Int("limit", 50, "at most this many of each kind")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := openOperator(ctx, log)
	if err != nil {
		return err
	}
	defer a.Close()
	d, err := a.Service.DeadLetters(ctx, *limit)
	if err != nil {
		return err
	}
	return cli.PrintDeadLetters(os.Stdout, d)
}

// parseRepushIDs splits repush's -id list into outbox ids and archived
// push task ids (jobs.PushTaskID: "push:NAME:SLOT", as deadletters lists
// them).
func parseRepushIDs(list string) (ids []int64, tasks []string, err error) {
	var rest []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); strings.HasPrefix(s, "push:") {
			tasks = append(tasks, s)
		} else {
			rest = append(rest, s)
		}
	}
	ids, err = parseIDs(strings.Join(rest, ","))
	return ids, tasks, err
}

// parseReplayIDs reads replay's -id list: inbound ids, bare or as their
// task ids ("inbound:42", as deadletters lists archived tasks).
func parseReplayIDs(list string) ([]int64, error) {
	return parseIDs(strings.ReplaceAll(list, "inbound:", ""))
}

func joinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

func parseIDs(list string) ([]int64, error) {
	var ids []int64
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("-id: %q is not an id", s)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func queues(ctx context.Context, log *slog.Logger) error {
	a, err := openOperator(ctx, log)
	if err != nil {
		return err
	}
	defer a.Close()
	names, err := a.Inspector.Queues()
	if err != nil {
		return err
	}
	var qs []*asynq.QueueInfo
	for _, q := range names {
		qi, err := a.Inspector.GetQueueInfo(q)
		if err != nil {
			return err
		}
		qs = append(qs, qi)
	}
	inbox, err := a.Store.InboxCounts(ctx)
	if err != nil {
		return err
	}
	outbox, err := a.Store.OutboxCounts(ctx)
	if err != nil {
		return err
	}
	return cli.PrintQueues(os.Stdout, qs, inbox, outbox)
}

func subject(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: consentsync subject EMAIL|PHONE")
	}
	svc, closeFn, err := openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	return cli.PrintSubject(ctx, os.Stdout, svc, args[0])
}

// linksCmd prints the signed links of one person for one brand:
// consentsync links EMAIL|PHONE -brand B [-channel C] [-purpose P] (flags
// before or after the identifier). It needs Postgres and pages.keys with
// their secrets.
func linksCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("links", flag.ContinueOnError)
	brand := fs.String("brand", "", "the brand the message is sent for (required)")
	channel := fs.String("channel", "email", "what the unsubscribe link withdraws: channel")
	purpose := fs.String("purpose", "marketing", "what the unsubscribe link withdraws: purpose")
	var raw string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		raw, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if raw == "" && fs.NArg() == 1 {
		raw = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return errors.New("usage: consentsync links EMAIL|PHONE -brand B [-channel C] [-purpose P]")
	}
	if raw == "" || *brand == "" {
		return errors.New("usage: consentsync links EMAIL|PHONE -brand B [-channel C] [-purpose P]")
	}
	svc, closeFn, err := openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	return cli.PrintLinks(ctx, os.Stdout, svc, raw, *brand, *channel, *purpose)
}

// expiring lists permissions that lapse within the window (default 30d),
// for re-consent or deletion campaigns: consentsync expiring --within 30d.
func expiring(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("expiring", flag.ContinueOnError)
	within := fs.String("within", "30d", "window: a Go duration or a number of days such as 30d")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := parseDays(*within)
	if err != nil {
		return fmt.Errorf("--within: %w", err)
	}
	svc, closeFn, err := openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	rows, err := svc.Expiring(ctx, d)
	if err != nil {
		return err
	}
	return cli.PrintExpiring(os.Stdout, rows, *within, svc.Config.Policy.ConsentTTL)
}

// drift reads back, per destination, the suppressions it should hold and
// reports those it no longer holds; -repair pushes them again.
func drift(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("drift", flag.ContinueOnError)
	dest := fs.String("destination", "", "only this destination")
	repair := fs.Bool("repair", false, "push the missing suppressions again")
	sample := fs.Int("sample", 0, "read back at most this many suppressions per destination (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, a, err := openApp(ctx, log, app.Options{Migrate: true})
	if err != nil {
		return err
	}
	defer a.Close()
	// One phase per destination: suppressions read back so far, of
	// -sample when given (the number held is not counted in advance).
	bar := cli.NewProgress(os.Stderr, "drift")
	total := int64(-1)
	if *sample > 0 {
		total = int64(*sample)
	}
	report := bar.Func()
	reports, derr := a.Worker.Drift(ctx, *dest, *repair, *sample, func(r worker.DriftReport) {
		report(r.Destination+" read back", int64(r.Checked), total)
	})
	bar.Finish()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tCHECKED\tMISSING\tUNKNOWN\tREPAIRED")
	for _, r := range reports {
		if r.Unsupported {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t(cannot be read back)\n", r.Destination)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", r.Destination, r.Checked, r.Missing, r.Unknown, r.Repaired)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return derr
}

// catchUp queues, at every configured destination (or -destination), the
// standing withdrawals it covers and holds no suppression for
// (worker.CatchUp), and prints the counts; -dry-run only counts. It reads
// every destination from the start and records nothing: the worker's
// start-up run is the one remembered.
func catchUp(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("catch-up", flag.ContinueOnError)
	dest := fs.String("destination", "", "only this destination")
	dry := fs.Bool("dry-run", false, "count what would be queued; write nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := openOperator(ctx, log)
	if err != nil {
		return err
	}
	defer a.Close()
	reports, ran, err := a.CatchUp().RunLocked(ctx, worker.CatchUpOptions{Destination: *dest, DryRun: *dry})
	if err != nil {
		return err
	}
	if !ran {
		return errors.New("a catch-up is running in another process (a worker starting); try again when it ends")
	}
	return cli.PrintCatchUp(os.Stdout, reports, *dry)
}

// overdue lists withdrawals not honoured everywhere within
// policy.withdrawal_deadline.
func overdue(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("overdue", flag.ContinueOnError)
	limit := fs.Int("limit", 1000, "list at most this many")
	olderThan := fs.Duration("older-than", 0, "list withdrawals older than this (default policy.withdrawal_deadline; 24h matches the alert; 0 lists every one still waiting)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *limit < 1 || *olderThan < 0 {
		return errors.New("-limit must be at least 1 and -older-than not negative")
	}
	svc, closeFn, err := openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	age := svc.Config.Policy.WithdrawalDeadline
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "older-than" {
			age = *olderThan // 0 too: every withdrawal still waiting
		}
	})
	rows, err := svc.Overdue(ctx, age, *limit+1)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Printf("no withdrawal older than %s is waiting for a destination\n", age)
		return nil
	}
	more := len(rows) > *limit
	rows = rows[:min(len(rows), *limit)]
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LEDGER ID\tSUBJECT\tRECEIVED\tAGE\tSCOPE\tWAITING FOR")
	now := time.Now()
	for _, r := range rows {
		who := cmp.Or(r.Identity, fmt.Sprintf("#%d (erased)", r.SubjectID))
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s/%s/%s\t%s\n", r.ConsentEventID, who, r.ReceivedAt.UTC().Format(time.RFC3339),
			ageOf(now.Sub(r.ReceivedAt)), r.Brand, r.Channel, r.Purpose, strings.Join(r.Destinations, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		fmt.Printf("(more than %d: raise -limit)\n", *limit)
	}
	// Exit 1: a daily run (cron, CI) fails while withdrawals are overdue.
	n := fmt.Sprint(len(rows))
	if more {
		n = "more than " + n
	}
	noun := "withdrawals"
	if len(rows) == 1 && !more {
		noun = "withdrawal"
	}
	return fmt.Errorf("%s %s older than %s not honoured everywhere", n, noun, age)
}

// ageOf shows an age to the second under a minute, else to the minute.
func ageOf(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

// parseDays reads "30d" (days) or any Go duration ("720h").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 36500 {
			return 0, fmt.Errorf("%q: want a number of days from 0d to 36500d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// verifyLedger recomputes every hash chain and reports breaks; exit 1 when
// there is one, or when -expect names a root the ledger no longer has.
func verifyLedger(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify-ledger", flag.ContinueOnError)
	expect := fs.String("expect", "", "a ledger root printed by an earlier run: fail if it changed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	svc, closeFn, err := openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	bar := cli.NewProgress(os.Stderr, "verify-ledger")
	rep, err := svc.VerifyLedger(progress.With(ctx, bar.Func()), *expect, func(b store.Break) {
		fmt.Printf("BREAK subject %d, ledger row %d: %s\n", b.SubjectID, b.EventID, b.Problem)
	})
	bar.Finish()
	if err == nil || len(rep.Breaks) == 0 && rep.Root != nil {
		fmt.Printf("ledger: %d rows, every hash chain, evidence, raw request and state checked\nledger root: %x\n", rep.Rows, rep.Root)
	}
	return err
}
