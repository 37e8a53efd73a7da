package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
)

// identityKeyName is the service_settings row holding the identity hash key.
const identityKeyName = "identity_hash_key"

// IdentityKey returns the key identifiers are hashed with (HMAC-SHA256) when
// a subject is erased. It is generated on first use (32 random bytes) and
// kept in service_settings, so every process of a deployment shares it.
func (s *Store) IdentityKey(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.identityKey != nil {
		return s.identityKey, nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := s.DB.ExecContext(ctx, `INSERT INTO service_settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, identityKeyName, fresh); err != nil {
		return nil, fmt.Errorf("store: identity key: %w", err)
	}
	var key []byte
	if err := s.DB.GetContext(ctx, &key, `SELECT value FROM service_settings WHERE name = $1`, identityKeyName); err != nil {
		return nil, fmt.Errorf("store: identity key: %w", err)
	}
	s.identityKey = key
	return key, nil
}

// IdentityHashes returns the keyed hashes that stand for a subject's
// identifiers after erasure: the normalized email, its mailbox key (Gmail
// aliases) and the phone.
func IdentityHashes(key []byte, sub consent.Subject) [][]byte {
	var out [][]byte
	add := func(kind, v string) {
		if v == "" {
			return
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(kind + ":" + v))
		out = append(out, m.Sum(nil))
	}
	add("email", sub.Email)
	if mk := consent.MailboxKey(sub.Email); mk != sub.Email {
		add("email", mk)
	}
	add("phone", sub.Phone)
	return out
}

// ErasedAt returns when an identity among hashes was erased (the latest),
// or false when none was.
func (tx *Tx) ErasedAt(ctx context.Context, hashes [][]byte) (time.Time, bool, error) {
	if len(hashes) == 0 {
		return time.Time{}, false, nil
	}
	if c := tx.batch; c != nil && allIn(hashes, func(h []byte) bool { return c.hashKnown[string(h)] }) {
		var latest time.Time
		var any bool
		for _, h := range hashes {
			if at, ok := c.erased[string(h)]; ok {
				any = true
				if at.After(latest) {
					latest = at
				}
			}
		}
		return latest, any, nil
	}
	var at sql.NullTime
	err := tx.sq.GetContext(ctx, &at, `SELECT max(erased_at) FROM erased_identities WHERE identity_hash = ANY($1)`, pq.ByteaArray(hashes))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: erased identities: %w", err)
	}
	return at.Time, at.Valid, nil
}

// RecordActivity keeps the first and last time of a contact kind.
func (tx *Tx) RecordActivity(ctx context.Context, subjectID int64, a consent.Activity) error {
	if c := tx.batch; c != nil && c.known[subjectID] {
		c.contact(subjectID, a)
		return nil
	}
	k := activityKey{subjectID, a.Brand, a.Channel, string(a.Kind)}
	return tx.writeContacts(ctx, []contactRow{{k, [2]time.Time{a.OccurredAt, a.OccurredAt}}})
}

// RecordProfile keeps what a sender said the subject is: a customer of a
// brand (since the earliest date seen) or a professional (subject-wide).
func (tx *Tx) RecordProfile(ctx context.Context, subjectID int64, p consent.ProfileFact) error {
	var err error
	switch p.Profile {
	case consent.ProfileCustomer:
		_, err = tx.sq.ExecContext(ctx, `
			INSERT INTO subject_profiles (subject_id, brand, profile, since, source) VALUES ($1, $2, 'customer', $3, $4)
			ON CONFLICT (subject_id, brand, profile) DO UPDATE SET since = least(subject_profiles.since, EXCLUDED.since)`,
			subjectID, p.Brand, p.OccurredAt, p.Source)
	case consent.ProfileProfessional:
		_, err = tx.sq.ExecContext(ctx, `UPDATE subjects SET professional = true WHERE id = $1`, subjectID)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: profile: %w", err)
	}
	return nil
}

// RecordExternalID remembers that source calls subject externalID.
func (tx *Tx) RecordExternalID(ctx context.Context, source, externalID string, subjectID int64) error {
	_, err := tx.sq.ExecContext(ctx, `INSERT INTO subject_external_ids (source, external_id, subject_id) VALUES ($1, $2, $3)
		ON CONFLICT (source, external_id) DO UPDATE SET subject_id = EXCLUDED.subject_id`, source, externalID, subjectID)
	return err
}

// SubjectByExternalID finds the subject a source calls externalID.
func (tx *Tx) SubjectByExternalID(ctx context.Context, source, externalID string) (int64, error) {
	var id int64
	err := tx.sq.GetContext(ctx, &id, `SELECT subject_id FROM subject_external_ids WHERE source = $1 AND external_id = $2`, source, externalID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}

// FirstMessageAt returns the earliest message the brand is known to have
// delivered to the subject on channel (zero when none).
func (tx *Tx) FirstMessageAt(ctx context.Context, subjectID int64, brand string, ch consent.Channel) (time.Time, error) {
	if c := tx.batch; c != nil && c.known[subjectID] {
		return c.delivered[contactKey{subjectID, brand, ch}], nil
	}
	var at sql.NullTime
	err := tx.sq.GetContext(ctx, &at, `SELECT first_at FROM subject_contacts
		WHERE subject_id = $1 AND brand = $2 AND channel = $3 AND kind = 'delivered'`, subjectID, brand, ch)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	return at.Time, err
}
