package service

import (
	"context"
	"time"

	"github.com/consentsync/consentsync/store"
)

// Overdue lists, oldest first (at most limit), the withdrawals received
// more than policy.withdrawal_deadline ago (default 48h) that are not yet
// honoured everywhere: a destination's suppression still pending, or sent
// but not yet read back where the destination can be. Suppressions refused
// for good are not listed here: they are dead letters (repush).
//
// olderThan (0: policy.withdrawal_deadline) sets how old a withdrawal must
// be to be listed, e.g. 24h to match the ConsentsyncWithdrawalOverdue alert.
func (s *Service) Overdue(ctx context.Context, olderThan time.Duration, limit int) ([]store.Overdue, error) {
	if olderThan <= 0 {
		olderThan = s.Config.Policy.WithdrawalDeadline
	}
	return s.Store.ListOverdue(ctx, s.now().Add(-olderThan), limit)
}
