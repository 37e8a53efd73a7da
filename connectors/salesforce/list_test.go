package salesforce

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/salesforce/salesforcefake"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// TestList: 2,100 opted-out Contacts and an opted-out Lead (among records
// not opted out) are read by Id-keyed SOQL pages of 2,000, Contacts then
// Leads; a listing resumed from a saved cursor reads the rest only.
func TestList(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, nil)
	for i := range 2100 {
		fk.SetOptedOut(fk.AddContact(fmt.Sprintf("c%04d@example.com", i)), true)
		fk.AddContact(fmt.Sprintf("in%04d@example.com", i))
	}
	fk.SetOptedOut(fk.AddLead("lead@example.com", false), true)
	fk.AddLead("lead.in@example.com", false)
	all, cursors := fixtures.ListAll(t, d, "")
	if len(all) != 2101 || len(cursors) != 3 || !strings.HasPrefix(cursors[0], "Contact:003") || cursors[1] != "Lead:" || cursors[2] != "" {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	if all[0].Email != "c0000@example.com" || all[0].Reason != "HasOptedOutOfEmail" || all[2100].Email != "lead@example.com" {
		t.Errorf("items %+v ... %+v", all[0], all[2100])
	}
	var soql []string
	for _, c := range fk.Calls() {
		if q, _ := url.ParseQuery(c.RawQuery); q.Get("q") != "" {
			soql = append(soql, q.Get("q"))
		}
	}
	if len(soql) != 3 || soql[1] != ListQuery("Contact", "HasOptedOutOfEmail", strings.TrimPrefix(cursors[0], "Contact:")) || !strings.HasPrefix(soql[2], "SELECT Id, Email FROM Lead") {
		t.Fatalf("queries %q", soql)
	}
	rest, _ := fixtures.ListAll(t, d, cursors[0])
	if len(rest) != 101 {
		t.Errorf("resumed: %d items", len(rest))
	}
	for _, bad := range []string{"Account:", "Contact:x' OR Id != '", "Lead"} {
		if _, _, err := d.List(context.Background(), bad); !errors.Is(err, connectors.ErrPermanent) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
}

// TestListErrors: a bad client secret is permanent, without the secret;
// REQUEST_LIMIT_EXCEEDED is a RetryAfterError of LimitWait.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, func(o *DestinationOptions) { o.ClientSecret = "wrong-secret" })
	_, _, err := d.List(context.Background(), "")
	if !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("bad secret: %v", err)
	}
	d, fk, _ = newDest(t, nil)
	fk.AddContact("a@example.com")
	if _, _, err := d.List(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	fk.Script(salesforcefake.LimitExceeded())
	_, _, err = d.List(context.Background(), "")
	if delay, ok := connectors.RetryDelay(err); !ok || delay < 59*time.Minute {
		t.Errorf("limit exceeded: %v", err)
	}
}
