package mailgun

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const key = "mg-signing-key-0b9e"

func fixture(t testing.TB) (fixtures.Fixture, *Source) {
	t.Helper()
	return fixtures.LoadSource(t, "mailgun-unsubscribed", NewSource)
}

func newSource(t testing.TB, secrets ...string) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, config.Source{Name: "mailgun-acme", Kind: "mailgun", Brand: "acme", Secrets: secrets, Tolerance: 5 * time.Minute}, connectors.Deps{})
}

// signed builds a body signed with Mailgun's documented scheme:
// hex(HMAC-SHA256(key, timestamp + token)).
func signed(signKey string, ts int64, token, eventData string) []byte {
	m := hmac.New(sha256.New, []byte(signKey))
	m.Write([]byte(strconv.FormatInt(ts, 10) + token))
	sig := hex.EncodeToString(m.Sum(nil))
	return []byte(fmt.Sprintf(`{"signature":{"timestamp":"%d","token":%q,"signature":%q},"event-data":%s}`, ts, token, sig, eventData))
}

func TestFixture(t *testing.T) {
	f, src := fixture(t)
	b := f.Run(t, src)
	if want := time.Date(2025, 11, 20, 10, 44, 59, 250_000_000, time.UTC); !b.Signals[0].OccurredAt.Equal(want) {
		t.Fatalf("occurred_at = %v", b.Signals[0].OccurredAt)
	}
	// The dedup key is the signed token, not the unsigned event-data.id.
	if b.DedupKey != "token:3f4c1e9a7b6d5c8e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d" || b.Signals[0].Evidence.EventID != "Ase7i2zsRYeDXztHGENqRA" || b.Signals[0].Evidence.Event != "unsubscribed" {
		t.Fatalf("dedup %q evidence %+v", b.DedupKey, b.Signals[0].Evidence)
	}
	// Mailgun's retry of the very same request (same signature block, same
	// bytes) is accepted: the inbox dedups it.
	if err := src.Verify(f.ConnectorRequest(), f.Now.Add(4*time.Hour)); err != nil {
		t.Fatalf("retry of the same request refused: %v", err)
	}
}

func TestVerify(t *testing.T) {
	f, _ := fixture(t)
	now := f.Now
	ts := now.Unix() - 5
	ev := `{"event":"unsubscribed","id":"x1","timestamp":1763635499.5,"recipient":"a@example.com"}`
	tampered := append([]byte(nil), f.Body...)
	i := strings.Index(string(tampered), `"token": "`) + len(`"token": "`)
	tampered[i] ^= 0x01

	tests := []struct {
		name    string
		secrets []string
		body    []byte
		now     time.Time
		stale   bool
		wantErr bool
	}{
		{"fixture", []string{key}, f.Body, now, false, false},
		{"tampered token byte", []string{key}, tampered, now, false, true},
		{"wrong key", []string{"nope"}, f.Body, now, false, true},
		{"rotation: second key matches", []string{"old", key}, f.Body, now, false, false},
		{"computed", []string{"k"}, signed("k", ts, "tok-1", ev), now, false, false},
		{"timestamp as a JSON number", []string{"k"}, []byte(strings.Replace(string(signed("k", ts, "tok-n", ev)), fmt.Sprintf(`"timestamp":"%d"`, ts), fmt.Sprintf(`"timestamp":%d`, ts), 1)), now, false, false},
		{"late retry inside 8h + tolerance", []string{"k"}, signed("k", ts-int64((8*time.Hour).Seconds()), "tok-2", ev), now, false, false},
		{"older than 8h + tolerance", []string{"k"}, signed("k", ts-int64((8*time.Hour+6*time.Minute).Seconds()), "tok-3", ev), now, true, true},
		{"future inside tolerance", []string{"k"}, signed("k", now.Unix()+240, "tok-4", ev), now, false, false},
		{"future beyond tolerance", []string{"k"}, signed("k", now.Unix()+360, "tok-5", ev), now, true, true},
		{"missing signature block", []string{key}, []byte(`{"event-data":{}}`), now, false, true},
		{"empty body", []string{key}, nil, now, false, true},
		{"null", []string{key}, []byte("null"), now, false, true},
		{"array", []string{key}, []byte("[]"), now, false, true},
		{"wrong types", []string{key}, []byte(`{"signature":{"timestamp":true,"token":1,"signature":[]}}`), now, false, true},
		{"signature block is a string", []string{key}, []byte(`{"signature":"abc"}`), now, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, tt.secrets...)
			err := src.Verify(&connectors.Request{Body: tt.body}, tt.now)
			fixtures.VerifyErr(t, err, !tt.wantErr, tt.stale, key)
		})
	}
}

