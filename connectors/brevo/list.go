package brevo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/consentsync/consentsync/connectors"
)

// ListPageSize is how many contacts one listing call asks for: limit=1000,
// the largest "Get all the contacts" accepts
// (https://developers.brevo.com/reference/get-contacts).
const ListPageSize = 1000

var _ connectors.Lister = (*Destination)(nil)

// List reads the account's blocklisted contacts for a backfill
// (connectors.Lister): GET {base_url}/v3/contacts?limit=1000&offset=N&sort=asc
// ("Get all the contacts", URL above; api-key header like Push), oldest
// first so that contacts created during the backfill land after the
// cursor. The answer is {"contacts": [{"email", "emailBlacklisted",
// "smsBlacklisted", "modifiedAt", "attributes": {"SMS"}}], "count"}; a
// page shorter than the limit, or one reaching count, is the last. An
// answer over connectors.MaxAnswer (contacts with many attributes) is
// asked again with half the limit, until it fits.
//
// A contact with emailBlacklisted is an email withdrawal, one with
// smsBlacklisted an SMS withdrawal of its SMS attribute (when the
// destination sends SMS), reason "blocklisted". Brevo keeps no date of the
// blocklisting: the contact's modifiedAt, at or after it, dates the
// withdrawal. Contacts blocklisted on neither are not returned. The
// cursor is the offset. Errors follow Push's (a 429 with
// x-sib-ratelimit-reset is a *connectors.RetryAfterError).
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	offset := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			return nil, "", connectors.Permanent("brevo: not a listing cursor: %q", cursor)
		}
		offset = n
	}
	limit := ListPageSize
	var resp *connectors.Response
	for {
		q := url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}, "sort": {"asc"}}
		var err error
		if resp, err = d.call(ctx, http.MethodGet, "/v3/contacts?"+q.Encode(), nil); err != nil {
			return nil, "", err
		}
		if !resp.Truncated {
			break
		}
		// Contacts with many attributes: ask for fewer.
		if limit == 1 {
			return nil, "", connectors.Permanent("brevo: GET /v3/contacts: the contact at offset %d alone is over %d bytes", offset, connectors.MaxAnswer)
		}
		limit /= 2
	}
	var ans struct {
		Contacts []struct {
			Email            string         `json:"email"`
			EmailBlacklisted bool           `json:"emailBlacklisted"`
			SMSBlacklisted   bool           `json:"smsBlacklisted"`
			ModifiedAt       string         `json:"modifiedAt"`
			Attributes       map[string]any `json:"attributes"`
		} `json:"contacts"`
		Count int `json:"count"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, "", fmt.Errorf("brevo: GET /v3/contacts: unreadable answer: %s", resp.Snippet(d.key))
	}
	var page []connectors.Listed
	for _, c := range ans.Contacts {
		at, _ := time.Parse(time.RFC3339, c.ModifiedAt)
		if c.EmailBlacklisted && c.Email != "" {
			page = append(page, connectors.Listed{Email: c.Email, At: at.UTC(), Reason: "blocklisted"})
		}
		if sms, _ := c.Attributes["SMS"].(string); c.SMSBlacklisted && sms != "" {
			// Brevo keeps the number as it was written in, "+" or not.
			page = append(page, connectors.Listed{Phone: "+" + strings.TrimPrefix(sms, "+"), At: at.UTC(), Reason: "sms_blocklisted"})
		}
	}
	next := strconv.Itoa(offset + len(ans.Contacts))
	if len(ans.Contacts) < limit || offset+len(ans.Contacts) >= ans.Count {
		next = ""
	}
	return page, next, nil
}
