package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/consentsync/consentsync/internal/progress"
)

// ReplayRequest names stored inbound requests to process again: IDs, or
// those received in [From, To) (To zero: now).
type ReplayRequest struct {
	IDs      []int64
	From, To time.Time
}

// ReplayResult says what Replay did.
type ReplayResult struct {
	// Requeued were reset to received and enqueued.
	Requeued []int64
	// Erased were emptied by an erasure: nothing is left to replay, which is
	// not a failure.
	Erased []int64
	// Missing ids name no stored request.
	Missing []int64
}

// ErrMissingInbound: a replay named ids that no stored request has.
var ErrMissingInbound = errors.New("no stored inbound request with these ids")

// Replay re-processes stored inbound requests: idempotent (the ledger and
// the outbox are unique on their facts, so a replay changes only what was
// not applied). Progress (internal/progress, phase "enqueue", one item per
// request) goes to ctx's reporter, if any. Requests an erasure emptied are reported, not replayed.
// It returns the result and, when ids were given that name nothing, an
// error wrapping ErrMissingInbound (after replaying the others).
func (s *Service) Replay(ctx context.Context, r ReplayRequest) (ReplayResult, error) {
	if s.Queue == nil {
		return ReplayResult{}, ErrNoQueue
	}
	if len(r.IDs) == 0 && r.From.IsZero() {
		return ReplayResult{}, errors.New("give inbound ids or a start time")
	}
	if r.To.IsZero() {
		r.To = s.now()
	}
	got, err := s.Store.ReplayInbound(ctx, r.IDs, r.From, r.To)
	if err != nil {
		return ReplayResult{}, err
	}
	res := ReplayResult{Erased: got.Erased}
	total := int64(len(got.Reset))
	progress.Report(ctx, "enqueue", 0, total)
	for i, id := range got.Reset {
		if err := s.Queue.Inbound(ctx, id); err != nil {
			return res, fmt.Errorf("enqueue inbound %d: %w", id, err)
		}
		res.Requeued = append(res.Requeued, id)
		progress.Report(ctx, "enqueue", int64(i+1), total)
	}
	for _, id := range r.IDs {
		if !slices.Contains(got.Reset, id) && !slices.Contains(got.Erased, id) && !slices.Contains(res.Missing, id) {
			res.Missing = append(res.Missing, id)
		}
	}
	if len(res.Missing) > 0 {
		return res, fmt.Errorf("%w: %v", ErrMissingInbound, res.Missing)
	}
	return res, nil
}
