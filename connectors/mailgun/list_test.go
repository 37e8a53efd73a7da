package mailgun

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// TestList: 1,200 unsubscribes are read in pages of limit=1000 following
// Mailgun's "next" page (by address), dated created_at; a record for
// another tag only is skipped; a listing resumed from a saved cursor
// reads the rest only.
func TestList(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, nil)
	at := time.Date(2017, 3, 4, 5, 6, 7, 0, time.UTC)
	for i := range 1200 {
		fk.UnsubscribeAt(destDomain, fmt.Sprintf("u%04d@example.com", i), at)
	}
	fk.Unsubscribe(destDomain, "zz.newsletter.only@example.com", "newsletter")
	all, cursors := fixtures.ListAll(t, d, "")
	if len(all) != 1200 || len(cursors) != 2 || cursors[1] != "" || cursors[0] != "address=u0999%40example.com&page=next" {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	if it := all[1000]; it.Email != "u1000@example.com" || !it.At.Equal(at) || it.Reason != "unsubscribed" {
		t.Errorf("item 1000: %+v", it)
	}
	calls := fk.Calls()
	if len(calls) != 2 || !strings.Contains(calls[1].RawQuery, "page=next") || !strings.Contains(calls[0].RawQuery, "limit=1000") {
		t.Fatalf("calls %+v", calls)
	}
	rest, _ := fixtures.ListAll(t, d, cursors[0])
	if len(rest) != 200 || rest[0].Email != "u1000@example.com" {
		t.Errorf("resumed: %d, first %+v", len(rest), rest[0])
	}
	// Tag-scoped destination: the newsletter-only record is its own.
	dn, fk2 := newDest(t, func(c *config.Destination) { c.Options = &DestinationOptions{Domain: destDomain, Tag: "newsletter"} })
	fk2.Unsubscribe(destDomain, "n@example.com", "newsletter")
	fk2.Unsubscribe(destDomain, "other@example.com", "promo")
	if got, _ := fixtures.ListAll(t, dn, ""); len(got) != 1 || got[0].Email != "n@example.com" {
		t.Errorf("tag newsletter: %+v", got)
	}
	if _, _, err := d.List(context.Background(), "page=first"); !errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestListErrors: a wrong key is permanent, without the key; a 429 with a
// long Retry-After is a RetryAfterError.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, _ := newDest(t, func(c *config.Destination) { c.APIKey = "key-wrong-one" })
	if _, _, err := d.List(context.Background(), ""); !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), "key-wrong-one") {
		t.Errorf("wrong key: %v", err)
	}
	d, fk := newDest(t, nil)
	fk.Script(fakeapi.RetryAfter(600))
	if _, _, err := d.List(context.Background(), ""); err == nil {
		t.Error("429 accepted")
	} else if delay, ok := connectors.RetryDelay(err); !ok || delay < 9*time.Minute {
		t.Errorf("429: %v", err)
	}
}
