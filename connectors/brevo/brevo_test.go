package brevo

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const secret = "brevo-webhook-token-4d1f"

func newSource(t testing.TB, secrets ...string) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, config.Source{Name: "brevo-acme", Kind: "brevo", Brand: "acme", Secrets: secrets}, connectors.Deps{})
}

// batch is a realistic batched delivery, shaped after the examples in
// https://developers.brevo.com/docs/marketing-webhooks: a marketing
// unsubscribe, a spam report, a hard bounce, a list addition, and a
// transactional unsubscribe that has only a Paris-time "date".
const batch = `[
 {"id": 1234567, "camp_id": 42, "email": "Lea.Dubois@Example.com", "campaign name": "Newsletter novembre",
  "date_sent": "2025-11-20 11:00:00", "date_event": "2025-11-20 11:10:00", "event": "unsubscribed",
  "tag": "", "ts_sent": 1763632800, "ts_event": 1763633400, "ts": 1763637000, "list_id": [3, 7]},
 {"id": 1234567, "camp_id": 42, "email": "tom@example.org", "campaign name": "Newsletter novembre",
  "date_sent": "2025-11-20 11:00:00", "date_event": "2025-11-20 11:12:30", "event": "spam",
  "reason": "undesired", "tag": "", "ts_sent": 1763632800, "ts_event": 1763633550, "ts": 1763637150},
 {"id": 1234567, "camp_id": 42, "email": "gone@example.net", "event": "hard_bounce", "reason": "550 unknown user",
  "date_event": "2025-11-20 11:01:00", "ts_event": 1763632860},
 {"id": 1234567, "email": "new@example.com", "event": "list_addition", "list_id": [3], "key": "x",
  "date": "2025-11-20 11:20:00", "ts": 1763637600},
 {"event": "unsubscribed", "email": "ana@example.com", "id": 7654321, "date": "2025-07-01 12:00:00",
  "message-id": "<202507011000.123@smtp-relay.mailin.fr>", "tag": "", "subject": "Votre commande"}
]`

