package mailchimp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/connectors"
)

// ListPageSize is how many members one listing call asks for: count=1000,
// the largest Mailchimp accepts
// (https://mailchimp.com/developer/marketing/api/list-members/list-members-info/).
const ListPageSize = 1000

var _ connectors.Lister = (*Destination)(nil)

// listedStatuses are the member statuses a backfill reads, in order:
// unsubscribed members, then cleaned ones (addresses Mailchimp stopped
// sending to after bounces: nothing may be sent to them either).
var listedStatuses = []string{"unsubscribed", "cleaned"}

// List reads the audience's unsubscribed and cleaned members for a
// backfill (connectors.Lister): GET
// {base_url}/3.0/lists/{list_id}/members?status=S&count=1000&offset=N&fields=...
// ("List members info", URL above), basic auth like Push. The answer is
// {"members": [{"email_address", "status", "last_changed"}],
// "total_items"}; the status's last page is the one that reaches
// total_items (or a short page). Each member is a withdrawal dated
// last_changed (ISO 8601), reason its status.
//
// The cursor is "<status>:<offset>" ("unsubscribed:2000", "cleaned:0").
// Offsets shift when members change status during a backfill; a member
// skipped so is read by the next run, and a new unsubscribe reaches
// consentsync through Mailchimp's webhook anyway. Errors follow Push's
// (a 403 "Too Many Requests" is transient).
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	status, offset := listedStatuses[0], 0
	if cursor != "" {
		s, n, ok := strings.Cut(cursor, ":")
		off, err := strconv.Atoi(n)
		if !ok || err != nil || off < 0 || (s != listedStatuses[0] && s != listedStatuses[1]) {
			return nil, "", connectors.Permanent("mailchimp: not a listing cursor: %q", cursor)
		}
		status, offset = s, off
	}
	q := url.Values{
		"status": {status}, "count": {strconv.Itoa(ListPageSize)}, "offset": {strconv.Itoa(offset)},
		"fields": {"members.email_address,members.status,members.last_changed,total_items"},
	}
	endpoint := d.base + "/3.0/lists/" + url.PathEscape(d.listID) + "/members?" + q.Encode()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, "", connectors.Permanent("mailchimp: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	req.SetBasicAuth("consentsync", d.key)
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		if resp != nil && resp.Status == http.StatusForbidden && throttled(resp.Body) {
			return nil, "", fmt.Errorf("mailchimp: GET %s: HTTP 403 Too Many Requests (throttled): %s", req.URL.Path, resp.Snippet(d.key))
		}
		return nil, "", fmt.Errorf("mailchimp: %w", err)
	}
	var ans struct {
		Members []struct {
			EmailAddress string `json:"email_address"`
			Status       string `json:"status"`
			LastChanged  string `json:"last_changed"`
		} `json:"members"`
		TotalItems int `json:"total_items"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, "", fmt.Errorf("mailchimp: GET %s: unreadable answer: %s", req.URL.Path, resp.Snippet(d.key))
	}
	page := make([]connectors.Listed, 0, len(ans.Members))
	for _, m := range ans.Members {
		at, _ := time.Parse(time.RFC3339, m.LastChanged)
		reason := m.Status
		if reason == "" {
			reason = status
		}
		page = append(page, connectors.Listed{Email: m.EmailAddress, At: at.UTC(), Reason: reason})
	}
	next := status + ":" + strconv.Itoa(offset+len(ans.Members))
	if len(ans.Members) < ListPageSize || offset+len(ans.Members) >= ans.TotalItems {
		next = ""
		if status == listedStatuses[0] {
			next = listedStatuses[1] + ":0"
		}
	}
	return page, next, nil
}
