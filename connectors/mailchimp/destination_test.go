package mailchimp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
)

const (
	testKey  = "0123456789abcdef0123456789abcdef-us21"
	testList = "a6b5da1054"
)

func newTestDestination(t *testing.T, opts ...sandbox.Option) (*Destination, *sandbox.Sandbox) {
	t.Helper()
	sb := sandbox.New(append([]sandbox.Option{sandbox.WithKeys(sandbox.Keys{MailchimpKey: testKey})}, opts...)...)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return destinationFor(t, srv.URL+"/mailchimp", testKey), sb
}

func destinationFor(t *testing.T, base, key string) *Destination {
	t.Helper()
	return fixtures.Build(t, NewDestination, config.Destination{Name: "mailchimp-acme", Kind: Kind, Brand: "acme", BaseURL: base, APIKey: key, Options: &Options{ListID: testList}},
		connectors.Deps{HTTP: fixtures.HTTPClient()})
}

var sup = fixtures.Suppression

// noKey fails when the API key shows in an error or receipt.
func noKey(t *testing.T, err error, res []connectors.Result) {
	t.Helper()
	fixtures.NoSecret(t, err, res, testKey, "0123456789abcdef0123456789abcdef")
}

func byID(res []connectors.Result) map[int64]connectors.Result {
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

func TestPushSuccess(t *testing.T) {
	d, sb := newTestDestination(t, sandbox.WithMailchimpMember(testList, "Old@Example.com", "subscribed"))
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "New@Example.com"), sup(2, "old@example.com"), sup(3, "new@example.com")})
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if r.Err != nil || r.Receipt == "" {
			t.Fatalf("result %+v", r)
		}
	}
	m := byID(res)
	if !strings.Contains(m[1].Receipt, "new member") || !strings.Contains(m[2].Receipt, "updated") {
		t.Errorf("receipts: %q / %q", m[1].Receipt, m[2].Receipt)
	}
	calls := sb.Calls(sandbox.Mailchimp)
	if len(calls) != 1 {
		t.Fatalf("calls = %d", len(calls))
	}
	c := calls[0]
	if !c.AuthOK || c.Method != "POST" || c.Path != "/mailchimp/3.0/lists/"+testList {
		t.Fatalf("call %+v", c)
	}
	var body struct {
		Members []struct {
			EmailAddress string `json:"email_address"`
			Status       string `json:"status"`
			StatusIfNew  string `json:"status_if_new"`
		} `json:"members"`
		UpdateExisting bool `json:"update_existing"`
	}
	if err := json.Unmarshal(c.Body, &body); err != nil {
		t.Fatal(err)
	}
	if !body.UpdateExisting || len(body.Members) != 2 {
		t.Fatalf("body %s", c.Body)
	}
	for _, mb := range body.Members {
		if mb.Status != "unsubscribed" || mb.StatusIfNew != "unsubscribed" {
			t.Fatalf("member %+v", mb)
		}
	}
	for _, e := range []string{"new@example.com", "old@example.com"} {
		if st := sb.MailchimpStatus(testList, e); st != "unsubscribed" {
			t.Errorf("%s: status %q", e, st)
		}
	}
	// Idempotent: a second push changes nothing and succeeds.
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "New@Example.com")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("repeat: %v %+v", err, res)
	}
}

func TestPushPerMemberErrors(t *testing.T) {
	d, sb := newTestDestination(t, sandbox.WithMailchimpCompliance("stuck@example.com"), sandbox.WithMailchimpForgotten("gone@example.com"))
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "ok@example.com"), sup(2, "Stuck@example.com"), sup(3, "gone@example.com"), sup(4, "not-an-address")})
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	m := byID(res)
	if m[1].Err != nil {
		t.Fatalf("ok member: %v", m[1].Err)
	}
	if !errors.Is(m[2].Err, connectors.ErrPermanent) || !errors.Is(m[2].Err, ErrComplianceState) {
		t.Fatalf("compliance member: %v", m[2].Err)
	}
	if !errors.Is(m[3].Err, connectors.ErrPermanent) || !errors.Is(m[3].Err, ErrForgotten) {
		t.Fatalf("forgotten member: %v", m[3].Err)
	}
	if !errors.Is(m[4].Err, connectors.ErrPermanent) {
		t.Fatalf("invalid member: %v", m[4].Err)
	}
	for _, id := range []int64{2, 3} {
		if s := m[id].Err.Error(); strings.Contains(strings.ToLower(s), "@example.com") {
			t.Errorf("error repeats the address: %q", s)
		}
	}
	if n := sb.CallCount(sandbox.Mailchimp); n != 1 {
		t.Fatalf("calls = %d, want 1 (per-member errors are never retried)", n)
	}
	if sb.MailchimpStatus(testList, "stuck@example.com") != "" {
		t.Error("compliance member changed")
	}
}

func TestPushNoEmailOrChannel(t *testing.T) {
	d, sb := newTestDestination(t)
	sms := sup(2, "a@example.com")
	sms.Channel = consent.ChannelSMS
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "  "), sms})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !errors.Is(r.Err, connectors.ErrPermanent) {
			t.Fatalf("result %+v", r)
		}
	}
	if sb.CallCount(sandbox.Mailchimp) != 0 {
		t.Fatal("no call expected")
	}
}

