package postmark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/consentsync/consentsync/connectors"
)

// ListFrom is the first day a backfill asks Postmark's suppression dump
// about (Postmark launched in 2010).
var ListFrom = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)

var _ connectors.Lister = (*Destination)(nil)

// List reads the stream's suppressions for a backfill
// (connectors.Lister) with the suppression dump: GET
// {base_url}/message-streams/{stream}/suppressions/dump?fromdate=D&todate=E
// (https://postmarkapp.com/developer/api/suppressions-api#suppression-dump),
// X-Postmark-Server-Token like Push. The dump is not paged: it answers
// every suppression created in [fromdate, todate] (whole days, inclusive)
// as {"Suppressions": [{"EmailAddress", "SuppressionReason", "Origin",
// "CreatedAt"}]}, so a backfill reads it one year per page, from ListFrom
// to the current year, to keep each answer bounded. A window whose dump is
// over connectors.MaxAnswer is halved until it fits (down to one day: a
// day over it is refused, ErrPermanent); the next window is then twice
// the one that fitted, back to a year. The cursor is the window's first
// day ("2021-01-01": a year), with its length in days when shorter
// ("2016-03-02+45").
//
// Each suppression is a withdrawal dated CreatedAt, reason its
// SuppressionReason (HardBounce, SpamComplaint, ManualSuppression):
// nothing may be sent to a suppressed address on the stream. Errors follow
// Push's.
func (d *Destination) List(ctx context.Context, cursor string) ([]connectors.Listed, string, error) {
	from, days := ListFrom, 0 // 0: a year
	if cursor != "" {
		day, n, short := strings.Cut(cursor, "+")
		t, err := time.Parse("2006-01-02", day)
		if err == nil && short {
			days, err = strconv.Atoi(n)
			if err == nil && (days < 1 || days > 366 || n != strconv.Itoa(days)) {
				err = errors.New("window length")
			}
		}
		if err != nil {
			return nil, "", connectors.Permanent("postmark: not a listing cursor: %q", cursor)
		}
		from = t
	}
	year := int(from.AddDate(1, 0, 0).Sub(from).Hours() / 24)
	if days == 0 || days >= year {
		days = year
	}
	for {
		to := from.AddDate(0, 0, days-1)
		q := url.Values{"fromdate": {from.Format("2006-01-02")}, "todate": {to.Format("2006-01-02")}}
		resp, err := d.call(ctx, http.MethodGet, d.streamPath()+"/suppressions/dump?"+q.Encode(), nil)
		if err != nil {
			return nil, "", err
		}
		if resp.Truncated {
			if days == 1 {
				return nil, "", connectors.Permanent("postmark: stream %s: the dump of %s alone is over %d bytes", d.stream, from.Format("2006-01-02"), connectors.MaxAnswer)
			}
			days /= 2
			continue
		}
		var ans struct {
			Suppressions []struct {
				EmailAddress      string `json:"EmailAddress"`
				SuppressionReason string `json:"SuppressionReason"`
				CreatedAt         string `json:"CreatedAt"`
			} `json:"Suppressions"`
		}
		if err := json.Unmarshal(resp.Body, &ans); err != nil {
			return nil, "", fmt.Errorf("postmark: stream %s: unreadable dump: %s", d.stream, resp.Snippet(d.key))
		}
		page := make([]connectors.Listed, 0, len(ans.Suppressions))
		for _, s := range ans.Suppressions {
			at, _ := time.Parse(time.RFC3339, s.CreatedAt)
			page = append(page, connectors.Listed{Email: s.EmailAddress, At: at.UTC(), Reason: s.SuppressionReason})
		}
		next := to.AddDate(0, 0, 1)
		if next.After(time.Now()) {
			return page, "", nil
		}
		cursor := next.Format("2006-01-02")
		if days < year && 2*days < 366 {
			cursor += "+" + strconv.Itoa(2*days)
		}
		return page, cursor, nil
	}
}
