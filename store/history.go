package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/consentsync/consentsync/consent"
)

// LedgerRow is one ledger row as stored.
type LedgerRow struct {
	ID           int64         `db:"id"`
	SubjectID    int64         `db:"subject_id"`
	InboundID    sql.NullInt64 `db:"inbound_event_id"`
	DedupKey     []byte        `db:"dedup_key"`
	Channel      string        `db:"channel"`
	Brand        string        `db:"brand"`
	Purpose      string        `db:"purpose"`
	Status       string        `db:"status"`
	OccurredAt   time.Time     `db:"occurred_at"`
	ReceivedAt   time.Time     `db:"received_at"`
	Source       string        `db:"source"`
	Valid        bool          `db:"valid"`
	Problems     []byte        `db:"problems"`
	Outcome      string        `db:"outcome"`
	Evidence     []byte        `db:"evidence"`
	EvidenceHash []byte        `db:"evidence_hash"`
	Quality      []byte        `db:"quality"` // JSON, nil when not assessed
	PrevHash     []byte        `db:"prev_hash"`
	Hash         []byte        `db:"hash"`
}

const ledgerCols = `id, subject_id, inbound_event_id, dedup_key, channel, brand, purpose, status, occurred_at, received_at,
	source, valid, problems, outcome, evidence, evidence_hash, quality, prev_hash, hash`

// Ledger returns a subject's ledger rows, oldest first.
func (s *Store) Ledger(ctx context.Context, subjectID int64) ([]LedgerRow, error) {
	var rows []LedgerRow
	err := s.DB.SelectContext(ctx, &rows, `SELECT `+ledgerCols+` FROM consent_events WHERE subject_id = $1 ORDER BY id`, subjectID)
	return rows, err
}

// Record rebuilds the hashed part of a stored row.
func (r LedgerRow) Record() consent.LedgerRecord {
	var problems []string
	_ = json.Unmarshal(r.Problems, &problems)
	if problems == nil {
		problems = []string{}
	}
	return consent.LedgerRecord{
		SubjectID: r.SubjectID, InboundID: r.InboundID.Int64, FactKey: hex.EncodeToString(r.DedupKey),
		Source: r.Source, Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose),
		Status: consent.Status(r.Status), OccurredAt: consent.CanonicalTime(r.OccurredAt), Valid: r.Valid,
		Problems: problems, Outcome: r.Outcome, EvidenceHash: hex.EncodeToString(r.EvidenceHash),
	}
}

// Break is a place where the ledger no longer proves what it says.
type Break struct {
	SubjectID int64  `json:"subject_id"`
	EventID   int64  `json:"event_id"`
	Problem   string `json:"problem"`
}

// VerifyLedger recomputes every subject's hash chain (consent.ChainHash)
// and every kept evidence's hash, calling report for each break: a row
// whose content no longer matches its hash, a prev_hash that is not the
// previous row's hash (a row removed or reordered), or evidence changed. It
// returns the number of rows checked. Erased evidence ('{}' on an erased
// subject) is not a break: the chain covers its hash.
func (s *Store) VerifyLedger(ctx context.Context, report func(Break)) (int, error) {
	rows, err := s.DB.QueryxContext(ctx, `SELECT `+ledgerCols+`, (SELECT erased_at IS NOT NULL FROM subjects WHERE id = subject_id) AS erased
		FROM consent_events ORDER BY subject_id, id`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	var subject int64 = -1
	var prev []byte
	for rows.Next() {
		var r struct {
			LedgerRow
			Erased bool `db:"erased"`
		}
		if err := rows.StructScan(&r); err != nil {
			return n, err
		}
		n++
		if r.SubjectID != subject {
			subject, prev = r.SubjectID, nil
		}
		if !bytes.Equal(r.PrevHash, prev) {
			report(Break{r.SubjectID, r.ID, "prev_hash does not match the previous row's hash (a row was removed, inserted or changed)"})
		}
		if want := consent.ChainHash(r.PrevHash, r.Record()); !bytes.Equal(want, r.Hash) {
			report(Break{r.SubjectID, r.ID, "row content does not match its hash"})
		}
		if !(r.Erased && string(r.Evidence) == "{}") {
			var ev consent.Evidence
			if err := json.Unmarshal(r.Evidence, &ev); err != nil || !bytes.Equal(consent.EvidenceHash(ev), r.EvidenceHash) {
				report(Break{r.SubjectID, r.ID, "evidence does not match its hash"})
			}
		}
		prev = r.Hash
	}
	return n, rows.Err()
}

// Receipt is a suppression's proof: where it went, when, and what the
// provider answered.
type Receipt struct {
	ID             int64      `db:"id" json:"id"`
	Destination    string     `db:"destination" json:"destination"`
	ConsentEventID int64      `db:"consent_event_id" json:"consent_event_id"`
	Channel        string     `db:"channel" json:"channel"`
	Brand          string     `db:"brand" json:"brand"`
	Purpose        string     `db:"purpose" json:"purpose"`
	Status         string     `db:"status" json:"status"`
	Attempts       int        `db:"attempts" json:"attempts"`
	CreatedAt      time.Time  `db:"created_at" json:"created_at"`
	SentAt         *time.Time `db:"sent_at" json:"sent_at"`
	Receipt        *string    `db:"receipt" json:"receipt"`
	LastError      *string    `db:"last_error" json:"last_error,omitempty"`
}

// Receipts returns a subject's suppressions with the providers' answers.
func (s *Store) Receipts(ctx context.Context, subjectID int64) ([]Receipt, error) {
	var out []Receipt
	err := s.DB.SelectContext(ctx, &out, `SELECT id, destination, consent_event_id, channel, brand, purpose, status, attempts,
		created_at, sent_at, receipt, last_error FROM suppression_outbox WHERE subject_id = $1 ORDER BY id`, subjectID)
	return out, err
}

// ExpiringRow is a consent that lapses soon.
type ExpiringRow struct {
	Email     sql.NullString `db:"email"`
	Phone     sql.NullString `db:"phone"`
	Channel   string         `db:"channel"`
	Brand     string         `db:"brand"`
	Purpose   string         `db:"purpose"`
	GrantedAt time.Time      `db:"occurred_at"`
	ExpiresAt time.Time      `db:"expires_at"`
}

// Expiring lists granted consents whose lifetime (ttl from the later of the
// grant and the last qualifying contact with the brand) ends before
// now+within, soonest first; ones already lapsed are included.
func (s *Store) Expiring(ctx context.Context, ttl, within time.Duration, now time.Time) ([]ExpiringRow, error) {
	var out []ExpiringRow
	err := s.DB.SelectContext(ctx, &out, `
		SELECT * FROM (
			SELECT s.email, s.phone, cs.channel, cs.brand, cs.purpose, cs.occurred_at,
				greatest(cs.occurred_at, coalesce(c.last_at, cs.occurred_at)) + $1 * interval '1 microsecond' AS expires_at
			FROM consent_states cs
			JOIN subjects s ON s.id = cs.subject_id AND s.erased_at IS NULL
			LEFT JOIN LATERAL (
				SELECT max(last_at) AS last_at FROM subject_contacts sc
				WHERE sc.subject_id = cs.subject_id AND sc.brand = cs.brand AND sc.kind = ANY($3)
			) c ON true
			WHERE cs.status = 'granted'
		) x WHERE expires_at <= $2 ORDER BY expires_at`,
		ttl.Microseconds(), now.Add(within), qualifyingKinds)
	return out, err
}
