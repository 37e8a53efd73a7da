package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"
)

// Inbound is one stored webhook request (a row of inbound_events).
type Inbound struct {
	ID          int64           `db:"id"`
	Source      string          `db:"source"`
	Kind        string          `db:"kind"`
	DedupKey    string          `db:"dedup_key"`
	Method      string          `db:"method"`
	Path        string          `db:"path"`
	Query       string          `db:"query"`
	Headers     json.RawMessage `db:"headers"`
	Body        []byte          `db:"body"`
	BodySHA256  []byte          `db:"body_sha256"`
	ReceivedAt  time.Time       `db:"received_at"`
	Status      string          `db:"status"`
	Attempts    int             `db:"attempts"`
	Error       sql.NullString  `db:"error"`
	ProcessedAt sql.NullTime    `db:"processed_at"`
	// TraceParent is the W3C traceparent of the span that received the
	// request ("" when tracing was off): reconciling the row continues
	// that trace (internal/tracing).
	TraceParent string `db:"traceparent"`
}

// Inbox statuses.
const (
	InboundReceived  = "received"
	InboundProcessed = "processed"
	InboundFailed    = "failed"
)

// InsertInbound commits a received request unless one with the same
// (source, dedup key) exists. It returns the row id and whether the request
// was a duplicate. Concurrent identical deliveries are settled by the unique
// index: exactly one insert wins, the others see duplicate = true.
func (s *Store) InsertInbound(ctx context.Context, in Inbound) (id int64, duplicate bool, err error) {
	sum := sha256.Sum256(in.Body)
	if len(in.Headers) == 0 {
		in.Headers = json.RawMessage(`{}`)
	}
	err = s.DB.QueryRowxContext(ctx, `
		INSERT INTO inbound_events (source, kind, dedup_key, method, path, query, headers, body, body_sha256, traceparent)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''))
		ON CONFLICT (source, dedup_key) DO NOTHING
		RETURNING id`,
		in.Source, in.Kind, in.DedupKey, in.Method, in.Path, in.Query, []byte(in.Headers), in.Body, sum[:], in.TraceParent).Scan(&id)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("store: insert inbound: %w", err)
	}
	err = s.DB.QueryRowxContext(ctx, `SELECT id FROM inbound_events WHERE source = $1 AND dedup_key = $2`,
		in.Source, in.DedupKey).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("store: find duplicate inbound: %w", err)
	}
	return id, true, nil
}

const inboundCols = `id, source, kind, dedup_key, method, path, query, headers, body, body_sha256,
	received_at, status, attempts, error, processed_at, coalesce(traceparent, '') AS traceparent`

// GetInbound loads one inbound event.
func (s *Store) GetInbound(ctx context.Context, id int64) (*Inbound, error) {
	var in Inbound
	err := s.DB.GetContext(ctx, &in, `SELECT `+inboundCols+` FROM inbound_events WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get inbound %d: %w", id, err)
	}
	return &in, nil
}

// InboundSource returns the source name of inbound event id (ErrNotFound
// when there is none): what the queue UI shows beside a task's id.
func (s *Store) InboundSource(ctx context.Context, id int64) (string, error) {
	var src string
	err := s.DB.GetContext(ctx, &src, `SELECT source FROM inbound_events WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: inbound %d source: %w", id, err)
	}
	return src, nil
}

// FinishInbound marks an inbound row processed inside tx, with notes
// (skipped items and the like, JSON).
func (tx *Tx) FinishInbound(ctx context.Context, id int64, notes any) error {
	b, err := json.Marshal(notes)
	if err != nil {
		return err
	}
	if c := tx.batch; c != nil {
		c.finished = append(c.finished, finishedInbound{id: id, notes: b})
		return nil
	}
	return tx.writeFinished(ctx, []finishedInbound{{id: id, notes: b}})
}

// RecordInboundAttempt counts a failed attempt and keeps its error; final
// marks the row failed (no more automatic retries: see `consentsync replay`).
func (s *Store) RecordInboundAttempt(ctx context.Context, id int64, cause string, final bool) error {
	status := InboundReceived
	if final {
		status = InboundFailed
	}
	_, err := s.DB.ExecContext(ctx, `UPDATE inbound_events SET attempts = attempts + 1, error = $2,
		status = CASE WHEN status = 'processed' THEN status ELSE $3 END WHERE id = $1`, id, truncate(cause, 2000), status)
	return err
}

// UnfinishedInbound lists ids of rows still 'received' that arrived more
// than age ago, oldest first, at most limit. Age is measured by Postgres's
// clock, which stamped received_at: a caller whose clock is off (jumped
// back a day) still finds them.
func (s *Store) UnfinishedInbound(ctx context.Context, age time.Duration, limit int) ([]int64, error) {
	var ids []int64
	err := s.DB.SelectContext(ctx, &ids, `SELECT id FROM inbound_events WHERE status = 'received'
		AND received_at < now() - $1 * interval '1 millisecond'
		ORDER BY received_at LIMIT $2`, age.Milliseconds(), limit)
	return ids, err
}

// Replayed says which inbound rows a replay reset.
type Replayed struct {
	// Reset rows are back to received, to be enqueued.
	Reset []int64
	// Erased rows had their raw body removed by an erasure: nothing to
	// replay.
	Erased []int64
}