func TestPushRetries(t *testing.T) {
	cases := []struct {
		name      string
		script    []sandbox.Answer
		calls     int
		ok        bool
		permanent bool
		retryMin  time.Duration // >0: want a *RetryAfterError at least this long
	}{
		{"429 Retry-After seconds honoured", []sandbox.Answer{sandbox.TooManyRequestsSeconds(1)}, 2, true, false, 0},
		{"429 Retry-After HTTP-date honoured", []sandbox.Answer{sandbox.TooManyRequestsUntil(time.Now().Add(time.Second))}, 2, true, false, 0},
		{"429 Retry-After past date", []sandbox.Answer{sandbox.TooManyRequestsUntil(time.Now().Add(-time.Hour))}, 2, true, false, 0},
		{"429 long Retry-After reschedules", []sandbox.Answer{sandbox.TooManyRequestsSeconds(3600)}, 1, false, false, 59 * time.Minute},
		{"429 far HTTP-date reschedules", []sandbox.Answer{sandbox.TooManyRequestsUntil(time.Now().Add(2 * time.Hour))}, 1, false, false, 110 * time.Minute},
		{"503 then success", []sandbox.Answer{sandbox.Unavailable()}, 2, true, false, 0},
		{"503 until retries run out", sandbox.Repeat(sandbox.Unavailable(), 3), 3, false, false, 0},
		{"400 permanent, one call", []sandbox.Answer{sandbox.BadRequest()}, 1, false, true, 0},
		{"404 permanent", []sandbox.Answer{sandbox.StatusOnly(404)}, 1, false, true, 0},
		{"403 throttling is transient", []sandbox.Answer{sandbox.MailchimpThrottled()}, 1, false, false, 0},
		{"other 403 is permanent", []sandbox.Answer{sandbox.StatusOnly(403)}, 1, false, true, 0},
		{"400 body echoing the key", []sandbox.Answer{{Status: 400, Body: `{"title":"Invalid Resource","status":400,"detail":"key ` + testKey + ` rejected"}`}}, 1, false, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, sb := newTestDestination(t)
			sb.Script(sandbox.Mailchimp, c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noKey(t, err, res)
			if n := sb.CallCount(sandbox.Mailchimp); n != c.calls {
				t.Fatalf("calls = %d, want %d (err %v)", n, c.calls, err)
			}
			if c.ok {
				if err != nil || len(res) != 1 || res[0].Err != nil {
					t.Fatalf("want success, got %v %+v", err, res)
				}
				if sb.MailchimpStatus(testList, "a@example.com") != "unsubscribed" {
					t.Fatal("not unsubscribed")
				}
				return
			}
			fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
		})
	}
}

func TestPushWrongKey(t *testing.T) {
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	d := destinationFor(t, srv.URL+"/mailchimp", testKey)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	noKey(t, err, res)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
	if c := sb.Calls(sandbox.Mailchimp); len(c) != 1 || c[0].AuthOK {
		t.Fatalf("calls %+v", c)
	}
}

func TestPushChunks(t *testing.T) {
	d, sb := newTestDestination(t)
	var batch []connectors.Suppression
	for i := range 1001 {
		batch = append(batch, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	batch = append(batch, sup(5000, "P0@example.com")) // duplicate address rides along
	res, err := d.Push(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(batch) {
		t.Fatalf("results = %d", len(res))
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%+v", r)
		}
	}
	calls := sb.Calls(sandbox.Mailchimp)
	if len(calls) != 3 {
		t.Fatalf("calls = %d, want 3", len(calls))
	}
	for _, c := range calls {
		if len(c.Members) > MaxMembers || c.Status != 200 {
			t.Fatalf("call with %d members, status %d", len(c.Members), c.Status)
		}
	}
	if got := len(sb.MailchimpMembers(testList)); got != 1001 {
		t.Fatalf("members = %d", got)
	}
}

func TestNewDestination(t *testing.T) {
	d, err := NewDestination(config.Destination{Name: "m", APIKey: "abc-us21", Options: &Options{ListID: "L"}}, connectors.Deps{})
	if err != nil || d.base != "https://us21.api.mailchimp.com" {
		t.Fatalf("base %q, %v", d.base, err)
	}
	if d.MaxBatch() != 500 {
		t.Fatal("MaxBatch")
	}
	for _, c := range []struct {
		cfg  config.Destination
		want string
	}{
		{config.Destination{APIKey: "secretkeywithoutdc", Options: &Options{ListID: "L"}}, "api_key:"},
		{config.Destination{APIKey: "secret-", Options: &Options{ListID: "L"}}, "api_key:"},
		{config.Destination{APIKey: "secret-us21.evil.com/x", Options: &Options{ListID: "L"}}, "api_key:"},
		{config.Destination{APIKey: "", Options: &Options{ListID: "L"}}, "api_key:"},
		{config.Destination{APIKey: "k-us1"}, "list_id:"},
		{config.Destination{APIKey: "k-us1", Options: &Options{ListID: "L"}, BaseURL: "ftp://x"}, "base_url:"},
	} {
		_, err := NewDestination(c.cfg, connectors.Deps{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && c.cfg.APIKey != "" && strings.Contains(err.Error(), c.cfg.APIKey) {
			t.Errorf("error leaks the key: %v", err)
		}
	}
}
