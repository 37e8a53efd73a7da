package ses

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/ses/sesfake"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// TestList: a list of 1,500 contacts, 1,200 unsubscribed from all and 1
// opted out of a topic the destination manages, is read with ListContacts
// in pages of 1,000 following NextToken; subscribed contacts are left out;
// a listing resumed from a saved token reads the rest only.
func TestList(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	at := time.Date(2023, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := range 1500 {
		email := fmt.Sprintf("c%04d@example.com", i)
		fk.AddContact(testList, email, i < 1200, nil)
		fk.SetUpdated(testList, email, at)
	}
	fk.AddContact(testList, "z.topic@example.com", false, map[string]string{"offers": sesfake.OptOut})
	fk.AddContact(testList, "z.other.topic@example.com", false, map[string]string{"unmanaged": sesfake.OptOut})
	all, cursors := fixtures.ListAll(t, d, "")
	if len(all) != 1201 || len(cursors) != 2 || cursors[1] != "" {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	if it := all[5]; it.Email != "c0005@example.com" || it.Reason != "unsubscribe_all" || !it.At.Equal(at) {
		t.Errorf("item 5: %+v", it)
	}
	if it := all[1200]; it.Email != "z.topic@example.com" || it.Reason != "topic_opt_out" {
		t.Errorf("last item: %+v", it)
	}
	var body struct {
		PageSize  int
		NextToken string
	}
	calls := fk.Calls()
	if err := json.Unmarshal(calls[1].Body, &body); err != nil || body.PageSize != 1000 || body.NextToken != cursors[0] ||
		calls[1].Path != "/v2/email/contact-lists/"+testList+"/contacts/list" {
		t.Fatalf("second call %s %s (%v)", calls[1].Path, calls[1].Body, err)
	}
	rest, _ := fixtures.ListAll(t, d, cursors[0])
	if len(rest) != 201 {
		t.Errorf("resumed: %d items", len(rest))
	}
}

// TestListErrors: another access key is permanent, without the secret; an
// unknown contact list is permanent; throttling is a RetryAfterError.
func TestListErrors(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	d := destinationFor(t, srv.URL, "AKIAOTHER:"+testSecret, testList)
	if _, _, err := d.List(context.Background(), ""); !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), testSecret) {
		t.Errorf("other key: %v", err)
	}
	d = destinationFor(t, srv.URL, testKey, "no-such-list")
	if _, _, err := d.List(context.Background(), ""); !errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("unknown list: %v", err)
	}
	d, fk := newTestDestination(t)
	fk.Script(fakeapi.Repeat(sesfake.Throttled(), 3)...)
	_, _, err := d.List(context.Background(), "")
	if delay, ok := connectors.RetryDelay(err); !ok || delay != ThrottleDelay {
		t.Errorf("throttled: %v", err)
	}
}
