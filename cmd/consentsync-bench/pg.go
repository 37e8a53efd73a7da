package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	_ "github.com/lib/pq"
)

// benchDB is the bench's own database and a small pool to watch it.
type benchDB struct {
	name string
	url  string
	db   *sql.DB
	// own counts the transactions the bench itself ran on it (each query
	// is one autocommit transaction), to subtract from pg_stat_database.
	own atomic.Int64
}

// withDB returns serverURL with its database replaced by name.
func withDB(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("TEST_DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func createDB(ctx context.Context, serverURL, name string) (*benchDB, error) {
	admin, err := sql.Open("postgres", serverURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := withDB(serverURL, name)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("postgres", u)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	return &benchDB{name: name, url: u, db: db}, nil
}

func dropDB(serverURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("postgres", serverURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

func (b *benchDB) count(ctx context.Context, q string, args ...any) (int64, error) {
	b.own.Add(1)
	var n sql.NullInt64
	err := b.db.QueryRowContext(ctx, q, args...).Scan(&n)
	return n.Int64, err
}

// backlog is the number of inbox rows not processed yet.
func (b *benchDB) backlog(ctx context.Context) (int64, error) {
	return b.count(ctx, `SELECT count(*) FROM inbound_events WHERE status = 'received'`)
}

// xacts is the database's committed + rolled back transactions so far.
func (b *benchDB) xacts(ctx context.Context) (int64, error) {
	return b.count(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1`, b.name)
}

// waitDrained polls until no inbox row is 'received' or timeout; it returns
// the time taken and whether it drained.
func (b *benchDB) waitDrained(ctx context.Context, timeout time.Duration) (time.Duration, bool, error) {
	start := time.Now()
	for {
		n, err := b.backlog(ctx)
		if err != nil {
			return time.Since(start), false, err
		}
		if n == 0 {
			return time.Since(start), true, nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), false, nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs a one-row INSERT per transaction at clients clients for d
// on the bench's database and returns the tps pgbench reports.
func pgbench(ctx context.Context, b *benchDB, tmp string, clients int, d time.Duration, logf func(string)) (float64, error) {
	b.own.Add(1)
	if _, err := b.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bench_pgbench_insert (
		id bigserial PRIMARY KEY, source text NOT NULL, dedup_key text NOT NULL, body bytea,
		received_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("pgbench table: %w", err)
	}
	script := tmp + "/pgbench-insert.sql"
	// A row shaped like an inbox row: a source, a unique key, a ~300-byte body.
	if err := os.WriteFile(script, []byte("INSERT INTO bench_pgbench_insert (source, dedup_key, body) VALUES ('bench-form', md5(random()::text), convert_to(repeat('x', 300), 'UTF8'));\n"), 0o600); err != nil {
		return 0, err
	}
	bin := os.Getenv("PGBENCH")
	if bin == "" {
		bin = "pgbench"
		if _, err := os.Stat("/usr/bin/pgbench"); err == nil {
			bin = "/usr/bin/pgbench"
		}
	}
	args := []string{"-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(int(d.Seconds())), "-f", script, b.url}
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w: %s", err, tail(out, 400))
	}
	m := tpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in its output: %s", tail(out, 400))
	}
	logf(fmt.Sprintf("pgbench: %s tps", m[1]))
	return strconv.ParseFloat(string(m[1]), 64)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
