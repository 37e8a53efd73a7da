package ses

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/ses/sesfake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const (
	testAKID   = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testKey    = testAKID + ":" + testSecret
	testList   = "acme-marketing"
	testRegion = "eu-west-3"
)

var testTopics = []string{"newsletter", "offers"}

func newFake(t *testing.T) (*sesfake.Server, *httptest.Server) {
	t.Helper()
	fk := sesfake.New(testAKID)
	fk.Region = testRegion
	fk.AddContactList(testList, sesfake.Topic{Name: "newsletter", Default: sesfake.OptIn}, sesfake.Topic{Name: "offers", Default: sesfake.OptOut})
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	return fk, srv
}

func destinationFor(t *testing.T, base, key, list string) *Destination {
	t.Helper()
	return fixtures.Build(t, NewDestination, config.Destination{
		Name: "ses-acme", Kind: Kind, Brand: "acme", BaseURL: base, APIKey: key,
		Options: &DestinationOptions{Region: testRegion, ContactList: list, Topics: testTopics},
	}, connectors.Deps{HTTP: fixtures.HTTPClient()})
}

func newTestDestination(t *testing.T) (*Destination, *sesfake.Server) {
	t.Helper()
	fk, srv := newFake(t)
	return destinationFor(t, srv.URL, testKey, testList), fk
}

var sup = fixtures.Suppression

func complaint(id int64, email string) connectors.Suppression {
	s := sup(id, email)
	s.Reason = "spamreport"
	return s
}

// noSecret fails when the secret key or an address shows in an error or
// receipt.
func noSecret(t *testing.T, err error, res []connectors.Result) {
	t.Helper()
	fixtures.NoSecret(t, err, res, testSecret, "@example.com")
}

func byID(res []connectors.Result) map[int64]connectors.Result {
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

type contactBody struct {
	EmailAddress     string `json:"EmailAddress"`
	UnsubscribeAll   *bool  `json:"UnsubscribeAll"`
	TopicPreferences []struct {
		TopicName          string `json:"TopicName"`
		SubscriptionStatus string `json:"SubscriptionStatus"`
	} `json:"TopicPreferences"`
}

func TestPushUnsubscribes(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	fk.AddContact(testList, "Old@Example.com", false, map[string]string{"newsletter": sesfake.OptIn})
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "new@example.com"), sup(2, "old@example.com"), sup(3, "NEW@example.com")})
	noSecret(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results %+v", res)
	}
	m := byID(res)
	for id, want := range map[int64]string{1: "(created", 2: "(updated", 3: "(created"} {
		r := m[id]
		if r.Err != nil || !strings.HasPrefix(r.Receipt, "ses: contact_list:"+testList+" unsubscribe_all") || !strings.Contains(r.Receipt, want) {
			t.Errorf("result %d: %+v", id, r)
		}
		if strings.Contains(r.Receipt, "COMPLAINT") {
			t.Errorf("result %d: complaint model for an unsubscribe: %q", id, r.Receipt)
		}
	}
	for _, e := range []string{"new@example.com", "old@example.com"} {
		c, ok := fk.Contact(testList, e)
		if !ok || !c.UnsubscribeAll || c.TopicPreferences["newsletter"] != sesfake.OptOut || c.TopicPreferences["offers"] != sesfake.OptOut {
			t.Errorf("%s: contact %+v", e, c)
		}
		if _, ok := fk.AccountSuppression(e); ok {
			t.Errorf("%s: put on the account suppression list for an unsubscribe", e)
		}
	}
	// Calls: new (404 then create), old (update): one address per call.
	calls := fk.Calls()
	want := []string{
		"PUT /v2/email/contact-lists/" + testList + "/contacts/new@example.com 404",
		"POST /v2/email/contact-lists/" + testList + "/contacts 200",
		"PUT /v2/email/contact-lists/" + testList + "/contacts/old@example.com 200",
	}
	if len(calls) != len(want) {
		t.Fatalf("calls %+v", calls)
	}
	// The addresses are pushed at once: their calls interleave, each
	// address's in order (new's PUT before its POST).
	var got []string
	for _, c := range calls {
		got = append(got, fmt.Sprintf("%s %s %d", c.Method, c.Path, c.Status))
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) || slices.Index(got, want[0]) > slices.Index(got, want[1]) {
		t.Errorf("calls %q, want %q (new's PUT before its POST)", got, want)
	}
	for i, c := range calls {
		if c.Header.Get("X-Amz-Date") == "" || c.Header.Get("Authorization") != "" {
			t.Errorf("call %d: not signed, or credentials recorded: %v", i, c.Header)
		}
		var b contactBody
		if err := json.Unmarshal(c.Body, &b); err != nil {
			t.Fatalf("call %d body %s: %v", i, c.Body, err)
		}
		if b.UnsubscribeAll == nil || !*b.UnsubscribeAll || len(b.TopicPreferences) != 2 {
			t.Errorf("call %d body %s", i, c.Body)
		}
		for _, p := range b.TopicPreferences {
			if p.SubscriptionStatus != "OPT_OUT" {
				t.Errorf("call %d body %s", i, c.Body)
			}
		}
		if c.Method == "POST" && b.EmailAddress != "new@example.com" {
			t.Errorf("create body %s", c.Body)
		}
	}
	// Idempotent: a second push changes nothing and succeeds.
	fk.ResetCalls()
	before := fk.Snapshot()
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "new@example.com"), sup(2, "old@example.com")})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("repeat: %v %+v", err, res)
	}
	if fk.CallCount() != 2 || strings.Join(fk.Snapshot(), "\n") != strings.Join(before, "\n") {
		t.Fatalf("repeat: %d calls, state %q, was %q", fk.CallCount(), fk.Snapshot(), before)
	}
}

