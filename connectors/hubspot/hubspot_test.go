package hubspot

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
	"github.com/consentsync/consentsync/internal/sandbox"
)

const secret = "hs-client-secret-7f3a"

func fixture(t testing.TB, sandboxURL string) (fixtures.Fixture, config.Source) {
	t.Helper()
	if sandboxURL == "" {
		sandboxURL = "http://127.0.0.1:1"
	}
	return fixtures.Load(t, "hubspot-optout-batch", map[string]string{"SANDBOX_URL": sandboxURL})
}

func testHTTP() connectors.Deps {
	return connectors.Deps{HTTP: connectors.NewHTTPClient(connectors.HTTPOptions{RetryMax: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond, Timeout: 5 * time.Second})}
}

// withOptions returns cfg with a copy of its SourceOptions changed by mod
// (cfg itself, and the copies sharing its options, are left alone).
func withOptions(cfg config.Source, mod func(*SourceOptions)) config.Source {
	o := *config.OptionsOf[SourceOptions](cfg.Options)
	mod(&o)
	cfg.Options = &o
	return cfg
}

func newSource(t testing.TB, cfg config.Source, deps connectors.Deps) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, cfg, deps)
}

// fake is the HubSpot batch read API of internal/sandbox (the fake the
// e2e tests and the demo use) on a test server.
type fake struct {
	*sandbox.Sandbox
	URL string
}

func newFake(t testing.TB, opts ...sandbox.Option) *fake {
	t.Helper()
	sb := sandbox.New(opts...)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return &fake{Sandbox: sb, URL: srv.URL}
}

// fixtureFake serves the fixture's hubspot_contacts.
func fixtureFake(t testing.TB, f fixtures.Fixture) *fake {
	return newFake(t, sandbox.WithHubSpotContacts(f.Sandbox.HubSpotContacts))
}

// count is how many calls asked for contact id.
func (f *fake) count(id string) int {
	n := 0
	for _, c := range f.Calls(sandbox.HubSpot) {
		for _, x := range c.ContactIDs {
			if x == id {
				n++
			}
		}
	}
	return n
}

// calls is the number of calls received.
func (f *fake) calls() int { return f.CallCount(sandbox.HubSpot) }

