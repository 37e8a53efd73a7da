package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
)

// SubjectIdentity returns a subject's identifiers, locking its row for tx.
// ErrNotFound when it does not exist or is already erased.
func (tx *Tx) SubjectIdentity(ctx context.Context, subjectID int64) (consent.Subject, error) {
	var r struct {
		Email    sql.NullString `db:"email"`
		Original sql.NullString `db:"email_original"`
		Phone    sql.NullString `db:"phone"`
		ErasedAt sql.NullTime   `db:"erased_at"`
	}
	err := tx.sq.GetContext(ctx, &r, `SELECT email, email_original, phone, erased_at FROM subjects WHERE id = $1 FOR UPDATE`, subjectID)
	if errors.Is(err, sql.ErrNoRows) || err == nil && r.ErasedAt.Valid {
		return consent.Subject{}, ErrNotFound
	}
	if err != nil {
		return consent.Subject{}, err
	}
	return consent.Subject{Email: r.Email.String, EmailOriginal: r.Original.String, Phone: r.Phone.String}, nil
}

// EraseData removes a subject's personal data inside tx (GDPR art. 17):
//   - its email and phone and its sender-side ids;
//   - the evidence of its ledger rows (the chain covers evidence by hash,
//     so it still verifies);
//   - the raw bodies, headers, notes and error texts of every inbound
//     request that named it: those its signals, contacts and profiles came
//     from, and any other request that named one of its identifiers
//     (bounces, refused re-imports; found by keyed hash, inbound_identities);
//   - the addresses of its suppressions already pushed (pending and failed
//     ones keep theirs until sent: the suppression must still reach the
//     provider) and every suppression's error text (provider answers may
//     quote the address).
//
// It keeps keyed hashes of the identifiers (see IdentityHashes) with the
// erasure time, so the person stays suppressed and a re-import of the old
// address does not resurrect consent.
func (tx *Tx) EraseData(ctx context.Context, key []byte, subjectID int64, sub consent.Subject, at time.Time) error {
	if err := tx.uncache(ctx); err != nil {
		return err
	}
	hashes := IdentityHashes(key, sub)
	for _, h := range hashes {
		if _, err := tx.sq.ExecContext(ctx, `INSERT INTO erased_identities (identity_hash, subject_id, erased_at) VALUES ($1, $2, $3)
			ON CONFLICT (identity_hash) DO UPDATE SET erased_at = greatest(erased_identities.erased_at, EXCLUDED.erased_at),
				subject_id = EXCLUDED.subject_id`, h, subjectID, at); err != nil {
			return fmt.Errorf("store: erase: %w", err)
		}
	}
	if _, err := tx.sq.ExecContext(ctx, `SET LOCAL consentsync.erasure = 'on'`); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	stmts := []string{
		`UPDATE consent_events SET evidence = '{}' WHERE subject_id = $1`,
		`UPDATE inbound_events SET body = NULL, headers = '{}', query = '', notes = NULL, error = NULL
			WHERE id IN (SELECT inbound_event_id FROM consent_events WHERE subject_id = $1 AND inbound_event_id IS NOT NULL
				UNION SELECT inbound_event_id FROM subject_inbound WHERE subject_id = $1
				UNION SELECT inbound_event_id FROM inbound_identities WHERE identity_hash = ANY($2))`,
		`UPDATE suppression_outbox SET email = CASE WHEN status = 'sent' THEN NULL ELSE email END,
			phone = CASE WHEN status = 'sent' THEN NULL ELSE phone END, last_error = NULL
			WHERE subject_id = $1 OR target_subject_id = $1`,
		`DELETE FROM subject_external_ids WHERE subject_id = $1`,
	}
	for _, q := range stmts {
		var err error
		if strings.Contains(q, "$2") {
			_, err = tx.sq.ExecContext(ctx, q, subjectID, pq.ByteaArray(hashes))
		} else {
			_, err = tx.sq.ExecContext(ctx, q, subjectID)
		}
		if err != nil {
			return fmt.Errorf("store: erase: %w", err)
		}
	}
	if _, err := tx.sq.ExecContext(ctx, `UPDATE subjects SET email = NULL, email_original = NULL, phone = NULL,
		mailbox_key = NULL, erased_at = $2, updated_at = now() WHERE id = $1`, subjectID, at); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	return nil
}

// RecordInboundIdentities remembers, by keyed hash (IdentityHashes), every
// identifier inbound request inboundID named, so that an erasure finds the
// request even when it produced no subject (a bounce, a refused re-import).
func (tx *Tx) RecordInboundIdentities(ctx context.Context, key []byte, inboundID int64, named []consent.Subject) error {
	if inboundID <= 0 || len(named) == 0 {
		return nil
	}
	var hashes [][]byte
	seen := map[string]bool{}
	for _, sub := range named {
		for _, h := range IdentityHashes(key, sub) {
			if !seen[string(h)] {
				seen[string(h)] = true
				hashes = append(hashes, h)
			}
		}
	}
	if len(hashes) == 0 {
		return nil
	}
	if c := tx.batch; c != nil {
		for _, h := range hashes {
			if c.identities[string(h)] == nil {
				c.identities[string(h)] = map[int64]bool{}
			}
			c.identities[string(h)][inboundID] = true
		}
		return nil
	}
	rows := make([]identityRow, len(hashes))
	for i, h := range hashes {
		rows[i] = identityRow{h, inboundID}
	}
	return tx.writeIdentities(ctx, rows)
}

