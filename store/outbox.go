package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// OutboxRow is one suppression to push (a row of suppression_outbox).
type OutboxRow struct {
	ID             int64  `db:"id"`
	Destination    string `db:"destination"`
	ConsentEventID int64  `db:"consent_event_id"`
	SubjectID      int64  `db:"subject_id"`
	// TargetSubjectID is the member of SubjectID's identity set whose
	// address or number the row carries (SubjectID itself, an alias, a
	// linked number).
	TargetSubjectID int64          `db:"target_subject_id"`
	Action          string         `db:"action"`
	Email           sql.NullString `db:"email"`
	Phone           sql.NullString `db:"phone"`
	Channel         string         `db:"channel"`
	Brand           string         `db:"brand"`
	Purpose         string         `db:"purpose"`
	Reason          sql.NullString `db:"reason"`
	Status          string         `db:"status"`
	Attempts        int            `db:"attempts"`
	LastError       sql.NullString `db:"last_error"`
	Receipt         sql.NullString `db:"receipt"`
	CreatedAt       time.Time      `db:"created_at"`
	SentAt          sql.NullTime   `db:"sent_at"`
	// VerifiedAt is when the destination read back as holding the
	// suppression (connectors.Checker).
	VerifiedAt     sql.NullTime `db:"verified_at"`
	VerifyAttempts int          `db:"verify_attempts"`
	// Mismatches counts read-backs and drift checks that found the
	// suppression missing (each re-pushed it).
	Mismatches int `db:"mismatches"`
	// VerifyDueAt is when the row's read-back is due (a claimed one: its
	// lease's end; VerifyDone.Lease).
	VerifyDueAt sql.NullTime `db:"verify_due_at"`
}

// Outbox actions (OutboxRow.Action).
const (
	// OutboxSuppress tells the destination to stop (connectors.Destination.Push).
	OutboxSuppress = "suppress"
	// OutboxLift lifts an earlier suppression after a new valid express
	// opt-in (connectors.Lifter; destinations[].lift: on_new_opt_in).
	OutboxLift = "lift"
)

// Outbox statuses.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// AddOutbox queues a suppression of ledger row r.ConsentEventID for
// r.Destination and the address of r.TargetSubjectID inside tx; the
// (destination, consent event, target) triple is unique, so a repeat adds
// nothing.
// It reports whether a row was added.
func (tx *Tx) AddOutbox(ctx context.Context, r OutboxRow) (bool, error) {
	if c := tx.batch; c != nil {
		if c.appendedIDs[r.ConsentEventID] {
			// A ledger row of this batch: no outbox row can name it yet.
			once := fmt.Sprintf("%s|%d|%d", r.Destination, r.ConsentEventID, cmp.Or(r.TargetSubjectID, r.SubjectID))
			if c.queued[once] {
				return false, nil
			}
			c.queued[once] = true
			c.outbox = append(c.outbox, r)
			return true, nil
		}
		if err := tx.Flush(ctx); err != nil {
			return false, err
		}
	}
	n, err := tx.insertOutbox(ctx, []OutboxRow{r})
	return n > 0, err
}

const outboxCols = `id, destination, consent_event_id, subject_id, target_subject_id, action, email, phone, channel, brand, purpose,
	reason, status, attempts, last_error, receipt, created_at, sent_at, verified_at, verify_attempts, mismatches, verify_due_at`

// Claim is what ClaimPush got for one destination.
type Claim struct {
	// Rows are leased to the caller until the lease ends.
	Rows []OutboxRow
	// HeldUntil, when set, is the destination's next allowed call (its
	// retry schedule, or an open circuit's probe in flight): no row was
	// claimed.
	HeldUntil time.Time
	// Failures counts the destination's failed calls in a row (its
	// backoff); at openAfter or more the circuit is open and these rows are
	// the one probe call, others waiting for its outcome (or the lease's end).
	Failures int
}

