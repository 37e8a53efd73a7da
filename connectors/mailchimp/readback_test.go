package mailchimp

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mailchimp/mailchimpfake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
)

// newFakeDestination is a destination whose base_url is a mailchimpfake
// served at the root.
func newFakeDestination(t *testing.T, key string, opts ...mailchimpfake.Option) (*Destination, *mailchimpfake.Fake) {
	t.Helper()
	fk := mailchimpfake.New(append([]mailchimpfake.Option{mailchimpfake.WithKey(testKey)}, opts...)...)
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	return destinationFor(t, srv.URL, key), fk
}

func noKeyStatus(t *testing.T, err error, st []connectors.Status) {
	t.Helper()
	var res []connectors.Result
	for _, s := range st {
		res = append(res, connectors.Result{ID: s.ID, Receipt: s.Receipt})
		if strings.Contains(s.Receipt, "@") {
			t.Fatalf("address in receipt: %q", s.Receipt)
		}
	}
	noKey(t, err, res)
}

func statusByID(st []connectors.Status) map[int64]connectors.Status {
	m := map[int64]connectors.Status{}
	for _, s := range st {
		m[s.ID] = s
	}
	return m
}

func TestSubscriberHash(t *testing.T) {
	t.Parallel()
	// Mailchimp's own example: https://mailchimp.com/developer/marketing/docs/methods-parameters/
	if h := SubscriberHash(" Urist.McVankab@freddiesjokes.com"); h != "62eeb292278cc15f5817cb78f7790b08" {
		t.Fatal(h)
	}
	if SubscriberHash("A@example.com") != mailchimpfake.SubscriberHash("a@example.com") {
		t.Fatal("fake and connector disagree")
	}
}

// TestCheck: read-back by member status, one GET per distinct address.
func TestCheck(t *testing.T) {
	t.Parallel()
	d, fk := newFakeDestination(t, testKey,
		mailchimpfake.WithMember(testList, "Unsub@example.com", "unsubscribed"),
		mailchimpfake.WithMember(testList, "bounced@example.com", "cleaned"),
		mailchimpfake.WithMember(testList, "sub@example.com", "subscribed"),
		mailchimpfake.WithMember(testList, "drift@example.com", "unsubscribed"),
		mailchimpfake.WithMember("other-list", "elsewhere@example.com", "unsubscribed"))
	if !fk.Forget(testList, "DRIFT@example.com") {
		t.Fatal("Forget: drift@example.com was a member")
	}
	sms := sup(8, "unsub@example.com")
	sms.Channel = consent.ChannelSMS
	batch := []connectors.Suppression{sup(1, "unsub@example.com"), sup(2, "bounced@example.com"), sup(3, "sub@example.com"),
		sup(4, "drift@example.com"), sup(5, "elsewhere@example.com"), sup(6, "UNSUB@example.com"), sup(7, ""), sms}
	st, err := d.Check(context.Background(), batch)
	noKeyStatus(t, err, st)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]struct{ suppressed, unknown bool }{
		1: {true, false}, 2: {true, false}, 3: {false, false}, 4: {false, false}, 5: {false, false}, 6: {true, false}, 7: {false, true}, 8: {false, true},
	}
	got := statusByID(st)
	if len(st) != len(batch) {
		t.Fatalf("statuses %+v", st)
	}
	for id, w := range want {
		if g := got[id]; g.Suppressed != w.suppressed || g.Unknown != w.unknown || g.Receipt == "" {
			t.Errorf("item %d: %+v, want suppressed=%v unknown=%v", id, g, w.suppressed, w.unknown)
		}
	}
	calls := fk.Calls()
	if len(calls) != 5 {
		t.Fatalf("calls = %d, want 5 (one per distinct address)", len(calls))
	}
	members := "/3.0/lists/" + testList + "/members/"
	if c, ok := fakeapi.Find(calls, "GET", members+SubscriberHash("unsub@example.com"), ""); !ok || c.Status != 200 {
		t.Fatalf("unsubscribed member: %+v %v", c, ok)
	}
	if c, ok := fakeapi.Find(calls, "GET", members+SubscriberHash("drift@example.com"), ""); !ok || c.Status != 404 {
		t.Fatalf("drifted member: %+v %v", c, ok)
	}
	if fk.Status(testList, "unsub@example.com") != "unsubscribed" || fk.Status(testList, "sub@example.com") != "subscribed" {
		t.Fatal("Check changed state")
	}
}

