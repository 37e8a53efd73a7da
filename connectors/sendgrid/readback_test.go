package sendgrid

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/sendgrid/sendgridfake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
)

// newFakeDestination is a destination whose base_url is a sendgridfake
// served at the root.
func newFakeDestination(t *testing.T, key string, opts ...sendgridfake.Option) (*Destination, *sendgridfake.Fake) {
	t.Helper()
	fk := sendgridfake.New(append([]sendgridfake.Option{sendgridfake.WithKey(testKey)}, opts...)...)
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "sendgrid-acme", Kind: Kind, Brand: "acme", BaseURL: srv.URL, APIKey: key,
		Options: &Options{OnBehalfOf: "acme-subuser"}}
	return fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}), fk
}

func noKeyStatus(t *testing.T, err error, st []connectors.Status) {
	t.Helper()
	var res []connectors.Result
	for _, s := range st {
		res = append(res, connectors.Result{ID: s.ID, Receipt: s.Receipt})
	}
	noKey(t, err, res)
	for _, s := range st {
		if strings.Contains(s.Receipt, "@") {
			t.Fatalf("address in receipt: %q", s.Receipt)
		}
	}
}

func byStatusID(st []connectors.Status) map[int64]connectors.Status {
	m := map[int64]connectors.Status{}
	for _, s := range st {
		m[s.ID] = s
	}
	return m
}

// TestCheck: read-back of pushed, never pushed and drifted addresses,
// one GET per distinct address, with the auth and on-behalf-of headers.
func TestCheck(t *testing.T) {
	t.Parallel()
	d, fk := newFakeDestination(t, testKey, sendgridfake.WithSuppressed("Held@Example.com", "drift@example.com"))
	if !fk.Forget("DRIFT@example.com") {
		t.Fatal("Forget: drift@example.com was suppressed")
	}
	sms := sup(5, "held@example.com")
	sms.Channel = consent.ChannelSMS
	batch := []connectors.Suppression{sup(1, "held@example.com"), sup(2, "never@example.com"), sup(3, "drift@example.com"), sup(4, "HELD@example.com"), sms, sup(6, "not an address")}
	st, err := d.Check(context.Background(), batch)
	noKeyStatus(t, err, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(batch) {
		t.Fatalf("statuses %+v", st)
	}
	want := map[int64]struct{ suppressed, unknown bool }{
		1: {true, false}, 2: {false, false}, 3: {false, false}, 4: {true, false}, 5: {false, true}, 6: {false, true},
	}
	got := byStatusID(st)
	for id, w := range want {
		if g := got[id]; g.Suppressed != w.suppressed || g.Unknown != w.unknown || g.Receipt == "" {
			t.Errorf("item %d: %+v, want suppressed=%v unknown=%v", id, g, w.suppressed, w.unknown)
		}
	}
	calls := fk.Calls()
	if len(calls) != 3 {
		t.Fatalf("calls = %d, want one per distinct address (3)", len(calls))
	}
	for _, c := range calls {
		if c.Method != "GET" || !strings.HasPrefix(c.Path, "/v3/asm/suppressions/global/") || c.Header.Get("On-Behalf-Of") != "acme-subuser" || c.Status != 200 {
			t.Errorf("call %+v", c)
		}
	}
	if !slices.ContainsFunc(calls, func(c fakeapi.Call) bool { return c.Path == "/v3/asm/suppressions/global/held@example.com" }) {
		t.Errorf("no call for held@example.com, as first spelled: %+v", calls)
	}
	if got := strings.Join(fk.Suppressed(), ","); got != "Held@Example.com" {
		t.Errorf("Check changed state: %s", got)
	}
}

// TestCheckAnswers: how each answer of the read-back is classified.
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
		{name: "200 naming the address", script: []fakeapi.Answer{{Status: 200, Body: `{"recipient_email":"A@example.com"}`}}, calls: 1, suppressed: true},
		{name: "200 {}", script: []fakeapi.Answer{{Status: 200, Body: `{}`}}, calls: 1},
		{name: "404", script: []fakeapi.Answer{fakeapi.Status(404)}, calls: 1},
		{name: "200 naming another address", script: []fakeapi.Answer{{Status: 200, Body: `{"recipient_email":"b@example.com"}`}}, calls: 1, unknown: true},
		{name: "200 not JSON", script: []fakeapi.Answer{{Status: 200, Body: `<html>`}}, calls: 1, unknown: true},
		{name: "400 for the address", script: []fakeapi.Answer{fakeapi.Status(400)}, calls: 1, unknown: true},
		{name: "429 then answer", script: []fakeapi.Answer{fakeapi.TooMany(sendgridfake.ResetHeader(time.Now().Add(time.Second)))}, calls: 2},
		{name: "429 far reset stops", script: []fakeapi.Answer{fakeapi.TooMany(sendgridfake.ResetHeader(time.Now().Add(time.Hour)))}, calls: 1, fail: true, retryMin: 58 * time.Minute},
		{name: "503 until retries run out", script: fakeapi.Repeat(fakeapi.Status(503), 5), calls: 3, fail: true},
		{name: "401", script: []fakeapi.Answer{fakeapi.Status(401)}, calls: 1, fail: true, permanent: true},
		{name: "403 echoing the key", script: []fakeapi.Answer{{Status: 403, Body: sendgridfake.ErrorBody("bad key " + testKey)}}, calls: 1, fail: true, permanent: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk := newFakeDestination(t, testKey)
			fk.Script(fakeapi.For("a@example.com", c.script...)...)
			// Two addresses: a whole-call failure on one fails Check.
			st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "z@example.com")})
			noKeyStatus(t, err, st)
			if c.fail {
				fixtures.PushFailed(t, err, nil, c.permanent, c.retryMin)
				// The other address's call may have been made (they run
				// at once), or cancelled before it.
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
			g := byStatusID(st)[1]
			if g.Suppressed != c.suppressed || g.Unknown != c.unknown {
				t.Fatalf("status %+v", g)
			}
			if z := byStatusID(st)[2]; z.Suppressed || z.Unknown {
				t.Fatalf("second address %+v", z)
			}
		})
	}
}

