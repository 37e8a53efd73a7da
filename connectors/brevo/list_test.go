package brevo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/brevo/brevofake"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// TestList: 1,500 blocklisted contacts among others are read in pages of
// limit=1000 by offset, oldest first, dated modifiedAt; contacts not
// blocklisted are left out; a listing resumed from a saved cursor reads
// the rest.
func TestList(t *testing.T) {
	t.Parallel()
	at := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	opts := []brevofake.Option{brevofake.WithContacts("subscribed@example.com")}
	for i := range 1500 {
		opts = append(opts, brevofake.WithBlocklisted(fmt.Sprintf("b%04d@example.com", i), at.Add(time.Duration(i)*time.Second)))
	}
	d, fk, _ := newDest(t, testKey, opts...)
	all, cursors := fixtures.ListAll(t, d, "")
	if len(all) != 1500 || strings.Join(cursors, ",") != "1000," {
		t.Fatalf("%d items, cursors %q", len(all), cursors)
	}
	if it := all[0]; it.Email != "b0000@example.com" || !it.At.Equal(at) || it.Reason != "blocklisted" {
		t.Errorf("first item %+v", it)
	}
	calls := fk.Calls()
	if len(calls) != 2 || calls[1].RawQuery != "limit=1000&offset=1000&sort=asc" {
		t.Fatalf("calls %+v", calls)
	}
	rest, _ := fixtures.ListAll(t, d, "1000")
	if len(rest) != 501 || rest[0].Email != "b0999@example.com" {
		t.Errorf("resumed: %d items, first %+v", len(rest), rest[0])
	}
	if _, _, err := d.List(context.Background(), "x"); !errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("bad cursor: %v", err)
	}
}

// TestListSMS: a contact whose SMS is blocklisted is an SMS item with its
// number in E.164.
func TestListSMS(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, testKey)
	fk.AddContact("", "+33612345678")
	if _, err := d.Push(context.Background(), []connectors.Suppression{smsSup(1, "+33612345678")}); err != nil {
		t.Fatal(err)
	}
	all, _ := fixtures.ListAll(t, d, "")
	if len(all) != 1 || all[0].Phone != "+33612345678" || all[0].Email != "" || all[0].Reason != "sms_blocklisted" {
		t.Errorf("items %+v", all)
	}
}

// TestListErrors: a wrong key is permanent, without the key; a 429 whose
// x-sib-ratelimit-reset is far is a RetryAfterError with that delay.
func TestListErrors(t *testing.T) {
	t.Parallel()
	d, _, _ := newDest(t, "xkeysib-wrong")
	if _, _, err := d.List(context.Background(), ""); !errors.Is(err, connectors.ErrPermanent) || strings.Contains(err.Error(), "xkeysib-wrong") {
		t.Errorf("wrong key: %v", err)
	}
	d, fk, _ := newDest(t, testKey)
	fk.Script(fakeapi.TooMany(brevofake.ResetHeader(900)))
	if _, _, err := d.List(context.Background(), ""); err == nil {
		t.Error("429 accepted")
	} else if delay, ok := connectors.RetryDelay(err); !ok || delay < 14*time.Minute {
		t.Errorf("429: %v", err)
	}
}

// TestListLargeContacts: a page of 1,000 contacts whose attributes make
// the answer larger than connectors.MaxAnswer (2 KB each) is asked again
// with a smaller limit, instead of failing as unreadable at the same
// offset on every run; every blocklisted contact comes once.
func TestListLargeContacts(t *testing.T) {
	t.Parallel()
	const n = 1500
	notes := strings.Repeat("x", 2000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		var cs []map[string]any
		for i := offset; i < min(offset+limit, n); i++ {
			cs = append(cs, map[string]any{"email": fmt.Sprintf("b%04d@example.com", i), "emailBlacklisted": true,
				"modifiedAt": "2021-07-01T00:00:00Z", "attributes": map[string]any{"NOTES": notes}})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"contacts": cs, "count": n})
	}))
	defer srv.Close()
	d := fixtures.Build(t, NewDestination, config.Destination{Name: "brevo-acme", Kind: "brevo", Brand: "acme", BaseURL: srv.URL, APIKey: testKey},
		connectors.Deps{HTTP: fixtures.HTTPClient()})
	all, _ := fixtures.ListAll(t, d, "")
	seen := map[string]bool{}
	for _, it := range all {
		seen[it.Email] = true
	}
	if len(all) != n || len(seen) != n {
		t.Fatalf("%d items (%d distinct), want %d", len(all), len(seen), n)
	}
}

// TestListSMSWithPlus: an SMS attribute Brevo answers already with its
// "+" (as it is written in: "+33612345678") is listed as that number, not
// "++33612345678", which no phone parser reads.
func TestListSMSWithPlus(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"contacts":[{"smsBlacklisted":true,"modifiedAt":"2021-07-01T00:00:00Z","attributes":{"SMS":"+33612345678"}},`+
			`{"smsBlacklisted":true,"modifiedAt":"2021-07-01T00:00:00Z","attributes":{"SMS":"447700900123"}}],"count":2}`)
	}))
	defer srv.Close()
	d := fixtures.Build(t, NewDestination, config.Destination{Name: "brevo-acme", Kind: "brevo", Brand: "acme", BaseURL: srv.URL, APIKey: testKey},
		connectors.Deps{HTTP: fixtures.HTTPClient()})
	all, _ := fixtures.ListAll(t, d, "")
	if len(all) != 2 || all[0].Phone != "+33612345678" || all[1].Phone != "+447700900123" {
		t.Fatalf("items %+v", all)
	}
}
