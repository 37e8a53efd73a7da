package brevo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/brevo/brevofake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const testKey = "xkeysib-4f2c9e7a1b3d5f60-Zq8RtYp2"

var sup = fixtures.Suppression

func smsSup(id int64, phone string) connectors.Suppression {
	s := sup(id, "")
	s.Channel, s.Phone = consent.ChannelSMS, phone
	return s
}

func newDest(t *testing.T, key string, opts ...brevofake.Option) (*Destination, *brevofake.Fake, string) {
	t.Helper()
	fk := brevofake.New(append([]brevofake.Option{brevofake.WithKey(testKey)}, opts...)...)
	srv := httptest.NewServer(fk.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Destination{Name: "brevo-acme", Kind: "brevo", Brand: "acme", BaseURL: srv.URL, APIKey: key}
	return fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}), fk, srv.URL
}

func noKey(t *testing.T, err error, res []connectors.Result) {
	t.Helper()
	fixtures.NoSecret(t, err, res, testKey, "4f2c9e7a1b3d5f60")
	for _, r := range res {
		if strings.Contains(r.Receipt, "@example") || (r.Err != nil && strings.Contains(r.Err.Error(), "@example")) {
			t.Fatalf("address in a result: %+v", r)
		}
	}
}

func byID(res []connectors.Result) map[int64]connectors.Result {
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

func paths(calls []fakeapi.Call) string {
	var p []string
	for _, c := range calls {
		p = append(p, fmt.Sprintf("%s %s %d", c.Method, c.Path, c.Status))
	}
	return strings.Join(p, "; ")
}

func TestPushKnownContacts(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, testKey, brevofake.WithContacts("noah.petit@example.com", "ines@example.org"))
	other := sup(4, "x@example.com")
	other.Channel = "whatsapp"
	in := []connectors.Suppression{sup(1, "Noah.Petit@example.com"), sup(2, "ines@example.org"), sup(3, "noah.petit@example.com"), other, sup(5, "not an address")}
	for round := range 2 { // idempotent
		res, err := d.Push(context.Background(), in)
		noKey(t, err, res)
		m := byID(res)
		if err != nil || len(res) != len(in) || m[1].Err != nil || m[2].Err != nil || m[3].Err != nil || !strings.Contains(m[1].Receipt, "emailBlacklisted=true (batch update, HTTP 204)") {
			t.Fatalf("round %d: %v %+v", round, err, res)
		}
		if !errors.Is(m[4].Err, connectors.ErrPermanent) || !errors.Is(m[5].Err, connectors.ErrPermanent) {
			t.Fatalf("refusals %+v %+v", m[4], m[5])
		}
	}
	calls := fk.Calls()
	if len(calls) != 2 || calls[0].Method != "POST" || calls[0].Path != "/v3/contacts/batch" || calls[0].Status != 204 || calls[0].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("calls %s", paths(calls))
	}
	if calls[0].Header.Get("api-key") != "" {
		t.Fatal("the fake recorded the key")
	}
	items, err := brevofake.ParseBatch(calls[0].Body)
	if err != nil || len(items) != 2 || items[0].Email != "Noah.Petit@example.com" || items[0].EmailBlacklisted == nil || !*items[0].EmailBlacklisted || items[0].SMSBlacklisted != nil {
		t.Fatalf("body %s", calls[0].Body)
	}
	if got := strings.Join(fk.Blocklisted(), ","); got != "ines@example.org,noah.petit@example.com" || fk.Len() != 2 {
		t.Fatalf("blocklisted %s", got)
	}
}

