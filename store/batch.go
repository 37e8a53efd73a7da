package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
)

// batchCache holds, for one transaction, every fact a batch of inbound
// rows reads about the subjects it names, loaded up front by Tx.Preload in
// a fixed number of set-based queries, and the writes that can wait for
// the end of the batch (Tx.Flush): ledger rows (with ids drawn for the
// batch), current states, suppressions of those ledger rows, contacts,
// which request named which subject and identity, and the rows' processed
// marks.
//
// Reads of a subject not loaded (a member of an identity set reached
// through another, say) go to Postgres as without a cache. Writes made by
// the transaction update the cache, so a read always sees them. Every read
// that goes to the deferred tables (NewestGrant, StateKeys, SetWithdrawals,
// LatestSuppression, LatestWithdrawal of a set not all loaded, AddOutbox of
// an older ledger row, an AppendLedger Preload did not foresee) flushes
// first, and an erasure (EraseData) flushes and drops the cache.
type batchCache struct {
	// known: subjects whose states, ledger head, contacts, links and
	// withdrawals below are complete.
	known   map[int64]bool
	byEmail map[string]int64
	byPhone map[string]int64
	self    map[int64]Member
	linked  map[int64]bool
	states  map[stateKey]consent.State
	head    map[int64][]byte
	// withdrawn is the latest withdrawal's occurrence per subject and key.
	withdrawn map[stateKey]time.Time
	delivered map[contactKey]time.Time
	// erased holds erased_at per identity hash, for every hash in hashKnown.
	erased    map[string]time.Time
	hashKnown map[string]bool

	// facts holds, for every ledger fact the batch may append (source and
	// dedup key, checked by Preload), whether the ledger has it.
	facts map[string]bool
	// ids are ledger row ids drawn from the sequence for this batch's
	// appends, used in order.
	ids []int64

	ledger          []LedgerEntry
	ledgerIDs       []int64
	appendedIDs     map[int64]bool
	outbox          []OutboxRow
	queued          map[string]bool
	contacts        map[activityKey][2]time.Time
	putStates       map[stateKey]pendingState
	subjectRequests map[[2]int64]bool
	identities      map[string]map[int64]bool
	finished        []finishedInbound
}

// LedgerFact names a ledger fact a batch may append: its source and dedup key
// (consent.FactKey).
type LedgerFact struct {
	Source string
	Key    []byte
}

func factID(source string, key []byte) string { return source + "\x00" + string(key) }

type stateKey struct {
	subject int64
	key     consent.Key
}

type contactKey struct {
	subject int64
	brand   string
	channel consent.Channel
}

type activityKey struct {
	subject int64
	brand   string
	channel consent.Channel
	kind    string
}

type pendingState struct {
	event int64
	sig   consent.Signal
}

type finishedInbound struct {
	id    int64
	notes []byte
}

