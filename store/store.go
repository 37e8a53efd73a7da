// Package store is consentsync's Postgres access: the inbox (inbound_events),
// subjects, the ledger (consent_events), current states (consent_states) and
// the suppression outbox. SQL is written out in each file, one file per table
// family; there is no ORM. Postgres is the system of record: Redis only
// carries work.
package store

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Store wraps the connection pool.
type Store struct {
	DB *sqlx.DB

	keyMu       sync.Mutex
	identityKey []byte
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Open connects to url (a libpq URL) and checks the connection within 5 s.
// When the database it names does not exist yet, Open creates it (through
// the server's "postgres" database) and connects again: a fresh install
// needs no manual CREATE DATABASE.
func Open(ctx context.Context, url string) (*Store, error) {
	s, err := open(ctx, url)
	var pqErr *pq.Error
	if err == nil || !errors.As(err, &pqErr) || pqErr.Code != "3D000" {
		return s, err
	}
	if cerr := createDatabase(ctx, url); cerr != nil {
		return nil, fmt.Errorf("%w (and creating it failed: %v)", err, cerr)
	}
	return open(ctx, url)
}

// createDatabase creates the database url names, connecting to the
// maintenance database of the same server.
func createDatabase(ctx context.Context, raw string) error {
	u, err := neturl.Parse(raw)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("database name %q: create it yourself (only a-z, 0-9 and _ are created automatically)", name)
		}
	}
	if name == "" {
		return errors.New("no database name in DATABASE_URL")
	}
	u.Path = "/postgres"
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE DATABASE "+name)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "42P04" { // created meanwhile by another process
		return nil
	}
	return err
}

func open(ctx context.Context, url string) (*Store, error) {
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	return &Store{DB: db}, nil
}

// Close closes the pool.
func (s *Store) Close() error { return s.DB.Close() }

// Ping checks that Postgres answers.
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// Tx is one open transaction: the statements a reconciliation or an
// erasure runs together. Callers get one from Store.Tx and never see the
// driver.
type Tx struct {
	sq *preparedTx
	// batch, once Preload ran, answers the batch's reads from memory and
	// holds its deferred writes (see batchCache).
	batch *batchCache
}

// Tx runs fn in one transaction, committing when fn returns nil and rolling
// back otherwise.
func (s *Store) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	sq, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(&Tx{sq: &preparedTx{tx: sq}}); err != nil {
		_ = sq.Rollback()
		return err
	}
	if err := sq.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
