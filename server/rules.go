package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// Eraser carries out an erasure (the worker implements it: it also pushes
// the suppressions).
type Eraser interface {
	Erase(ctx context.Context, subjectID int64, source string) error
}

// MaxEligibilityBatch is the most identifiers POST /v1/eligibility takes.
const MaxEligibilityBatch = 10000

// policy returns the rules' view of the configuration.
func (s *Server) policy() consent.Policy {
	return consent.Policy{
		ConsentTTL:          s.Config.Policy.ConsentTTL,
		StrictQuality:       s.Config.Policy.StrictQuality,
		ProfessionalDomains: s.Config.Policy.ProfessionalDomains,
	}
}

// decide answers one question for facts loaded from the store, applying the
// domain policy to the professional flag first.
func (s *Server) decide(f consent.Facts, q consent.Question) consent.Answer {
	f.Professional = consent.IsProfessional(f.Email, s.Config.Policy.ProfessionalDomains, f.Professional)
	return consent.Decide(f, q, s.policy(), s.now())
}

// Brands returns every brand the configuration names (sources, their
// lists, groups and consent fields, destinations): the brands a question
// may ask about.
func Brands(c *config.Config) map[string]bool {
	out := map[string]bool{}
	for _, s := range c.Sources {
		out[s.Brand] = true
		for _, b := range s.Lists {
			out[b] = true
		}
		for _, g := range s.Groups {
			if g.Brand != "" {
				out[g.Brand] = true
			}
		}
		if s.Fields != nil {
			for _, f := range s.Fields.Consents {
				if f.Brand != "" {
					out[f.Brand] = true
				}
			}
		}
	}
	for _, d := range c.Destinations {
		out[d.Brand] = true
	}
	return out
}

// question reads channel, brand and purpose (defaults email and marketing;
// brand required and one the configuration names: "Acme" or "acme " is not
// "acme", and an answer about a brand nobody collects for would be
// meaningless).
func (s *Server) question(channel, brand, purpose string) (consent.Question, error) {
	q, err := question(channel, brand, purpose)
	if err != nil {
		return q, err
	}
	if !s.brands[q.Brand] {
		return q, fmt.Errorf("brand %q is not configured", q.Brand)
	}
	return q, nil
}

func question(channel, brand, purpose string) (consent.Question, error) {
	if channel == "" {
		channel = string(consent.ChannelEmail)
	}
	if purpose == "" {
		purpose = string(consent.PurposeMarketing)
	}
	ch, err := consent.ParseChannel(channel)
	if err != nil {
		return consent.Question{}, err
	}
	pu, err := consent.ParsePurpose(purpose)
	if err != nil {
		return consent.Question{}, err
	}
	if strings.TrimSpace(brand) == "" {
		return consent.Question{}, errors.New("brand is required")
	}
	return consent.Question{Channel: ch, Brand: brand, Purpose: pu}, nil
}