func TestFixture(t *testing.T) {
	f, _ := fixture(t, "")
	sb := fixtureFake(t, f)
	_, cfg := fixture(t, sb.URL)
	s := newSource(t, cfg, testHTTP())
	r := f.ConnectorRequest()
	if err := s.Verify(r, f.Now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	b, err := s.Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 2 || len(b.Skipped) != 0 {
		t.Fatalf("signals %+v skipped %v", b.Signals, b.Skipped)
	}
	for _, sig := range b.Signals {
		if sig.Subject.Email != "" || !strings.HasPrefix(sig.Subject.ExternalID, "hubspot:contact:") {
			t.Errorf("parse must name contacts by id only: %+v", sig.Subject)
		}
	}
	if got := b.Signals[1].Evidence.EventID; got != "9001:3101:502" {
		t.Errorf("event id %q", got)
	}
	keys := []string{"9001:3101:501", "9001:3101:502"}
	sort.Strings(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	if b.DedupKey != hex.EncodeToString(sum[:]) {
		t.Errorf("dedup %q", b.DedupKey)
	}

	if len(b.Activities) != 0 || len(b.Profiles) != 0 {
		t.Errorf("activities %+v profiles %+v", b.Activities, b.Profiles)
	}
	again, err := s.Parse(r)
	if err != nil {
		t.Fatal(err)
	}

	skipped, err := s.Resolve(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped %v", skipped)
	}
	f.Check(t, b)
	if b.Signals[0].Subject.Email != "Lena.Martin@Example.com" || b.Signals[0].Subject.ExternalID != "hubspot:contact:501" {
		t.Errorf("email must be kept as HubSpot spells it, with the id: %+v", b.Signals[0].Subject)
	}

	// Cache hit: no second call.
	if _, err := s.Resolve(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	if sb.count("501") != 1 || sb.count("502") != 1 {
		t.Errorf("calls: 501=%d 502=%d, want 1 each", sb.count("501"), sb.count("502"))
	}
}

func TestSignReproducesFixture(t *testing.T) {
	f, _ := fixture(t, "")
	ms, _ := strconv.ParseInt(f.Request.Headers[TimestampHeader], 10, 64)
	h := Sign(secret, "POST", "https://hooks.example.com"+f.Request.Path, f.Body, time.UnixMilli(ms))
	if h[SignatureV3Header] != f.Request.Headers[SignatureV3Header] || h[TimestampHeader] != f.Request.Headers[TimestampHeader] {
		t.Errorf("Sign = %v, fixture has %v", h, f.Request.Headers)
	}
}

// v3 computes the documented scheme independently of the package.
func v3(sec, method, uri string, body []byte, ts string) string {
	m := hmac.New(sha256.New, []byte(sec))
	m.Write([]byte(method + uri))
	m.Write(body)
	m.Write([]byte(ts))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func plain(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "")))
	return hex.EncodeToString(sum[:])
}

func TestVerify(t *testing.T) {
	f, cfg := fixture(t, "")
	body := f.Body
	now := f.Now
	ts := f.Request.Headers[TimestampHeader]
	uri := "https://hooks.example.com/webhooks/hubspot-acme"
	tampered := append([]byte(nil), body...)
	tampered[20] ^= 1
	staleTS := strconv.FormatInt(now.Add(-6*time.Minute).UnixMilli(), 10)
	futureTS := strconv.FormatInt(now.Add(6*time.Minute).UnixMilli(), 10)
	rotated := cfg
	rotated.Secrets = []string{"hs-new-secret", secret}
	legacy := withOptions(cfg, func(o *SourceOptions) { o.LegacySignatures = true })
	legacyRotated := withOptions(rotated, func(o *SourceOptions) { o.LegacySignatures = true })
	slash := withOptions(cfg, func(o *SourceOptions) { o.PublicURL = "https://hooks.example.com/" })

	tests := []struct {
		name     string
		cfg      config.Source
		query    string
		headers  map[string]string
		body     []byte
		ok, sale bool
	}{
		{"v3", cfg, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, ts), TimestampHeader: ts}, body, true, false},
		{"v3 public url with slash", slash, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, ts), TimestampHeader: ts}, body, true, false},
		{"v3 with query, decoded chars", cfg, "a=b%3Ac&d=%40x", map[string]string{SignatureV3Header: v3(secret, "POST", uri+"?a=b:c&d=@x", body, ts), TimestampHeader: ts}, body, true, false},
		{"v3 tampered body", cfg, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, ts), TimestampHeader: ts}, tampered, false, false},
		{"v3 wrong secret", cfg, "", map[string]string{SignatureV3Header: v3("nope", "POST", uri, body, ts), TimestampHeader: ts}, body, false, false},
		{"v3 local url signed", cfg, "", map[string]string{SignatureV3Header: v3(secret, "POST", "http://localhost:8080/webhooks/hubspot-acme", body, ts), TimestampHeader: ts}, body, false, false},
		{"v3 stale", cfg, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, staleTS), TimestampHeader: staleTS}, body, false, true},
		{"v3 future", cfg, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, futureTS), TimestampHeader: futureTS}, body, false, true},
		{"v3 timestamp in seconds", cfg, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, ts[:10]), TimestampHeader: ts[:10]}, body, false, true},
		{"v3 missing timestamp", cfg, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, ts)}, body, false, false},
		{"v3 rotation", rotated, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, ts), TimestampHeader: ts}, body, true, false},
		{"v3 wins over a valid v1", legacy, "", map[string]string{SignatureV3Header: "AAAA", TimestampHeader: ts, SignatureHeader: plain(secret, string(body)), VersionHeader: "v1"}, body, false, false},
		{"stale v3 with a valid v1", legacy, "", map[string]string{SignatureV3Header: v3(secret, "POST", uri, body, staleTS), TimestampHeader: staleTS, SignatureHeader: plain(secret, string(body)), VersionHeader: "v1"}, body, false, true},
		// v1/v2 sign no timestamp: refused unless legacy_signatures is on.
		{"v2 valid, legacy off", cfg, "", map[string]string{SignatureHeader: plain(secret, "POST", uri, string(body)), VersionHeader: "v2"}, body, false, false},
		{"v1 valid, legacy off", cfg, "", map[string]string{SignatureHeader: plain(secret, string(body)), VersionHeader: "v1"}, body, false, false},
		{"v1 valid, legacy off, rotation", rotated, "", map[string]string{SignatureHeader: plain(secret, string(body)), VersionHeader: "v1"}, body, false, false},
		{"v2", legacy, "", map[string]string{SignatureHeader: plain(secret, "POST", uri, string(body)), VersionHeader: "v2"}, body, true, false},
		{"v2 tampered", legacy, "", map[string]string{SignatureHeader: plain(secret, "POST", uri, string(body)), VersionHeader: "v2"}, tampered, false, false},
		{"v2 rotation", legacyRotated, "", map[string]string{SignatureHeader: plain(secret, "POST", uri, string(body)), VersionHeader: "v2"}, body, true, false},
		{"v1", legacy, "", map[string]string{SignatureHeader: plain(secret, string(body)), VersionHeader: "v1"}, body, true, false},
		{"v1 wrong secret", legacy, "", map[string]string{SignatureHeader: plain("x", string(body)), VersionHeader: "v1"}, body, false, false},
		{"v1 without version", legacy, "", map[string]string{SignatureHeader: plain(secret, string(body))}, body, false, false},
		{"v1 signature labelled v2", legacy, "", map[string]string{SignatureHeader: plain(secret, string(body)), VersionHeader: "v2"}, body, false, false},
		{"nothing, legacy on", legacy, "", nil, body, false, false},
		{"nothing", cfg, "", nil, body, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, tt.cfg, connectors.Deps{})
			r := fixtures.Post("/webhooks/hubspot-acme", tt.headers, tt.body)
			r.RawQuery = tt.query
			err := s.Verify(r, now)
			fixtures.VerifyErr(t, err, tt.ok, tt.sale, secret)
		})
	}
}

