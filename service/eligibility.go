package service

import (
	"context"
	"fmt"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// MaxEligibilityBatch is the most identifiers EligibilityBatch takes.
const MaxEligibilityBatch = 10000

// Eligibility answers "may q.Brand send q.Purpose on q.Channel to the
// person raw names, now?" (consent.Decide on the person's merged facts).
// An unknown person is not an error: the answer is "unknown_subject". It
// returns ErrInvalidIdentifier for bad input.
func (s *Service) Eligibility(ctx context.Context, raw string, q consent.Question) (consent.Answer, error) {
	id, err := s.ParseIdentifier(raw)
	if err != nil {
		return consent.Answer{}, err
	}
	ps, err := s.people(ctx, []store.Identifier{id}, &q)
	if err != nil {
		return consent.Answer{}, err
	}
	return consent.Decide(ps[0].Facts, q, s.policy(), s.now()), nil
}

// BatchResult is one answer of EligibilityBatch.
type BatchResult struct {
	Subject string `json:"subject"`
	consent.Answer
}

// EligibilityBatch answers q for up to MaxEligibilityBatch identifiers, in
// their order, with a fixed number of queries whatever their number (for
// filtering a campaign list). An identifier that is neither an address nor
// a number gets reason "invalid_identifier". Errors wrap ErrBadQuestion
// for an empty or oversized list.
func (s *Service) EligibilityBatch(ctx context.Context, raws []string, q consent.Question) ([]BatchResult, error) {
	if len(raws) == 0 || len(raws) > MaxEligibilityBatch {
		return nil, fmt.Errorf("%w: subjects: give 1 to %d identifiers", ErrBadQuestion, MaxEligibilityBatch)
	}
	ids := make([]store.Identifier, len(raws))
	bad := make([]bool, len(raws))
	for i, raw := range raws {
		id, err := s.ParseIdentifier(raw)
		if err != nil {
			bad[i] = true
			continue
		}
		ids[i] = id
	}
	ps, err := s.people(ctx, ids, &q)
	if err != nil {
		return nil, err
	}
	now, pol := s.now(), s.policy()
	out := make([]BatchResult, len(raws))
	for i := range raws {
		out[i].Subject = raws[i]
		if bad[i] {
			out[i].Answer = consent.Answer{Basis: consent.BasisNone, Reason: "invalid_identifier"}
			continue
		}
		out[i].Answer = consent.Decide(ps[i].Facts, q, pol, now)
	}
	return out, nil
}
