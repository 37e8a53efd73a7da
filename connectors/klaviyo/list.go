package klaviyo

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

// ListPageSize is page[size]=100, the most Get Profiles returns per page
// (https://developers.klaviyo.com/en/reference/get_profiles).
const ListPageSize = 100

var _ connectors.Lister = (*Destination)(nil)

// listFilter selects every profile suppressed for email marketing (Get
// Profiles filters subscriptions.email.marketing.suppression.timestamp
// with greater-than; reference above).
const listFilter = "greater-than(subscriptions.email.marketing.suppression.timestamp,1970-01-01T00:00:00Z)"

// List reads the account's profiles suppressed for email for a backfill
// (connectors.Lister): GET {base_url}/api/profiles?filter=<listFilter>
// &additional-fields[profile]=subscriptions&sort=subscriptions.email.marketing.suppression.timestamp
// &page[size]=100[&page[cursor]=C], the private key and revision headers
// like Push. Klaviyo pages with cursors: the answer's links.next is the
// next page's URL, and its page[cursor] is this List's cursor (no host,
// no key); no links.next means the last page. Klaviyo records an email
// unsubscribe as a suppression with reason UNSUBSCRIBE, so unsubscribed
// profiles are listed with the suppressed ones (Get Profiles has no filter
// on the consent field itself).
//
// Each profile is a withdrawal dated its suppression's timestamp, reason
// the suppression's reason (USER_SUPPRESSED, UNSUBSCRIBE, HARD_BOUNCE,
// SPAM_COMPLAINT, ...). Errors follow Push's (a 429 with Retry-After is a
// *connectors.RetryAfterError).
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	q := url.Values{
		"filter":                     {listFilter},
		"additional-fields[profile]": {"subscriptions"},
		"sort":                       {"subscriptions.email.marketing.suppression.timestamp"},
		"page[size]":                 {strconv.Itoa(ListPageSize)},
	}
	if cursor != "" {
		q.Set("page[cursor]", cursor)
	}
	req, err := d.request(ctx, http.MethodGet, d.base+"/api/profiles?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		return nil, "", fmt.Errorf("klaviyo: %w", err)
	}
	var ans struct {
		Data []struct {
			Attributes struct {
				Email         string `json:"email"`
				Subscriptions struct {
					Email struct {
						Marketing struct {
							Suppression []struct {
								Reason    string `json:"reason"`
								Timestamp string `json:"timestamp"`
							} `json:"suppression"`
						} `json:"marketing"`
					} `json:"email"`
				} `json:"subscriptions"`
			} `json:"attributes"`
		} `json:"data"`
		Links struct {
			Next *string `json:"next"`
		} `json:"links"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, "", fmt.Errorf("klaviyo: GET /api/profiles: unreadable answer: %s", resp.Snippet(d.key))
	}
	var page []connectors.Listed
	for _, p := range ans.Data {
		it := connectors.Listed{Email: p.Attributes.Email, Reason: "suppressed"}
		for _, s := range p.Attributes.Subscriptions.Email.Marketing.Suppression {
			at, _ := time.Parse(time.RFC3339, s.Timestamp)
			if it.At.IsZero() || !at.IsZero() && at.Before(it.At) {
				it.At, it.Reason = at.UTC(), s.Reason
			}
		}
		if it.Email != "" {
			page = append(page, it)
		}
	}
	if ans.Links.Next == nil || *ans.Links.Next == "" {
		return page, "", nil
	}
	n, err := url.Parse(*ans.Links.Next)
	if err != nil || n.Query().Get("page[cursor]") == "" {
		return nil, "", fmt.Errorf("klaviyo: GET /api/profiles: unreadable next page link")
	}
	return page, n.Query().Get("page[cursor]"), nil
}
