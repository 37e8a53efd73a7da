package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/consentsync/consentsync/connectors"
)

// ListPageSize is how many contacts one search page asks for: limit=200,
// the most HubSpot's CRM search returns per page
// (https://developers.hubspot.com/docs/guides/api/crm/search).
const ListPageSize = 200

var _ connectors.Lister = (*Destination)(nil)

type searchFilter struct {
	PropertyName string `json:"propertyName"`
	Operator     string `json:"operator"`
	Value        string `json:"value"`
}

type searchBody struct {
	FilterGroups []struct {
		Filters []searchFilter `json:"filters"`
	} `json:"filterGroups"`
	Sorts      []map[string]string `json:"sorts"`
	Properties []string            `json:"properties"`
	Limit      int                 `json:"limit"`
}

// List reads the portal's contacts opted out of all email for a backfill
// (connectors.Lister) with the CRM search API: POST
// {base_url}/crm/v3/objects/contacts/search with the filters
// hs_email_optout EQ "true" and hs_object_id GT <cursor>, sorted by
// hs_object_id ascending, limit 200, the private app token like Push
// (search guide, URL above). HubSpot stops paging a search query after
// 10,000 results, so the next page is not asked with "after" but as a new
// query above the last id seen: the cursor is that hs_object_id. A page
// shorter than the limit, or one without paging.next, is the last.
//
// Each contact is a withdrawal of every purpose the destination honours,
// reason "hs_email_optout". HubSpot keeps no date of the opt-out on the
// contact, so the withdrawal is dated by the backfill (the destination's
// first import). Errors follow Push's (a 429 waits out HubSpot's
// rate-limit window, RateLimitWait).
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	last := int64(0)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 {
			return nil, "", connectors.Permanent("hubspot: not a listing cursor: %q", cursor)
		}
		last = n
	}
	body := searchBody{
		Sorts:      []map[string]string{{"propertyName": "hs_object_id", "direction": "ASCENDING"}},
		Properties: []string{"email", "hs_email_optout"},
		Limit:      ListPageSize,
	}
	body.FilterGroups = append(body.FilterGroups, struct {
		Filters []searchFilter `json:"filters"`
	}{Filters: []searchFilter{
		{PropertyName: "hs_email_optout", Operator: "EQ", Value: "true"},
		{PropertyName: "hs_object_id", Operator: "GT", Value: strconv.FormatInt(last, 10)},
	}})
	const path = "/crm/v3/objects/contacts/search"
	resp, err := d.postTo(ctx, path, body)
	if err != nil {
		return nil, "", err
	}
	var ans struct {
		Results []struct {
			ID         string `json:"id"`
			Properties struct {
				Email string `json:"email"`
			} `json:"properties"`
		} `json:"results"`
		Paging *struct {
			Next *struct {
				After string `json:"after"`
			} `json:"next"`
		} `json:"paging"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, "", fmt.Errorf("hubspot: POST %s: unreadable answer: %s", path, resp.Snippet(d.key))
	}
	page := make([]connectors.Listed, 0, len(ans.Results))
	maxID := last
	for _, r := range ans.Results {
		id, err := strconv.ParseInt(r.ID, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("hubspot: POST %s: a result without a numeric id", path)
		}
		maxID = max(maxID, id)
		if r.Properties.Email != "" {
			page = append(page, connectors.Listed{Email: r.Properties.Email, Reason: "hs_email_optout"})
		}
	}
	if len(ans.Results) < ListPageSize || ans.Paging == nil || ans.Paging.Next == nil {
		return page, "", nil
	}
	return page, strconv.FormatInt(maxID, 10), nil
}