// TestCheckAnswers: how each answer of the read-back is classified; a
// whole-call failure for one address fails Check.
func TestCheckAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		script     []fakeapi.Answer
		calls      int
		suppressed bool
		unknown    bool
		fail       bool
		permanent  bool
		retryMin   time.Duration
	}{
		{name: "unsubscribed", script: []fakeapi.Answer{{Status: 200, Body: `{"status":"unsubscribed"}`}}, calls: 1, suppressed: true},
		{name: "cleaned", script: []fakeapi.Answer{{Status: 200, Body: `{"status":"cleaned"}`}}, calls: 1, suppressed: true},
		{name: "archived", script: []fakeapi.Answer{{Status: 200, Body: `{"status":"archived"}`}}, calls: 1},
		{name: "404", script: []fakeapi.Answer{fakeapi.Status(404)}, calls: 1},
		{name: "200 without status", script: []fakeapi.Answer{{Status: 200, Body: `{"id":"x"}`}}, calls: 1, unknown: true},
		{name: "429 then answer", script: []fakeapi.Answer{fakeapi.RetryAfter(1)}, calls: 2},
		{name: "429 long Retry-After stops", script: []fakeapi.Answer{fakeapi.RetryAfter(3600)}, calls: 1, fail: true, retryMin: 59 * time.Minute},
		{name: "403 throttled stops, transient", script: []fakeapi.Answer{mailchimpfake.Throttled()}, calls: 1, fail: true},
		{name: "503 until retries run out", script: fakeapi.Repeat(fakeapi.Status(503), 3), calls: 3, fail: true},
		{name: "other 403", script: []fakeapi.Answer{fakeapi.Status(403)}, calls: 1, fail: true, permanent: true},
		{name: "400 echoing the key", script: []fakeapi.Answer{{Status: 400, Body: `{"title":"Invalid Resource","status":400,"detail":"key ` + testKey + `"}`}}, calls: 1, fail: true, permanent: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk := newFakeDestination(t, testKey)
			fk.Script(fakeapi.For(SubscriberHash("a@example.com"), c.script...)...)
			st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "z@example.com")})
			noKeyStatus(t, err, st)
			if c.fail {
				fixtures.PushFailed(t, err, nil, c.permanent, c.retryMin)
				// z@'s call runs beside a@'s: made, or cancelled before.
				if n := fk.CallCount(); st != nil || n < c.calls || n > c.calls+1 {
					t.Fatalf("statuses %+v, calls %d (want %d, or one more for z@)", st, n, c.calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fk.CallCount() != c.calls+1 {
				t.Fatalf("calls = %d, want %d", fk.CallCount(), c.calls+1)
			}
			if g := statusByID(st)[1]; g.Suppressed != c.suppressed || g.Unknown != c.unknown {
				t.Fatalf("status %+v", g)
			}
			if z := statusByID(st)[2]; z.Suppressed || z.Unknown {
				t.Fatalf("second address (not a member) %+v", z)
			}
		})
	}
}

