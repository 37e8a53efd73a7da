package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
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

// loadFacts reads states, refused grants, customer profiles and last
// contacts of subjects, for one key or (key nil) all keys: four queries.
func (s *Store) loadFacts(ctx context.Context, subjectIDs []int64, key *consent.Key) (map[int64]*consent.Facts, error) {
	return loadFacts(ctx, s.DB, subjectIDs, key)
}

// loadFacts is Store.loadFacts on q (the pool, or a transaction).
func loadFacts(ctx context.Context, q sqlx.QueryerContext, subjectIDs []int64, key *consent.Key) (map[int64]*consent.Facts, error) {
	out := make(map[int64]*consent.Facts, len(subjectIDs))
	for _, id := range subjectIDs {
		out[id] = &consent.Facts{States: map[consent.Key]consent.StateFact{}, InvalidGrants: map[consent.Key]time.Time{},
			Withdrawals: map[consent.Key]time.Time{}, InvalidDetails: map[consent.Key]string{},
			CustomerOf: map[string]time.Time{}, LastContact: map[string]time.Time{}, RelationshipEnd: map[string]time.Time{}}
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
		Source     string    `db:"source"`
		Quality    []byte    `db:"quality"`
	}
	var states []stateRow
	if err := sqlx.SelectContext(ctx, q, &states, `
		SELECT cs.subject_id, cs.channel, cs.brand, cs.purpose, cs.status, cs.occurred_at, cs.source, e.quality
		FROM consent_states cs JOIN consent_events e ON e.id = cs.event_id
		WHERE cs.subject_id = ANY($1)`+qualify(keyFilter, "cs."), args...); err != nil {
		return nil, fmt.Errorf("store: facts states: %w", err)
	}
	for _, r := range states {
		k := consent.Key{Channel: consent.Channel(r.Channel), Brand: r.Brand, Purpose: consent.Purpose(r.Purpose)}
		sf := consent.StateFact{Status: consent.Status(r.Status), OccurredAt: r.OccurredAt.UTC(), Source: r.Source}
		if len(r.Quality) > 0 {
			if err := json.Unmarshal(r.Quality, &sf.Quality); err != nil {
				// Fail closed: a grant whose quality cannot be read grants nothing.
				return nil, fmt.Errorf("store: facts quality of subject %d: %w", r.SubjectID, err)
			}
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
	if err := sqlx.SelectContext(ctx, q, &past, `
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
	if err := sqlx.SelectContext(ctx, q, &details, `
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
	if err := sqlx.SelectContext(ctx, q, &customers, `SELECT subject_id, brand, since AS at FROM subject_profiles
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
	if err := sqlx.SelectContext(ctx, q, &contacts, `SELECT subject_id, brand, max(last_at) AS at FROM subject_contacts
		WHERE subject_id = ANY($1) AND kind = ANY(`+kindParam+`)`+brandFilter+` GROUP BY subject_id, brand`, cargs...); err != nil {
		return nil, fmt.Errorf("store: facts contacts: %w", err)
	}
	for _, r := range contacts {
		out[r.SubjectID].LastContact[r.Brand] = r.At.UTC()
	}
	// The end of a commercial relationship, as sources report it: the last
	// order (consent.CustomerExpiresAt counts the customer's 3 years from it).
	var orders []brandTime
	if err := sqlx.SelectContext(ctx, q, &orders, `SELECT subject_id, brand, max(last_at) AS at FROM subject_contacts
		WHERE subject_id = ANY($1) AND kind = 'order'`+brandFilter+` GROUP BY subject_id, brand`, brandArgs...); err != nil {
		return nil, fmt.Errorf("store: facts orders: %w", err)
	}
	for _, r := range orders {
		out[r.SubjectID].RelationshipEnd[r.Brand] = r.At.UTC()
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
