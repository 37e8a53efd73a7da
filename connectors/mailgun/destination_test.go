package mailgun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mailgun/mailgunfake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const (
	destKey    = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	destDomain = "mg.acme.example"
)

var sup = fixtures.Suppression

func newDest(t *testing.T, mod func(*config.Destination)) (*Destination, *mailgunfake.Fake) {
	t.Helper()
	fake := mailgunfake.New(destKey, destDomain)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "mailgun-acme", Kind: Kind, Brand: "acme", BaseURL: srv.URL + "/", APIKey: destKey,
		Options: &DestinationOptions{Domain: destDomain, Tag: AllTags}}
	if mod != nil {
		mod(&cfg)
	}
	return fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}), fake
}

func noKey(t *testing.T, err error, res []connectors.Result) {
	t.Helper()
	fixtures.NoSecret(t, err, res, destKey, "3ax6xnjp29jd6fds4gc373sgvjxteol0")
}

func byID(res []connectors.Result) map[int64]connectors.Result {
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

func TestPushSuccess(t *testing.T) {
	t.Parallel()
	d, fake := newDest(t, nil)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "Noah.Petit@example.com"), sup(2, "ines+news@example.org"), sup(3, "noah.petit@example.com")})
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if r.Err != nil || !strings.Contains(r.Receipt, "HTTP 200") || !strings.Contains(r.Receipt, "tag *") {
			t.Fatalf("result %+v", r)
		}
	}
	calls := fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls = %d", len(calls))
	}
	c := calls[0]
	if c.Method != "POST" || c.Path != "/v3/"+destDomain+"/unsubscribes" || c.Status != 200 || c.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("call %+v", c)
	}
	var body []map[string]any
	if err := json.Unmarshal(c.Body, &body); err != nil || len(body) != 2 {
		t.Fatalf("body %s (%v)", c.Body, err)
	}
	if body[0]["address"] != "Noah.Petit@example.com" || fmt.Sprint(body[0]["tags"]) != "[*]" || len(body[0]) != 2 {
		t.Fatalf("record %v", body[0])
	}
	if got := strings.Join(fake.Unsubscribed(destDomain), ","); got != "Noah.Petit@example.com,ines+news@example.org" {
		t.Fatalf("unsubscribed %s", got)
	}
	// Repeating is accepted and changes nothing (idempotent).
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "noah.petit@example.com")})
	if err != nil || res[0].Err != nil || len(fake.Unsubscribed(destDomain)) != 2 {
		t.Fatalf("repeat: %v %+v", err, res)
	}
}

func TestPushTagAndAuth(t *testing.T) {
	t.Parallel()
	d, fake := newDest(t, func(c *config.Destination) { c.Options = &DestinationOptions{Domain: destDomain, Tag: "newsletter"} })
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); err != nil {
		t.Fatal(err)
	}
	if r, ok := fake.Lookup(destDomain, "A@example.com"); !ok || strings.Join(r.Tags, ",") != "newsletter" {
		t.Fatalf("record %+v %v", r, ok)
	}
	// The recorder strips Authorization: check it on a raw request instead.
	srvURL := strings.TrimSuffix(d.base, "/")
	for _, tc := range []struct {
		user, pass string
		want       int
	}{{"api", destKey, 200}, {"api", "wrong", 401}, {"user", destKey, 401}} {
		req, _ := http.NewRequest("GET", srvURL+"/v3/"+destDomain+"/unsubscribes/a@example.com", nil)
		req.SetBasicAuth(tc.user, tc.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.user, resp.StatusCode, tc.want)
		}
	}
}

func TestPushInvalidAddresses(t *testing.T) {
	t.Parallel()
	d, fake := newDest(t, nil)
	sms := sup(4, "a@example.com")
	sms.Channel = consent.ChannelSMS
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "ok@example.com"), sup(2, "not an address"), sup(3, ""), sms})
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if m[1].Err != nil {
		t.Fatal(m[1].Err)
	}
	for _, id := range []int64{2, 3, 4} {
		if !errors.Is(m[id].Err, connectors.ErrPermanent) {
			t.Fatalf("item %d: %v", id, m[id].Err)
		}
	}
	fake.ResetCalls()
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(5, "")}); err != nil || fake.CallCount() != 0 {
		t.Fatalf("err %v, calls %d", err, fake.CallCount())
	}
}

