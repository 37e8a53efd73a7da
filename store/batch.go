package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
)

// batchCache holds, for one transaction, every fact a batch of inbound
// rows reads about the subjects it names, loaded up front by Tx.Preload in
// a fixed number of set-based queries, and the writes that can wait for
// the end of the batch (Tx.Flush): current states, which request named
// which subject and identity, and the rows' processed marks.
//
// Reads of a subject not loaded (a member of an identity set reached
// through another, say) go to Postgres as without a cache. Writes made by
// the transaction update the cache, so a read always sees them. Anything
// that reads the deferred tables directly (NewestGrant, StateKeys,
// EraseData) flushes first, and an erasure drops the cache.
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

	putStates  map[stateKey]pendingState
	inbound    map[[2]int64]bool
	identities map[string]map[int64]bool
	finished   []finishedInbound
}

type stateKey struct {
	subject int64
	key     consent.Key
}

type contactKey struct {
	subject int64
	brand   string
	channel consent.Channel
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
func (tx *Tx) Preload(ctx context.Context, key []byte, subs map[string]consent.Subject, named []consent.Subject) error {
	c := &batchCache{
		known: map[int64]bool{}, byEmail: map[string]int64{}, byPhone: map[string]int64{}, self: map[int64]Member{},
		linked: map[int64]bool{}, states: map[stateKey]consent.State{}, head: map[int64][]byte{},
		withdrawn: map[stateKey]time.Time{}, delivered: map[contactKey]time.Time{}, erased: map[string]time.Time{},
		hashKnown: map[string]bool{}, putStates: map[stateKey]pendingState{}, inbound: map[[2]int64]bool{},
		identities: map[string]map[int64]bool{},
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

// Flush writes what Preload let wait: current states, the requests that
// named each subject and identity, and the processed marks, in at most
// four set-based statements. The cache stays usable.
func (tx *Tx) Flush(ctx context.Context) error {
	c := tx.batch
	if c == nil {
		return nil
	}
	if len(c.putStates) > 0 {
		var subj, event []int64
		var ch, brand, purpose, status, source []string
		var at []string
		for k, p := range c.putStates {
			subj, event = append(subj, k.subject), append(event, p.event)
			ch, brand, purpose = append(ch, string(k.key.Channel)), append(brand, k.key.Brand), append(purpose, string(k.key.Purpose))
			status, source = append(status, string(p.sig.Status)), append(source, p.sig.Source)
			at = append(at, p.sig.OccurredAt.UTC().Format(time.RFC3339Nano))
		}
		if _, err := tx.sq.ExecContext(ctx, `
			INSERT INTO consent_states (subject_id, channel, brand, purpose, status, occurred_at, source, event_id)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::bigint[])
			ON CONFLICT (subject_id, channel, brand, purpose) DO UPDATE SET
				status = EXCLUDED.status, occurred_at = EXCLUDED.occurred_at, source = EXCLUDED.source,
				event_id = EXCLUDED.event_id, updated_at = now()`,
			pq.Array(subj), pq.Array(ch), pq.Array(brand), pq.Array(purpose), pq.Array(status), pq.Array(at), pq.Array(source), pq.Array(event)); err != nil {
			return fmt.Errorf("store: put states: %w", err)
		}
		c.putStates = map[stateKey]pendingState{}
	}
	if len(c.inbound) > 0 {
		var subj, in []int64
		for p := range c.inbound {
			subj, in = append(subj, p[0]), append(in, p[1])
		}
		if _, err := tx.sq.ExecContext(ctx, `INSERT INTO subject_inbound (subject_id, inbound_event_id)
			SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING`, pq.Array(subj), pq.Array(in)); err != nil {
			return fmt.Errorf("store: subject inbound: %w", err)
		}
		c.inbound = map[[2]int64]bool{}
	}
	if len(c.identities) > 0 {
		var hashes [][]byte
		var in []int64
		for h, ids := range c.identities {
			for id := range ids {
				hashes, in = append(hashes, []byte(h)), append(in, id)
			}
		}
		if _, err := tx.sq.ExecContext(ctx, `INSERT INTO inbound_identities (identity_hash, inbound_event_id)
			SELECT * FROM unnest($1::bytea[], $2::bigint[]) ON CONFLICT DO NOTHING`, pq.ByteaArray(hashes), pq.Array(in)); err != nil {
			return fmt.Errorf("store: inbound identities: %w", err)
		}
		c.identities = map[string]map[int64]bool{}
	}
	if len(c.finished) > 0 {
		ids := make([]int64, len(c.finished))
		notes := make([]string, len(c.finished))
		for i, f := range c.finished {
			ids[i], notes[i] = f.id, string(f.notes)
		}
		if _, err := tx.sq.ExecContext(ctx, `UPDATE inbound_events e SET status = 'processed', processed_at = clock_timestamp(),
			attempts = e.attempts + 1, error = NULL, notes = d.notes::jsonb
			FROM unnest($1::bigint[], $2::text[]) AS d(id, notes) WHERE e.id = d.id`, pq.Array(ids), pq.Array(notes)); err != nil {
			return fmt.Errorf("store: finish inbound: %w", err)
		}
		c.finished = nil
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
