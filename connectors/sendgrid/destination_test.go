package sendgrid

import (
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
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
)

const testKey = "SG.aBcDeFgHiJkLmNoP.qRsTuVwXyZ0123456789"

func newTestDestination(t *testing.T, mod func(*config.Destination)) (*Destination, *sandbox.Sandbox) {
	t.Helper()
	sb := sandbox.New(sandbox.WithKeys(sandbox.Keys{SendGridKey: testKey}))
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "sendgrid-acme", Kind: Kind, Brand: "acme", BaseURL: srv.URL + "/sendgrid/", APIKey: testKey}
	if mod != nil {
		mod(&cfg)
	}
	return fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}), sb
}

var sup = fixtures.Suppression

func noKey(t *testing.T, err error, res []connectors.Result) {
	t.Helper()
	fixtures.NoSecret(t, err, res, testKey, "qRsTuVwXyZ0123456789")
}

func TestPushSuccess(t *testing.T) {
	d, sb := newTestDestination(t, func(c *config.Destination) { c.Options = &Options{OnBehalfOf: "acme-subuser"} })
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "Noah.Petit@example.com"), sup(2, "ines@example.org"), sup(3, "noah.petit@example.com")})
	noKey(t, err, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if r.Err != nil || !strings.Contains(r.Receipt, "201") {
			t.Fatalf("result %+v", r)
		}
	}
	calls := sb.Calls(sandbox.SendGrid)
	if len(calls) != 1 {
		t.Fatalf("calls = %d", len(calls))
	}
	c := calls[0]
	if !c.AuthOK || c.Method != "POST" || c.Path != "/sendgrid/v3/asm/suppressions/global" || c.Header.Get("On-Behalf-Of") != "acme-subuser" || c.Status != 201 {
		t.Fatalf("call %+v", c)
	}
	var body map[string][]string
	if err := json.Unmarshal(c.Body, &body); err != nil || len(body) != 1 || len(body["recipient_emails"]) != 2 {
		t.Fatalf("body %s (%v)", c.Body, err)
	}
	if got := strings.Join(sb.SendGridSuppressed(), ","); got != "Noah.Petit@example.com,ines@example.org" {
		t.Fatalf("suppressed %s", got)
	}
	// Already suppressed addresses are fine (idempotent).
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "noah.petit@example.com")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("repeat: %v %+v", err, res)
	}
}

func TestPushInvalidAddresses(t *testing.T) {
	d, sb := newTestDestination(t, nil)
	sms := sup(4, "a@example.com")
	sms.Channel = consent.ChannelSMS
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "ok@example.com"), sup(2, "not an address"), sup(3, ""), sms})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]error{}
	for _, r := range res {
		got[r.ID] = r.Err
	}
	if got[1] != nil {
		t.Fatal(got[1])
	}
	for _, id := range []int64{2, 3, 4} {
		if !errors.Is(got[id], connectors.ErrPermanent) {
			t.Fatalf("item %d: %v", id, got[id])
		}
	}
	if c := sb.Calls(sandbox.SendGrid); len(c) != 1 || len(c[0].Emails) != 1 {
		t.Fatalf("calls %+v", c)
	}
	// Nothing to send: no call at all.
	sb.ResetCalls()
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(5, "")}); err != nil || sb.CallCount(sandbox.SendGrid) != 0 {
		t.Fatalf("err %v, calls %d", err, sb.CallCount(sandbox.SendGrid))
	}
}