// TestPushUnknownContacts: a batch refused for unknown contacts is split,
// never dropped: the named ones are created blocklisted, the rest sent
// again; without usable indexes the batch is halved.
func TestPushUnknownContacts(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, testKey, brevofake.WithContacts("a@example.com", "c@example.com", "e@example.com"))
	in := []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com"), sup(3, "c@example.com"), sup(4, "d@example.com"), sup(5, "e@example.com")}
	res, err := d.Push(context.Background(), in)
	noKey(t, err, res)
	if err != nil || len(res) != 5 {
		t.Fatalf("%v %+v", err, res)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%+v", r)
		}
	}
	if !strings.Contains(byID(res)[2].Receipt, "contact created, HTTP 201") {
		t.Fatalf("receipt %q", byID(res)[2].Receipt)
	}
	want := "POST /v3/contacts/batch 404; POST /v3/contacts 201; POST /v3/contacts 201; POST /v3/contacts/batch 204"
	if got := paths(fk.Calls()); got != want {
		t.Fatalf("calls %s", got)
	}
	if len(fk.Blocklisted()) != 5 {
		t.Fatalf("blocklisted %v", fk.Blocklisted())
	}

	// A 404 whose message names no index: halve until alone.
	d, fk, _ = newDest(t, testKey, brevofake.WithContacts("a@example.com", "b@example.com", "c@example.com"))
	fk.Script(fakeapi.Answer{Status: 404, Body: brevofake.ErrorBody("document_not_found", "Contact not found")})
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com"), sup(3, "c@example.com"), sup(4, "new@example.com")})
	noKey(t, err, res)
	if err != nil || len(res) != 4 || len(fk.Blocklisted()) != 4 {
		t.Fatalf("%v %+v %v (%s)", err, res, fk.Blocklisted(), paths(fk.Calls()))
	}
	// 207 (contact ids only): halved, each half sent again as a batch.
	fk.ResetCalls()
	fk.Forget("a@example.com")
	fk.Script(fakeapi.Answer{Status: 207, Body: `{"successIds":[2],"failureIds":[1]}`})
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")})
	if err != nil || len(res) != 2 || !fk.EmailBlocklisted("a@example.com") || paths(fk.Calls()) != "POST /v3/contacts/batch 207; POST /v3/contacts/batch 204; POST /v3/contacts/batch 204" {
		t.Fatalf("%v %+v %s", err, res, paths(fk.Calls()))
	}
}

// TestPartialBatch: Brevo answers 207 with contact ids when it updates
// only some contacts of a batch. Push and Lift give a call of its own only
// to the contact that failed (found by halving: the ids cannot be matched
// with addresses), and a Lift reports a contact lifted only after a real
// call lifted it.
func TestPartialBatch(t *testing.T) {
	t.Parallel()
	var emails []string
	var in []connectors.Suppression
	for i := range 8 {
		emails = append(emails, fmt.Sprintf("p%d@example.com", i))
		in = append(in, sup(int64(i), emails[i]))
	}
	d, fk, _ := newDest(t, testKey, brevofake.WithContacts(emails...))
	fk.FailInBatch("p5@example.com")
	singles := func() (n int) {
		for _, c := range fk.Calls() {
			if c.Path != "/v3/contacts/batch" {
				n++
			}
		}
		return n
	}
	for _, on := range []bool{true, false} {
		fk.ResetCalls()
		var res []connectors.Result
		var err error
		if on {
			res, err = d.Push(context.Background(), in)
		} else {
			res, err = d.Lift(context.Background(), in)
		}
		noKey(t, err, res)
		if err != nil || len(res) != 8 {
			t.Fatalf("on=%v: %v %+v", on, err, res)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("on=%v: %+v", on, r)
			}
		}
		for _, e := range emails {
			if fk.EmailBlocklisted(e) != on {
				t.Fatalf("on=%v: %s blocklisted=%v (%s)", on, e, !on, paths(fk.Calls()))
			}
		}
		// One call of its own (the failed contact); batches: 1 + 2 per
		// halving level = 7 for 8 contacts.
		if n := singles(); n != 1 || fk.CallCount() > 8 {
			t.Fatalf("on=%v: %d single calls, %d in all: %s", on, n, fk.CallCount(), paths(fk.Calls()))
		}
		if !strings.Contains(byID(res)[5].Receipt, "contact updated") {
			t.Fatalf("on=%v: receipt %q", on, byID(res)[5].Receipt)
		}
	}
	// A lone contact's 207 on Lift, and the contact gone by then: nothing
	// to lift (404 on its own call), a success.
	fk.ResetCalls()
	fk.Script(fakeapi.Answer{Status: 207, Body: `{"successIds":[],"failureIds":[6]}`})
	res, err := d.Lift(context.Background(), []connectors.Suppression{sup(5, "gone@example.com")})
	if err != nil || len(res) != 1 || res[0].Err != nil || !strings.Contains(res[0].Receipt, "nothing to lift") ||
		paths(fk.Calls()) != "POST /v3/contacts/batch 207; PUT /v3/contacts/gone@example.com 404" {
		t.Fatalf("%v %+v %s", err, res, paths(fk.Calls()))
	}
}

