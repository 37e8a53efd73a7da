package sendgrid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

func fixture(t testing.TB) (fixtures.Fixture, config.Source) {
	t.Helper()
	return fixtures.Load(t, "sendgrid-events", nil)
}

func mustSource(t testing.TB, cfg config.Source) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, cfg, connectors.Deps{})
}

func newKey(t testing.TB) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKeyBase64(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, pub
}

// signed returns a request whose headers were made by Sign.
func signed(t testing.TB, k *ecdsa.PrivateKey, ts time.Time, body []byte) *connectors.Request {
	t.Helper()
	hs, err := Sign(k, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	r := fixtures.Post("/webhooks/sg", hs, body)
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestFixture(t *testing.T) {
	f, cfg := fixture(t)
	s := mustSource(t, cfg)
	b := f.Run(t, s)
	if len(b.DedupKey) != 64 {
		t.Fatalf("dedup key %q", b.DedupKey)
	}
	for _, sig := range b.Signals {
		if sig.Source != "sendgrid-acme" || sig.Evidence.EventID == "" || sig.Evidence.Event == "" {
			t.Errorf("signal %+v", sig)
		}
	}
	if b.Signals[1].Evidence.ListID != "asm_group:1201" || b.Signals[1].Evidence.Event != "group_unsubscribe" {
		t.Errorf("group evidence %+v", b.Signals[1].Evidence)
	}
}

func TestVerify(t *testing.T) {
	f, cfg := fixture(t)
	s := mustSource(t, cfg)
	k, pub := newKey(t)
	_, otherPub := newKey(t)

	rotated := cfg
	rotated.Secrets = []string{otherPub, cfg.Secrets[0]}
	wrong := cfg
	wrong.Secrets = []string{otherPub}
	fresh := cfg
	fresh.Secrets = []string{pub}
	pemCfg := cfg
	der, _ := base64.StdEncoding.DecodeString(pub)
	pemCfg.Secrets = []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}

	now := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	body := []byte(`[{"email":"a@example.com","timestamp":1763632800,"event":"unsubscribe","sg_event_id":"x1"}]`)

	cases := []struct {
		name  string
		src   config.Source
		req   func() *connectors.Request
		now   time.Time
		want  error // nil = ok
		stale bool
	}{
		{"fixture", cfg, f.ConnectorRequest, f.Now, nil, false},
		{"rotation: second key matches", rotated, f.ConnectorRequest, f.Now, nil, false},
		{"wrong key", wrong, f.ConnectorRequest, f.Now, connectors.ErrUnauthorized, false},
		{"tampered body byte", cfg, func() *connectors.Request {
			r := f.ConnectorRequest()
			r.Body[10] ^= 1
			return r
		}, f.Now, connectors.ErrUnauthorized, false},
		{"CRLF removed", cfg, func() *connectors.Request {
			r := f.ConnectorRequest()
			r.Body = []byte(strings.ReplaceAll(string(r.Body), "\r\n", "\n"))
			return r
		}, f.Now, connectors.ErrUnauthorized, false},
		{"tampered timestamp", cfg, func() *connectors.Request {
			r := f.ConnectorRequest()
			r.Header.Set(HeaderTimestamp, "1763633291")
			return r
		}, f.Now, connectors.ErrUnauthorized, false},
		{"missing signature", cfg, func() *connectors.Request {
			r := f.ConnectorRequest()
			r.Header.Del(HeaderSignature)
			return r
		}, f.Now, connectors.ErrUnauthorized, false},
		{"missing timestamp", cfg, func() *connectors.Request {
			r := f.ConnectorRequest()
			r.Header.Del(HeaderTimestamp)
			return r
		}, f.Now, connectors.ErrUnauthorized, false},
		{"signature not base64", cfg, func() *connectors.Request {
			r := f.ConnectorRequest()
			r.Header.Set(HeaderSignature, "***")
			return r
		}, f.Now, connectors.ErrUnauthorized, false},
		{"stale: fixture 10 minutes later", cfg, f.ConnectorRequest, f.Now.Add(10 * time.Minute), connectors.ErrStale, true},
		{"from the future", cfg, f.ConnectorRequest, f.Now.Add(-10 * time.Minute), connectors.ErrStale, true},
		{"fresh signature", fresh, func() *connectors.Request { return signed(t, k, now, body) }, now.Add(time.Minute), nil, false},
		{"fresh signature, PEM key", pemCfg, func() *connectors.Request { return signed(t, k, now, body) }, now, nil, false},
		{"fresh signature, stale", fresh, func() *connectors.Request { return signed(t, k, now.Add(-6*time.Minute), body) }, now, connectors.ErrStale, true},
		{"fresh signature, fixture key", cfg, func() *connectors.Request { return signed(t, k, now, body) }, now, connectors.ErrUnauthorized, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mustSource(t, c.src).Verify(c.req(), c.now)
			if c.want == nil {
				if err != nil {
					t.Fatalf("want ok, got %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !errors.Is(err, connectors.ErrUnauthorized) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if errors.Is(err, connectors.ErrStale) != c.stale {
				t.Fatalf("stale = %v: %v", !c.stale, err)
			}
		})
	}
	_ = s
}

func TestTolerance(t *testing.T) {
	_, cfg := fixture(t)
	k, pub := newKey(t)
	cfg.Secrets = []string{pub}
	cfg.Tolerance = time.Hour
	now := time.Unix(1763632800, 0)
	r := signed(t, k, now.Add(-50*time.Minute), []byte("[]"))
	if err := mustSource(t, cfg).Verify(r, now); err != nil {
		t.Fatalf("within a 1h tolerance: %v", err)
	}
}

func TestNewSourceErrors(t *testing.T) {
	_, cfg := fixture(t)
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	cases := []struct {
		name string
		mod  func(*config.Source)
		want string
	}{
		{"no secrets", func(c *config.Source) { c.Secrets = nil }, "secrets:"},
		{"not base64", func(c *config.Source) { c.Secrets = []string{c.Secrets[0], "not base64!"} }, "secrets[1]"},
		{"not a key", func(c *config.Source) { c.Secrets = []string{base64.StdEncoding.EncodeToString([]byte("hello"))} }, "secrets[0]"},
		{"RSA key", func(c *config.Source) { c.Secrets = []string{base64.StdEncoding.EncodeToString(rsaDER)} }, "secrets[0]: not an ECDSA P-256"},
		{"P-384 key", func(c *config.Source) { c.Secrets = []string{base64.StdEncoding.EncodeToString(p384DER)} }, "secrets[0]: not an ECDSA P-256"},
		{"bad PEM", func(c *config.Source) { c.Secrets = []string{"-----BEGIN PUBLIC KEY-----\nxx"} }, "secrets[0]"},
		{"bad group purpose", func(c *config.Source) { c.Options = &SourceOptions{Groups: map[string]Group{"7": {Purpose: "spam"}}} }, "groups[7].purpose"},
		{"bad group channel", func(c *config.Source) { c.Options = &SourceOptions{Groups: map[string]Group{"7": {Channel: "fax"}}} }, "groups[7].channel"},
		{"no brand", func(c *config.Source) { c.Brand = "" }, "brand:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc := cfg
			c.mod(&cc)
			_, err := NewSource(cc, connectors.Deps{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	_, cfg := fixture(t)
	cfg.Options = &SourceOptions{Groups: map[string]Group{
		"1201": {Purpose: "marketing"},
		"1300": {Purpose: "partners", Brand: "acme-partners"},
		"1400": {Channel: "sms"},
	}}
	s := mustSource(t, cfg)
	at := time.Unix(1763633100, 0).UTC()
	type sig struct {
		email   string
		status  consent.Status
		brand   string
		purpose consent.Purpose
		channel consent.Channel
	}
	cases := []struct {
		name          string
		body          string
		err           bool
		signals       []sig
		undeliverable []string
		skipped       []string
		noDedup       bool
		activities    []act
	}{
		{name: "empty", body: "", err: true},
		{name: "spaces", body: " \r\n ", err: true},
		{name: "null", body: "null", err: true},
		{name: "object", body: `{"email":"a@example.com"}`, err: true},
		{name: "truncated", body: `[{"email":"a@example.com"`, err: true},
		{name: "number", body: `42`, err: true},
		{name: "empty array", body: `[]`, noDedup: true},
		{name: "array with CRLF and spaces", body: "\r\n[\r\n{\"email\":\"a@example.com\",\"timestamp\":1763633100,\"event\":\"unsubscribe\",\"sg_event_id\":\"e1\"}\r\n]\r\n",
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}}},
		{name: "spamreport", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"spamreport","sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}}},
		{name: "group with brand and purpose", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"group_unsubscribe","asm_group_id":1300,"sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme-partners", consent.PurposePartners, consent.ChannelEmail}}},
		{name: "group id as string", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"group_unsubscribe","asm_group_id":"1300","sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme-partners", consent.PurposePartners, consent.ChannelEmail}}},
		{name: "group with channel", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"group_unsubscribe","asm_group_id":1400,"sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelSMS}}},
		{name: "unmapped group = default scope", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"group_unsubscribe","asm_group_id":99,"sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}}},
		{name: "group unsubscribe without group", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"group_unsubscribe","sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}}},
		{name: "group resubscribe = grant", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"group_resubscribe","asm_group_id":1300,"sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusGranted, "acme-partners", consent.PurposePartners, consent.ChannelEmail}}},
		{name: "group resubscribe without group", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"group_resubscribe","sg_event_id":"e1"}]`,
			skipped: []string{"item 0: group_resubscribe without"}},
		{name: "bounce, dropped, blocked, deferred", body: `[
{"email":"b@example.com","timestamp":1763633100,"event":"bounce","type":"bounce","sg_event_id":"e1"},
{"email":"c@example.com","timestamp":1763633100,"event":"dropped","reason":"Bounced Address","sg_event_id":"e2"},
{"email":"d@example.com","timestamp":1763633100,"event":"bounce","type":"blocked","sg_event_id":"e3"},
{"email":"e@example.com","timestamp":1763633100,"event":"deferred","sg_event_id":"e4"},
{"email":"b@example.com","timestamp":1763633101,"event":"bounce","sg_event_id":"e5"}]`,
			undeliverable: []string{"b@example.com", "c@example.com"}, skipped: []string{"item 2: blocked", "item 3: event \"deferred\""}},
		{name: "engagement events", body: `[
{"email":"a@example.com","timestamp":1763633100,"event":"delivered","sg_event_id":"e1"},
{"email":"a@example.com","timestamp":1763633100,"event":"open","sg_event_id":"e2"},
{"email":"a@example.com","timestamp":1763633100,"event":"click","sg_event_id":"e3"},
{"email":"a@example.com","timestamp":1763633100,"event":"processed","sg_event_id":"e4"}]`,
			activities: []act{{"a@example.com", consent.ActivityDelivered}, {"a@example.com", consent.ActivityOpen}, {"a@example.com", consent.ActivityClick}},
			skipped:    []string{"item 3: event \"processed\""}},
		{name: "engagement events: group scope not applied, duplicates once", body: `[
{"email":"A@Example.com","timestamp":1763633100,"event":"click","asm_group_id":1300,"url":"https://x.example/","sg_event_id":"e1"},
{"email":"A@Example.com","timestamp":1763633100,"event":"click","asm_group_id":1300,"url":"https://x.example/","sg_event_id":"e1"},
{"email":"b@example.com","timestamp":1763633100,"event":"open","sg_machine_open":true,"sg_event_id":"e2"}]`,
			activities: []act{{"A@Example.com", consent.ActivityClick}, {"b@example.com", consent.ActivityOpen}},
			skipped:    []string{"item 1: duplicate"}},
		{name: "engagement events that cannot be used", body: "[{\"timestamp\":1763633100,\"event\":\"delivered\",\"sg_event_id\":\"e1\"}," +
			`{"email":"nope","timestamp":1763633100,"event":"open","sg_event_id":"e2"},` +
			`{"email":"a@example.com","timestamp":"later","event":"click","sg_event_id":"e3"},` +
			"{\"email\":\"a\xff@example.com\",\"timestamp\":1763633100,\"event\":\"click\",\"sg_event_id\":\"e4\"}," +
			`{"email":"a@example.com","timestamp":1763633100,"event":"Click","sg_event_id":"e5"}]`,
			skipped: []string{"item 0: no email", "item 1: invalid email", "item 2: no valid timestamp", "item 3: invalid email", "item 4: event \"Click\""}},
		{name: "duplicates", body: `[
{"email":"a@example.com","timestamp":1763633100,"event":"unsubscribe","sg_event_id":"e1"},
{"email":"a@example.com","timestamp":1763633100,"event":"unsubscribe","sg_event_id":"e1"},
{"email":"a@example.com","timestamp":1763633100,"event":"unsubscribe","sg_event_id":"e1"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}},
			skipped: []string{"item 1: duplicate", "item 2: duplicate"}},
		{name: "wrong types", body: `[
{"email":42,"timestamp":1763633100,"event":"unsubscribe","sg_event_id":"e1"},
{"email":"a@example.com","timestamp":"soon","event":"unsubscribe","sg_event_id":"e2"},
{"email":"a@example.com","timestamp":1763633100,"event":["unsubscribe"],"sg_event_id":"e3"},
{"email":"a@example.com","timestamp":1e400,"event":"unsubscribe","sg_event_id":"e4"},
{"email":"a@example.com","timestamp":-5,"event":"unsubscribe","sg_event_id":"e5"},
null, 7, "x", [],
{"email":null,"timestamp":null,"event":null,"sg_event_id":null}]`,
			skipped: []string{"item 0: no email", "item 1: no valid timestamp", "item 2: no event", "item 3: no valid timestamp", "item 4: no valid timestamp",
				"item 5: not an event", "item 6: not an event", "item 7: not an event", "item 8: not an event", "item 9: no event"}, noDedup: true},
		{name: "numeric string and float timestamps", body: `[
{"email":"a@example.com","timestamp":"1763633100","event":"unsubscribe","sg_event_id":"e1"},
{"email":"b@example.com","timestamp":1763633100.0,"event":"unsubscribe","sg_event_id":"e2"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail},
				{"b@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}}},
		{name: "invalid UTF-8 and NUL", body: "[{\"email\":\"a\xff@example.com\",\"timestamp\":1763633100,\"event\":\"unsubscribe\",\"sg_event_id\":\"e1\"}," +
			`{"email":"a\u0000b@example.com","timestamp":1763633100,"event":"unsubscribe","sg_event_id":"e2"},` +
			`{"email":"ok@example.com","timestamp":1763633100,"event":"unsub\u0000scribe","sg_event_id":"e3"},` +
			`{"email":"ok@example.com","timestamp":1763633100,"event":"unsubscribe","sg_event_id":"e\u00004"}]`,
			signals: []sig{{"ok@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}},
			skipped: []string{"item 0: invalid email", "item 1: invalid email", "item 2: event"}},
		{name: "missing sg_event_id", body: `[{"email":"a@example.com","timestamp":1763633100,"event":"unsubscribe"}]`,
			signals: []sig{{"a@example.com", consent.StatusWithdrawn, "acme", consent.PurposeMarketing, consent.ChannelEmail}}, noDedup: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, &connectors.Request{Method: "POST", Header: http.Header{}, Body: []byte(c.body)}, c.err)
			if b == nil {
				return
			}
			if len(b.Signals) != len(c.signals) {
				t.Fatalf("signals = %+v, want %d (skipped %q)", b.Signals, len(c.signals), b.Skipped)
			}
			for i, w := range c.signals {
				g := b.Signals[i]
				if g.Subject.Email != w.email || g.Status != w.status || g.Brand != w.brand || g.Purpose != w.purpose || g.Channel != w.channel || !g.OccurredAt.Equal(at) {
					t.Errorf("signal %d = %+v, want %+v", i, g, w)
				}
				if err := g.Validate(); err != nil {
					t.Error(err)
				}
			}
			if strings.Join(b.Undeliverable, ",") != strings.Join(c.undeliverable, ",") {
				t.Errorf("undeliverable = %v, want %v", b.Undeliverable, c.undeliverable)
			}
			if len(b.Activities) != len(c.activities) {
				t.Fatalf("activities = %+v, want %+v", b.Activities, c.activities)
			}
			for i, w := range c.activities {
				want := consent.Activity{Subject: consent.Subject{Email: w.email}, Brand: "acme", Channel: consent.ChannelEmail, Kind: w.kind, OccurredAt: at, Source: "sendgrid-acme"}
				if g := b.Activities[i]; g != want || g.OccurredAt.Location() != time.UTC {
					t.Errorf("activity %d = %+v, want %+v", i, g, want)
				}
			}
			if len(b.Profiles) != 0 {
				t.Errorf("profiles = %+v", b.Profiles)
			}
			if len(b.Skipped) != len(c.skipped) {
				t.Fatalf("skipped = %q, want %q", b.Skipped, c.skipped)
			}
			for i, w := range c.skipped {
				if !strings.HasPrefix(b.Skipped[i], w) {
					t.Errorf("skipped[%d] = %q, want prefix %q", i, b.Skipped[i], w)
				}
				if strings.Contains(b.Skipped[i], "@") {
					t.Errorf("skipped reason carries an address: %q", b.Skipped[i])
				}
			}
			if c.noDedup != (b.DedupKey == "") {
				t.Errorf("dedup key %q", b.DedupKey)
			}
		})
	}
}

type act struct {
	email string
	kind  consent.ActivityKind
}

func TestDedupKey(t *testing.T) {
	_, cfg := fixture(t)
	s := mustSource(t, cfg)
	key := func(body string) string {
		b, err := s.Parse(&connectors.Request{Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return b.DedupKey
	}
	a := key(`[{"event":"open","sg_event_id":"x"},{"event":"open","sg_event_id":"y"}]`)
	b := key(`[{"event":"click","sg_event_id":"y"},{"event":"open","sg_event_id":"x"},{"event":"open","sg_event_id":"x"}]`)
	c := key(`[{"event":"open","sg_event_id":"x"},{"event":"open","sg_event_id":"z"}]`)
	if a == "" || a != b || a == c {
		t.Fatalf("keys %q %q %q", a, b, c)
	}
}

func FuzzParse(f *testing.F) {
	fx, cfg := fixture(f)
	s := mustSource(f, cfg)
	f.Add(fx.Body)
	f.Add([]byte(`[{"email":"a@example.com","timestamp":1763633100,"event":"group_resubscribe","asm_group_id":1201,"sg_event_id":"e1"}]`))
	f.Add([]byte(`[null,{"timestamp":1e99},{"asm_group_id":-1}]`))
	f.Add([]byte(`[{"email":"a@example.com","timestamp":1763633100,"event":"click","sg_event_id":"e1"},{"email":"a@example.com","timestamp":1763633100,"event":"delivered"}]`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Method: "POST", Header: http.Header{}, Body: body})
		if b == nil {
			return
		}
		if b.DedupKey != "" && len(b.DedupKey) != 64 {
			t.Fatalf("dedup key %q", b.DedupKey)
		}
		for _, sig := range b.Signals {
			if _, _, err := consent.NormalizeEmail(sig.Subject.Email); err != nil {
				t.Fatalf("unusable email: %v", err)
			}
		}
		for _, a := range b.Activities {
			if !a.Kind.Qualifying() && a.Kind != consent.ActivityOpen && a.Kind != consent.ActivityDelivered {
				t.Fatalf("unexpected kind %+v", a)
			}
			if a.Source != "sendgrid-acme" || a.Brand != "acme" || a.Channel != consent.ChannelEmail {
				t.Fatalf("bad activity %+v", a)
			}
			if _, _, err := consent.NormalizeEmail(a.Subject.Email); err != nil {
				t.Fatalf("unusable email: %v", err)
			}
		}
		for _, r := range b.Skipped {
			if len(r) > 200 {
				t.Fatalf("long skipped reason %q", r)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	fx, cfg := fixture(f)
	s := mustSource(f, cfg)
	f.Add(fx.Body, fx.Request.Headers[HeaderTimestamp], fx.Request.Headers[HeaderSignature])
	f.Add([]byte("[]"), "0", "")
	f.Add([]byte{}, "99999999999999999999", "MEQCIA==")
	f.Fuzz(func(t *testing.T, body []byte, ts, sig string) {
		h := http.Header{}
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		err := s.Verify(&connectors.Request{Method: "POST", Header: h, Body: body}, fx.Now)
		if err != nil {
			if !errors.Is(err, connectors.ErrUnauthorized) {
				t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
			}
			return
		}
		// Only the genuine pair verifies (ECDSA signatures are malleable in
		// (r, s) but the signed bytes are fixed).
		if string(body) != string(fx.Body) || ts != fx.Request.Headers[HeaderTimestamp] {
			t.Fatalf("forged request accepted: ts %q", ts)
		}
	})
}

// TestWithdrawalWithBadDateIsKept: an unsubscribe or spam report whose
// timestamp cannot be read is dated at arrival, never dropped (as
// Postmark and Pipedrive do); an engagement event or a resubscription
// without a time is still skipped.
func TestWithdrawalWithBadDateIsKept(t *testing.T) {
	t.Parallel()
	_, cfg := fixture(t)
	s := mustSource(t, cfg)
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	body := `[{"email":"u@example.com","event":"unsubscribe","timestamp":"soon","sg_event_id":"a"},` +
		`{"email":"s@example.com","event":"spamreport","sg_event_id":"b"},` +
		`{"email":"c@example.com","event":"click","sg_event_id":"c"},` +
		`{"email":"g@example.com","event":"group_resubscribe","asm_group_id":1,"sg_event_id":"d"}]`
	b, err := s.Parse(&connectors.Request{Body: []byte(body), ReceivedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sig := range b.Signals {
		got = append(got, sig.Subject.Email+" "+string(sig.Status)+" "+sig.OccurredAt.Format(time.RFC3339))
	}
	want := []string{"u@example.com withdrawn 2026-11-29T12:00:00Z", "s@example.com withdrawn 2026-11-29T12:00:00Z"}
	if strings.Join(got, "|") != strings.Join(want, "|") || len(b.Activities) != 0 {
		t.Fatalf("signals %q activities %+v, want %q and none", got, b.Activities, want)
	}
}
