package consent

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
)

// TimePrecision is the resolution consentsync keeps times at: Postgres
// timestamptz stores microseconds, and the ledger hash must be recomputable
// from what was stored.
const TimePrecision = time.Microsecond

// CanonicalTime returns t in UTC truncated to TimePrecision.
func CanonicalTime(t time.Time) time.Time { return t.UTC().Truncate(TimePrecision) }

// FactKey identifies a consent fact independently of how often or through
// which delivery it arrived: sha256 over subject key, channel, brand,
// purpose, status and occurred_at (µs, UTC). The ledger keeps one row per
// (source, FactKey), so a sender's retries and duplicates (SendGrid averages
// three copies) append nothing.
func FactKey(sig Signal) []byte {
	h := sha256.New()
	for _, s := range []string{sig.Subject.Key(), string(sig.Channel), sig.Brand, string(sig.Purpose), string(sig.Status)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(CanonicalTime(sig.OccurredAt).UnixMicro()))
	h.Write(ts[:])
	return h.Sum(nil)
}

// LedgerRecord is the content of a ledger row that its hash covers.
type LedgerRecord struct {
	SubjectID  int64     `json:"subject_id"`
	InboundID  int64     `json:"inbound_id"`
	FactKey    string    `json:"fact_key"` // hex
	Source     string    `json:"source"`
	Channel    Channel   `json:"channel"`
	Brand      string    `json:"brand"`
	Purpose    Purpose   `json:"purpose"`
	Status     Status    `json:"status"`
	OccurredAt time.Time `json:"occurred_at"` // CanonicalTime
	// RecordedAt is when the row was written (CanonicalTime; stored as
	// received_at).
	RecordedAt time.Time `json:"recorded_at,omitzero"`
	Valid      bool      `json:"valid"`
	Problems   []string  `json:"problems"`
	Outcome    string    `json:"outcome"`
	// Quality is the grant's assessment (nil for withdrawals): covered, so
	// no one can turn an "unknown" into a "pass" unseen.
	Quality Quality `json:"quality,omitempty"`
	// InboundSHA256 is the hex sha256 of the raw request the signal came
	// from ("" when none): the chain vouches for the request too, and it
	// still verifies after an erasure deletes the request's body.
	InboundSHA256 string `json:"inbound_sha256,omitempty"`
	// EvidenceHash is EvidenceHash(evidence), hex: the chain covers the
	// evidence through its hash, so an erasure can remove the evidence
	// itself (personal data) and the chain still verifies.
	EvidenceHash string `json:"evidence_hash"`
}

// EvidenceHash is sha256 over the evidence's JSON encoding (fields in
// declaration order, times at TimePrecision).
func EvidenceHash(e Evidence) []byte {
	b, _ := json.Marshal(e) // plain fields: cannot fail
	h := sha256.Sum256(b)
	return h[:]
}

// NewLedgerRecord builds the record of sig as stored for a subject.
func NewLedgerRecord(subjectID, inboundID int64, sig Signal, outcome string) LedgerRecord {
	problems := sig.Problems
	if problems == nil {
		problems = []string{}
	}
	return LedgerRecord{
		SubjectID: subjectID, InboundID: inboundID, FactKey: hex.EncodeToString(FactKey(sig)),
		Source: sig.Source, Channel: sig.Channel, Brand: sig.Brand, Purpose: sig.Purpose, Status: sig.Status,
		OccurredAt: CanonicalTime(sig.OccurredAt), Valid: sig.Valid(), Problems: problems, Outcome: outcome,
		EvidenceHash: hex.EncodeToString(EvidenceHash(sig.Evidence)),
	}
}

// ChainHash returns sha256(prev || JSON(rec)): each ledger row commits to
// the subject's previous row, so changing or removing any row breaks every
// hash after it (proof of consent, GDPR art. 7(1)). prev is nil for a
// subject's first row.
func ChainHash(prev []byte, rec LedgerRecord) []byte {
	b, _ := json.Marshal(rec) // a struct of plain fields: cannot fail
	h := sha256.New()
	h.Write(prev)
	h.Write(b)
	return h.Sum(nil)
}
