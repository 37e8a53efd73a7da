package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/consentsync/consentsync/consent"
)

// SubjectIdentity returns a subject's identifiers, locking its row for tx.
// ErrNotFound when it does not exist or is already erased.
func SubjectIdentity(ctx context.Context, tx *sqlx.Tx, subjectID int64) (consent.Subject, error) {
	var r struct {
		Email    sql.NullString `db:"email"`
		Original sql.NullString `db:"email_original"`
		Phone    sql.NullString `db:"phone"`
		ErasedAt sql.NullTime   `db:"erased_at"`
	}
	err := tx.GetContext(ctx, &r, `SELECT email, email_original, phone, erased_at FROM subjects WHERE id = $1 FOR UPDATE`, subjectID)
	if errors.Is(err, sql.ErrNoRows) || err == nil && r.ErasedAt.Valid {
		return consent.Subject{}, ErrNotFound
	}
	if err != nil {
		return consent.Subject{}, err
	}
	return consent.Subject{Email: r.Email.String, EmailOriginal: r.Original.String, Phone: r.Phone.String}, nil
}

// EraseData removes a subject's personal data inside tx (GDPR art. 17):
// its email and phone, the evidence of its ledger rows, the raw bodies and
// headers of the inbound requests its signals came from, the addresses of
// its suppressions already pushed (pending and failed ones keep theirs
// until sent: the suppression must still reach the provider),
// and its sender-side ids. It keeps keyed hashes of the identifiers (see
// IdentityHashes) with the erasure time, so the person stays suppressed
// and a re-import of the old address does not resurrect consent. The
// ledger's hash chain still verifies: it covers evidence by hash.
func EraseData(ctx context.Context, tx *sqlx.Tx, key []byte, subjectID int64, sub consent.Subject, at time.Time) error {
	for _, h := range IdentityHashes(key, sub) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO erased_identities (identity_hash, subject_id, erased_at) VALUES ($1, $2, $3)
			ON CONFLICT (identity_hash) DO UPDATE SET erased_at = greatest(erased_identities.erased_at, EXCLUDED.erased_at),
				subject_id = EXCLUDED.subject_id`, h, subjectID, at); err != nil {
			return fmt.Errorf("store: erase: %w", err)
		}
	}
	stmts := []string{
		`SET LOCAL consentsync.erasure = 'on'`,
		`UPDATE consent_events SET evidence = '{}' WHERE subject_id = $1`,
		`UPDATE inbound_events SET body = NULL, headers = '{}', query = '', notes = NULL
			WHERE id IN (SELECT inbound_event_id FROM consent_events WHERE subject_id = $1 AND inbound_event_id IS NOT NULL
				UNION SELECT inbound_event_id FROM subject_inbound WHERE subject_id = $1)`,
		`UPDATE suppression_outbox SET email = NULL, phone = NULL WHERE subject_id = $1 AND status = 'sent'`,
		`DELETE FROM subject_external_ids WHERE subject_id = $1`,
	}
	for i, q := range stmts {
		var err error
		if i == 0 {
			_, err = tx.ExecContext(ctx, q)
		} else {
			_, err = tx.ExecContext(ctx, q, subjectID)
		}
		if err != nil {
			return fmt.Errorf("store: erase: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE subjects SET email = NULL, email_original = NULL, phone = NULL,
		mailbox_key = NULL, erased_at = $2, updated_at = now() WHERE id = $1`, subjectID, at); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	return nil
}

// StateKeys lists the keys a subject has a state for.
func StateKeys(ctx context.Context, tx *sqlx.Tx, subjectID int64) ([]consent.Key, error) {
	var rows []struct {
		Channel string `db:"channel"`
		Brand   string `db:"brand"`
		Purpose string `db:"purpose"`
	}
	if err := tx.SelectContext(ctx, &rows, `SELECT channel, brand, purpose FROM consent_states WHERE subject_id = $1`, subjectID); err != nil {
		return nil, err
	}
	out := make([]consent.Key, len(rows))
	for i, r := range rows {
		out[i] = consent.Key{Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose)}
	}
	return out, nil
}

