package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// LiveIdentifiers lists the identifiers of every live subject, oldest
// first (demo and support listings; not for large tables).
func (s *Store) LiveIdentifiers(ctx context.Context) ([]Identifier, error) {
	var rows []struct {
		Email string `db:"email"`
		Phone string `db:"phone"`
	}
	if err := s.DB.SelectContext(ctx, &rows, `SELECT coalesce(email, '') AS email, coalesce(phone, '') AS phone
		FROM subjects WHERE erased_at IS NULL ORDER BY id`); err != nil {
		return nil, fmt.Errorf("store: live identifiers: %w", err)
	}
	out := make([]Identifier, len(rows))
	for i, r := range rows {
		out[i] = Identifier{Email: r.Email, Phone: r.Phone}
	}
	return out, nil
}

// WithLock runs fn only if this process obtains the Postgres advisory lock
// key (held for fn's transaction); it reports whether fn ran. Processes that
// call it with the same key at the same time run fn once: single-flight
// across processes.
func (s *Store) WithLock(ctx context.Context, key int64, fn func(ctx context.Context) error) (bool, error) {
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only lock holder
	var got bool
	if err := tx.QueryRowxContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, key).Scan(&got); err != nil {
		return false, err
	}
	if !got {
		return false, nil
	}
	return true, fn(ctx)
}

// SubjectIdentifier returns the email address (else phone number) of live
// subject id, as stored (normalized). ErrNotFound when no live subject has
// that id (never existed, or erased).
func (s *Store) SubjectIdentifier(ctx context.Context, id int64) (Identifier, error) {
	var row struct {
		Email string `db:"email"`
		Phone string `db:"phone"`
	}
	err := s.DB.GetContext(ctx, &row, `SELECT coalesce(email, '') AS email, coalesce(phone, '') AS phone
		FROM subjects WHERE id = $1 AND erased_at IS NULL`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Identifier{}, ErrNotFound
	}
	if err != nil {
		return Identifier{}, fmt.Errorf("store: subject identifier: %w", err)
	}
	return Identifier{Email: row.Email, Phone: row.Phone}, nil
}