func TestCheckWrongKeyAndBounds(t *testing.T) {
	t.Parallel()
	d, fk := newFakeDestination(t, "SG.wrong-"+testKey)
	st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	noKeyStatus(t, err, st)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "SG.wrong") {
		t.Fatalf("err = %v", err)
	}
	big := make([]connectors.Suppression, MaxRecipients+1)
	for i := range big {
		big[i] = sup(int64(i), "a@example.com")
	}
	fk.ResetCalls()
	if _, err := d.Check(context.Background(), big); !errors.Is(err, connectors.ErrPermanent) || fk.CallCount() != 0 {
		t.Fatalf("oversized check: %v, %d calls", err, fk.CallCount())
	}
	if _, err := d.Lift(context.Background(), big); !errors.Is(err, connectors.ErrPermanent) || fk.CallCount() != 0 {
		t.Fatalf("oversized lift: %v, %d calls", err, fk.CallCount())
	}
}

// TestLift: DELETE per distinct address; repeating it and absent
// suppressions are fine; per-address 400; whole-call failures.
func TestLift(t *testing.T) {
	t.Parallel()
	d, fk := newFakeDestination(t, testKey, sendgridfake.WithSuppressed("a@example.com", "b@example.com", "keep@example.com"))
	batch := []connectors.Suppression{sup(1, "A@example.com"), sup(2, "b@example.com"), sup(3, "a@example.com"), sup(4, "")}
	for round := range 2 {
		res, err := d.Lift(context.Background(), batch)
		noKey(t, err, res)
		if err != nil || len(res) != 4 {
			t.Fatalf("round %d: %v %+v", round, err, res)
		}
		for _, r := range res {
			if errors.Is(r.Err, connectors.ErrLiftRefused) {
				t.Fatalf("SendGrid never refuses a lift: %+v", r)
			}
			if (r.ID == 4) != errors.Is(r.Err, connectors.ErrPermanent) {
				t.Fatalf("result %+v", r)
			}
		}
		if got := strings.Join(fk.Suppressed(), ","); got != "keep@example.com" {
			t.Fatalf("round %d: suppressed %s", round, got)
		}
	}
	calls := fk.Calls()
	if len(calls) != 4 {
		t.Fatalf("calls %+v", calls)
	}
	for _, c := range calls {
		if c.Method != http.MethodDelete || c.Status != 204 || c.Path != "/v3/asm/suppressions/global/A@example.com" && c.Path != "/v3/asm/suppressions/global/b@example.com" {
			t.Fatalf("call %+v: want a DELETE of A@ (as first spelled) or b@", c)
		}
	}

	fk.ResetCalls()
	fk.Script(fakeapi.For("x@example.com", fakeapi.Status(404))...)
	fk.Script(fakeapi.For("y@example.com", fakeapi.Status(400))...)
	res, err := d.Lift(context.Background(), []connectors.Suppression{sup(1, "x@example.com"), sup(2, "y@example.com"), sup(3, "z@example.com")})
	noKey(t, err, res)
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	if err != nil || m[1].Err != nil || !errors.Is(m[2].Err, connectors.ErrPermanent) || m[3].Err != nil || fk.CallCount() != 3 {
		t.Fatalf("%v %+v", err, res)
	}

	fk.Script(fakeapi.TooMany(sendgridfake.ResetHeader(time.Now().Add(time.Hour))))
	res, err = d.Lift(context.Background(), []connectors.Suppression{sup(1, "x@example.com")})
	fixtures.PushFailed(t, err, res, false, 58*time.Minute)
}

