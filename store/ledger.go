package store

import (
	"context"
	"database/sql"
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
	ids, created, err := tx.EnsureSubjects(ctx, []consent.Subject{sub})
	if err != nil {
		return 0, false, err
	}
	return ids[0], created[0], nil
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
	var id int64
	if err := tx.sq.GetContext(ctx, &id, `SELECT nextval('consent_events_id_seq')`); err != nil {
		return 0, fmt.Errorf("store: append ledger: %w", err)
	}
	n, err := tx.insertLedger(ctx, []int64{id}, []LedgerEntry{e})
	if err != nil || n == 0 {
		return 0, err
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
	k := stateKey{subjectID, consent.Key{Channel: sig.Channel, Brand: sig.Brand, Purpose: sig.Purpose}}
	return tx.writeStates(ctx, []stateRow{{k, pendingState{event: eventID, sig: sig}}})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
