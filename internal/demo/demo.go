// Package demo is `consentsync demo`: the main job end to end on the bundled
// real-format webhooks. It migrates a fresh database, starts the receiver,
// the worker and a local sandbox standing in for the HubSpot contacts API
// and every destination kind's provider (internal/sandbox), posts every fixture signed as its sender signs it
// (re-signed with the current time where the scheme has a timestamp), waits
// for the queues to drain, checks every expected signal reached the ledger,
// and prints the consent record and, per address and destination, the
// push, its read-back and the provider's receipt. Then one demo person
// signs up, gets the links a sending tool adds to each message
// (List-Unsubscribe, the preference centre) and unsubscribes in one click
// (RFC 8058), which must reach every destination of acme's email marketing.
package demo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/didomi"
	"github.com/consentsync/consentsync/connectors/hubspot"
	"github.com/consentsync/consentsync/connectors/sendgrid"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/redislease"
	"github.com/consentsync/consentsync/internal/sandbox"
)

// Options are the demo's flags.
type Options struct {
	// Database is the name of the database the demo creates on the
	// DATABASE_URL server (dropped first when it exists). Empty: a name of
	// its own for this run, consentsync_demo_<random>, dropped at the end
	// unless Keep.
	Database string
	// Keep leaves the run's own database in place for inspection.
	Keep bool
	// RedisDB is the Redis database index the demo flushes and uses; 0
	// leases a free index 1..15 the way the tests do (redislease), so a
	// demo never flushes a test's queues or another demo's.
	RedisDB int
	// Timeout bounds the wait for the queues to drain.
	Timeout time.Duration
	// Verbose prints the service's logs.
	Verbose bool
	// Serve keeps the service (and so the printed preference-centre link)
	// running after the report, until interrupted.
	Serve bool
	// Addr is the demo's listen address (default 127.0.0.1 and a free port).
	Addr string
}

// Main parses args and runs the demo, printing to out. It returns an error
// (exit 1) unless every webhook got its expected answer, every expected
// signal reached the ledger and every suppression was pushed.
func Main(ctx context.Context, args []string, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var o Options
	fs.StringVar(&o.Database, "db", "", "database to (re)create on the DATABASE_URL server (default: consentsync_demo_<random>, dropped at the end)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run's own database for inspection")
	fs.IntVar(&o.RedisDB, "redis-db", 0, "Redis database index to flush and use (default: lease a free one, as the tests do)")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "how long to wait for the queues to drain")
	fs.BoolVar(&o.Verbose, "v", false, "print the service's logs")
	fs.BoolVar(&o.Serve, "serve", false, "keep serving after the report (the preference-centre link keeps working) until interrupted")
	fs.StringVar(&o.Addr, "addr", "", "listen address (default 127.0.0.1 and a free port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !o.Verbose {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return Run(ctx, o, out, log)
}

// posted is one fixture's delivery.
type posted struct {
	fx     fixtures.Fixture
	status int
	body   string
	id     string
	err    string
}

