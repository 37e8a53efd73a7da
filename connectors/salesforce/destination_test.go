package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/salesforce/salesforcefake"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fakeapi"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const (
	clientID     = "3MVG9test.consumer.key"
	clientSecret = "S3cr3t-C0nsumer-Secret-0123456789"
)

func newDest(t *testing.T, mod func(*DestinationOptions), fopts ...salesforcefake.Option) (*Destination, *salesforcefake.Fake, string) {
	t.Helper()
	fake := salesforcefake.New(append([]salesforcefake.Option{salesforcefake.WithClient(clientID, clientSecret)}, fopts...)...)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	o := &DestinationOptions{InstanceURL: srv.URL, ClientID: clientID, ClientSecret: clientSecret}
	o.Defaults()
	if mod != nil {
		mod(o)
	}
	cfg := config.Destination{Name: "salesforce-acme", Kind: Kind, Brand: "acme", Options: o}
	return fixtures.Build(t, NewDestination, cfg, connectors.Deps{HTTP: fixtures.HTTPClient()}), fake, srv.URL
}

var sup = fixtures.Suppression

func noSecret(t *testing.T, d *Destination, err error, res []connectors.Result) {
	t.Helper()
	secrets := []string{clientSecret}
	if d.token != "" {
		secrets = append(secrets, d.token)
	}
	fixtures.NoSecret(t, err, res, secrets...)
}

func byID(res []connectors.Result) map[int64]connectors.Result {
	m := map[int64]connectors.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

func TestDestinationPush(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	c1 := fake.AddContact("Noah.Petit@example.com")
	l1 := fake.AddLead("noah.petit@example.com", false)
	fake.AddLead("noah.petit@example.com", true) // converted: not touched
	c2 := fake.AddContact("o'brien@example.org")
	ctx := context.Background()
	res, err := d.Push(ctx, []connectors.Suppression{sup(1, "noah.petit@example.com"), sup(2, "O'Brien@example.org"), sup(3, "nobody@example.com"), sup(4, "NOAH.PETIT@example.com")})
	noSecret(t, d, err, res)
	if err != nil || len(res) != 4 {
		t.Fatalf("%v %+v", err, res)
	}
	got := byID(res)
	for id, want := range map[int64]string{1: "2 records updated, 0 already set", 2: "1 records updated", 3: "no Contact or Lead with this email (nothing to suppress)", 4: "2 records updated"} {
		if got[id].Err != nil || !strings.Contains(got[id].Receipt, want) {
			t.Errorf("result %d: %+v, want %q", id, got[id], want)
		}
	}
	if ids := strings.Join(fake.OptedOut(), ","); ids != strings.Join([]string{c1, l1, c2}, ",") {
		t.Fatalf("opted out %s", ids)
	}
	calls := fake.Calls()
	if len(calls) != 4 {
		t.Fatalf("calls %d", len(calls))
	}
	tok, q1, q2, patch := calls[0], calls[1], calls[2], calls[3]
	form, _ := url.ParseQuery(string(tok.Body))
	if tok.Method != "POST" || tok.Path != TokenPath || form.Get("grant_type") != "client_credentials" || form.Get("client_id") != clientID || tok.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Fatalf("token call %+v", tok)
	}
	qv, _ := url.ParseQuery(q1.RawQuery)
	if q1.Method != "GET" || q1.Path != "/services/data/v62.0/query" ||
		qv.Get("q") != `SELECT Id, Email, HasOptedOutOfEmail FROM Contact WHERE Email IN ('noah.petit@example.com', 'O\'Brien@example.org', 'nobody@example.com')` {
		t.Fatalf("query %+v %q", q1, qv.Get("q"))
	}
	if qv, _ := url.ParseQuery(q2.RawQuery); !strings.HasSuffix(qv.Get("q"), ") AND IsConverted = false") || !strings.Contains(qv.Get("q"), "FROM Lead") {
		t.Fatalf("lead query %q", qv.Get("q"))
	}
	var body struct {
		AllOrNone *bool            `json:"allOrNone"`
		Records   []map[string]any `json:"records"`
	}
	if err := json.Unmarshal(patch.Body, &body); err != nil || patch.Method != "PATCH" || patch.Path != "/services/data/v62.0/composite/sobjects" || body.AllOrNone == nil || *body.AllOrNone || len(body.Records) != 3 {
		t.Fatalf("patch %+v %s", patch, patch.Body)
	}
	r0 := body.Records[0]
	if r0["attributes"].(map[string]any)["type"] != "Contact" || r0["id"] != c1 || r0["HasOptedOutOfEmail"] != true || len(r0) != 3 {
		t.Fatalf("record %v", r0)
	}
	// Idempotent repeat: queries only, nothing written, one token.
	fake.ResetCalls()
	res, err = d.Push(ctx, []connectors.Suppression{sup(1, "noah.petit@example.com")})
	if err != nil || res[0].Err != nil || !strings.Contains(res[0].Receipt, "0 records updated, 2 already set") {
		t.Fatalf("repeat %v %+v", err, res)
	}
	for _, c := range fake.Calls() {
		if c.Method != "GET" {
			t.Fatalf("repeat call %+v", c)
		}
	}
	if fake.TokensIssued() != 1 {
		t.Fatalf("tokens %d", fake.TokensIssued())
	}
}

