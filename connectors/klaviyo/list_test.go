package klaviyo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/klaviyo/klaviyofake"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// TestList: 250 suppressed profiles (among subscribed ones) are read in
// pages of page[size]=100 following Klaviyo's links.next cursor, oldest
// suppression first, dated and reasoned by the suppression; a listing
// resumed from a saved cursor reads the rest only.
func TestList(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, nil)
	at := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 250 {
		fk.SetSuppressed(fmt.Sprintf("s%03d@example.com", i), "USER_SUPPRESSED", at.Add(time.Duration(i)*time.Minute))
		fk.SetProfile(fmt.Sprintf("ok%03d@example.com", i), klaviyofake.Subscribed)
	}
	all, cursors := fixtures.ListAll(t, d, "")
	if len(all) != 250 || len(cursors) != 3 || cursors[2] != "" {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	if it := all[120]; it.Email != "s120@example.com" || it.Reason != "USER_SUPPRESSED" || !it.At.Equal(at.Add(120*time.Minute)) {
		t.Errorf("item 120: %+v", it)
	}
	calls := fk.Calls()
	q, _ := url.ParseQuery(calls[1].RawQuery)
	if q.Get("page[size]") != "100" || q.Get("page[cursor]") != cursors[0] || q.Get("filter") != listFilter || calls[1].Header.Get("Revision") == "" {
		t.Fatalf("second call %s", calls[1].RawQuery)
	}
	rest, _ := fixtures.ListAll(t, d, cursors[1])
	if len(rest) != 50 || rest[0].Email != "s200@example.com" {
		t.Errorf("resumed: %d, first %+v", len(rest), rest[0])
	}
}

// TestListErrors: a wrong key is permanent, without the key; a 429 with a
// long Retry-After is a RetryAfterError.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, _, _ := newDest(t, nil)
	d.key = "pk_wrong_key"
	if _, _, err := d.List(context.Background(), ""); !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), "pk_wrong_key") {
		t.Errorf("wrong key: %v", err)
	}
	d, fk, _ := newDest(t, nil)
	fk.Script(fakeapi.RetryAfter(600))
	if _, _, err := d.List(context.Background(), ""); err == nil {
		t.Error("429 accepted")
	} else if delay, ok := connectors.RetryDelay(err); !ok || delay < 9*time.Minute {
		t.Errorf("429: %v", err)
	}
}
