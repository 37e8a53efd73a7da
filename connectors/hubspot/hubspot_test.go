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
)

const secret = "hs-client-secret-7f3a"

func fixture(t testing.TB, sandboxURL string) (fixtures.Fixture, config.Source) {
	t.Helper()
	f, err := fixtures.Get("hubspot-optout-batch")
	if err != nil {
		t.Fatal(err)
	}
	if sandboxURL == "" {
		sandboxURL = "http://127.0.0.1:1"
	}
	cfg, err := f.SourceConfig(map[string]string{"SANDBOX_URL": sandboxURL})
	if err != nil {
		t.Fatal(err)
	}
	return f, cfg
}

func testHTTP() connectors.Deps {
	return connectors.Deps{HTTP: connectors.NewHTTPClient(connectors.HTTPOptions{RetryMax: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond, Timeout: 5 * time.Second})}
}

func newSource(t testing.TB, cfg config.Source, deps connectors.Deps) *Source {
	t.Helper()
	s, err := NewSource(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sandbox serves the fixture's hubspot_contacts like the CRM API does and
// counts calls per contact id.
type sandbox struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
	total atomic.Int64
	fail  atomic.Int64 // status to answer instead, 0 = normal
}

func newSandbox(t *testing.T, f fixtures.Fixture) *sandbox {
	sb := &sandbox{calls: map[string]int{}}
	sb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb.total.Add(1)
		if r.Header.Get("Authorization") != "Bearer pat-demo-hubspot" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"status":"error","category":"INVALID_AUTHENTICATION"}`))
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, "/hubspot/crm/v3/objects/contacts/")
		if !ok || r.Method != http.MethodGet || r.URL.Query().Get("properties") != "email" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		sb.mu.Lock()
		sb.calls[id]++
		sb.mu.Unlock()
		if st := sb.fail.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		c, ok := f.Sandbox.HubSpotContacts[id]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"status":"error","message":"resource not found","category":"OBJECT_NOT_FOUND"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(c)
	}))
	t.Cleanup(sb.Close)
	return sb
}

func (sb *sandbox) count(id string) int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.calls[id]
}

func TestFixture(t *testing.T) {
	f, _ := fixture(t, "")
	sb := newSandbox(t, f)
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

	resolved, skipped, err := s.Resolve(context.Background(), b.Signals)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped %v", skipped)
	}
	if d := fixtures.DiffSignals(resolved, f.Expect.Signals); d != "" {
		t.Error(d)
	}
	if len(b.Undeliverable) != len(f.Expect.Undeliverable) {
		t.Errorf("undeliverable %v", b.Undeliverable)
	}
	if resolved[0].Subject.Email != "Lena.Martin@Example.com" {
		t.Errorf("email must be kept as HubSpot spells it: %q", resolved[0].Subject.Email)
	}

	// Cache hit: no second call.
	if _, _, err := s.Resolve(context.Background(), b.Signals); err != nil {
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
	slash := cfg
	slash.PublicURL = "https://hooks.example.com/"

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
		{"v3 wins over a valid v1", cfg, "", map[string]string{SignatureV3Header: "AAAA", TimestampHeader: ts, SignatureHeader: plain(secret, string(body)), VersionHeader: "v1"}, body, false, false},
		{"v2", cfg, "", map[string]string{SignatureHeader: plain(secret, "POST", uri, string(body)), VersionHeader: "v2"}, body, true, false},
		{"v2 tampered", cfg, "", map[string]string{SignatureHeader: plain(secret, "POST", uri, string(body)), VersionHeader: "v2"}, tampered, false, false},
		{"v2 rotation", rotated, "", map[string]string{SignatureHeader: plain(secret, "POST", uri, string(body)), VersionHeader: "v2"}, body, true, false},
		{"v1", cfg, "", map[string]string{SignatureHeader: plain(secret, string(body)), VersionHeader: "v1"}, body, true, false},
		{"v1 wrong secret", cfg, "", map[string]string{SignatureHeader: plain("x", string(body)), VersionHeader: "v1"}, body, false, false},
		{"v1 without version", cfg, "", map[string]string{SignatureHeader: plain(secret, string(body))}, body, false, false},
		{"v1 signature labelled v2", cfg, "", map[string]string{SignatureHeader: plain(secret, string(body)), VersionHeader: "v2"}, body, false, false},
		{"nothing", cfg, "", nil, body, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, tt.cfg, connectors.Deps{})
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			err := s.Verify(&connectors.Request{Method: "POST", Path: "/webhooks/hubspot-acme", RawQuery: tt.query, Header: h, Body: tt.body}, now)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, connectors.ErrUnauthorized) {
					t.Fatalf("err = %v, want ErrUnauthorized", err)
				}
				if errors.Is(err, connectors.ErrStale) != tt.sale {
					t.Fatalf("err = %v, stale want %v", err, tt.sale)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks the secret")
				}
			}
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
	}{
		{"optout true", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"`) + `]`, 1, 0, 0, true, false},
		{"optout TRUE as bool", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":true`) + `]`, 1, 0, 0, true, false},
		{"optout false is no opt-in", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"false"`) + `]`, 0, 0, 1, true, false},
		{"optout odd value", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"maybe"`) + `]`, 0, 0, 1, true, false},
		{"other property", `[` + ev(`"subscriptionType":"contact.propertyChange","propertyName":"firstname","propertyValue":"Lena"`) + `]`, 0, 0, 1, true, false},
		{"object.propertyChange contact", `[` + ev(`"subscriptionType":"object.propertyChange","objectTypeId":"0-1","propertyName":"hs_email_optout","propertyValue":"true"`) + `]`, 1, 0, 0, true, false},
		{"object.propertyChange company", `[` + ev(`"subscriptionType":"object.propertyChange","objectTypeId":"0-2","propertyName":"hs_email_optout","propertyValue":"true"`) + `]`, 0, 0, 1, true, false},
		{"privacy deletion", `[` + ev(`"subscriptionType":"contact.privacyDeletion"`) + `]`, 0, 1, 0, true, false},
		{"creation skipped", `[` + ev(`"subscriptionType":"contact.creation"`) + `]`, 0, 0, 1, true, false},
		{"ids as strings", `[{"eventId":"1","portalId":"9","objectId":"7","occurredAt":"1763632800000","subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 1, 0, 0, true, false},
		{"no objectId", `[{"eventId":1,"portalId":9,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 0, 0, 1, false, false},
		{"no occurredAt", `[{"eventId":1,"portalId":9,"objectId":7,"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 0, 0, 1, true, false},
		{"huge numbers", `[{"eventId":1e999,"portalId":99999999999999999999999999,"objectId":-7,"occurredAt":1e308,"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"}]`, 0, 0, 1, false, false},
		{"wrong types", `[{"eventId":{},"portalId":[],"objectId":true,"occurredAt":"soon","subscriptionType":5,"propertyName":null}]`, 0, 0, 1, false, false},
		{"items not objects", `[1,"x",null,[]]`, 0, 0, 4, false, false},
		{"single object", ev(`"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout","propertyValue":"true"`), 1, 0, 0, true, false},
		{"NUL in strings", `[` + ev(`"subscriptionType":"contact.propertyChange\u0000","propertyName":"hs_email_optout"`) + `]`, 0, 0, 1, true, false},
		{"invalid UTF-8", "[" + ev("\"subscriptionType\":\"contact.\xffpropertyChange\"") + "]", 0, 0, 1, true, false},
		{"empty array", `[]`, 0, 0, 1, false, false},
		{"empty body", ``, 0, 0, 0, false, true},
		{"null", `null`, 0, 0, 0, false, true},
		{"string", `"x"`, 0, 0, 0, false, true},
		{"truncated", `[{"eventId":1`, 0, 0, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Parse(&connectors.Request{Body: []byte(tt.body)})
			if tt.err {
				if !errors.Is(err, connectors.ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Signals) != tt.signals || len(b.Erasures) != tt.erasures || len(b.Skipped) != tt.skipped || (b.DedupKey != "") != tt.dedup {
				t.Fatalf("signals %+v erasures %+v skipped %q dedup %q", b.Signals, b.Erasures, b.Skipped, b.DedupKey)
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
	sb := newSandbox(t, f)
	_, cfg := fixture(t, sb.URL)
	now := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	deps := testHTTP()
	deps.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	s := newSource(t, cfg, deps)
	sig := func(ext, email string) consent.Signal {
		return consent.Signal{Subject: consent.Subject{ExternalID: ext, Email: email}, Channel: consent.ChannelEmail, Brand: "acme",
			Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: now, Source: "hubspot-acme"}
	}
	in := []consent.Signal{
		sig("hubspot:contact:501", ""),
		sig("hubspot:contact:999", ""), // gone
		sig("hubspot:contact:501", ""), // same contact twice: one call
		sig("", "already@example.com"), // passes through
		sig("hubspot:contact:502", "known@example.com"),
	}
	out, skipped, err := s.Resolve(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 || len(skipped) != 1 || !strings.Contains(skipped[0], "signal 2: contact gone") {
		t.Fatalf("out %+v skipped %q", out, skipped)
	}
	if out[0].Subject.Email != "Lena.Martin@Example.com" || out[0].Subject.ExternalID != "hubspot:contact:501" || out[3].Subject.Email != "known@example.com" {
		t.Errorf("out %+v", out)
	}
	if sb.count("501") != 1 || sb.count("502") != 0 || sb.count("999") != 1 {
		t.Errorf("calls %v", sb.calls)
	}
	if strings.Contains(strings.Join(skipped, " "), "@") {
		t.Errorf("skipped reasons carry personal data: %q", skipped)
	}

	// Within the TTL: cached. After it: fetched again.
	clock.Store(now.Add(9 * time.Minute).UnixNano())
	if _, _, err := s.Resolve(context.Background(), in[:1]); err != nil {
		t.Fatal(err)
	}
	if sb.count("501") != 1 {
		t.Errorf("cache miss within TTL")
	}
	clock.Store(now.Add(11 * time.Minute).UnixNano())
	if _, _, err := s.Resolve(context.Background(), in[:1]); err != nil {
		t.Fatal(err)
	}
	if sb.count("501") != 2 {
		t.Errorf("expired entry not refetched: %d calls", sb.count("501"))
	}

	// Server failure: an error, nothing resolved; 401: permanent.
	sb.fail.Store(http.StatusServiceUnavailable)
	if _, _, err := s.Resolve(context.Background(), []consent.Signal{sig("hubspot:contact:502", "")}); err == nil || errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("503: err = %v, want a transient error", err)
	}
	sb.fail.Store(0)

	bad := cfg
	bad.APIToken = "wrong-token"
	s2 := newSource(t, bad, testHTTP())
	_, _, err = s2.Resolve(context.Background(), []consent.Signal{sig("hubspot:contact:502", "")})
	if !errors.Is(err, connectors.ErrPermanent) {
		t.Errorf("401: err = %v, want ErrPermanent", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("error leaks the token")
	}
}

func TestResolveConcurrent(t *testing.T) {
	f, _ := fixture(t, "")
	sb := newSandbox(t, f)
	_, cfg := fixture(t, sb.URL)
	s := newSource(t, cfg, testHTTP())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := []consent.Signal{{Subject: consent.Subject{ExternalID: "hubspot:contact:501"}}, {Subject: consent.Subject{ExternalID: "hubspot:contact:502"}}}
			if _, _, err := s.Resolve(context.Background(), in); err != nil {
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
	c := newCache(3, time.Minute)
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
		{"no public url", func(c *config.Source) { c.PublicURL = "" }, "public_url:"},
		{"bad public url", func(c *config.Source) { c.PublicURL = "hooks.example.com" }, "public_url:"},
		{"bad api url", func(c *config.Source) { c.APIBaseURL = "ftp://x" }, "api_base_url:"},
		{"no token", func(c *config.Source) { c.APIToken = "" }, "api_token:"},
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
	c := cfg
	c.APIBaseURL = ""
	s := newSource(t, c, connectors.Deps{})
	if s.apiBase != DefaultAPIBaseURL {
		t.Errorf("api base %q", s.apiBase)
	}
}

func FuzzVerify(f *testing.F) {
	fx, cfg := fixture(f, "")
	s := newSource(f, cfg, connectors.Deps{})
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
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := s.Parse(&connectors.Request{Body: body})
		if err != nil {
			if !errors.Is(err, connectors.ErrMalformed) {
				t.Fatalf("err %v", err)
			}
			return
		}
		for _, sig := range b.Signals {
			if err := sig.Validate(); err != nil {
				t.Fatalf("invalid signal %+v: %v", sig, err)
			}
			if sig.Status != consent.StatusWithdrawn || !strings.HasPrefix(sig.Subject.ExternalID, ExternalIDPrefix) || sig.OccurredAt.Location() != time.UTC {
				t.Fatalf("bad signal %+v", sig)
			}
		}
	})
}
