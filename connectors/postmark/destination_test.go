package postmark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/postmark/postmarkfake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const testToken = "pm-server-0f3e9a1b-77c2-4d5e-a9b8-1234567890ab"

var sup = fixtures.Suppression

// newDest is a destination on stream "broadcast" of a postmarkfake served
// at the root, with token key.
func newDest(t *testing.T, key string, opts ...postmarkfake.Option) (*Destination, *postmarkfake.Fake) {
	t.Helper()
	fk := postmarkfake.New(append([]postmarkfake.Option{postmarkfake.WithToken(testToken)}, opts...)...)
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "postmark-acme", Kind: "postmark", Brand: "acme", BaseURL: srv.URL, APIKey: key}
	return fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}), fk
}

func noToken(t *testing.T, err error, res []connectors.Result) {
	t.Helper()
	fixtures.NoSecret(t, err, res, testToken, "0f3e9a1b-77c2")
	for _, r := range res {
		if strings.Contains(r.Receipt, "@example") || (r.Err != nil && strings.Contains(r.Err.Error(), "@example")) {
			t.Fatalf("address in a result: %+v", r)
		}
	}
}

func statusResults(st []connectors.Status) []connectors.Result {
	var res []connectors.Result
	for _, s := range st {
		res = append(res, connectors.Result{ID: s.ID, Receipt: s.Receipt})
	}
	return res
}

func byID(res []connectors.Result) map[int64]connectors.Result {
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

func TestPush(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, testToken)
	sms := sup(4, "a@example.com")
	sms.Channel = consent.ChannelSMS
	in := []connectors.Suppression{sup(1, "Noah.Petit@example.com"), sup(2, "ines@example.org"), sup(3, "noah.petit@example.com"), sms, sup(5, "not an address")}
	for round := range 2 { // idempotent: the repeat is the same success
		res, err := d.Push(context.Background(), in)
		noToken(t, err, res)
		if err != nil || len(res) != len(in) {
			t.Fatalf("round %d: %v %+v", round, err, res)
		}
		m := byID(res)
		for _, id := range []int64{1, 2, 3} {
			if m[id].Err != nil || !strings.Contains(m[id].Receipt, "Status Suppressed") {
				t.Fatalf("round %d item %d: %+v", round, id, m[id])
			}
		}
		for _, id := range []int64{4, 5} {
			if !errors.Is(m[id].Err, connectors.ErrPermanent) {
				t.Fatalf("item %d: %+v", id, m[id])
			}
		}
	}
	calls := fk.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %d", len(calls))
	}
	c := calls[0]
	if c.Method != "POST" || c.Path != "/message-streams/broadcast/suppressions" || c.Status != 200 || c.Header.Get("Content-Type") != "application/json" || c.Header.Get("Accept") != "application/json" {
		t.Fatalf("call %+v", c)
	}
	if c.Header.Get("X-Postmark-Server-Token") != "" {
		t.Fatal("the fake recorded the token")
	}
	var body map[string][]map[string]string
	if err := json.Unmarshal(c.Body, &body); err != nil || len(body) != 1 || len(body["Suppressions"]) != 2 || body["Suppressions"][0]["EmailAddress"] != "Noah.Petit@example.com" {
		t.Fatalf("body %s (%v)", c.Body, err)
	}
	if got := strings.Join(fk.Suppressed("broadcast"), ","); got != "Noah.Petit@example.com,ines@example.org" {
		t.Fatalf("suppressed %s", got)
	}
	if fk.Reason("broadcast", "noah.petit@EXAMPLE.com") != postmarkfake.ReasonManual || len(fk.Suppressed("outbound")) != 0 {
		t.Fatal("wrong stream or reason")
	}
}

func TestPushStreamOption(t *testing.T) {
	t.Parallel()
	fk := postmarkfake.New(postmarkfake.WithToken(testToken), postmarkfake.WithStreams("newsletters"))
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "pm", Kind: "postmark", Brand: "acme", BaseURL: srv.URL + "/", APIKey: testToken, Options: &DestinationOptions{MessageStream: "newsletters"}}
	d := fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()})
	if res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")}); err != nil || res[0].Err != nil {
		t.Fatalf("%v %+v", err, res)
	}
	if !fk.IsSuppressed("newsletters", "a@example.com") || fk.Calls()[0].Path != "/message-streams/newsletters/suppressions" {
		t.Fatalf("calls %+v", fk.Calls())
	}
}