// TestPushIsolatesRefusedRecord: Mailgun answers 400 for the whole call
// when one record is bad; Push then sends each address alone, and only the
// refused one fails (permanently, with the address masked).
func TestPushIsolatesRefusedRecord(t *testing.T) {
	t.Parallel()
	d, fake := newDest(t, nil)
	fake.Script(
		fakeapi.Answer{Status: 400, Body: `{"message":"'address' parameter is not a valid email address: bad@example.com"}`},
		fakeapi.Answer{Status: 400, Body: `{"message":"'address' parameter is not a valid email address: bad@example.com"}`},
	)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "bad@example.com"), sup(2, "good@example.com"), sup(3, "BAD@example.com")})
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if len(m) != 3 || m[2].Err != nil {
		t.Fatalf("results %+v", res)
	}
	for _, id := range []int64{1, 3} {
		if !errors.Is(m[id].Err, connectors.ErrPermanent) || strings.Contains(m[id].Err.Error(), "bad@example.com") || strings.Contains(m[id].Receipt, "bad@example.com") {
			t.Fatalf("item %d: %+v", id, m[id])
		}
	}
	if n := fake.CallCount(); n != 3 {
		t.Fatalf("calls = %d, want 3", n)
	}
	if got := fake.Unsubscribed(destDomain); len(got) != 1 || got[0] != "good@example.com" {
		t.Fatalf("unsubscribed %v", got)
	}
}

// TestPushBisectsRefusedRecord: one address Mailgun refuses in a batch of
// 500 costs about 2·log2(500) calls (the batch is halved until it is
// alone), not 500: the 499 others are unsubscribed, the bad one fails
// permanently.
func TestPushBisectsRefusedRecord(t *testing.T) {
	t.Parallel()
	d, fake := newDest(t, nil)
	fake.Refuse("p317@example.com")
	var batch []connectors.Suppression
	for i := range 500 {
		batch = append(batch, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	res, err := d.Push(context.Background(), batch)
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if len(m) != 500 || len(res) != 500 {
		t.Fatalf("%d results", len(res))
	}
	for id, r := range m {
		if (id == 317) != (r.Err != nil) {
			t.Fatalf("item %d: %+v", id, r)
		}
	}
	if !errors.Is(m[317].Err, connectors.ErrPermanent) {
		t.Fatalf("bad item: %v", m[317].Err)
	}
	// 1 + 2 per level of halving: 2·ceil(log2(500)) + 1 = 19.
	if n := fake.CallCount(); n > 19 {
		t.Fatalf("calls = %d, want at most 19", n)
	}
	if got := fake.Unsubscribed(destDomain); len(got) != 499 {
		t.Fatalf("%d unsubscribed", len(got))
	}
}

// TestPushBisectTimeout: when the Push's time runs out while a refused
// batch is being halved, the addresses already answered keep their
// Results, the others get transient Results (retried later), and Push
// returns no error (an error would discard the finished work and retry
// the whole batch forever).
func TestPushBisectTimeout(t *testing.T) {
	t.Parallel()
	fake := mailgunfake.New(destKey, destDomain)
	fake.Refuse("p3@example.com")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 4 {
			cancel()                           // the time runs out during the fourth call
			_, _ = io.Copy(io.Discard, r.Body) // so the server sees the client leave
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		fake.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "mailgun-acme", Kind: Kind, BaseURL: srv.URL, APIKey: destKey, Options: &DestinationOptions{Domain: destDomain}}
	d := fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()})
	var batch []connectors.Suppression
	for i := range 8 {
		batch = append(batch, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	// Calls: [0..7] refused, [0..3] refused, [0,1] accepted; then the
	// time is out.
	res, err := d.Push(ctx, batch)
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if len(m) != 8 {
		t.Fatalf("results %+v", res)
	}
	for id, r := range m {
		switch {
		case id <= 1 && r.Err != nil:
			t.Fatalf("item %d finished: %v", id, r.Err)
		case id > 1 && (r.Err == nil || errors.Is(r.Err, connectors.ErrPermanent)):
			t.Fatalf("item %d not finished, want a transient result: %+v", id, r)
		}
	}
	if got := fake.Unsubscribed(destDomain); len(got) != 2 {
		t.Fatalf("unsubscribed %v", got)
	}
}

func TestPushRetries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		script    []fakeapi.Answer
		calls     int
		ok        bool
		permanent bool
		retryMin  time.Duration
	}{
		{"429 Retry-After short honoured", []fakeapi.Answer{fakeapi.RetryAfter(1)}, 2, true, false, 0},
		{"429 Retry-After long reschedules", []fakeapi.Answer{fakeapi.RetryAfter(600)}, 1, false, false, 9 * time.Minute},
		{"503 then success", []fakeapi.Answer{fakeapi.Status(503)}, 2, true, false, 0},
		{"503 until retries run out", fakeapi.Repeat(fakeapi.Status(503), 5), 3, false, false, 0},
		{"403 permanent", []fakeapi.Answer{fakeapi.Status(403)}, 1, false, true, 0},
		{"404 permanent", []fakeapi.Answer{{Status: 404, Body: `{"message":"Domain not found: ` + destDomain + `"}`}}, 1, false, true, 0},
		{"401 echoing the key", []fakeapi.Answer{{Status: 401, Body: "Forbidden " + destKey}}, 1, false, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fake := newDest(t, nil)
			fake.Script(c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noKey(t, err, res)
			if n := fake.CallCount(); n != c.calls {
				t.Fatalf("calls = %d, want %d (err %v)", n, c.calls, err)
			}
			if c.ok {
				if err != nil || len(res) != 1 || res[0].Err != nil || len(fake.Unsubscribed(destDomain)) != 1 {
					t.Fatalf("want success, got %v %+v", err, res)
				}
				return
			}
			fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
			if len(fake.Unsubscribed(destDomain)) != 0 {
				t.Fatal("state changed by a failed call")
			}
		})
	}
}

