package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/service"
)

// Consents is the one service layer the admin API renders
// (service.Service): handlers parse the request, call one use case and
// write its result; they load nothing and decide nothing.
type Consents interface {
	Question(channel, brand, purpose string) (consent.Question, error)
	Subject(ctx context.Context, raw string) (*service.SubjectView, error)
	Eligibility(ctx context.Context, raw string, q consent.Question) (consent.Answer, error)
	EligibilityBatch(ctx context.Context, raws []string, q consent.Question) ([]service.BatchResult, error)
	History(ctx context.Context, raw string) (*service.History, error)
	Erase(ctx context.Context, raw, by string) error
	Links(ctx context.Context, raw, brand, channel, purpose string) (*service.Links, error)
}

var _ Consents = (*service.Service)(nil)

// handleSubject is GET /v1/subjects/{email-or-phone}: the person (any
// member of the identity set gives the same answer): the oldest member as
// "subject" with the person's profile, every literal address and number
// ("identities"), the current consents with the rules' answer for each,
// eligibility for every configured brand × channel × purpose, and the
// suppressions with their receipts (service.SubjectView). 400 for an
// identifier that is neither an address nor a number, 404 when unknown or
// erased ({"error": "erased", "erased_at"}).
func (s *Server) handleSubject(w http.ResponseWriter, r *http.Request) {
	v, err := s.Consents.Subject(r.Context(), r.PathValue("id"))
	if errors.Is(err, service.ErrErased) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "erased", "erased_at": v.ErasedAt})
		return
	}
	if err != nil {
		s.serviceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// handleEligibility is GET /v1/subjects/{id}/eligibility?channel=&brand=&purpose=
// → {"allowed", "basis", "reason", "since", "expires_at", "detail"}
// (consent.Decide on the person's merged facts). An unknown subject is not
// an error: it is not allowed, reason "unknown_subject". 400 for a bad
// identifier or question.
func (s *Server) handleEligibility(w http.ResponseWriter, r *http.Request) {
	q, err := s.Consents.Question(r.URL.Query().Get("channel"), r.URL.Query().Get("brand"), r.URL.Query().Get("purpose"))
	if err != nil {
		s.serviceError(w, err)
		return
	}
	a, err := s.Consents.Eligibility(r.Context(), r.PathValue("id"), q)
	if err != nil {
		s.serviceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

type batchRequest struct {
	Channel  string   `json:"channel"`
	Brand    string   `json:"brand"`
	Purpose  string   `json:"purpose"`
	Subjects []string `json:"subjects"`
}

// handleEligibilityBatch is POST /v1/eligibility with
// {"channel", "brand", "purpose", "subjects": [up to 10,000 emails or
// phones]} → {"results": [{"subject", "allowed", "basis", "reason",
// "since", "expires_at", "detail"}]} in request order, for filtering a campaign list
// (service.EligibilityBatch). 400 for a malformed body or question.
func (s *Server) handleEligibilityBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "body: one JSON object expected, more data follows it")
		return
	}
	q, err := s.Consents.Question(req.Channel, req.Brand, req.Purpose)
	if err != nil {
		s.serviceError(w, err)
		return
	}
	out, err := s.Consents.EligibilityBatch(r.Context(), req.Subjects, q)
	if err != nil {
		s.serviceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

// handleHistory is GET /v1/subjects/{id}/history: the person's ledger,
// oldest first, with evidence, quality and hash chain, a consent receipt per
// valid grant (Kantara Initiative Consent Receipt v1.1 field names), and the
// suppressions pushed with the providers' answers (service.History).
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	h, err := s.Consents.History(r.Context(), r.PathValue("id"))
	if err != nil {
		s.serviceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// handleErase is DELETE /v1/subjects/{id}: erasure (GDPR art. 17) of the
// whole identity set (service.Erase). 200 {"erased": true}; 404 when
// unknown or already erased.
func (s *Server) handleErase(w http.ResponseWriter, r *http.Request) {
	if err := s.Consents.Erase(r.Context(), r.PathValue("id"), "admin-api"); err != nil {
		s.serviceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"erased": true})
}

// serviceError maps a use case's error to its status: 400 for bad input,
// 404 for an unknown or erased person, 503 otherwise (storage; the caller
// retries). Storage errors are logged without their text reaching the
// client.
func (s *Server) serviceError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, service.ErrInvalidIdentifier), errors.Is(err, service.ErrBadQuestion):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, service.ErrErased):
		writeError(w, http.StatusNotFound, "erased")
	case errors.Is(err, service.ErrUnknownSubject):
		writeError(w, http.StatusNotFound, "unknown subject")
	case errors.Is(err, service.ErrNoEraser), errors.Is(err, service.ErrPagesDisabled):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.Logger.Error("admin API storage error", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage unavailable")
	}
}

// linksRequest is POST /v1/subjects/{id}/links's optional JSON body; the
// same fields may be given as query parameters.
type linksRequest struct {
	Brand   string `json:"brand"`
	Channel string `json:"channel"`
	Purpose string `json:"purpose"`
}

// handleLinks is POST /v1/subjects/{email-or-phone}/links with
// {"brand", "channel", "purpose"} (or ?brand=&channel=&purpose=; channel
// and purpose default to email and marketing) → service.Links: the
// List-Unsubscribe and List-Unsubscribe-Post header values (RFC 2369,
// RFC 8058), the unsubscribe, preference-centre and double opt-in
// confirmation URLs and their expiry. 400 bad identifier, brand, channel
// or purpose, or an unreadable body; 404 unknown or erased; 503 when
// pages.keys is not configured.
func (s *Server) handleLinks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := linksRequest{Brand: q.Get("brand"), Channel: q.Get("channel"), Purpose: q.Get("purpose")}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read body")
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var b linksRequest
		if err := json.Unmarshal(body, &b); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		req.Brand, req.Channel, req.Purpose = cmp.Or(b.Brand, req.Brand), cmp.Or(b.Channel, req.Channel), cmp.Or(b.Purpose, req.Purpose)
	}
	l, err := s.Consents.Links(r.Context(), r.PathValue("id"), req.Brand, req.Channel, req.Purpose)
	if err != nil {
		s.serviceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}
