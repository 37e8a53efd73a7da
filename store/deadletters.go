package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// FailedWebhook is a stored webhook given up on after its last retry
// (inbound_events.status 'failed'): a dead letter, replayed by id.
type FailedWebhook struct {
	ID         int64          `db:"id"`
	Source     string         `db:"source"`
	Kind       string         `db:"kind"`
	Attempts   int            `db:"attempts"`
	Error      sql.NullString `db:"error"`
	ReceivedAt time.Time      `db:"received_at"`
}

// FailedWebhooks returns up to limit failed webhooks, oldest first, and
// how many there are in all.
func (s *Store) FailedWebhooks(ctx context.Context, limit int) ([]FailedWebhook, int64, error) {
	var rows []FailedWebhook
	if err := s.DB.SelectContext(ctx, &rows, `SELECT id, source, kind, attempts, error, received_at
		FROM inbound_events WHERE status = 'failed' ORDER BY id LIMIT $1`, limit); err != nil {
		return nil, 0, fmt.Errorf("store: failed webhooks: %w", err)
	}
	var n int64
	if err := s.DB.GetContext(ctx, &n, `SELECT count(*) FROM inbound_events WHERE status = 'failed'`); err != nil {
		return nil, 0, fmt.Errorf("store: failed webhooks: %w", err)
	}
	return rows, n, nil
}

// FailedSuppressions returns up to limit outbox rows a destination refused
// for good (status 'failed'), of destination (every destination when
// empty), oldest first, and how many there are in all.
func (s *Store) FailedSuppressions(ctx context.Context, destination string, limit int) ([]OutboxRow, int64, error) {
	var rows []OutboxRow
	if err := s.DB.SelectContext(ctx, &rows, `SELECT `+outboxCols+` FROM suppression_outbox
		WHERE status = 'failed' AND ($1 = '' OR destination = $1) ORDER BY id LIMIT $2`, destination, limit); err != nil {
		return nil, 0, fmt.Errorf("store: failed suppressions: %w", err)
	}
	var n int64
	if err := s.DB.GetContext(ctx, &n, `SELECT count(*) FROM suppression_outbox WHERE status = 'failed' AND ($1 = '' OR destination = $1)`, destination); err != nil {
		return nil, 0, fmt.Errorf("store: failed suppressions: %w", err)
	}
	return rows, n, nil
}
