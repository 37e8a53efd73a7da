package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"
)

// ClaimVerify leases up to limit sent rows of destination whose read-back
// is due (verify_due_at passed), for lease: their verify_due_at moves to
// the lease's end, so a crashed verifier's rows are asked again then.
// Rows are returned oldest due first with VerifyAttempts counting this one.
//
// A due row a later one supersedes (a lift after the suppression, or a
// newer suppression) is settled without a read-back: checking it would
// find the lift and push the suppression again. So is a row whose address
// an erasure removed (nothing left to ask about). Only the rows at the
// head of the due order are looked at, limit at a time (the
// suppression_outbox_verify index), so a claim costs the same with ten
// rows due or a hundred thousand; a head of settled rows is settled and
// passed, limit rows a round, in the same transaction (each row once: a
// long run of superseded rows costs the one claim that meets it). An
// empty answer means none is due.
func (s *Store) ClaimVerify(ctx context.Context, destination string, limit int, lease time.Duration) ([]OutboxRow, error) {
	var rows []OutboxRow
	err := s.Tx(ctx, func(tx *Tx) error {
		for {
			var heads []struct {
				ID     int64 `db:"id"`
				Settle bool  `db:"settle"`
			}
			if err := tx.sq.SelectContext(ctx, &heads, `
				SELECT id, (email IS NULL AND phone IS NULL OR `+superseded+`) AS settle
				FROM suppression_outbox o
				WHERE destination = $1 AND status = 'sent' AND verify_due_at <= now()
				ORDER BY verify_due_at, id LIMIT $2
				FOR UPDATE SKIP LOCKED`, destination, limit); err != nil {
				return err
			}
			if len(heads) == 0 {
				return nil
			}
			var settle, claim []int64
			for _, h := range heads {
				if h.Settle {
					settle = append(settle, h.ID)
				} else {
					claim = append(claim, h.ID)
				}
			}
			if len(settle) > 0 {
				if _, err := tx.sq.ExecContext(ctx, `UPDATE suppression_outbox SET verify_due_at = NULL WHERE id = ANY($1)`, pq.Array(settle)); err != nil {
					return err
				}
			}
			if len(claim) == 0 {
				continue // every head was settled: look at the next ones
			}
			if err := tx.sq.SelectContext(ctx, &rows, `
				UPDATE suppression_outbox SET verify_due_at = now() + $2 * interval '1 millisecond', verify_attempts = verify_attempts + 1
				WHERE id = ANY($1)
				RETURNING `+outboxCols, pq.Array(claim), lease.Milliseconds()); err != nil {
				return err
			}
			// RETURNING keeps no order: back to the due order.
			at := make(map[int64]int, len(claim))
			for i, id := range claim {
				at[id] = i
			}
			slices.SortFunc(rows, func(a, b OutboxRow) int { return at[a.ID] - at[b.ID] })
			return nil
		}
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim verify: %w", err)
	}
	return rows, nil
}

// ownReadBack is true of a row o whose read-back outcome d (VerifyDone,
// with its claim's lease as text, empty for none) belongs to its latest
// read-back claim: ClaimVerify moves verify_due_at to the lease's end, a
// newer claim or a push moves it again.
const ownReadBack = `(d.lease = '' OR o.verify_due_at = d.lease::timestamptz)`

// superseded is true of an outbox row o that a later row for the same
// destination, target subject, channel, brand and purpose replaces.
const superseded = `EXISTS (SELECT 1 FROM suppression_outbox n WHERE n.destination = o.destination AND n.id > o.id
	AND n.target_subject_id = o.target_subject_id AND n.channel = o.channel AND n.brand = o.brand AND n.purpose = o.purpose)`

// MaxMismatches bounds the push, read-back, mismatch loop of one row: a
// destination that still does not hold a suppression after this many
// pushes (a provider-side automation resetting the flag, say) gets the row
// failed rather than pushed forever against its quota.
const MaxMismatches = 5

// Read-back outcomes (VerifyDone.Outcome), also the kinds of
// destination_events rows.
const (
	// VerifyHeld: the destination holds the suppression; verified_at is set.
	VerifyHeld = "verified"
	// VerifyMissing: the destination does not hold it: the row goes back
	// to pending (pushed again at once) and mismatches grows; at
	// MaxMismatches the row fails instead (something at the destination
	// keeps undoing it: an operator must look, see deadletters).
	VerifyMissing = "mismatch"
	// VerifyUnknown: the destination could not say; asked again RetryIn
	// from the commit, or, when RetryIn is zero, given up (kind
	// "unverified").
	VerifyUnknown = "unverified"
	// DriftMissing: a drift check found it missing (kind "drift").
	DriftMissing = "drift"
)

// VerifyDone is the outcome of one read-back.
type VerifyDone struct {
	ID      int64
	Outcome string // VerifyHeld, VerifyMissing or VerifyUnknown
	// Receipt is the provider's answer, addresses masked.
	Receipt string
	// RetryIn, for VerifyUnknown, is when to ask again: that long after
	// the commit, by Postgres's clock (a caller's clock may be off); zero
	// or less: given up.
	RetryIn time.Duration
	// Lease is the row's verify_due_at as its read-back claim set it
	// (OutboxRow.VerifyDueAt): the outcome is recorded only if no claim
	// or push came since (a verifier that stalled past its lease records
	// nothing over a newer read-back or push). Zero: recorded regardless.
	Lease time.Time
}

// CompleteVerify records read-back outcomes in one transaction and returns
// the ledger ids (consent_event_id) whose every suppression is now settled
// (refused for good, or sent with no read-back left to do: the settled
// condition below), for the withdrawal-honoured metric.
func (s *Store) CompleteVerify(ctx context.Context, done []VerifyDone) ([]int64, error) {
	var held, missing, unknown, retry []int64
	var heldR, missingR, unknownR []string
	var heldL, missingL, unknownL, retryL []string
	var retryIn []int64
	for _, d := range done {
		r := truncate(d.Receipt, 2000)
		lease := ""
		if !d.Lease.IsZero() {
			lease = d.Lease.UTC().Format(time.RFC3339Nano)
		}
		switch {
		case d.Outcome == VerifyHeld:
			held, heldR, heldL = append(held, d.ID), append(heldR, r), append(heldL, lease)
		case d.Outcome == VerifyMissing:
			missing, missingR, missingL = append(missing, d.ID), append(missingR, r), append(missingL, lease)
		case d.RetryIn <= 0:
			unknown, unknownR, unknownL = append(unknown, d.ID), append(unknownR, r), append(unknownL, lease)
		default:
			retry, retryIn, retryL = append(retry, d.ID), append(retryIn, retryMillis(d.RetryIn)), append(retryL, lease)
		}
	}
	var events []int64
	err := s.Tx(ctx, func(tx *Tx) error {
		steps := []struct {
			n    int
			q    string
			args []any
		}{
			{len(held), `WITH d AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(id, receipt, lease)),
				u AS (UPDATE suppression_outbox o SET verified_at = now(), verify_due_at = NULL, verify_receipt = d.receipt
					FROM d WHERE o.id = d.id AND o.status = 'sent' AND ` + ownReadBack + ` RETURNING o.id, d.receipt)
				INSERT INTO destination_events (outbox_id, kind, receipt) SELECT id, 'verified', receipt FROM u`, []any{pq.Array(held), pq.Array(heldR), pq.Array(heldL)}},
			{len(missing), `WITH d AS (SELECT * FROM unnest($1::bigint[], $2::text[], $4::text[]) AS d(id, receipt, lease)),
				u AS (UPDATE suppression_outbox o SET status = CASE WHEN o.mismatches + 1 >= $3 THEN 'failed' ELSE 'pending' END,
					next_attempt_at = now(), verify_due_at = NULL, verified_at = NULL,
					mismatches = mismatches + 1, verify_receipt = d.receipt,
					last_error = CASE WHEN o.mismatches + 1 >= $3
						THEN 'read-back: the destination still does not hold the suppression after ' || $3::int || ' pushes (something there undoes it)'
						ELSE 'read-back: the destination does not hold the suppression' END
					FROM d WHERE o.id = d.id AND o.status = 'sent' AND ` + ownReadBack + ` AND (o.email IS NOT NULL OR o.phone IS NOT NULL) AND NOT ` + superseded + ` RETURNING o.id, d.receipt)
				INSERT INTO destination_events (outbox_id, kind, receipt) SELECT id, 'mismatch', receipt FROM u`, []any{pq.Array(missing), pq.Array(missingR), MaxMismatches, pq.Array(missingL)}},
			// Missing, but an erasure removed the address since the
			// claim: nothing left to push or ask about (as ClaimVerify
			// settles such rows); pending again, the push would refuse it
			// for good for want of an address.
			{len(missing), `WITH d AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(id, receipt, lease)),
				u AS (UPDATE suppression_outbox o SET verify_due_at = NULL, verify_receipt = d.receipt
					FROM d WHERE o.id = d.id AND o.status = 'sent' AND ` + ownReadBack + ` AND o.email IS NULL AND o.phone IS NULL RETURNING o.id, d.receipt)
				INSERT INTO destination_events (outbox_id, kind, receipt) SELECT id, 'unverified', receipt FROM u`, []any{pq.Array(missing), pq.Array(missingR), pq.Array(missingL)}},
			{len(unknown), `WITH d AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(id, receipt, lease)),
				u AS (UPDATE suppression_outbox o SET verify_due_at = NULL, verify_receipt = d.receipt
					FROM d WHERE o.id = d.id AND o.status = 'sent' AND ` + ownReadBack + ` RETURNING o.id, d.receipt)
				INSERT INTO destination_events (outbox_id, kind, receipt) SELECT id, 'unverified', receipt FROM u`, []any{pq.Array(unknown), pq.Array(unknownR), pq.Array(unknownL)}},
			{len(retry), `UPDATE suppression_outbox o SET verify_due_at = now() + d.in_ms * interval '1 millisecond'
				FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS d(id, in_ms, lease)
				WHERE o.id = d.id AND o.status = 'sent' AND ` + ownReadBack, []any{pq.Array(retry), pq.Array(retryIn), pq.Array(retryL)}},
		}
		for _, st := range steps {
			if st.n == 0 {
				continue
			}
			if _, err := tx.sq.ExecContext(ctx, st.q, st.args...); err != nil {
				return fmt.Errorf("store: complete verify: %w", err)
			}
		}
		if len(held)+len(unknown)+len(missing) == 0 {
			return nil
		}
		return tx.sq.SelectContext(ctx, &events, `SELECT DISTINCT o.consent_event_id FROM suppression_outbox o
			WHERE o.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM suppression_outbox x WHERE x.consent_event_id = o.consent_event_id AND NOT (`+settled+`))`,
			pq.Array(append(append(held, unknown...), missing...)))
	})
	return events, err
}

// settled is true of a suppression row x that needs nothing more: refused
// for good, or sent and verified, or sent to a destination that cannot be
// read back, or sent and its read-back given up.
const settled = `x.status = 'failed' OR x.status = 'sent' AND x.verify_due_at IS NULL`

// honoured is true of a suppression row x that a destination holds: sent,
// and verified, or not readable back, or its read-back given up. A row
// refused for good (failed) is not honoured: it needs an operator.
const honoured = `x.action = 'suppress' AND x.status = 'sent' AND x.verify_due_at IS NULL`

// Honoured returns, of ledger ids, the withdrawals whose every suppression
// is honoured (none pending, failed or awaiting its read-back), with their
// received_at (the withdrawal's receipt time). Lifts are not withdrawals:
// a ledger id with a lift row is never returned.
func (s *Store) Honoured(ctx context.Context, eventIDs []int64) (map[int64]time.Time, error) {
	var rows []struct {
		ID         int64     `db:"id"`
		ReceivedAt time.Time `db:"received_at"`
	}
	err := s.DB.SelectContext(ctx, &rows, `SELECT e.id, e.received_at FROM consent_events e WHERE e.id = ANY($1)
		AND NOT EXISTS (SELECT 1 FROM suppression_outbox x WHERE x.consent_event_id = e.id AND NOT (`+honoured+`))`, pq.Array(eventIDs))
	if err != nil {
		return nil, fmt.Errorf("store: honoured: %w", err)
	}
	out := make(map[int64]time.Time, len(rows))
	for _, r := range rows {
		out[r.ID] = r.ReceivedAt
	}
	return out, nil
}

// Overdue is a withdrawal not yet honoured everywhere.
type Overdue struct {
	// ConsentEventID is the withdrawal's ledger row.
	ConsentEventID int64 `db:"consent_event_id" json:"consent_event_id"`
	SubjectID      int64 `db:"subject_id" json:"subject_id"`
	// Identity is the subject's address or number, as `consentsync
	// subject` takes it ("" once erased).
	Identity   string    `db:"identity" json:"identity"`
	ReceivedAt time.Time `db:"received_at" json:"received_at"`
	Channel    string    `db:"channel" json:"channel"`
	Brand      string    `db:"brand" json:"brand"`
	Purpose    string    `db:"purpose" json:"purpose"`
	// Destinations lists "name: state" for each destination not settled
	// ("sendgrid-acme: pending (3 attempts)", "klaviyo: sent, not
	// verified"); a suppression going to another address of the person
	// (an alias, a linked number) names it: "klaviyo (to
	// j.doe@gmail.com): sent, not verified".
	Destinations pq.StringArray `db:"destinations" json:"destinations"`
}

// ListOverdue lists, oldest first (at most limit), the withdrawals received
// before before that some destination does not yet honour: a suppression
// pending, refused for good (failed: it needs an operator, see
// deadletters), or sent and not yet read back.
func (s *Store) ListOverdue(ctx context.Context, before time.Time, limit int) ([]Overdue, error) {
	var out []Overdue
	err := s.DB.SelectContext(ctx, &out, `SELECT e.id AS consent_event_id, e.subject_id,
		coalesce((SELECT coalesce(sb.email_original, sb.email, sb.phone) FROM subjects sb WHERE sb.id = e.subject_id), '') AS identity,
		e.received_at, e.channel, e.brand, e.purpose,
		array_agg(x.destination || CASE WHEN x.target_subject_id <> e.subject_id THEN ' (to ' || coalesce(x.email, x.phone, 'an erased address') || ')' ELSE '' END
			|| ': ' || CASE WHEN x.status = 'pending' THEN 'pending (' || x.attempts || ' attempts)'
			WHEN x.status = 'failed' THEN 'failed (refused for good)' ELSE 'sent, not verified' END ORDER BY x.destination) AS destinations
		FROM consent_events e JOIN suppression_outbox x ON x.consent_event_id = e.id AND x.action = 'suppress' AND NOT (`+honoured+`)
		WHERE e.received_at < $1
		GROUP BY e.id ORDER BY e.received_at, e.id LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("store: overdue: %w", err)
	}
	return out, nil
}

// HeldSuppressions pages (id after afterID, at most limit) through the sent
// suppressions of destination that it should still hold: the newest sent
// row per address and scope (channel, brand, purpose), whose address is
// still known (not erased). Drift checks read them back.
func (s *Store) HeldSuppressions(ctx context.Context, destination string, afterID int64, limit int) ([]OutboxRow, error) {
	var rows []OutboxRow
	err := s.DB.SelectContext(ctx, &rows, `SELECT `+outboxCols+` FROM suppression_outbox o
		WHERE destination = $1 AND id > $2 AND status = 'sent' AND action = 'suppress' AND (email IS NOT NULL OR phone IS NOT NULL)
		  AND NOT `+superseded+`
		ORDER BY id LIMIT $3`, destination, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: held suppressions: %w", err)
	}
	return rows, nil
}

// NextDue is when destination next has work: the earliest time one of its
// pending rows may be claimed (next_attempt_at, or its lease's end) or one
// of its sent rows' read-back is due (ok false: none). Indexes: suppression_outbox_pending,
// suppression_outbox_verify.
func (s *Store) NextDue(ctx context.Context, destination string) (time.Time, bool, error) {
	var at sql.NullTime
	err := s.DB.GetContext(ctx, &at, `SELECT least(
		(SELECT min(greatest(next_attempt_at, lease_until)) FROM suppression_outbox WHERE destination = $1 AND status = 'pending'),
		(SELECT min(verify_due_at) FROM suppression_outbox WHERE destination = $1 AND status = 'sent' AND verify_due_at IS NOT NULL))`, destination)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next due: %w", err)
	}
	return at.Time, at.Valid, nil
}

// MaxOutboxID is the largest outbox row id of destination (0: none).
func (s *Store) MaxOutboxID(ctx context.Context, destination string) (int64, error) {
	var id int64
	if err := s.DB.GetContext(ctx, &id, `SELECT coalesce(max(id), 0) FROM suppression_outbox WHERE destination = $1`, destination); err != nil {
		return 0, fmt.Errorf("store: max outbox id: %w", err)
	}
	return id, nil
}

// RecordDrift records, for each of ids, that a drift check found the
// destination no longer holding the suppression (a "drift" history line
// with receipt), and, when repair, puts the row back to pending to be
// pushed again and counts the mismatch (mismatches, the budget of pushes
// MaxMismatches bounds); a report-only check pushes nothing, so it counts
// none. It returns the rows changed. A row a later one of its
// scope superseded since the check read it (a lift pushed meanwhile: the
// provider rightly no longer holds the suppression) is left alone, as
// CompleteVerify does: pushed again, it would undo the newer row.
func (s *Store) RecordDrift(ctx context.Context, ids []int64, receipts []string, repair bool) (int, error) {
	var n int
	err := s.Tx(ctx, func(tx *Tx) error {
		q := `WITH d AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS d(id, receipt)),
			u AS (UPDATE suppression_outbox o SET verify_receipt = d.receipt
				FROM d WHERE o.id = d.id AND o.status = 'sent' AND NOT ` + superseded + ` RETURNING o.id, d.receipt)
			INSERT INTO destination_events (outbox_id, kind, receipt) SELECT id, 'drift', receipt FROM u`
		if repair {
			q = `WITH d AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS d(id, receipt)),
			u AS (UPDATE suppression_outbox o SET status = 'pending', next_attempt_at = now(), verify_due_at = NULL, verified_at = NULL,
				mismatches = mismatches + 1, verify_receipt = d.receipt, last_error = 'drift: the destination no longer holds the suppression'
				FROM d WHERE o.id = d.id AND o.status = 'sent' AND NOT ` + superseded + ` RETURNING o.id, d.receipt)
			INSERT INTO destination_events (outbox_id, kind, receipt) SELECT id, 'drift', receipt FROM u`
		}
		trimmed := make([]string, len(receipts))
		for i, r := range receipts {
			trimmed[i] = truncate(r, 2000)
		}
		res, err := tx.sq.ExecContext(ctx, q, pq.Array(ids), pq.Array(trimmed))
		if err != nil {
			return fmt.Errorf("store: record drift: %w", err)
		}
		rows, _ := res.RowsAffected()
		n = int(rows)
		return nil
	})
	return n, err
}
