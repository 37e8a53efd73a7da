package service

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/consentsync/consentsync/consent"
)

// expiringPage is how many candidate subjects Expiring loads at a time:
// memory stays bounded whatever the table size.
const expiringPage = 1000

// ExpiringEntry is one permission of one person that lapses soon (or
// already has): the list for a re-consent or deletion campaign.
type ExpiringEntry struct {
	// Identities are every literal address and number of the person.
	Identities []Identity `json:"identities"`
	consent.Expiry
}

// Expiring lists every permission that lapses within the window (or
// already has): prospects' consents (3 years, policy.consent_ttl, after
// the last contact from the person) and customers' soft opt-ins (3 years
// after the end of the commercial relationship), each saying which rule
// (consent.Expiries, which agrees with consent.Decide by construction).
// Each person is listed once, whichever member holds the permission;
// entries are ordered by expiry.
func (s *Service) Expiring(ctx context.Context, within time.Duration) ([]ExpiringEntry, error) {
	now, pol := s.now(), s.policy()
	var out []ExpiringEntry
	done := map[int64]bool{} // sets already listed, by oldest member
	var after int64
	for {
		ids, last, err := s.Store.ExpiringCandidates(ctx, after, expiringPage)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			break
		}
		after = last
		ps, err := s.people(ctx, ids, nil)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if len(p.Members) == 0 || done[p.Members[0].SubjectID] {
				continue
			}
			done[p.Members[0].SubjectID] = true
			idents := make([]Identity, len(p.Members))
			for i, m := range p.Members {
				idents[i] = Identity{SubjectID: m.SubjectID, Email: m.Address(), Phone: m.Phone, CreatedAt: m.CreatedAt.UTC()}
			}
			for _, e := range consent.Expiries(p.Facts, pol, now, within) {
				out = append(out, ExpiringEntry{Identities: idents, Expiry: e})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b ExpiringEntry) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), cmp.Compare(a.Identities[0].SubjectID, b.Identities[0].SubjectID), compareKeys(a.Key, b.Key))
	})
	return out, nil
}
