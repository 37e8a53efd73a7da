package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// ErrErased: the person asked for erasure; only the keyed hashes that keep
// them suppressed remain (HTTP 404 with the erasure time).
var ErrErased = errors.New("erased")

// Identity is one literal address or number of an identity set.
type Identity struct {
	SubjectID int64     `json:"-"`
	Email     string    `json:"email,omitempty"`
	Phone     string    `json:"phone,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Consent is one current consent of a person: the state of a key across
// the identity set, as the rules read it now. Status is what holds: a
// withdrawal by any member that no valid express opt-in lifted reads
// "withdrawn", whatever a later provider "subscribed" said. Basis, Allowed
// and Reason are consent.Decide's answer for the key.
type Consent struct {
	Channel    string    `json:"channel"`
	Brand      string    `json:"brand"`
	Purpose    string    `json:"purpose"`
	Status     string    `json:"status"`
	Basis      string    `json:"basis"`
	Allowed    bool      `json:"allowed"`
	Reason     string    `json:"reason"`
	OccurredAt time.Time `json:"occurred_at"`
	Source     string    `json:"source"`
	Valid      bool      `json:"valid"`
}

// KeyAnswer is an eligibility answer for one key.
type KeyAnswer struct {
	consent.Key
	consent.Answer
}

// SubjectView is everything support sees of one person.
type SubjectView struct {
	// Subject is the set's oldest member, with the person's profile.
	Subject struct {
		Email     string    `json:"email,omitempty"`
		Phone     string    `json:"phone,omitempty"`
		Profile   string    `json:"profile"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"subject"`
	// Identities are every literal address and number of the set.
	Identities []Identity `json:"identities"`
	Consents   []Consent  `json:"consents"`
	// Eligibility answers every configured brand (and any brand the person
	// has a state for) × channel × purpose.
	Eligibility  []KeyAnswer     `json:"eligibility"`
	Suppressions []store.Receipt `json:"suppressions"`
	// Notices are what support must tell the person, e.g. "mailchimp-acme:
	// the provider refused to lift the suppression of email/acme/marketing:
	// re-opt-in through the provider's own form".
	Notices []string `json:"notices"`
	// ErasedAt is set, with ErrErased, for an erased person.
	ErasedAt *time.Time `json:"erased_at,omitempty"`
}

// Subject returns the view of the person raw names. Errors:
// ErrInvalidIdentifier, ErrUnknownSubject, and ErrErased with a view that
// only holds ErasedAt.
func (s *Service) Subject(ctx context.Context, raw string) (*SubjectView, error) {
	p, err := s.person(ctx, raw, nil)
	if err != nil {
		return nil, err
	}
	v := &SubjectView{Identities: []Identity{}, Consents: []Consent{}, Eligibility: []KeyAnswer{}, Suppressions: []store.Receipt{}}
	if len(p.Members) == 0 {
		at := p.Facts.ErasedAt
		v.ErasedAt = &at
		return v, ErrErased
	}
	now, pol := s.now(), s.policy()
	f := p.Facts
	for _, m := range p.Members {
		v.Identities = append(v.Identities, Identity{SubjectID: m.SubjectID, Email: m.Address(), Phone: m.Phone, CreatedAt: m.CreatedAt.UTC()})
	}
	first := p.Members[0]
	v.Subject.Email, v.Subject.Phone, v.Subject.CreatedAt = first.Address(), first.Phone, first.CreatedAt.UTC()
	v.Subject.Profile = profileLine(f)

	keys := slices.SortedFunc(maps.Keys(f.States), compareKeys)
	for _, k := range keys {
		st := f.States[k]
		a := consent.Decide(f, k, pol, now)
		c := Consent{Channel: string(k.Channel), Brand: k.Brand, Purpose: string(k.Purpose), Status: string(st.Status),
			Basis: string(a.Basis), Allowed: a.Allowed, Reason: a.Reason, OccurredAt: st.OccurredAt.UTC(), Source: st.Source,
			Valid: st.Status == consent.StatusWithdrawn || st.Quality.Valid(pol.StrictQuality)}
		if a.Reason == consent.ReasonWithdrawn && st.Status != consent.StatusWithdrawn && a.Since != nil {
			c.Status, c.OccurredAt, c.Valid = string(consent.StatusWithdrawn), a.Since.UTC(), true
		}
		v.Consents = append(v.Consents, c)
	}
	for _, k := range s.answerKeys(f) {
		v.Eligibility = append(v.Eligibility, KeyAnswer{Key: k, Answer: consent.Decide(f, k, pol, now)})
	}
	rs, err := s.Store.ReceiptsOf(ctx, p.SubjectIDs())
	if err != nil {
		return nil, err
	}
	if rs != nil {
		v.Suppressions = rs
	}
	v.Notices = liftNotices(rs)
	return v, nil
}

// liftNotices names the lifts a destination refused (the newest row per
// destination and scope only: a later suppression or lift answers it).
func liftNotices(rs []store.Receipt) []string {
	type scope struct{ dest, channel, brand, purpose string }
	last := map[scope]store.Receipt{}
	var order []scope
	for _, r := range rs {
		k := scope{r.Destination, r.Channel, r.Brand, r.Purpose}
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		last[k] = r
	}
	out := []string{}
	for _, k := range order {
		if r := last[k]; r.Action == store.OutboxLift && r.Status == store.OutboxFailed {
			out = append(out, fmt.Sprintf("%s: the provider refused to lift the suppression of %s/%s/%s: re-opt-in through the provider's own form",
				k.dest, k.channel, k.brand, k.purpose))
		}
	}
	return out
}

// answerKeys are the keys a subject view answers: every brand the
// configuration names or the person has a state for, × Channels ×
// Purposes (and any other purpose the person has a state for).
func (s *Service) answerKeys(f consent.Facts) []consent.Key {
	brands := map[string]bool{}
	for _, b := range s.Config.Brands() {
		brands[b] = true
	}
	set := map[consent.Key]bool{}
	for k := range f.States {
		brands[k.Brand] = true
		set[k] = true
	}
	for b := range brands {
		for _, ch := range Channels {
			for _, pu := range Purposes {
				set[consent.Key{Channel: ch, Brand: b, Purpose: pu}] = true
			}
		}
	}
	return slices.SortedFunc(maps.Keys(set), compareKeys)
}

// compareKeys orders keys by brand, channel (email, sms, phone, post),
// then purpose (marketing, partners, others by name).
func compareKeys(a, b consent.Key) int {
	if c := strings.Compare(a.Brand, b.Brand); c != 0 {
		return c
	}
	if c := slices.Index(Channels, a.Channel) - slices.Index(Channels, b.Channel); c != 0 {
		return c
	}
	ia, ib := slices.Index(Purposes, a.Purpose), slices.Index(Purposes, b.Purpose)
	if ia < 0 {
		ia = len(Purposes)
	}
	if ib < 0 {
		ib = len(Purposes)
	}
	if ia != ib {
		return ia - ib
	}
	return strings.Compare(string(a.Purpose), string(b.Purpose))
}

// profileLine names what the law calls the person: professional, a role
// address, a customer of some brands, else a prospect.
func profileLine(f consent.Facts) string {
	var parts []string
	if f.Professional {
		parts = append(parts, "professional")
	}
	if consent.IsLegalEntityAddress(f.Email) {
		parts = append(parts, "role address")
	}
	for b, since := range f.CustomerOf {
		parts = append(parts, fmt.Sprintf("customer of %s since %s", b, since.UTC().Format("2006-01-02")))
	}
	if len(parts) == 0 {
		return string(consent.ProfileProspect)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
