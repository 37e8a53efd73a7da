package mailchimp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mailchimp/mailchimpfake"
	"github.com/consentsync/consentsync/internal/fakeapi"
)

// TestListMembers: 1,001 unsubscribed and 2 cleaned members (and
// subscribed ones, never listed) are read in pages of count=1000 by
// offset, unsubscribed first, each dated last_changed; a listing resumed
// from a saved cursor reads the rest only.
func TestListMembers(t *testing.T) {
	t.Parallel()
	base := time.Date(2018, 9, 1, 8, 0, 0, 0, time.UTC)
	opts := []mailchimpfake.Option{
		mailchimpfake.WithMember(testList, "still.subscribed@example.com", "subscribed"),
		mailchimpfake.WithMemberAt(testList, "bounced1@example.com", "cleaned", base),
		mailchimpfake.WithMemberAt(testList, "bounced2@example.com", "cleaned", base),
		mailchimpfake.WithMember("other-list", "elsewhere@example.com", "unsubscribed"),
	}
	for i := range 1001 {
		opts = append(opts, mailchimpfake.WithMemberAt(testList, fmt.Sprintf("u%04d@example.com", i), "unsubscribed", base.Add(time.Duration(i)*time.Hour)))
	}
	d, fk := newFakeDestination(t, testKey, opts...)
	var all []connectors.Listed
	var cursors []string
	cursor := ""
	for {
		page, next, err := d.List(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		all, cursors = append(all, page...), append(cursors, next)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 1003 || strings.Join(cursors, ",") != "unsubscribed:1000,cleaned:0," {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	if it := all[3]; it.Email != "u0003@example.com" || !it.At.Equal(base.Add(3*time.Hour)) || it.Reason != "unsubscribed" {
		t.Errorf("item 3: %+v", it)
	}
	if it := all[1002]; it.Email != "bounced2@example.com" || it.Reason != "cleaned" {
		t.Errorf("last item: %+v", it)
	}
	calls := fk.Calls()
	if len(calls) != 3 || !strings.Contains(calls[1].RawQuery, "count=1000") || !strings.Contains(calls[1].RawQuery, "offset=1000") ||
		!strings.Contains(calls[2].RawQuery, "status=cleaned") || calls[0].Path != "/3.0/lists/"+testList+"/members" {
		t.Fatalf("calls %+v", calls)
	}
	page, next, err := d.List(context.Background(), "unsubscribed:1000")
	if err != nil || len(page) != 1 || page[0].Email != "u1000@example.com" || next != "cleaned:0" {
		t.Errorf("resumed: %v %+v %q", err, page, next)
	}
	for _, bad := range []string{"subscribed:0", "unsubscribed:-5", "unsubscribed"} {
		if _, _, err := d.List(context.Background(), bad); !errors.Is(err, connectors.ErrPermanent) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
}

// TestListErrors: a wrong key is permanent, without the key; a 429 with a
// long Retry-After is a RetryAfterError; Mailchimp's throttling 403 is
// transient.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, _ := newFakeDestination(t, "wrong-key-us21")
	_, _, err := d.List(context.Background(), "")
	if !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("wrong key: %v", err)
	}
	d, fk := newFakeDestination(t, testKey, mailchimpfake.WithMember(testList, "a@example.com", "unsubscribed"))
	fk.Script(fakeapi.RetryAfter(600))
	if _, _, err := d.List(context.Background(), ""); err == nil {
		t.Error("429 accepted")
	} else if delay, ok := connectors.RetryDelay(err); !ok || delay < 9*time.Minute {
		t.Errorf("429: %v", err)
	}
	fk.Script(mailchimpfake.Throttled())
	_, _, err = d.List(context.Background(), "")
	if err == nil || errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "throttled") {
		t.Errorf("throttled 403: %v", err)
	}
	if page, _, err := d.List(context.Background(), ""); err != nil || len(page) != 1 {
		t.Errorf("after throttling: %v %+v", err, page)
	}
}
