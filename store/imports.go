package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// ImportRun is one backfill run (a row of import_runs): what it read so
// far and, for a provider import, the provider's cursor of the next page.
type ImportRun struct {
	ID     int64  `db:"id"`
	Kind   string `db:"kind"` // ImportProvider or ImportCSV
	Name   string `db:"name"`
	Status string `db:"status"`
	// Cursor is the provider's cursor of the next page to read ("" = the
	// first page). It is saved after the page before it is committed to
	// the inbox, so a resumed run reads no page twice and skips none.
	Cursor string `db:"cursor"`
	// Pages and Items count what was read; InboxRows the inbox rows
	// written, Duplicates those already there (a re-run), Rejected the
	// items that could not be read.
	Pages      int64          `db:"pages"`
	Items      int64          `db:"items"`
	InboxRows  int64          `db:"inbox_rows"`
	Duplicates int64          `db:"duplicates"`
	Rejected   int64          `db:"rejected"`
	Error      sql.NullString `db:"error"`
	StartedAt  time.Time      `db:"started_at"`
	UpdatedAt  time.Time      `db:"updated_at"`
	FinishedAt sql.NullTime   `db:"finished_at"`
}

// Import run kinds and statuses.
const (
	ImportProvider = "provider"
	ImportCSV      = "csv"

	ImportRunning = "running"
	ImportDone    = "done"
	ImportFailed  = "failed"
)

const importCols = `id, kind, name, status, cursor, pages, items, inbox_rows, duplicates, rejected, error, started_at, updated_at, finished_at`

