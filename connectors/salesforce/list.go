package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/consentsync/consentsync/connectors"
)

// ListPageSize is how many records one listing query asks for (SOQL
// LIMIT 2000: Salesforce's default query batch size, so each page is one
// answer without a nextRecordsUrl).
const ListPageSize = 2000

var _ connectors.Lister = (*Destination)(nil)

var sfID = regexp.MustCompile(`^[A-Za-z0-9]{15,18}$`)

// ListQuery is the SOQL of one listing page: the records of object whose
// field is true, after Id after, in Id order.
func ListQuery(object, field, after string) string {
	return fmt.Sprintf("SELECT Id, Email FROM %s WHERE %s = true AND Id > '%s' ORDER BY Id LIMIT %d", object, field, after, ListPageSize)
}

// List reads the org's opted-out records for a backfill
// (connectors.Lister): for each configured object in turn (Contact, then
// Lead), GET {instance}/services/data/{v}/query?q=ListQuery(object, field,
// after) (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm),
// the OAuth token like Push. Pages are keyed by record Id, not by
// Salesforce's query locators (nextRecordsUrl), which expire after a few
// minutes of inactivity and so cannot resume a backfill in another
// process: the cursor is "<object>:<last Id>" ("Contact:003...", "Lead:").
// A page shorter than the limit ends the object.
//
// Each record with an Email is a withdrawal of every purpose the
// destination honours, reason the field ("HasOptedOutOfEmail");
// Salesforce keeps no date of the opt-out on the record, so the
// withdrawal is dated by the backfill. Errors follow Push's (403
// REQUEST_LIMIT_EXCEEDED waits LimitWait).
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	object, after := d.opts.Objects[0], ""
	if cursor != "" {
		o, a, ok := strings.Cut(cursor, ":")
		if !ok || !slices.Contains(d.opts.Objects, o) || a != "" && !sfID.MatchString(a) {
			return nil, "", connectors.Permanent("salesforce: not a listing cursor: %q", cursor)
		}
		object, after = o, a
	}
	resp, err := d.api(ctx, http.MethodGet, d.data+QueryPath+"?q="+url.QueryEscape(ListQuery(object, d.opts.Field, after)), nil)
	if err != nil {
		return nil, "", err
	}
	var ans struct {
		Records []struct {
			ID    string `json:"Id"`
			Email string `json:"Email"`
		} `json:"records"`
	}
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, "", fmt.Errorf("salesforce: query %s: unreadable answer", object)
	}
	var page []connectors.Listed
	last := after
	for _, r := range ans.Records {
		if !sfID.MatchString(r.ID) {
			return nil, "", fmt.Errorf("salesforce: query %s: a record without a valid Id", object)
		}
		last = r.ID
		if r.Email != "" {
			page = append(page, connectors.Listed{Email: r.Email, Reason: d.opts.Field})
		}
	}
	if len(ans.Records) == ListPageSize {
		return page, object + ":" + last, nil
	}
	if i := slices.Index(d.opts.Objects, object); i+1 < len(d.opts.Objects) {
		return page, d.opts.Objects[i+1] + ":", nil
	}
	return page, "", nil
}