// ClaimPush leases up to limit due pending rows of destination for lease,
// honouring the destination's retry schedule and circuit
// (destination_status, shared by every worker process):
//   - before hold_until nothing is claimed (HeldUntil says when to come back);
//   - after openAfter failed calls in a row the circuit is open: one claim
//     at a time (a probe), others held until its outcome or the lease's end;
//   - one claim carries one action: suppressions or lifts, whichever the
//     oldest due row free to go is (a provider call does one or the other;
//     a row waiting behind an older lift holds back no other);
//   - a row behind an older pending lift of its scope waits for it
//     (pendingBefore), so a withdrawal always lands after the lift before it;
//   - rows another worker holds (row lock or unexpired lease) are skipped,
//     so concurrent pushers never send one row twice at once. A crashed
//     pusher's rows become claimable again when the lease ends.
func (s *Store) ClaimPush(ctx context.Context, destination string, limit int, lease time.Duration, openAfter int) (Claim, error) {
	var c Claim
	err := s.Tx(ctx, func(tx *Tx) error {
		var st struct {
			Failures int          `db:"failures"`
			Hold     sql.NullTime `db:"hold_until"`
			Now      time.Time    `db:"now"`
		}
		err := tx.sq.GetContext(ctx, &st, `INSERT INTO destination_status (destination) VALUES ($1)
			ON CONFLICT (destination) DO UPDATE SET destination = EXCLUDED.destination
			RETURNING failures, hold_until, now() AS now`, destination)
		if err != nil {
			return err
		}
		if st.Hold.Valid && st.Hold.Time.After(st.Now) {
			c.HeldUntil = st.Hold.Time
			return nil
		}
		c.Failures = st.Failures
		err = tx.sq.SelectContext(ctx, &c.Rows, `
			UPDATE suppression_outbox SET lease_until = now() + $3 * interval '1 millisecond', attempts = attempts + 1
			WHERE id IN (
				SELECT id FROM suppression_outbox o
				WHERE destination = $1 AND status = 'pending' AND next_attempt_at <= now()
				  AND (lease_until IS NULL OR lease_until < now())
				  AND action = (SELECT action FROM suppression_outbox o WHERE destination = $1 AND status = 'pending'
				      AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
				      AND NOT `+pendingBefore+` ORDER BY id LIMIT 1)
				  AND NOT `+pendingBefore+`
				ORDER BY id LIMIT $2
				FOR UPDATE SKIP LOCKED)
			RETURNING `+outboxCols, destination, limit, lease.Milliseconds())
		if err != nil || st.Failures < openAfter || len(c.Rows) == 0 {
			return err
		}
		// The circuit is open: these rows are the probe; nobody else calls
		// until its outcome, or the lease's end.
		_, err = tx.sq.ExecContext(ctx, `UPDATE destination_status SET hold_until = now() + $2 * interval '1 millisecond',
			updated_at = now() WHERE destination = $1`, destination, lease.Milliseconds())
		return err
	})
	if err != nil {
		return Claim{}, fmt.Errorf("store: claim outbox: %w", err)
	}
	return c, nil
}

// pendingBefore is true of an outbox row o behind an older pending lift
// of the same destination, target subject and scope: a lift retried later
// (a per-item transient error) can then never land after a newer
// withdrawal of its scope and undo it. (A newer lift behind an older
// pending suppression needs no wait: landing out of order there leaves
// the address suppressed, the safe side.) Index:
// suppression_outbox_pending_lifts.
const pendingBefore = `EXISTS (SELECT 1 FROM suppression_outbox p WHERE p.destination = o.destination AND p.id < o.id
	AND p.status = 'pending' AND p.action = 'lift'
	AND p.target_subject_id = o.target_subject_id AND p.channel = o.channel AND p.brand = o.brand AND p.purpose = o.purpose)`