func TestPushComplaint(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), complaint(2, "A@example.com")})
	noSecret(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || !strings.Contains(r.Receipt, "unsubscribe_all") || !strings.HasSuffix(r.Receipt, ModelComplaint) {
			t.Fatalf("result %+v", r)
		}
	}
	if e, ok := fk.AccountSuppression("a@example.com"); !ok || e.Reason != sesfake.ReasonComplaint {
		t.Fatalf("account suppression %+v %v", e, ok)
	}
	if !fk.Unsubscribed(testList, "a@example.com") {
		t.Fatal("not unsubscribed")
	}
	calls := fk.Calls()
	last := calls[len(calls)-1]
	var body struct{ EmailAddress, Reason string }
	if last.Method != "PUT" || last.Path != "/v2/email/suppression/addresses" || json.Unmarshal(last.Body, &body) != nil || body.Reason != "COMPLAINT" || body.EmailAddress != "a@example.com" {
		t.Fatalf("suppression call %s %s %s", last.Method, last.Path, last.Body)
	}
	for _, reason := range []string{"complaint", "spam_complaint", "SpamReport"} {
		if !IsComplaint(reason) {
			t.Errorf("IsComplaint(%q) = false", reason)
		}
	}
	if IsComplaint("unsubscribe") {
		t.Error("unsubscribe is not a complaint")
	}
}

func TestPushErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		script    []fakeapi.Answer
		calls     int
		ok        bool // the item succeeds
		itemPerm  bool // the item fails for good, the call succeeds
		permanent bool // whole call
		retryMin  time.Duration
		contains  string
	}{
		{"429 once, retried in place", []fakeapi.Answer{sesfake.Throttled()}, 2, true, false, false, 0, ""},
		{"429 until retries run out", fakeapi.Repeat(sesfake.Throttled(), 3), 3, false, false, false, ThrottleDelay, "TooManyRequestsException"},
		{"LimitExceeded is throttling", []fakeapi.Answer{sesfake.Error(400, "LimitExceededException", "Maximum sending rate exceeded.")}, 1, false, false, false, ThrottleDelay, "LimitExceededException"},
		{"500 until retries run out", fakeapi.Repeat(sesfake.InternalError(), 3), 3, false, false, false, 0, "InternalServiceErrorException"},
		{"503 without an error type", fakeapi.Repeat(fakeapi.Status(503), 3), 3, false, false, false, 0, "503"},
		{"400 BadRequest is the item's", []fakeapi.Answer{sesfake.Error(400, "BadRequestException", "Invalid email address.")}, 1, false, true, false, 0, "BadRequestException"},
		{"400 body echoing the secret and address", []fakeapi.Answer{sesfake.Error(400, "BadRequestException", "key "+testSecret+" refused for a@example.com")}, 1, false, true, false, 0, "<email>"},
		{"403 access denied", []fakeapi.Answer{sesfake.Error(403, "AccessDeniedException", "User is not authorized to perform ses:UpdateContact")}, 1, false, false, true, 0, "AccessDeniedException"},
		{"account suspended", []fakeapi.Answer{sesfake.Error(400, "AccountSuspendedException", "Account suspended.")}, 1, false, false, true, 0, "AccountSuspendedException"},
		{"unreadable 200", []fakeapi.Answer{{Status: 200, Body: "<html>"}}, 1, false, false, false, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk := newTestDestination(t)
			fk.AddContact(testList, "a@example.com", false, nil)
			fk.Script(c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noSecret(t, err, res)
			if n := fk.CallCount(); n != c.calls {
				t.Fatalf("calls = %d, want %d (err %v, %+v)", n, c.calls, err, res)
			}
			text := fmt.Sprint(err)
			if len(res) == 1 && res[0].Err != nil {
				text = res[0].Err.Error() + " " + res[0].Receipt
			}
			if !strings.Contains(text, c.contains) {
				t.Errorf("error %q does not name %q", text, c.contains)
			}
			switch {
			case c.ok:
				if err != nil || len(res) != 1 || res[0].Err != nil || !fk.Unsubscribed(testList, "a@example.com") {
					t.Fatalf("want success, got %v %+v", err, res)
				}
			case c.itemPerm:
				if err != nil || len(res) != 1 || !errors.Is(res[0].Err, connectors.ErrPermanent) {
					t.Fatalf("want a permanent item, got %v %+v", err, res)
				}
			default:
				fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
				if c.retryMin > 0 {
					if delay, _ := connectors.RetryDelay(err); delay != c.retryMin {
						t.Fatalf("delay = %s, want %s", delay, c.retryMin)
					}
				}
			}
		})
	}
}