// FindSubjectID returns the live subject with this normalized email or
// phone.
func (s *Store) FindSubjectID(ctx context.Context, id Identifier) (int64, error) {
	var sid int64
	err := s.DB.GetContext(ctx, &sid, `SELECT id FROM subjects WHERE ($1 <> '' AND email = $1) OR ($2 <> '' AND phone = $2)
		ORDER BY id LIMIT 1`, id.Email, id.Phone)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return sid, err
}

// RecordInbound remembers that inbound event inboundID named subjectID.
func RecordInbound(ctx context.Context, tx *sqlx.Tx, subjectID, inboundID int64) error {
	if inboundID <= 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO subject_inbound (subject_id, inbound_event_id) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, subjectID, inboundID)
	return err
}

// LockIdentities takes, for the rest of tx, a Postgres advisory lock per
// identity of subs (keyed hash, in sorted order): reconciliation and erasure
// of the same person run one after the other, never interleaved.
func LockIdentities(ctx context.Context, tx *sqlx.Tx, key []byte, subs map[string]consent.Subject) error {
	var locks []int64
	for _, sub := range subs {
		for _, h := range IdentityHashes(key, sub) {
			locks = append(locks, int64(binary.BigEndian.Uint64(h[:8])))
		}
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	for _, l := range locks {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, l); err != nil {
			return fmt.Errorf("store: identity lock: %w", err)
		}
	}
	return nil
}

// LiveSubject reports whether a subject that is not erased holds sub's
// email or phone.
func LiveSubject(ctx context.Context, tx *sqlx.Tx, sub consent.Subject) (bool, error) {
	var n int
	err := tx.GetContext(ctx, &n, `SELECT count(*) FROM subjects WHERE erased_at IS NULL AND
		(($1 <> '' AND email = $1) OR ($2 <> '' AND phone = $2))`, sub.Email, sub.Phone)
	return n > 0, err
}

// PeekIdentity reads a live subject's identifiers without locking.
func PeekIdentity(ctx context.Context, tx *sqlx.Tx, subjectID int64) (consent.Subject, error) {
	var r struct {
		Email sql.NullString `db:"email"`
		Phone sql.NullString `db:"phone"`
	}
	err := tx.GetContext(ctx, &r, `SELECT email, phone FROM subjects WHERE id = $1 AND erased_at IS NULL`, subjectID)
	if errors.Is(err, sql.ErrNoRows) {
		return consent.Subject{}, ErrNotFound
	}
	return consent.Subject{Email: r.Email.String, Phone: r.Phone.String}, err
}

// MailboxAliases lists the other live subjects whose address is an alias
// of email's mailbox (consent.MailboxKey).
func MailboxAliases(ctx context.Context, tx *sqlx.Tx, subjectID int64, email string) ([]int64, error) {
	if email == "" {
		return nil, nil
	}
	var ids []int64
	err := tx.SelectContext(ctx, &ids, `SELECT id FROM subjects WHERE mailbox_key = $1 AND id <> $2 AND erased_at IS NULL ORDER BY id`,
		consent.MailboxKey(email), subjectID)
	return ids, err
}

// LinkSubjects records that a and b are one person (both directions).
func LinkSubjects(ctx context.Context, tx *sqlx.Tx, a, b int64) error {
	if a == b {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO subject_links (subject_id, linked_subject_id) VALUES ($1, $2), ($2, $1)
		ON CONFLICT DO NOTHING`, a, b)
	return err
}

// LinkedSubjects lists the live subjects linked to subjectID.
func LinkedSubjects(ctx context.Context, tx *sqlx.Tx, subjectID int64) ([]int64, error) {
	var ids []int64
	err := tx.SelectContext(ctx, &ids, `SELECT l.linked_subject_id FROM subject_links l JOIN subjects s ON s.id = l.linked_subject_id
		WHERE l.subject_id = $1 AND s.erased_at IS NULL ORDER BY 1`, subjectID)
	return ids, err
}
