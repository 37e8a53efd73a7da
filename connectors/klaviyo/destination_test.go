package klaviyo

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
	"github.com/consentsync/consentsync/connectors/klaviyo/klaviyofake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const testKey = "pk_0123456789abcdef0123456789abcdef01"

var sup = fixtures.Suppression

func newDest(t *testing.T, opts *Options) (*Destination, *klaviyofake.Fake, string) {
	t.Helper()
	fake := klaviyofake.New(testKey)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "klaviyo-acme", Kind: Kind, Brand: "acme", BaseURL: srv.URL, APIKey: testKey}
	if opts != nil {
		cfg.Options = opts
	}
	return fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}), fake, srv.URL
}

func noKey(t *testing.T, err error, res []connectors.Result) {
	t.Helper()
	fixtures.NoSecret(t, err, res, testKey, "0123456789abcdef0123456789abcdef01")
}

func byID(res []connectors.Result) map[int64]connectors.Result {
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

// jobOf decodes a recorded job body generically (the wire shape, not our
// structs).
func jobOf(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return m["data"].(map[string]any)
}

func TestPushSuccess(t *testing.T) {
	for _, listID := range []string{"", "Y6nRLr"} {
		t.Run("list="+listID, func(t *testing.T) {
			d, fake, _ := newDest(t, &Options{ListID: listID, Revision: Revision})
			fake.SetProfile("old@example.com", klaviyofake.Subscribed, "Y6nRLr", "other")
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "New@Example.com"), sup(2, "old@example.com"), sup(3, "new@example.com")})
			noKey(t, err, res)
			if err != nil || len(res) != 3 {
				t.Fatalf("%v %+v", err, res)
			}
			for _, r := range res {
				if r.Err != nil || !strings.Contains(r.Receipt, "job accepted") || !strings.Contains(r.Receipt, "202") {
					t.Fatalf("result %+v", r)
				}
			}
			calls := fake.Calls()
			if len(calls) != 1 {
				t.Fatalf("calls %d", len(calls))
			}
			c := calls[0]
			if c.Method != "POST" || c.Path != "/api/profile-subscription-bulk-delete-jobs" || c.Status != 202 ||
				c.Header.Get("revision") != Revision || c.Header.Get("Content-Type") != "application/vnd.api+json" || c.Header.Get("Accept") != "application/vnd.api+json" {
				t.Fatalf("call %+v", c)
			}
			job := jobOf(t, c.Body)
			if job["type"] != "profile-subscription-bulk-delete-job" {
				t.Fatalf("job %v", job)
			}
			profiles := job["attributes"].(map[string]any)["profiles"].(map[string]any)["data"].([]any)
			if len(profiles) != 2 {
				t.Fatalf("profiles %v", profiles)
			}
			p0 := profiles[0].(map[string]any)
			attrs := p0["attributes"].(map[string]any)
			consentVal := attrs["subscriptions"].(map[string]any)["email"].(map[string]any)["marketing"].(map[string]any)["consent"]
			if p0["type"] != "profile" || attrs["email"] != "New@Example.com" || consentVal != "UNSUBSCRIBED" {
				t.Fatalf("profile %v", p0)
			}
			rel, hasRel := job["relationships"]
			if listID == "" && hasRel {
				t.Fatalf("relationships without list_id: %v", rel)
			}
			if listID != "" {
				if fmt.Sprint(rel) != "map[list:map[data:map[id:Y6nRLr type:list]]]" || !strings.Contains(res[0].Receipt, "list Y6nRLr") {
					t.Fatalf("relationships %v", rel)
				}
				if p, _ := fake.Lookup("old@example.com"); strings.Join(p.Lists, ",") != "other" {
					t.Fatalf("lists %v", p.Lists)
				}
			}
			if got := strings.Join(fake.Unsubscribed(), ","); got != "New@Example.com,old@example.com" {
				t.Fatalf("unsubscribed %s", got)
			}
			// Repeating is accepted and changes nothing (idempotent).
			res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "new@example.com")})
			if err != nil || res[0].Err != nil || len(fake.Unsubscribed()) != 2 {
				t.Fatalf("repeat: %v %+v", err, res)
			}
		})
	}
}

