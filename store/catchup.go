package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
)

// CatchUpQuery says which page of people a destination's catch-up reads
// (Tx.CatchUpPage): the destination, the keys it covers (its brand × its
// channels × its purposes) and the page: live subjects with an id above
// AfterID, Limit of them (1 to 10,000).
type CatchUpQuery struct {
	Destination string
	Brand       string
	Channels    []string
	Purposes    []string
	AfterID     int64
	Limit       int
	// Subjects, when not nil, replaces the page by these subjects (live
	// ones only): every identity set holding one of them is read, whatever
	// its oldest member (an incremental run, Tx.WithdrewSince).
	Subjects []int64
}

// CatchUpPage is one page of a destination's catch-up.
type CatchUpPage struct {
	// People are the identity sets whose oldest live member is in the
	// page and some member of which withdrew a covered key (ever: whether
	// it stands is the caller's rule), each with every member's facts (all
	// keys, as People loads them): every such set is read once over a
	// whole run, with all of its members, whichever page they fall in.
	People []Person
	// Withdrawals are, per member of People and covered key, the member's
	// latest withdrawal in the ledger, with its source and reason.
	Withdrawals []SetWithdrawal
	// Suppressed holds, per target subject and covered key, the
	// occurrence time of the newest ledger row whose suppression was
	// already queued for that target at the destination (any status).
	Suppressed map[TargetKey]time.Time
	// Read is how many subjects the page read; Next is the last one's id,
	// to give as AfterID for the next page (0 when the page was empty:
	// the run is over).
	Read int
	Next int64
}

// TargetKey is a target subject and a key.
type TargetKey struct {
	Target int64
	Key    consent.Key
}

