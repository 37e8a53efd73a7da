package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentsync/consentsync/internal/progress"
)

// Repush puts suppressions a destination refused for good back to pending,
// once the cause is fixed (a wrong key, an unknown list), and enqueues a
// push per destination that got rows back: those of destination (every
// destination when empty), or only ids when given. It returns the number
// of rows per destination. An unknown destination is ErrUnknownDestination.
// Progress (internal/progress: "re-queue failed suppressions", then
// "enqueue pushes", one item per destination) goes to ctx's reporter.
// ErrNotFailed: repush was given outbox ids that are not failed
// suppressions (unknown, pending or sent); the others were re-queued.
var ErrNotFailed = errors.New("not failed suppressions")

func (s *Service) Repush(ctx context.Context, destination string, ids []int64) (back map[string]int, err error) {
	if s.Queue == nil {
		return nil, ErrNoQueue
	}
	if destination != "" {
		known := false
		for _, d := range s.Config.Destinations {
			known = known || d.Name == destination
		}
		if !known {
			return nil, fmt.Errorf("%w %q", ErrUnknownDestination, destination)
		}
	}
	progress.Report(ctx, "re-queue failed suppressions", 0, -1)
	back, err = s.Store.RequeueFailed(ctx, destination, ids)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, n := range back {
		total += n
	}
	if len(ids) > 0 && total < len(ids) {
		defer func() {
			if err == nil {
				err = fmt.Errorf("%w: %d of the %d ids given are not failed suppressions", ErrNotFailed, len(ids)-total, len(ids))
			}
		}()
	}
	progress.Report(ctx, "re-queue failed suppressions", int64(total), int64(total))
	pushed := int64(0)
	progress.Report(ctx, "enqueue pushes", 0, int64(len(back)))
	for d := range back {
		if err := s.Queue.Push(ctx, d); err != nil {
			return back, fmt.Errorf("enqueue push for %s: %w", d, err)
		}
		pushed++
		progress.Report(ctx, "enqueue pushes", pushed, int64(len(back)))
	}
	return back, nil
}