func TestPushStopsWhenThrottledMidBatch(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	fk.AddContact(testList, "a@example.com", false, nil)
	fk.AddContact(testList, "b@example.com", false, nil)
	// a's call goes through; SES throttles b's and c's (each tried three
	// times by the HTTP client), which run beside it.
	fk.Script(fakeapi.For("a@example.com", fakeapi.Answer{Status: 200, Body: "{}"})...)
	fk.Script(fakeapi.For("b@example.com", fakeapi.Repeat(sesfake.Throttled(), 3)...)...)
	fk.Script(fakeapi.For("c@example.com", fakeapi.Repeat(sesfake.Throttled(), 3)...)...)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com"), sup(3, "c@example.com"), sup(4, "B@example.com")})
	noSecret(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	if n := fk.CallCount(); n > 7 {
		t.Fatalf("calls = %d, want at most 7 (a's, and three for each throttled address)", n)
	}
	m := byID(res)
	if len(m) != 4 || m[1].Err != nil {
		t.Fatalf("results %+v", res)
	}
	for _, id := range []int64{2, 3, 4} {
		e := m[id].Err
		if e == nil || errors.Is(e, connectors.ErrPermanent) {
			t.Fatalf("result %d: %v, want transient", id, e)
		}
		if delay, ok := connectors.RetryDelay(e); !ok || delay != ThrottleDelay {
			t.Fatalf("result %d: delay %v %v", id, delay, ok)
		}
	}
}

func TestPushWrongCredentials(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	cases := []struct{ name, key, want string }{
		{"other access key", "AKIAOTHER0000EXAMPLE:" + testSecret, "UnrecognizedClientException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := destinationFor(t, srv.URL, c.key, testList)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noSecret(t, err, res)
			if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "403") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// The fake refuses an unsigned request and another region, as AWS does.
	resp, err := http.Get(srv.URL + "/v2/email/suppression/addresses/a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-Errortype") != "MissingAuthenticationTokenException" {
		t.Fatalf("unsigned: %d %v", resp.StatusCode, resp.Header)
	}
	other := fixtures.Build(t, NewDestination, config.Destination{Name: "ses-us", Kind: Kind, BaseURL: srv.URL, APIKey: testKey,
		Options: &DestinationOptions{Region: "us-east-1", ContactList: testList}}, connectors.Deps{HTTP: fixtures.HTTPClient()})
	_, err = other.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Fatalf("other region: %v", err)
	}
}

func TestPushMissingContactList(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	d := destinationFor(t, srv.URL, testKey, "no-such-list")
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")})
	noSecret(t, err, res)
	fixtures.PushFailed(t, err, res, true, 0)
	if !errors.Is(err, ErrContactListNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestPushNoEmailOrChannel(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	sms := sup(2, "a@example.com")
	sms.Channel = consent.ChannelSMS
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "  "), sms, sup(3, "not an address")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if !errors.Is(r.Err, connectors.ErrPermanent) {
			t.Fatalf("result %+v", r)
		}
	}
	if fk.CallCount() != 0 {
		t.Fatal("no call expected")
	}
}

func TestPushLargeBatch(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	if d.MaxBatch() != MaxBatch {
		t.Fatalf("MaxBatch = %d", d.MaxBatch())
	}
	var batch []connectors.Suppression
	for i := range MaxBatch + 10 {
		batch = append(batch, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
		fk.AddContact(testList, fmt.Sprintf("p%d@example.com", i), false, nil)
	}
	res, err := d.Push(context.Background(), batch)
	if err != nil || len(res) != len(batch) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%+v", r)
		}
	}
	if n := fk.CallCount(); n != len(batch) {
		t.Fatalf("calls = %d, want one per address", n)
	}
}