func TestParseBatch(t *testing.T) {
	src := newSource(t, secret)
	b, err := src.Parse(&connectors.Request{Body: []byte(batch)})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		email, event, at, list, eventID string
	}{
		{"Lea.Dubois@Example.com", "unsubscribed", "2025-11-20T10:10:00Z", "3,7", "campaign:42"},
		{"tom@example.org", "spam", "2025-11-20T10:12:30Z", "", "campaign:42"},
		// Only "date" (Paris summer time, UTC+2): 12:00 in Paris is 10:00 UTC.
		{"ana@example.com", "unsubscribed", "2025-07-01T10:00:00Z", "", "<202507011000.123@smtp-relay.mailin.fr>"},
	}
	if len(b.Signals) != len(want) {
		t.Fatalf("signals = %+v skipped %q", b.Signals, b.Skipped)
	}
	for i, w := range want {
		s := b.Signals[i]
		if s.Subject.Email != w.email || s.Evidence.Event != w.event || s.OccurredAt.Format(time.RFC3339) != w.at ||
			s.Evidence.ListID != w.list || s.Evidence.EventID != w.eventID || s.Status != consent.StatusWithdrawn ||
			s.Channel != consent.ChannelEmail || s.Purpose != consent.PurposeMarketing || s.Brand != "acme" ||
			s.Source != "brevo-acme" || s.OccurredAt.Location() != time.UTC {
			t.Fatalf("signal %d = %+v (at %s), want %+v", i, s, s.OccurredAt.Format(time.RFC3339), w)
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(b.Undeliverable, ",") != "gone@example.net" {
		t.Fatalf("undeliverable = %v", b.Undeliverable)
	}
	if len(b.Skipped) != 1 || b.Skipped[0] != "item 4: list_addition is not evidence of express consent" {
		t.Fatalf("skipped = %q", b.Skipped)
	}
	// The documented key, computed here: sorted (event, email, camp_id or
	// message-id, ts_event) of every item.
	keys := []string{
		"unsubscribed\x00Lea.Dubois@Example.com\x0042\x001763633400",
		"spam\x00tom@example.org\x0042\x001763633550",
		"hard_bounce\x00gone@example.net\x0042\x001763632860",
		"list_addition\x00new@example.com\x00\x00",
		"unsubscribed\x00ana@example.com\x00<202507011000.123@smtp-relay.mailin.fr>\x00",
	}
	slices.Sort(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	if b.DedupKey != hex.EncodeToString(sum[:]) {
		t.Fatalf("dedup = %q", b.DedupKey)
	}
}

func TestDedupKeyStable(t *testing.T) {
	src := newSource(t, secret)
	one := `{"event":"unsubscribed","email":"a@example.com","camp_id":1,"ts_event":1763633400}`
	two := `{"event":"spam","email":"b@example.com","camp_id":1,"ts_event":1763633401}`
	a, _ := src.Parse(&connectors.Request{Body: []byte("[" + one + "," + two + "]")})
	b, _ := src.Parse(&connectors.Request{Body: []byte("[\n" + two + ",\n" + one + "\n]")})
	c, _ := src.Parse(&connectors.Request{Body: []byte("[" + one + "]")})
	d, _ := src.Parse(&connectors.Request{Body: []byte(one)})
	if a.DedupKey == "" || a.DedupKey != b.DedupKey || a.DedupKey == c.DedupKey || c.DedupKey != d.DedupKey {
		t.Fatalf("keys %q %q %q %q", a.DedupKey, b.DedupKey, c.DedupKey, d.DedupKey)
	}
}

func TestParseItems(t *testing.T) {
	src := newSource(t, secret)
	tests := []struct {
		name    string
		body    string
		at      string // withdrawal time, "" = none
		skipped string
	}{
		{"single object", `{"event":"unsubscribed","email":"a@example.com","camp_id":1,"ts_event":1763633400}`, "2025-11-20T10:10:00Z", ""},
		{"complaint", `{"event":"complaint","email":"a@example.com","ts_event":"1763633400"}`, "2025-11-20T10:10:00Z", ""},
		{"ts_event preferred over date_event", `{"event":"unsubscribed","email":"a@example.com","ts_event":1763633400,"date_event":"2020-01-01 00:00:00"}`, "2025-11-20T10:10:00Z", ""},
		{"ts_epoch (ms)", `{"event":"unsubscribed","email":"a@example.com","ts_epoch":1763633400123}`, "2025-11-20T10:10:00.123Z", ""},
		{"date_event in Paris winter time", `{"event":"unsubscribed","email":"a@example.com","date_event":"2025-11-20 11:10:00"}`, "2025-11-20T10:10:00Z", ""},
		{"ts alone is not trusted", `{"event":"unsubscribed","email":"a@example.com","ts":1763637000}`, "", "item 1: no readable event time"},
		{"bad ts_event falls back to date", `{"event":"unsubscribed","email":"a@example.com","ts_event":"soon","date":"2025-11-20 11:10:00"}`, "2025-11-20T10:10:00Z", ""},
		{"no email", `{"event":"unsubscribed","ts_event":1763633400}`, "", "item 1: no email"},
		{"no event", `{"email":"a@example.com"}`, "", "item 1: no event"},
		{"other event", `{"event":"soft_bounce","email":"a@example.com"}`, "", `item 1: event "soft_bounce": no consent meaning`},
		{"ts_event past year 9999", `{"event":"unsubscribed","email":"a@example.com","ts_event":1099511627775,"date_event":"2025-11-20 11:10:00"}`, "2025-11-20T10:10:00Z", ""},
		{"ts_epoch past year 9999", `{"event":"unsubscribed","email":"a@example.com","ts_epoch":9007199254740992}`, "", "item 1: no readable event time"},
		{"date in year 0 (year -1 in UTC)", `{"event":"unsubscribed","email":"a@example.com","date":"0000-01-01 00:00:00"}`, "", "item 1: no readable event time"},
		{"date before 1970, then a good date_event", `{"event":"unsubscribed","email":"a@example.com","date_event":"1969-12-31 23:00:00","date":"2025-11-20 11:10:00"}`, "2025-11-20T10:10:00Z", ""},
		{"item not an object", `[1]`, "", "item 1: not an object"},
		{"null item", `[null]`, "", "item 1: not an object"},
		{"wrong types", `{"event":["unsubscribed"],"email":{"a":1},"ts_event":true}`, "", "item 1: no event"},
		{"huge ts_event", `{"event":"unsubscribed","email":"a@example.com","ts_event":1e400}`, "", "item 1: no readable event time"},
		{"NUL in email", `{"event":"unsubscribed","email":"a\u0000@example.com","ts_event":1763633400}`, "2025-11-20T10:10:00Z", ""},
		{"invalid UTF-8", "{\"event\":\"unsubscribed\",\"email\":\"a\xff@example.com\",\"ts_event\":1763633400}", "2025-11-20T10:10:00Z", ""},
		{"empty array", `[]`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := src.Parse(&connectors.Request{Body: []byte(tt.body)})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.at == "" && len(b.Signals) != 0 || tt.at != "" && (len(b.Signals) != 1 || b.Signals[0].OccurredAt.Format(time.RFC3339Nano) != tt.at) {
				t.Fatalf("signals = %+v skipped %q", b.Signals, b.Skipped)
			}
			if tt.skipped != "" && (len(b.Skipped) != 1 || b.Skipped[0] != tt.skipped) {
				t.Fatalf("skipped = %q, want %q", b.Skipped, tt.skipped)
			}
		})
	}
}

func TestParseActivities(t *testing.T) {
	src := newSource(t, secret)
	at := time.Date(2025, 11, 20, 10, 10, 0, 0, time.UTC)
	act := func(email string, kind consent.ActivityKind) consent.Activity {
		return consent.Activity{Subject: consent.Subject{Email: email}, Brand: "acme", Channel: consent.ChannelEmail, Kind: kind, OccurredAt: at, Source: "brevo-acme"}
	}
	tests := []struct {
		name    string
		body    string
		want    []consent.Activity
		skipped []string
	}{
		{"delivered", `{"event":"delivered","email":"A@Example.com","camp_id":1,"ts_event":1763633400}`, []consent.Activity{act("A@Example.com", consent.ActivityDelivered)}, nil},
		{"opened (marketing)", `{"event":"opened","email":"a@example.com","camp_id":1,"date_event":"2025-11-20 11:10:00"}`, []consent.Activity{act("a@example.com", consent.ActivityOpen)}, nil},
		{"unique_opened (transactional)", `{"event":"unique_opened","email":"a@example.com","message-id":"<m@x>","ts_epoch":1763633400000}`, []consent.Activity{act("a@example.com", consent.ActivityOpen)}, nil},
		{"click", `{"event":"click","email":"a@example.com","camp_id":1,"ts_event":"1763633400","URL":"https://x.example/"}`, []consent.Activity{act("a@example.com", consent.ActivityClick)}, nil},
		{"Click (case-insensitive, like the other events)", `{"event":"Click","email":"a@example.com","ts_event":1763633400}`, []consent.Activity{act("a@example.com", consent.ActivityClick)}, nil},
		{"batch with a withdrawal", `[{"event":"click","email":"a@example.com","ts_event":1763633400},{"event":"unsubscribed","email":"a@example.com","ts_event":1763633400}]`,
			[]consent.Activity{act("a@example.com", consent.ActivityClick)}, nil},
		{"no email", `{"event":"click","ts_event":1763633400}`, nil, []string{"item 1: no email"}},
		{"no time", `{"event":"delivered","email":"a@example.com","ts":1763633400}`, nil, []string{"item 1: no readable event time"}},
		{"proxy_open is not an open by the person", `{"event":"proxy_open","email":"a@example.com","ts_event":1763633400}`, nil, []string{`item 1: event "proxy_open": no consent meaning`}},
		{"wrong types", `{"event":"click","email":["a@example.com"],"ts_event":{}}`, nil, []string{"item 1: no email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := src.Parse(&connectors.Request{Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.Activities, tt.want) {
				t.Fatalf("activities = %+v, want %+v", b.Activities, tt.want)
			}
			for _, a := range b.Activities {
				if a.OccurredAt.Location() != time.UTC {
					t.Fatalf("not UTC: %v", a.OccurredAt)
				}
			}
			if !slices.Equal(b.Skipped, tt.skipped) {
				t.Fatalf("skipped = %q, want %q", b.Skipped, tt.skipped)
			}
			if len(b.Profiles) != 0 || len(b.Undeliverable) != 0 {
				t.Fatalf("profiles %+v undeliverable %v", b.Profiles, b.Undeliverable)
			}
		})
	}
}

