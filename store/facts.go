package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/consentsync/consentsync/consent"
)

// Identifier is a normalized email or E.164 phone asked about.
type Identifier struct {
	Email string
	Phone string
}

// qualifyingKinds are the contacts that renew consent (consent.ActivityKind.Qualifying).
var qualifyingKinds = pq.Array([]string{string(consent.ActivityClick), string(consent.ActivityReply), string(consent.ActivityOrder), string(consent.ActivityForm)})

// FactsFor loads, for each identifier, what the rules need to answer about
// one key (channel, brand, purpose): the subject, its state for the key with
// the winning grant's quality, a newer refused grant, whether it is a
// customer of the brand, its last qualifying contact with the brand, and
// whether the identifier was erased. It runs a fixed number of queries
// whatever the number of identifiers (no N+1): one per table, each with
// = ANY($1). The result is in the order of ids.
func (s *Store) FactsFor(ctx context.Context, ids []Identifier, key consent.Key) ([]consent.Facts, error) {
	emails, phones := make([]string, 0, len(ids)), make([]string, 0, len(ids))
	for _, id := range ids {
		if id.Email != "" {
			emails = append(emails, id.Email)
		}
		if id.Phone != "" {
			phones = append(phones, id.Phone)
		}
	}
	var subs []factSubject
	if err := s.DB.SelectContext(ctx, &subs, `SELECT id, email, phone, professional, erased_at FROM subjects
		WHERE email = ANY($1) OR phone = ANY($2)`, pq.Array(emails), pq.Array(phones)); err != nil {
		return nil, fmt.Errorf("store: facts subjects: %w", err)
	}
	byEmail, byPhone := map[string]*factSubject{}, map[string]*factSubject{}
	subjectIDs := make([]int64, 0, len(subs))
	for i := range subs {
		sub := &subs[i]
		if sub.Email.Valid {
			byEmail[sub.Email.String] = sub
		}
		if sub.Phone.Valid {
			byPhone[sub.Phone.String] = sub
		}
		subjectIDs = append(subjectIDs, sub.ID)
	}
	facts, err := s.loadFacts(ctx, subjectIDs, &key)
	if err != nil {
		return nil, err
	}
	aliasWithdrawn, err := s.aliasWithdrawals(ctx, emails, key)
	if err != nil {
		return nil, err
	}
	ikey, err := s.IdentityKey(ctx)
	if err != nil {
		return nil, err
	}
	// Identifiers with no live subject may have been erased.
	var hashes [][]byte
	hashOwner := map[string][]int{}
	out := make([]consent.Facts, len(ids))
	for i, id := range ids {
		sub := byEmail[id.Email]
		if sub == nil && id.Phone != "" {
			sub = byPhone[id.Phone]
		}
		if sub != nil {
			f := facts[sub.ID]
			f.Known, f.Email = true, sub.Email.String
			f.Professional = sub.Professional
			if sub.ErasedAt.Valid {
				f.Erased, f.ErasedAt = true, sub.ErasedAt.Time
			}
			out[i] = *f
			applyAlias(&out[i], key, aliasWithdrawn[consent.MailboxKey(id.Email)])
			continue
		}
		if w := aliasWithdrawn[consent.MailboxKey(id.Email)]; id.Email != "" && !w.IsZero() {
			out[i] = consent.Facts{Known: true, Email: id.Email, States: map[consent.Key]consent.StateFact{}}
			applyAlias(&out[i], key, w)
			continue
		}
		for _, h := range IdentityHashes(ikey, consent.Subject{Email: id.Email, Phone: id.Phone}) {
			if len(hashOwner[string(h)]) == 0 {
				hashes = append(hashes, h)
			}
			hashOwner[string(h)] = append(hashOwner[string(h)], i)
		}
	}
	if len(hashes) > 0 {
		rows, err := s.DB.QueryxContext(ctx, `SELECT identity_hash, erased_at FROM erased_identities WHERE identity_hash = ANY($1)`, pq.ByteaArray(hashes))
		if err != nil {
			return nil, fmt.Errorf("store: facts erased: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var h []byte
			var at time.Time
			if err := rows.Scan(&h, &at); err != nil {
				return nil, err
			}
			for _, i := range hashOwner[string(h)] {
				out[i].Known, out[i].Erased = true, true
				if at.After(out[i].ErasedAt) {
					out[i].ErasedAt = at
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// aliasWithdrawals returns, per mailbox key (consent.MailboxKey), the
// latest withdrawal of key by any alias of that mailbox: Gmail delivers
// j.doe@gmail.com, jdoe@gmail.com and jdoe+news@gmail.com to one inbox, so a
// withdrawal by one is a withdrawal by all (CONNECTORS.md, normalization).
func (s *Store) aliasWithdrawals(ctx context.Context, emails []string, key consent.Key) (map[string]time.Time, error) {
	keys := make([]string, 0, len(emails))
	for _, e := range emails {
		keys = append(keys, consent.MailboxKey(e))
	}
	var rows []struct {
		MailboxKey string    `db:"mailbox_key"`
		At         time.Time `db:"at"`
	}
	if err := s.DB.SelectContext(ctx, &rows, `SELECT s.mailbox_key, max(cs.occurred_at) AS at
		FROM subjects s JOIN consent_states cs ON cs.subject_id = s.id
		WHERE s.mailbox_key = ANY($1) AND cs.channel = $2 AND cs.brand = $3 AND cs.purpose = $4 AND cs.status = 'withdrawn'
		GROUP BY s.mailbox_key`, pq.Array(keys), key.Channel, key.Brand, key.Purpose); err != nil {
		return nil, fmt.Errorf("store: facts aliases: %w", err)
	}
	out := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		out[r.MailboxKey] = r.At.UTC()
	}
	return out, nil
}

// applyAlias makes an alias's withdrawal at w the subject's state for key,
// unless the subject's own state supersedes it (a later opt-in).
func applyAlias(f *consent.Facts, key consent.Key, w time.Time) {
	if w.IsZero() {
		return
	}
	if st, ok := f.States[key]; ok && consent.Supersedes(st.OccurredAt, st.Status, w, consent.StatusWithdrawn) {
		return
	}
	if f.States == nil {
		f.States = map[consent.Key]consent.StateFact{}
	}
	f.States[key] = consent.StateFact{Status: consent.StatusWithdrawn, OccurredAt: w}
}

// SubjectFacts loads the facts of one subject for every key it has.
func (s *Store) SubjectFacts(ctx context.Context, subjectID int64) (consent.Facts, error) {
	var sub factSubject
	if err := s.DB.GetContext(ctx, &sub, `SELECT id, email, phone, professional, erased_at FROM subjects WHERE id = $1`, subjectID); err != nil {
		return consent.Facts{}, fmt.Errorf("store: subject facts: %w", err)
	}
	facts, err := s.loadFacts(ctx, []int64{subjectID}, nil)
	if err != nil {
		return consent.Facts{}, err
	}
	f := facts[subjectID]
	f.Known, f.Email, f.Professional = true, sub.Email.String, sub.Professional
	if sub.ErasedAt.Valid {
		f.Erased, f.ErasedAt = true, sub.ErasedAt.Time
	}
	return *f, nil
}

type factSubject struct {
	ID           int64          `db:"id"`
	Email        sql.NullString `db:"email"`
	Phone        sql.NullString `db:"phone"`
	Professional bool           `db:"professional"`
	ErasedAt     sql.NullTime   `db:"erased_at"`
}

// loadFacts reads states, refused grants, customer profiles and last
// contacts of subjects, for one key or (key nil) all keys: four queries.
func (s *Store) loadFacts(ctx context.Context, subjectIDs []int64, key *consent.Key) (map[int64]*consent.Facts, error) {
	out := make(map[int64]*consent.Facts, len(subjectIDs))
	for _, id := range subjectIDs {
		out[id] = &consent.Facts{States: map[consent.Key]consent.StateFact{}, InvalidGrants: map[consent.Key]time.Time{},
			Withdrawals: map[consent.Key]time.Time{}, InvalidDetails: map[consent.Key]string{},
			CustomerOf: map[string]time.Time{}, LastContact: map[string]time.Time{}}
	}
	if len(subjectIDs) == 0 {
		return out, nil
	}
	ids := pq.Array(subjectIDs)
	keyFilter, brandFilter := "", ""
	args := []any{ids}
	if key != nil {
		keyFilter = ` AND channel = $2 AND brand = $3 AND purpose = $4`
		brandFilter = ` AND brand = $2`
		args = append(args, key.Channel, key.Brand, key.Purpose)
	}
	brandArgs := args
	if key != nil {
		brandArgs = []any{ids, key.Brand}
	}

	type stateRow struct {
		SubjectID  int64     `db:"subject_id"`
		Channel    string    `db:"channel"`
		Brand      string    `db:"brand"`
		Purpose    string    `db:"purpose"`
		Status     string    `db:"status"`
		OccurredAt time.Time `db:"occurred_at"`
		Quality    []byte    `db:"quality"`
	}
	var states []stateRow
	if err := s.DB.SelectContext(ctx, &states, `
		SELECT cs.subject_id, cs.channel, cs.brand, cs.purpose, cs.status, cs.occurred_at, e.quality
		FROM consent_states cs JOIN consent_events e ON e.id = cs.event_id
		WHERE cs.subject_id = ANY($1)`+qualify(keyFilter, "cs."), args...); err != nil {
		return nil, fmt.Errorf("store: facts states: %w", err)
	}
	for _, r := range states {
		k := consent.Key{Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose)}
		sf := consent.StateFact{Status: consent.Status(r.Status), OccurredAt: r.OccurredAt.UTC()}
		if len(r.Quality) > 0 {
			_ = json.Unmarshal(r.Quality, &sf.Quality)
		}
		out[r.SubjectID].States[k] = sf
	}

	type pastRow struct {
		SubjectID   int64        `db:"subject_id"`
		Channel     string       `db:"channel"`
		Brand       string       `db:"brand"`
		Purpose     string       `db:"purpose"`
		InvalidAt   sql.NullTime `db:"invalid_at"`
		WithdrawnAt sql.NullTime `db:"withdrawn_at"`
	}
	var past []pastRow
	if err := s.DB.SelectContext(ctx, &past, `
		SELECT subject_id, channel, brand, purpose,
			max(occurred_at) FILTER (WHERE status = 'granted' AND NOT valid) AS invalid_at,
			max(occurred_at) FILTER (WHERE status = 'withdrawn') AS withdrawn_at
		FROM consent_events
		WHERE subject_id = ANY($1) AND (status = 'withdrawn' OR status = 'granted' AND NOT valid)`+keyFilter+`
		GROUP BY subject_id, channel, brand, purpose`, args...); err != nil {
		return nil, fmt.Errorf("store: facts past signals: %w", err)
	}
	for _, r := range past {
		k := consent.Key{Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose)}
		f := out[r.SubjectID]
		if r.InvalidAt.Valid {
			if st, ok := f.States[k]; !ok || r.InvalidAt.Time.After(st.OccurredAt) {
				f.InvalidGrants[k] = r.InvalidAt.Time.UTC()
			}
		}
		if r.WithdrawnAt.Valid {
			f.Withdrawals[k] = r.WithdrawnAt.Time.UTC()
		}
	}

	var details []struct {
		SubjectID int64  `db:"subject_id"`
		Channel   string `db:"channel"`
		Brand     string `db:"brand"`
		Purpose   string `db:"purpose"`
		Problems  []byte `db:"problems"`
	}
	if err := s.DB.SelectContext(ctx, &details, `
		SELECT DISTINCT ON (subject_id, channel, brand, purpose) subject_id, channel, brand, purpose, problems
		FROM consent_events WHERE subject_id = ANY($1) AND status = 'granted' AND NOT valid`+keyFilter+`
		ORDER BY subject_id, channel, brand, purpose, occurred_at DESC, id DESC`, args...); err != nil {
		return nil, fmt.Errorf("store: facts refusal details: %w", err)
	}
	for _, d := range details {
		k := consent.Key{Channel: consent.Channel(d.Channel), Brand: d.Brand, Purpose: consent.Purpose(d.Purpose)}
		var problems []string
		_ = json.Unmarshal(d.Problems, &problems)
		if _, ok := out[d.SubjectID].InvalidGrants[k]; ok {
			out[d.SubjectID].InvalidDetails[k] = strings.Join(problems, "; ")
		}
	}

	type brandTime struct {
		SubjectID int64     `db:"subject_id"`
		Brand     string    `db:"brand"`
		At        time.Time `db:"at"`
	}
	var customers []brandTime
	if err := s.DB.SelectContext(ctx, &customers, `SELECT subject_id, brand, since AS at FROM subject_profiles
		WHERE subject_id = ANY($1) AND profile = 'customer'`+brandFilter, brandArgs...); err != nil {
		return nil, fmt.Errorf("store: facts profiles: %w", err)
	}
	for _, r := range customers {
		out[r.SubjectID].CustomerOf[r.Brand] = r.At.UTC()
	}
	var contacts []brandTime
	cargs := append([]any{}, brandArgs...)
	cargs = append(cargs, qualifyingKinds)
	kindParam := fmt.Sprintf("$%d", len(cargs))
	if err := s.DB.SelectContext(ctx, &contacts, `SELECT subject_id, brand, max(last_at) AS at FROM subject_contacts
		WHERE subject_id = ANY($1) AND kind = ANY(`+kindParam+`)`+brandFilter+` GROUP BY subject_id, brand`, cargs...); err != nil {
		return nil, fmt.Errorf("store: facts contacts: %w", err)
	}
	for _, r := range contacts {
		out[r.SubjectID].LastContact[r.Brand] = r.At.UTC()
	}
	return out, nil
}

// qualify prefixes the column names of a key filter with a table alias.
func qualify(filter, alias string) string {
	if filter == "" {
		return ""
	}
	return ` AND ` + alias + `channel = $2 AND ` + alias + `brand = $3 AND ` + alias + `purpose = $4`
}
