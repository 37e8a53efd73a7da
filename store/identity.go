package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
)

// maxSetDepth bounds how many hops (link or mailbox alias) the identity set
// of an identifier is followed through. Real sets are one to three hops
// deep (an address, its aliases, the number given with it, another address
// given with that number); each hop costs two queries only while new
// members turn up, so the bound is generous: a set whose members are
// further apart than this (a chain of 64 address–number links) is cut.
const maxSetDepth = 64

// gmailDomain is the domain every folded mailbox key ends with
// (consent.MailboxKey maps googlemail.com to it).
const (
	gmailDomain = "gmail.com"
	gmailSuffix = "@" + gmailDomain
)

// Member is one live subject of a person's identity set.
type Member struct {
	SubjectID int64 `db:"id"`
	// Email is the normalized address ("" for a number's subject);
	// EmailOriginal the spelling the sender used, which providers hold.
	Email         string    `db:"email"`
	EmailOriginal string    `db:"email_original"`
	Phone         string    `db:"phone"`
	MailboxKey    string    `db:"mailbox_key"`
	Professional  bool      `db:"professional"`
	CreatedAt     time.Time `db:"created_at"`
}

// SubjectIDs lists the members' subject ids, in order.
func SubjectIDs(members []Member) []int64 {
	out := make([]int64, len(members))
	for i, m := range members {
		out[i] = m.SubjectID
	}
	return out
}

// Address is the spelling to push for the member's email: the original
// when the sender gave one.
func (m Member) Address() string { return cmp.Or(m.EmailOriginal, m.Email) }

// Subject is the member as a consent subject.
func (m Member) Subject() consent.Subject {
	return consent.Subject{Email: m.Email, EmailOriginal: m.EmailOriginal, Phone: m.Phone}
}

// memberCols reads a Member from subjects.
const memberCols = `id, coalesce(email, '') AS email, coalesce(email_original, '') AS email_original,
	coalesce(phone, '') AS phone, coalesce(mailbox_key, '') AS mailbox_key, professional, created_at`

// resolveSets finds, for each identifier, the live subjects of its identity
// set: the subjects holding the address, any alias of its mailbox
// (consent.MailboxKey) or the number, and, transitively, every subject
// linked to one of them (subject_links: an address and the number given
// with it) or sharing a mailbox with one. It runs 1 + 2 per hop queries
// (at most maxSetDepth hops) whatever the number of identifiers. Each
// result lists members oldest first; an identifier with no live subject
// gets none.
func resolveSets(ctx context.Context, q sqlx.QueryerContext, ids []Identifier) ([][]Member, error) {
	emails, keys, phones := []string{}, []string{}, []string{}
	for _, id := range ids {
		if id.Email != "" {
			emails = append(emails, id.Email)
			// Only Gmail folds aliases (consent.MailboxKey): elsewhere the
			// key is the address itself, found by email already.
			if k := consent.MailboxKey(id.Email); strings.HasSuffix(k, gmailSuffix) {
				keys = append(keys, k)
			}
		}
		if id.Phone != "" {
			phones = append(phones, id.Phone)
		}
	}
	var seeds []Member
	// Three indexed lookups (a single OR of the three would scan the table).
	if err := sqlx.SelectContext(ctx, q, &seeds, `SELECT `+memberCols+` FROM subjects WHERE id IN (
			SELECT id FROM subjects WHERE email = ANY($1)
			UNION SELECT id FROM subjects WHERE mailbox_key = ANY($2)
			UNION SELECT id FROM subjects WHERE phone = ANY($3))
		AND erased_at IS NULL`,
		pq.Array(emails), pq.Array(keys), pq.Array(phones)); err != nil {
		return nil, fmt.Errorf("store: identity set: %w", err)
	}
	members := map[int64]Member{}
	uf := unionFind{}
	frontier := make([]int64, 0, len(seeds))
	for _, m := range seeds {
		members[m.SubjectID] = m
		uf.add(m.SubjectID)
		frontier = append(frontier, m.SubjectID)
	}
	for depth := 0; depth < maxSetDepth && len(frontier) > 0; depth++ {
		var edges []struct {
			From int64 `db:"src"`
			To   int64 `db:"dst"`
		}
		if err := sqlx.SelectContext(ctx, q, &edges, `
			SELECT l.subject_id AS src, l.linked_subject_id AS dst FROM subject_links l WHERE l.subject_id = ANY($1)
			UNION
			SELECT x.id, y.id FROM subjects x JOIN subjects y ON y.mailbox_key = x.mailbox_key AND y.id <> x.id
			WHERE x.id = ANY($1) AND x.mailbox_key LIKE '%@'||$2`, pq.Array(frontier), gmailDomain); err != nil {
			return nil, fmt.Errorf("store: identity set links: %w", err)
		}
		var fresh []int64
		queued := map[int64]bool{}
		for _, e := range edges {
			if _, seen := members[e.To]; !seen && !queued[e.To] {
				queued[e.To] = true
				fresh = append(fresh, e.To)
			}
		}
		var found []Member
		if len(fresh) > 0 {
			if err := sqlx.SelectContext(ctx, q, &found, `SELECT `+memberCols+` FROM subjects WHERE id = ANY($1) AND erased_at IS NULL`,
				pq.Array(fresh)); err != nil {
				return nil, fmt.Errorf("store: identity set members: %w", err)
			}
		}
		frontier = frontier[:0]
		for _, m := range found {
			members[m.SubjectID] = m
			uf.add(m.SubjectID)
			frontier = append(frontier, m.SubjectID)
		}
		for _, e := range edges {
			if _, ok := members[e.To]; ok {
				uf.union(e.From, e.To)
			}
		}
	}
	byRoot := map[int64][]Member{}
	for id, m := range members {
		r := uf.find(id)
		byRoot[r] = append(byRoot[r], m)
	}
	for _, ms := range byRoot {
		slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.SubjectID, b.SubjectID) })
	}
	byEmail, byKey, byPhone := map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, m := range seeds {
		if m.Email != "" {
			byEmail[m.Email] = m.SubjectID
		}
		if m.MailboxKey != "" {
			byKey[m.MailboxKey] = m.SubjectID
		}
		if m.Phone != "" {
			byPhone[m.Phone] = m.SubjectID
		}
	}
	out := make([][]Member, len(ids))
	for i, id := range ids {
		var seed int64
		var ok bool
		if id.Email != "" {
			if seed, ok = byEmail[id.Email]; !ok {
				seed, ok = byKey[consent.MailboxKey(id.Email)]
			}
		}
		if !ok && id.Phone != "" {
			seed, ok = byPhone[id.Phone]
		}
		if ok {
			out[i] = byRoot[uf.find(seed)]
		}
	}
	return out, nil
}

