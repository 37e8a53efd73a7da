package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	// InboundSHA256 is the stored hash of the raw request (nil when none).
	InboundSHA256 []byte `db:"inbound_sha256"`
}

const ledgerCols = `id, subject_id, inbound_event_id, dedup_key, channel, brand, purpose, status, occurred_at, received_at,
	source, valid, problems, outcome, evidence, evidence_hash, quality, prev_hash, hash,
	(SELECT body_sha256 FROM inbound_events i WHERE i.id = inbound_event_id) AS inbound_sha256`

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
	var quality consent.Quality
	if len(r.Quality) > 0 {
		_ = json.Unmarshal(r.Quality, &quality)
	}
	return consent.LedgerRecord{
		SubjectID: r.SubjectID, InboundID: r.InboundID.Int64, FactKey: hex.EncodeToString(r.DedupKey),
		Source: r.Source, Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose),
		Status: consent.Status(r.Status), OccurredAt: consent.CanonicalTime(r.OccurredAt), RecordedAt: consent.CanonicalTime(r.ReceivedAt), Valid: r.Valid,
		Problems: problems, Outcome: r.Outcome, Quality: quality, InboundSHA256: hex.EncodeToString(r.InboundSHA256),
		EvidenceHash: hex.EncodeToString(r.EvidenceHash),
	}
}

// Break is a place where the ledger no longer proves what it says.
type Break struct {
	SubjectID int64  `json:"subject_id"`
	EventID   int64  `json:"event_id"`
	Problem   string `json:"problem"`
}

// VerifyLedger checks that the ledger still proves what it says, calling
// report for each break:
//   - each row's content against its hash (consent.ChainHash), and its
//     prev_hash against the previous row's hash (a row removed, inserted or
//     reordered);
//   - kept evidence against its hash (erased evidence, '{}' on an erased
//     subject, is not a break: the chain covers its hash);
//   - each raw request still stored against the hash the chain covers;
//   - each current state (consent_states) against the state the subject's
//     ledger establishes (consent.Supersedes over its valid rows).
//
// It returns the number of rows checked and the ledger root: sha256 over
// every subject's id and newest hash, in subject order. Keep the root
// outside the database (a ticket, a log service): a later run with a
// different root while no signal arrived in between means rows were
// appended, removed or rewritten by someone with write access.
func (s *Store) VerifyLedger(ctx context.Context, report func(Break)) (int, []byte, error) {
	type stateKey struct {
		subject int64
		key     consent.Key
	}
	type stateVal struct {
		status string
		at     time.Time
	}
	stored := map[stateKey]stateVal{}
	srows, err := s.DB.QueryxContext(ctx, `SELECT subject_id, channel, brand, purpose, status, occurred_at FROM consent_states`)
	if err != nil {
		return 0, nil, err
	}
	for srows.Next() {
		var k stateKey
		var v stateVal
		var ch, pu string
		if err := srows.Scan(&k.subject, &ch, &k.key.Brand, &pu, &v.status, &v.at); err != nil {
			srows.Close()
			return 0, nil, err
		}
		k.key.Channel, k.key.Purpose = consent.Channel(ch), consent.Purpose(pu)
		stored[k] = v
	}
	srows.Close()

	rows, err := s.DB.QueryxContext(ctx, `SELECT `+ledgerCols+`, (SELECT erased_at IS NOT NULL FROM subjects WHERE id = subject_id) AS erased
		FROM consent_events ORDER BY subject_id, id`)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	root := sha256.New()
	n := 0
	var subject int64 = -1
	var prev []byte
	expected := map[consent.Key]stateVal{}
	lastID := map[consent.Key]int64{}
	flush := func() {
		if subject < 0 {
			return
		}
		var id [8]byte
		binary.BigEndian.PutUint64(id[:], uint64(subject))
		root.Write(id[:])
		root.Write(prev)
		for k, want := range expected {
			got, ok := stored[stateKey{subject, k}]
			if !ok || got.status != want.status || !got.at.Equal(want.at) {
				report(Break{subject, lastID[k], fmt.Sprintf("current state of %s/%s/%s is not what the ledger establishes (%s)", k.Brand, k.Channel, k.Purpose, want.status)})
			}
			delete(stored, stateKey{subject, k})
		}
	}
	for rows.Next() {
		var r struct {
			LedgerRow
			Erased bool `db:"erased"`
		}
		if err := rows.StructScan(&r); err != nil {
			return n, nil, err
		}
		n++
		if r.SubjectID != subject {
			flush()
			subject, prev = r.SubjectID, nil
			expected, lastID = map[consent.Key]stateVal{}, map[consent.Key]int64{}
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
		if r.Valid || r.Status == string(consent.StatusWithdrawn) {
			k := consent.Key{Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose)}
			cur, ok := expected[k]
			if !ok || consent.Supersedes(r.OccurredAt, consent.Status(r.Status), cur.at, consent.Status(cur.status)) {
				expected[k], lastID[k] = stateVal{r.Status, r.OccurredAt}, r.ID
			}
		}
		prev = r.Hash
	}
	if err := rows.Err(); err != nil {
		return n, nil, err
	}
	flush()
	for k := range stored {
		report(Break{k.subject, 0, fmt.Sprintf("current state of %s/%s/%s has no ledger row behind it", k.key.Brand, k.key.Channel, k.key.Purpose)})
	}
	var bad []int64
	if err := s.DB.SelectContext(ctx, &bad, `SELECT id FROM inbound_events WHERE body IS NOT NULL AND sha256(body) <> body_sha256 ORDER BY id`); err != nil {
		return n, nil, err
	}
	for _, id := range bad {
		report(Break{0, 0, fmt.Sprintf("raw request %d does not match the hash the ledger covers", id)})
	}
	return n, root.Sum(nil), nil
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