// handleEligibility is GET /v1/subjects/{id}/eligibility?channel=&brand=&purpose=
// → {"allowed", "basis", "reason", "since"} (see consent.Decide). An
// unknown subject is not an error: it is not allowed, reason
// "unknown_subject". 400 for a bad identifier or question.
func (s *Server) handleEligibility(w http.ResponseWriter, r *http.Request) {
	email, phone, err := s.identifier(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q, err := s.question(r.URL.Query().Get("channel"), r.URL.Query().Get("brand"), r.URL.Query().Get("purpose"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	facts, err := s.Store.FactsFor(r.Context(), []store.Identifier{{Email: email, Phone: phone}}, q)
	if err != nil {
		s.storageError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.decide(facts[0], q))
}

type batchRequest struct {
	Channel  string   `json:"channel"`
	Brand    string   `json:"brand"`
	Purpose  string   `json:"purpose"`
	Subjects []string `json:"subjects"`
}

type batchResult struct {
	Subject string `json:"subject"`
	consent.Answer
}

// handleEligibilityBatch is POST /v1/eligibility with
// {"channel", "brand", "purpose", "subjects": [up to 10,000 emails or
// phones]} → {"results": [{"subject", "allowed", "basis", "reason",
// "since"}]} in request order, for filtering a campaign list. The facts of
// all subjects are loaded with a fixed number of queries. An identifier that
// is not an address or a number gets reason "invalid_identifier".
func (s *Server) handleEligibilityBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if len(req.Subjects) == 0 || len(req.Subjects) > MaxEligibilityBatch {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("subjects: give 1 to %d identifiers", MaxEligibilityBatch))
		return
	}
	q, err := s.question(req.Channel, req.Brand, req.Purpose)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ids := make([]store.Identifier, len(req.Subjects))
	bad := make([]bool, len(req.Subjects))
	for i, raw := range req.Subjects {
		email, phone, err := s.identifier(raw)
		if err != nil {
			bad[i] = true
			continue
		}
		ids[i] = store.Identifier{Email: email, Phone: phone}
	}
	facts, err := s.Store.FactsFor(r.Context(), ids, q)
	if err != nil {
		s.storageError(w, err)
		return
	}
	out := make([]batchResult, len(ids))
	for i := range ids {
		out[i].Subject = req.Subjects[i]
		if bad[i] {
			out[i].Answer = consent.Answer{Basis: consent.BasisNone, Reason: "invalid_identifier"}
			continue
		}
		out[i].Answer = s.decide(facts[i], q)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

// historyEntry is one ledger row as proof of consent.
type historyEntry struct {
	ID         int64           `json:"id"`
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

// handleHistory is GET /v1/subjects/{id}/history: the subject's ledger,
// oldest first, with evidence, quality and hash chain, a consent receipt per
// valid grant (Kantara Initiative Consent Receipt v1.1 field names), and the
// suppressions pushed with the providers' answers.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	id, ok := s.subjectID(w, r)
	if !ok {
		return
	}
	rows, err := s.Store.Ledger(r.Context(), id)
	if err != nil {
		s.storageError(w, err)
		return
	}
	receipts, err := s.Store.Receipts(r.Context(), id)
	if err != nil {
		s.storageError(w, err)
		return
	}
	events := make([]historyEntry, len(rows))
	var kantara []map[string]any
	for i, e := range rows {
		h := historyEntry{ID: e.ID, OccurredAt: e.OccurredAt.UTC(), ReceivedAt: e.ReceivedAt.UTC(), Channel: e.Channel,
			Brand: e.Brand, Purpose: e.Purpose, Status: e.Status, Source: e.Source, Valid: e.Valid, Problems: e.Problems,
			Outcome: e.Outcome, Quality: e.Quality, Evidence: e.Evidence, PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
		if e.InboundID.Valid {
			v := e.InboundID.Int64
			h.InboundID = &v
		}
		if len(h.Quality) == 0 {
			h.Quality = json.RawMessage("null")
		}
		events[i] = h
		if e.Status == string(consent.StatusGranted) && e.Valid {
			kantara = append(kantara, kantaraReceipt(e))
		}
	}
	if receipts == nil {
		receipts = []store.Receipt{}
	}
	if kantara == nil {
		kantara = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"subject_id": id, "events": events, "consent_receipts": kantara, "suppressions": receipts})
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
	purpose := map[string]any{
		"purpose":              e.Purpose + " by " + e.Channel,
		"purposeCategory":      []string{"marketing"},
		"consentType":          "EXPLICIT",
		"piiCategory":          []string{"contact details (" + e.Channel + ")"},
		"primaryPurpose":       e.Purpose == string(consent.PurposeMarketing),
		"termination":          "until withdrawn; withdrawal possible at any time",
		"thirdPartyDisclosure": e.Purpose == string(consent.PurposePartners),
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

// handleErase is DELETE /v1/subjects/{id}: erasure (GDPR art. 17). Every
// consent is withdrawn and pushed to every destination; the personal data
// goes; a keyed hash of the identifiers stays so the person is never
// re-imported or re-mailed. 200 {"erased": true}; 404 when unknown or
// already erased.
func (s *Server) handleErase(w http.ResponseWriter, r *http.Request) {
	if s.Eraser == nil {
		writeError(w, http.StatusServiceUnavailable, "erasure needs the worker configuration")
		return
	}
	id, ok := s.subjectID(w, r)
	if !ok {
		return
	}
	if err := s.Eraser.Erase(r.Context(), id, "admin-api"); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "unknown subject")
			return
		}
		s.storageError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"erased": true})
}

// subjectID resolves the {id} path value to a live subject, answering 400
// or 404 itself when it cannot.
func (s *Server) subjectID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	email, phone, err := s.identifier(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	id, err := s.Store.FindSubjectID(r.Context(), store.Identifier{Email: email, Phone: phone})
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown subject")
		return 0, false
	}
	if err != nil {
		s.storageError(w, err)
		return 0, false
	}
	return id, true
}

func (s *Server) storageError(w http.ResponseWriter, err error) {
	s.Logger.Error("admin API storage error", "err", err)
	writeError(w, http.StatusServiceUnavailable, "storage unavailable")
}
