package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/consentsync/consentsync/consent"
)

// Subject is a row of subjects.
type Subject struct {
	ID            int64          `db:"id" json:"-"`
	Email         sql.NullString `db:"email" json:"-"`
	EmailOriginal sql.NullString `db:"email_original" json:"-"`
	Phone         sql.NullString `db:"phone" json:"-"`
	Profile       string         `db:"profile" json:"profile"`
	CreatedAt     time.Time      `db:"created_at" json:"created_at"`
}

// LockSubject finds or creates the subject for sub (normalized): by email
// when it has one, else by phone. It locks
// its row for the rest of tx, so that ledger appends and state changes of one
// subject are serialized (the hash chain needs it). Callers that lock several
// subjects in one tx must do so in a fixed order (sorted keys) to avoid
// deadlocks.
func (tx *Tx) LockSubject(ctx context.Context, sub consent.Subject) (int64, error) {
	id, _, err := tx.EnsureSubject(ctx, sub)
	return id, err
}

// EnsureSubject is LockSubject that also reports whether the subject was
// created by this call (a new literal address or number).
func (tx *Tx) EnsureSubject(ctx context.Context, sub consent.Subject) (int64, bool, error) {
	if c := tx.batch; c != nil {
		if id, ok := c.cachedSubject(sub); ok {
			return id, false, nil // locked by Preload
		}
	}
	var r struct {
		ID       int64 `db:"id"`
		Inserted bool  `db:"inserted"`
	}
	var err error
	switch {
	case sub.Email != "":
		err = tx.sq.QueryRowxContext(ctx, `
			INSERT INTO subjects (email, email_original, mailbox_key) VALUES ($1, $2, $3)
			ON CONFLICT (email) DO UPDATE SET updated_at = now()
			RETURNING id, (xmax = 0) AS inserted`, sub.Email, sub.EmailOriginal, consent.MailboxKey(sub.Email)).StructScan(&r)
	case sub.Phone != "":
		err = tx.sq.QueryRowxContext(ctx, `
			INSERT INTO subjects (phone) VALUES ($1)
			ON CONFLICT (phone) DO UPDATE SET updated_at = now()
			RETURNING id, (xmax = 0) AS inserted`, sub.Phone).StructScan(&r)
	default:
		return 0, false, consent.ErrNoSubject
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: subject: %w", err)
	}
	// ON CONFLICT DO UPDATE has locked an existing row (FOR NO KEY UPDATE:
	// no key column changes); a new row is this transaction's alone.
	if c := tx.batch; c != nil && r.Inserted {
		c.created(r.ID, sub)
	}
	return r.ID, r.Inserted, nil
}

// State returns the current state of (subject, channel, brand, purpose), or
// nil when there is none.
func (tx *Tx) State(ctx context.Context, subjectID int64, ch consent.Channel, brand string, p consent.Purpose) (*consent.State, error) {
	if c := tx.batch; c != nil && c.known[subjectID] {
		st, ok := c.states[stateKey{subjectID, consent.Key{Channel: ch, Brand: brand, Purpose: p}}]
		if !ok {
			return nil, nil
		}
		return &st, nil
	}
	var st consent.State
	var status string
	err := tx.sq.QueryRowxContext(ctx, `SELECT status, occurred_at, source FROM consent_states
		WHERE subject_id = $1 AND channel = $2 AND brand = $3 AND purpose = $4`, subjectID, ch, brand, p).
		Scan(&status, &st.OccurredAt, &st.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: state: %w", err)
	}
	st.Status = consent.Status(status)
	st.OccurredAt = st.OccurredAt.UTC()
	return &st, nil
}

// LedgerEntry is one row to append to consent_events.
type LedgerEntry struct {
	SubjectID int64
	InboundID int64
	DedupKey  []byte
	Signal    consent.Signal
	Quality   consent.Quality
	// RecordedAt is stored as received_at (the hash covers it).
	RecordedAt time.Time
	Outcome    string
	PrevHash   []byte
	Hash       []byte
}