// TestPushBadContact: a 400 for a batch is halved until the refused
// contact has its own permanent Result; the others succeed.
func TestPushBadContact(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, testKey, brevofake.WithContacts("a@example.com", "b@example.com"))
	refused := fakeapi.Answer{Status: 400, Body: brevofake.ErrorBody("invalid_parameter", "bad contact b@example.com, key "+testKey)}
	fk.Script(refused, fakeapi.Answer{Status: 204}, refused)
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com"), sup(3, "B@example.com")})
	noKey(t, err, res)
	m := byID(res)
	if err != nil || len(res) != 3 || m[1].Err != nil || !errors.Is(m[2].Err, connectors.ErrPermanent) || !errors.Is(m[3].Err, connectors.ErrPermanent) || !strings.Contains(m[2].Err.Error(), "invalid_parameter") {
		t.Fatalf("%v %+v", err, res)
	}
	if got := paths(fk.Calls()); got != "POST /v3/contacts/batch 400; POST /v3/contacts/batch 204; POST /v3/contacts/batch 400" {
		t.Fatalf("calls %s", got)
	}
	// A lone unknown contact whose creation Brevo refuses.
	fk.ResetCalls()
	fk.Script(fakeapi.Answer{Status: 404, Body: brevofake.ErrorBody("document_not_found", "No contact found for indexes 0")}, fakeapi.Answer{Status: 400, Body: brevofake.ErrorBody("invalid_parameter", "Invalid email address")})
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "z@example.com")})
	if err != nil || len(res) != 1 || !errors.Is(res[0].Err, connectors.ErrPermanent) {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestPushSMS(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, testKey)
	fk.AddContact("", "+33612345678")
	in := []connectors.Suppression{smsSup(1, "+33612345678"), smsSup(2, "+33698765432"), smsSup(3, "0612345678"), smsSup(4, "")}
	res, err := d.Push(context.Background(), in)
	noKey(t, err, res)
	m := byID(res)
	if err != nil || m[1].Err != nil || m[2].Err != nil || !strings.Contains(m[1].Receipt, "smsBlacklisted=true") {
		t.Fatalf("%v %+v", err, res)
	}
	for _, id := range []int64{3, 4} {
		if !errors.Is(m[id].Err, connectors.ErrPermanent) {
			t.Fatalf("item %d: %+v", id, m[id])
		}
	}
	if !fk.SMSBlocklisted("+33612345678") || !fk.SMSBlocklisted("+33698765432") || fk.Len() != 2 {
		t.Fatal("not blocklisted")
	}
	calls := fk.Calls()
	items, _ := brevofake.ParseBatch(calls[0].Body)
	if len(items) != 2 || items[0].SMS != "+33612345678" || items[0].SMSBlacklisted == nil || items[0].EmailBlacklisted != nil {
		t.Fatalf("body %s", calls[0].Body)
	}
	if !bytes.Contains(calls[1].Body, []byte(`"attributes":{"SMS":"+33698765432"}`)) || !bytes.Contains(calls[1].Body, []byte(`"updateEnabled":true`)) {
		t.Fatalf("create body %s", calls[1].Body)
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
	}{
		{name: "429 x-sib-ratelimit-reset soon honoured", script: []fakeapi.Answer{fakeapi.TooMany(brevofake.ResetHeader(1))}, calls: 2, ok: true},
		{name: "429 x-sib-ratelimit-reset far reschedules", script: []fakeapi.Answer{fakeapi.TooMany(brevofake.ResetHeader(900))}, calls: 1, retryMin: 14 * time.Minute},
		{name: "429 fractional reset", script: []fakeapi.Answer{fakeapi.TooMany(http.Header{"X-Sib-Ratelimit-Reset": {"0.2"}})}, calls: 2, ok: true},
		{name: "429 without a reset, retries run out", script: fakeapi.Repeat(fakeapi.Status(429), 5), calls: 3},
		{name: "503 then success", script: []fakeapi.Answer{fakeapi.Status(503)}, calls: 2, ok: true},
		{name: "500 until retries run out", script: fakeapi.Repeat(fakeapi.Status(500), 5), calls: 3},
		{name: "401", script: []fakeapi.Answer{fakeapi.Status(401)}, calls: 1, permanent: true},
		{name: "403 echoing the key", script: []fakeapi.Answer{{Status: 403, Body: brevofake.ErrorBody("permission_denied", "key "+testKey+" for a@example.com")}}, calls: 1, permanent: true},
		{name: "402 account", script: []fakeapi.Answer{{Status: 402, Body: brevofake.ErrorBody("not_enough_credits", "no credits")}}, calls: 1, permanent: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk, _ := newDest(t, testKey, brevofake.WithContacts("a@example.com"))
			fk.Script(c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noKey(t, err, res)
			if fk.CallCount() != c.calls {
				t.Fatalf("calls = %d, want %d (%v)", fk.CallCount(), c.calls, err)
			}
			if c.ok {
				if err != nil || res[0].Err != nil || !fk.EmailBlocklisted("a@example.com") {
					t.Fatalf("%v %+v", err, res)
				}
				return
			}
			fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
			if fk.EmailBlocklisted("a@example.com") {
				t.Fatal("state changed by a failed call")
			}
		})
	}
}