// OutboxDone is the final or interim outcome of one claimed row.
type OutboxDone struct {
	ID      int64
	Status  string // OutboxSent, OutboxFailed or OutboxPending (try again RetryIn from now)
	Receipt string
	Error   string
	// RetryIn, for a pending row, is when to try again: that long after
	// the outcome is recorded, by Postgres's clock (which every claim
	// compares with), so a caller whose clock is off schedules nothing
	// years away. Zero or less: at once.
	RetryIn time.Duration
	// VerifyAfter, for a sent row, is when to read it back (0: never; the
	// destination cannot be read back).
	VerifyAfter time.Duration
	// Attempt is the row's attempts as its claim returned them
	// (OutboxRow.Attempts): the outcome is recorded only if no claim
	// came since (a pusher whose lease ended mid-call and whose row
	// another pusher took records nothing). 0: recorded regardless.
	Attempt int
}

// scrubErased drops the address of a finished row whose subject was erased
// while it was pending (it was kept only to be pushed).
const scrubErased = `email = CASE WHEN EXISTS (SELECT 1 FROM subjects WHERE id IN (subject_id, target_subject_id) AND erased_at IS NOT NULL) THEN NULL ELSE email END,
	phone = CASE WHEN EXISTS (SELECT 1 FROM subjects WHERE id IN (subject_id, target_subject_id) AND erased_at IS NOT NULL) THEN NULL ELSE phone END`

// ownClaim is true of a row o whose outcome d (OutboxDone) belongs to its
// latest claim: ClaimPush counts each claim in attempts, so a pusher whose
// lease ended mid-call and whose row another pusher claimed since records
// nothing over the newer claim (clearing its lease would let a third
// pusher send the row while the second's call is in flight).
const ownClaim = `(d.attempt = 0 OR o.attempts = d.attempt)`

// retryMillis is a retry wait (RetryIn) as the milliseconds after now()
// the SQL adds, at least 0.
func retryMillis(in time.Duration) int64 {
	return max(in.Milliseconds(), 0)
}

// PushCall is the outcome of one provider call, for the destination's retry
// schedule (ClaimPush).
type PushCall struct {
	Destination string
	// Failed: the call failed transiently (429, 5xx, timeout); no row of the
	// destination is claimed for RetryIn from the commit, by Postgres's
	// clock (zero or less: the hold ends at once).
	Failed  bool
	RetryIn time.Duration
	Error   string
	// Succeeded: the provider answered (whatever it said of each row): the
	// schedule and circuit are reset. Neither flag leaves them as they are.
	Succeeded bool
}