// TestAuthHeaders: the fake checks the key and the revision header as
// Klaviyo does (the recorder never keeps Authorization, so check on raw
// requests).
func TestAuthHeaders(t *testing.T) {
	_, _, base := newDest(t, nil)
	for _, tc := range []struct {
		auth, revision string
		want           int
	}{
		{"Klaviyo-API-Key " + testKey, Revision, 200},
		{"Klaviyo-API-Key wrong", Revision, 401},
		{"Bearer " + testKey, Revision, 401},
		{"Klaviyo-API-Key " + testKey, "", 400},
	} {
		req, _ := http.NewRequest("GET", base+`/api/profiles?filter=equals(email,"a@example.com")`, nil)
		req.Header.Set("Authorization", tc.auth)
		if tc.revision != "" {
			req.Header.Set("revision", tc.revision)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%q %q: %d, want %d", tc.auth, tc.revision, resp.StatusCode, tc.want)
		}
	}
}

func TestPushInvalidAddresses(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	sms := sup(4, "a@example.com")
	sms.Channel = consent.ChannelSMS
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "ok@example.com"), sup(2, "not an address"), sup(3, ""), sms, sup(5, `"q"@example.com`)})
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if m[1].Err != nil {
		t.Fatal(m[1].Err)
	}
	for _, id := range []int64{2, 3, 4, 5} {
		if !errors.Is(m[id].Err, connectors.ErrPermanent) {
			t.Fatalf("item %d: %v", id, m[id].Err)
		}
	}
	fake.ResetCalls()
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(6, "")}); err != nil || fake.CallCount() != 0 {
		t.Fatalf("err %v, calls %d", err, fake.CallCount())
	}
}

// TestPushIsolatesRefusedProfile: Klaviyo refuses a whole job with 400;
// Push then sends each address alone and only the refused one fails,
// permanently, with Klaviyo's error code and the address masked.
func TestPushIsolatesRefusedProfile(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	bad := fakeapi.Answer{Status: 400, Body: `{"errors":[{"id":"x","status":400,"code":"invalid","title":"Invalid input.","detail":"Invalid email address: bad@example.com","source":{"pointer":"/data/attributes/profiles/data/0/attributes/email"}}]}`}
	fake.Script(bad, bad)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "bad@example.com"), sup(2, "good@example.com")})
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if m[2].Err != nil || !errors.Is(m[1].Err, connectors.ErrPermanent) || !strings.Contains(m[1].Err.Error(), "[invalid]") ||
		strings.Contains(m[1].Err.Error(), "bad@example.com") || strings.Contains(m[1].Receipt, "bad@example.com") {
		t.Fatalf("results %+v", res)
	}
	if fake.CallCount() != 3 || strings.Join(fake.Unsubscribed(), ",") != "good@example.com" {
		t.Fatalf("calls %d, unsubscribed %v", fake.CallCount(), fake.Unsubscribed())
	}
}

// TestPushBisectsRefusedProfile: one address Klaviyo refuses in a batch
// of 500 (five jobs of MaxProfiles) costs about 2·log2(100) extra calls
// (its job is halved until it is alone), not 100: the 499 others are
// unsubscribed, the bad one fails permanently.
func TestPushBisectsRefusedProfile(t *testing.T) {
	t.Parallel()
	d, fake, _ := newDest(t, nil)
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
	// 4 good jobs, then 1 + 2 per level of halving: 4 + 2·ceil(log2(100)) + 1 = 19.
	if n := fake.CallCount(); n > 19 {
		t.Fatalf("calls = %d, want at most 19", n)
	}
	if got := fake.Unsubscribed(); len(got) != 499 {
		t.Fatalf("%d unsubscribed", len(got))
	}
}