// Run runs the demo with o.
func Run(ctx context.Context, o Options, out io.Writer, log *slog.Logger) error {
	start := time.Now()
	proc, err := config.LoadProcess()
	if err != nil {
		return err
	}
	name, own := o.Database, o.Database == ""
	if own {
		name = "consentsync_demo_" + randomToken()[:8]
	}
	dbURL, dropDB, err := freshDatabase(ctx, proc.DatabaseURL, name)
	if err != nil {
		return err
	}
	if own && !o.Keep {
		defer dropDB()
	} else {
		defer fmt.Fprintf(out, "demo database kept: %s\n", name)
	}
	var redisURL string
	if o.RedisDB == 0 {
		u, release, err := redislease.Lease(ctx, proc.RedisURL, 30*time.Second)
		if err != nil {
			return fmt.Errorf("redis (REDIS_URL): %w", err)
		}
		defer release()
		redisURL = u
	} else if redisURL, err = freshRedis(ctx, proc.RedisURL, o.RedisDB); err != nil {
		return err
	}

	contacts, err := sandbox.FixtureContacts()
	if err != nil {
		return err
	}
	sb := sandbox.New(append(seedPriorSuppressions(), sandbox.WithHubSpotContacts(contacts))...)
	seedOthers(sb)
	// The sales team's CRM already holds the fixtures' people as contacts.
	people, err := fixtures.All()
	if err != nil {
		return err
	}
	inCRM := map[string]bool{}
	for _, p := range priorSuppressions {
		if k := strings.ToLower(p.Email); !inCRM[k] && p.Destination != "salesforce-acme" {
			inCRM[k] = true
			sb.Others().Salesforce.AddContact(p.Email)
		}
	}
	for _, fx := range people {
		for _, sig := range fx.Expect.Signals {
			if k := strings.ToLower(sig.Email); k != "" && !inCRM[k] {
				inCRM[k] = true
				sb.Others().Salesforce.AddContact(sig.Email)
			}
		}
	}
	sbSrv, err := sb.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sbSrv.Close()

	raw, err := fixtures.ExampleConfig()
	if err != nil {
		return err
	}
	sandboxVar := func(k string) (string, bool) {
		if k == "SANDBOX_URL" {
			return sbSrv.URL, true
		}
		return "", false
	}
	cfg, err := config.Parse(raw, sandboxVar)
	if err != nil {
		return err
	}
	// One destination of every kind, each against its fake.
	extra, err := fixtures.DemoDestinations()
	if err != nil {
		return err
	}
	more, err := config.Parse(extra, sandboxVar)
	if err != nil {
		return fmt.Errorf("demo destinations: %w", err)
	}
	cfg.Destinations = append(cfg.Destinations, more.Destinations...)
	cfg.Worker.VerifyAfter = time.Second // read back while the demo watches
	cfg.Worker.VerifyAttempts = 2
	// SendGrid signs with a private key we do not have: the demo signs with
	// its own P-256 key and trusts its public half, as an operator would
	// paste the key SendGrid shows.
	sgKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	for i := range cfg.Sources {
		if cfg.Sources[i].Kind == "sendgrid" {
			pub, err := sendgrid.PublicKeyBase64(&sgKey.PublicKey)
			if err != nil {
				return err
			}
			cfg.Sources[i].Secrets = []string{pub}
		}
	}
	cfg.Process = proc
	cfg.Server.DrainGrace = time.Millisecond // nothing sends to the demo's listener once it is done
	cfg.Process.DatabaseURL, cfg.Process.RedisURL = dbURL, redisURL
	cfg.Process.AdminToken = randomToken()
	ln, err := net.Listen("tcp", cmp.Or(o.Addr, "127.0.0.1:0"))
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	withPages(cfg, base)

	a, err := app.New(ctx, cfg, log, app.Options{Migrate: true})
	if err != nil {
		ln.Close()
		return err
	}
	defer a.Close()
	rctx, stop := context.WithCancel(ctx)
	httpDone := make(chan error, 1)
	workDone := make(chan error, 1)
	go func() { httpDone <- a.RunHTTP(rctx, ln) }()
	go func() { workDone <- a.RunWorker(rctx) }()
	defer func() {
		stop()
		<-httpDone
		<-workDone
	}()

	// Day one: import what the providers already hold, then go live.
	prior := backfillSandbox(ctx, a, o.Timeout)
	all, err := fixtures.All()
	if err != nil {
		return err
	}
	var results []posted
	for _, fx := range all {
		results = append(results, post(ctx, base, fx, cfg, sgKey))
	}
	drained := waitDrained(ctx, a, o.Timeout)
	pg := runPages(ctx, a, base, cfg, o.Timeout)
	drained = waitDrained(ctx, a, o.Timeout) && drained
	err = report(ctx, out, a, sb, prior, results, pg, drained, time.Since(start))
	if o.Serve && err == nil {
		fmt.Fprintf(out, "\nserving the webhooks and the public pages at %s until interrupted (Ctrl-C): open the preference centre link above\n", base)
		<-ctx.Done()
	}
	return err
}

