package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// subjectJSON is the "subject" object of GET /v1/subjects/{id}.
type subjectJSON struct {
	Email   string `json:"email,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Profile string `json:"profile"`
	Created string `json:"created_at"`
}

// handleSubject is GET /v1/subjects/{email-or-phone}: the subject, its
// current consents and its suppressions (DESIGN.md §5). The identifier is
// normalized like incoming signals (consent.NormalizeEmail, or E.164 for a
// phone in policy.phone_region). 400 for an identifier that is neither, 404
// when unknown.
func (s *Server) handleSubject(w http.ResponseWriter, r *http.Request) {
	email, phone, err := s.identifier(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := s.Store.FindSubject(r.Context(), email, phone)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown subject")
		return
	}
	if err != nil {
		s.Logger.Error("find subject", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage unavailable")
		return
	}
	consents := v.Consents
	if consents == nil {
		consents = []store.ConsentRow{}
	}
	for i := range consents {
		consents[i].Basis = basisOf(consents[i])
	}
	sups := v.Suppressions
	if sups == nil {
		sups = []store.Receipt{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"subject": subjectJSON{Email: v.Subject.Email.String, Phone: v.Subject.Phone.String, Profile: v.Subject.Profile,
			Created: v.Subject.CreatedAt.UTC().Format("2006-01-02T15:04:05Z")},
		"consents":     consents,
		"suppressions": sups,
	})
}

// identifier normalizes an email or a phone number from a URL.
func (s *Server) identifier(raw string) (email, phone string, err error) {
	if strings.Contains(raw, "@") {
		email, _, err = consent.NormalizeEmail(raw)
		return email, "", err
	}
	phone, err = consent.NormalizePhone(raw, s.Config.Policy.PhoneRegion)
	return "", phone, err
}

// basisOf names the legal footing a stored state gives: an opt-in is
// "consent", a withdrawal is "objection" (GDPR art. 7(3) / 21), a pending
// double opt-in is "pending_confirmation".
func basisOf(c store.ConsentRow) string {
	switch consent.Status(c.Status) {
	case consent.StatusGranted:
		return string(consent.BasisConsent)
	case consent.StatusWithdrawn:
		return string(consent.BasisObjectionOnly)
	}
	return consent.ReasonPendingConfirmation
}
