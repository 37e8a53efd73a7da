package mailchimp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

func fixtureSource(t testing.TB) (*Source, fixtures.Fixture) {
	t.Helper()
	f, s := fixtures.LoadSource(t, "mailchimp-unsubscribe", NewSource)
	return s, f
}

func testSource(t testing.TB, mod func(*config.Source)) *Source {
	t.Helper()
	cfg := config.Source{Name: "mc", Kind: Kind, Brand: "acme", Secrets: []string{"k1"}, Timezone: "UTC",
		Options: &SourceOptions{Lists: map[string]string{"L1": "other"}}}
	if mod != nil {
		mod(&cfg)
	}
	return fixtures.Build(t, NewSource, cfg, connectors.Deps{})
}

func form(kv ...string) []byte {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return []byte(v.Encode())
}

func TestFixture(t *testing.T) {
	s, f := fixtureSource(t)
	b := f.Run(t, s)
	if len(b.DedupKey) != 64 {
		t.Fatalf("dedup key %q", b.DedupKey)
	}
	sig := b.Signals[0]
	if sig.Subject.Email != "Chloe.Bernard@example.net" {
		t.Errorf("email must be kept as sent, got %q", sig.Subject.Email)
	}
	if sig.Source != "mailchimp-acme" || sig.Evidence.ListID != "a6b5da1054" || sig.Evidence.Event != "unsubscribe:manual" || sig.Evidence.EventID != b.DedupKey {
		t.Errorf("evidence: %+v source %q", sig.Evidence, sig.Source)
	}
	if sig.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at not UTC: %v", sig.OccurredAt)
	}
}

func TestVerify(t *testing.T) {
	s, f := fixtureSource(t)
	rot := testSource(t, func(c *config.Source) { c.Secrets = []string{"old-key", "mc-url-key-55d0"} })
	cases := []struct {
		name  string
		src   *Source
		query string
		ok    bool
	}{
		{"fixture", s, f.Request.Query, true},
		{"rotation: second secret", rot, "key=mc-url-key-55d0", true},
		{"rotation: first secret", rot, "key=old-key", true},
		{"key among other params", s, "a=1&key=mc-url-key-55d0&b=2", true},
		{"missing key", s, "", false},
		{"empty key", s, "key=", false},
		{"wrong key", s, "key=mc-url-key-55d1", false},
		{"prefix of the key", s, "key=mc-url-key-55d", false},
		{"key plus suffix", s, "key=mc-url-key-55d0x", false},
		{"other param named like key", s, "keys=mc-url-key-55d0", false},
		{"broken escape", s, "key=%zz", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.ConnectorRequest()
			r.RawQuery = c.query
			err := c.src.Verify(r, f.Now)
			if c.ok && err != nil {
				t.Fatalf("want ok, got %v", err)
			}
			if !c.ok {
				if !errors.Is(err, connectors.ErrUnauthorized) {
					t.Fatalf("want ErrUnauthorized, got %v", err)
				}
				if strings.Contains(err.Error(), "mc-url-key-55d0") {
					t.Fatalf("error leaks the secret: %v", err)
				}
			}
		})
	}
	// The body is not authenticated by Mailchimp: a changed body byte still
	// verifies (the URL key is the only credential).
	r := f.ConnectorRequest()
	r.Body[0] ^= 1
	if err := s.Verify(r, f.Now); err != nil {
		t.Fatalf("body change: %v", err)
	}
}

func TestProbe(t *testing.T) {
	s, _ := fixtureSource(t)
	for _, c := range []struct {
		query string
		want  int
	}{{"key=mc-url-key-55d0", 200}, {"key=nope", 401}, {"", 401}} {
		w := httptest.NewRecorder()
		s.Probe(w, &connectors.Request{Method: http.MethodGet, Path: "/webhooks/mailchimp-acme", RawQuery: c.query, Header: http.Header{}})
		if w.Code != c.want {
			t.Errorf("query %q: status %d, want %d", c.query, w.Code, c.want)
		}
	}
}

func TestNewSourceErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*config.Source)
		want string
	}{
		{"no secrets", func(c *config.Source) { c.Secrets = nil }, "secrets:"},
		{"empty secret", func(c *config.Source) { c.Secrets = []string{"a", ""} }, "secrets[1]"},
		{"bad zone", func(c *config.Source) { c.Timezone = "Mars/Olympus" }, "timezone:"},
		{"empty list brand", func(c *config.Source) { c.Options = &SourceOptions{Lists: map[string]string{"x": ""}} }, "lists[x]"},
		{"no brand", func(c *config.Source) { c.Brand = "" }, "brand:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Source{Name: "mc", Kind: Kind, Brand: "acme", Secrets: []string{"k1"}}
			c.mod(&cfg)
			_, err := NewSource(cfg, connectors.Deps{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to name %q", err, c.want)
			}
		})
	}
	// Timezone defaults to UTC.
	s, err := NewSource(config.Source{Name: "mc", Brand: "acme", Secrets: []string{"k"}}, connectors.Deps{})
	if err != nil || s.loc != time.UTC {
		t.Fatalf("default zone: %v %v", s, err)
	}
}

func TestParse(t *testing.T) {
	utc := testSource(t, nil)
	paris := testSource(t, func(c *config.Source) { c.Timezone = "Europe/Paris" })
	at := time.Date(2025, 11, 20, 10, 5, 0, 0, time.UTC)
	type want struct {
		err           error
		status        consent.Status // "" = no signal
		brand         string
		event         string
		at            time.Time
		ip, optIn     string
		undeliverable bool
		skipped       string
	}
	cases := []struct {
		name string
		src  *Source
		body []byte
		want want
	}{
		{"unsubscribe without action", utc, form("type", "unsubscribe", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com", "data[list_id]", "L9"),
			want{status: consent.StatusWithdrawn, brand: "acme", event: "unsubscribe", at: at}},
		{"unsubscribe delete action", utc, form("type", "unsubscribe", "fired_at", "2025-11-20 10:05:00", "data[action]", "delete", "data[email]", "a@example.com"),
			want{status: consent.StatusWithdrawn, brand: "acme", event: "unsubscribe", at: at}},
		{"abuse complaint", utc, form("type", "unsubscribe", "fired_at", "2025-11-20 10:05:00", "data[reason]", "abuse", "data[email]", "a@example.com", "data[list_id]", "L1"),
			want{status: consent.StatusWithdrawn, brand: "other", event: "unsubscribe:abuse", at: at}},
		{"subscribe = grant with list evidence", utc, form("type", "subscribe", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com", "data[list_id]", "L1", "data[ip_opt]", "203.0.113.9", "data[ip_signup]", "203.0.113.1", "data[merges][FNAME]", "A"),
			want{status: consent.StatusGranted, brand: "other", event: "subscribe", at: at, ip: "203.0.113.9", optIn: OptInLevel}},
		{"fired_at in Paris time", paris, form("type", "unsubscribe", "fired_at", "2025-11-20 11:05:00", "data[email]", "a@example.com"),
			want{status: consent.StatusWithdrawn, brand: "acme", event: "unsubscribe", at: at}},
		{"summer time in Paris", paris, form("type", "unsubscribe", "fired_at", "2025-07-01 12:00:00", "data[email]", "a@example.com"),
			want{status: consent.StatusWithdrawn, brand: "acme", event: "unsubscribe", at: time.Date(2025, 7, 1, 10, 0, 0, 0, time.UTC)}},
		{"cleaned hard bounce", utc, form("type", "cleaned", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com", "data[reason]", "hard"),
			want{undeliverable: true}},
		{"cleaned after abuse", utc, form("type", "cleaned", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com", "data[reason]", "abuse"),
			want{undeliverable: true, status: consent.StatusWithdrawn, brand: "acme", event: "cleaned:abuse", at: at}},
		{"upemail", utc, form("type", "upemail", "fired_at", "2025-11-20 10:05:00", "data[new_email]", "b@example.com", "data[old_email]", "a@example.com"),
			want{skipped: "upemail"}},
		{"profile", utc, form("type", "profile", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com"), want{skipped: "profile"}},
		{"campaign", utc, form("type", "campaign", "fired_at", "2025-11-20 10:05:00", "data[id]", "c1"), want{skipped: "campaign"}},
		{"unknown type", utc, form("type", "whatever\x00\xff", "fired_at", "2025-11-20 10:05:00"), want{skipped: "not a consent event"}},
		{"no email", utc, form("type", "unsubscribe", "fired_at", "2025-11-20 10:05:00"), want{skipped: "no email"}},
		{"NUL in email", utc, form("type", "unsubscribe", "fired_at", "2025-11-20 10:05:00", "data[email]", "a\x00@example.com"), want{skipped: "invalid email"}},
		{"invalid UTF-8 email", utc, form("type", "unsubscribe", "fired_at", "2025-11-20 10:05:00", "data[email]", "\xff@example.com"), want{skipped: "invalid email"}},
		{"no fired_at", utc, form("type", "unsubscribe", "data[email]", "a@example.com"), want{err: connectors.ErrMalformed}},
		{"bad fired_at", utc, form("type", "unsubscribe", "fired_at", "20/11/2025", "data[email]", "a@example.com"), want{err: connectors.ErrMalformed}},
		{"fired_at in year 0", utc, form("type", "subscribe", "fired_at", "0000-01-10 00:00:00", "data[email]", "a@example.com"), want{err: connectors.ErrMalformed}},
		{"fired_at before 1970 once in UTC", utc, form("type", "unsubscribe", "fired_at", "1969-12-31T23:30:00-00:20", "data[email]", "a@example.com"), want{err: connectors.ErrMalformed}},
		{"empty body", utc, nil, want{err: connectors.ErrMalformed}},
		{"null", utc, []byte("null"), want{err: connectors.ErrMalformed}},
		{"JSON", utc, []byte(`{"type":"unsubscribe"}`), want{err: connectors.ErrMalformed}},
		{"broken escape only", utc, []byte("%zz"), want{err: connectors.ErrMalformed}},
		{"broken escape elsewhere", utc, []byte("type=unsubscribe&fired_at=2025-11-20+10:05:00&data[email]=a@example.com&x=%zz"),
			want{status: consent.StatusWithdrawn, brand: "acme", event: "unsubscribe", at: at}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.src.Parse(&connectors.Request{Method: "POST", Body: c.body, Header: http.Header{}})
			if c.want.err != nil {
				if !errors.Is(err, c.want.err) {
					t.Fatalf("err = %v, want %v", err, c.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want.skipped != "" {
				if len(b.Skipped) != 1 || !strings.Contains(b.Skipped[0], c.want.skipped) || len(b.Signals) != 0 {
					t.Fatalf("skipped = %q signals = %d, want %q", b.Skipped, len(b.Signals), c.want.skipped)
				}
				if strings.Contains(b.Skipped[0], "@") {
					t.Fatalf("skipped reason carries an address: %q", b.Skipped[0])
				}
				return
			}
			if (len(b.Undeliverable) == 1) != c.want.undeliverable {
				t.Fatalf("undeliverable = %v", b.Undeliverable)
			}
			if c.want.status == "" {
				if len(b.Signals) != 0 {
					t.Fatalf("want no signal, got %+v", b.Signals)
				}
				return
			}
			if len(b.Signals) != 1 {
				t.Fatalf("signals = %+v", b.Signals)
			}
			s := b.Signals[0]
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			if s.Status != c.want.status || s.Brand != c.want.brand || s.Evidence.Event != c.want.event || !s.OccurredAt.Equal(c.want.at) ||
				s.Evidence.IP != c.want.ip || s.Evidence.OptInLevel != c.want.optIn || s.Channel != consent.ChannelEmail || s.Purpose != consent.PurposeMarketing {
				t.Fatalf("signal = %+v", s)
			}
			if len(s.Problems) != 0 {
				t.Fatalf("problems: %v", s.Problems)
			}
			if s.OccurredAt.Location() != time.UTC {
				t.Fatalf("not UTC")
			}
		})
	}
}

func TestDedupKey(t *testing.T) {
	s := testSource(t, nil)
	key := func(kv ...string) string {
		b, err := s.Parse(&connectors.Request{Body: form(kv...)})
		if err != nil {
			t.Fatal(err)
		}
		return b.DedupKey
	}
	base := []string{"type", "unsubscribe", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com", "data[list_id]", "L1"}
	k := key(base...)
	if k != key(append(base, "data[merges][FNAME]", "x")...) {
		t.Error("merge fields must not change the key")
	}
	for i := 1; i < len(base); i += 2 {
		alt := append([]string(nil), base...)
		alt[i] += "x"
		if base[i-1] == "fired_at" {
			alt[i] = "2025-11-20 10:05:01"
		}
		if key(alt...) == k {
			t.Errorf("changing %s must change the key", base[i-1])
		}
	}
	// Length prefixes: moving a character across a boundary changes the key.
	if connectors.HashParts("ab", "c") == connectors.HashParts("a", "bc") {
		t.Error("ambiguous concatenation")
	}
}

func FuzzParse(f *testing.F) {
	s, fx := fixtureSource(f)
	f.Add(fx.Body)
	f.Add(form("type", "subscribe", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com", "data[list_id]", "a6b5da1054", "data[ip_opt]", "1.2.3.4"))
	f.Add(form("type", "cleaned", "fired_at", "2025-11-20 10:05:00", "data[email]", "a@example.com", "data[reason]", "abuse"))
	f.Add([]byte("type=unsubscribe&fired_at=%zz"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Method: "POST", Body: body, Header: http.Header{}})
		if b == nil {
			return
		}
		if len(b.DedupKey) != 64 {
			t.Fatalf("batch %+v", b)
		}
		if len(b.Signals) > 1 || len(b.Undeliverable) > 1 {
			t.Fatalf("one webhook, one event: %+v", b)
		}
		for _, sig := range b.Signals {
			if len(sig.Problems) != 0 {
				t.Fatalf("signal %+v", sig)
			}
			if _, _, err := consent.NormalizeEmail(sig.Subject.Email); err != nil {
				t.Fatalf("unusable email in a signal: %v", err)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	s, fx := fixtureSource(f)
	f.Add(fx.Request.Query)
	f.Add("key=mc-url-key-55d0&key=x")
	f.Add("key=%00")
	f.Fuzz(func(t *testing.T, query string) {
		r := &connectors.Request{Method: "POST", RawQuery: query, Header: http.Header{}, Body: fx.Body}
		err := s.Verify(r, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil && r.Query().Get("key") != "mc-url-key-55d0" {
			t.Fatalf("accepted query %q", query)
		}
		if err != nil && strings.Contains(err.Error(), "mc-url-key-55d0") {
			t.Fatal("secret in error")
		}
	})
}

// TestParseNamesEveryAddress: an event that is no consent change still
// names its addresses (Batch.Named), so that an erasure of one of them
// deletes the stored request.
func TestParseNamesEveryAddress(t *testing.T) {
	t.Parallel()
	s := testSource(t, nil)
	for _, tt := range []struct {
		body string
		want []string
	}{
		{"type=profile&fired_at=2025-11-20+10%3A00%3A00&data[email]=p%40example.com", []string{"p@example.com"}},
		{"type=upemail&fired_at=2025-11-20+10%3A00%3A00&data[old_email]=old%40example.com&data[new_email]=new%40example.com", []string{"old@example.com", "new@example.com"}},
		{"type=campaign&fired_at=2025-11-20+10%3A00%3A00&data[id]=c1", nil},
	} {
		b, err := s.Parse(&connectors.Request{Method: "POST", Body: []byte(tt.body)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range b.Named {
			got = append(got, n.Email)
		}
		if len(b.Signals) != 0 || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: signals %d, named %q; want none and %q", tt.body, len(b.Signals), got, tt.want)
		}
	}
}