// LastHash returns the hash of the subject's newest ledger row (nil for the
// first row).
func (tx *Tx) LastHash(ctx context.Context, subjectID int64) ([]byte, error) {
	if c := tx.batch; c != nil && c.known[subjectID] {
		return c.head[subjectID], nil
	}
	var h []byte
	err := tx.sq.QueryRowxContext(ctx, `SELECT hash FROM consent_events WHERE subject_id = $1 ORDER BY id DESC LIMIT 1`, subjectID).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return h, err
}

// AppendLedger inserts e unless the same fact (source, dedup key) is already
// in the ledger. It returns the new row id, or 0 when it was a duplicate.
func (tx *Tx) AppendLedger(ctx context.Context, e LedgerEntry) (int64, error) {
	if c := tx.batch; c != nil && c.known[e.SubjectID] {
		if have, checked := c.facts[factID(e.Signal.Source, e.DedupKey)]; checked && (have || len(c.ids) > 0) {
			if have {
				return 0, nil
			}
			// Appended at Flush, with an id drawn for the batch: ids follow
			// the order of appends, as the chain does.
			id := c.ids[0]
			c.ids = c.ids[1:]
			c.facts[factID(e.Signal.Source, e.DedupKey)] = true
			c.ledger, c.ledgerIDs = append(c.ledger, e), append(c.ledgerIDs, id)
			c.appendedIDs[id] = true
			c.appended(e)
			return id, nil
		}
		// Not foreseen by Preload: appended now, after what waits.
		if err := tx.Flush(ctx); err != nil {
			return 0, err
		}
	}
	ev, err := json.Marshal(e.Signal.Evidence)
	if err != nil {
		return 0, err
	}
	problems, err := json.Marshal(nonNil(e.Signal.Problems))
	if err != nil {
		return 0, err
	}
	var quality []byte
	if e.Quality != nil {
		if quality, err = json.Marshal(e.Quality); err != nil {
			return 0, err
		}
	}
	var inbound sql.NullInt64
	if e.InboundID > 0 {
		inbound = sql.NullInt64{Int64: e.InboundID, Valid: true}
	}
	var id int64
	err = tx.sq.QueryRowxContext(ctx, `
		INSERT INTO consent_events (subject_id, inbound_event_id, dedup_key, channel, brand, purpose, status,
			occurred_at, source, valid, problems, outcome, evidence, evidence_hash, prev_hash, hash, quality, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		ON CONFLICT (source, dedup_key) DO NOTHING
		RETURNING id`,
		e.SubjectID, inbound, e.DedupKey, e.Signal.Channel, e.Signal.Brand, e.Signal.Purpose, e.Signal.Status,
		e.Signal.OccurredAt, e.Signal.Source, e.Signal.Valid(), problems, e.Outcome, ev, consent.EvidenceHash(e.Signal.Evidence), e.PrevHash, e.Hash, quality, e.RecordedAt).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: append ledger: %w", err)
	}
	if c := tx.batch; c != nil && c.known[e.SubjectID] {
		c.appended(e)
	}
	return id, nil
}

// PutState makes the signal recorded as ledger row eventID the current state.
func (tx *Tx) PutState(ctx context.Context, subjectID, eventID int64, sig consent.Signal) error {
	if c := tx.batch; c != nil && c.known[subjectID] {
		k := stateKey{subjectID, consent.Key{Channel: sig.Channel, Brand: sig.Brand, Purpose: sig.Purpose}}
		c.states[k] = consent.State{Status: sig.Status, OccurredAt: sig.OccurredAt.UTC(), Source: sig.Source}
		c.putStates[k] = pendingState{event: eventID, sig: sig}
		return nil
	}
	_, err := tx.sq.ExecContext(ctx, `
		INSERT INTO consent_states (subject_id, channel, brand, purpose, status, occurred_at, source, event_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (subject_id, channel, brand, purpose) DO UPDATE SET
			status = EXCLUDED.status, occurred_at = EXCLUDED.occurred_at, source = EXCLUDED.source,
			event_id = EXCLUDED.event_id, updated_at = now()`,
		subjectID, sig.Channel, sig.Brand, sig.Purpose, sig.Status, sig.OccurredAt, sig.Source, eventID)
	if err != nil {
		return fmt.Errorf("store: put state: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