func TestPushWrongKeyAndDomain(t *testing.T) {
	t.Parallel()
	d, _ := newDest(t, func(c *config.Destination) { c.APIKey = "key-wrong-" + destKey })
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	noKey(t, err, res)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "key-wrong") {
		t.Fatalf("err = %v", err)
	}
	d, _ = newDest(t, func(c *config.Destination) { c.Options = &DestinationOptions{Domain: "other.example", Tag: AllTags} })
	_, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "Domain not found") {
		t.Fatalf("err = %v", err)
	}
	// Check and Lift do not mistake the unknown domain for an absent address.
	if _, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("check err = %v", err)
	}
	if _, err := d.Lift(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("lift err = %v", err)
	}
}

func TestPushChunks(t *testing.T) {
	t.Parallel()
	d, fake := newDest(t, nil)
	var batch []connectors.Suppression
	for i := range MaxRecords + 1 {
		batch = append(batch, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	res, err := d.Push(context.Background(), batch)
	if err != nil || len(res) != len(batch) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	calls := fake.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls %d", len(calls))
	}
	for i, want := range []int{MaxRecords, 1} {
		var recs []any
		if json.Unmarshal(calls[i].Body, &recs) != nil || len(recs) != want {
			t.Fatalf("call %d: %d records", i, len(recs))
		}
	}
	if len(fake.Unsubscribed(destDomain)) != MaxRecords+1 {
		t.Fatal("unsubscribed count")
	}
	// The fake refuses an oversized call as Mailgun does.
	var big []map[string]any
	for i := range MaxRecords + 1 {
		big = append(big, map[string]any{"address": fmt.Sprintf("q%d@example.com", i), "tags": []string{"*"}})
	}
	body, _ := json.Marshal(big)
	req, _ := http.NewRequest("POST", d.base+"/v3/"+destDomain+"/unsubscribes", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("api", destKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("oversized call: %d", resp.StatusCode)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		tag        string
		seed       []string // tags of a@example.com's record, nil: none
		suppressed bool
		unknown    bool
	}{
		{"all tags", AllTags, []string{"*"}, true, false},
		{"absent", AllTags, nil, false, false},
		{"other tag only", AllTags, []string{"promo"}, false, false},
		{"configured tag", "promo", []string{"promo"}, true, false},
		{"star covers a tag", "promo", []string{"*"}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fake := newDest(t, func(cfg *config.Destination) { cfg.Options = &DestinationOptions{Domain: destDomain, Tag: c.tag} })
			if c.seed != nil {
				fake.Unsubscribe(destDomain, "a@example.com", c.seed...)
			}
			st, err := d.Check(context.Background(), []connectors.Suppression{sup(7, "A@example.com"), sup(8, "a@example.com")})
			if err != nil {
				t.Fatal(err)
			}
			if len(st) != 2 || fake.CallCount() != 1 {
				t.Fatalf("statuses %+v, calls %d", st, fake.CallCount())
			}
			for _, s := range st {
				if s.Suppressed != c.suppressed || s.Unknown != c.unknown || strings.Contains(s.Receipt, "a@example.com") || strings.Contains(s.Receipt, destKey) {
					t.Fatalf("status %+v", s)
				}
			}
			if c := fake.Calls()[0]; c.Method != "GET" || c.Path != "/v3/"+destDomain+"/unsubscribes/A@example.com" {
				t.Fatalf("call %+v", c)
			}
		})
	}
}

// TestCheckDrift: an address someone cleared in Mailgun reads back as not
// suppressed; an SMS suppression is Unknown without a call.
func TestCheckDrift(t *testing.T) {
	t.Parallel()
	d, fake := newDest(t, nil)
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); err != nil {
		t.Fatal(err)
	}
	st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if err != nil || !st[0].Suppressed {
		t.Fatalf("%v %+v", err, st)
	}
	fake.Forget(destDomain, "a@example.com")
	sms := sup(2, "b@example.com")
	sms.Channel = consent.ChannelSMS
	fake.ResetCalls()
	st, err = d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sms})
	if err != nil || len(st) != 2 || fake.CallCount() != 1 {
		t.Fatalf("%v %+v", err, st)
	}
	for _, s := range st {
		if s.Suppressed || (s.ID == 2) != s.Unknown {
			t.Fatalf("status %+v", s)
		}
	}
	// A 429 on read-back is a whole-call error like Push's.
	fake.Script(fakeapi.RetryAfter(600))
	_, err = d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if dl, ok := connectors.RetryDelay(err); !ok || dl < 9*time.Minute {
		t.Fatalf("err = %v", err)
	}
}