// CatchUpPage reads, inside tx, one page of q.Destination's catch-up,
// with a fixed number of queries whatever the page size (the identity
// sets: 1 + 2 per hop, as People): live subjects with id > q.AfterID in
// ascending id order, their identity sets (store.People's resolution),
// and, for the sets whose oldest live member is in the page and some
// member of which withdrew a covered key, the identities locked
// (Tx.LockIdentities with key: reconciliation and erasure of those people
// wait until tx ends, so a grant cannot lift a withdrawal between this
// read and the rows tx queues), then their facts,
// their latest withdrawals of the covered keys, and what the destination
// already holds for them. Erased subjects are not read.
func (tx *Tx) CatchUpPage(ctx context.Context, key []byte, q CatchUpQuery) (CatchUpPage, error) {
	if q.Limit < 1 || q.Limit > 10000 {
		return CatchUpPage{}, fmt.Errorf("store: catch-up page of %d subjects (want 1 to 10000)", q.Limit)
	}
	var page []Member
	var err error
	if q.Subjects != nil {
		err = tx.sq.SelectContext(ctx, &page, `SELECT `+memberCols+` FROM subjects
			WHERE id = ANY($1) AND erased_at IS NULL ORDER BY id`, pq.Array(q.Subjects))
	} else {
		err = tx.sq.SelectContext(ctx, &page, `SELECT `+memberCols+` FROM subjects
			WHERE id > $1 AND erased_at IS NULL ORDER BY id LIMIT $2`, q.AfterID, q.Limit)
	}
	if err != nil {
		return CatchUpPage{}, fmt.Errorf("store: catch-up page: %w", err)
	}
	out := CatchUpPage{Read: len(page), Suppressed: map[TargetKey]time.Time{}}
	if len(page) == 0 {
		return out, nil
	}
	out.Next = page[len(page)-1].SubjectID
	// Most subjects are a set of one: no Gmail mailbox to share and no
	// link (as Tx.SetMembers). One query finds the linked ones; only they
	// and the Gmail addresses are resolved.
	pageIDs := SubjectIDs(page)
	var linked []int64
	if err := tx.sq.SelectContext(ctx, &linked, `SELECT DISTINCT subject_id FROM subject_links WHERE subject_id = ANY($1)`,
		pq.Array(pageIDs)); err != nil {
		return CatchUpPage{}, fmt.Errorf("store: catch-up links: %w", err)
	}
	isLinked := make(map[int64]bool, len(linked))
	for _, id := range linked {
		isLinked[id] = true
	}
	sets := make([][]Member, len(page))
	var ids []Identifier
	var at []int
	for i, m := range page {
		if !strings.HasSuffix(m.MailboxKey, gmailSuffix) && !isLinked[m.SubjectID] {
			sets[i] = []Member{m}
			continue
		}
		ids = append(ids, Identifier{Email: m.Email, Phone: m.Phone})
		at = append(at, i)
	}
	if len(ids) > 0 {
		resolved, err := resolveSets(ctx, tx.sq, ids)
		if err != nil {
			return CatchUpPage{}, err
		}
		for j, i := range at {
			sets[i] = resolved[j]
		}
	}
	var owned [][]Member
	var all []int64
	taken := map[int64]bool{}
	for i, set := range sets {
		// Members are oldest first: the set belongs to the page of its
		// first (given subjects: to the first page that names a member).
		if len(set) == 0 || taken[set[0].SubjectID] || q.Subjects == nil && set[0].SubjectID != page[i].SubjectID {
			continue
		}
		taken[set[0].SubjectID] = true
		owned = append(owned, set)
		all = append(all, SubjectIDs(set)...)
	}
	// Most people never withdrew a covered key: only the sets where some
	// member did are locked and loaded.
	var withdrew []int64
	if len(all) > 0 {
		if err := tx.sq.SelectContext(ctx, &withdrew, `SELECT DISTINCT subject_id FROM consent_events
			WHERE subject_id = ANY($1) AND status = 'withdrawn' AND brand = $2 AND channel = ANY($3) AND purpose = ANY($4)`,
			pq.Array(all), q.Brand, pq.Array(q.Channels), pq.Array(q.Purposes)); err != nil {
			return CatchUpPage{}, fmt.Errorf("store: catch-up withdrawn subjects: %w", err)
		}
	}
	did := make(map[int64]bool, len(withdrew))
	for _, id := range withdrew {
		did[id] = true
	}
	lock := map[string]consent.Subject{}
	var members []int64
	for _, set := range owned {
		if !slices.ContainsFunc(set, func(m Member) bool { return did[m.SubjectID] }) {
			continue
		}
		out.People = append(out.People, Person{Members: set})
		for _, m := range set {
			lock[m.Subject().Key()] = m.Subject()
			members = append(members, m.SubjectID)
		}
	}
	if len(members) == 0 {
		return out, nil
	}
	if err := tx.LockIdentities(ctx, key, lock); err != nil {
		return CatchUpPage{}, err
	}
	facts, err := loadFacts(ctx, tx.sq, members, nil)
	if err != nil {
		return CatchUpPage{}, err
	}
	for i := range out.People {
		p := &out.People[i]
		p.Facts = make([]consent.Facts, len(p.Members))
		for j, m := range p.Members {
			f := *facts[m.SubjectID]
			f.Known, f.Email, f.Professional = true, m.Email, m.Professional
			p.Facts[j] = f
		}
	}
	if err := tx.sq.SelectContext(ctx, &out.Withdrawals, `SELECT DISTINCT ON (subject_id, channel, purpose)
			id, subject_id, channel, brand, purpose, occurred_at, source, coalesce(evidence->>'event', '') AS reason
		FROM consent_events
		WHERE subject_id = ANY($1) AND status = 'withdrawn' AND brand = $2 AND channel = ANY($3) AND purpose = ANY($4)
		ORDER BY subject_id, channel, purpose, occurred_at DESC, id DESC`,
		pq.Array(members), q.Brand, pq.Array(q.Channels), pq.Array(q.Purposes)); err != nil {
		return CatchUpPage{}, fmt.Errorf("store: catch-up withdrawals: %w", err)
	}
	for i := range out.Withdrawals {
		out.Withdrawals[i].OccurredAt = out.Withdrawals[i].OccurredAt.UTC()
	}
	var held []struct {
		Target  int64     `db:"target_subject_id"`
		Channel string    `db:"channel"`
		Purpose string    `db:"purpose"`
		At      time.Time `db:"at"`
	}
	if err := tx.sq.SelectContext(ctx, &held, `SELECT o.target_subject_id, o.channel, o.purpose, max(e.occurred_at) AS at
		FROM suppression_outbox o JOIN consent_events e ON e.id = o.consent_event_id
		WHERE o.target_subject_id = ANY($1) AND o.destination = $2 AND o.brand = $3 AND o.action = 'suppress'
		GROUP BY o.target_subject_id, o.channel, o.purpose`, pq.Array(members), q.Destination, q.Brand); err != nil {
		return CatchUpPage{}, fmt.Errorf("store: catch-up held suppressions: %w", err)
	}
	for _, h := range held {
		k := consent.Key{Channel: consent.Channel(h.Channel), Brand: q.Brand, Purpose: consent.Purpose(h.Purpose)}
		out.Suppressed[TargetKey{Target: h.Target, Key: k}] = h.At.UTC()
	}
	return out, nil
}