// Preload loads, in one query per table, what reconciling requests naming
// subs (by key, normalized) and named (every identifier they mention)
// reads: erased identities, existing subjects (locked, as EnsureSubject
// locks them), their current states, ledger heads, latest withdrawals,
// first deliveries and links. From then on the Tx methods that read those
// facts answer from memory, and the deferrable writes wait for Flush.
func (tx *Tx) Preload(ctx context.Context, key []byte, subs map[string]consent.Subject, named []consent.Subject, facts []LedgerFact) error {
	c := &batchCache{
		known: map[int64]bool{}, byEmail: map[string]int64{}, byPhone: map[string]int64{}, self: map[int64]Member{},
		linked: map[int64]bool{}, states: map[stateKey]consent.State{}, head: map[int64][]byte{},
		withdrawn: map[stateKey]time.Time{}, delivered: map[contactKey]time.Time{}, erased: map[string]time.Time{},
		hashKnown: map[string]bool{}, putStates: map[stateKey]pendingState{}, subjectRequests: map[[2]int64]bool{},
		contacts: map[activityKey][2]time.Time{}, identities: map[string]map[int64]bool{}, facts: map[string]bool{}, appendedIDs: map[int64]bool{}, queued: map[string]bool{},
	}
	if len(facts) > 0 {
		srcs, keys := make([]string, len(facts)), make([][]byte, len(facts))
		for i, f := range facts {
			srcs[i], keys[i] = f.Source, f.Key
			c.facts[factID(f.Source, f.Key)] = false
		}
		var have []struct {
			Source string `db:"source"`
			Key    []byte `db:"dedup_key"`
		}
		if err := tx.sq.SelectContext(ctx, &have, `SELECT e.source, e.dedup_key FROM consent_events e
			JOIN unnest($1::text[], $2::bytea[]) AS f(source, dedup_key) ON e.source = f.source AND e.dedup_key = f.dedup_key`,
			pq.Array(srcs), pq.ByteaArray(keys)); err != nil {
			return fmt.Errorf("store: preload facts: %w", err)
		}
		for _, h := range have {
			c.facts[factID(h.Source, h.Key)] = true
		}
		if err := tx.sq.SelectContext(ctx, &c.ids, `SELECT nextval('consent_events_id_seq') FROM generate_series(1, $1)`, len(facts)); err != nil {
			return fmt.Errorf("store: ledger ids: %w", err)
		}
	}
	var hashes [][]byte
	var emails, phones []string
	addHashes := func(sub consent.Subject) {
		for _, h := range IdentityHashes(key, sub) {
			if !c.hashKnown[string(h)] {
				c.hashKnown[string(h)] = true
				hashes = append(hashes, h)
			}
		}
	}
	for _, sub := range subs {
		addHashes(sub)
		switch {
		case sub.Email != "":
			emails = append(emails, sub.Email)
		case sub.Phone != "":
			phones = append(phones, sub.Phone)
		}
	}
	for _, sub := range named {
		addHashes(sub)
	}
	if len(hashes) > 0 {
		var rows []struct {
			Hash []byte    `db:"identity_hash"`
			At   time.Time `db:"erased_at"`
		}
		if err := tx.sq.SelectContext(ctx, &rows, `SELECT identity_hash, erased_at FROM erased_identities WHERE identity_hash = ANY($1)`, pq.ByteaArray(hashes)); err != nil {
			return fmt.Errorf("store: preload erased: %w", err)
		}
		for _, r := range rows {
			c.erased[string(r.Hash)] = r.At
		}
	}
	var members []Member
	if err := tx.sq.SelectContext(ctx, &members, `UPDATE subjects SET updated_at = now()
		WHERE email = ANY($1) OR phone = ANY($2) RETURNING `+memberCols, pq.Array(emails), pq.Array(phones)); err != nil {
		return fmt.Errorf("store: preload subjects: %w", err)
	}
	ids := make([]int64, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.SubjectID)
		c.known[m.SubjectID], c.self[m.SubjectID] = true, m
		if m.Email != "" {
			c.byEmail[m.Email] = m.SubjectID
		}
		if m.Phone != "" {
			c.byPhone[m.Phone] = m.SubjectID
		}
	}
	if len(ids) > 0 {
		if err := c.load(ctx, tx, ids); err != nil {
			return err
		}
	}
	tx.batch = c
	return nil
}