// CompleteOutbox records outcomes, releases the leases and updates the
// destination's schedule (call, when given), in one transaction of at most
// four set-based statements.
func (s *Store) CompleteOutbox(ctx context.Context, done []OutboxDone, call ...PushCall) error {
	var sent, failed, retry, sentVerify, sentAttempt, failedAttempt, retryAttempt []int64
	var sentReceipt, failedReceipt, failedErr, retryErr []string
	var retryIn []int64
	for _, d := range done {
		switch d.Status {
		case OutboxSent:
			sent, sentReceipt = append(sent, d.ID), append(sentReceipt, d.Receipt)
			sentVerify, sentAttempt = append(sentVerify, d.VerifyAfter.Milliseconds()), append(sentAttempt, int64(d.Attempt))
		case OutboxFailed:
			failed, failedReceipt, failedErr = append(failed, d.ID), append(failedReceipt, d.Receipt), append(failedErr, truncate(d.Error, 2000))
			failedAttempt = append(failedAttempt, int64(d.Attempt))
		default:
			retry, retryErr = append(retry, d.ID), append(retryErr, truncate(d.Error, 2000))
			retryAttempt, retryIn = append(retryAttempt, int64(d.Attempt)), append(retryIn, retryMillis(d.RetryIn))
		}
	}
	return s.Tx(ctx, func(tx *Tx) error {
		if len(sent) > 0 {
			if _, err := tx.sq.ExecContext(ctx, `UPDATE suppression_outbox o SET status = 'sent', sent_at = now(),
				receipt = d.receipt, last_error = NULL, lease_until = NULL, verified_at = NULL, verify_attempts = 0,
				verify_due_at = CASE WHEN d.verify_ms > 0 THEN now() + d.verify_ms * interval '1 millisecond' END, `+scrubErased+`
				FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS d(id, receipt, verify_ms, attempt)
				WHERE o.id = d.id AND o.status = 'pending' AND `+ownClaim,
				pq.Array(sent), pq.Array(sentReceipt), pq.Array(sentVerify), pq.Array(sentAttempt)); err != nil {
				return fmt.Errorf("store: complete outbox: %w", err)
			}
		}
		if len(failed) > 0 {
			if _, err := tx.sq.ExecContext(ctx, `UPDATE suppression_outbox o SET status = 'failed', receipt = NULLIF(d.receipt, ''),
				last_error = d.error, lease_until = NULL, `+scrubErased+`
				FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS d(id, receipt, error, attempt)
				WHERE o.id = d.id AND o.status = 'pending' AND `+ownClaim,
				pq.Array(failed), pq.Array(failedReceipt), pq.Array(failedErr), pq.Array(failedAttempt)); err != nil {
				return fmt.Errorf("store: complete outbox: %w", err)
			}
		}
		if len(retry) > 0 {
			if _, err := tx.sq.ExecContext(ctx, `UPDATE suppression_outbox o SET last_error = d.error, lease_until = NULL,
				next_attempt_at = now() + d.in_ms * interval '1 millisecond'
				FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS d(id, error, attempt, in_ms)
				WHERE o.id = d.id AND o.status = 'pending' AND `+ownClaim,
				pq.Array(retry), pq.Array(retryErr), pq.Array(retryAttempt), pq.Array(retryIn)); err != nil {
				return fmt.Errorf("store: complete outbox: %w", err)
			}
		}
		for _, c := range call {
			var err error
			switch {
			case c.Failed:
				_, err = tx.sq.ExecContext(ctx, `UPDATE destination_status SET failures = failures + 1,
					hold_until = now() + $3::bigint * interval '1 millisecond',
					last_error = $2, updated_at = now() WHERE destination = $1`, c.Destination, truncate(c.Error, 2000), retryMillis(c.RetryIn))
			case c.Succeeded:
				_, err = tx.sq.ExecContext(ctx, `UPDATE destination_status SET failures = 0, hold_until = NULL, last_error = NULL,
					updated_at = now() WHERE destination = $1 AND (failures > 0 OR hold_until IS NOT NULL)`, c.Destination)
			}
			if err != nil {
				return fmt.Errorf("store: destination schedule: %w", err)
			}
		}
		return nil
	})
}

// DestinationStatus is a destination's retry schedule and circuit.
type DestinationStatus struct {
	Destination string         `db:"destination"`
	Failures    int            `db:"failures"`
	HoldUntil   sql.NullTime   `db:"hold_until"`
	LastError   sql.NullString `db:"last_error"`
}

// DestinationStatuses lists every destination's schedule (metrics, queues).
func (s *Store) DestinationStatuses(ctx context.Context) ([]DestinationStatus, error) {
	var out []DestinationStatus
	err := s.DB.SelectContext(ctx, &out, `SELECT destination, failures, hold_until, last_error FROM destination_status ORDER BY destination`)
	return out, err
}

// DueOutboxDestinations lists destinations that have pending rows due
// for more than age and not leased, or sent rows whose read-back is that
// overdue: the sweeper re-enqueues a push for each. Age is measured by
// Postgres's clock, which set those times. A destination a push task
// holds (pusher lease), or its retry schedule holds (hold_until: its push
// is scheduled for then), is left out: no task is missing; if Redis lost
// the scheduled one, its rows are due, and listed, once the hold ends.
func (s *Store) DueOutboxDestinations(ctx context.Context, age time.Duration) ([]string, error) {
	var out []string
	err := s.DB.SelectContext(ctx, &out, `WITH c AS (SELECT now() - $1 * interval '1 millisecond' AS due_before)
		SELECT destination FROM (SELECT DISTINCT destination FROM suppression_outbox, c
		WHERE status = 'pending' AND next_attempt_at <= c.due_before AND (lease_until IS NULL OR lease_until < now())
		UNION SELECT DISTINCT destination FROM suppression_outbox, c WHERE status = 'sent' AND verify_due_at <= c.due_before) d
		WHERE NOT EXISTS (SELECT 1 FROM destination_status s WHERE s.destination = d.destination
			AND (s.pusher_until > now() OR s.hold_until > now()))`, age.Milliseconds())
	return out, err
}