func TestPushWrongKey(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, "xkeysib-wrong-"+testKey, brevofake.WithContacts("a@example.com"))
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	noKey(t, err, res)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "unauthorized") || strings.Contains(err.Error(), "xkeysib-wrong") {
		t.Fatalf("err = %v", err)
	}
	if fk.EmailBlocklisted("a@example.com") {
		t.Fatal("state changed")
	}
}

// TestPushBatchLimit: Push sends at most MaxContacts per batch update;
// the fake refuses one more, as configured.
func TestPushBatchLimit(t *testing.T) {
	t.Parallel()
	d, fk, base := newDest(t, testKey)
	var in []connectors.Suppression
	for i := range 2*MaxContacts + 1 {
		e := fmt.Sprintf("p%d@example.com", i)
		fk.AddContact(e, "")
		in = append(in, sup(int64(i), e))
	}
	res, err := d.Push(context.Background(), in)
	if err != nil || len(res) != len(in) || len(fk.Blocklisted()) != len(in) {
		t.Fatalf("%v, %d results", err, len(res))
	}
	calls := fk.Calls()
	if len(calls) != 3 {
		t.Fatalf("calls %s", paths(calls))
	}
	for i, want := range []int{MaxContacts, MaxContacts, 1} {
		if items, _ := brevofake.ParseBatch(calls[i].Body); len(items) != want {
			t.Fatalf("call %d: %d contacts", i, len(items))
		}
	}
	var b strings.Builder
	b.WriteString(`{"contacts":[`)
	for i := range MaxContacts + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"email":"p%d@example.com","emailBlacklisted":true}`, i)
	}
	b.WriteString("]}")
	req, _ := http.NewRequest("POST", base+"/v3/contacts/batch", strings.NewReader(b.String()))
	req.Header.Set("api-key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("oversized batch: %d", resp.StatusCode)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, testKey, brevofake.WithContacts("held@example.com", "drift@example.com", "open@example.com"))
	fk.AddContact("", "+33612345678")
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "held@example.com"), sup(2, "drift@example.com"), smsSup(3, "+33612345678")}); err != nil {
		t.Fatal(err)
	}
	if !fk.Forget("drift@example.com") {
		t.Fatal("Forget")
	}
	fk.ResetCalls()
	in := []connectors.Suppression{sup(1, "HELD@example.com"), sup(2, "drift@example.com"), sup(3, "open@example.com"), sup(4, "never@example.com"), smsSup(5, "+33612345678"), smsSup(6, "+33600000000"), sup(7, "")}
	st, err := d.Check(context.Background(), in)
	if err != nil || len(st) != len(in) {
		t.Fatalf("%v %+v", err, st)
	}
	want := map[int64][2]bool{1: {true, false}, 2: {false, false}, 3: {false, false}, 4: {false, false}, 5: {true, false}, 6: {false, false}, 7: {false, true}}
	for _, s := range st {
		if w := want[s.ID]; s.Suppressed != w[0] || s.Unknown != w[1] || s.Receipt == "" || strings.Contains(s.Receipt, "@example") || strings.Contains(s.Receipt, testKey) {
			t.Errorf("item %d: %+v", s.ID, s)
		}
	}
	calls := fk.Calls()
	_, email := fakeapi.Find(calls, "GET", "/v3/contacts/HELD@example.com", "identifierType=email_id")
	_, phone := fakeapi.Find(calls, "GET", "/v3/contacts/+33612345678", "identifierType=phone_id")
	if len(calls) != 6 || !email || !phone {
		t.Fatalf("calls %+v", calls)
	}
	if len(fk.Blocklisted()) != 1 {
		t.Fatal("Check changed state")
	}
}

func TestCheckAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                string
		script              []fakeapi.Answer
		suppressed, unknown bool
		fail, permanent     bool
		retryMin            time.Duration
	}{
		{name: "blocklisted", script: []fakeapi.Answer{{Status: 200, Body: `{"email":"a@example.com","id":7,"emailBlacklisted":true,"smsBlacklisted":false}`}}, suppressed: true},
		{name: "not blocklisted", script: []fakeapi.Answer{{Status: 200, Body: `{"email":"a@example.com","id":7,"emailBlacklisted":false}`}}},
		{name: "flag not a boolean", script: []fakeapi.Answer{{Status: 200, Body: `{"emailBlacklisted":"yes"}`}}, unknown: true},
		{name: "not JSON", script: []fakeapi.Answer{{Status: 200, Body: `<html>`}}, unknown: true},
		{name: "404: contact deleted, not blocklisted", script: []fakeapi.Answer{fakeapi.Status(404)}},
		{name: "400", script: []fakeapi.Answer{fakeapi.Status(400)}, unknown: true},
		{name: "429 far", script: []fakeapi.Answer{fakeapi.TooMany(brevofake.ResetHeader(3600))}, fail: true, retryMin: 59 * time.Minute},
		{name: "401", script: []fakeapi.Answer{fakeapi.Status(401)}, fail: true, permanent: true},
		{name: "503 until retries run out", script: fakeapi.Repeat(fakeapi.Status(503), 5), fail: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk, _ := newDest(t, testKey)
			fk.Script(c.script...)
			st, err := d.Check(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			if c.fail {
				fixtures.PushFailed(t, err, nil, c.permanent, c.retryMin)
				if st != nil {
					t.Fatalf("statuses %+v", st)
				}
				return
			}
			if err != nil || len(st) != 1 || st[0].Suppressed != c.suppressed || st[0].Unknown != c.unknown {
				t.Fatalf("%v %+v", err, st)
			}
		})
	}
}

// TestNumbersMasked: an SMS contact's number, in the path of its own
// calls, is masked in every error and receipt (they reach logs,
// last_error and the API), and the errors still say what they are.
func TestNumbersMasked(t *testing.T) {
	t.Parallel()
	const number = "+33612345678"
	cases := []struct {
		name      string
		script    []fakeapi.Answer
		fail      bool
		permanent bool
	}{
		{name: "400: the contact's receipt", script: []fakeapi.Answer{fakeapi.Status(400)}},
		{name: "401: the whole call's error", script: []fakeapi.Answer{fakeapi.Status(401)}, fail: true, permanent: true},
		{name: "503: the whole call's error", script: fakeapi.Repeat(fakeapi.Status(503), 5), fail: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, fk, _ := newDest(t, testKey)
			fk.Script(c.script...)
			st, err := d.Check(context.Background(), []connectors.Suppression{smsSup(1, number)})
			if c.fail {
				fixtures.PushFailed(t, err, nil, c.permanent, 0)
				if msg := err.Error(); strings.Contains(msg, number) || strings.Contains(msg, "612345678") || !strings.Contains(msg, "/v3/contacts/<phone>") {
					t.Fatalf("error %q: want the number masked in the path", msg)
				}
				return
			}
			if err != nil || len(st) != 1 || !st[0].Unknown || strings.Contains(st[0].Receipt, "612345678") || !strings.Contains(st[0].Receipt, "<phone>") {
				t.Fatalf("%v %+v: want one Unknown status, the number masked", err, st)
			}
		})
	}
}

// TestLift: the flag set false, for known contacts; an unknown contact has
// nothing to lift and is not created; repeating it is fine.
func TestLift(t *testing.T) {
	t.Parallel()
	d, fk, _ := newDest(t, testKey, brevofake.WithContacts("a@example.com", "keep@example.com"))
	fk.AddContact("", "+33612345678")
	if _, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com"), sup(2, "keep@example.com"), smsSup(3, "+33612345678")}); err != nil {
		t.Fatal(err)
	}
	in := []connectors.Suppression{sup(1, "A@example.com"), sup(2, "never@example.com"), smsSup(3, "+33612345678")}
	for round := range 2 {
		res, err := d.Lift(context.Background(), in)
		noKey(t, err, res)
		if err != nil || len(res) != 3 {
			t.Fatalf("round %d: %v %+v", round, err, res)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("round %d: %+v", round, r)
			}
		}
		if !strings.Contains(byID(res)[2].Receipt, "nothing to lift") {
			t.Fatalf("receipt %q", byID(res)[2].Receipt)
		}
		if got := strings.Join(fk.Blocklisted(), ","); got != "keep@example.com" || fk.SMSBlocklisted("+33612345678") || fk.Len() != 3 {
			t.Fatalf("round %d: %s, %d contacts", round, got, fk.Len())
		}
	}
	fk.Script(fakeapi.TooMany(brevofake.ResetHeader(3600)))
	res, err := d.Lift(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	fixtures.PushFailed(t, err, res, false, 59*time.Minute)
}

func TestNewDestination(t *testing.T) {
	t.Parallel()
	d, err := NewDestination(config.Destination{APIKey: "k"}, connectors.Deps{})
	if err != nil || d.base != DefaultBaseURL || d.MaxBatch() != MaxContacts {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := NewDestination(config.Destination{}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "api_key:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewDestination(config.Destination{APIKey: "k", BaseURL: "api.brevo.com"}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "base_url:") {
		t.Fatalf("err = %v", err)
	}
}

func TestResetSeconds(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]int64{"0": 0, "12": 12, "0.2": 1, " 3 ": 3, "99999999": 7 * 86400} {
		if got, ok := resetSeconds(v); !ok || got != want {
			t.Errorf("%q: %d %v", v, got, ok)
		}
	}
	for _, v := range []string{"", "-1", "soon", "NaN", "Inf"} {
		if _, ok := resetSeconds(v); ok {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	env := func(string) (string, bool) { return "", false }
	entry := func(extra string) []byte {
		return []byte("destinations:\n  - name: brevo-acme\n    kind: brevo\n    brand: acme\n    api_key: k\n" + extra)
	}
	c, err := config.Parse(entry("    channels: [email, sms]\n"), env)
	if err != nil || c.Destinations[0].Kind != "brevo" || len(c.Destinations[0].Channels) != 2 {
		t.Fatalf("%v %+v", err, c)
	}
	if _, err := config.Parse(entry("    message_stream: broadcast\n"), env); err == nil || !strings.Contains(err.Error(), "destinations[0].message_stream") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := config.Parse([]byte("destinations:\n  - {name: b, kind: brevo, brand: acme}\n"), env); err == nil || !strings.Contains(err.Error(), "destinations[0].api_key: is required") {
		t.Fatalf("no key: %v", err)
	}
}

// FuzzParseAnswers: Brevo's answer parsers never panic, and the indexes
// read are always within the batch.
func FuzzParseAnswers(f *testing.F) {
	for _, s := range []string{
		`{"code":"document_not_found","message":"No contact found for indexes 3,4"}`,
		`{"code":"document_not_found","message":"No contact found for indexes 11"}`,
		`{"code":"unauthorized","message":"Key not found"}`,
		`{"email":"a@example.com","id":7,"emailBlacklisted":true,"smsBlacklisted":false,"attributes":{"SMS":"33612345678"},"listIds":[]}`,
		`{"failureIds":[670206],"successIds":[74324582]}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s), 5)
	}
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		_, _, _ = ParseContact(body)
		_, _, _ = ParseError(body)
		if m, ok := ParseMultiStatus(body); !ok && (len(m.SuccessIDs) > 0 || len(m.FailureIDs) > 0) {
			t.Fatalf("not ok but ids %+v", m)
		}
		if m, ok := MissingIndexes(body, n); ok {
			for i := range m {
				if i < 0 || i >= n {
					t.Fatalf("index %d outside %d", i, n)
				}
			}
		}
	})
}
