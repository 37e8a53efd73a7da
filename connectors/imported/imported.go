// Package imported is the inbox format of backfills (`consentsync import`):
// each page a provider lists, or each chunk of rows a CSV export holds, is
// stored as one inbox row of kind Kind whose body is a Page (JSON), and
// enqueued like a webhook. The worker parses it with Parse instead of a
// configured source's connector, so imported withdrawals go through the
// same reconciliation, ledger, echo rule and outbox as live ones.
//
// The inbox row's source is the name the signals carry (Signal.Source): the
// destination a provider import read (so the echo rule keeps the withdrawal
// from being pushed back to it) or the -source of a CSV import.
package imported

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the inbox kind of imported pages (inbound_events.kind).
const Kind = "import"

// Method and Path are what an imported inbox row records in place of a
// webhook's method and path (nothing was received over HTTP).
const (
	Method = "IMPORT"
	Path   = "/import"
)

// Page is one inbox row's body: the signals of one provider page or CSV
// chunk, in order, and what could not be read (rows rejected with their
// line number and reason, kept for operators). No credential, no cursor.
type Page struct {
	// From says what was read: "provider sendgrid-acme" or "csv
	// unsubscribes.csv lines 2-1001".
	From    string           `json:"from"`
	Signals []consent.Signal `json:"signals"`
	Skipped []string         `json:"skipped,omitempty"`
}

// Evidence is the Evidence.Imported text of a backfill: "imported from
// <name> at <RFC 3339 UTC time>".
func Evidence(name string, at time.Time) string {
	return "imported from " + name + " at " + at.UTC().Format(time.RFC3339)
}

// Encode renders p as an inbox body.
func Encode(p Page) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("imported: encode page: %w", err)
	}
	return b, nil
}

// Parse reads an inbox body written by Encode into a batch. Every signal's
// Source is set to source (the inbox row's source), whatever the body
// says. It returns an error wrapping connectors.ErrMalformed for a body
// that is not a Page.
func Parse(source string, body []byte) (*connectors.Batch, error) {
	var p Page
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, connectors.Malformed("imported page: %v", err)
	}
	for i := range p.Signals {
		p.Signals[i].Source = source
	}
	return &connectors.Batch{Signals: p.Signals, Skipped: p.Skipped}, nil
}
