package sendgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// ListPageSize is how many global suppressions one listing call asks for
// (limit). SendGrid pages its suppression lists with limit/offset
// (https://www.twilio.com/docs/sendgrid/api-reference/suppressions-global-suppressions/retrieve-all-global-suppressions);
// 500 is the page size its suppression listings have long documented as
// their largest, a safe choice.
const ListPageSize = 500

var _ connectors.Lister = (*Destination)(nil)

// Cursors of List: "" and "global:<offset>" read the global suppressions
// at that offset; "groups" reads the group suppressions (only when the
// groups option maps some).
const (
	cursorGlobal = "global:"
	cursorGroups = "groups"
)

// List reads the account's suppressions for a backfill
// (connectors.Lister), in two phases:
//
//  1. global suppressions ("Unsubscribe From All Emails"): GET
//     /v3/suppression/unsubscribes?limit=500&offset=N, an array of
//     {"created": epoch seconds, "email"}; a page shorter than the limit is
//     the last (Retrieve all Global Suppressions, URL above). Each is a
//     withdrawal of every purpose the destination honours, reason
//     "global_unsubscribe", dated created.
//  2. group suppressions, when the groups option maps unsubscribe groups
//     to purposes: GET /v3/asm/suppressions, an array of {"email",
//     "group_id", "group_name", "created_at": epoch seconds}, not paged
//     (https://www.twilio.com/docs/sendgrid/api-reference/suppressions-suppressions/retrieve-all-suppressions).
//     Each suppression of a mapped group is a withdrawal of that group's
//     purpose, reason "group_unsubscribe"; other groups are skipped.
//
// The cursor is the phase and offset ("global:1500", "groups"). Offsets
// shift when suppressions are removed during a backfill; an address
// skipped so is still read by the next run, and one added meanwhile is
// sent by SendGrid's own webhook. Errors follow connectors.Do (a 429 with
// X-RateLimit-Reset is a *connectors.RetryAfterError).
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	if cursor == cursorGroups {
		return d.listGroups(ctx)
	}
	offset := 0
	if cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(cursor, cursorGlobal))
		if err != nil || n < 0 || !strings.HasPrefix(cursor, cursorGlobal) {
			return nil, "", connectors.Permanent("sendgrid: not a listing cursor: %q", cursor)
		}
		offset = n
	}
	q := url.Values{"limit": {strconv.Itoa(ListPageSize)}, "offset": {strconv.Itoa(offset)}}
	resp, err := d.get(ctx, "/v3/suppression/unsubscribes", q)
	if err != nil {
		return nil, "", err
	}
	var rows []struct {
		Created int64  `json:"created"`
		Email   string `json:"email"`
	}
	if err := json.Unmarshal(resp.Body, &rows); err != nil {
		return nil, "", fmt.Errorf("sendgrid: GET /v3/suppression/unsubscribes: unreadable answer: %s", resp.Snippet(d.key))
	}
	page := make([]connectors.Listed, 0, len(rows))
	for _, r := range rows {
		page = append(page, connectors.Listed{Email: r.Email, At: epoch(r.Created), Reason: "global_unsubscribe"})
	}
	next := cursorGlobal + strconv.Itoa(offset+len(rows))
	if len(rows) < ListPageSize {
		next = ""
		if len(d.groups) > 0 {
			next = cursorGroups
		}
	}
	return page, next, nil
}

func (d *Destination) listGroups(ctx context.Context) ([]connectors.Listed, string, error) {
	resp, err := d.get(ctx, "/v3/asm/suppressions", nil)
	if err != nil {
		return nil, "", err
	}
	var rows []struct {
		Email     string `json:"email"`
		GroupID   int64  `json:"group_id"`
		CreatedAt int64  `json:"created_at"`
	}
	if err := json.Unmarshal(resp.Body, &rows); err != nil {
		return nil, "", fmt.Errorf("sendgrid: GET /v3/asm/suppressions: unreadable answer: %s", resp.Snippet(d.key))
	}
	var page []connectors.Listed
	for _, r := range rows {
		p, ok := d.groups[strconv.FormatInt(r.GroupID, 10)]
		if !ok {
			continue
		}
		page = append(page, connectors.Listed{Email: r.Email, At: epoch(r.CreatedAt), Reason: "group_unsubscribe", Purpose: consent.Purpose(p)})
	}
	sort.SliceStable(page, func(i, j int) bool { return page[i].Email < page[j].Email })
	return page, "", nil
}

// get makes one GET of path with query q, authenticated like Push.
func (d *Destination) get(ctx context.Context, path string, q url.Values) (*connectors.Response, error) {
	u := d.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, connectors.Permanent("sendgrid: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	req.Header.Set("Authorization", "Bearer "+d.key)
	if d.onBehalfOf != "" {
		req.Header.Set("on-behalf-of", d.onBehalfOf)
	}
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		return resp, fmt.Errorf("sendgrid: %w", err)
	}
	return resp, nil
}

// epoch reads SendGrid's Unix seconds (0: no date).
func epoch(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
