package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SubjectView is what the admin API shows of one subject.
type SubjectView struct {
	Subject      Subject
	Consents     []ConsentRow
	Suppressions []Receipt
}

// ConsentRow is one current state, with the winning ledger row's validity.
type ConsentRow struct {
	Channel    string    `db:"channel" json:"channel"`
	Brand      string    `db:"brand" json:"brand"`
	Purpose    string    `db:"purpose" json:"purpose"`
	Status     string    `db:"status" json:"status"`
	Basis      string    `db:"-" json:"basis"`
	OccurredAt time.Time `db:"occurred_at" json:"occurred_at"`
	Source     string    `db:"source" json:"source"`
	Valid      bool      `db:"valid" json:"valid"`
}

// FindSubject loads a subject by normalized email or E.164 phone, with its
// current consents and suppressions. It returns ErrNotFound when unknown.
func (s *Store) FindSubject(ctx context.Context, email, phone string) (*SubjectView, error) {
	var v SubjectView
	err := s.DB.GetContext(ctx, &v.Subject, `SELECT id, email, email_original, phone, profile, created_at FROM subjects
		WHERE ($1 <> '' AND email = $1) OR ($2 <> '' AND phone = $2) ORDER BY id LIMIT 1`, email, phone)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: find subject: %w", err)
	}
	return s.fillView(ctx, &v)
}

func (s *Store) fillView(ctx context.Context, v *SubjectView) (*SubjectView, error) {
	if err := s.DB.SelectContext(ctx, &v.Consents, `
		SELECT s.channel, s.brand, s.purpose, s.status, s.occurred_at, s.source, e.valid
		FROM consent_states s JOIN consent_events e ON e.id = s.event_id
		WHERE s.subject_id = $1 ORDER BY s.brand, s.channel, s.purpose`, v.Subject.ID); err != nil {
		return nil, fmt.Errorf("store: consents: %w", err)
	}
	sups, err := s.Receipts(ctx, v.Subject.ID)
	if err != nil {
		return nil, fmt.Errorf("store: suppressions: %w", err)
	}
	v.Suppressions = sups
	return v, nil
}

// AllSubjects lists every subject with its consents and suppressions,
// ordered by email then phone (demo and support use; not for large tables).
func (s *Store) AllSubjects(ctx context.Context) ([]SubjectView, error) {
	var subs []Subject
	if err := s.DB.SelectContext(ctx, &subs, `SELECT id, email, email_original, phone, profile, created_at
		FROM subjects ORDER BY email NULLS LAST, phone`); err != nil {
		return nil, err
	}
	out := make([]SubjectView, 0, len(subs))
	for _, sub := range subs {
		v, err := s.FindSubject(ctx, sub.Email.String, sub.Phone.String)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
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

// SubjectView loads a subject by id with its consents and suppressions.
func (s *Store) SubjectView(ctx context.Context, id int64) (*SubjectView, error) {
	var v SubjectView
	if err := s.DB.GetContext(ctx, &v.Subject, `SELECT id, email, email_original, phone, profile, created_at FROM subjects WHERE id = $1`, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return s.fillView(ctx, &v)
}
