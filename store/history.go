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

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/progress"
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

// LedgerOf returns the ledger rows of subjects (the members of one
// identity set), oldest first (by ledger id).
func (s *Store) LedgerOf(ctx context.Context, subjectIDs []int64) ([]LedgerRow, error) {
	var rows []LedgerRow
	err := s.DB.SelectContext(ctx, &rows, `SELECT `+ledgerCols+` FROM consent_events WHERE subject_id = ANY($1) ORDER BY id`, pq.Array(subjectIDs))
	if err != nil {
		return nil, fmt.Errorf("store: ledger: %w", err)
	}
	return rows, nil
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
// appended, removed or rewritten by someone with write access. With a
// progress reporter in ctx (internal/progress) the rows are counted first
// and each row checked is reported (phase "ledger rows").
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

	total := int64(-1)
	if progress.Enabled(ctx) {
		// Only for the reporter: a count is one more scan of the ledger.
		if err := s.DB.GetContext(ctx, &total, `SELECT count(*) FROM consent_events`); err != nil {
			return 0, nil, err
		}
		progress.Report(ctx, "ledger rows", 0, total)
	}
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
		progress.Report(ctx, "ledger rows", int64(n), total)
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
	ID             int64  `db:"id" json:"id"`
	Destination    string `db:"destination" json:"destination"`
	ConsentEventID int64  `db:"consent_event_id" json:"consent_event_id"`
	// Action is "suppress" or "lift" (a suppression lifted after a new
	// valid express opt-in, destinations[].lift: on_new_opt_in).
	Action  string `db:"action" json:"action"`
	Channel string `db:"channel" json:"channel"`
	Brand   string `db:"brand" json:"brand"`
	Purpose string `db:"purpose" json:"purpose"`
	// Email or Phone is the literal address or number pushed (empty once
	// an erasure removed it).
	Email     *string    `db:"email" json:"email,omitempty"`
	Phone     *string    `db:"phone" json:"phone,omitempty"`
	Status    string     `db:"status" json:"status"`
	Attempts  int        `db:"attempts" json:"attempts"`
	CreatedAt time.Time  `db:"created_at" json:"created_at"`
	SentAt    *time.Time `db:"sent_at" json:"sent_at"`
	Receipt   *string    `db:"receipt" json:"receipt"`
	LastError *string    `db:"last_error" json:"last_error,omitempty"`
	// VerifiedAt is when the destination read back as holding it (null:
	// not yet, or the destination cannot be read back).
	VerifiedAt *time.Time `db:"verified_at" json:"verified_at"`
	// Mismatches counts read-backs and drift checks that found it missing
	// (each re-pushed it).
	Mismatches int `db:"mismatches" json:"mismatches"`
	// Checks are the read-backs and drift findings after the push, oldest
	// first: [{"kind": "verified"|"mismatch"|"unverified"|"drift", "at":
	// RFC 3339, "receipt": the provider's answer, addresses masked}].
	Checks json.RawMessage `db:"checks" json:"checks"`
}

// ReceiptsOf returns the suppressions of subjects (the members of one
// identity set) with the providers' answers: those their withdrawals
// caused and those that carry one of their addresses, oldest first.
func (s *Store) ReceiptsOf(ctx context.Context, subjectIDs []int64) ([]Receipt, error) {
	var out []Receipt
	err := s.DB.SelectContext(ctx, &out, `SELECT id, destination, consent_event_id, action, channel, brand, purpose, email, phone, status, attempts,
		created_at, sent_at, receipt, last_error, verified_at, mismatches,
		coalesce((SELECT json_agg(json_build_object('kind', d.kind, 'at', d.at, 'receipt', d.receipt) ORDER BY d.id)
			FROM destination_events d WHERE d.outbox_id = o.id), '[]') AS checks
		FROM suppression_outbox o
		WHERE subject_id = ANY($1) OR target_subject_id = ANY($1) ORDER BY id`, pq.Array(subjectIDs))
	if err != nil {
		return nil, fmt.Errorf("store: receipts: %w", err)
	}
	return out, nil
}

// ExpiringCandidates lists, by subject id after afterID (at most limit),
// the live subjects that hold a permission that can lapse: a granted state
// or a customer profile. It returns their identifiers and the last id
// (the next page's afterID); none at the end.
func (s *Store) ExpiringCandidates(ctx context.Context, afterID int64, limit int) ([]Identifier, int64, error) {
	var rows []struct {
		ID    int64  `db:"id"`
		Email string `db:"email"`
		Phone string `db:"phone"`
	}
	err := s.DB.SelectContext(ctx, &rows, `SELECT id, coalesce(email, '') AS email, coalesce(phone, '') AS phone FROM subjects s
		WHERE id > $1 AND erased_at IS NULL AND (
			EXISTS (SELECT 1 FROM consent_states cs WHERE cs.subject_id = s.id AND cs.status = 'granted')
			OR EXISTS (SELECT 1 FROM subject_profiles sp WHERE sp.subject_id = s.id AND sp.profile = 'customer'))
		ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("store: expiring candidates: %w", err)
	}
	out := make([]Identifier, len(rows))
	var last int64
	for i, r := range rows {
		out[i], last = Identifier{Email: r.Email, Phone: r.Phone}, r.ID
	}
	return out, last, nil
}