// TryPusher takes destination's push lease for token until ttl from now
// when no other task holds it (none, or its holder's lease ended: a
// crashed task). It reports whether token holds it. One push task at a
// time per destination makes its tasks one chain: the holder schedules
// the next (worker.HandlePush); a task that finds the lease taken leaves
// at once.
func (s *Store) TryPusher(ctx context.Context, destination, token string, ttl time.Duration) (bool, error) {
	var got string
	err := s.DB.GetContext(ctx, &got, `INSERT INTO destination_status (destination, pusher, pusher_until)
		VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (destination) DO UPDATE SET pusher = EXCLUDED.pusher, pusher_until = EXCLUDED.pusher_until
			WHERE destination_status.pusher_until IS NULL OR destination_status.pusher_until < now() OR destination_status.pusher = EXCLUDED.pusher
		RETURNING pusher`, destination, token, ttl.Milliseconds())
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: push lease: %w", err)
	}
	return got == token, nil
}

// ReleasePusher gives up destination's push lease if token holds it.
func (s *Store) ReleasePusher(ctx context.Context, destination, token string) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE destination_status SET pusher = NULL, pusher_until = NULL
		WHERE destination = $1 AND pusher = $2`, destination, token)
	if err != nil {
		return fmt.Errorf("store: push lease: %w", err)
	}
	return nil
}

// OutboxCounts returns row counts per destination and status.
func (s *Store) OutboxCounts(ctx context.Context) (map[string]map[string]int64, error) {
	rows, err := s.DB.QueryxContext(ctx, `SELECT destination, status, count(*) FROM suppression_outbox GROUP BY 1, 2`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]int64{}
	for rows.Next() {
		var d, st string
		var n int64
		if err := rows.Scan(&d, &st, &n); err != nil {
			return nil, err
		}
		if out[d] == nil {
			out[d] = map[string]int64{}
		}
		out[d][st] = n
	}
	return out, rows.Err()
}

// ListOutbox returns every outbox row, oldest first (demo and support use).
func (s *Store) ListOutbox(ctx context.Context, ids ...int64) ([]OutboxRow, error) {
	var rows []OutboxRow
	q := `SELECT ` + outboxCols + ` FROM suppression_outbox`
	var err error
	if len(ids) > 0 {
		err = s.DB.SelectContext(ctx, &rows, q+` WHERE id = ANY($1) ORDER BY id`, pq.Array(ids))
	} else {
		err = s.DB.SelectContext(ctx, &rows, q+` ORDER BY id`)
	}
	return rows, err
}

// RequeueFailed puts suppressions refused for good back to pending, after
// the cause was fixed (a wrong API key, an unknown list): those of
// destination (all when empty), or only ids when given; a row a later one
// of its scope supersedes stays failed (pushing an old lift again would
// undo the newer withdrawal). It returns the destinations that got rows
// back, to enqueue pushes for.
func (s *Store) RequeueFailed(ctx context.Context, destination string, ids []int64) (map[string]int, error) {
	rows, err := s.DB.QueryxContext(ctx, `UPDATE suppression_outbox o SET status = 'pending', next_attempt_at = now(),
		lease_until = NULL, last_error = 'requeued after: ' || coalesce(last_error, '')
		WHERE status = 'failed' AND ($1 = '' OR destination = $1) AND (coalesce(cardinality($2::bigint[]), 0) = 0 OR id = ANY($2))
		  AND NOT `+superseded+`
		RETURNING destination`, destination, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("store: requeue: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out[d]++
	}
	return out, rows.Err()
}