func TestDestinationPushInvalid(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	sms := sup(3, "a@example.com")
	sms.Channel = consent.ChannelSMS
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "not an address"), sup(2, ""), sms})
	if err != nil || len(res) != 3 || fake.CallCount() != 0 {
		t.Fatalf("%v %+v %d", err, res, fake.CallCount())
	}
	for _, r := range res {
		if !errors.Is(r.Err, connectors.ErrPermanent) {
			t.Fatalf("%+v", r)
		}
	}
}

func TestDestinationPushRecordErrors(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	locked := fake.AddContact("locked@example.com")
	fake.Lock(locked, true)
	ruled := fake.AddContact("ruled@example.com")
	fake.Refuse(ruled, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Opt-out blocked for ruled@example.com")
	fake.AddContact("ok@example.com")
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "locked@example.com"), sup(2, "ruled@example.com"), sup(3, "ok@example.com")})
	noSecret(t, d, err, res)
	if err != nil {
		t.Fatal(err)
	}
	got := byID(res)
	if got[1].Err == nil || errors.Is(got[1].Err, connectors.ErrPermanent) || !strings.Contains(got[1].Err.Error(), "UNABLE_TO_LOCK_ROW") {
		t.Fatalf("locked: %+v", got[1])
	}
	if !errors.Is(got[2].Err, connectors.ErrPermanent) || !strings.Contains(got[2].Err.Error(), "FIELD_CUSTOM_VALIDATION_EXCEPTION") || strings.Contains(got[2].Err.Error(), "ruled@example.com") {
		t.Fatalf("ruled: %+v", got[2])
	}
	if got[3].Err != nil {
		t.Fatalf("ok: %+v", got[3])
	}
	// The lock is released: the retry succeeds.
	fake.Lock(locked, false)
	res, err = d.Push(context.Background(), []connectors.Suppression{sup(1, "locked@example.com")})
	if err != nil || res[0].Err != nil {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestDestinationChunks(t *testing.T) {
	d, fake, inst := newDest(t, nil, salesforcefake.WithPageSize(50))
	var batch []connectors.Suppression
	for i := range 150 {
		e := fmt.Sprintf("person.with.a.rather.long.address.that.needs.several.queries.%03d@subdomain.department.example.com", i)
		fake.AddContact(e)
		fake.AddLead(e, false)
		batch = append(batch, sup(int64(i), e))
	}
	res, err := d.Push(context.Background(), batch)
	if err != nil || len(res) != 150 {
		t.Fatalf("%v %d", err, len(res))
	}
	for _, r := range res {
		if r.Err != nil || !strings.Contains(r.Receipt, "2 records updated") {
			t.Fatalf("%+v", r)
		}
	}
	var queries, pages, patches []int
	for _, c := range fake.Calls() {
		switch {
		case c.Method == "PATCH":
			var b struct{ Records []any }
			_ = json.Unmarshal(c.Body, &b)
			patches = append(patches, len(b.Records))
		case strings.HasSuffix(c.Path, "/query"):
			if len(c.Path)+len(c.RawQuery) > maxQueryURL {
				t.Fatalf("query URL of %d bytes", len(c.Path)+len(c.RawQuery))
			}
			queries = append(queries, len(c.RawQuery))
		case strings.Contains(c.Path, "/query/"):
			pages = append(pages, 1)
		}
	}
	if len(queries) < 4 || len(pages) == 0 || len(patches) != 2 || patches[0] != MaxRecords || patches[1] != 100 {
		t.Fatalf("queries %v pages %v patches %v", queries, pages, patches)
	}
	if len(fake.OptedOut()) != 300 {
		t.Fatal("count")
	}
	// The fake refuses an oversized collection the way Salesforce does.
	tok, err := d.accessToken(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]map[string]any, MaxRecords+1)
	for i := range recs {
		recs[i] = map[string]any{"attributes": map[string]string{"type": "Contact"}, "id": "003x", "HasOptedOutOfEmail": true}
	}
	payload, _ := json.Marshal(map[string]any{"allOrNone": false, "records": recs})
	req, _ := http.NewRequest(http.MethodPatch, inst+"/services/data/v62.0/composite/sobjects", bytes.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestDestinationToken(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	fake.AddContact("a@example.com")
	ctx := context.Background()
	if _, err := d.Check(ctx, []connectors.Suppression{sup(1, "a@example.com")}); err != nil {
		t.Fatal(err)
	}
	// Session expired: one new token, the call goes through.
	fake.ExpireTokens()
	res, err := d.Push(ctx, []connectors.Suppression{sup(1, "a@example.com")})
	noSecret(t, d, err, res)
	if err != nil || res[0].Err != nil || fake.TokensIssued() != 2 {
		t.Fatalf("%v %+v tokens %d", err, res, fake.TokensIssued())
	}
	// 401 on the new token too: permanent, no loop.
	fake.ResetCalls()
	// The query is refused, the token endpoint issues a token the org
	// does not know, and the retried query is refused again.
	fake.Script(fakeapi.Status(401), fakeapi.Answer{Status: 200, Body: `{"access_token":"00Dbogus!token","token_type":"Bearer","instance_url":"http://x"}`})
	_, err = d.Check(ctx, []connectors.Suppression{sup(1, "a@example.com")})
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "INVALID_SESSION_ID") || fake.CallCount() != 3 {
		t.Fatalf("err %v calls %d", err, fake.CallCount())
	}
	for _, c := range fake.Calls() {
		if c.Header.Get("Authorization") != "" {
			t.Fatal("recorded a credential")
		}
	}
}

func TestDestinationWrongSecret(t *testing.T) {
	d, fake, _ := newDest(t, func(o *DestinationOptions) { o.ClientSecret = "wrong-" + clientSecret })
	res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
	fixtures.NoSecret(t, err, res, clientSecret)
	if !errors.Is(err, connectors.ErrPermanent) || !strings.Contains(err.Error(), "invalid_client") || fake.CallCount() != 1 {
		t.Fatalf("err = %v, calls %d", err, fake.CallCount())
	}
}

func TestDestinationFailures(t *testing.T) {
	cases := []struct {
		name      string
		script    []fakeapi.Answer
		ok        bool
		permanent bool
		retryMin  time.Duration
	}{
		{"403 REQUEST_LIMIT_EXCEEDED", []fakeapi.Answer{salesforcefake.LimitExceeded()}, false, false, 59 * time.Minute},
		{"503 then ok", []fakeapi.Answer{fakeapi.Status(503)}, true, false, 0},
		{"503 until retries run out", fakeapi.Repeat(fakeapi.Status(503), 3), false, false, 0},
		{"429 Retry-After long", []fakeapi.Answer{fakeapi.RetryAfter(600)}, false, false, 9 * time.Minute},
		{"400 malformed", []fakeapi.Answer{fakeapi.Status(400)}, false, true, 0},
		{"403 insufficient access", []fakeapi.Answer{{Status: 403, Body: salesforcefake.ErrorBody("INSUFFICIENT_ACCESS", "no access to a@example.com")}}, false, true, 0},
		{"200 unreadable", []fakeapi.Answer{{Status: 200, Body: "<html>"}}, false, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, fake, _ := newDest(t, nil)
			fake.AddContact("a@example.com")
			if _, err := d.accessToken(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
			fake.Script(c.script...)
			res, err := d.Push(context.Background(), []connectors.Suppression{sup(1, "a@example.com")})
			noSecret(t, d, err, res)
			if c.ok {
				if err != nil || res[0].Err != nil {
					t.Fatalf("%v %+v", err, res)
				}
				return
			}
			fixtures.PushFailed(t, err, res, c.permanent, c.retryMin)
			if strings.Contains(err.Error(), "a@example.com") {
				t.Fatalf("address in error: %v", err)
			}
			if len(fake.OptedOut()) != 0 {
				t.Fatal("state changed")
			}
		})
	}
}

func TestDestinationCheckLift(t *testing.T) {
	d, fake, _ := newDest(t, nil)
	fake.AddContact("a@example.com")
	fake.AddContact("b@example.com")
	fake.AddLead("b@example.com", false)
	ctx := context.Background()
	if _, err := d.Push(ctx, []connectors.Suppression{sup(1, "a@example.com"), sup(2, "b@example.com")}); err != nil {
		t.Fatal(err)
	}
	fake.AddContact("b@example.com") // a new record, not opted out
	batch := []connectors.Suppression{sup(1, "A@example.com"), sup(2, "b@example.com"), sup(3, "nobody@example.com"), sup(4, "")}
	check := func(want map[int64][2]bool) {
		t.Helper()
		fake.ResetCalls()
		sts, err := d.Check(ctx, batch)
		if err != nil || len(sts) != len(batch) {
			t.Fatalf("%v %+v", err, sts)
		}
		for _, s := range sts {
			if w := want[s.ID]; s.Suppressed != w[0] || s.Unknown != w[1] || s.Receipt == "" {
				t.Errorf("status %+v, want %v", s, w)
			}
		}
		for _, c := range fake.Calls() {
			if c.Method != "GET" {
				t.Fatalf("check wrote: %+v", c)
			}
		}
	}
	check(map[int64][2]bool{1: {true, false}, 2: {false, false}, 3: {false, true}, 4: {false, true}})
	fake.Forget("a@example.com") // drift
	check(map[int64][2]bool{1: {false, false}, 2: {false, false}, 3: {false, true}, 4: {false, true}})
	if _, err := d.Push(ctx, batch[:2]); err != nil {
		t.Fatal(err)
	}
	check(map[int64][2]bool{1: {true, false}, 2: {true, false}, 3: {false, true}, 4: {false, true}})
	for range 2 { // safe to repeat
		res, err := d.Lift(ctx, batch)
		noSecret(t, d, err, res)
		if err != nil || len(res) != 4 {
			t.Fatalf("%v %+v", err, res)
		}
		got := byID(res)
		if got[1].Err != nil || got[2].Err != nil || got[3].Err != nil || !strings.Contains(got[3].Receipt, "nothing to lift") || !errors.Is(got[4].Err, connectors.ErrPermanent) {
			t.Fatalf("lift %+v", res)
		}
		if errors.Is(got[1].Err, connectors.ErrLiftRefused) {
			t.Fatal("refused")
		}
	}
	if len(fake.OptedOut()) != 0 {
		t.Fatalf("still opted out %v", fake.OptedOut())
	}
}

func TestQuoteSOQL(t *testing.T) {
	for _, e := range []string{`a@b.co`, `o'brien@b.co`, `"q\u0020"@b.co`, `back\slash@b.co`, "t\tab@b.co"} {
		q := Query("Contact", "F", []string{e, "x@y.co"})
		_, _, got, _, ok := salesforcefake.ParseSOQL(q)
		if !ok || len(got) != 2 || got[0] != e {
			t.Errorf("%q: %q → %q %v", e, q, got, ok)
		}
	}
	if got := QuoteSOQL(`it's "x" \ y`); got != `'it\'s \"x\" \\ y'` {
		t.Fatal(got)
	}
}

func TestDestinationConfig(t *testing.T) {
	entry := func(opts string) []byte {
		return []byte("destinations:\n  - name: sf-acme\n    kind: salesforce\n    brand: acme\n" + opts)
	}
	good := "    instance_url: https://acme.my.salesforce.com\n    client_id: id\n    client_secret: s\n"
	lookup := func(string) (string, bool) { return "", false }
	c, err := config.Parse(entry(good), lookup)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := c.Destinations[0].Options.(*DestinationOptions)
	if !ok || strings.Join(o.Objects, ",") != "Contact,Lead" || o.Field != DefaultField || o.APIVersion != DefaultAPIVersion {
		t.Fatalf("options %#v", c.Destinations[0].Options)
	}
	d, err := NewDestination(c.Destinations[0], connectors.Deps{})
	if err != nil || d.data != "https://acme.my.salesforce.com/services/data/v62.0" || d.MaxBatch() != MaxAddresses {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := config.ParseWith(entry("    instance_url: https://acme.my.salesforce.com\n"), lookup, config.Options{AllowMissingSecrets: true}); err != nil {
		t.Fatalf("read-only: %v", err)
	}
	for _, tc := range []struct{ opts, want string }{
		{"    client_id: id\n    client_secret: s\n", "destinations[0].instance_url: is required"},
		{strings.Replace(good, "https://acme", "http://acme", 1), "destinations[0].instance_url: must be an https:// URL"},
		{strings.Replace(good, "salesforce.com", "salesforce.com/services", 1), "destinations[0].instance_url: must be an https:// URL"},
		{"    instance_url: https://acme.my.salesforce.com\n    client_id: id\n", "destinations[0].client_secret: is required"},
		{good + "    objects: [Contact, \"Lead; DROP\"]\n", "destinations[0].objects[1]: "},
		{good + "    field: \"x,y\"\n", "destinations[0].field: "},
		{good + "    api_version: \"62\"\n", "destinations[0].api_version: must look like"},
		{good + "    domain: x\n", "destinations[0].domain"},
	} {
		if _, err := config.Parse(entry(tc.opts), lookup); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := NewDestination(config.Destination{}, connectors.Deps{}); err == nil || !strings.Contains(err.Error(), "instance_url:") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseAnswers(f *testing.F) {
	for _, s := range []string{
		`{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Contact","url":"/services/data/v62.0/sobjects/Contact/003xx"},"Id":"003xx","Email":"a@b.co","HasOptedOutOfEmail":false}]}`,
		`{"totalSize":3000,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gxx-2000","records":[]}`,
		`[{"id":"003xx","success":true,"errors":[]},{"success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]}]`,
		`[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`,
		`{"error":"invalid_client","error_description":"invalid client credentials"}`,
		`{"records":[{"Id":null,"HasOptedOutOfEmail":"yes"}]}`, `[]`, ``, `o'brien@b.co`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _, _ = ParseQuery(body, "Contact", DefaultField)
		_, _ = ParseSaveResults(body)
		_ = ErrorCodes(body)
		_, _, _, _, _ = salesforcefake.ParseSOQL(string(body))
		// Quoting round-trips any valid UTF-8 text.
		if s := string(body); strings.ToValidUTF8(s, "") == s {
			if _, _, got, _, ok := salesforcefake.ParseSOQL(Query("Contact", "F", []string{s})); !ok || got[0] != s {
				t.Fatalf("round trip of %q: %q %v", s, got, ok)
			}
		}
	})
}

// TestNoRecordThenCreated: an address with no record is sent ("nothing to
// suppress") and reads back Unknown, never verified; a record created
// later for it is not opted out by that push: the next read-back (a drift
// check) finds it not suppressed, and a push then opts it out.
func TestNoRecordThenCreated(t *testing.T) {
	t.Parallel()
	d, fake, _ := newDest(t, nil)
	ctx := context.Background()
	res, err := d.Push(ctx, []connectors.Suppression{sup(1, "later@example.com")})
	if err != nil || len(res) != 1 || res[0].Err != nil || !strings.Contains(res[0].Receipt, "nothing to suppress") {
		t.Fatalf("%v %+v", err, res)
	}
	st, err := d.Check(ctx, []connectors.Suppression{sup(1, "later@example.com")})
	if err != nil || len(st) != 1 || st[0].Suppressed || !st[0].Unknown {
		t.Fatalf("no record: %v %+v", err, st)
	}
	fake.AddContact("later@example.com") // created later, not opted out
	st, err = d.Check(ctx, []connectors.Suppression{sup(1, "later@example.com")})
	if err != nil || len(st) != 1 || st[0].Suppressed || st[0].Unknown {
		t.Fatalf("record created later: %v %+v", err, st)
	}
	if res, err = d.Push(ctx, []connectors.Suppression{sup(1, "later@example.com")}); err != nil || res[0].Err != nil {
		t.Fatalf("%v %+v", err, res)
	}
	st, err = d.Check(ctx, []connectors.Suppression{sup(1, "later@example.com")})
	if err != nil || len(st) != 1 || !st[0].Suppressed {
		t.Fatalf("pushed again: %v %+v", err, st)
	}
}