// unionFind groups subject ids into identity sets.
type unionFind map[int64]int64

func (u unionFind) add(x int64) {
	if _, ok := u[x]; !ok {
		u[x] = x
	}
}

func (u unionFind) find(x int64) int64 {
	for u[x] != x {
		u[x] = u[u[x]]
		x = u[x]
	}
	return x
}

func (u unionFind) union(a, b int64) {
	ra, rb := u.find(a), u.find(b)
	if ra == rb {
		return
	}
	// The oldest subject is the root: stable whatever the order of edges.
	if rb < ra {
		ra, rb = rb, ra
	}
	u[rb] = ra
}

// Person is what the store knows of the identity set one identifier names.
type Person struct {
	// Members are the set's live subjects, oldest first; none when the
	// identifier is unknown or erased.
	Members []Member
	// Facts holds each member's own facts, in the order of Members: the
	// rules (consent.MergeFacts) combine them into the person's.
	Facts []consent.Facts
	// Erased: no member lives and the identifier (or its mailbox) was
	// erased at ErasedAt.
	Erased   bool
	ErasedAt time.Time
}

// People loads, for each identifier, its identity set and every member's
// facts (consent.Facts): states, refused grants, withdrawals, customer
// profiles, contacts, for one key or, with key nil, every key. An
// identifier without a live subject is checked against the keyed hashes
// of erased identities. The number of queries is fixed (no N+1) whatever
// the number of identifiers; results are in the order of ids.
func (s *Store) People(ctx context.Context, ids []Identifier, key *consent.Key) ([]Person, error) {
	sets, err := resolveSets(ctx, s.DB, ids)
	if err != nil {
		return nil, err
	}
	var subjectIDs []int64
	for _, set := range sets {
		for _, m := range set {
			subjectIDs = append(subjectIDs, m.SubjectID)
		}
	}
	slices.Sort(subjectIDs)
	subjectIDs = slices.Compact(subjectIDs)
	facts, err := s.loadFacts(ctx, subjectIDs, key)
	if err != nil {
		return nil, err
	}
	out := make([]Person, len(ids))
	var ikey []byte // read only when an identifier has no live subject
	var hashes [][]byte
	hashOwner := map[string][]int{}
	for i, set := range sets {
		if len(set) == 0 {
			if ids[i].Email == "" && ids[i].Phone == "" {
				continue
			}
			if ikey == nil {
				if ikey, err = s.IdentityKey(ctx); err != nil {
					return nil, err
				}
			}
			for _, h := range IdentityHashes(ikey, consent.Subject{Email: ids[i].Email, Phone: ids[i].Phone}) {
				if len(hashOwner[string(h)]) == 0 {
					hashes = append(hashes, h)
				}
				hashOwner[string(h)] = append(hashOwner[string(h)], i)
			}
			continue
		}
		p := Person{Members: set, Facts: make([]consent.Facts, len(set))}
		for j, m := range set {
			f := *facts[m.SubjectID]
			f.Known, f.Email, f.Professional = true, m.Email, m.Professional
			p.Facts[j] = f
		}
		out[i] = p
	}
	if len(hashes) == 0 {
		return out, nil
	}
	rows, err := s.DB.QueryxContext(ctx, `SELECT identity_hash, erased_at FROM erased_identities WHERE identity_hash = ANY($1)`, pq.ByteaArray(hashes))
	if err != nil {
		return nil, fmt.Errorf("store: erased identities: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h []byte
		var at time.Time
		if err := rows.Scan(&h, &at); err != nil {
			return nil, err
		}
		for _, i := range hashOwner[string(h)] {
			out[i].Erased = true
			if at.After(out[i].ErasedAt) {
				out[i].ErasedAt = at.UTC()
			}
		}
	}
	return out, rows.Err()
}

// SetMembers returns the live subjects of subjectID's identity set (itself
// included, oldest first), inside tx: the literal addresses and numbers a
// withdrawal by any of them must reach.
func (tx *Tx) SetMembers(ctx context.Context, subjectID int64) ([]Member, error) {
	if c := tx.batch; c != nil {
		if m, ok := c.singleton(subjectID); ok {
			return []Member{m}, nil
		}
	}
	var self []Member
	if err := tx.sq.SelectContext(ctx, &self, `SELECT `+memberCols+` FROM subjects WHERE id = $1 AND erased_at IS NULL`, subjectID); err != nil {
		return nil, fmt.Errorf("store: set member: %w", err)
	}
	if len(self) == 0 {
		return nil, nil
	}
	// Most subjects are a set of one: no Gmail mailbox to share and no link.
	// One indexed probe answers that; only the others are resolved.
	if !strings.HasSuffix(self[0].MailboxKey, gmailSuffix) {
		var linked bool
		if err := tx.sq.GetContext(ctx, &linked, `SELECT EXISTS (SELECT 1 FROM subject_links WHERE subject_id = $1)`, subjectID); err != nil {
			return nil, fmt.Errorf("store: set links: %w", err)
		}
		if !linked {
			return self, nil
		}
	}
	sets, err := resolveSets(ctx, tx.sq, []Identifier{{Email: self[0].Email, Phone: self[0].Phone}})
	if err != nil {
		return nil, err
	}
	return sets[0], nil
}

// LatestWithdrawal returns, inside tx, the latest withdrawal of key
// recorded in the ledger for any of subjectIDs (the members of one identity
// set), or false when none withdrew it.
func (tx *Tx) LatestWithdrawal(ctx context.Context, subjectIDs []int64, key consent.Key) (time.Time, bool, error) {
	if c := tx.batch; c != nil && allIn(subjectIDs, func(id int64) bool { return c.known[id] }) {
		var latest time.Time
		for _, id := range subjectIDs {
			if at := c.withdrawn[stateKey{id, key}]; at.After(latest) {
				latest = at
			}
		}
		return latest, !latest.IsZero(), nil
	}
	// Some member is not loaded: the ledger answers, with this batch's
	// appends written first.
	if err := tx.Flush(ctx); err != nil {
		return time.Time{}, false, err
	}
	var at sql.NullTime
	if err := tx.sq.GetContext(ctx, &at, `SELECT max(occurred_at) FROM consent_events
		WHERE subject_id = ANY($1) AND channel = $2 AND brand = $3 AND purpose = $4 AND status = 'withdrawn'`,
		pq.Array(subjectIDs), key.Channel, key.Brand, key.Purpose); err != nil {
		return time.Time{}, false, fmt.Errorf("store: latest withdrawal: %w", err)
	}
	return at.Time.UTC(), at.Valid, nil
}

// LatestSuppression returns, inside tx, the occurrence time of the newest
// ledger row whose suppression of key was queued for target's address, or
// false when none was.
func (tx *Tx) LatestSuppression(ctx context.Context, target int64, key consent.Key) (time.Time, bool, error) {
	if err := tx.Flush(ctx); err != nil {
		return time.Time{}, false, err
	}
	var at sql.NullTime
	if err := tx.sq.GetContext(ctx, &at, `SELECT max(e.occurred_at) FROM suppression_outbox o JOIN consent_events e ON e.id = o.consent_event_id
		WHERE o.target_subject_id = $1 AND o.channel = $2 AND o.brand = $3 AND o.purpose = $4 AND o.action = 'suppress'`,
		target, key.Channel, key.Brand, key.Purpose); err != nil {
		return time.Time{}, false, fmt.Errorf("store: latest suppression: %w", err)
	}
	return at.Time.UTC(), at.Valid, nil
}

// OtherSuppressionStands reports whether destination still holds, for
// target's address, a suppression of another scope on key's channel (a
// different brand or purpose) that no later row answers (not superseded:
// its withdrawal stands). Most providers keep one flag per address (Brevo
// emailBlacklisted, a Mailgun "*" unsubscribe, SES UnsubscribeAll,
// Salesforce HasOptedOutOfEmail, a SendGrid global suppression), so a lift
// for key there would also undo that other withdrawal: the lift is then
// not queued.
func (tx *Tx) OtherSuppressionStands(ctx context.Context, destination string, target int64, key consent.Key) (bool, error) {
	if err := tx.Flush(ctx); err != nil {
		return false, err
	}
	var stands bool
	if err := tx.sq.GetContext(ctx, &stands, `SELECT EXISTS (SELECT 1 FROM suppression_outbox o
		WHERE o.destination = $1 AND o.target_subject_id = $2 AND o.channel = $3 AND NOT (o.brand = $4 AND o.purpose = $5)
		  AND o.action = 'suppress' AND o.status <> 'failed' AND NOT `+superseded+`)`,
		destination, target, key.Channel, key.Brand, key.Purpose); err != nil {
		return false, fmt.Errorf("store: other suppression: %w", err)
	}
	return stands, nil
}

// SetWithdrawal is the latest withdrawal of one key among an identity
// set's members.
type SetWithdrawal struct {
	EventID    int64     `db:"id"`
	SubjectID  int64     `db:"subject_id"`
	Channel    string    `db:"channel"`
	Brand      string    `db:"brand"`
	Purpose    string    `db:"purpose"`
	OccurredAt time.Time `db:"occurred_at"`
	// Source and Reason (the evidence's event name) are read by
	// Tx.CatchUpPage only.
	Source string `db:"source"`
	Reason string `db:"reason"`
}

// Key is the withdrawal's key.
func (w SetWithdrawal) Key() consent.Key {
	return consent.Key{Channel: consent.Channel(w.Channel), Brand: w.Brand, Purpose: consent.Purpose(w.Purpose)}
}

// SetWithdrawals returns, inside tx, the latest withdrawal per key recorded
// for any of subjectIDs.
func (tx *Tx) SetWithdrawals(ctx context.Context, subjectIDs []int64) ([]SetWithdrawal, error) {
	if err := tx.Flush(ctx); err != nil {
		return nil, err
	}
	var out []SetWithdrawal
	if err := tx.sq.SelectContext(ctx, &out, `SELECT DISTINCT ON (channel, brand, purpose) id, subject_id, channel, brand, purpose, occurred_at
		FROM consent_events WHERE subject_id = ANY($1) AND status = 'withdrawn'
		ORDER BY channel, brand, purpose, occurred_at DESC, id DESC`, pq.Array(subjectIDs)); err != nil {
		return nil, fmt.Errorf("store: set withdrawals: %w", err)
	}
	return out, nil
}

// NewestGrant returns, inside tx, the newest granted current state of key
// among subjectIDs, with the quality of its ledger row, or false when none.
func (tx *Tx) NewestGrant(ctx context.Context, subjectIDs []int64, key consent.Key) (consent.StateFact, bool, error) {
	if err := tx.Flush(ctx); err != nil {
		return consent.StateFact{}, false, err
	}
	var rows []struct {
		OccurredAt time.Time `db:"occurred_at"`
		Quality    []byte    `db:"quality"`
	}
	if err := tx.sq.SelectContext(ctx, &rows, `SELECT cs.occurred_at, e.quality FROM consent_states cs JOIN consent_events e ON e.id = cs.event_id
		WHERE cs.subject_id = ANY($1) AND cs.channel = $2 AND cs.brand = $3 AND cs.purpose = $4 AND cs.status = 'granted'
		ORDER BY cs.occurred_at DESC LIMIT 1`, pq.Array(subjectIDs), key.Channel, key.Brand, key.Purpose); err != nil {
		return consent.StateFact{}, false, fmt.Errorf("store: newest grant: %w", err)
	}
	if len(rows) == 0 {
		return consent.StateFact{}, false, nil
	}
	st := consent.StateFact{Status: consent.StatusGranted, OccurredAt: rows[0].OccurredAt.UTC()}
	if len(rows[0].Quality) > 0 {
		if err := json.Unmarshal(rows[0].Quality, &st.Quality); err != nil {
			return consent.StateFact{}, false, fmt.Errorf("store: newest grant quality: %w", err)
		}
	}
	return st, true, nil
}
