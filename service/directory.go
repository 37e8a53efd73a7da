package service

import (
	"context"
	"errors"
	"slices"
	"strings"
)

// Directory returns the view of every live person, each identity set once,
// ordered by the person's first address or number (stable from run to
// run): for the demo and support listings, not for large tables (one
// Subject per person).
func (s *Service) Directory(ctx context.Context) ([]*SubjectView, error) {
	ids, err := s.Store.LiveIdentifiers(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	var out []*SubjectView
	for _, id := range ids {
		v, err := s.Subject(ctx, id.Email+id.Phone)
		if errors.Is(err, ErrUnknownSubject) || errors.Is(err, ErrErased) {
			continue // erased meanwhile
		}
		if err != nil {
			return nil, err
		}
		if seen[v.Identities[0].SubjectID] {
			continue
		}
		seen[v.Identities[0].SubjectID] = true
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *SubjectView) int {
		return strings.Compare(strings.ToLower(a.Identities[0].Email+a.Identities[0].Phone), strings.ToLower(b.Identities[0].Email+b.Identities[0].Phone))
	})
	return out, nil
}
