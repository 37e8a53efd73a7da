package store

import (
	"context"
	"time"
)

// Backlog is the work Postgres holds that is not finished: what an operator
// alerts on when a destination is down or the worker is stuck.
type Backlog struct {
	// Outbox, by destination: pending rows, the oldest pending row's age,
	// and rows refused for good.
	OutboxPending map[string]int64
	OutboxOldest  map[string]time.Duration
	OutboxFailed  map[string]int64
	// Inbox: rows not yet processed (and the oldest one's age), rows given
	// up on.
	InboxUnprocessed int64
	InboxOldest      time.Duration
	InboxFailed      int64
	// WithdrawalOldest is the age of the oldest withdrawal with a
	// suppression pending or awaiting its read-back (0: none). Suppressions
	// refused for good are counted by OutboxFailed (dead letters), not here.
	WithdrawalOldest time.Duration
	// DestinationFailures is, by destination, how many provider calls in a
	// row failed (table destination_status; 0 or absent: the last call
	// succeeded). worker.circuit_failures of them open its circuit.
	DestinationFailures map[string]int
}

// Backlog reads the backlog in four queries.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	b := Backlog{OutboxPending: map[string]int64{}, OutboxOldest: map[string]time.Duration{}, OutboxFailed: map[string]int64{}}
	rows, err := s.DB.QueryxContext(ctx, `SELECT destination, status, count(*), extract(epoch FROM now() - min(created_at))
		FROM suppression_outbox WHERE status IN ('pending', 'failed') GROUP BY 1, 2`)
	if err != nil {
		return b, err
	}
	defer rows.Close()
	for rows.Next() {
		var dest, status string
		var n int64
		var age float64
		if err := rows.Scan(&dest, &status, &n, &age); err != nil {
			return b, err
		}
		if status == OutboxPending {
			b.OutboxPending[dest], b.OutboxOldest[dest] = n, time.Duration(age*float64(time.Second))
		} else {
			b.OutboxFailed[dest] = n
		}
	}
	if err := rows.Err(); err != nil {
		return b, err
	}
	var age float64
	err = s.DB.QueryRowxContext(ctx, `SELECT
		count(*) FILTER (WHERE status = 'received'),
		count(*) FILTER (WHERE status = 'failed'),
		coalesce(extract(epoch FROM now() - min(received_at) FILTER (WHERE status = 'received')), 0)
		FROM inbound_events WHERE status <> 'processed'`).Scan(&b.InboxUnprocessed, &b.InboxFailed, &age)
	b.InboxOldest = time.Duration(age * float64(time.Second))
	if err != nil {
		return b, err
	}
	err = s.DB.QueryRowxContext(ctx, `SELECT coalesce(extract(epoch FROM now() - min(e.received_at)), 0)
		FROM suppression_outbox x JOIN consent_events e ON e.id = x.consent_event_id
		WHERE x.action = 'suppress' AND (x.status = 'pending' OR x.status = 'sent' AND x.verify_due_at IS NOT NULL)`).Scan(&age)
	b.WithdrawalOldest = time.Duration(age * float64(time.Second))
	if err != nil {
		return b, err
	}
	b.DestinationFailures = map[string]int{}
	st, err := s.DB.QueryxContext(ctx, `SELECT destination, failures FROM destination_status WHERE failures > 0`)
	if err != nil {
		return b, err
	}
	defer st.Close()
	for st.Next() {
		var dest string
		var n int
		if err := st.Scan(&dest, &n); err != nil {
			return b, err
		}
		b.DestinationFailures[dest] = n
	}
	return b, st.Err()
}
