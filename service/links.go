package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/links"
	"github.com/consentsync/consentsync/store"
)

// ErrPagesDisabled: pages.keys is empty, so no link can be signed and the
// pages are not served (HTTP 503 on the links API).
var ErrPagesDisabled = errors.New("pages are not configured: set pages.public_url and pages.keys")

// OneClickPost is the List-Unsubscribe-Post header value RFC 8058 §3.1
// requires beside an HTTPS List-Unsubscribe URI.
const OneClickPost = "List-Unsubscribe=One-Click"

// Links are the links a sending tool puts in a message to one person from
// one brand: the header values of RFC 2369 (List-Unsubscribe) and RFC 8058
// (List-Unsubscribe-Post: one-click), the preference centre and a double
// opt-in confirmation link. Each token is single-purpose and expires
// (pages.*_ttl).
type Links struct {
	Brand   string `json:"brand"`
	Channel string `json:"channel"`
	Purpose string `json:"purpose"`
	// ListUnsubscribe is the List-Unsubscribe header value: "<https://…/u/TOKEN>".
	ListUnsubscribe string `json:"list_unsubscribe"`
	// ListUnsubscribePost is "List-Unsubscribe=One-Click".
	ListUnsubscribePost string    `json:"list_unsubscribe_post"`
	UnsubscribeURL      string    `json:"unsubscribe_url"`
	UnsubscribeExpires  time.Time `json:"unsubscribe_expires_at"`
	PreferencesURL      string    `json:"preferences_url"`
	PreferencesExpires  time.Time `json:"preferences_expires_at"`
	ConfirmURL          string    `json:"confirm_url"`
	ConfirmExpires      time.Time `json:"confirm_expires_at"`
}

// Signer is the link signer of pages.keys (the first key signs). Errors:
// ErrPagesDisabled when no key is configured; a key whose secret is empty
// (a read-only configuration without its ${VAR}) is named by its path.
func (s *Service) Signer() (links.Signer, error) {
	p := s.Config.Pages
	if !p.Enabled() {
		return links.Signer{}, ErrPagesDisabled
	}
	var sg links.Signer
	for i, k := range p.Keys {
		if k.Secret == "" {
			return links.Signer{}, fmt.Errorf("pages.keys[%d].secret is empty (is its environment variable set?)", i)
		}
		sg.Keys = append(sg.Keys, links.Key{ID: k.ID, Secret: []byte(k.Secret)})
	}
	return sg, nil
}

// PageURL is pages.public_url + "/" + page + "/" + token.
func (s *Service) PageURL(page, token string) string {
	return strings.TrimRight(s.Config.Pages.PublicURL, "/") + "/" + page + "/" + token
}

// Links signs the links for the person raw names (any of their addresses
// or numbers) and brand; channel and purpose (default email, marketing)
// are what the unsubscribe link withdraws. Errors: ErrPagesDisabled,
// ErrInvalidIdentifier, ErrBadQuestion (brand not configured, unknown
// channel or purpose), ErrUnknownSubject (unknown or erased: no link is
// made for nobody).
func (s *Service) Links(ctx context.Context, raw, brand, channel, purpose string) (*Links, error) {
	sg, err := s.Signer()
	if err != nil {
		return nil, err
	}
	q, err := s.Question(channel, brand, purpose)
	if err != nil {
		return nil, err
	}
	p, err := s.person(ctx, raw, nil)
	if err != nil {
		return nil, err
	}
	if len(p.Members) == 0 {
		return nil, ErrUnknownSubject
	}
	// The token names the member the identifier found (the set's oldest
	// member when the identifier is an alias never stored).
	id, _ := s.ParseIdentifier(raw)
	sub := p.Members[0].SubjectID
	for _, m := range p.Members {
		if id.Email != "" && m.Email == id.Email || id.Phone != "" && m.Phone == id.Phone {
			sub = m.SubjectID
			break
		}
	}
	now, cfg := s.now(), s.Config.Pages
	sign := func(pu links.Purpose, ttl time.Duration) (string, time.Time, error) {
		tok, c, err := sg.Issue(links.Claims{Purpose: pu, SubjectID: sub, Brand: q.Brand, Channel: q.Channel, ConsentPurpose: q.Purpose, ExpiresAt: now.Add(ttl)})
		if errors.Is(err, links.ErrUnencodable) {
			// A scope no token can name (a cookie sub-purpose): the
			// question's fault, not the service's.
			err = fmt.Errorf("%w: no link for it: %v", ErrBadQuestion, err)
		}
		return tok, c.ExpiresAt, err
	}
	l := &Links{Brand: q.Brand, Channel: string(q.Channel), Purpose: string(q.Purpose), ListUnsubscribePost: OneClickPost}
	var tok string
	if tok, l.UnsubscribeExpires, err = sign(links.Unsubscribe, cfg.UnsubscribeTTL); err != nil {
		return nil, err
	}
	l.UnsubscribeURL = s.PageURL("u", tok)
	l.ListUnsubscribe = "<" + l.UnsubscribeURL + ">"
	if tok, l.PreferencesExpires, err = sign(links.Preferences, cfg.PreferencesTTL); err != nil {
		return nil, err
	}
	l.PreferencesURL = s.PageURL("p", tok)
	if tok, l.ConfirmExpires, err = sign(links.Confirm, cfg.ConfirmTTL); err != nil {
		return nil, err
	}
	l.ConfirmURL = s.PageURL("c", tok)
	return l, nil
}