func TestParseCases(t *testing.T) {
	_, cfg := fixture(t, "")
	s := newSource(t, cfg, connectors.Deps{})
	ev := func(extra string) string {
		return `{"eventId":1,"portalId":9,"objectId":7,"occurredAt":1763632800000,` + extra + `}`
	}
	tests := []struct {
		name     string
		body     string
		signals  int
		erasures int
		skipped  int
		dedup    bool
		err      bool
		profiles int
	}{
		{"lifecycle customer", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"`) + `]`, 0, 0, 0, true, false, 1},
		{"lifecycle Customer, spaced", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":" Customer "`) + `]`, 0, 0, 0, true, false, 1},
		{"lifecycle object event", `[` + ev(`"subscriptionType":"object.propertyChange","objectTypeId":"0-1","propertyName":"lifecyclestage","propertyValue":"customer"`) + `]`, 0, 0, 0, true, false, 1},
		{"lifecycle lead", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"lead"`) + `]`, 0, 0, 1, true, false, 0},
		{"lifecycle emptied", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":""`) + `]`, 0, 0, 1, true, false, 0},
		{"lifecycle wrong type", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":{"a":1}`) + `]`, 0, 0, 1, true, false, 0},
		{"lifecycle customer without time", `[{"eventId":1,"portalId":9,"objectId":7,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"}]`, 0, 0, 1, true, false, 0},
		{"lifecycle customer, time past year 9999", `[{"eventId":1,"portalId":9,"objectId":7,"occurredAt":9007199254740992,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"}]`, 0, 0, 1, true, false, 0},
		{"optout and customer in one batch", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"`) + `,` +
			`{"eventId":2,"portalId":9,"objectId":7,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"}]`, 1, 0, 0, true, false, 1},
		{"optout true", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"`) + `]`, 1, 0, 0, true, false, 0},
		{"optout TRUE as bool", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":true`) + `]`, 1, 0, 0, true, false, 0},
		{"optout false is no opt-in", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"false"`) + `]`, 0, 0, 1, true, false, 0},
		{"optout odd value", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"maybe"`) + `]`, 0, 0, 1, true, false, 0},
		{"other property", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"firstname","propertyValue":"Lena"`) + `]`, 0, 0, 1, true, false, 0},
		{"object.propertyChange contact", `[` + ev(`"subscriptionType":"object.propertyChange","objectTypeId":"0-1","propertyName":"hs_email_optout","propertyValue":"true"`) + `]`, 1, 0, 0, true, false, 0},
		{"object.propertyChange company", `[` + ev(`"subscriptionType":"object.propertyChange","objectTypeId":"0-2","propertyName":"hs_email_optout","propertyValue":"true"`) + `]`, 0, 0, 1, true, false, 0},
		{"privacy deletion", `[` + ev(`"subscriptionType":"contact.privacyDeletion"`) + `]`, 0, 1, 0, true, false, 0},
		{"creation skipped", `[` + ev(`"subscriptionType":"contact.creation"`) + `]`, 0, 0, 1, true, false, 0},
		{"ids as strings", `[{"eventId":"1","portalId":"9","objectId":"7","occurredAt":"1763632800000","subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 1, 0, 0, true, false, 0},
		{"no objectId", `[{"eventId":1,"portalId":9,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 0, 0, 1, false, false, 0},
		{"no occurredAt", `[{"eventId":1,"portalId":9,"objectId":7,"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 0, 0, 1, true, false, 0},
		{"huge numbers", `[{"eventId":1e999,"portalId":99999999999999999999999999,"objectId":-7,"occurredAt":1e308,"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 0, 0, 1, false, false, 0},
		{"wrong types", `[{"eventId":{},"portalId":[],"objectId":true,"occurredAt":"soon","subscriptionType":5,"propertyName":null}]`, 0, 0, 1, false, false, 0},
		{"items not objects", `[1,"x",null,[]]`, 0, 0, 4, false, false, 0},
		{"single object", ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"`), 1, 0, 0, true, false, 0},
		{"NUL in strings", `[` + ev(`"subscriptionType":"contact.propertyChange\u0000","propertyName":"hs_email_optout"`) + `]`, 0, 0, 1, true, false, 0},
		{"invalid UTF-8", "[" + ev("\"subscriptionType\":\"contact.\xffpropertyChange\"") + "]", 0, 0, 1, true, false, 0},
		{"empty array", `[]`, 0, 0, 1, false, false, 0},
		{"empty body", ``, 0, 0, 0, false, true, 0},
		{"null", `null`, 0, 0, 0, false, true, 0},
		{"string", `"x"`, 0, 0, 0, false, true, 0},
		{"truncated", `[{"eventId":1`, 0, 0, 0, false, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, &connectors.Request{Body: []byte(tt.body)}, tt.err)
			if b == nil {
				return
			}
			if len(b.Signals) != tt.signals || len(b.Erasures) != tt.erasures || len(b.Skipped) != tt.skipped || (b.DedupKey != "") != tt.dedup ||
				len(b.Profiles) != tt.profiles || len(b.Activities) != 0 {
				t.Fatalf("signals %+v erasures %+v profiles %+v skipped %q dedup %q", b.Signals, b.Erasures, b.Profiles, b.Skipped, b.DedupKey)
			}
			for _, p := range b.Profiles {
				want := consent.ProfileFact{Subject: consent.Subject{ExternalID: "hubspot:contact:7"}, Brand: "acme", Profile: consent.ProfileCustomer,
					OccurredAt: time.UnixMilli(1763632800000).UTC(), Source: "hubspot-acme"}
				if p != want || p.OccurredAt.Location() != time.UTC {
					t.Errorf("profile %+v, want %+v", p, want)
				}
			}
			for _, r := range b.Skipped {
				if strings.Contains(r, "@") {
					t.Errorf("skip reason carries personal data: %q", r)
				}
			}
			for _, sig := range b.Signals {
				if sig.Subject.ExternalID != "hubspot:contact:7" || sig.Status != consent.StatusWithdrawn || sig.Purpose != consent.PurposeMarketing ||
					sig.Channel != consent.ChannelEmail || sig.Brand != "acme" || sig.Source != "hubspot-acme" ||
					!sig.OccurredAt.Equal(time.UnixMilli(1763632800000)) || sig.OccurredAt.Location() != time.UTC {
					t.Errorf("signal %+v", sig)
				}
				if err := sig.Validate(); err != nil {
					t.Error(err)
				}
			}
			for _, e := range b.Erasures {
				if e.ExternalID != "hubspot:contact:7" {
					t.Errorf("erasure %+v", e)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	f, _ := fixture(t, "")
	sb := fixtureFake(t, f)
	_, cfg := fixture(t, sb.URL)
	now := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	deps := testHTTP()
	deps.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	s := newSource(t, cfg, deps)
	sub := func(ext, email string) consent.Subject { return consent.Subject{ExternalID: ext, Email: email} }
	sig := func(ext, email string) consent.Signal {
		return consent.Signal{Subject: sub(ext, email), Channel: consent.ChannelEmail, Brand: "acme",
			Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: now, Source: "hubspot-acme"}
	}
	profile := func(ext string) consent.ProfileFact {
		return consent.ProfileFact{Subject: sub(ext, ""), Brand: "acme", Profile: consent.ProfileCustomer, OccurredAt: now, Source: "hubspot-acme"}
	}
	activity := func(ext string) consent.Activity {
		return consent.Activity{Subject: sub(ext, ""), Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityClick, OccurredAt: now, Source: "hubspot-acme"}
	}
	batch := func() *connectors.Batch {
		return &connectors.Batch{
			DedupKey: "k",
			Signals: []consent.Signal{
				sig("hubspot:contact:501", ""),
				sig("hubspot:contact:999", ""), // gone
				sig("hubspot:contact:501", ""), // same contact twice: one call
				sig("", "already@example.com"), // passes through
				sig("hubspot:contact:502", "known@example.com"),
			},
			Activities: []consent.Activity{activity("hubspot:contact:999"), activity("hubspot:contact:502")},
			Profiles:   []consent.ProfileFact{profile("hubspot:contact:502"), profile("hubspot:contact:999"), profile("hubspot:contact:501")},
			Erasures:   []consent.Subject{sub("hubspot:contact:999", "")},
			Skipped:    []string{"item 9: parse note"},
		}
	}

	tests := []struct {
		name       string
		batch      *connectors.Batch
		signals    []consent.Subject
		activities []consent.Subject
		profiles   []consent.Subject
		skipped    []string
	}{
		{
			name:       "signals, activities and profiles",
			batch:      batch(),
			signals:    []consent.Subject{sub("hubspot:contact:501", "Lena.Martin@Example.com"), sub("hubspot:contact:501", "Lena.Martin@Example.com"), sub("", "already@example.com"), sub("hubspot:contact:502", "known@example.com")},
			activities: []consent.Subject{sub("hubspot:contact:502", "paul.durand@example.org")},
			profiles:   []consent.Subject{sub("hubspot:contact:502", "paul.durand@example.org"), sub("hubspot:contact:501", "Lena.Martin@Example.com")},
			skipped:    []string{"signal 2: contact gone at HubSpot (404)", "activity 1: contact gone at HubSpot (404)", "profile 2: contact gone at HubSpot (404)"},
		},
		{
			name:  "empty batch",
			batch: &connectors.Batch{},
		},
		{
			name:     "profiles only",
			batch:    &connectors.Batch{Profiles: []consent.ProfileFact{profile("hubspot:contact:501")}},
			profiles: []consent.Subject{sub("hubspot:contact:501", "Lena.Martin@Example.com")},
		},
		{
			name:    "not a HubSpot id: left alone",
			batch:   &connectors.Batch{Signals: []consent.Signal{sig("salesforce:contact:1", ""), sig("hubspot:contact:abc", "")}},
			signals: []consent.Subject{sub("salesforce:contact:1", ""), sub("hubspot:contact:abc", "")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.batch
			skipped, err := s.Resolve(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(skipped, "|") != strings.Join(tt.skipped, "|") {
				t.Errorf("skipped %q, want %q", skipped, tt.skipped)
			}
			check := func(kind string, got, want []consent.Subject) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: got %+v, want %+v", kind, got, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Errorf("%s %d: got %+v, want %+v", kind, i, got[i], want[i])
					}
				}
			}
			var gs, ga, gp []consent.Subject
			for _, x := range b.Signals {
				gs = append(gs, x.Subject)
			}
			for _, x := range b.Activities {
				ga = append(ga, x.Subject)
				if x.Kind != consent.ActivityClick || x.Source != "hubspot-acme" {
					t.Errorf("activity changed: %+v", x)
				}
			}
			for _, x := range b.Profiles {
				gp = append(gp, x.Subject)
				if x.Profile != consent.ProfileCustomer || x.Brand != "acme" {
					t.Errorf("profile changed: %+v", x)
				}
			}
			check("signals", gs, tt.signals)
			check("activities", ga, tt.activities)
			check("profiles", gp, tt.profiles)
			if strings.Contains(strings.Join(skipped, " "), "@") {
				t.Errorf("skipped reasons carry personal data: %q", skipped)
			}
		})
	}

	// The first case asked each contact once, whatever the number of items,
	// and erasures were not looked up (999 is asked for its signal).
	if sb.count("501") != 1 || sb.count("502") != 1 || sb.count("999") != 1 || sb.calls() != 1 {
		t.Errorf("calls %+v", sb.Calls(sandbox.HubSpot))
	}
	b := batch()
	if _, err := s.Resolve(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if b.Erasures[0] != sub("hubspot:contact:999", "") || b.DedupKey != "k" || len(b.Skipped) != 1 {
		t.Errorf("erasures, dedup key or parse notes changed: %+v", b)
	}
	if sb.count("501") != 1 || sb.count("502") != 1 || sb.count("999") != 2 {
		t.Errorf("cache not used (a 404 is not cached): %+v", sb.Calls(sandbox.HubSpot))
	}

	// Within the TTL: cached. After it: fetched again.
	one := func() *connectors.Batch {
		return &connectors.Batch{Signals: []consent.Signal{sig("hubspot:contact:501", "")}}
	}
	clock.Store(now.Add(9 * time.Minute).UnixNano())
	if _, err := s.Resolve(context.Background(), one()); err != nil {
		t.Fatal(err)
	}
	if sb.count("501") != 1 {
		t.Errorf("cache miss within TTL")
	}
	clock.Store(now.Add(11 * time.Minute).UnixNano())
	if _, err := s.Resolve(context.Background(), one()); err != nil {
		t.Fatal(err)
	}
	if sb.count("501") != 2 {
		t.Errorf("expired entry not refetched: %d calls", sb.count("501"))
	}

	// Server failure: an error, and the batch is left as it was; 401: permanent.
	sb.Script(sandbox.HubSpot, sandbox.Repeat(sandbox.Unavailable(), 2)...) // testHTTP: 2 attempts
	clock.Store(now.Add(time.Hour).UnixNano())
	failed := &connectors.Batch{
		Signals:  []consent.Signal{sig("hubspot:contact:501", "")},
		Profiles: []consent.ProfileFact{profile("hubspot:contact:502")},
	}
	if _, err := s.Resolve(context.Background(), failed); err == nil || errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("503: err = %v, want a transient error", err)
	}
	if len(failed.Signals) != 1 || failed.Signals[0].Subject.Email != "" || len(failed.Profiles) != 1 || failed.Profiles[0].Subject.Email != "" {
		t.Errorf("batch changed on error: %+v", failed)
	}

	bad := withOptions(cfg, func(o *SourceOptions) { o.APIToken = "wrong-token" })
	s2 := newSource(t, bad, testHTTP())
	_, err := s2.Resolve(context.Background(), &connectors.Batch{Activities: []consent.Activity{activity("hubspot:contact:502")}})
	if !errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("401: err = %v, want ErrPermanent", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("error leaks the token")
	}
	if skipped, err := s2.Resolve(context.Background(), nil); err != nil || skipped != nil {
		t.Errorf("nil batch: %v %v", skipped, err)
	}
}

// TestParseResolveLifecycle runs a signed-format batch with an opt-out and a
// lifecycle change through Parse and Resolve.
func TestParseResolveLifecycle(t *testing.T) {
	f, _ := fixture(t, "")
	sb := fixtureFake(t, f)
	_, cfg := fixture(t, sb.URL)
	s := newSource(t, cfg, testHTTP())
	body := `[{"eventId":10,"portalId":9001,"objectId":502,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"},` +
		`{"eventId":11,"portalId":9001,"objectId":999,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"},` +
		`{"eventId":12,"portalId":9001,"objectId":501,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"opportunity"},` +
		`{"eventId":13,"portalId":9001,"objectId":503,"occurredAt":1763632800000,"subscriptionType":"contact.privacyDeletion"}]`
	b, err := s.Parse(&connectors.Request{Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	skipped, err := s.Resolve(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	want := consent.ProfileFact{Subject: consent.Subject{Email: "paul.durand@example.org", ExternalID: "hubspot:contact:502"}, Brand: "acme",
		Profile: consent.ProfileCustomer, OccurredAt: time.UnixMilli(1763632800000).UTC(), Source: "hubspot-acme"}
	if len(b.Profiles) != 1 || b.Profiles[0] != want {
		t.Errorf("profiles %+v, want %+v", b.Profiles, want)
	}
	if len(b.Erasures) != 1 || b.Erasures[0] != (consent.Subject{ExternalID: "hubspot:contact:503"}) {
		t.Errorf("erasures %+v", b.Erasures)
	}
	if len(b.Skipped) != 1 || !strings.Contains(b.Skipped[0], `lifecyclestage "opportunity" is not a customer`) {
		t.Errorf("parse notes %q", b.Skipped)
	}
	if len(skipped) != 1 || skipped[0] != "profile 2: contact gone at HubSpot (404)" {
		t.Errorf("resolve notes %q", skipped)
	}
	if sb.count("503") != 0 {
		t.Errorf("an erasure was looked up")
	}
}

func TestResolveConcurrent(t *testing.T) {
	f, _ := fixture(t, "")
	sb := fixtureFake(t, f)
	_, cfg := fixture(t, sb.URL)
	s := newSource(t, cfg, testHTTP())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &connectors.Batch{
				Signals:  []consent.Signal{{Subject: consent.Subject{ExternalID: "hubspot:contact:501"}}},
				Profiles: []consent.ProfileFact{{Subject: consent.Subject{ExternalID: "hubspot:contact:502"}}},
			}
			if _, err := s.Resolve(context.Background(), b); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if s.cache.len() != 2 {
		t.Errorf("cache has %d entries", s.cache.len())
	}
}

func TestCacheBound(t *testing.T) {
	c := newContactCache(3, time.Minute)
	now := time.Now()
	for i := 0; i < 5; i++ {
		c.put(strconv.Itoa(i), "e", now)
	}
	if c.len() != 3 {
		t.Fatalf("len %d", c.len())
	}
	if _, ok := c.get("0", now); ok {
		t.Error("oldest entry not evicted")
	}
	c.get("2", now) // 2 becomes most recent
	c.put("5", "e", now)
	if _, ok := c.get("2", now); !ok {
		t.Error("recently used entry evicted")
	}
	if _, ok := c.get("3", now); ok {
		t.Error("least recently used entry kept")
	}
}

func TestNewSourceErrors(t *testing.T) {
	_, cfg := fixture(t, "")
	tests := []struct {
		name   string
		mutate func(c *config.Source)
		want   string
	}{
		{"no secrets", func(c *config.Source) { c.Secrets = nil }, "secrets:"},
		{"no public url", func(c *config.Source) { *c = withOptions(*c, func(o *SourceOptions) { o.PublicURL = "" }) }, "public_url:"},
		{"bad public url", func(c *config.Source) {
			*c = withOptions(*c, func(o *SourceOptions) { o.PublicURL = "hooks.example.com" })
		}, "public_url:"},
		{"bad api url", func(c *config.Source) { *c = withOptions(*c, func(o *SourceOptions) { o.APIBaseURL = "ftp://x" }) }, "api_base_url:"},
		{"no token", func(c *config.Source) { *c = withOptions(*c, func(o *SourceOptions) { o.APIToken = "" }) }, "api_token:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			tt.mutate(&c)
			_, err := NewSource(c, connectors.Deps{})
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
		})
	}
	c := withOptions(cfg, func(o *SourceOptions) { o.APIBaseURL = "" })
	s := newSource(t, c, connectors.Deps{})
	if s.apiBase != DefaultAPIBaseURL {
		t.Errorf("api base %q", s.apiBase)
	}
}

func FuzzVerify(f *testing.F) {
	fx, cfg := fixture(f, "")
	s := newSource(f, cfg, connectors.Deps{})
	lcfg := withOptions(cfg, func(o *SourceOptions) { o.LegacySignatures = true })
	legacy := newSource(f, lcfg, connectors.Deps{})
	f.Add(fx.Body, fx.Request.Headers[SignatureV3Header], fx.Request.Headers[TimestampHeader], "", "")
	f.Add(fx.Body, "", "", plain(secret, string(fx.Body)), "v1")
	f.Fuzz(func(t *testing.T, body []byte, sig3, ts, sig, version string) {
		h := http.Header{}
		h.Set(SignatureV3Header, sig3)
		h.Set(TimestampHeader, ts)
		h.Set(SignatureHeader, sig)
		h.Set(VersionHeader, version)
		err := s.Verify(&connectors.Request{Method: "POST", Path: fx.Request.Path, Header: h, Body: body}, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("err %v", err)
		}
		// legacy_signatures is off: nothing passes without a v3 signature.
		if err == nil && strings.TrimSpace(sig3) == "" {
			t.Fatalf("accepted without %s", SignatureV3Header)
		}
		lerr := legacy.Verify(&connectors.Request{Method: "POST", Path: fx.Request.Path, Header: h, Body: body}, fx.Now)
		if lerr != nil && !errors.Is(lerr, connectors.ErrUnauthorized) {
			t.Fatalf("legacy err %v", lerr)
		}
		if err == nil && lerr != nil {
			t.Fatalf("legacy_signatures refused what the default accepts: %v", lerr)
		}
		if err == nil && strings.TrimSpace(sig3) != "" {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte("POSThttps://hooks.example.com" + fx.Request.Path))
			m.Write(body)
			m.Write([]byte(strings.TrimSpace(ts)))
			if !connectors.EqualBase64(sig3, m.Sum(nil)) {
				t.Fatalf("accepted a wrong v3 signature")
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, cfg := fixture(f, "")
	s := newSource(f, cfg, connectors.Deps{})
	f.Add(fx.Body)
	f.Add([]byte(`[{"eventId":1,"portalId":9,"objectId":7,"subscriptionType":"contact.privacyDeletion"}]`))
	f.Add([]byte(`{"eventId":"x","occurredAt":-1}`))
	f.Add([]byte(`[{"eventId":1,"portalId":9,"objectId":7,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Body: body})
		if b == nil {
			return
		}
		for _, sig := range b.Signals {
			if sig.Status != consent.StatusWithdrawn || !strings.HasPrefix(sig.Subject.ExternalID, ExternalIDPrefix) {
				t.Fatalf("bad signal %+v", sig)
			}
		}
		for _, p := range b.Profiles {
			if p.Profile != consent.ProfileCustomer || p.Brand != "acme" || p.Source != "hubspot-acme" || !strings.HasPrefix(p.Subject.ExternalID, ExternalIDPrefix) ||
				p.Subject.Email != "" || p.OccurredAt.Year() > 9999 {
				t.Fatalf("bad profile %+v", p)
			}
		}
		if len(b.Activities) != 0 {
			t.Fatalf("activities %+v", b.Activities)
		}
	})
}

// TestWithdrawalWithBadDateIsKept: an opt-out whose occurredAt cannot be
// read is dated at arrival, never dropped; a lifecycle change without
// one is still skipped.
func TestWithdrawalWithBadDateIsKept(t *testing.T) {
	t.Parallel()
	_, cfg := fixture(t, "")
	s := newSource(t, cfg, connectors.Deps{})
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	body := `[{"eventId":1,"portalId":9,"objectId":7,"occurredAt":"later","subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"},` +
		`{"eventId":2,"portalId":9,"objectId":8,"subscriptionType":"contact.propertyChange","propertyName":"lifecyclestage","propertyValue":"customer"}]`
	b, err := s.Parse(&connectors.Request{Method: "POST", Body: []byte(body), ReceivedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 1 || b.Signals[0].Status != consent.StatusWithdrawn || !b.Signals[0].OccurredAt.Equal(at) || len(b.Profiles) != 0 {
		t.Fatalf("signals %+v profiles %+v, want one withdrawal dated %s and no profile", b.Signals, b.Profiles, at)
	}
}
