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
//	consentsync subject EMAIL|PHONE     a subject's state, eligibility and history
//	consentsync expiring --within 30d   consents that lapse soon
//	consentsync verify-ledger           recompute the ledger's hash chains
//
// Configuration: CONSENTSYNC_CONFIG (YAML), DATABASE_URL, REDIS_URL,
// HTTP_ADDR, CONSENTSYNC_ADMIN_TOKEN. See README.md.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
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
  migrate [up|down -yes|status]  apply, roll back the newest (drops data), or list migrations
  demo                        run the whole pipeline on the bundled real-format webhooks
  replay -id 1,2,3            re-process stored inbound events (or -from/-to RFC 3339 times)
  repush [-destination N] [-id 1,2]   push suppressions a destination refused for good again, once the cause is fixed
  queues                      queue sizes, latency and failures; inbox and outbox counts
  subject EMAIL|PHONE         a subject's state, eligibility per brand/channel/purpose, history
  expiring --within 30d       consents that lapse soon (re-consent campaigns)
  verify-ledger [-expect ROOT]  recompute every hash chain; print the ledger root; exit 1 on a break

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
	case "repush":
		err = repush(ctx, log, args)
	case "expiring":
		err = expiring(ctx, args)
	case "verify-ledger":
		err = verifyLedger(ctx, args)
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
	cfg, a, err := openApp(ctx, log, app.Options{Migrate: *doMigrate})
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