func TestCheckWrongKeyAndBounds(t *testing.T) {
	t.Parallel()
	d, fk := newFakeDestination(t, "ffffffffffffffffffffffffffffffff-us21")
	_, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "ffffffff") {
		t.Fatalf("err = %v", err)
	}
	big := make([]connectors.Suppression, MaxMembers+1)
	for i := range big {
		big[i] = sup(int64(i), "a@example.com")
	}
	fk.ResetCalls()
	if _, err := d.Check(context.Background(), big); !errors.Is(err, connectors.ErrPermanent) || fk.CallCount() != 0 {
		t.Fatalf("oversized: %v, %d calls", err, fk.CallCount())
	}
}

// TestLiftRefused: Mailchimp never lets the API resubscribe an
// unsubscribed member; Lift refuses each item without a call.
func TestLiftRefused(t *testing.T) {
	t.Parallel()
	d, fk := newFakeDestination(t, testKey, mailchimpfake.WithMember(testList, "a@example.com", "unsubscribed"))
	batch := []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com"), sup(3, "")}
	res, err := d.Lift(context.Background(), batch)
	noKey(t, err, res)
	if err != nil || len(res) != len(batch) {
		t.Fatalf("%v %+v", err, res)
	}
	for _, r := range res {
		if !errors.Is(r.Err, connectors.ErrLiftRefused) || r.Receipt == "" || strings.Contains(r.Receipt, "@") {
			t.Fatalf("result %+v", r)
		}
	}
	if fk.CallCount() != 0 || fk.Status(testList, "a@example.com") != "unsubscribed" {
		t.Fatal("Lift made a call or changed state")
	}
}

// TestSandboxReadBack: the sandbox mounts the same fake under /mailchimp.
func TestSandboxReadBack(t *testing.T) {
	t.Parallel()
	d, sb := newTestDestination(t)
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")}); err != nil {
		t.Fatal(err)
	}
	sb.Mailchimp().Forget(testList, "b@example.com")
	st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")})
	if err != nil || !statusByID(st)[1].Suppressed || statusByID(st)[2].Suppressed || statusByID(st)[2].Unknown {
		t.Fatalf("%v %+v", err, st)
	}
	calls := sb.Calls(sandbox.Mailchimp)
	status := map[string]int{}
	for _, c := range calls[1:] {
		if c.AuthOK {
			status[c.Path] = c.Status
		}
	}
	members := "/mailchimp/3.0/lists/" + testList + "/members/"
	if len(calls) != 3 || status[members+SubscriberHash("a@example.com")] != 200 || status[members+SubscriberHash("b@example.com")] != 404 {
		t.Fatalf("calls %+v", calls)
	}
}

func TestConfigOptions(t *testing.T) {
	t.Parallel()
	entry := func(extra string) []byte {
		return []byte("destinations:\n  - name: mc\n    kind: mailchimp\n    brand: acme\n    api_key: k-us21\n" + extra)
	}
	env := func(string) (string, bool) { return "", false }
	c, err := config.Parse(entry("    list_id: "+testList+"\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := c.Destinations[0].Options.(*Options); !ok || o.ListID != testList {
		t.Fatalf("options %+v", c.Destinations[0].Options)
	}
	for _, b := range []struct{ name, yaml, want string }{
		{"no list", "", "destinations[0].list_id: is required"},
		{"unknown key", "    list_id: x\n    on_behalf_of: y\n", "destinations[0].on_behalf_of"},
	} {
		if _, err := config.Parse(entry(b.yaml), env); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: err = %v, want %q", b.name, err, b.want)
		}
	}
}

// FuzzParseMemberStatus: the read-back parser never panics.
func FuzzParseMemberStatus(f *testing.F) {
	for _, s := range []string{`{"id":"62eeb292278cc15f5817cb78f7790b08","email_address":"a@example.com","status":"unsubscribed","list_id":"a6b5da1054"}`,
		`{"status":"cleaned"}`, `{"status":""}`, `{"status":3}`, `{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":"Resource Not Found","status":404}`, `[]`, `null`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if st, ok := ParseMemberStatus(body); ok == (st == "") {
			t.Fatalf("status %q ok %v", st, ok)
		}
	})
}