// TestPushBisectTimeout: when the Push's time runs out while a refused job
// is being halved, the addresses already answered keep their Results, the
// others get transient Results (retried later), and Push returns no error.
func TestPushBisectTimeout(t *testing.T) {
	t.Parallel()
	fake := klaviyofake.New(testKey)
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
	cfg := config.Destination{Name: "klaviyo-acme", Kind: Kind, BaseURL: srv.URL, APIKey: testKey}
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
	if got := fake.Unsubscribed(); len(got) != 2 {
		t.Fatalf("unsubscribed %v", got)
	}
}

func TestPushRetries(t *testing.T) {
	cases := []struct {
		name      string
		script    []fakeapi.Answer
		calls     int
		ok        bool
		permanent bool
		retryMin  time.Duration
	}{
		{"429 Retry-After short honoured", []fakeapi.Answer{klaviyofake.Throttled(1)}, 2, true, false, 0},
		{"429 Retry-After long reschedules", []fakeapi.Answer{klaviyofake.Throttled(600)}, 1, false, false, 9 * time.Minute},
		{"503 then success", []fakeapi.Answer{fakeapi.Status(503)}, 2, true, false, 0},
		{"500 until retries run out", fakeapi.Repeat(fakeapi.Status(500), 5), 3, false, false, 0},
		{"403 permanent", []fakeapi.Answer{fakeapi.Status(403)}, 1, false, true, 0},
		{"401 echoing the key", []fakeapi.Answer{{Status: 401, Body: `{"errors":[{"code":"not_authenticated","detail":"bad key Klaviyo-API-Key ` + testKey + `"}]}`}}, 1, false, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, fake, _ := newDest(t, nil)
			fake.Script(c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noKey(t, err, res)
			if n := fake.CallCount(); n != c.calls {
				t.Fatalf("calls = %d, want %d (err %v)", n, c.calls, err)
			}
			if c.ok {
				if err != nil || len(res) != 1 || res[0].Err != nil || len(fake.Unsubscribed()) != 1 {
					t.Fatalf("want success, got %v %+v", err, res)
				}
				return
			}
			fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
			if len(fake.Unsubscribed()) != 0 {
				t.Fatal("state changed by a failed call")
			}
		})
	}
}

func TestPushWrongKey(t *testing.T) {
	_, fake, base := newDest(t, nil)
	d2 := fixtures.Build(t, NewDestination, config.Destination{Name: "k", Kind: Kind, BaseURL: base, APIKey: "pk_wrong_" + testKey}, connectors.Deps{HTTP: fixtures.HTTPClient()})
	res, err := d2.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	noKey(t, err, res)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "not_authenticated") || strings.Contains(err.Error(), "pk_wrong") {
		t.Fatalf("err = %v", err)
	}
	if len(fake.Unsubscribed()) != 0 {
		t.Fatal("state changed")
	}
}