// openConfigStore loads the configuration and opens its database. The
// caller closes the store.
func openConfigStore(ctx context.Context) (*config.Config, *store.Store, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Process.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
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
	ids, err := parseIDs(*idList)
	if err != nil {
		return err
	}
	var tFrom, tTo time.Time
	if len(ids) == 0 {
		if *from == "" {
			return errors.New("give -id or -from")
		}
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
	_, a, err := openApp(ctx, log, app.Options{})
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

func repush(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("repush", flag.ContinueOnError)
	dest := fs.String("destination", "", "only this destination's failed suppressions")
	idList := fs.String("id", "", "only these outbox ids (comma-separated)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ids, err := parseIDs(*idList)
	if err != nil {
		return err
	}
	_, a, err := openApp(ctx, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	back, err := a.Store.RequeueFailed(ctx, *dest, ids)
	if err != nil {
		return err
	}
	total := 0
	for d, n := range back {
		total += n
		if err := a.Enqueuer.Push(ctx, d, 0); err != nil {
			return err
		}
	}
	fmt.Printf("re-queued %d failed suppression(s) for %d destination(s)\n", total, len(back))
	return nil
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
	_, a, err := openApp(ctx, log, app.Options{})
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
	fmt.Printf("\ninbox: %d waiting to be processed, %d processed, %d failed (see replay)\n", inbox["received"], inbox["processed"], inbox["failed"])
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
	cfg, st, err := openConfigStore(ctx)
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
	id, err := st.FindSubjectID(ctx, store.Identifier{Email: email, Phone: phone})
	if errors.Is(err, store.ErrNotFound) {
		facts, ferr := st.FactsFor(ctx, []store.Identifier{{Email: email, Phone: phone}}, consent.Key{Channel: "email", Brand: "-", Purpose: "marketing"})
		if ferr == nil && facts[0].Erased {
			fmt.Printf("%s was erased on %s: nothing may be sent to it.\n", args[0], facts[0].ErasedAt.UTC().Format(time.RFC3339))
			return nil
		}
		return fmt.Errorf("%s: unknown subject", args[0])
	}
	if err != nil {
		return err
	}
	return printSubject(ctx, os.Stdout, st, cfg, id)
}

// printSubject prints a subject's state, eligibility per brand, channel and
// purpose, and history, for support staff.
func printSubject(ctx context.Context, w io.Writer, st *store.Store, cfg *config.Config, id int64) error {
	v, err := st.SubjectView(ctx, id)
	if err != nil {
		return err
	}
	facts, err := st.SubjectFacts(ctx, id)
	if err != nil {
		return err
	}
	facts.Professional = consent.IsProfessional(facts.Email, cfg.Policy.ProfessionalDomains, facts.Professional)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "subject %s%s  profile: %s\n\n", v.Subject.Email.String, v.Subject.Phone.String, profileLine(facts))
	fmt.Fprintln(tw, "CONSENT\tSTATUS\tSINCE (UTC)\tSOURCE\tVALID")
	for _, c := range v.Consents {
		fmt.Fprintf(tw, "%s/%s/%s\t%s\t%s\t%s\t%v\n", c.Brand, c.Channel, c.Purpose, c.Status, c.OccurredAt.UTC().Format("2006-01-02 15:04:05"), c.Source, c.Valid)
	}
	_ = tw.Flush()
	brands := map[string]bool{}
	for _, s := range cfg.Sources {
		brands[s.Brand] = true
	}
	for _, d := range cfg.Destinations {
		brands[d.Brand] = true
	}
	for k := range facts.States {
		brands[k.Brand] = true
	}
	names := make([]string, 0, len(brands))
	for b := range brands {
		names = append(names, b)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\nMAY WE SEND?")
	fmt.Fprintln(tw, "BRAND\tCHANNEL\tPURPOSE\tALLOWED\tBASIS\tREASON\tSINCE")
	pol := consent.Policy{ConsentTTL: cfg.Policy.ConsentTTL, StrictQuality: cfg.Policy.StrictQuality, ProfessionalDomains: cfg.Policy.ProfessionalDomains}
	for _, b := range names {
		for _, ch := range []consent.Channel{consent.ChannelEmail, consent.ChannelSMS, consent.ChannelPhone, consent.ChannelPost} {
			for _, pu := range []consent.Purpose{consent.PurposeMarketing, consent.PurposePartners} {
				a := consent.Decide(facts, consent.Question{Channel: ch, Brand: b, Purpose: pu}, pol, time.Now())
				since := ""
				if a.Since != nil {
					since = a.Since.UTC().Format("2006-01-02")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", b, ch, pu, a.Allowed, a.Basis, a.Reason, since)
			}
		}
	}
	_ = tw.Flush()
	rows, err := st.Ledger(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nHISTORY (ledger, oldest first)")
	fmt.Fprintln(tw, "#\tOCCURRED (UTC)\tCONSENT\tSTATUS\tSOURCE\tOUTCOME\tVALID\tINBOUND")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s/%s/%s\t%s\t%s\t%s\t%v\t%d\n", r.ID, r.OccurredAt.UTC().Format("2006-01-02 15:04:05"),
			r.Brand, r.Channel, r.Purpose, r.Status, r.Source, r.Outcome, r.Valid, r.InboundID.Int64)
	}
	_ = tw.Flush()
	rec, err := st.Receipts(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSUPPRESSIONS")
	fmt.Fprintln(tw, "DESTINATION\tCONSENT\tSTATUS\tATTEMPTS\tSENT (UTC)\tANSWER")
	for _, r := range rec {
		sent, answer := "", ""
		if r.SentAt != nil {
			sent = r.SentAt.UTC().Format("2006-01-02 15:04:05")
		}
		if r.Receipt != nil {
			answer = *r.Receipt
		}
		if r.LastError != nil && r.Status != "sent" {
			answer = *r.LastError
		}
		if len(answer) > 70 {
			answer = answer[:67] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s/%s/%s\t%s\t%d\t%s\t%s\n", r.Destination, r.Brand, r.Channel, r.Purpose, r.Status, r.Attempts, sent, answer)
	}
	return tw.Flush()
}

func profileLine(f consent.Facts) string {
	var parts []string
	if f.Professional {
		parts = append(parts, "professional")
	}
	if consent.IsLegalEntityAddress(f.Email) {
		parts = append(parts, "role address")
	}
	for b, since := range f.CustomerOf {
		parts = append(parts, fmt.Sprintf("customer of %s since %s", b, since.UTC().Format("2006-01-02")))
	}
	if len(parts) == 0 {
		return "prospect"
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// expiring lists consents that lapse within the window (default 30d), for
// re-consent campaigns: consentsync expiring --within 30d.
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
	cfg, st, err := openConfigStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	rows, err := st.Expiring(ctx, cfg.Policy.ConsentTTL, d, now)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tCONSENT\tGRANTED (UTC)\tEXPIRES (UTC)\tSTATE")
	for _, r := range rows {
		state := "expiring"
		if !r.ExpiresAt.After(now) {
			state = "expired"
		}
		fmt.Fprintf(tw, "%s%s\t%s/%s/%s\t%s\t%s\t%s\n", r.Email.String, r.Phone.String, r.Brand, r.Channel, r.Purpose,
			r.GrantedAt.UTC().Format("2006-01-02"), r.ExpiresAt.UTC().Format("2006-01-02"), state)
	}
	_ = tw.Flush()
	fmt.Printf("%d consent(s) expire within %s (policy.consent_ttl %s)\n", len(rows), *within, cfg.Policy.ConsentTTL)
	return nil
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
	if *expect != "" {
		if b, err := hex.DecodeString(*expect); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("-expect %q: a ledger root is 64 hex digits, as printed by verify-ledger", *expect)
		}
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	breaks := 0
	n, root, err := st.VerifyLedger(ctx, func(b store.Break) {
		breaks++
		fmt.Printf("BREAK subject %d, ledger row %d: %s\n", b.SubjectID, b.EventID, b.Problem)
	})
	if err != nil {
		return err
	}
	if breaks > 0 {
		return fmt.Errorf("%d break(s) in %d ledger rows", breaks, n)
	}
	fmt.Printf("ledger intact: %d rows, every hash chain, evidence, raw request and state verified\nledger root: %x\n", n, root)
	if *expect != "" && *expect != fmt.Sprintf("%x", root) {
		return fmt.Errorf("ledger root changed since %s: rows were appended, removed or rewritten", *expect)
	}
	return nil
}