// TestSandboxReadBack: the sandbox mounts the same fake under /sendgrid.
func TestSandboxReadBack(t *testing.T) {
	t.Parallel()
	d, sb := newTestDestination(t, nil)
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")}); err != nil {
		t.Fatal(err)
	}
	sb.SendGrid().Forget("b@example.com")
	st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")})
	if err != nil || !byStatusID(st)[1].Suppressed || byStatusID(st)[2].Suppressed {
		t.Fatalf("%v %+v", err, st)
	}
	calls := sb.Calls("sendgrid")
	if len(calls) != 3 || !slices.ContainsFunc(calls[1:], func(c sandbox.Call) bool {
		return c.Path == "/sendgrid/v3/asm/suppressions/global/a@example.com" && c.Emails[0] == "a@example.com"
	}) {
		t.Fatalf("calls %+v", calls)
	}
}

func TestConfigOptions(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("destinations:\n  - name: sg\n    kind: sendgrid\n    brand: acme\n    api_key: k\n    on_behalf_of: acme-subuser\n"),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := c.Destinations[0].Options.(*Options); !ok || o.OnBehalfOf != "acme-subuser" {
		t.Fatalf("options %+v", c.Destinations[0].Options)
	}
	_, err = config.Parse([]byte("destinations:\n  - name: sg\n    kind: sendgrid\n    brand: acme\n    api_key: k\n    list_id: x\n"),
		func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "destinations[0].list_id") {
		t.Fatalf("unknown key: %v", err)
	}
}

// FuzzParseSuppression: the read-back parser never panics, and only an
// object naming the asked address counts as suppressed.
func FuzzParseSuppression(f *testing.F) {
	for _, s := range []string{`{"recipient_email":"a@example.com"}`, `{}`, `{"recipient_email":""}`, `{"recipient_email":1}`, `[]`, `null`, `{"errors":[{"field":null,"message":"authorization required"}]}`, ``} {
		f.Add([]byte(s), "A@example.com")
	}
	f.Fuzz(func(t *testing.T, body []byte, email string) {
		suppressed, ok := ParseSuppression(body, email)
		if suppressed && !ok {
			t.Fatal("suppressed but not ok")
		}
	})
}