func TestPushChunks(t *testing.T) {
	d, fake, base := newDest(t, nil)
	var batch []connectors.Suppression
	for i := range MaxProfiles + 1 {
		batch = append(batch, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	res, err := d.Push(context.Background(), batch)
	if err != nil || len(res) != len(batch) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	jobs := fake.Jobs()
	if len(jobs) != 2 || len(jobs[0].Emails) != MaxProfiles || len(jobs[1].Emails) != 1 || len(fake.Unsubscribed()) != MaxProfiles+1 {
		t.Fatalf("jobs %d", len(jobs))
	}
	// The fake refuses an oversized job as Klaviyo does.
	var job jobRequest
	job.Data.Type = "profile-subscription-bulk-delete-job"
	for i := range MaxProfiles + 1 {
		var p profileObject
		p.Type = "profile"
		p.Attributes.Email = fmt.Sprintf("q%d@example.com", i)
		p.Attributes.Subscriptions.Email.Marketing.Consent = ConsentUnsubscribed
		job.Data.Attributes.Profiles.Data = append(job.Data.Attributes.Profiles.Data, p)
	}
	body, _ := json.Marshal(job)
	req, _ := http.NewRequest("POST", base+"/api/profile-subscription-bulk-delete-jobs", bytes.NewReader(body))
	req.Header.Set("Authorization", "Klaviyo-API-Key "+testKey)
	req.Header.Set("revision", Revision)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("oversized job: %d", resp.StatusCode)
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name       string
		seed       string // consent of a@example.com's profile; "": none
		push       bool
		hold       bool
		suppressed bool
		unknown    bool
	}{
		{"pushed", "", true, false, true, false},
		{"no profile", "", false, false, false, true},
		{"job not run yet, no profile", "", true, true, false, true},
		// Pushed just now (SentAt within SettleTime): the job has not
		// run yet, so the subscribed consent is not yet a mismatch.
		{"job not run yet, subscribed profile", klaviyofake.Subscribed, true, true, false, true},
		{"subscribed", klaviyofake.Subscribed, false, false, false, false},
		{"never subscribed", klaviyofake.NeverSubscribed, false, false, false, false},
		{"unsubscribed elsewhere", klaviyofake.Unsubscribed, false, false, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, fake, _ := newDest(t, nil)
			fake.Hold(c.hold)
			if c.seed != "" {
				fake.SetProfile("a@example.com", c.seed)
			}
			if c.push {
				if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); err != nil {
					t.Fatal(err)
				}
			}
			fake.ResetCalls()
			a, b := sup(7, "A@example.com"), sup(8, "a@example.com")
			if c.push {
				a.SentAt, b.SentAt = time.Now(), time.Now()
			}
			st, err := d.Check(context.Background(), []connectors.Suppression{a, b})
			if err != nil || len(st) != 2 || fake.CallCount() != 1 {
				t.Fatalf("%v %+v, calls %d", err, st, fake.CallCount())
			}
			for _, s := range st {
				if s.Suppressed != c.suppressed || s.Unknown != c.unknown || strings.Contains(s.Receipt, "example.com") {
					t.Fatalf("status %+v", s)
				}
				if c.push && c.seed == klaviyofake.Subscribed && !strings.Contains(s.Receipt, "not yet applied") {
					t.Fatalf("receipt %q", s.Receipt)
				}
			}
			call := fake.Calls()[0]
			if call.Method != "GET" || call.Path != "/api/profiles" || !strings.Contains(call.RawQuery, "additional-fields%5Bprofile%5D=subscriptions") || call.Header.Get("revision") != Revision {
				t.Fatalf("call %+v", call)
			}
			if c.push && c.seed == klaviyofake.Subscribed {
				// Pushed long ago, or SentAt unknown, and still
				// subscribed: a mismatch (drift).
				a.SentAt = time.Now().Add(-time.Hour)
				for _, s := range []connectors.Suppression{a, sup(9, "a@example.com")} {
					st, err := d.Check(context.Background(), []connectors.Suppression{s})
					if err != nil || len(st) != 1 || st[0].Suppressed || st[0].Unknown {
						t.Fatalf("long after the push: %v %+v", err, st)
					}
				}
			}
			if c.hold && fake.RunJobs() == 1 {
				st, err = d.Check(context.Background(), []connectors.Suppression{sup(7, "a@example.com")})
				if err != nil || !st[0].Suppressed {
					t.Fatalf("after the job ran: %v %+v", err, st)
				}
			}
		})
	}
}

// TestCheckDrift: a profile resubscribed in Klaviyo reads back as not
// suppressed; an SMS suppression is Unknown without a call; a 429 is a
// whole-call error.
func TestCheckDrift(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); err != nil {
		t.Fatal(err)
	}
	fake.Forget("a@example.com")
	sms := sup(2, "b@example.com")
	sms.Channel = consent.ChannelSMS
	fake.ResetCalls()
	st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sms})
	if err != nil || len(st) != 2 || fake.CallCount() != 1 {
		t.Fatalf("%v %+v", err, st)
	}
	for _, s := range st {
		if s.Suppressed || (s.ID == 2) != s.Unknown {
			t.Fatalf("status %+v", s)
		}
	}
	fake.Script(klaviyofake.Throttled(600))
	_, err = d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if dl, ok := connectors.RetryDelay(err); !ok || dl < 9*time.Minute {
		t.Fatalf("err = %v", err)
	}
	var big []connectors.Suppression
	for i := range MaxProfiles + 1 {
		big = append(big, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	if _, err := d.Check(context.Background(), big); !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("oversized check: %v", err)
	}
}