func TestReplay(t *testing.T) {
	src := newSource(t, "k")
	now := time.Unix(1763635505, 0)
	first := signed("k", now.Unix(), "tok", `{"event":"unsubscribed","id":"a","timestamp":1,"recipient":"a@example.com"}`)
	if err := src.Verify(&connectors.Request{Body: first}, now); err != nil {
		t.Fatal(err)
	}
	// The same signature block attached to another event-data is refused.
	forged := signed("k", now.Unix(), "tok", `{"event":"unsubscribed","id":"b","timestamp":1,"recipient":"victim@example.com"}`)
	err := src.Verify(&connectors.Request{Body: forged}, now.Add(time.Minute))
	if !errors.Is(err, connectors.ErrUnauthorized) || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("forged replay: err = %v", err)
	}
	// The identical request again (Mailgun retry) passes.
	if err := src.Verify(&connectors.Request{Body: first}, now.Add(2*time.Hour)); err != nil {
		t.Fatalf("identical retry: %v", err)
	}
	// A forged body that fails the signature never consumes a cache slot.
	before := src.seen.len()
	bad := []byte(`{"signature":{"timestamp":"1763635505","token":"other","signature":"00"}}`)
	if err := src.Verify(&connectors.Request{Body: bad}, now); err == nil {
		t.Fatal("bad signature accepted")
	}
	if src.seen.len() != before {
		t.Fatal("unverified token was cached")
	}
}

// TestReplayAfterRestart: the token cache is per process. A captured
// signature block attached to another event-data and sent to a fresh
// process (restart, other replica) passes Verify; what stops it is the
// inbox, so its DedupKey must be that of the first body: the signed token,
// not the unsigned event-data.id.
func TestReplayAfterRestart(t *testing.T) {
	now := time.Unix(1763635505, 0)
	first := signed("k", now.Unix(), "tok-restart", `{"event":"unsubscribed","id":"a","timestamp":1763635500,"recipient":"a@example.com"}`)
	tests := []struct {
		name, eventData string
	}{
		{"other id and recipient", `{"event":"complained","id":"b","timestamp":1763635501,"recipient":"victim@example.com"}`},
		{"same id, other recipient", `{"event":"unsubscribed","id":"a","timestamp":1763635500,"recipient":"victim@example.com"}`},
		{"no id", `{"event":"unsubscribed","timestamp":1763635500,"recipient":"victim@example.com"}`},
		{"opened, to renew a consent", `{"event":"clicked","id":"c","timestamp":1763635501,"recipient":"victim@example.com"}`},
		{"no event-data", `null`},
	}
	b1, err := newSource(t, "k").Parse(&connectors.Request{Body: first})
	if err != nil {
		t.Fatal(err)
	}
	if b1.DedupKey != "token:tok-restart" {
		t.Fatalf("dedup = %q, want token:tok-restart", b1.DedupKey)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forged := signed("k", now.Unix(), "tok-restart", tt.eventData)
			fresh := newSource(t, "k") // the restarted process: empty cache
			if err := fresh.Verify(&connectors.Request{Body: forged}, now.Add(time.Minute)); err != nil {
				t.Fatalf("Verify: %v (the signature block is genuine)", err)
			}
			b2, err := fresh.Parse(&connectors.Request{Body: forged})
			if err != nil {
				t.Fatal(err)
			}
			if b2.DedupKey != b1.DedupKey {
				t.Fatalf("dedup %q, want %q: the inbox would store the forged body", b2.DedupKey, b1.DedupKey)
			}
		})
	}
	// Distinct tokens are distinct deliveries, even with the same event id.
	other := signed("k", now.Unix(), "tok-other", `{"event":"unsubscribed","id":"a","timestamp":1763635500,"recipient":"a@example.com"}`)
	b3, err := newSource(t, "k").Parse(&connectors.Request{Body: other})
	if err != nil {
		t.Fatal(err)
	}
	if b3.DedupKey == b1.DedupKey {
		t.Fatalf("two tokens share dedup key %q", b3.DedupKey)
	}
}