func TestParseLargeBatch(t *testing.T) {
	src := newSource(t, secret)
	var items []string
	for i := range MaxBatch {
		items = append(items, fmt.Sprintf(`{"event":"unsubscribed","email":"u%d@example.com","camp_id":9,"ts_event":%d}`, i, 1763633400+i))
	}
	b, err := src.Parse(&connectors.Request{Body: []byte("[" + strings.Join(items, ",") + "]")})
	if err != nil || len(b.Signals) != MaxBatch {
		t.Fatalf("err %v, %d signals", err, len(b.Signals))
	}
}

func TestParseMalformed(t *testing.T) {
	src := newSource(t, secret)
	for _, in := range []string{"", "null", `"x"`, "42", "{", "[", "[1,", "\xff", "true"} {
		if _, err := src.Parse(&connectors.Request{Body: []byte(in)}); !errors.Is(err, connectors.ErrMalformed) {
			t.Fatalf("Parse(%q) = %v", in, err)
		}
	}
	if _, err := src.Parse(nil); !errors.Is(err, connectors.ErrMalformed) {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name    string
		secrets []string
		auth    string
		wantErr bool
	}{
		{"bearer", []string{secret}, "Bearer " + secret, false},
		{"bearer, lower-case scheme", []string{secret}, "bearer " + secret, false},
		{"basic", []string{secret}, basic("brevo", secret), false},
		{"rotation: second secret matches", []string{"old", secret}, "Bearer " + secret, false},
		{"wrong bearer", []string{secret}, "Bearer nope", true},
		{"one byte off", []string{secret}, "Bearer " + secret[:len(secret)-1] + "g", true},
		{"prefix of the secret", []string{secret}, "Bearer " + secret[:4], true},
		{"wrong basic password", []string{secret}, basic(secret, "nope"), true},
		{"missing header", []string{secret}, "", true},
		{"empty bearer", []string{secret}, "Bearer ", true},
		{"unknown scheme", []string{secret}, "Token " + secret, true},
		{"bare secret", []string{secret}, secret, true},
		{"garbage basic", []string{secret}, "Basic !!!", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, tt.secrets...)
			h := http.Header{}
			if tt.auth != "" {
				h.Set("Authorization", tt.auth)
			}
			err := src.Verify(&connectors.Request{Header: h, Body: []byte(batch)}, time.Now())
			fixtures.VerifyErr(t, err, !tt.wantErr, false, secret)
		})
	}
	src := newSource(t, secret)
	if err := src.Verify(nil, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatal(err)
	}
	if err := src.Verify(&connectors.Request{}, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatal(err)
	}
}

