// Package harness runs consentsync for fault tests (chaos/, `make chaos`):
// real consentsync processes, against a Postgres cluster and a Redis
// server that the test owns and may stop, crash, flush or restart, with
// the providers faked in the test process (internal/fakeprovider) and the
// load built by internal/loadgen. It ends each test with an audit of what
// was acknowledged against what was stored, reconciled and pushed.
//
// # Cluster
//
//	c := harness.NewCluster(t, harness.Options{
//		Config: harness.Config{SendGridURL: sg.URL, MailchimpURL: mc.URL, SweepAfter: 3 * time.Second},
//		Redis:  harness.RedisOptions{Policy: "allkeys-lru"}, // optional
//	})
//	serve := c.StartServe("serve-1")    // consentsync serve; waits for /readyz 200
//	c.StartServeHealthy("serve-1")      // … or /healthz 200 (a deliberately degraded Redis)
//	work := c.StartWork("work-1")       // consentsync work; waits for "worker started"
//	p := c.Start("serve-1", "serve")    // no wait (to see a start-up failure)
//	c.DB()                              // *sql.DB on consentsync's database
//	c.PG, c.Redis, c.Bin, c.Dir, c.ConfigPath(), c.DatabaseURL(), c.Env(addr)
//
// NewCluster builds ./cmd/consentsync once per test binary (Binary: go
// build into a temporary directory, retried while the core is mid-change;
// CONSENTSYNC_CHAOS_BIN names a prebuilt binary instead), starts Postgres
// and Redis, writes the YAML configuration (Config.YAML) and runs
// `consentsync migrate up`. Every process runs with -migrate=false,
// CONSENTSYNC_CONFIG, DATABASE_URL, REDIS_URL, HTTP_ADDR (serve: a free
// port), CONSENTSYNC_ADMIN_TOKEN=AdminToken and LOG_LEVEL; it logs to
// <Dir>/<name>.log and dies with the test process (parent-death signal).
// At the test's end processes are killed, then Redis and Postgres are
// stopped and removed; when the test failed, each process's warnings and
// errors and the end of its log, Redis's and Postgres's logs are printed
// (logs carry no address: consentsync logs subjects by id).
//
// Config: one `form` source, FormSource, whose newsletter box grants when
// ticked and withdraws when explicitly unticked (acme's email marketing);
// the destinations SendGridDest and MailchimpDest (both cover it, so
// every withdrawal must reach both) at the given base URLs with
// DestTimeout (default 3 s); worker.sweep_after (default 3 s); optional
// sweep_every, concurrency, max_retry, push_wait_cap, server.drain_grace
// (written only when set) and any further server:/worker: keys
// (ExtraServer, ExtraWorker).
//
// # Proc
//
//	p.URL(), p.Addr, p.Pid(), p.LogPath
//	p.Signal(syscall.SIGTERM); p.Kill() // SIGKILL, waits for the exit
//	p.Wait(timeout), p.Exited(), p.Done(), p.ExitedAt()
//	p.Get(ctx, "/readyz")               // status and body, admin token sent
//	p.WaitHTTP(ctx, "/readyz", 200, timeout); p.WaitLog(ctx, timeout, "substr", …)
//	p.Log(), p.LogLines("substr", …), p.Tail(n)
//
// # Postgres and Redis
//
// StartPostgres: initdb and pg_ctl from the newest /usr/lib/postgresql/*/bin
// (else PATH), a new data directory under the system temp directory, a free
// port on 127.0.0.1 (TCP only), trust authentication for "postgres", fsync
// on. As root, the directory belongs to PGUser ("consentsync-test", created
// with useradd when missing) and every binary runs as it (runuser).
//
//	c.PG.Stop(harness.Fast | harness.Immediate); c.PG.Start(); c.PG.Restart(mode)
//	c.PG.URL(db), c.PG.Open(db), c.PG.Port, c.PG.Dir
//
// StartRedis: redis-server on a free port, no persistence (a restart is
// empty), optional maxmemory and maxmemory-policy.
//
//	c.Redis.FlushAll(ctx); c.Redis.Kill() // SIGKILL; c.Redis.Start() // empty
//	c.Redis.Info(ctx, "memory"); c.Redis.SetConfig(ctx, "maxmemory", "…"); c.Redis.Client()
//
// # Load
//
// Workload makes synthetic people ("<prefix>-<n>@example.com") and their
// submissions (Event: opt-in or withdrawal, a time in the past, loadgen's
// deterministic event id): Stream(Mix{People, WithdrawFrac, DupFrac,
// ReorderFrac}) is a delivery order with duplicate deliveries and
// opt-in/withdrawal pairs reversed. Sender posts them, built and signed by
// loadgen.Form, to one or more receivers (round robin), open loop
// (Drive, DriveAsync: event i at start + i/rate) or one by one (Send,
// SendTo), and records each outcome (Record: times, status, the 202's id
// and duplicate flag, transport error, refused connection) — what the
// audit needs and loadgen.Run's samples do not keep. SetSlowBody makes
// requests that stay in flight.
//
// Tap is a counting HTTP front for a fake provider: requests in flight now
// (a hanging call is not in the fake's call log until it ends) and arrival
// times.
//
// # Audit
//
//	a := &harness.Audit{DB: c.DB(), Records: s.Records(),
//		Destinations: map[string]harness.ReceiveLog{harness.SendGridDest: sg, harness.MailchimpDest: mc},
//		Outages: []harness.Window{{Name: "postgres down", From: t0, To: t1}}}
//	a.Run(t) // t.Errorf per problem; logs the Report (doubles included)
//
// It checks that every request answered 202 names a stored inbound row,
// that every inbound row is 'processed' (one row per distinct event), that
// the ledger holds exactly one row per acknowledged fact (person, status,
// time) and no other, that every outbox row is 'sent', that every withdrawn
// address reached every destination and no other address did (doubles —
// an address received more than once — are allowed, counted and
// reported), and that no answer was a 5xx, and no request failed in
// transport, outside a declared outage Window (503 only inside one).
// WaitDone waits for the same end state (backlog empty, every withdrawal
// delivered) and says what is left when it times out; ReadBacklog reads
// the backlog, including outbox rows still leased and until when.
//
// # Helpers
//
// Eventually polls a condition until a timeout (Permanent ends it early),
// FreePort finds a loopback port, Main is for a TestMain (removes the
// built binary). Directories made outside t.TempDir carry OwnerFile (the
// test process's pid) so that scripts/chaos.sh removes only what dead runs
// left behind.
package harness
