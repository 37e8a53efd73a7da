package service

import (
	"context"
	"fmt"
	"strings"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// ParseIdentifier normalizes an email address (consent.NormalizeEmail) or a
// phone number (E.164, national numbers read in policy.phone_region), as
// incoming signals are. Errors wrap ErrInvalidIdentifier.
func (s *Service) ParseIdentifier(raw string) (store.Identifier, error) {
	if strings.Contains(raw, "@") {
		email, _, err := consent.NormalizeEmail(raw)
		if err != nil {
			return store.Identifier{}, fmt.Errorf("%w: %v", ErrInvalidIdentifier, err)
		}
		return store.Identifier{Email: email}, nil
	}
	phone, err := consent.NormalizePhone(raw, s.Config.Policy.PhoneRegion)
	if err != nil {
		return store.Identifier{}, fmt.Errorf("%w: %v", ErrInvalidIdentifier, err)
	}
	return store.Identifier{Phone: phone}, nil
}

// Person is one identity set as the rules see it.
type Person struct {
	// Members are the set's live subjects, oldest first (none when unknown
	// or erased).
	Members []store.Member
	// Facts are the members' facts merged (consent.MergeFacts), with the
	// domain policy applied to the professional flag.
	Facts consent.Facts
}

// SubjectIDs are the members' subject ids.
func (p Person) SubjectIDs() []int64 { return store.SubjectIDs(p.Members) }

// people loads the identity sets of ids and merges each one's facts, for
// one key or (key nil) all keys: the single loader every view uses.
func (s *Service) people(ctx context.Context, ids []store.Identifier, key *consent.Key) ([]Person, error) {
	ps, err := s.Store.People(ctx, ids, key)
	if err != nil {
		return nil, err
	}
	out := make([]Person, len(ps))
	for i, p := range ps {
		out[i] = s.merge(p)
	}
	return out, nil
}

// merge turns what the store loaded into the person's facts.
func (s *Service) merge(p store.Person) Person {
	if len(p.Members) == 0 {
		if p.Erased {
			return Person{Facts: consent.Facts{Known: true, Erased: true, ErasedAt: p.ErasedAt}}
		}
		return Person{}
	}
	f := p.Facts[0] // a set of one is its own merge
	if len(p.Facts) > 1 {
		f = consent.MergeFacts(p.Facts[0], p.Facts[1:]...)
	}
	f.Professional = consent.IsProfessional(f.Email, s.Config.Policy.ProfessionalDomains, f.Professional)
	return Person{Members: p.Members, Facts: f}
}

// person loads one identity set by raw identifier. It returns
// ErrInvalidIdentifier for bad input and ErrUnknownSubject when nothing,
// live or erased, matches.
func (s *Service) person(ctx context.Context, raw string, key *consent.Key) (Person, error) {
	id, err := s.ParseIdentifier(raw)
	if err != nil {
		return Person{}, err
	}
	ps, err := s.people(ctx, []store.Identifier{id}, key)
	if err != nil {
		return Person{}, err
	}
	if !ps[0].Facts.Known {
		return Person{}, ErrUnknownSubject
	}
	return ps[0], nil
}