// ReplayInbound resets stored inbound rows to received so they are
// processed again: those with ids, or (ids empty) those received in
// [from, to). Rows an erasure emptied are left as they are and reported.
func (s *Store) ReplayInbound(ctx context.Context, ids []int64, from, to time.Time) (Replayed, error) {
	var rows []struct {
		ID     int64 `db:"id"`
		Erased bool  `db:"erased"`
	}
	var err error
	const reset = `UPDATE inbound_events SET status = CASE WHEN body IS NULL THEN status ELSE 'received' END,
		error = CASE WHEN body IS NULL THEN error ELSE NULL END`
	if len(ids) > 0 {
		err = s.DB.SelectContext(ctx, &rows, reset+` WHERE id = ANY($1) RETURNING id, body IS NULL AS erased`, pq.Array(ids))
	} else {
		err = s.DB.SelectContext(ctx, &rows, reset+` WHERE received_at >= $1 AND received_at < $2 RETURNING id, body IS NULL AS erased`, from, to)
	}
	if err != nil {
		return Replayed{}, fmt.Errorf("store: replay: %w", err)
	}
	var out Replayed
	for _, r := range rows {
		if r.Erased {
			out.Erased = append(out.Erased, r.ID)
		} else {
			out.Reset = append(out.Reset, r.ID)
		}
	}
	slices.Sort(out.Reset)
	slices.Sort(out.Erased)
	return out, nil
}

// InboxCounts returns the number of inbound rows per status.
func (s *Store) InboxCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.DB.QueryxContext(ctx, `SELECT status, count(*) FROM inbound_events GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RecordAttempt counts a failed attempt of a row inside tx (see
// RecordInboundAttempt).
func (tx *Tx) RecordAttempt(ctx context.Context, id int64, cause string) error {
	_, err := tx.sq.ExecContext(ctx, `UPDATE inbound_events SET attempts = attempts + 1, error = $2
		WHERE id = $1 AND status = 'received'`, id, truncate(cause, 2000))
	return err
}

// InboundClaim says which inbound rows one batch takes (Tx.ClaimInbound).
type InboundClaim struct {
	// Own is the row whose task claims the batch.
	Own int64
	// Limit is the most rows claimed, Own included.
	Limit int
	// Wait: wait for Own when another transaction holds it (for at most
	// 30 s), instead of leaving it.
	Wait bool
	// OwnOnly names sources whose rows are claimed by their own task only:
	// their sender ids are resolved over the network, which must not hold
	// another batch's transaction.
	OwnOnly []string
}

// ClaimInbound locks, for the rest of tx, inbound row c.Own when it is
// still 'received' (and free, unless c.Wait), and up to c.Limit-1 more free
// 'received' rows never attempted, oldest first: one batch
// (worker.inbound_batch). Rows another transaction holds are skipped (SKIP
// LOCKED), so concurrent batches take disjoint rows and never wait for
// each other. Rows that failed an attempt, rows of c.OwnOnly sources and
// rows whose raw body is over 16 KiB are left to their own task. The own
// row, when claimed, comes first.
func (tx *Tx) ClaimInbound(ctx context.Context, c InboundClaim) ([]*Inbound, error) {
	var rows []*Inbound
	lock := "FOR UPDATE SKIP LOCKED"
	if c.Wait {
		if _, err := tx.sq.tx.ExecContext(ctx, `SET LOCAL lock_timeout = '30s'`); err != nil {
			return nil, err
		}
		lock = "FOR UPDATE"
	}
	if err := tx.sq.SelectContext(ctx, &rows, `SELECT `+inboundCols+` FROM inbound_events
		WHERE id = $1 AND status = 'received' `+lock, c.Own); err != nil {
		return nil, fmt.Errorf("store: claim inbound: %w", err)
	}
	if c.Wait {
		if _, err := tx.sq.tx.ExecContext(ctx, `SET LOCAL lock_timeout = 0`); err != nil {
			return nil, err
		}
	}
	if c.Limit <= 1 {
		return rows, nil
	}
	// Others only when small: a large request (a 10,000-event import) is
	// reconciled by its own task, side by side with other batches, not
	// after a hundred others in one transaction. octet_length reads a
	// stored body's size without fetching it.
	var more []*Inbound
	if err := tx.sq.SelectContext(ctx, &more, `SELECT `+inboundCols+` FROM inbound_events
		WHERE status = 'received' AND attempts = 0 AND id <> $1 AND coalesce(octet_length(body), 0) <= $3
		  AND source <> ALL(coalesce($4::text[], '{}'))
		ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, c.Own, c.Limit-len(rows), LargeBody, pq.Array(c.OwnOnly)); err != nil {
		return nil, fmt.Errorf("store: claim inbound: %w", err)
	}
	return append(rows, more...), nil
}

// LargeBody is the raw body size (bytes) over which a request is large: a
// batch claims it only for its own task (ClaimInbound).
const LargeBody = 16 << 10

// FailInbound marks row id failed inside tx (no more automatic retries:
// see `consentsync replay`), with its cause.
func (tx *Tx) FailInbound(ctx context.Context, id int64, cause string) error {
	_, err := tx.sq.ExecContext(ctx, `UPDATE inbound_events SET attempts = attempts + 1, error = $2, status = 'failed'
		WHERE id = $1 AND status = 'received'`, id, truncate(cause, 2000))
	return err
}