func TestBaseURLWithPathPrefix(t *testing.T) {
	t.Parallel()
	fk := sesfake.New(testAKID)
	fk.AddContactList(testList)
	mux := http.NewServeMux()
	mux.Handle("/ses/", http.StripPrefix("/ses", fk.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	d := destinationFor(t, srv.URL+"/ses/", testKey, testList)
	d.topics = nil
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if err != nil || res[0].Err != nil || !fk.Unsubscribed(testList, "a@example.com") {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	ctx := context.Background()
	if _, err := d.Push(ctx, []connectors.Suppression{sup(1, "done@example.com"), complaint(2, "spam@example.com"), complaint(3, "drift2@example.com"), sup(4, "drift@example.com")}); err != nil {
		t.Fatal(err)
	}
	fk.AddContact(testList, "subscribed@example.com", false, nil)
	fk.Forget(testList, "drift@example.com")
	fk.ForgetSuppressed("drift2@example.com")
	fk.ResetCalls()
	sms := sup(9, "done@example.com")
	sms.Channel = consent.ChannelSMS
	batch := []connectors.Suppression{sup(1, "Done@example.com"), complaint(2, "spam@example.com"), complaint(3, "drift2@example.com"), sup(4, "drift@example.com"),
		sup(5, "subscribed@example.com"), sup(6, "nobody@example.com"), sms}
	sts, err := d.Check(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64][2]bool{1: {true, false}, 2: {true, false}, 3: {false, false}, 4: {false, false}, 5: {false, false}, 6: {false, false}, 9: {false, true}}
	if len(sts) != len(want) {
		t.Fatalf("statuses %+v", sts)
	}
	for _, s := range sts {
		if w := want[s.ID]; s.Suppressed != w[0] || s.Unknown != w[1] || s.Receipt == "" {
			t.Errorf("status %+v, want suppressed=%v unknown=%v", s, w[0], w[1])
		}
		if strings.Contains(s.Receipt, "@example.com") {
			t.Errorf("receipt shows an address: %q", s.Receipt)
		}
	}
	for _, c := range fk.Calls() {
		if c.Method != "GET" {
			t.Fatalf("Check changed state: %s %s", c.Method, c.Path)
		}
	}
	// Throttled at the first address: the whole call.
	fk.Script(fakeapi.Repeat(sesfake.Throttled(), 3)...)
	_, err = d.Check(ctx, batch[:1])
	if delay, ok := connectors.RetryDelay(err); !ok || delay != ThrottleDelay {
		t.Fatalf("throttled check: %v", err)
	}
}

func TestLift(t *testing.T) {
	t.Parallel()
	d, fk := newTestDestination(t)
	ctx := context.Background()
	if _, err := d.Push(ctx, []connectors.Suppression{sup(1, "back@example.com"), complaint(2, "spam@example.com"), sup(3, "bounced@example.com")}); err != nil {
		t.Fatal(err)
	}
	fk.AddSuppressed("bounced@example.com", sesfake.ReasonBounce)
	res, err := d.Lift(ctx, []connectors.Suppression{sup(1, "back@example.com"), sup(2, "spam@example.com"), sup(3, "bounced@example.com"), sup(4, "nobody@example.com")})
	noSecret(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if m[1].Err != nil || !strings.Contains(m[1].Receipt, "subscribed again") {
		t.Errorf("lift: %+v", m[1])
	}
	if c, _ := fk.Contact(testList, "back@example.com"); c.UnsubscribeAll || len(c.TopicPreferences) != 0 {
		t.Errorf("lifted contact %+v", c)
	}
	if !errors.Is(m[2].Err, connectors.ErrLiftRefused) || !errors.Is(m[2].Err, connectors.ErrPermanent) {
		t.Errorf("complaint lift: %+v", m[2])
	}
	if !fk.Unsubscribed(testList, "spam@example.com") {
		t.Error("refused lift changed the contact")
	}
	if m[3].Err != nil || !strings.Contains(m[3].Receipt, "BOUNCE kept") {
		t.Errorf("bounce lift: %+v", m[3])
	}
	if _, ok := fk.AccountSuppression("bounced@example.com"); !ok {
		t.Error("bounce removed")
	}
	if m[4].Err != nil || !strings.Contains(m[4].Receipt, "nothing to lift") {
		t.Errorf("no contact: %+v", m[4])
	}
	// Repeatable.
	res, err = d.Lift(ctx, []connectors.Suppression{sup(1, "back@example.com")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("repeat: %v %+v", err, res)
	}
}

func TestNewDestinationErrors(t *testing.T) {
	t.Parallel()
	ok := &DestinationOptions{Region: testRegion, ContactList: testList}
	cases := []struct {
		name string
		cfg  config.Destination
		want string
	}{
		{"api key without secret", config.Destination{APIKey: testAKID, Options: ok}, "api_key: must be ACCESS_KEY_ID:SECRET_ACCESS_KEY"},
		{"api key without id", config.Destination{APIKey: ":" + testSecret, Options: ok}, "api_key: must be"},
		{"bad base url", config.Destination{APIKey: testKey, BaseURL: "ftp://x", Options: ok}, "base_url:"},
		{"no options", config.Destination{APIKey: testKey}, "region: is required"},
		{"no list", config.Destination{APIKey: testKey, Options: &DestinationOptions{Region: testRegion}}, "contact_list: is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewDestination(c.cfg, connectors.Deps{})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), testSecret) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// TestCredentialChain: without api_key, the standard AWS chain signs
// (here from the environment).
func TestCredentialChain(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIACHAIN000EXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	fk := sesfake.New("AKIACHAIN000EXAMPLE")
	fk.AddContactList(testList)
	srv := httptest.NewServer(fk.Handler())
	defer srv.Close()
	d := fixtures.Build(t, NewDestination, config.Destination{Name: "ses", Kind: Kind, BaseURL: srv.URL,
		Options: &DestinationOptions{Region: testRegion, ContactList: testList}}, connectors.Deps{HTTP: fixtures.HTTPClient()})
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestConfigOptions(t *testing.T) {
	t.Parallel()
	entry := func(extra string) []byte {
		return []byte("destinations:\n  - name: ses-acme\n    kind: ses\n    brand: acme\n" + extra)
	}
	c, err := config.Parse(entry("    region: eu-west-3\n    contact_list: acme-marketing\n    topics: [newsletter, offers]\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	o, ok := c.Destinations[0].Options.(*DestinationOptions)
	if !ok || o.Region != "eu-west-3" || o.ContactList != "acme-marketing" || len(o.Topics) != 2 {
		t.Fatalf("options %+v", c.Destinations[0].Options)
	}
	if _, err := NewDestination(c.Destinations[0], connectors.Deps{}); err != nil {
		t.Fatalf("build from parsed config (AWS chain, no api_key): %v", err)
	}
	bad := []struct{ name, yaml, want string }{
		{"no region", "    contact_list: l\n", "destinations[0].region: is required"},
		{"bad region", "    region: paris\n    contact_list: l\n", `destinations[0].region: "paris" is not an AWS Region code`},
		{"no list", "    region: eu-west-3\n", "destinations[0].contact_list: is required"},
		{"bad list", "    region: eu-west-3\n    contact_list: a/b\n", "destinations[0].contact_list:"},
		{"repeated topic", "    region: eu-west-3\n    contact_list: l\n    topics: [a, a]\n", `destinations[0].topics[1]: "a" is listed twice`},
		{"unknown key", "    region: eu-west-3\n    contact_list: l\n    list_id: x\n", "destinations[0].list_id"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse(entry(b.yaml), func(string) (string, bool) { return "", false })
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("err = %v, want %q", err, b.want)
			}
		})
	}
}

// FuzzCheckAnswer feeds GetContact answers of any status, error type and
// body to Check: it must never panic, and returns either an error or one
// status.
func FuzzCheckAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"ContactListName":"acme-marketing","EmailAddress":"a@example.com","TopicPreferences":[{"TopicName":"newsletter","SubscriptionStatus":"OPT_OUT"}],"TopicDefaultPreferences":[],"UnsubscribeAll":true,"CreatedTimestamp":1.7e9,"LastUpdatedTimestamp":1700000000.5}`))
	f.Add(404, "NotFoundException", []byte(`{"message":"Contact does not exist."}`))
	f.Add(429, "TooManyRequestsException", []byte(`{"message":"Too many requests."}`))
	f.Add(400, "BadRequestException:http://internal.amazon.com/coral/com.amazonaws.sesv2/", []byte(`{"message":"Invalid email address."}`))
	f.Add(200, "", []byte(`{"UnsubscribeAll":"yes","CreatedTimestamp":"x"}`))
	f.Add(500, "", []byte(`not json`))
	var status int
	var typ string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if typ != "" {
			w.Header().Set("X-Amzn-Errortype", typ)
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	d := fixtures.Build(f, NewDestination, config.Destination{Name: "ses", Kind: Kind, BaseURL: srv.URL, APIKey: testKey,
		Options: &DestinationOptions{Region: testRegion, ContactList: testList}},
		connectors.Deps{HTTP: connectors.NewHTTPClient(connectors.HTTPOptions{Timeout: 2 * time.Second, RetryMax: 1, MinWait: time.Microsecond, MaxWait: time.Microsecond, WaitCap: time.Millisecond})})
	f.Fuzz(func(t *testing.T, st int, et string, b []byte) {
		if st < 200 || st > 599 || strings.ContainsAny(et, "\r\n\x00") {
			return
		}
		status, typ, body = st, et, b
		sts, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
		if err == nil && len(sts) != 1 {
			t.Fatalf("statuses %+v", sts)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Fatalf("secret in %v", err)
		}
	})
}

// TestRunStopsStarting: once a call stops the batch, no call starts after
// the ones in flight (at most InFlight in all, none of those waiting for a
// slot), the calls in flight finish and are kept, and the groups never
// started are not done.
func TestRunStopsStarting(t *testing.T) {
	t.Parallel()
	d, _ := newTestDestination(t)
	gs := make([]group, 40)
	for i := range gs {
		gs[i] = group{addr: fmt.Sprintf("x%d@example.com", i)}
	}
	var started atomic.Int32
	full := make(chan struct{}) // closed once InFlight calls run
	out, stop := run(context.Background(), d, gs, func(ctx context.Context, g group) (string, error) {
		if started.Add(1) == connectors.InFlight {
			close(full)
		}
		<-full // every slot taken before any call ends
		if g.addr == "x0@example.com" {
			return "", errors.New("connection reset") // transport: stops the batch
		}
		time.Sleep(50 * time.Millisecond) // long after x0's failure stopped the batch
		return "ok " + g.addr, ctx.Err()
	})
	if stop == nil || stop.whole || !strings.Contains(stop.err.Error(), "connection reset") {
		t.Fatalf("stop = %+v, want the transport error", stop)
	}
	if n := started.Load(); n != connectors.InFlight {
		t.Errorf("%d calls started, want %d (the first slots' only)", n, connectors.InFlight)
	}
	done := 0
	for i, o := range out {
		if o.done {
			done++
			if o.v != "ok "+gs[i].addr || o.err != nil {
				t.Errorf("group %d: %+v", i, o)
			}
		}
	}
	if done == 0 || done != int(started.Load())-1 {
		t.Errorf("%d groups done of %d started: every call in flight but the failing one finishes", done, started.Load())
	}
}

// TestTimeoutIsErrTimeout: SES calls whose destinations[].timeout elapses,
// rate-limited or not, fail as connectors.ErrTimeout (transient), whether
// the answer's headers never came or its body stopped coming after a 200.
func TestTimeoutIsErrTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("{"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	for _, limited := range []bool{false, true} {
		deps := connectors.Deps{HTTP: fixtures.HTTPClient()}
		if limited {
			deps = deps.WithRateLimit("ses-acme", 100, 1)
		}
		d := fixtures.Build(t, NewDestination, config.Destination{
			Name: "ses-acme", Kind: Kind, Brand: "acme", BaseURL: srv.URL, APIKey: testKey, Timeout: 200 * time.Millisecond,
			Options: &DestinationOptions{Region: testRegion, ContactList: testList},
		}, deps)
		batch := []connectors.Suppression{sup(1, "a@example.com")}
		_, err := d.Push(context.Background(), batch) // the body stops after "{"
		if !errors.Is(err, connectors.ErrTimeout) || errors.Is(err, connectors.ErrPermanent) {
			t.Errorf("rate-limited %v: push with its body cut short: err = %v, want ErrTimeout", limited, err)
		}
		_, err = d.Check(context.Background(), batch) // no headers
		if !errors.Is(err, connectors.ErrTimeout) || errors.Is(err, connectors.ErrPermanent) {
			t.Errorf("rate-limited %v: check with no answer: err = %v, want ErrTimeout", limited, err)
		}
	}
}

// TestRunPanic: a call that panics on run's goroutines stops the batch
// with an error (connectors.ErrPanic) instead of ending the process; the
// other groups' answers are kept.
func TestRunPanic(t *testing.T) {
	t.Parallel()
	d, _ := newTestDestination(t)
	gs := []group{{addr: "a@example.com"}, {addr: "b@example.com"}}
	out, stop := run(context.Background(), d, gs, func(ctx context.Context, g group) (string, error) {
		if g.addr == "b@example.com" {
			var p *group
			return p.addr, nil
		}
		return "ok", nil
	})
	if stop == nil || !errors.Is(stop.err, connectors.ErrPanic) {
		t.Fatalf("stop = %+v, want the panic as an error", stop)
	}
	// a@ ran (done, "ok") or, when b@'s panic came first, was not started
	// (run starts nothing once the batch stopped); b@ is never done.
	if out[0].done && out[0].v != "ok" || out[1].done {
		t.Errorf("outcomes %+v", out)
	}
}
