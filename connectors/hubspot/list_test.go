package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/hubspot/hubspotfake"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// TestList: 450 contacts opted out of all email (among subscribed ones)
// are read by CRM search in pages of 200, each page a new query above
// the last hs_object_id (so HubSpot's 10,000-result cap never applies);
// a listing resumed from a saved cursor reads the rest only.
func TestList(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, nil)
	for i := range 450 {
		fk.UnsubscribedBySelf(fmt.Sprintf("o%04d@example.com", i))
		fk.SetStatus(fmt.Sprintf("s%04d@example.com", i), "12345", hubspotfake.Subscribed)
	}
	all, cursors := fixtures.ListAll(t, d, "")
	if len(all) != 450 || len(cursors) != 3 || cursors[2] != "" {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	for i, it := range all {
		if it.Email != fmt.Sprintf("o%04d@example.com", i) || it.Reason != "hs_email_optout" || !it.At.IsZero() {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	calls := fk.Calls()
	var body struct {
		FilterGroups []struct {
			Filters []searchFilter `json:"filters"`
		} `json:"filterGroups"`
		Limit int `json:"limit"`
	}
	if err := json.Unmarshal(calls[1].Body, &body); err != nil || body.Limit != 200 || calls[1].Path != "/crm/v3/objects/contacts/search" ||
		body.FilterGroups[0].Filters[1] != (searchFilter{"hs_object_id", "GT", cursors[0]}) {
		t.Fatalf("second call %s %s (%v)", calls[1].Path, calls[1].Body, err)
	}
	rest, _ := fixtures.ListAll(t, d, cursors[1])
	if len(rest) != 50 || rest[0].Email != "o0400@example.com" {
		t.Errorf("resumed: %d, first %+v", len(rest), rest[0])
	}
	if _, _, err := d.List(context.Background(), "abc"); !errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestListErrors: a wrong token is permanent, without the token; a 429
// (HubSpot names no Retry-After) waits its rate-limit window.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, nil)
	fk.SetKey("pat-other")
	if _, _, err := d.List(context.Background(), ""); !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), destKey) {
		t.Errorf("wrong token: %v", err)
	}
	fk.SetKey(destKey)
	fk.Script(fakeapi.Repeat(fakeapi.TooMany(hubspotfake.RateLimitHeader()), 4)...)
	_, _, err := d.List(context.Background(), "")
	if delay, ok := connectors.RetryDelay(err); !ok || delay < time.Second {
		t.Errorf("429: %v (delay %v)", err, delay)
	}
}
