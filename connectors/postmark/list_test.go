package postmark

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/postmark/postmarkfake"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// TestList: the dump is read one calendar year per call from 2010 to
// this year; each suppression of the configured stream comes once, dated
// CreatedAt, with its reason; other streams are not read; a listing
// resumed from a saved cursor reads the later years only.
func TestList(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, testToken,
		postmarkfake.WithSuppressedAt("broadcast", postmarkfake.ReasonSpamComplaint, "spam@example.com", time.Date(2015, 12, 31, 23, 0, 0, 0, time.UTC)),
		postmarkfake.WithSuppressedAt("broadcast", postmarkfake.ReasonManual, "manual@example.com", time.Date(2016, 1, 1, 0, 30, 0, 0, time.UTC)),
		postmarkfake.WithSuppressedAt("outbound", postmarkfake.ReasonHardBounce, "other.stream@example.com", time.Date(2016, 1, 1, 0, 30, 0, 0, time.UTC)))
	all, cursors := fixtures.ListAll(t, d, "")
	years := time.Now().Year() - 2010 + 1
	if len(cursors) != years || cursors[0] != "2011-01-01" || cursors[len(cursors)-1] != "" {
		t.Fatalf("cursors %q, want one per year", cursors)
	}
	if len(all) != 2 || all[0].Email != "spam@example.com" || all[0].Reason != "SpamComplaint" || !all[0].At.Equal(time.Date(2015, 12, 31, 23, 0, 0, 0, time.UTC)) ||
		all[1].Email != "manual@example.com" || all[1].Reason != "ManualSuppression" {
		t.Fatalf("items %+v", all)
	}
	c := fk.Calls()[5]
	if c.Path != "/message-streams/broadcast/suppressions/dump" || c.RawQuery != "fromdate=2015-01-01&todate=2015-12-31" {
		t.Errorf("call %s %s", c.Path, c.RawQuery)
	}
	rest, _ := fixtures.ListAll(t, d, "2016-01-01")
	if len(rest) != 1 || rest[0].Email != "manual@example.com" {
		t.Errorf("resumed: %+v", rest)
	}
	if _, _, err := d.List(context.Background(), "2016"); !errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestListErrors: a wrong token is permanent, without the token; a 429
// with a long Retry-After is a RetryAfterError.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, _ := newDest(t, "wrong-token")
	if _, _, err := d.List(context.Background(), ""); !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("wrong token: %v", err)
	}
	d, fk := newDest(t, testToken)
	fk.Script(fakeapi.RetryAfter(600))
	if _, _, err := d.List(context.Background(), ""); err == nil {
		t.Error("429 accepted")
	} else if delay, ok := connectors.RetryDelay(err); !ok || delay < 9*time.Minute {
		t.Errorf("429: %v", err)
	}
}

// TestListLargeYear: a year whose dump is over the 1 MiB an answer is
// read to (12,000 suppressions, about 1.4 MB) is read in shorter windows
// instead of failing as an unreadable dump on every run: every
// suppression comes once, and the years around it are read whole.
func TestListLargeYear(t *testing.T) {
	t.Parallel()
	const n = 12000
	var opts []postmarkfake.Option
	start := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		at := start.Add(time.Duration(i) * (366 * 24 * time.Hour / n))
		opts = append(opts, postmarkfake.WithSuppressedAt("broadcast", postmarkfake.ReasonHardBounce, fmt.Sprintf("bounced.%05d@example.com", i), at))
	}
	opts = append(opts, postmarkfake.WithSuppressedAt("broadcast", postmarkfake.ReasonManual, "later@example.com", time.Date(2018, 6, 1, 0, 0, 0, 0, time.UTC)))
	d, _ := newDest(t, testToken, opts...)
	all, cursors := fixtures.ListAll(t, d, "2015-01-01")
	seen := map[string]bool{}
	for _, it := range all {
		if seen[it.Email] {
			t.Fatalf("%s listed twice", it.Email)
		}
		seen[it.Email] = true
	}
	if len(all) != n+1 || !seen["later@example.com"] || !seen["bounced.00000@example.com"] || !seen[fmt.Sprintf("bounced.%05d@example.com", n-1)] {
		t.Fatalf("%d items listed, want %d", len(all), n+1)
	}
	for _, c := range cursors {
		if c > "2017" && strings.Contains(c, "+") {
			t.Errorf("cursors %q: the years after the large one are not read a year at a time again", cursors)
		}
	}
	if len(cursors) > 20 {
		t.Errorf("%d pages: %q", len(cursors), cursors)
	}
	for _, c := range []string{"2016-01-01+0", "2016-01-01+367", "2016-01-01+07", "2016-01-01+", "2016-13-01+5"} {
		if _, _, err := d.List(context.Background(), c); !errors.Is(err, connectors.ErrPermanent) {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
	if page, next, err := d.List(context.Background(), "2016-03-01+2"); err != nil || len(page) == 0 || next != "2016-03-03+4" {
		t.Errorf("a 2-day window: %d items, next %q, %v", len(page), next, err)
	}
}