// load reads the facts of subjects ids.
func (c *batchCache) load(ctx context.Context, tx *Tx, ids []int64) error {
	var states []struct {
		Subject    int64     `db:"subject_id"`
		Channel    string    `db:"channel"`
		Brand      string    `db:"brand"`
		Purpose    string    `db:"purpose"`
		Status     string    `db:"status"`
		OccurredAt time.Time `db:"occurred_at"`
		Source     string    `db:"source"`
	}
	if err := tx.sq.SelectContext(ctx, &states, `SELECT subject_id, channel, brand, purpose, status, occurred_at, source
		FROM consent_states WHERE subject_id = ANY($1)`, pq.Array(ids)); err != nil {
		return fmt.Errorf("store: preload states: %w", err)
	}
	for _, s := range states {
		k := stateKey{s.Subject, consent.Key{Channel: consent.Channel(s.Channel), Brand: s.Brand, Purpose: consent.Purpose(s.Purpose)}}
		c.states[k] = consent.State{Status: consent.Status(s.Status), OccurredAt: s.OccurredAt.UTC(), Source: s.Source}
	}
	var heads []struct {
		Subject int64  `db:"subject_id"`
		Hash    []byte `db:"hash"`
	}
	if err := tx.sq.SelectContext(ctx, &heads, `SELECT DISTINCT ON (subject_id) subject_id, hash FROM consent_events
		WHERE subject_id = ANY($1) ORDER BY subject_id, id DESC`, pq.Array(ids)); err != nil {
		return fmt.Errorf("store: preload ledger heads: %w", err)
	}
	for _, h := range heads {
		c.head[h.Subject] = h.Hash
	}
	var ws []struct {
		Subject int64     `db:"subject_id"`
		Channel string    `db:"channel"`
		Brand   string    `db:"brand"`
		Purpose string    `db:"purpose"`
		At      time.Time `db:"at"`
	}
	if err := tx.sq.SelectContext(ctx, &ws, `SELECT subject_id, channel, brand, purpose, max(occurred_at) AS at FROM consent_events
		WHERE subject_id = ANY($1) AND status = 'withdrawn' GROUP BY 1, 2, 3, 4`, pq.Array(ids)); err != nil {
		return fmt.Errorf("store: preload withdrawals: %w", err)
	}
	for _, w := range ws {
		c.withdrawn[stateKey{w.Subject, consent.Key{Channel: consent.Channel(w.Channel), Brand: w.Brand, Purpose: consent.Purpose(w.Purpose)}}] = w.At.UTC()
	}
	var ds []struct {
		Subject int64     `db:"subject_id"`
		Brand   string    `db:"brand"`
		Channel string    `db:"channel"`
		At      time.Time `db:"first_at"`
	}
	if err := tx.sq.SelectContext(ctx, &ds, `SELECT subject_id, brand, channel, first_at FROM subject_contacts
		WHERE subject_id = ANY($1) AND kind = 'delivered'`, pq.Array(ids)); err != nil {
		return fmt.Errorf("store: preload contacts: %w", err)
	}
	for _, d := range ds {
		c.delivered[contactKey{d.Subject, d.Brand, consent.Channel(d.Channel)}] = d.At
	}
	var linked []int64
	if err := tx.sq.SelectContext(ctx, &linked, `SELECT DISTINCT subject_id FROM subject_links WHERE subject_id = ANY($1)`, pq.Array(ids)); err != nil {
		return fmt.Errorf("store: preload links: %w", err)
	}
	for _, id := range linked {
		c.linked[id] = true
	}
	return nil
}

// created records a subject EnsureSubject just inserted: nothing is known
// of it but itself.
func (c *batchCache) created(id int64, sub consent.Subject) {
	c.known[id] = true
	m := Member{SubjectID: id, Email: sub.Email, EmailOriginal: sub.EmailOriginal, Phone: sub.Phone,
		MailboxKey: consent.MailboxKey(sub.Email), CreatedAt: time.Now().UTC()}
	if sub.Email != "" {
		m.Phone = ""
		c.byEmail[sub.Email] = id
	} else {
		c.byPhone[sub.Phone] = id
	}
	c.self[id] = m
}

// cachedSubject answers EnsureSubject from the cache.
func (c *batchCache) cachedSubject(sub consent.Subject) (int64, bool) {
	if sub.Email != "" {
		id, ok := c.byEmail[sub.Email]
		return id, ok
	}
	id, ok := c.byPhone[sub.Phone]
	return id, ok
}

