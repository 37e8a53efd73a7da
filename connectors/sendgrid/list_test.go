package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/sendgrid/sendgridfake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// listAll follows cursors from cursor to the end, returning the items
// and the cursors seen.
func listAll(t *testing.T, d *Destination, cursor string) ([]connectors.Listed, []string) {
	t.Helper()
	var all []connectors.Listed
	var cursors []string
	for i := 0; i < 100; i++ {
		page, next, err := d.List(context.Background(), cursor)
		if err != nil {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
		all = append(all, page...)
		cursors = append(cursors, next)
		if next == "" {
			return all, cursors
		}
		cursor = next
	}
	t.Fatal("no end")
	return nil, nil
}

// TestListGlobalPagination: 1,201 global suppressions are read in pages
// of 500 by limit/offset, with their dates; a resumed listing from a
// saved cursor reads the rest only; each call carries the key and
// on-behalf-of.
func TestListGlobalPagination(t *testing.T) {
	t.Parallel()
	base := time.Date(2019, 4, 1, 12, 0, 0, 0, time.UTC)
	var opts []sendgridfake.Option
	for i := range 1201 {
		opts = append(opts, sendgridfake.WithSuppressedAt(fmt.Sprintf("user%04d@example.com", i), base.Add(time.Duration(i)*time.Minute)))
	}
	d, fk := newFakeDestination(t, testKey, opts...)
	all, cursors := listAll(t, d, "")
	if len(all) != 1201 || strings.Join(cursors, ",") != "global:500,global:1000," {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	if all[7].Email != "user0007@example.com" || !all[7].At.Equal(base.Add(7*time.Minute)) || all[7].Reason != "global_unsubscribe" || all[7].Purpose != "" {
		t.Errorf("item 7: %+v", all[7])
	}
	calls := fk.Calls()
	if len(calls) != 3 || calls[1].RawQuery != "limit=500&offset=500" || calls[0].Header.Get("On-Behalf-Of") != "acme-subuser" {
		t.Fatalf("calls %+v", calls)
	}
	rest, _ := listAll(t, d, "global:1000")
	if len(rest) != 201 || rest[0].Email != "user1000@example.com" {
		t.Errorf("resumed at global:1000: %d items, first %+v", len(rest), rest[0])
	}
	for _, bad := range []string{"global:-1", "global:x", "page:2"} {
		if _, _, err := d.List(context.Background(), bad); !errors.Is(err, connectors.ErrPermanent) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
}

// TestListGroups: with the groups option, group suppressions of mapped
// groups follow the global ones, each with its group's purpose.
func TestListGroups(t *testing.T) {
	t.Parallel()
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	fk := sendgridfake.New(sendgridfake.WithKey(testKey), sendgridfake.WithSuppressed("all@example.com"),
		sendgridfake.WithGroupSuppressed(sendgridfake.GroupSuppression{Email: "partners@example.com", GroupID: 42, GroupName: "Partner offers", CreatedAt: at},
			sendgridfake.GroupSuppression{Email: "other@example.com", GroupID: 7, GroupName: "Unmapped", CreatedAt: at}))
	srv := fakeServer(t, fk)
	cfg := config.Destination{Name: "sendgrid-acme", Kind: Kind, Brand: "acme", BaseURL: srv, APIKey: testKey,
		Options: &Options{Groups: map[string]string{"42": "partners"}}}
	d := fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()})
	all, cursors := listAll(t, d, "")
	if strings.Join(cursors, ",") != "groups," || len(all) != 2 {
		t.Fatalf("cursors %q, items %+v", cursors, all)
	}
	g := all[1]
	if g.Email != "partners@example.com" || g.Purpose != consent.PurposePartners || !g.At.Equal(at) || g.Reason != "group_unsubscribe" {
		t.Errorf("group item %+v", g)
	}
	cfg.Options = &Options{Groups: map[string]string{"42": "newsletters"}}
	if _, err := NewDestination(cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}); err == nil || !strings.Contains(err.Error(), "groups[42]") {
		t.Errorf("bad group purpose accepted: %v", err)
	}
}

// TestListErrors: a wrong key is permanent (no key in the error); a 429
// whose X-RateLimit-Reset is far comes back as a RetryAfterError with
// that delay; one that resets soon is waited out in place.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, _ := newFakeDestination(t, "SG.wrong-key")
	_, _, err := d.List(context.Background(), "")
	if !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("wrong key: %v", err)
	}
	d, fk := newFakeDestination(t, testKey, sendgridfake.WithSuppressed("a@example.com"))
	fk.Script(fakeapi.TooMany(sendgridfake.ResetHeader(time.Now().Add(time.Hour))))
	_, _, err = d.List(context.Background(), "")
	if delay, ok := connectors.RetryDelay(err); !ok || delay < 58*time.Minute {
		t.Errorf("far reset: %v (delay %v)", err, delay)
	}
	fk.Script(fakeapi.TooMany(sendgridfake.ResetHeader(time.Now().Add(time.Second))))
	page, _, err := d.List(context.Background(), "")
	if err != nil || len(page) != 1 {
		t.Errorf("near reset: %v %+v", err, page)
	}
}

func fakeServer(t *testing.T, fk *sendgridfake.Fake) string {
	t.Helper()
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}
