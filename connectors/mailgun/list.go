package mailgun

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/consentsync/consentsync/connectors"
)

// ListPageSize is how many unsubscribes one listing call asks for:
// limit=1000, the most Mailgun returns per page
// (https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/unsubscribe/get-v3--domainid--unsubscribes).
const ListPageSize = 1000

var _ connectors.Lister = (*Destination)(nil)

// List reads the domain's unsubscribes table for a backfill
// (connectors.Lister): GET {base_url}/v3/{domain}/unsubscribes?limit=1000,
// then the "next" page Mailgun names (page=next&address=<last address>),
// basic auth like Push. The answer is {"items": [{"address", "tags",
// "created_at"}], "paging": {"next", ...}}; Mailgun always names a next
// page, so a page shorter than the limit is the last.
//
// A record unsubscribed from all mail ("*") or from the destination's tag
// is a withdrawal dated created_at (RFC 2822), reason "unsubscribed";
// records for other tags only are skipped. The cursor is the query of
// Mailgun's next URL (no host, no key). Errors follow Push's.
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	q := url.Values{"limit": {strconv.Itoa(ListPageSize)}}
	if cursor != "" {
		c, err := url.ParseQuery(cursor)
		if err != nil || c.Get("page") != "next" || c.Get("address") == "" {
			return nil, "", connectors.Permanent("mailgun: not a listing cursor")
		}
		q.Set("page", "next")
		q.Set("address", c.Get("address"))
	}
	req, err := d.request(ctx, http.MethodGet, d.endpoint("")+"?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		return nil, "", fmt.Errorf("mailgun: %w", err)
	}
	var ans struct {
		Items []struct {
			Address   string   `json:"address"`
			Tags      []string `json:"tags"`
			CreatedAt string   `json:"created_at"`
		} `json:"items"`
		Paging struct {
			Next string `json:"next"`
		} `json:"paging"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, "", fmt.Errorf("mailgun: GET unsubscribes: unreadable answer: %s", resp.Snippet(d.key))
	}
	var page []connectors.Listed
	for _, it := range ans.Items {
		if !coversTag(it.Tags, d.tag) {
			continue
		}
		at, _ := time.Parse(time.RFC1123, it.CreatedAt)
		if at.IsZero() {
			at, _ = time.Parse(time.RFC1123Z, it.CreatedAt)
		}
		page = append(page, connectors.Listed{Email: it.Address, At: at.UTC(), Reason: "unsubscribed"})
	}
	if len(ans.Items) < ListPageSize || ans.Paging.Next == "" {
		return page, "", nil
	}
	n, err := url.Parse(ans.Paging.Next)
	if err != nil || n.Query().Get("address") == "" {
		return nil, "", fmt.Errorf("mailgun: GET unsubscribes: unreadable next page")
	}
	next := url.Values{"page": {"next"}, "address": {n.Query().Get("address")}}
	return page, next.Encode(), nil
}

// coversTag reports whether an unsubscribe for tags stops mail tagged tag:
// "*" (all mail) always does.
func coversTag(tags []string, tag string) bool {
	for _, t := range tags {
		if t == AllTags || t == tag {
			return true
		}
	}
	return false
}
