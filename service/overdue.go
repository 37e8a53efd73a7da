package service

import (
	"context"

	"github.com/consentsync/consentsync/store"
)

// Overdue lists, oldest first (at most limit), the withdrawals received
// more than policy.withdrawal_deadline ago (default 48h) that are not yet
// honoured everywhere: a destination's suppression still pending, or sent
// but not yet read back where the destination can be. Suppressions refused
// for good are not listed here: they are dead letters (repush).
func (s *Service) Overdue(ctx context.Context, limit int) ([]store.Overdue, error) {
	return s.Store.ListOverdue(ctx, s.now().Add(-s.Config.Policy.WithdrawalDeadline), limit)
}