// TestPushItemFailures: a "Failed" address is its own permanent Result,
// with Postmark's message and the address masked; an address the answer
// leaves out is retried later (not permanent).
func TestPushItemFailures(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, testToken)
	fk.Refuse("owned@example.com")
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "ok@example.com"), sup(2, "owned@example.com")})
	noToken(t, err, res)
	m := byID(res)
	if err != nil || m[1].Err != nil || !errors.Is(m[2].Err, connectors.ErrPermanent) || !strings.Contains(m[2].Err.Error(), "required authority") || !strings.Contains(m[2].Receipt, "Failed") {
		t.Fatalf("%v %+v", err, res)
	}
	if fk.IsSuppressed("broadcast", "owned@example.com") {
		t.Fatal("a refused address was suppressed")
	}

	fk.Script(fakeapi.Answer{Status: 200, Body: `{"Suppressions":[{"EmailAddress":"A@example.com","Status":"Suppressed","Message":null}]}`})
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")})
	noToken(t, err, res)
	m = byID(res)
	if err != nil || m[1].Err != nil || m[2].Err == nil || errors.Is(m[2].Err, connectors.ErrPermanent) {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestPushAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		script    []fakeapi.Answer
		calls     int
		ok        bool
		permanent bool
		retryMin  time.Duration
		contains  string
	}{
		{name: "429 Retry-After soon", script: []fakeapi.Answer{fakeapi.RetryAfter(1)}, calls: 2, ok: true},
		{name: "429 Retry-After long reschedules", script: []fakeapi.Answer{fakeapi.RetryAfter(900)}, calls: 1, retryMin: 14 * time.Minute},
		{name: "429 without a wait, retries run out", script: fakeapi.Repeat(fakeapi.Status(429), 5), calls: 3},
		{name: "503 then success", script: []fakeapi.Answer{fakeapi.Status(503)}, calls: 2, ok: true},
		{name: "500 until retries run out", script: fakeapi.Repeat(fakeapi.Status(500), 5), calls: 3},
		{name: "422 ErrorCode 1226 stream not found", script: []fakeapi.Answer{{Status: 422, Body: postmarkfake.ErrorBody(1226, "The message stream for the provided 'ID' was not found.")}}, calls: 1, permanent: true, contains: "message_stream"},
		{name: "422 ErrorCode 1235", script: []fakeapi.Answer{{Status: 422, Body: postmarkfake.ErrorBody(1235, "whatever the wording")}}, calls: 1, permanent: true, contains: "ErrorCode 1235"},
		{name: "422 ErrorCode 100 maintenance is transient", script: []fakeapi.Answer{{Status: 422, Body: postmarkfake.ErrorBody(100, "down")}}, calls: 1, contains: "maintenance"},
		{name: "422 other code", script: []fakeapi.Answer{{Status: 422, Body: postmarkfake.ErrorBody(402, "Invalid JSON")}}, calls: 1, permanent: true, contains: "ErrorCode 402"},
		{name: "422 echoing the token and an address", script: []fakeapi.Answer{{Status: 422, Body: postmarkfake.ErrorBody(300, "token "+testToken+" for x@example.com")}}, calls: 1, permanent: true},
		{name: "200 not JSON is transient", script: []fakeapi.Answer{{Status: 200, Body: "<html>"}}, calls: 1},
		{name: "401", script: []fakeapi.Answer{fakeapi.Status(401)}, calls: 1, permanent: true, contains: "ErrorCode 10"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk := newDest(t, testToken)
			fk.Script(c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noToken(t, err, res)
			if fk.CallCount() != c.calls {
				t.Fatalf("calls = %d, want %d (%v)", fk.CallCount(), c.calls, err)
			}
			if c.ok {
				if err != nil || res[0].Err != nil || !fk.IsSuppressed("broadcast", "a@example.com") {
					t.Fatalf("%v %+v", err, res)
				}
				return
			}
			fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
			if !strings.Contains(err.Error(), c.contains) || strings.Contains(err.Error(), "@example") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestPushWrongTokenAndStream(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, "wrong-"+testToken)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	noToken(t, err, res)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "ErrorCode 10") || strings.Contains(err.Error(), "wrong-") {
		t.Fatalf("err = %v", err)
	}
	if len(fk.Suppressed("broadcast")) != 0 {
		t.Fatal("state changed")
	}
	// The fake's real answer for a stream the server lacks.
	d2, _ := newDest(t, testToken, postmarkfake.WithStreams("outbound"))
	_, err = d2.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "ErrorCode 1226") || !strings.Contains(err.Error(), `"broadcast"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestPushSplitsAndFakeRefusesOversized: Push sends at most 50 distinct
// addresses per call; the fake refuses 51 as Postmark would.
func TestPushSplitsAndFakeRefusesOversized(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, testToken)
	var in []connectors.Suppression
	for i := range 2*MaxSuppressions + 1 {
		in = append(in, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	res, err := d.Push(context.Background(), in)
	if err != nil || len(res) != len(in) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	calls := fk.Calls()
	if len(calls) != 3 {
		t.Fatalf("calls = %d", len(calls))
	}
	for i, want := range []int{50, 50, 1} {
		emails, _ := postmarkfake.ParseRequest(calls[i].Body)
		if len(emails) != want {
			t.Fatalf("call %d carried %d", i, len(emails))
		}
	}
	if len(fk.Suppressed("broadcast")) != len(in) {
		t.Fatal("not all suppressed")
	}
	// Straight to the fake: 51 addresses are refused.
	big := make([]connectors.Suppression, MaxSuppressions+1)
	for i := range big {
		big[i] = sup(int64(i), fmt.Sprintf("q%d@example.com", i))
	}
	_, err = d.change(context.Background(), big, "/suppressions", false)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "ErrorCode 403") {
		t.Fatalf("oversized: %v", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, testToken,
		postmarkfake.WithSuppressed("broadcast", postmarkfake.ReasonSpamComplaint, "Held@Example.com"),
		postmarkfake.WithSuppressed("broadcast", postmarkfake.ReasonManual, "drift@example.com"),
		postmarkfake.WithSuppressed("outbound", postmarkfake.ReasonManual, "other@example.com"))
	if !fk.Forget("broadcast", "DRIFT@example.com") {
		t.Fatal("Forget")
	}
	sms := sup(5, "held@example.com")
	sms.Channel = consent.ChannelSMS
	in := []connectors.Suppression{sup(1, "held@example.com"), sup(2, "never@example.com"), sup(3, "drift@example.com"), sup(4, "other@example.com"), sms}
	st, err := d.Check(context.Background(), in)
	noToken(t, err, statusResults(st))
	if err != nil || len(st) != len(in) {
		t.Fatalf("%v %+v", err, st)
	}
	want := map[int64][2]bool{1: {true, false}, 2: {false, false}, 3: {false, false}, 4: {false, false}, 5: {false, true}}
	for _, s := range st {
		if w := want[s.ID]; s.Suppressed != w[0] || s.Unknown != w[1] || s.Receipt == "" {
			t.Errorf("item %d: %+v", s.ID, s)
		}
		if s.ID == 1 && !strings.Contains(s.Receipt, "SpamComplaint") {
			t.Errorf("receipt %q", s.Receipt)
		}
	}
	calls := fk.Calls()
	if _, ok := fakeapi.Find(calls, "GET", "/message-streams/broadcast/suppressions/dump", "EmailAddress=held%40example.com"); len(calls) != 4 || !ok {
		t.Fatalf("calls %+v", calls)
	}
	if len(fk.Suppressed("broadcast")) != 1 {
		t.Fatal("Check changed state")
	}
}

// TestCheckNotYetApplied: Postmark applies a suppression asynchronously
// (the fake WithDelay). A read-back within SettleTime of the push that
// does not find it yet is Unknown ("not yet applied"), not a mismatch that
// would push it again; once applied it holds; an address pushed long ago
// (or with SentAt unknown) and not listed is a mismatch (drift).
func TestCheckNotYetApplied(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	fk := postmarkfake.New(postmarkfake.WithToken(testToken), postmarkfake.WithDelay(time.Minute))
	fk.Now = clock
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "postmark-acme", Kind: "postmark", BaseURL: srv.URL, APIKey: testToken}
	d := fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient(), Now: clock})

	pushed := sup(1, "new@example.com")
	if res, err := d.Push(context.Background(), []connectors.Suppression{pushed}); err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("%v %+v", err, res)
	}
	pushed.SentAt = t0
	old := sup(2, "drift@example.com")
	old.SentAt = t0.Add(-time.Hour)
	unknownSent := sup(3, "drift@example.com")

	now.Store(t0.Add(30 * time.Second).UnixNano())
	st, err := d.Check(context.Background(), []connectors.Suppression{pushed, old, unknownSent})
	if err != nil || len(st) != 3 {
		t.Fatalf("%v %+v", err, st)
	}
	for _, s := range st {
		switch s.ID {
		case 1:
			if s.Suppressed || !s.Unknown || !strings.Contains(s.Receipt, "not yet applied") {
				t.Fatalf("within the settle time: %+v", s)
			}
		default:
			if s.Suppressed || s.Unknown {
				t.Fatalf("pushed long ago, or SentAt unknown: %+v", s)
			}
		}
	}
	now.Store(t0.Add(70 * time.Second).UnixNano())
	st, err = d.Check(context.Background(), []connectors.Suppression{pushed})
	if err != nil || len(st) != 1 || !st[0].Suppressed {
		t.Fatalf("once applied: %v %+v", err, st)
	}
	// Past the settle time and still not listed: a mismatch.
	fk.Forget("broadcast", "new@example.com")
	now.Store(t0.Add(SettleTime + time.Second).UnixNano())
	st, err = d.Check(context.Background(), []connectors.Suppression{pushed})
	if err != nil || len(st) != 1 || st[0].Suppressed || st[0].Unknown {
		t.Fatalf("after the settle time: %v %+v", err, st)
	}
}

func TestCheckAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name               string
		script             []fakeapi.Answer
		suppressed, unknwn bool
		fail, permanent    bool
		retryMin           time.Duration
	}{
		{name: "listed", script: []fakeapi.Answer{{Status: 200, Body: `{"Suppressions":[{"EmailAddress":"A@example.com","SuppressionReason":"HardBounce","Origin":"Recipient","CreatedAt":"2019-12-17T08:58:33-05:00"}]}`}}, suppressed: true},
		{name: "another address only", script: []fakeapi.Answer{{Status: 200, Body: `{"Suppressions":[{"EmailAddress":"b@example.com"}]}`}}},
		{name: "empty list", script: []fakeapi.Answer{{Status: 200, Body: `{"Suppressions":[]}`}}},
		{name: "not JSON", script: []fakeapi.Answer{{Status: 200, Body: `<html>`}}, unknwn: true},
		{name: "no list", script: []fakeapi.Answer{{Status: 200, Body: `{}`}}, unknwn: true},
		{name: "429 far", script: []fakeapi.Answer{fakeapi.RetryAfter(3600)}, fail: true, retryMin: 59 * time.Minute},
		{name: "422 stream", script: []fakeapi.Answer{{Status: 422, Body: postmarkfake.ErrorBody(1226, "x")}}, fail: true, permanent: true},
		{name: "503 until retries run out", script: fakeapi.Repeat(fakeapi.Status(503), 5), fail: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk := newDest(t, testToken)
			fk.Script(c.script...)
			st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noToken(t, err, statusResults(st))
			if c.fail {
				fixtures.PushFailed(t, err, nil, c.permanent, c.retryMin)
				if st != nil {
					t.Fatalf("statuses %+v", st)
				}
				return
			}
			if err != nil || len(st) != 1 || st[0].Suppressed != c.suppressed || st[0].Unknown != c.unknwn {
				t.Fatalf("%v %+v", err, st)
			}
		})
	}
}

// TestLift: Deleted is a success (repeatable); a SpamComplaint is refused
// with ErrLiftRefused; whole-call failures follow Push's rules.
func TestLift(t *testing.T) {
	t.Parallel()
	d, fk := newDest(t, testToken,
		postmarkfake.WithSuppressed("broadcast", postmarkfake.ReasonManual, "a@example.com", "keep@example.com"),
		postmarkfake.WithSuppressed("broadcast", postmarkfake.ReasonSpamComplaint, "spam@example.com"))
	in := []connectors.Suppression{sup(1, "A@example.com"), sup(2, "spam@example.com"), sup(3, "never@example.com"), sup(4, "")}
	for round := range 2 {
		res, err := d.Lift(context.Background(), in)
		noToken(t, err, res)
		m := byID(res)
		if err != nil || len(res) != 4 || m[1].Err != nil || m[3].Err != nil {
			t.Fatalf("round %d: %v %+v", round, err, res)
		}
		if !errors.Is(m[2].Err, connectors.ErrLiftRefused) || !errors.Is(m[2].Err, connectors.ErrPermanent) {
			t.Fatalf("spam complaint: %+v", m[2])
		}
		if !errors.Is(m[4].Err, connectors.ErrPermanent) || errors.Is(m[4].Err, connectors.ErrLiftRefused) {
			t.Fatalf("no address: %+v", m[4])
		}
		if got := strings.Join(fk.Suppressed("broadcast"), ","); got != "keep@example.com,spam@example.com" {
			t.Fatalf("round %d: %s", round, got)
		}
	}
	if c := fk.Calls()[0]; c.Method != "POST" || c.Path != "/message-streams/broadcast/suppressions/delete" {
		t.Fatalf("call %+v", c)
	}
	fk.Script(fakeapi.RetryAfter(3600))
	res, err := d.Lift(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	fixtures.PushFailed(t, err, res, false, 59*time.Minute)
}

func TestNewDestination(t *testing.T) {
	t.Parallel()
	d, err := NewDestination(config.Destination{APIKey: "k"}, connectors.Deps{})
	if err != nil || d.base != DefaultBaseURL || d.Stream() != DefaultMessageStream || d.MaxBatch() != MaxSuppressions {
		t.Fatalf("%+v %v", d, err)
	}
	for _, c := range []struct {
		cfg  config.Destination
		want string
	}{
		{config.Destination{}, "api_key:"},
		{config.Destination{APIKey: "k", BaseURL: "api.postmarkapp.com"}, "base_url:"},
		// The options' own Validate (connectors.DestinationOptions), so the
		// message is the one config validation gives.
		{config.Destination{APIKey: "k", Options: &DestinationOptions{MessageStream: "9 bad"}}, `message_stream: "9 bad" is not a Postmark message stream ID (a letter, then letters, digits, - or _)`},
	} {
		if _, err := NewDestination(c.cfg, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v", c.cfg, err)
		}
	}
}

func TestConfigOptions(t *testing.T) {
	t.Parallel()
	env := func(string) (string, bool) { return "", false }
	entry := func(extra string) []byte {
		return []byte("destinations:\n  - name: pm\n    kind: postmark\n    brand: acme\n    api_key: k\n" + extra)
	}
	c, err := config.Parse(entry("    message_stream: newsletters\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := c.Destinations[0].Options.(*DestinationOptions); !ok || o.MessageStream != "newsletters" {
		t.Fatalf("options %+v", c.Destinations[0].Options)
	}
	c, err = config.Parse(entry(""), env)
	if err != nil || c.Destinations[0].Options.(*DestinationOptions).MessageStream != DefaultMessageStream {
		t.Fatalf("default: %v %+v", err, c)
	}
	for _, b := range []struct{ yaml, want string }{
		{"    message_stream: \"pm stream\"\n", "destinations[0].message_stream:"},
		{"    list_id: x\n", "destinations[0].list_id"},
	} {
		if _, err := config.Parse(entry(b.yaml), env); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: err = %v", b.yaml, err)
		}
	}
	if _, err := config.Parse([]byte("destinations:\n  - {name: pm, kind: postmark, brand: acme}\n"), env); err == nil || !strings.Contains(err.Error(), "destinations[0].api_key: is required") {
		t.Errorf("no key: %v", err)
	}
}

// FuzzParseAnswers: the answer parsers never panic, and a listed address
// is always read as ok.
func FuzzParseAnswers(f *testing.F) {
	for _, s := range []string{
		`{"Suppressions":[{"EmailAddress":"good.address@wildbit.com","Status":"Suppressed","Message":null},{"EmailAddress":"spammy.address@wildbit.com","Status":"Failed","Message":"You do not have the required authority to change this suppression."}]}`,
		`{"Suppressions":[{"EmailAddress":"address@wildbit.com","SuppressionReason":"ManualSuppression","Origin":"Recipient","CreatedAt":"2019-12-17T08:58:33-05:00"}]}`,
		`{"ErrorCode":1226,"Message":"The message stream for the provided 'ID' was not found."}`,
		`{"ErrorCode":1e99}`, `{"Suppressions":null}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s), "address@wildbit.com")
	}
	f.Fuzz(func(t *testing.T, body []byte, email string) {
		_, _ = ParseStatuses(body)
		_, _ = ParseErrorCode(body)
		if listed, _, ok := ParseDump(body, email); listed && !ok {
			t.Fatal("listed but not ok")
		}
	})
}