// AddOutboxRows queues rows inside tx with one statement per 1,000 (a row
// already queued — same destination, ledger row and target — is left as
// is) and reports how many were added.
func (tx *Tx) AddOutboxRows(ctx context.Context, rows []OutboxRow) (int64, error) {
	if err := tx.Flush(ctx); err != nil {
		return 0, err
	}
	var added int64
	err := inChunks(len(rows), func(lo, hi int) error {
		n, err := tx.insertOutbox(ctx, rows[lo:hi])
		added += n
		return err
	})
	return added, err
}

// CatchUpState is what destination_catch_up remembers of a destination.
type CatchUpState struct {
	Destination string       `db:"destination"`
	RouteHash   string       `db:"route_hash"`
	AfterID     int64        `db:"after_subject_id"`
	Queued      int64        `db:"queued"`
	LedgerHigh  int64        `db:"ledger_high"`
	StartedAt   time.Time    `db:"started_at"`
	DoneAt      sql.NullTime `db:"done_at"`
}

// CatchUpState returns what is remembered of destination's catch-up, or
// false when it never started one.
func (s *Store) CatchUpState(ctx context.Context, destination string) (CatchUpState, bool, error) {
	var st CatchUpState
	err := s.DB.GetContext(ctx, &st, `SELECT destination, route_hash, after_subject_id, queued, ledger_high, started_at, done_at
		FROM destination_catch_up WHERE destination = $1`, destination)
	if errors.Is(err, sql.ErrNoRows) {
		return CatchUpState{}, false, nil
	}
	if err != nil {
		return CatchUpState{}, false, fmt.Errorf("store: catch-up state: %w", err)
	}
	return st, true, nil
}

// SaveCatchUp records, inside tx (the page's own transaction, so progress
// and the rows it queued commit together), how far destination's catch-up
// for routeHash got; done marks it finished. A new route hash replaces the
// old record.
func (tx *Tx) SaveCatchUp(ctx context.Context, st CatchUpState, done bool) error {
	if _, err := tx.sq.ExecContext(ctx, `INSERT INTO destination_catch_up (destination, route_hash, after_subject_id, queued, ledger_high, started_at, done_at)
		VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END)
		ON CONFLICT (destination) DO UPDATE SET route_hash = EXCLUDED.route_hash, after_subject_id = EXCLUDED.after_subject_id,
			queued = EXCLUDED.queued, ledger_high = EXCLUDED.ledger_high, started_at = EXCLUDED.started_at, done_at = EXCLUDED.done_at`,
		st.Destination, st.RouteHash, st.AfterID, st.Queued, st.LedgerHigh, st.StartedAt, done); err != nil {
		return fmt.Errorf("store: save catch-up: %w", err)
	}
	return nil
}

// LedgerHigh returns the newest ledger row's id (0 for an empty ledger).
func (s *Store) LedgerHigh(ctx context.Context) (int64, error) {
	var id int64
	if err := s.DB.GetContext(ctx, &id, `SELECT coalesce(max(id), 0) FROM consent_events`); err != nil {
		return 0, fmt.Errorf("store: ledger high: %w", err)
	}
	return id, nil
}

// WithdrewSince lists, in ascending order, up to limit subjects with an id
// above afterSubject that have a withdrawal of a key q covers (q's brand,
// channels, purposes) among the ledger rows with ids in (fromEvent,
// toEvent]: the people an incremental catch-up reads again.
func (s *Store) WithdrewSince(ctx context.Context, q CatchUpQuery, fromEvent, toEvent, afterSubject int64, limit int) ([]int64, error) {
	var ids []int64
	if err := s.DB.SelectContext(ctx, &ids, `SELECT DISTINCT subject_id FROM consent_events
		WHERE id > $1 AND id <= $2 AND subject_id > $3 AND status = 'withdrawn' AND brand = $4 AND channel = ANY($5) AND purpose = ANY($6)
		ORDER BY subject_id LIMIT $7`, fromEvent, toEvent, afterSubject, q.Brand, pq.Array(q.Channels), pq.Array(q.Purposes), limit); err != nil {
		return nil, fmt.Errorf("store: withdrew since: %w", err)
	}
	return ids, nil
}