// ForgetInboundBody empties an inbound request's raw body, headers and
// query inside tx (its hash stays): a request that tried to bring back an
// erased identity must not keep the address in clear.
func (tx *Tx) ForgetInboundBody(ctx context.Context, inboundID int64) error {
	_, err := tx.sq.ExecContext(ctx, `UPDATE inbound_events SET body = NULL, headers = '{}', query = '' WHERE id = $1`, inboundID)
	if err != nil {
		return fmt.Errorf("store: forget inbound body: %w", err)
	}
	return nil
}

// StateKeys lists the keys a subject has a state for.
func (tx *Tx) StateKeys(ctx context.Context, subjectID int64) ([]consent.Key, error) {
	if err := tx.Flush(ctx); err != nil {
		return nil, err
	}
	var rows []struct {
		Channel string `db:"channel"`
		Brand   string `db:"brand"`
		Purpose string `db:"purpose"`
	}
	if err := tx.sq.SelectContext(ctx, &rows, `SELECT channel, brand, purpose FROM consent_states WHERE subject_id = $1`, subjectID); err != nil {
		return nil, err
	}
	out := make([]consent.Key, len(rows))
	for i, r := range rows {
		out[i] = consent.Key{Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose)}
	}
	return out, nil
}

// RecordInbound remembers that inbound event inboundID named subjectID.
func (tx *Tx) RecordInbound(ctx context.Context, subjectID, inboundID int64) error {
	if inboundID <= 0 {
		return nil
	}
	if c := tx.batch; c != nil {
		c.subjectRequests[[2]int64{subjectID, inboundID}] = true
		return nil
	}
	return tx.writeSubjectRequests(ctx, [][2]int64{{subjectID, inboundID}})
}

// LockIdentities takes, for the rest of tx, a lock on every identity of
// subs (keyed hash): reconciliation and erasure of the same person run one
// after the other, never interleaved. The locks are row locks on
// identity_locks (a row per identity ever locked, inserted on first use),
// not advisory locks: row locks live in the rows, not in the server's
// shared lock table (max_locks_per_transaction × max_connections entries
// for every database of the server), so a 10,000-event import takes
// 10,000 of them without exhausting it, and batches naming different
// people never wait for each other. Two statements, in ascending key
// order (inserts, then locks), so that two batches cannot wait for each
// other in a cycle. An erasure takes its set's locks in a second call,
// later in its transaction; a rare deadlock there is detected by Postgres
// and the transaction retried.
func (tx *Tx) LockIdentities(ctx context.Context, key []byte, subs map[string]consent.Subject) error {
	var keys []int64
	for _, sub := range subs {
		for _, h := range IdentityHashes(key, sub) {
			keys = append(keys, int64(binary.BigEndian.Uint64(h[:8])))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// A key inserted here is this transaction's until it commits: another
	// inserting it waits, as for a lock.
	if _, err := tx.sq.ExecContext(ctx, `INSERT INTO identity_locks (lock_key) SELECT unnest($1::bigint[])
		ON CONFLICT DO NOTHING`, pq.Array(keys)); err != nil {
		return fmt.Errorf("store: identity lock: %w", err)
	}
	if _, err := tx.sq.ExecContext(ctx, `SELECT 1 FROM identity_locks WHERE lock_key = ANY($1)
		ORDER BY lock_key FOR NO KEY UPDATE`, pq.Array(keys)); err != nil {
		return fmt.Errorf("store: identity lock: %w", err)
	}
	return nil
}

// LiveSubject reports whether a subject that is not erased holds sub's
// email or phone.
func (tx *Tx) LiveSubject(ctx context.Context, sub consent.Subject) (bool, error) {
	var n int
	err := tx.sq.GetContext(ctx, &n, `SELECT count(*) FROM subjects WHERE erased_at IS NULL AND
		(($1 <> '' AND email = $1) OR ($2 <> '' AND phone = $2))`, sub.Email, sub.Phone)
	return n > 0, err
}

// PeekIdentity reads a live subject's identifiers without locking.
func (tx *Tx) PeekIdentity(ctx context.Context, subjectID int64) (consent.Subject, error) {
	var r struct {
		Email sql.NullString `db:"email"`
		Phone sql.NullString `db:"phone"`
	}
	err := tx.sq.GetContext(ctx, &r, `SELECT email, phone FROM subjects WHERE id = $1 AND erased_at IS NULL`, subjectID)
	if errors.Is(err, sql.ErrNoRows) {
		return consent.Subject{}, ErrNotFound
	}
	return consent.Subject{Email: r.Email.String, Phone: r.Phone.String}, err
}

// LinkSubjects records that a and b are one person (both directions). It
// reports whether the link is new.
func (tx *Tx) LinkSubjects(ctx context.Context, a, b int64) (bool, error) {
	if a == b {
		return false, nil
	}
	res, err := tx.sq.ExecContext(ctx, `INSERT INTO subject_links (subject_id, linked_subject_id) VALUES ($1, $2), ($2, $1)
		ON CONFLICT DO NOTHING`, a, b)
	if err != nil {
		return false, fmt.Errorf("store: link subjects: %w", err)
	}
	n, _ := res.RowsAffected()
	if c := tx.batch; c != nil {
		c.linked[a], c.linked[b] = true, true
	}
	return n > 0, nil
}