// post sends one fixture as its sender would, re-signed for now.
func post(ctx context.Context, base string, fx fixtures.Fixture, cfg *config.Config, sgKey *ecdsa.PrivateKey) posted {
	p := posted{fx: fx}
	req := fx.ConnectorRequest()
	body := req.Body
	now := time.Now()
	src, _ := cfg.Source(strings.TrimPrefix(fx.Request.Path, "/webhooks/"))
	switch src.Kind {
	case "hubspot":
		uri := strings.TrimSuffix(config.OptionsOf[hubspot.SourceOptions](src.Options).PublicURL, "/") + fx.Request.Path
		if fx.Request.Query != "" {
			uri += "?" + fx.Request.Query
		}
		for k, v := range hubspot.Sign(src.Secrets[0], fx.Request.Method, uri, body, now) {
			req.Header.Set(k, v)
		}
	case "sendgrid":
		h, err := sendgrid.Sign(sgKey, now, body)
		if err != nil {
			p.err = err.Error()
			return p
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
	case "didomi":
		// Didomi presents a bearer token it fetched from the source's token
		// endpoint a moment before: mint one valid now.
		id := config.OptionsOf[didomi.SourceOptions](src.Options).ClientID
		req.Header.Set("Authorization", "Bearer "+didomi.Token(src.Secrets[0], src.Name, id, now.Add(didomi.TokenLifetime)))
	case "mailgun":
		b, err := resignMailgun(body, src.Secrets[0], now)
		if err != nil {
			p.err = err.Error()
			return p
		}
		body = b
	}
	u := base + fx.Request.Path
	if fx.Request.Query != "" {
		u += "?" + fx.Request.Query
	}
	hr, err := http.NewRequestWithContext(ctx, fx.Request.Method, u, bytes.NewReader(body))
	if err != nil {
		p.err = err.Error()
		return p
	}
	hr.Header = req.Header
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		p.err = err.Error()
		return p
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	p.status, p.body = resp.StatusCode, string(rb)
	var ack struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(rb, &ack) == nil {
		p.id = ack.ID
	}
	return p
}

// resignMailgun replaces the signature block's timestamp and signature in
// the body with ones for now. Mailgun signs timestamp + token only, and they
// travel inside the body, so the demo swaps those two values byte for byte
// and leaves the rest as sent.
func resignMailgun(body []byte, key string, now time.Time) ([]byte, error) {
	var v struct {
		Signature struct {
			Timestamp string `json:"timestamp"`
			Token     string `json:"token"`
			Signature string `json:"signature"`
		} `json:"signature"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := hex.EncodeToString(connectors.HMAC("sha256", []byte(key), []byte(ts+v.Signature.Token)))
	out := bytes.Replace(body, []byte(`"`+v.Signature.Timestamp+`"`), []byte(`"`+ts+`"`), 1)
	out = bytes.Replace(out, []byte(v.Signature.Signature), []byte(sig), 1)
	return out, nil
}

// waitDrained waits until the inbox has nothing 'received', the outbox
// nothing 'pending' and the queues nothing pending, active, scheduled or
// retrying; it reports whether that happened within timeout.
func waitDrained(ctx context.Context, a *app.App, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if drained(ctx, a) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func drained(ctx context.Context, a *app.App) bool {
	var open int
	if err := a.Store.DB.GetContext(ctx, &open, `SELECT
		(SELECT count(*) FROM inbound_events WHERE status = 'received') +
		(SELECT count(*) FROM suppression_outbox WHERE status = 'pending') +
		(SELECT count(*) FROM suppression_outbox WHERE status = 'sent' AND verify_due_at IS NOT NULL)`); err != nil || open > 0 {
		return false
	}
	qs, err := a.Inspector.Queues()
	if err != nil {
		return false
	}
	for _, q := range qs {
		qi, err := a.Inspector.GetQueueInfo(q)
		if err != nil || qi.Pending+qi.Active+qi.Scheduled+qi.Retry > 0 {
			return false
		}
	}
	return true
}

// freshDatabase drops and recreates name on the server of serverURL and
// returns the URL of the new database and a function that drops it.
func freshDatabase(ctx context.Context, serverURL, name string) (string, func(), error) {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return "", nil, fmt.Errorf("-db %q: use lower-case letters, digits and _", name)
		}
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Create the demo database from the maintenance database "postgres",
	// else from the database DATABASE_URL names.
	maint := *u
	maint.Path = "/postgres"
	var db *sqlx.DB
	var adminURL string
	for _, cand := range []string{maint.String(), serverURL} {
		if db, err = sqlx.Open("postgres", cand); err != nil {
			continue
		}
		if err = db.PingContext(cctx); err == nil {
			adminURL = cand
			break
		}
		db.Close()
	}
	if err != nil {
		return "", nil, fmt.Errorf("postgres (DATABASE_URL) is not reachable: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(cctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
		return "", nil, fmt.Errorf("demo database: %w", err)
	}
	if _, err := db.ExecContext(cctx, `CREATE DATABASE `+name); err != nil {
		return "", nil, fmt.Errorf("demo database: %w", err)
	}
	drop := func() {
		d, err := sqlx.Open("postgres", adminURL)
		if err != nil {
			return
		}
		defer d.Close()
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = d.ExecContext(dctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// freshRedis flushes database index idx of the REDIS_URL server and returns
// its URL.
func freshRedis(ctx context.Context, serverURL string, idx int) (string, error) {
	if idx < 0 || idx > 15 {
		return "", errors.New("-redis-db: want 0..15")
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("REDIS_URL: %w", err)
	}
	u.Path = "/" + strconv.Itoa(idx)
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		return "", fmt.Errorf("REDIS_URL: %w", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		return "", fmt.Errorf("redis (REDIS_URL) is not reachable: %w", err)
	}
	return u.String(), nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