// singleton returns subjectID's own member row when its identity set is
// surely itself alone: loaded, not linked, not a Gmail mailbox.
func (c *batchCache) singleton(subjectID int64) (Member, bool) {
	if !c.known[subjectID] || c.linked[subjectID] {
		return Member{}, false
	}
	m, ok := c.self[subjectID]
	if !ok || strings.HasSuffix(m.MailboxKey, gmailSuffix) {
		return Member{}, false
	}
	return m, true
}

// Flush writes what Preload let wait — ledger rows, current states,
// contacts, suppressions, the requests that named each subject and
// identity, the processed marks — with one set-based statement per table
// and 1,000 rows (flushChunk). The cache stays usable.
func (tx *Tx) Flush(ctx context.Context) error {
	c := tx.batch
	if c == nil {
		return nil
	}
	if len(c.ledger) > 0 {
		if err := inChunks(len(c.ledger), func(lo, hi int) error {
			_, err := tx.insertLedger(ctx, c.ledgerIDs[lo:hi], c.ledger[lo:hi])
			return err
		}); err != nil {
			return err
		}
		c.ledger, c.ledgerIDs = nil, nil
	}
	states := make([]stateRow, 0, len(c.putStates))
	for k, p := range c.putStates {
		states = append(states, stateRow{k, p})
	}
	contacts := make([]contactRow, 0, len(c.contacts))
	for k, t := range c.contacts {
		contacts = append(contacts, contactRow{k, t})
	}
	requests := make([][2]int64, 0, len(c.subjectRequests))
	for p := range c.subjectRequests {
		requests = append(requests, p)
	}
	var identities []identityRow
	for h, ids := range c.identities {
		for id := range ids {
			identities = append(identities, identityRow{[]byte(h), id})
		}
	}
	for _, write := range []func() error{
		func() error {
			return inChunks(len(states), func(lo, hi int) error { return tx.writeStates(ctx, states[lo:hi]) })
		},
		func() error {
			return inChunks(len(contacts), func(lo, hi int) error { return tx.writeContacts(ctx, contacts[lo:hi]) })
		},
		func() error {
			return inChunks(len(c.outbox), func(lo, hi int) error { _, err := tx.insertOutbox(ctx, c.outbox[lo:hi]); return err })
		},
		func() error {
			return inChunks(len(requests), func(lo, hi int) error { return tx.writeSubjectRequests(ctx, requests[lo:hi]) })
		},
		func() error {
			return inChunks(len(identities), func(lo, hi int) error { return tx.writeIdentities(ctx, identities[lo:hi]) })
		},
		func() error {
			return inChunks(len(c.finished), func(lo, hi int) error { return tx.writeFinished(ctx, c.finished[lo:hi]) })
		},
	} {
		if err := write(); err != nil {
			return err
		}
	}
	c.putStates, c.contacts, c.outbox = map[stateKey]pendingState{}, map[activityKey][2]time.Time{}, nil
	c.subjectRequests, c.identities, c.finished = map[[2]int64]bool{}, map[string]map[int64]bool{}, nil
	return nil
}

// The rows of the set-based writes below: each is also how the write is
// done, one row at a time, without a batch (the same statement).
type (
	stateRow struct {
		key stateKey
		pendingState
	}
	contactRow struct {
		key   activityKey
		times [2]time.Time // first, last
	}
	identityRow struct {
		hash    []byte
		inbound int64
	}
)