func TestNewSource(t *testing.T) {
	_, err := NewSource(config.Source{Name: "b", Brand: "acme"}, connectors.Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), "secrets:") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewSource(config.Source{Name: "b", Secrets: []string{"x"}}, connectors.Deps{}); err == nil {
		t.Fatal("no brand accepted")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("Bearer " + secret)
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+secret)))
	f.Add("Basic")
	src := newSource(f, secret)
	f.Fuzz(func(t *testing.T, auth string) {
		h := http.Header{}
		h.Set("Authorization", auth)
		err := src.Verify(&connectors.Request{Header: h}, time.Now())
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		if err == nil && !strings.Contains(auth, secret) && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(auth)), "basic") {
			t.Fatalf("accepted %q", auth)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(batch))
	f.Add([]byte(`{"event":"hard_bounce","email":"a@b"}`))
	f.Add([]byte(`[{"event":"spam","email":"a@b","date":"2025-03-30 02:30:00"}]`))
	f.Add([]byte(`[{"event":"click","email":"a@b","ts_event":1763633400},{"event":"unique_opened","email":"a@b","ts_epoch":1763633400000}]`))
	src := newSource(f, secret)
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, src, &connectors.Request{Body: body})
		if b == nil {
			return
		}
		for _, s := range b.Signals {
			if s.Status != consent.StatusWithdrawn || s.Source != "brevo-acme" {
				t.Fatalf("bad signal %+v", s)
			}
			if s.OccurredAt.Year() > 9999 {
				t.Fatalf("unrenderable time %v", s.OccurredAt)
			}
		}
		for _, a := range b.Activities {
			switch a.Kind {
			case consent.ActivityDelivered, consent.ActivityOpen, consent.ActivityClick:
			default:
				t.Fatalf("kind %q", a.Kind)
			}
			if strings.TrimSpace(a.Subject.Email) == "" || a.Brand != "acme" || a.Source != "brevo-acme" || a.Channel != consent.ChannelEmail ||
				a.OccurredAt.Year() > 9999 {
				t.Fatalf("bad activity %+v", a)
			}
		}
	})
}

// TestWithdrawalWithBadDateIsKept: an unsubscribe or spam event whose
// times cannot be read is dated at arrival, never dropped; a click
// without one is still skipped.
func TestWithdrawalWithBadDateIsKept(t *testing.T) {
	t.Parallel()
	s := newSource(t, "tok")
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	body := `[{"event":"unsubscribed","email":"u@example.com","camp_id":1,"date_event":"someday"},` +
		`{"event":"spam","email":"s@example.com","camp_id":1},{"event":"click","email":"c@example.com","camp_id":1}]`
	b, err := s.Parse(&connectors.Request{Method: "POST", Body: []byte(body), ReceivedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 2 || len(b.Activities) != 0 {
		t.Fatalf("signals %+v activities %+v, want 2 withdrawals and no activity", b.Signals, b.Activities)
	}
	for _, sig := range b.Signals {
		if sig.Status != consent.StatusWithdrawn || !sig.OccurredAt.Equal(at) {
			t.Fatalf("%+v, want a withdrawal dated %s", sig, at)
		}
	}
}
