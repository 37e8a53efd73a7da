package pages

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// The pages' internal sources: each page stores what a person did in the
// inbox under one of these names, as a webhook would be, and the worker
// reconciles it like any other request (same ledger, states, outbox and
// pushes). The names cannot be configured (config source names start with
// a letter or digit) and POST /webhooks/{name} never reaches them (the
// receiver's sources are the configured ones; Verify refuses anyway).
const (
	SourceOneClick    = "_one_click"
	SourcePreferences = "_preference_centre"
	SourceConfirm     = "_double_opt_in"
)

// Sources are the internal sources' names.
var Sources = []string{SourceOneClick, SourcePreferences, SourceConfirm}

// Submission is an internal source's stored body (JSON): the signals a
// page built, each with its evidence.
type Submission struct {
	// Page is "one_click", "preference_centre" or "double_opt_in".
	Page    string           `json:"page"`
	At      time.Time        `json:"at"`
	Signals []consent.Signal `json:"signals"`
}

// Source reads the pages' stored submissions (connectors.Source), for the
// worker only.
type Source struct{}

var _ connectors.Source = Source{}

// Verify refuses every request: nothing outside this process writes an
// internal source.
func (Source) Verify(*connectors.Request, time.Time) error {
	return connectors.Unauthorized("internal source: written by the pages only")
}

// Parse decodes a Submission. Errors wrap connectors.ErrMalformed.
func (Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	var s Submission
	d := json.NewDecoder(bytes.NewReader(r.Body))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return nil, connectors.Malformed("page submission: %v", err)
	}
	return &connectors.Batch{Signals: s.Signals}, nil
}
