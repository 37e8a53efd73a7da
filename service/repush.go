package service

import (
	"context"
	"fmt"
)

// Repush puts suppressions a destination refused for good back to pending,
// once the cause is fixed (a wrong key, an unknown list), and enqueues a
// push per destination that got rows back: those of destination (every
// destination when empty), or only ids when given. It returns the number
// of rows per destination. An unknown destination is ErrUnknownDestination.
func (s *Service) Repush(ctx context.Context, destination string, ids []int64) (map[string]int, error) {
	if destination != "" {
		known := false
		for _, d := range s.Config.Destinations {
			known = known || d.Name == destination
		}
		if !known {
			return nil, fmt.Errorf("%w %q", ErrUnknownDestination, destination)
		}
	}
	back, err := s.Store.RequeueFailed(ctx, destination, ids)
	if err != nil {
		return nil, err
	}
	for d := range back {
		if err := s.Queue.Push(ctx, d, 0); err != nil {
			return back, fmt.Errorf("enqueue push for %s: %w", d, err)
		}
	}
	return back, nil
}
