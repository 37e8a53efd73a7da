// Package testenv gives each test its own real Postgres database and its own
// Redis database index, and cleans both up with t.Cleanup (in the manner of
// riverqueue/river's test helpers). It never mocks either.
//
// TEST_DATABASE_URL names a Postgres server and a role allowed to create
// databases (default postgres://postgres@127.0.0.1:5432/postgres);
// TEST_REDIS_URL names the Redis server (default redis://127.0.0.1:6379).
// Redis indexes 1..15 are leased to tests through a lock key in index 0, so
// test binaries running in parallel never share one.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq" // Postgres driver

	"github.com/consentsync/consentsync/internal/redislease"
	"github.com/consentsync/consentsync/migrations"
	"github.com/consentsync/consentsync/store"
)

// AdminURL is the Postgres URL tests create databases through.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisURL is the Redis server tests use (without a DB index).
func RedisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return strings.TrimSuffix(u, "/")
	}
	return "redis://127.0.0.1:6379"
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// template migrates one database per test binary; test databases are cloned
// from it (CREATE DATABASE ... TEMPLATE), which is much faster than
// migrating each.
func template(t testing.TB) string {
	templateOnce.Do(func() {
		name := "cstest_tmpl_" + randHex(6)
		templateErr = createDB(name, "")
		if templateErr != nil {
			return
		}
		db, err := sql.Open("postgres", withDB(AdminURL(), name))
		if err != nil {
			templateErr = err
			return
		}
		defer db.Close()
		templateErr = migrations.Up(context.Background(), db)
		templateName = name
	})
	if templateErr != nil {
		t.Fatalf("testenv: Postgres at TEST_DATABASE_URL (%s) is needed: %v", redactURL(AdminURL()), templateErr)
	}
	return templateName
}

// Postgres creates a migrated database for this test and returns its URL.
// The database is dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	tmpl := template(t)
	name := "cstest_" + randHex(8)
	if err := createDB(name, tmpl); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() { dropDB(name) })
	return withDB(AdminURL(), name)
}

// Store opens the store on a fresh migrated database for this test
// (Postgres); it is closed, and the database dropped, when the test ends.
func Store(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), Postgres(t))
	if err != nil {
		t.Fatalf("testenv: open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Redis leases a Redis database index for this test (redislease.Lease,
// shared with `consentsync demo`), flushes it, and returns its URL. The
// index is flushed and released when the test ends.
func Redis(t testing.TB) string {
	t.Helper()
	u, release, err := redislease.Lease(context.Background(), RedisURL(), 2*time.Minute)
	if err != nil {
		t.Fatalf("testenv: Redis at TEST_REDIS_URL (%s) is needed: %v", RedisURL(), err)
	}
	t.Cleanup(release)
	return u
}

func createDB(name, tmpl string) error {
	db, err := sql.Open("postgres", AdminURL())
	if err != nil {
		return err
	}
	defer db.Close()
	q := "CREATE DATABASE " + name
	if tmpl != "" {
		q += " TEMPLATE " + tmpl
	}
	// Cloning needs the template free of other sessions; retry briefly.
	for i := 0; ; i++ {
		_, err = db.Exec(q)
		if err == nil || i == 50 || !strings.Contains(err.Error(), "being accessed by other users") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dropDB(name string) {
	db, err := sql.Open("postgres", AdminURL())
	if err != nil {
		return
	}
	defer db.Close()
	_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
}

// DropTemplate removes this binary's template database; call it from
// TestMain after m.Run.
func DropTemplate() {
	if templateName != "" {
		dropDB(templateName)
	}
}

func withDB(admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil {
		return admin
	}
	u.Path = "/" + name
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// DropDatabase drops a database a test created by name (e.g. the demo's).
func DropDatabase(name string) { dropDB(name) }