// writeStates makes each row's signal the current state of its key.
func (tx *Tx) writeStates(ctx context.Context, rows []stateRow) error {
	var subj, event []int64
	var ch, brand, purpose, status, source, at []string
	for _, r := range rows {
		subj, event = append(subj, r.key.subject), append(event, r.event)
		ch, brand, purpose = append(ch, string(r.key.key.Channel)), append(brand, r.key.key.Brand), append(purpose, string(r.key.key.Purpose))
		status, source = append(status, string(r.sig.Status)), append(source, r.sig.Source)
		at = append(at, r.sig.OccurredAt.UTC().Format(time.RFC3339Nano))
	}
	_, err := tx.sq.ExecContext(ctx, `
		INSERT INTO consent_states (subject_id, channel, brand, purpose, status, occurred_at, source, event_id)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::bigint[])
		ON CONFLICT (subject_id, channel, brand, purpose) DO UPDATE SET
			status = EXCLUDED.status, occurred_at = EXCLUDED.occurred_at, source = EXCLUDED.source,
			event_id = EXCLUDED.event_id, updated_at = now()`,
		pq.Array(subj), pq.Array(ch), pq.Array(brand), pq.Array(purpose), pq.Array(status), pq.Array(at), pq.Array(source), pq.Array(event))
	if err != nil {
		return fmt.Errorf("store: put state: %w", err)
	}
	return nil
}

// writeContacts keeps the first and last time of each contact kind.
func (tx *Tx) writeContacts(ctx context.Context, rows []contactRow) error {
	var subj []int64
	var brand, channel, kind, first, last []string
	for _, r := range rows {
		subj, brand, channel, kind = append(subj, r.key.subject), append(brand, r.key.brand), append(channel, string(r.key.channel)), append(kind, r.key.kind)
		first, last = append(first, r.times[0].UTC().Format(time.RFC3339Nano)), append(last, r.times[1].UTC().Format(time.RFC3339Nano))
	}
	_, err := tx.sq.ExecContext(ctx, `
		INSERT INTO subject_contacts (subject_id, brand, channel, kind, first_at, last_at)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
		ON CONFLICT (subject_id, brand, channel, kind) DO UPDATE SET
			first_at = least(subject_contacts.first_at, EXCLUDED.first_at),
			last_at = greatest(subject_contacts.last_at, EXCLUDED.last_at)`,
		pq.Array(subj), pq.Array(brand), pq.Array(channel), pq.Array(kind), pq.Array(first), pq.Array(last))
	if err != nil {
		return fmt.Errorf("store: activity: %w", err)
	}
	return nil
}

// writeSubjectRequests remembers which request (pair[1]) named which
// subject (pair[0]).
func (tx *Tx) writeSubjectRequests(ctx context.Context, pairs [][2]int64) error {
	subj, in := make([]int64, len(pairs)), make([]int64, len(pairs))
	for i, p := range pairs {
		subj[i], in[i] = p[0], p[1]
	}
	if _, err := tx.sq.ExecContext(ctx, `INSERT INTO subject_inbound (subject_id, inbound_event_id)
		SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING`, pq.Array(subj), pq.Array(in)); err != nil {
		return fmt.Errorf("store: subject inbound: %w", err)
	}
	return nil
}

// writeIdentities remembers which request named which identity (keyed
// hash).
func (tx *Tx) writeIdentities(ctx context.Context, rows []identityRow) error {
	hashes, in := make([][]byte, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		hashes[i], in[i] = r.hash, r.inbound
	}
	if _, err := tx.sq.ExecContext(ctx, `INSERT INTO inbound_identities (identity_hash, inbound_event_id)
		SELECT * FROM unnest($1::bytea[], $2::bigint[]) ON CONFLICT DO NOTHING`, pq.ByteaArray(hashes), pq.Array(in)); err != nil {
		return fmt.Errorf("store: inbound identities: %w", err)
	}
	return nil
}

// writeFinished marks inbound rows processed, with their notes.
func (tx *Tx) writeFinished(ctx context.Context, rows []finishedInbound) error {
	ids, notes := make([]int64, len(rows)), make([]string, len(rows))
	for i, f := range rows {
		ids[i], notes[i] = f.id, string(f.notes)
	}
	if _, err := tx.sq.ExecContext(ctx, `UPDATE inbound_events e SET status = 'processed', processed_at = clock_timestamp(),
		attempts = e.attempts + 1, error = NULL, notes = d.notes::jsonb
		FROM unnest($1::bigint[], $2::text[]) AS d(id, notes) WHERE e.id = d.id`, pq.Array(ids), pq.Array(notes)); err != nil {
		return fmt.Errorf("store: finish inbound: %w", err)
	}
	return nil
}