func TestTokenDedupKey(t *testing.T) {
	long := strings.Repeat("a", 257)
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "token-sha256:" + hex.EncodeToString(h[:])
	}
	for in, want := range map[string]string{
		"3f4c1e9a7b6d5c8e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d": "token:3f4c1e9a7b6d5c8e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d",
		strings.Repeat("a", 256):                             "token:" + strings.Repeat("a", 256),
		long:                                                 sum(long),
		"a\x00b":                                             sum("a\x00b"),
		"a b":                                                sum("a b"),
		"caf\u00e9":                                          sum("caf\u00e9"),
	} {
		if got := TokenDedupKey(in); got != want {
			t.Errorf("TokenDedupKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(3)
	now := time.Unix(1000, 0)
	h := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	for i := range 10 {
		if !c.remember(fmt.Sprint("t", i), h("b"), now.Add(time.Hour), now) {
			t.Fatal("fresh token refused")
		}
	}
	if c.len() != 3 {
		t.Fatalf("len = %d, want 3", c.len())
	}
	// The newest tokens are kept; the oldest were evicted.
	if c.remember("t9", h("other"), now.Add(time.Hour), now) {
		t.Fatal("recent token with another body accepted")
	}
	if !c.remember("t0", h("other"), now.Add(time.Hour), now) {
		t.Fatal("evicted token still refused")
	}
	// Expired entries leave, and an expired token may be used again.
	later := now.Add(2 * time.Hour)
	if !c.remember("t9", h("other"), later.Add(time.Hour), later) {
		t.Fatal("expired token refused")
	}
	if c.len() != 1 {
		t.Fatalf("len after expiry = %d, want 1", c.len())
	}
	if len(c.order)-c.head > 3 {
		t.Fatalf("order queue grew: %d", len(c.order)-c.head)
	}
}

func TestReplayCacheConcurrent(t *testing.T) {
	src := newSource(t, "k")
	now := time.Unix(1763635505, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				body := signed("k", now.Unix(), fmt.Sprintf("tok-%d-%d", g, i%50), `{"event":"opened"}`)
				if err := src.Verify(&connectors.Request{Body: body}, now); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if src.seen.len() != 8*50 {
		t.Fatalf("len = %d", src.seen.len())
	}
}

func TestNewSource(t *testing.T) {
	_, err := NewSource(config.Source{Name: "mg", Brand: "acme"}, connectors.Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), "secrets:") {
		t.Fatalf("err = %v", err)
	}
	src, err := NewSource(config.Source{Name: "mg", Brand: "acme", Secrets: []string{"k"}}, connectors.Deps{})
	if err != nil || src.tolerance != DefaultTolerance {
		t.Fatalf("src %+v err %v", src, err)
	}
}

func TestParse(t *testing.T) {
	src := newSource(t, "k")
	body := func(ed string) []byte { return signed("k", 1763635500, "t", ed) }
	tests := []struct {
		name          string
		body          []byte
		withdrawal    string // occurred_at in RFC 3339 nano
		undeliverable bool
		skipped       string
		dedup         string               // "" = "token:t" (every body() is signed with token "t"); "-" = none
		activity      consent.ActivityKind // with occurred_at "2025-11-20T10:44:59.25Z"
	}{
		{name: "delivered", body: body(`{"event":"delivered","id":"d1","timestamp":1763635499.25,"recipient":"B@Example.com","delivery-status":{"code":250}}`), activity: consent.ActivityDelivered},
		{name: "opened", body: body(`{"event":"opened","id":"e5","timestamp":"1763635499.25","recipient":"B@Example.com"}`), activity: consent.ActivityOpen},
		{name: "clicked", body: body(`{"event":"clicked","id":"c1","timestamp":1763635499.25,"recipient":"B@Example.com","url":"https://x.example/"}`), activity: consent.ActivityClick},
		{name: "clicked without recipient", body: body(`{"event":"clicked","id":"c2","timestamp":1763635499.25}`), skipped: "event clicked: no recipient"},
		{name: "opened without timestamp", body: body(`{"event":"opened","id":"c3","recipient":"b@example.com"}`), skipped: "event opened: no readable timestamp"},
		{name: "accepted", body: body(`{"event":"accepted","id":"a1","timestamp":1763635499,"recipient":"b@example.com"}`), skipped: `event "accepted": no consent meaning`},
		{name: "Opened (case matters)", body: body(`{"event":"Opened","id":"a2","timestamp":1763635499,"recipient":"b@example.com"}`), skipped: `event "Opened": no consent meaning`},
		{name: "unsubscribed", body: body(`{"event":"unsubscribed","id":"e1","timestamp":1763635499.25,"recipient":"A@Example.com","tags":["x"]}`), withdrawal: "2025-11-20T10:44:59.25Z"},
		{name: "complained", body: body(`{"event":"complained","id":"e2","timestamp":1763635499,"recipient":"a@example.com"}`), withdrawal: "2025-11-20T10:44:59Z"},
		{name: "timestamp as string, many digits", body: body(`{"event":"complained","id":"e2","timestamp":"1763635499.123456789123","recipient":"a@example.com"}`), withdrawal: "2025-11-20T10:44:59.123456789Z"},
		{name: "timestamp with exponent", body: body(`{"event":"complained","id":"e2","timestamp":1.76363549925e9,"recipient":"a@example.com"}`), withdrawal: "2025-11-20T10:44:59.25Z"},
		{name: "permanent failure", body: body(`{"event":"failed","severity":"permanent","id":"e3","timestamp":1763635499,"recipient":"b@example.com"}`), undeliverable: true},
		{name: "temporary failure", body: body(`{"event":"failed","severity":"temporary","id":"e4","timestamp":1763635499,"recipient":"b@example.com"}`), skipped: "event failed: temporary failure, not consent"},
		{name: "no recipient", body: body(`{"event":"unsubscribed","id":"e6","timestamp":1763635499}`), skipped: "event unsubscribed: no recipient"},
		{name: "bad timestamp", body: body(`{"event":"unsubscribed","id":"e7","timestamp":"soon","recipient":"a@example.com"}`), skipped: "event unsubscribed: no readable timestamp"},
		{name: "negative timestamp", body: body(`{"event":"unsubscribed","id":"e7","timestamp":-1.5,"recipient":"a@example.com"}`), skipped: "event unsubscribed: no readable timestamp"},
		{name: "huge timestamp", body: body(`{"event":"unsubscribed","id":"e7","timestamp":1e300,"recipient":"a@example.com"}`), skipped: "event unsubscribed: no readable timestamp"},
		{name: "huge integer timestamp", body: body(`{"event":"unsubscribed","id":"e7","timestamp":99999999999999999999999,"recipient":"a@example.com"}`), skipped: "event unsubscribed: no readable timestamp"},
		{name: "no event-data", body: []byte(`{"signature":{}}`), skipped: "no event-data object", dedup: "-"},
		{name: "event-data null", body: []byte(`{"event-data":null}`), skipped: "no event-data object", dedup: "-"},
		{name: "event-data wrong type", body: []byte(`{"event-data":[1]}`), skipped: "no event-data object", dedup: "-"},
		{name: "wrong field types", body: body(`{"event":1,"id":2,"recipient":3}`), skipped: "event-data: no event"},
		{name: "signed, event-data unreadable: still keyed by token", body: []byte(strings.Replace(string(body(`{}`)), `"event-data":{}`, `"event-data":"x"`, 1)), skipped: "no event-data object"},
		{name: "token of the wrong type", body: []byte(`{"signature":{"token":5},"event-data":{"event":"opened"}}`), skipped: "event opened: no recipient", dedup: "-"},
		{name: "NUL in recipient", body: body(`{"event":"unsubscribed","id":"e8","timestamp":1763635499,"recipient":"a\u0000@example.com"}`), withdrawal: "2025-11-20T10:44:59Z"},
		{name: "invalid UTF-8", body: body("{\"event\":\"unsubscribed\",\"id\":\"e9\",\"timestamp\":1763635499,\"recipient\":\"a\xff@example.com\"}"), withdrawal: "2025-11-20T10:44:59Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := src.Parse(&connectors.Request{Body: tt.body})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.withdrawal != "" {
				if len(b.Signals) != 1 {
					t.Fatalf("signals = %+v skipped %q", b.Signals, b.Skipped)
				}
				s := b.Signals[0]
				if s.Status != consent.StatusWithdrawn || s.Channel != consent.ChannelEmail || s.Purpose != consent.PurposeMarketing ||
					s.Brand != "acme" || s.Source != "mailgun-acme" || s.OccurredAt.Format(time.RFC3339Nano) != tt.withdrawal {
					t.Fatalf("signal = %+v (occurred %s)", s, s.OccurredAt.Format(time.RFC3339Nano))
				}
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
			} else if len(b.Signals) != 0 {
				t.Fatalf("signals = %+v", b.Signals)
			}
			if tt.activity != "" {
				want := consent.Activity{Subject: consent.Subject{Email: "B@Example.com"}, Brand: "acme", Channel: consent.ChannelEmail, Kind: tt.activity,
					OccurredAt: time.Date(2025, 11, 20, 10, 44, 59, 250e6, time.UTC), Source: "mailgun-acme"}
				if len(b.Activities) != 1 || b.Activities[0] != want || b.Activities[0].OccurredAt.Location() != time.UTC {
					t.Fatalf("activities = %+v, want %+v", b.Activities, want)
				}
			} else if len(b.Activities) != 0 {
				t.Fatalf("activities = %+v", b.Activities)
			}
			if len(b.Profiles) != 0 {
				t.Fatalf("profiles = %+v", b.Profiles)
			}
			if tt.undeliverable != (len(b.Undeliverable) == 1) {
				t.Fatalf("undeliverable = %v", b.Undeliverable)
			}
			if tt.skipped != "" && (len(b.Skipped) != 1 || b.Skipped[0] != tt.skipped) {
				t.Fatalf("skipped = %q, want %q", b.Skipped, tt.skipped)
			}
			want := "token:t"
			if tt.dedup == "-" {
				want = ""
			}
			if b.DedupKey != want {
				t.Fatalf("dedup = %q, want %q", b.DedupKey, want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	src := newSource(t, "k")
	for _, in := range []string{"", "null", "[]", `"x"`, "{", "\xff"} {
		if _, err := src.Parse(&connectors.Request{Body: []byte(in)}); !errors.Is(err, connectors.ErrMalformed) {
			t.Fatalf("Parse(%q) = %v", in, err)
		}
	}
	if _, err := src.Parse(nil); !errors.Is(err, connectors.ErrMalformed) {
		t.Fatal(err)
	}
	if err := src.Verify(nil, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatal(err)
	}
}

func FuzzVerify(f *testing.F) {
	fx, _ := fixture(f)
	f.Add(fx.Body)
	f.Add(signed(key, fx.Now.Unix(), "tok", `{}`))
	f.Add([]byte(`{"signature":{"timestamp":1,"token":"","signature":""}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		src := newSource(t, key)
		err := src.Verify(&connectors.Request{Body: body}, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil && src.seen.len() != 1 {
			t.Fatalf("accepted without caching its token")
		}
		// An accepted body is keyed by its signed token in the inbox.
		if err == nil {
			if b, perr := src.Parse(&connectors.Request{Body: body}); perr == nil && !strings.HasPrefix(b.DedupKey, "token") {
				t.Fatalf("accepted body keyed %q, not by its token", b.DedupKey)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, _ := fixture(f)
	f.Add(fx.Body)
	f.Add([]byte(`{"event-data":{"event":"failed","severity":"permanent","recipient":"a@b"}}`))
	f.Add([]byte(`{"event-data":{"event":"complained","timestamp":"1.5e9","recipient":"a@b"}}`))
	f.Add([]byte(`{"event-data":{"event":"clicked","id":"c","timestamp":1763635499.25,"recipient":"a@b"}}`))
	src := newSource(f, key)
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, src, &connectors.Request{Body: body})
		if b == nil {
			return
		}
		for _, s := range b.Signals {
			if s.Status != consent.StatusWithdrawn {
				t.Fatalf("bad signal %+v", s)
			}
		}
		if b.DedupKey != "" && !strings.HasPrefix(b.DedupKey, "token:") && !strings.HasPrefix(b.DedupKey, "token-sha256:") {
			t.Fatalf("dedup %q", b.DedupKey)
		}
		if len(b.Signals)+len(b.Activities)+len(b.Undeliverable) > 1 {
			t.Fatalf("one event, several facts: %+v", b)
		}
		for _, a := range b.Activities {
			switch a.Kind {
			case consent.ActivityDelivered, consent.ActivityOpen, consent.ActivityClick:
			default:
				t.Fatalf("kind %q", a.Kind)
			}
			if strings.TrimSpace(a.Subject.Email) == "" || a.Brand != "acme" || a.Source != "mailgun-acme" || a.Channel != consent.ChannelEmail {
				t.Fatalf("bad activity %+v", a)
			}
		}
	})
}

// TestWithdrawalWithBadDateIsKept: an unsubscribe whose event timestamp
// cannot be read is dated at arrival, never dropped; a click without one
// is still skipped.
func TestWithdrawalWithBadDateIsKept(t *testing.T) {
	t.Parallel()
	src := newSource(t, key)
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		event   string
		signals int
	}{{"unsubscribed", 1}, {"complained", 1}, {"clicked", 0}} {
		body := signed(key, at.Unix(), "tok-"+tt.event, `{"event":"`+tt.event+`","recipient":"a@example.com","timestamp":"never"}`)
		b, err := src.Parse(&connectors.Request{Method: "POST", Body: body, ReceivedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Signals) != tt.signals || len(b.Activities) != 0 {
			t.Fatalf("%s: signals %+v activities %+v, want %d signals", tt.event, b.Signals, b.Activities, tt.signals)
		}
		for _, sig := range b.Signals {
			if sig.Status != consent.StatusWithdrawn || !sig.OccurredAt.Equal(at) {
				t.Fatalf("%s: %+v, want a withdrawal dated %s", tt.event, sig, at)
			}
		}
	}
}