func TestPushRetries(t *testing.T) {
	cases := []struct {
		name      string
		script    []sandbox.Answer
		calls     int
		ok        bool
		permanent bool
		retryMin  time.Duration
	}{
		{"429 Retry-After seconds honoured", []sandbox.Answer{sandbox.TooManyRequestsSeconds(1)}, 2, true, false, 0},
		{"429 Retry-After HTTP-date honoured", []sandbox.Answer{sandbox.TooManyRequestsUntil(time.Now().Add(time.Second))}, 2, true, false, 0},
		{"429 X-RateLimit-Reset soon honoured", []sandbox.Answer{sandbox.TooManyRequestsReset(time.Now().Add(time.Second))}, 2, true, false, 0},
		{"429 X-RateLimit-Reset far reschedules", []sandbox.Answer{sandbox.TooManyRequestsReset(time.Now().Add(time.Hour))}, 1, false, false, 58 * time.Minute},
		{"429 Retry-After long reschedules", []sandbox.Answer{sandbox.TooManyRequestsSeconds(600)}, 1, false, false, 9 * time.Minute},
		{"429 HTTP-date far reschedules", []sandbox.Answer{sandbox.TooManyRequestsUntil(time.Now().Add(time.Hour))}, 1, false, false, 58 * time.Minute},
		{"503 then success", []sandbox.Answer{sandbox.Unavailable()}, 2, true, false, 0},
		{"503 twice then success", sandbox.Repeat(sandbox.Unavailable(), 2), 3, true, false, 0},
		{"503 until retries run out", sandbox.Repeat(sandbox.Unavailable(), 5), 3, false, false, 0},
		{"400 permanent, one call", []sandbox.Answer{sandbox.BadRequest()}, 1, false, true, 0},
		{"403 permanent", []sandbox.Answer{sandbox.StatusOnly(403)}, 1, false, true, 0},
		{"400 echoing the key", []sandbox.Answer{{Status: 400, Body: `{"errors":[{"field":null,"message":"bad key Bearer ` + testKey + `"}]}`}}, 1, false, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, sb := newTestDestination(t, nil)
			sb.Script(sandbox.SendGrid, c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noKey(t, err, res)
			if n := sb.CallCount(sandbox.SendGrid); n != c.calls {
				t.Fatalf("calls = %d, want %d (err %v)", n, c.calls, err)
			}
			if c.ok {
				if err != nil || len(res) != 1 || res[0].Err != nil {
					t.Fatalf("want success, got %v %+v", err, res)
				}
				if len(sb.SendGridSuppressed()) != 1 {
					t.Fatal("not suppressed")
				}
				return
			}
			fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
			if len(sb.SendGridSuppressed()) != 0 {
				t.Fatal("state changed by a failed call")
			}
		})
	}
}

func TestPushWrongKey(t *testing.T) {
	d, sb := newTestDestination(t, func(c *config.Destination) { c.APIKey = "SG.wrong-" + testKey })
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	noKey(t, err, res)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "authorization required") {
		t.Fatalf("err = %v", err)
	}
	if c := sb.Calls(sandbox.SendGrid); len(c) != 1 || c[0].AuthOK {
		t.Fatalf("calls %+v", c)
	}
	if strings.Contains(err.Error(), "SG.wrong") {
		t.Fatalf("key in error: %v", err)
	}
}

func TestPushChunks(t *testing.T) {
	d, sb := newTestDestination(t, nil)
	var batch []connectors.Suppression
	for i := range MaxRecipients + 1 {
		batch = append(batch, sup(int64(i), fmt.Sprintf("p%d@example.com", i)))
	}
	res, err := d.Push(context.Background(), batch)
	if err != nil || len(res) != len(batch) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	calls := sb.Calls(sandbox.SendGrid)
	if len(calls) != 2 || len(calls[0].Emails) != MaxRecipients || len(calls[1].Emails) != 1 {
		t.Fatalf("calls %d", len(calls))
	}
	if len(sb.SendGridSuppressed()) != MaxRecipients+1 {
		t.Fatal("suppressed count")
	}
}

func TestNewDestination(t *testing.T) {
	d, err := NewDestination(config.Destination{APIKey: "k"}, connectors.Deps{})
	if err != nil || d.base != DefaultBaseURL || d.MaxBatch() != MaxRecipients {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := NewDestination(config.Destination{}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "api_key:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewDestination(config.Destination{APIKey: "k", BaseURL: "api.sendgrid.com"}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "base_url:") {
		t.Fatalf("err = %v", err)
	}
}

// TestPushTimeout: destinations[].timeout bounds the call even though the
// shared client (deps.HTTP) would wait an hour, and the timed-out call is
// made once; the error is transient (the worker retries the task later,
// which is safe: the call is idempotent).
func TestPushTimeout(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	cfg := config.Destination{Name: "sendgrid-acme", Kind: Kind, Brand: "acme", BaseURL: srv.URL, APIKey: testKey, Timeout: 200 * time.Millisecond}
	d := fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: connectors.NewHTTPClient(connectors.HTTPOptions{Timeout: time.Hour})})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := d.Push(ctx, []connectors.Suppression{sup(1, "a@example.com")})
	noKey(t, err, res)
	if !errors.Is(err, connectors.ErrTimeout) || errors.Is(err, connectors.ErrPermanent) || res != nil {
		t.Fatalf("err = %v, results %+v; want a transient ErrTimeout", err, res)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("calls = %d, want 1", n)
	}
}
