package service

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// HistoryEntry is one ledger row as proof of consent.
type HistoryEntry struct {
	ID         int64           `json:"id"`
	SubjectID  int64           `json:"subject_id"`
	InboundID  *int64          `json:"inbound_id"`
	OccurredAt time.Time       `json:"occurred_at"`
	ReceivedAt time.Time       `json:"received_at"`
	Channel    string          `json:"channel"`
	Brand      string          `json:"brand"`
	Purpose    string          `json:"purpose"`
	Status     string          `json:"status"`
	Source     string          `json:"source"`
	Valid      bool            `json:"valid"`
	Problems   json.RawMessage `json:"problems"`
	Outcome    string          `json:"outcome"`
	Quality    json.RawMessage `json:"quality"`
	Evidence   json.RawMessage `json:"evidence"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// History is a person's proof: every member's ledger rows (oldest first by
// ledger id), a consent receipt per valid grant, and the suppressions
// pushed with the providers' answers.
type History struct {
	// SubjectID is the set's oldest member; SubjectIDs every member.
	SubjectID       int64            `json:"subject_id"`
	SubjectIDs      []int64          `json:"subject_ids"`
	Events          []HistoryEntry   `json:"events"`
	ConsentReceipts []map[string]any `json:"consent_receipts"`
	Suppressions    []store.Receipt  `json:"suppressions"`
}

// History returns the ledger of the person raw names. Errors:
// ErrInvalidIdentifier, ErrUnknownSubject, ErrErased.
func (s *Service) History(ctx context.Context, raw string) (*History, error) {
	p, err := s.person(ctx, raw, nil)
	if err != nil {
		return nil, err
	}
	if len(p.Members) == 0 {
		return nil, ErrErased
	}
	ids := p.SubjectIDs()
	rows, err := s.Store.LedgerOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	receipts, err := s.Store.ReceiptsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	h := &History{SubjectID: ids[0], SubjectIDs: ids, Events: make([]HistoryEntry, len(rows)),
		ConsentReceipts: []map[string]any{}, Suppressions: []store.Receipt{}}
	if receipts != nil {
		h.Suppressions = receipts
	}
	for i, e := range rows {
		he := HistoryEntry{ID: e.ID, SubjectID: e.SubjectID, OccurredAt: e.OccurredAt.UTC(), ReceivedAt: e.ReceivedAt.UTC(), Channel: e.Channel,
			Brand: e.Brand, Purpose: e.Purpose, Status: e.Status, Source: e.Source, Valid: e.Valid, Problems: e.Problems,
			Outcome: e.Outcome, Quality: e.Quality, Evidence: e.Evidence, PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
		if e.InboundID.Valid {
			v := e.InboundID.Int64
			he.InboundID = &v
		}
		if len(he.Quality) == 0 {
			he.Quality = json.RawMessage("null")
		}
		h.Events[i] = he
		if e.Status == string(consent.StatusGranted) && e.Valid {
			h.ConsentReceipts = append(h.ConsentReceipts, kantaraReceipt(e))
		}
	}
	return h, nil
}

// kantaraReceipt renders a grant with the field names of the Kantara
// Initiative Consent Receipt Specification v1.1
// (https://kantarainitiative.org/download/7902/).
func kantaraReceipt(e store.LedgerRow) map[string]any {
	var ev consent.Evidence
	_ = json.Unmarshal(e.Evidence, &ev)
	method := "web form"
	switch {
	case ev.ConfirmedAt != nil:
		method = "double opt-in confirmation"
	case ev.Checkbox == "" && ev.OptInLevel != "":
		method = "provider subscription (" + ev.OptInLevel + ")"
	}
	category := "marketing"
	if consent.Purpose(e.Purpose).IsCookies() {
		category = "cookies"
	}
	purpose := map[string]any{
		"purpose":              e.Purpose + " by " + e.Channel,
		"purposeCategory":      []string{category},
		"consentType":          "EXPLICIT",
		"piiCategory":          []string{"contact details (" + e.Channel + ")"},
		"primaryPurpose":       e.Purpose == string(consent.PurposeMarketing),
		"termination":          "until withdrawn; withdrawal possible at any time",
		"thirdPartyDisclosure": e.Purpose == string(consent.PurposePartners),
	}
	if ev.PartnerList != "" {
		purpose["thirdPartyName"] = ev.PartnerList
	}
	return map[string]any{
		"version":          "KI-CR-v1.1.0",
		"jurisdiction":     "FR",
		"consentTimestamp": e.OccurredAt.Unix(),
		"collectionMethod": method,
		"consentReceiptID": hex.EncodeToString(e.Hash),
		"language":         "fr",
		"piiPrincipalId":   fmt.Sprintf("subject:%d", e.SubjectID),
		"piiControllers":   []map[string]any{{"piiController": e.Brand}},
		"policyUrl":        ev.PageURL,
		"services":         []map[string]any{{"service": e.Brand + " " + e.Channel, "purposes": []any{purpose}}},
		"sensitive":        false,
		"spiCat":           []string{},
		"notice":           map[string]string{"version": ev.WordingVersion, "hash": ev.WordingHash},
		"source":           e.Source,
	}
}
