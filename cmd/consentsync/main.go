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
//	consentsync queues                  queue sizes, latency, failures; inbox and outbox counts
//	consentsync subject EMAIL|PHONE     a subject's consent state and suppressions
//
// Configuration: CONSENTSYNC_CONFIG (YAML), DATABASE_URL, REDIS_URL,
// HTTP_ADDR, CONSENTSYNC_ADMIN_TOKEN. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/internal/demo"
	"github.com/consentsync/consentsync/migrations"
	"github.com/consentsync/consentsync/store"
)

const usage = `consentsync — keeps marketing consent true everywhere

Commands:
  serve                       HTTP receiver, admin API and ops endpoints (HTTP_ADDR, default :8080)
  work                        asynq worker and sweeper
  all                         serve and work in one process
  migrate [up|down|status]    apply, roll back one, or list database migrations
  demo                        run the whole pipeline on the bundled real-format webhooks
  replay -id 1,2,3            re-process stored inbound events (or -from/-to RFC 3339 times)
  queues                      queue sizes, latency and failures; inbox and outbox counts
  subject EMAIL|PHONE         a subject's consents and suppressions

Environment: CONSENTSYNC_CONFIG (YAML file), DATABASE_URL, REDIS_URL, HTTP_ADDR,
CONSENTSYNC_ADMIN_TOKEN, LOG_LEVEL (debug|info|warn|error).
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
		err = run(ctx, log, cmd, args)
	case "migrate":
		err = migrate(ctx, args)
	case "demo":
		err = demo.Main(ctx, args, os.Stdout, log)
	case "replay":
		err = replay(ctx, log, args)
	case "queues":
		err = queues(ctx, log)
	case "subject":
		err = subject(ctx, log, args)
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
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log, app.Options{Migrate: *doMigrate})
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
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

func openStore(ctx context.Context) (*store.Store, error) {
	p, err := config.LoadProcess()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, p.DatabaseURL)
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
	var ids []int64
	for _, s := range strings.Split(*idList, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("-id: %q is not an id", s)
		}
		ids = append(ids, id)
	}
	var tFrom, tTo time.Time
	if len(ids) == 0 {
		if *from == "" {
			return errors.New("give -id or -from")
		}
		var err error
		if tFrom, err = time.Parse(time.RFC3339, *from); err != nil {
			return fmt.Errorf("-from: %w", err)
		}
		tTo = time.Now()
		if *to != "" {
			if tTo, err = time.Parse(time.RFC3339, *to); err != nil {
				return fmt.Errorf("-to: %w", err)
			}
		}
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	reset, err := a.Store.ReplayInbound(ctx, ids, tFrom, tTo)
	if err != nil {
		return err
	}
	for _, id := range reset {
		// A task archived after its last retry still holds the id: drop it.
		_ = a.Inspector.DeleteTask("inbound", fmt.Sprintf("inbound:%d", id))
		if err := a.Enqueuer.Inbound(ctx, id); err != nil {
			return err
		}
	}
	fmt.Printf("re-enqueued %d inbound event(s)\n", len(reset))
	return nil
}

func queues(ctx context.Context, log *slog.Logger) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSIZE\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tLATENCY\tPROCESSED TODAY\tFAILED TODAY")
	names, err := a.Inspector.Queues()
	if err != nil {
		return err
	}
	for _, q := range names {
		qi, err := a.Inspector.GetQueueInfo(q)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", q, qi.Size, qi.Pending, qi.Active, qi.Scheduled,
			qi.Retry, qi.Archived, qi.Latency.Round(time.Millisecond), qi.Processed, qi.Failed)
	}
	_ = tw.Flush()
	inbox, err := a.Store.InboxCounts(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\ninbox: received %d, processed %d, failed %d\n", inbox["received"], inbox["processed"], inbox["failed"])
	outbox, err := a.Store.OutboxCounts(ctx)
	if err != nil {
		return err
	}
	for d, c := range outbox {
		fmt.Printf("outbox %s: pending %d, sent %d, failed %d\n", d, c["pending"], c["sent"], c["failed"])
	}
	return nil
}

func subject(ctx context.Context, log *slog.Logger, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: consentsync subject EMAIL|PHONE")
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Process.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	var email, phone string
	if strings.Contains(args[0], "@") {
		email, _, err = consent.NormalizeEmail(args[0])
	} else {
		phone, err = consent.NormalizePhone(args[0], cfg.Policy.PhoneRegion)
	}
	if err != nil {
		return err
	}
	v, err := st.FindSubject(ctx, email, phone)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"email": v.Subject.Email.String, "phone": v.Subject.Phone.String,
		"profile": v.Subject.Profile, "consents": v.Consents, "suppressions": v.Suppressions})
}
