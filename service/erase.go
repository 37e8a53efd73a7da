package service

import (
	"context"
	"errors"

	"github.com/consentsync/consentsync/store"
)

// Erase carries out an erasure (GDPR art. 17) of the person raw names, by
// (who asked: "admin-api", a source name): every member of the identity
// set — every literal address, mailbox alias and linked number — has every
// consent withdrawn and pushed to every destination, then its personal
// data removed; keyed hashes keep the person suppressed. Errors:
// ErrInvalidIdentifier, ErrUnknownSubject (nothing left to erase: unknown
// or erased already), ErrNoEraser.
func (s *Service) Erase(ctx context.Context, raw, by string) error {
	if s.Eraser == nil {
		return ErrNoEraser
	}
	p, err := s.person(ctx, raw, nil)
	if err != nil {
		return err
	}
	if len(p.Members) == 0 {
		return ErrUnknownSubject
	}
	// The worker erases the whole set from any member, in one transaction.
	err = s.Eraser.Erase(ctx, p.Members[0].SubjectID, by)
	if errors.Is(err, store.ErrNotFound) {
		return ErrUnknownSubject
	}
	return err
}