// Toggle is one brand × channel × purpose a page lets the person change.
type Toggle struct {
	consent.Key
	// On: the brand may send this now (consent.Decide allowed).
	On bool
	// Status is the consent state ("granted", "withdrawn", "pending"; ""
	// when none is recorded).
	Status string
	// Reason is consent.Decide's reason.
	Reason string
	// Since is when the consent state last changed (zero when none).
	Since time.Time
}

// PageView is what the public pages show of one person and what their
// forms may change: the same answers as Subject, for the subject a link
// names.
type PageView struct {
	SubjectID int64
	// Identifier is the subject's stored address or number: the signals
	// a page records name it. Pages never render it in full.
	Identifier store.Identifier
	// Brand is the link's brand.
	Brand string
	// Toggles: every brand × channel × purpose the person has a consent
	// state for, and email marketing and partners of Brand, ordered by
	// brand (Brand first), channel, purpose.
	Toggles []Toggle
	// Phone is the set's number, if any: SMS and call consent belong to it
	// (consent.ConsentSubject).
	Phone string
	// Pending are Brand's double opt-in requests awaiting confirmation.
	Pending []consent.Key
	// PendingEvidence is each pending request's evidence as the ledger
	// keeps it (the box ticked, whether it was required, the wording): a
	// confirmation confirms what was asked.
	PendingEvidence map[consent.Key]consent.Evidence
	// Brands are every configured brand (an all-brands withdrawal covers
	// them all).
	Brands []string
}

// Page loads the view of subject id for a page of brand. Errors:
// ErrUnknownSubject when the subject does not exist or was erased.
func (s *Service) Page(ctx context.Context, subjectID int64, brand string) (*PageView, error) {
	id, err := s.Store.SubjectIdentifier(ctx, subjectID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownSubject
	}
	if err != nil {
		return nil, err
	}
	raw := id.Email
	if raw == "" {
		raw = id.Phone
	}
	v, err := s.Subject(ctx, raw)
	if errors.Is(err, ErrErased) {
		return nil, ErrUnknownSubject
	}
	if err != nil {
		return nil, err
	}
	pv := &PageView{SubjectID: subjectID, Identifier: id, Brand: brand, Brands: s.Config.Brands(), Phone: id.Phone}
	for _, m := range v.Identities {
		if pv.Phone == "" && m.Phone != "" {
			pv.Phone = m.Phone
		}
	}
	answers := map[consent.Key]KeyAnswer{}
	for _, a := range v.Eligibility {
		answers[a.Key] = a
	}
	status := map[consent.Key]string{}
	since := map[consent.Key]time.Time{}
	keys := []consent.Key{}
	add := func(k consent.Key) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, c := range v.Consents {
		k := consent.Key{Channel: consent.Channel(c.Channel), Brand: c.Brand, Purpose: consent.Purpose(c.Purpose)}
		status[k], since[k] = c.Status, c.OccurredAt
		add(k)
		if c.Status == string(consent.StatusPending) && c.Brand == brand {
			pv.Pending = append(pv.Pending, k)
		}
	}
	if id.Email != "" {
		add(consent.Key{Channel: consent.ChannelEmail, Brand: brand, Purpose: consent.PurposeMarketing})
		add(consent.Key{Channel: consent.ChannelEmail, Brand: brand, Purpose: consent.PurposePartners})
	}
	slices.SortStableFunc(keys, func(a, b consent.Key) int {
		if (a.Brand == brand) != (b.Brand == brand) {
			if a.Brand == brand {
				return -1
			}
			return 1
		}
		return compareKeys(a, b)
	})
	for _, k := range keys {
		a := answers[k]
		if a.Key != k { // a purpose the view does not answer: ask the rules
			q := consent.Question{Channel: k.Channel, Brand: k.Brand, Purpose: k.Purpose}
			ans, err := s.Eligibility(ctx, raw, q)
			if err != nil {
				return nil, err
			}
			a = KeyAnswer{Key: k, Answer: ans}
		}
		pv.Toggles = append(pv.Toggles, Toggle{Key: k, On: a.Allowed, Status: status[k], Reason: a.Reason, Since: since[k]})
	}
	if len(pv.Pending) > 0 {
		h, err := s.History(ctx, raw)
		if err != nil {
			return nil, err
		}
		pv.PendingEvidence = map[consent.Key]consent.Evidence{}
		for _, e := range h.Events { // oldest first: the last one wins
			k := consent.Key{Channel: consent.Channel(e.Channel), Brand: e.Brand, Purpose: consent.Purpose(e.Purpose)}
			if e.Status != string(consent.StatusPending) || !slices.Contains(pv.Pending, k) {
				continue
			}
			var ev consent.Evidence
			if json.Unmarshal(e.Evidence, &ev) == nil {
				pv.PendingEvidence[k] = ev
			}
		}
	}
	return pv, nil
}