func TestLiftRefused(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	fake.SetProfile("a@example.com", klaviyofake.Unsubscribed)
	res, err := d.Lift(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")})
	noKey(t, err, res)
	if err != nil || len(res) != 2 || fake.CallCount() != 0 {
		t.Fatalf("%v %+v calls %d", err, res, fake.CallCount())
	}
	for _, r := range res {
		if !errors.Is(r.Err, connectors.ErrLiftRefused) || r.Receipt == "" {
			t.Fatalf("result %+v", r)
		}
	}
	if p, _ := fake.Lookup("a@example.com"); p.Consent != klaviyofake.Unsubscribed {
		t.Fatal("state changed")
	}
}

func TestDestinationConfig(t *testing.T) {
	entry := func(extra string) []byte {
		return []byte("destinations:\n  - name: klaviyo-acme\n    kind: klaviyo\n    brand: acme\n    api_key: pk_x\n" + extra)
	}
	lookup := func(string) (string, bool) { return "", false }
	c, err := config.Parse(entry("    list_id: Y6nRLr\n"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := c.Destinations[0].Options.(*Options)
	if !ok || o.ListID != "Y6nRLr" || o.Revision != Revision {
		t.Fatalf("options %#v", c.Destinations[0].Options)
	}
	d, err := NewDestination(c.Destinations[0], connectors.Deps{})
	if err != nil || d.base != DefaultBaseURL || d.MaxBatch() != MaxProfiles || d.listID != "Y6nRLr" {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := config.Parse(entry(""), lookup); err != nil {
		t.Fatalf("list_id is optional: %v", err)
	}
	for _, tc := range []struct{ extra, want string }{
		{"    revision: latest\n", "destinations[0].revision: must be a Klaviyo API revision"},
		{"    list_id: a/b\n", "destinations[0].list_id: must be a Klaviyo list id"},
		{"    domain: x\n", "destinations[0].domain"},
	} {
		_, err := config.Parse(entry(tc.extra), lookup)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.extra, err, tc.want)
		}
	}
	if _, err := config.Parse([]byte("destinations:\n  - {name: k, kind: klaviyo, brand: acme}\n"), lookup); err == nil || !strings.Contains(err.Error(), "destinations[0].api_key: is required") {
		t.Errorf("err = %v", err)
	}
	if _, err := NewDestination(config.Destination{}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "api_key:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewDestination(config.Destination{APIKey: "k", BaseURL: "a.klaviyo.com"}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "base_url:") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"type":"profile","id":"01GDDKASAP8TKDDA2GRZDSVP4H","attributes":{"email":"sarah.mason@klaviyo-demo.com","subscriptions":{"email":{"marketing":{"can_receive_email_marketing":false,"consent":"UNSUBSCRIBED","consent_timestamp":"2023-02-21T20:07:38+00:00","method":"API","suppression":[],"list_suppressions":[]}}}}}],"links":{"self":"https://a.klaviyo.com/api/profiles/","next":null,"prev":null}}`,
		`{"data":[],"links":{"self":"https://a.klaviyo.com/api/profiles/","next":null,"prev":null}}`,
		`{"errors":[{"id":"e","status":429,"code":"throttled","title":"Request was throttled.","detail":"Request was throttled. Expected available in 1 second.","source":{"pointer":"/data/"}}]}`,
		`{"data":[{"attributes":{"email":"a@b.co","subscriptions":null}}]}`,
		`{"data":{"type":"profile"}}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAnswer(body)
		if err != nil {
			return
		}
		_, _ = consentOf(a, "a@b.co")
		_ = errorCodes(&connectors.Response{Status: 400, Body: body})
	})
}