func TestLift(t *testing.T) {
	t.Parallel()
	for _, tag := range []string{AllTags, "promo"} {
		t.Run(tag, func(t *testing.T) {
			t.Parallel()
			d, fake := newDest(t, func(c *config.Destination) { c.Options = &DestinationOptions{Domain: destDomain, Tag: tag} })
			fake.Unsubscribe(destDomain, "a@example.com", tag, "other")
			res, err := d.Lift(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "never@example.com")})
			noKey(t, err, res)
			if err != nil || len(res) != 2 {
				t.Fatalf("%v %+v", err, res)
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatalf("result %+v", r)
				}
			}
			all := fake.Calls()
			first, ok := fakeapi.Find(all, "DELETE", "/v3/"+destDomain+"/unsubscribes/a@example.com", "")
			if len(all) != 2 || !ok {
				t.Fatalf("calls %+v", all)
			}
			calls := []fakeapi.Call{first}
			rec, ok := fake.Lookup(destDomain, "a@example.com")
			if tag == AllTags {
				if ok || calls[0].RawQuery != "" {
					t.Fatalf("record %+v, query %q", rec, calls[0].RawQuery)
				}
			} else if !ok || strings.Join(rec.Tags, ",") != "other" || calls[0].RawQuery != "tag=promo" {
				t.Fatalf("record %+v, query %q", rec, calls[0].RawQuery)
			}
			// Repeating is harmless.
			if res, err := d.Lift(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); err != nil || res[0].Err != nil {
				t.Fatalf("repeat: %v %+v", err, res)
			}
		})
	}
}

func TestDestinationConfig(t *testing.T) {
	t.Parallel()
	entry := func(extra string) []byte {
		return []byte("destinations:\n  - name: mailgun-acme\n    kind: mailgun\n    brand: acme\n    api_key: k\n" + extra)
	}
	c, err := config.Parse(entry("    domain: mg.acme.example\n    base_url: "+EUBaseURL+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	o, ok := c.Destinations[0].Options.(*DestinationOptions)
	if !ok || o.Domain != "mg.acme.example" || o.Tag != AllTags {
		t.Fatalf("options %#v", c.Destinations[0].Options)
	}
	d, err := NewDestination(c.Destinations[0], connectors.Deps{})
	if err != nil || d.base != EUBaseURL || d.MaxBatch() != MaxRecords {
		t.Fatalf("%+v %v", d, err)
	}
	for _, tc := range []struct{ extra, want string }{
		{"", "destinations[0].domain: is required"},
		{"    domain: https://mg.acme.example\n", "destinations[0].domain: must be a bare domain name"},
		{"    domain: mg.acme.example\n    tag: a/b\n", "destinations[0].tag:"},
		{"    domain: mg.acme.example\n    list_id: x\n", "destinations[0].list_id"},
	} {
		_, err := config.Parse(entry(tc.extra), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.extra, err, tc.want)
		}
	}
	if _, err := NewDestination(config.Destination{APIKey: "k"}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "domain:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewDestination(config.Destination{Options: &DestinationOptions{Domain: "d.example"}}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "api_key:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewDestination(config.Destination{APIKey: "k", BaseURL: "api.mailgun.net", Options: &DestinationOptions{Domain: "d.example"}}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "base_url:") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"message":"4 addresses have been added to the unsubscribes table"}`,
		`{"address":"alice@example.com","tags":["*"],"created_at":"Fri, 21 Oct 2011 11:02:55 GMT"}`,
		`{"message":"Address not found in unsubscribers table"}`,
		`{"message":"Unsubscribe event has been removed","address":"alice@example.com"}`,
		`Forbidden`, `[]`, `{"tags":"*"}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAnswer(body)
		if err != nil {
			return
		}
		_ = covers(a, AllTags)
		_ = absent(&connectors.Response{Status: 404, Body: body})
	})
}