// StartImport returns the running run of (kind, name) when resume is set
// and one exists (an interrupted run: resumed = true), else starts a new
// one. A run left running is marked failed when resume is false (a CSV
// import always starts over; its inbox dedup keys make that safe).
func (s *Store) StartImport(ctx context.Context, kind, name string, resume bool) (run *ImportRun, resumed bool, err error) {
	err = s.Tx(ctx, func(tx *Tx) error {
		var cur ImportRun
		err := tx.sq.GetContext(ctx, &cur, `SELECT `+importCols+` FROM import_runs
			WHERE kind = $1 AND name = $2 AND status = 'running' FOR UPDATE`, kind, name)
		switch {
		case err == nil && resume:
			run, resumed = &cur, true
			return nil
		case err == nil:
			if _, err := tx.sq.ExecContext(ctx, `UPDATE import_runs SET status = 'failed', error = 'superseded by a new run',
				finished_at = now(), updated_at = now() WHERE id = $1`, cur.ID); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var fresh ImportRun
		if err := tx.sq.GetContext(ctx, &fresh, `INSERT INTO import_runs (kind, name) VALUES ($1, $2)
			RETURNING `+importCols, kind, name); err != nil {
			return err
		}
		run = &fresh
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: start import: %w", err)
	}
	return run, resumed, nil
}

// SaveImport records a run's cursor and counters.
func (s *Store) SaveImport(ctx context.Context, r *ImportRun) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE import_runs SET cursor = $2, pages = $3, items = $4, inbox_rows = $5,
		duplicates = $6, rejected = $7, updated_at = now() WHERE id = $1`,
		r.ID, r.Cursor, r.Pages, r.Items, r.InboxRows, r.Duplicates, r.Rejected)
	if err != nil {
		return fmt.Errorf("store: save import %d: %w", r.ID, err)
	}
	return nil
}

// FinishImport ends run r with status (ImportDone or ImportFailed) and,
// for a failure, its cause (no credential, no address); the cursor is
// cleared.
func (s *Store) FinishImport(ctx context.Context, r *ImportRun, status, cause string) error {
	if err := s.SaveImport(ctx, r); err != nil {
		return err
	}
	var e sql.NullString
	if cause != "" {
		e = sql.NullString{String: truncate(cause, 2000), Valid: true}
	}
	// A cursor may name an address (Mailgun pages by address): it is kept
	// only while the run is open.
	_, err := s.DB.ExecContext(ctx, `UPDATE import_runs SET status = $2, error = $3, cursor = '', finished_at = now(), updated_at = now()
		WHERE id = $1`, r.ID, status, e)
	if err != nil {
		return fmt.Errorf("store: finish import %d: %w", r.ID, err)
	}
	r.Status = status
	return nil
}

// FirstImportAt is when the first run of (kind, name) started (zero when
// none did). Items a provider lists without a date are dated with it, so
// that importing them again records nothing new: the ledger's fact key
// includes occurred_at.
func (s *Store) FirstImportAt(ctx context.Context, kind, name string) (time.Time, error) {
	var t sql.NullTime
	if err := s.DB.GetContext(ctx, &t, `SELECT min(started_at) FROM import_runs WHERE kind = $1 AND name = $2`, kind, name); err != nil {
		return time.Time{}, fmt.Errorf("store: first import: %w", err)
	}
	return t.Time, nil
}

// InboundState is an inbox row's status and notes, as a backfill reads
// them back once the worker has processed its pages.
type InboundState struct {
	ID     int64           `db:"id"`
	Status string          `db:"status"`
	Notes  json.RawMessage `db:"notes"`
	Error  sql.NullString  `db:"error"`
}

// InboundStates returns the status and notes of the inbox rows ids (those
// that exist), in id order.
func (s *Store) InboundStates(ctx context.Context, ids []int64) ([]InboundState, error) {
	var out []InboundState
	if err := s.DB.SelectContext(ctx, &out, `SELECT id, status, coalesce(notes, 'null'::jsonb) AS notes, error
		FROM inbound_events WHERE id = ANY($1) ORDER BY id`, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("store: inbound states: %w", err)
	}
	return out, nil
}

// InboundExists reports whether an inbox row (source, dedupKey) exists.
func (s *Store) InboundExists(ctx context.Context, source, dedupKey string) (bool, error) {
	var ok bool
	err := s.DB.GetContext(ctx, &ok, `SELECT EXISTS (SELECT 1 FROM inbound_events WHERE source = $1 AND dedup_key = $2)`, source, dedupKey)
	if err != nil {
		return false, fmt.Errorf("store: inbound exists: %w", err)
	}
	return ok, nil
}

// StateProbe names one consent of one identifier, normalized (Email, or
// Phone in E.164 when Email is empty), for a dry run.
type StateProbe struct {
	Email, Phone            string
	Channel, Brand, Purpose string
}

// StateSeen is the current state a probe found (Found false: none).
type StateSeen struct {
	Found      bool
	Status     string
	OccurredAt time.Time
}

// ProbeStates returns, for each probe in order, the current state of that
// subject's consent (the subject matched by its literal identifier, not
// its identity set: a dry run's estimate). One query whatever the number.
func (s *Store) ProbeStates(ctx context.Context, probes []StateProbe) ([]StateSeen, error) {
	out := make([]StateSeen, len(probes))
	if len(probes) == 0 {
		return out, nil
	}
	var emails, phones, channels, brands, purposes []string
	for _, p := range probes {
		emails, phones = append(emails, p.Email), append(phones, p.Phone)
		channels, brands, purposes = append(channels, p.Channel), append(brands, p.Brand), append(purposes, p.Purpose)
	}
	var rows []struct {
		I          int       `db:"i"`
		Status     string    `db:"status"`
		OccurredAt time.Time `db:"occurred_at"`
	}
	err := s.DB.SelectContext(ctx, &rows, `
		SELECT p.i, st.status, st.occurred_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS p(email, phone, channel, brand, purpose, i)
		JOIN subjects s ON (p.email <> '' AND s.email = p.email) OR (p.email = '' AND p.phone <> '' AND s.phone = p.phone)
		JOIN consent_states st ON st.subject_id = s.id AND st.channel = p.channel AND st.brand = p.brand AND st.purpose = p.purpose`,
		pq.Array(emails), pq.Array(phones), pq.Array(channels), pq.Array(brands), pq.Array(purposes))
	if err != nil {
		return nil, fmt.Errorf("store: probe states: %w", err)
	}
	for _, r := range rows {
		if r.I >= 1 && r.I <= len(out) {
			out[r.I-1] = StateSeen{Found: true, Status: r.Status, OccurredAt: r.OccurredAt}
		}
	}
	return out, nil
}

// Pushed is one withdrawal PushedBy looks up: the normalized address
// (channel email) or E.164 number (other channels) it was read at, and its
// channel.
type Pushed struct {
	Ident, Channel string
}

// PushedBy returns, for each of probes, the purposes consentsync itself
// told destination to suppress on that channel, for the subject with that
// address or number (consent.NormalizeSubject), and still holds there: per
// purpose, the newest of its suppressions pending or sent and lifts sent
// there on that channel is a suppression. A lift queued or refused for
// good leaves our suppression at the provider; a suppression refused for
// good never reached it. A probe with none is absent. A provider import
// that lists such an address is reading back our own push — the echo of a
// withdrawal we already hold — and must not record it again as new (dated
// at the import, it would displace the original withdrawal, or a later
// opt-in whose lift is queued or the provider refused). Another channel's
// push is no echo: a person's SMS suppression says nothing of their
// address. One query per call.
func (s *Store) PushedBy(ctx context.Context, destination string, probes []Pushed) (map[Pushed]map[string]bool, error) {
	out := map[Pushed]map[string]bool{}
	if len(probes) == 0 {
		return out, nil
	}
	identities, channels := make([]string, len(probes)), make([]string, len(probes))
	for i, p := range probes {
		identities[i], channels[i] = p.Ident, p.Channel
	}
	var got []struct {
		Ident   string `db:"ident"`
		Channel string `db:"channel"`
		Purpose string `db:"purpose"`
	}
	err := s.DB.SelectContext(ctx, &got, `SELECT DISTINCT p.ident, p.channel, last.purpose FROM unnest($2::text[], $3::text[]) AS p(ident, channel)
		CROSS JOIN LATERAL (SELECT id FROM subjects WHERE p.channel = 'email' AND email = p.ident
			UNION ALL SELECT id FROM subjects WHERE p.channel <> 'email' AND phone = p.ident) s
		JOIN LATERAL (SELECT DISTINCT ON (o.purpose) o.purpose, o.action FROM suppression_outbox o
			WHERE o.target_subject_id = s.id AND o.destination = $1 AND o.channel = p.channel
				AND (o.action = 'suppress' AND o.status <> 'failed' OR o.action = 'lift' AND o.status = 'sent')
			ORDER BY o.purpose, o.id DESC) last ON true
		WHERE last.action = 'suppress'`,
		destination, pq.Array(identities), pq.Array(channels))
	if err != nil {
		return nil, fmt.Errorf("store: which identities consentsync told %s to suppress: %w", destination, err)
	}
	for _, g := range got {
		k := Pushed{g.Ident, g.Channel}
		if out[k] == nil {
			out[k] = map[string]bool{}
		}
		out[k][g.Purpose] = true
	}
	return out, nil
}