// uncache flushes and drops the cache (before an erasure rewrites what it
// holds).
func (tx *Tx) uncache(ctx context.Context) error {
	if err := tx.Flush(ctx); err != nil {
		return err
	}
	tx.batch = nil
	return nil
}

// appended updates the ledger head and latest withdrawal of e's subject.
func (c *batchCache) appended(e LedgerEntry) {
	c.head[e.SubjectID] = e.Hash
	if e.Signal.Status == consent.StatusWithdrawn {
		k := stateKey{e.SubjectID, consent.Key{Channel: e.Signal.Channel, Brand: e.Signal.Brand, Purpose: e.Signal.Purpose}}
		if at := e.Signal.OccurredAt.UTC(); at.After(c.withdrawn[k]) {
			c.withdrawn[k] = at
		}
	}
}

// insertLedger appends rows (with their drawn ids, in order) in one
// statement; a fact already in the ledger (source, dedup key) is not
// appended again. It returns how many rows were appended.
func (tx *Tx) insertLedger(ctx context.Context, ids []int64, rows []LedgerEntry) (int64, error) {
	n := len(rows)
	subject, dedup, channel, brand, purpose, status := make([]int64, n), make([][]byte, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	occurred, source, valid, problems, outcome, evidence := make([]string, n), make([]string, n), make([]bool, n), make([]string, n), make([]string, n), make([]string, n)
	evHash, prev, hash, quality, received := make([][]byte, n), make([][]byte, n), make([][]byte, n), make([]sql.NullString, n), make([]string, n)
	inbound := make([]sql.NullInt64, n)
	for i, e := range rows {
		ev, err := json.Marshal(e.Signal.Evidence)
		if err != nil {
			return 0, err
		}
		pr, err := json.Marshal(nonNil(e.Signal.Problems))
		if err != nil {
			return 0, err
		}
		if e.Quality != nil {
			q, err := json.Marshal(e.Quality)
			if err != nil {
				return 0, err
			}
			quality[i] = sql.NullString{String: string(q), Valid: true}
		}
		if e.InboundID > 0 {
			inbound[i] = sql.NullInt64{Int64: e.InboundID, Valid: true}
		}
		s := e.Signal
		subject[i], dedup[i], channel[i], brand[i], purpose[i], status[i] = e.SubjectID, e.DedupKey, string(s.Channel), s.Brand, string(s.Purpose), string(s.Status)
		occurred[i], source[i], valid[i], problems[i], outcome[i], evidence[i] = s.OccurredAt.UTC().Format(time.RFC3339Nano), s.Source, s.Valid(), string(pr), e.Outcome, string(ev)
		evHash[i], prev[i], hash[i], received[i] = consent.EvidenceHash(s.Evidence), e.PrevHash, e.Hash, e.RecordedAt.UTC().Format(time.RFC3339Nano)
	}
	res, err := tx.sq.ExecContext(ctx, `
		INSERT INTO consent_events (id, subject_id, inbound_event_id, dedup_key, channel, brand, purpose, status,
			occurred_at, source, valid, problems, outcome, evidence, evidence_hash, prev_hash, hash, quality, received_at)
		SELECT id, subject_id, inbound_event_id, dedup_key, channel, brand, purpose, status, occurred_at, source, valid,
			problems::jsonb, outcome, evidence::jsonb, evidence_hash, NULLIF(prev_hash, ''::bytea), hash, quality::jsonb, received_at
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::timestamptz[], $10::text[], $11::boolean[], $12::text[], $13::text[], $14::text[], $15::bytea[], $16::bytea[],
			$17::bytea[], $18::text[], $19::timestamptz[])
		  AS t(id, subject_id, inbound_event_id, dedup_key, channel, brand, purpose, status, occurred_at, source, valid,
			problems, outcome, evidence, evidence_hash, prev_hash, hash, quality, received_at)
		ORDER BY id
		ON CONFLICT (source, dedup_key) DO NOTHING`,
		pq.Array(ids), pq.Array(subject), pq.Array(inbound), pq.ByteaArray(dedup), pq.Array(channel), pq.Array(brand), pq.Array(purpose),
		pq.Array(status), pq.Array(occurred), pq.Array(source), pq.Array(valid), pq.Array(problems), pq.Array(outcome), pq.Array(evidence),
		pq.ByteaArray(evHash), pq.ByteaArray(prev), pq.ByteaArray(hash), pq.Array(quality), pq.Array(received))
	if err != nil {
		return 0, fmt.Errorf("store: append ledger: %w", err)
	}
	return res.RowsAffected()
}

// insertOutbox queues rows in one statement; a row already queued (same
// destination, ledger row and target) is left as is. It returns how many
// were added.
func (tx *Tx) insertOutbox(ctx context.Context, rows []OutboxRow) (int64, error) {
	n := len(rows)
	dest, channel, brand, purpose := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	event, subject, target := make([]int64, n), make([]int64, n), make([]int64, n)
	email, phone, reason := make([]sql.NullString, n), make([]sql.NullString, n), make([]sql.NullString, n)
	action := make([]string, n)
	for i, r := range rows {
		action[i] = cmp.Or(r.Action, OutboxSuppress)
		dest[i], channel[i], brand[i], purpose[i] = r.Destination, r.Channel, r.Brand, r.Purpose
		event[i], subject[i], target[i] = r.ConsentEventID, r.SubjectID, r.TargetSubjectID
		if target[i] == 0 {
			target[i] = r.SubjectID
		}
		email[i], phone[i], reason[i] = r.Email, r.Phone, r.Reason
	}
	res, err := tx.sq.ExecContext(ctx, `
		INSERT INTO suppression_outbox (destination, consent_event_id, subject_id, target_subject_id, action, email, phone, channel, brand, purpose, reason)
		SELECT d, e, s, t, a, em, ph, c, b, p, r
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
		  AS x(d, e, s, t, em, ph, c, b, p, r, a)
		ON CONFLICT (destination, consent_event_id, target_subject_id) DO NOTHING`,
		pq.Array(dest), pq.Array(event), pq.Array(subject), pq.Array(target), pq.Array(email), pq.Array(phone),
		pq.Array(channel), pq.Array(brand), pq.Array(purpose), pq.Array(reason), pq.Array(action))
	if err != nil {
		return 0, fmt.Errorf("store: add outbox: %w", err)
	}
	return res.RowsAffected()
}

// EnsureSubjects is EnsureSubject for many subjects, in their order (sort
// them: rows are locked in that order): the subjects the cache knows are
// answered from it, the others found or created with one statement for
// addresses and one for numbers, whatever their number. ids[i] and
// created[i] are subs[i]'s.
func (tx *Tx) EnsureSubjects(ctx context.Context, subs []consent.Subject) (ids []int64, created []bool, err error) {
	ids, created = make([]int64, len(subs)), make([]bool, len(subs))
	byEmail, byPhone := map[string][]int{}, map[string][]int{}
	var emails, originals, mailboxes, phones []string
	for i, sub := range subs {
		if c := tx.batch; c != nil {
			if id, ok := c.cachedSubject(sub); ok {
				ids[i] = id
				continue
			}
		}
		switch {
		case sub.Email != "":
			if _, seen := byEmail[sub.Email]; !seen {
				emails, originals, mailboxes = append(emails, sub.Email), append(originals, sub.EmailOriginal), append(mailboxes, consent.MailboxKey(sub.Email))
			}
			byEmail[sub.Email] = append(byEmail[sub.Email], i)
		case sub.Phone != "":
			if _, seen := byPhone[sub.Phone]; !seen {
				phones = append(phones, sub.Phone)
			}
			byPhone[sub.Phone] = append(byPhone[sub.Phone], i)
		default:
			return nil, nil, consent.ErrNoSubject
		}
	}
	type upserted struct {
		ID       int64  `db:"id"`
		Key      string `db:"key"`
		Inserted bool   `db:"inserted"`
	}
	apply := func(rows []upserted, at map[string][]int, sub func(i int) consent.Subject) {
		for _, r := range rows {
			for n, i := range at[r.Key] {
				ids[i], created[i] = r.ID, r.Inserted && n == 0
				if c := tx.batch; c != nil && r.Inserted && n == 0 {
					c.created(r.ID, sub(i))
				}
			}
		}
	}
	// ON CONFLICT DO UPDATE locks an existing row (FOR NO KEY UPDATE: no key
	// column changes), in input order; a new row is this transaction's alone.
	if len(emails) > 0 {
		var rows []upserted
		if err := tx.sq.SelectContext(ctx, &rows, `INSERT INTO subjects (email, email_original, mailbox_key)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT (email) DO UPDATE SET updated_at = now()
			RETURNING id, email AS key, (xmax = 0) AS inserted`, pq.Array(emails), pq.Array(originals), pq.Array(mailboxes)); err != nil {
			return nil, nil, fmt.Errorf("store: subjects: %w", err)
		}
		apply(rows, byEmail, func(i int) consent.Subject { return subs[i] })
	}
	if len(phones) > 0 {
		var rows []upserted
		if err := tx.sq.SelectContext(ctx, &rows, `INSERT INTO subjects (phone) SELECT * FROM unnest($1::text[])
			ON CONFLICT (phone) DO UPDATE SET updated_at = now()
			RETURNING id, phone AS key, (xmax = 0) AS inserted`, pq.Array(phones)); err != nil {
			return nil, nil, fmt.Errorf("store: subjects: %w", err)
		}
		apply(rows, byPhone, func(i int) consent.Subject { return subs[i] })
	}
	for i, id := range ids {
		if id == 0 {
			return nil, nil, fmt.Errorf("store: subject %d of %d neither found nor created", i, len(subs))
		}
	}
	return ids, created, nil
}

// contact records a contact to write at Flush (first and last time per
// subject, brand, channel and kind), and a delivery's first time for
// FirstMessageAt.
func (c *batchCache) contact(subjectID int64, a consent.Activity) {
	k := activityKey{subjectID, a.Brand, a.Channel, string(a.Kind)}
	t, ok := c.contacts[k]
	if !ok || a.OccurredAt.Before(t[0]) {
		t[0] = a.OccurredAt
	}
	if !ok || a.OccurredAt.After(t[1]) {
		t[1] = a.OccurredAt
	}
	c.contacts[k] = t
	if a.Kind == "delivered" {
		d := contactKey{subjectID, a.Brand, a.Channel}
		if first, ok := c.delivered[d]; !ok || a.OccurredAt.Before(first) {
			c.delivered[d] = a.OccurredAt
		}
	}
}

// flushChunk is how many rows one deferred write carries at most: a
// 10,000-event request is written with ten statements, so the encoded
// arrays stay a few megabytes.
const flushChunk = 1000

// inChunks calls fn for [lo, hi) ranges of n items, flushChunk at a time.
func inChunks(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += flushChunk {
		if err := fn(lo, min(lo+flushChunk, n)); err != nil {
			return err
		}
	}
	return nil
}

// allIn reports whether every item is in the cache (known).
func allIn[T any](items []T, known func(T) bool) bool {
	for _, it := range items {
		if !known(it) {
			return false
		}
	}
	return true
}
