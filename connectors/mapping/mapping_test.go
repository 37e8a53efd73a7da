package mapping

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
)

func source(f config.Fields) config.Source {
	return config.Source{Name: "src", Brand: "acme", Timezone: "Europe/Paris", Fields: &f}
}

var baseFields = config.Fields{
	Email:          "email",
	OccurredAt:     "at",
	EventID:        "id",
	FormID:         "form",
	WordingVersion: "v",
	WordingHash:    "h",
	IP:             "ip",
	UserAgent:      "ua",
	PageURL:        "page",
	Profile:        "profile",
	Consents: []config.ConsentField{
		{Field: "news", Channel: "email", Purpose: "marketing"},
		{Field: "partners", Channel: "email", Purpose: "partners"},
	},
}

func mustMapper(t *testing.T, f config.Fields) *Mapper {
	t.Helper()
	m, err := New(source(f))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func obj(t *testing.T, body string) Lookup {
	t.Helper()
	v, err := DecodeJSON([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return JSON(v)
}

type sigWant struct {
	purpose  consent.Purpose
	channel  consent.Channel
	brand    string
	status   consent.Status
	problems []string
}

func TestMapCheckboxes(t *testing.T) {
	at := time.Date(2025, 11, 20, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		name   string
		fields config.Fields
		body   string
		want   []sigWant
		skip   string
	}{
		{
			name:   "ticked and empty",
			fields: baseFields,
			body:   `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on","partners":""}`,
			want:   []sigWant{{consent.PurposeMarketing, consent.ChannelEmail, "acme", consent.StatusGranted, nil}},
		},
		{
			name:   "unticked grants and withdraws nothing",
			fields: baseFields,
			body:   `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":false,"partners":"0"}`,
			skip:   "no consent given or withdrawn (boxes unticked)",
		},
		{
			name:   "nothing answered",
			fields: baseFields,
			body:   `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":null}`,
			skip:   "no consent field answered",
		},
		{
			name: "withdrawal field unticked",
			fields: config.Fields{Email: "email", OccurredAt: "at", Consents: []config.ConsentField{
				{Field: "news", Channel: "email", Purpose: "marketing", Withdrawal: true},
			}},
			body: `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"no"}`,
			want: []sigWant{{consent.PurposeMarketing, consent.ChannelEmail, "acme", consent.StatusWithdrawn, nil}},
		},
		{
			name:   "ambiguous",
			fields: baseFields,
			body:   `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"maybe","partners":2}`,
			want: []sigWant{
				{consent.PurposeMarketing, consent.ChannelEmail, "acme", consent.StatusGranted, []string{ProblemAmbiguous}},
				{consent.PurposePartners, consent.ChannelEmail, "acme", consent.StatusGranted, []string{ProblemAmbiguous}},
			},
		},
		{
			name: "pre-ticked by config",
			fields: config.Fields{Email: "email", OccurredAt: "at", Consents: []config.ConsentField{
				{Field: "news", Channel: "email", Purpose: "marketing", PreTicked: true},
			}},
			body: `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":true}`,
			want: []sigWant{{consent.PurposeMarketing, consent.ChannelEmail, "acme", consent.StatusGranted, []string{ProblemPreTicked}}},
		},
		{
			name:   "pre-ticked by payload",
			fields: baseFields,
			body:   `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":true,"news_pre_ticked":"1","partners":"yes","partners_pre_ticked":false}`,
			want: []sigWant{
				{consent.PurposeMarketing, consent.ChannelEmail, "acme", consent.StatusGranted, []string{ProblemPreTicked}},
				{consent.PurposePartners, consent.ChannelEmail, "acme", consent.StatusGranted, nil},
			},
		},
		{
			name: "one box, several channels and purposes",
			fields: config.Fields{Email: "email", OccurredAt: "at", Consents: []config.ConsentField{
				{Field: "all", Channel: "email", Purpose: "marketing"},
				{Field: "all", Channel: "sms", Purpose: "marketing"},
				{Field: "all", Channel: "email", Purpose: "partners"},
				{Field: "all", Channel: "email", Purpose: "marketing"}, // duplicate mapping: one signal
			}},
			body: `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","all":"checked"}`,
			want: []sigWant{
				{consent.PurposeMarketing, consent.ChannelEmail, "acme", consent.StatusGranted, []string{ProblemNotSpecific}},
				{consent.PurposeMarketing, consent.ChannelSMS, "acme", consent.StatusGranted, []string{ProblemNotSpecific}},
				{consent.PurposePartners, consent.ChannelEmail, "acme", consent.StatusGranted, []string{ProblemNotSpecific}},
			},
		},
		{
			name: "one box, several brands",
			fields: config.Fields{Email: "email", OccurredAt: "at", Consents: []config.ConsentField{
				{Field: "all", Channel: "email", Purpose: "marketing"},
				{Field: "all", Channel: "email", Purpose: "marketing", Brand: "other", Withdrawal: true},
			}},
			body: `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","all":"y"}`,
			want: []sigWant{
				{consent.PurposeMarketing, consent.ChannelEmail, "acme", consent.StatusGranted, []string{ProblemSeveralBrands}},
				{consent.PurposeMarketing, consent.ChannelEmail, "other", consent.StatusGranted, []string{ProblemSeveralBrands}},
			},
		},
		{
			name: "brand override",
			fields: config.Fields{Email: "email", OccurredAt: "at", Consents: []config.ConsentField{
				{Field: "news", Channel: "email", Purpose: "marketing", Brand: "sister"},
			}},
			body: `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":["weekly"]}`,
			want: []sigWant{{consent.PurposeMarketing, consent.ChannelEmail, "sister", consent.StatusGranted, nil}},
		},
		{
			name:   "no email",
			fields: baseFields,
			body:   `{"at":"2025-11-20T10:30:00Z","news":"on"}`,
			skip:   "no email",
		},
		{
			name:   "email not an address",
			fields: baseFields,
			body:   `{"email":"not-an-email","at":"2025-11-20T10:30:00Z","news":"on"}`,
			skip:   "email is not an address",
		},
		{
			name:   "email with NUL",
			fields: baseFields,
			body:   `{"email":"a\u0000@b.fr","at":"2025-11-20T10:30:00Z","news":"on"}`,
			skip:   "email is not an address",
		},
		{
			name:   "email of wrong type",
			fields: baseFields,
			body:   `{"email":{"x":1},"at":"2025-11-20T10:30:00Z","news":"on"}`,
			skip:   "no email",
		},
		{
			name:   "no time",
			fields: baseFields,
			body:   `{"email":"a@b.fr","news":"on"}`,
			skip:   "no occurred_at",
		},
		{
			name:   "bad time",
			fields: baseFields,
			body:   `{"email":"a@b.fr","at":"yesterday","news":"on"}`,
			skip:   "occurred_at is not a readable time",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustMapper(t, tt.fields)
			res := m.Map(Submission{Get: obj(t, tt.body)})
			if res.Skip != tt.skip {
				t.Fatalf("skip = %q, want %q", res.Skip, tt.skip)
			}
			if len(res.Signals) != len(tt.want) {
				t.Fatalf("got %d signals, want %d: %+v", len(res.Signals), len(tt.want), res.Signals)
			}
			for i, w := range tt.want {
				g := res.Signals[i]
				if g.Purpose != w.purpose || g.Channel != w.channel || g.Brand != w.brand || g.Status != w.status {
					t.Errorf("signal %d = %s %s %s %s, want %s %s %s %s", i, g.Channel, g.Brand, g.Purpose, g.Status, w.channel, w.brand, w.purpose, w.status)
				}
				if !slices.Equal(g.Problems, w.problems) {
					t.Errorf("signal %d problems = %q, want %q", i, g.Problems, w.problems)
				}
				if !g.OccurredAt.Equal(at) || g.OccurredAt.Location() != time.UTC {
					t.Errorf("signal %d occurred_at = %v", i, g.OccurredAt)
				}
				if g.Source != "src" {
					t.Errorf("source = %q", g.Source)
				}
				if err := g.Validate(); err != nil {
					t.Errorf("signal %d invalid: %v", i, err)
				}
			}
		})
	}
}

func TestMapEvidence(t *testing.T) {
	m := mustMapper(t, baseFields)
	res := m.Map(Submission{Get: obj(t, `{"email":" Ann@Example.COM ","at":1763634600,"id":42,"form":"f1","v":"cgu-3","h":"abc",
		"ip":"203.0.113.9","ua":"UA/1","page":"https://x.example/p","profile":"customer","news":"on","news_pre_ticked":"no"}`),
		EventID: "default-id", Event: "form_submission", FormID: "default-form"})
	if len(res.Signals) != 1 {
		t.Fatalf("signals: %+v (skip %q)", res.Signals, res.Skip)
	}
	s := res.Signals[0]
	if s.Subject.Email != " Ann@Example.COM " {
		t.Errorf("email must be kept as sent, got %q", s.Subject.Email)
	}
	no := false
	want := consent.Evidence{EventID: "42", Event: "form_submission", FormID: "f1", Field: "news", WordingVersion: "cgu-3", WordingHash: "abc",
		PageURL: "https://x.example/p", IP: "203.0.113.9", UserAgent: "UA/1", Checkbox: "on", PreTicked: &no}
	got := s.Evidence
	if got.PreTicked == nil || *got.PreTicked {
		t.Errorf("pre_ticked = %v, want false", got.PreTicked)
	}
	got.PreTicked, want.PreTicked = nil, nil
	if got != want {
		t.Errorf("evidence = %+v\nwant %+v", got, want)
	}
	if res.EventID != "42" || res.Profile != "customer" {
		t.Errorf("event id %q profile %q", res.EventID, res.Profile)
	}
	if !s.OccurredAt.Equal(time.Unix(1763634600, 0)) {
		t.Errorf("occurred_at %v", s.OccurredAt)
	}

	// Defaults apply when the mapping's fields are missing.
	res = m.Map(Submission{Get: obj(t, `{"email":"a@b.fr","news":"on"}`), EventID: "ev", FormID: "fm",
		OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))})
	if len(res.Signals) != 1 {
		t.Fatalf("signals: %+v (skip %q)", res.Signals, res.Skip)
	}
	if e := res.Signals[0].Evidence; e.EventID != "ev" || e.FormID != "fm" {
		t.Errorf("defaults not used: %+v", e)
	}
	if at := res.Signals[0].OccurredAt; !at.Equal(time.Date(2025, 1, 2, 2, 4, 5, 0, time.UTC)) || at.Location() != time.UTC {
		t.Errorf("fallback occurred_at %v", at)
	}
}

func TestMapPhoneOnly(t *testing.T) {
	m := mustMapper(t, config.Fields{Phone: "tel", OccurredAt: "at", Consents: []config.ConsentField{{Field: "sms", Channel: "sms", Purpose: "marketing"}}})
	res := m.Map(Submission{Get: obj(t, `{"tel":"06 12 34 56 78","at":"2025-11-20 11:30:00","sms":"1"}`)})
	if len(res.Signals) != 1 || res.Signals[0].Subject.Phone != "06 12 34 56 78" {
		t.Fatalf("got %+v skip %q", res.Signals, res.Skip)
	}
	// "YYYY-MM-DD HH:MM:SS" is read in the source's zone (Europe/Paris, UTC+1 in November).
	if at := res.Signals[0].OccurredAt; !at.Equal(time.Date(2025, 11, 20, 10, 30, 0, 0, time.UTC)) {
		t.Errorf("occurred_at %v", at)
	}
	res = m.Map(Submission{Get: obj(t, `{"at":"2025-11-20 11:30:00","sms":"1"}`)})
	if res.Skip != "no phone" {
		t.Errorf("skip %q", res.Skip)
	}
	// A bad email beside a phone keeps the phone.
	m = mustMapper(t, config.Fields{Email: "email", Phone: "tel", OccurredAt: "at", Consents: []config.ConsentField{{Field: "sms", Channel: "sms", Purpose: "marketing"}}})
	res = m.Map(Submission{Get: obj(t, `{"email":"nope","tel":"+33612345678","at":"2025-11-20T10:30:00Z","sms":"1"}`)})
	if len(res.Signals) != 1 || res.Signals[0].Subject.Email != "" || res.Signals[0].Subject.Phone != "+33612345678" {
		t.Fatalf("got %+v skip %q", res.Signals, res.Skip)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Source
		want string
	}{
		{"no fields", config.Source{Brand: "a"}, "fields:"},
		{"no email", config.Source{Brand: "a", Fields: &config.Fields{Consents: baseFields.Consents}}, "fields.email:"},
		{"no consents", config.Source{Brand: "a", Fields: &config.Fields{Email: "e"}}, "fields.consents:"},
		{"bad channel", config.Source{Brand: "a", Fields: &config.Fields{Email: "e", Consents: []config.ConsentField{{Field: "x", Channel: "fax", Purpose: "marketing"}}}}, "fields.consents[0].channel:"},
		{"bad purpose", config.Source{Brand: "a", Fields: &config.Fields{Email: "e", Consents: []config.ConsentField{{Field: "x", Channel: "email", Purpose: "x"}}}}, "fields.consents[0].purpose:"},
		{"no field", config.Source{Brand: "a", Fields: &config.Fields{Email: "e", Consents: []config.ConsentField{{Channel: "email", Purpose: "marketing"}}}}, "fields.consents[0].field:"},
		{"bad zone", config.Source{Brand: "a", Timezone: "Mars/Base", Fields: &baseFields}, "timezone:"},
		{"no brand", config.Source{Fields: &baseFields}, "brand:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	want := time.Date(2025, 11, 20, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		in   any
		want time.Time
		ok   bool
	}{
		{"2025-11-20T10:30:00Z", want, true},
		{"2025-11-20T11:30:00+01:00", want, true},
		{"2025-11-20T11:30:00+0100", want, true},
		{"2025-11-20T10:30:00.250Z", want.Add(250 * time.Millisecond), true},
		{" 2025-11-20 11:30:00 ", want, true}, // Paris
		{"2025-11-20T11:30:00", want, true},   // Paris
		{"2025-11-20 10:30:00Z", want, true},
		{"1763634600", want, true},
		{"1763634600000", want, true},
		{"1763634600.5", want.Add(500 * time.Millisecond), true},
		{jsonNumber("1763634600"), want, true},
		{jsonNumber("1763634600000"), want, true},
		{float64(1763634600), want, true},
		{jsonNumber("1e400"), time.Time{}, false},
		{jsonNumber("99999999999999999999999"), time.Time{}, false},
		{"-5", time.Time{}, false},
		{"0", time.Time{}, false},
		{"10000-01-01T00:00:00Z", time.Time{}, false},
		{"0001-01-01T00:00:00Z", time.Time{}, false},
		{"tomorrow", time.Time{}, false},
		{"", time.Time{}, false},
		{true, time.Time{}, false},
		{nil, time.Time{}, false},
		{map[string]any{}, time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseTime(tt.in, paris)
		if ok != tt.ok || !got.Equal(tt.want) || (ok && got.Location() != time.UTC) {
			t.Errorf("ParseTime(%#v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLookups(t *testing.T) {
	get := obj(t, `{"a":{"b":[{"c":"deep"}]},"Mr. or Mrs.":"x","data":{"E.mail":"e@x.fr"},"n":null}`)
	tests := []struct {
		path string
		want any
		ok   bool
	}{
		{"a.b.0.c", "deep", true},
		{"a.b.1.c", nil, false},
		{"a.b.-1", nil, false},
		{"Mr. or Mrs.", "x", true},
		{"data.E.mail", "e@x.fr", true},
		{"n", nil, true},
		{"missing", nil, false},
		{"", nil, false},
	}
	for _, tt := range tests {
		got, ok := get(tt.path)
		if ok != tt.ok || got != tt.want {
			t.Errorf("JSON(%q) = %v, %v", tt.path, got, ok)
		}
	}
	vals, _ := url.ParseQuery("email=a%40b.fr&data%5Bemail%5D=c%40d.fr&topics%5B%5D=x&topics%5B%5D=y&empty=")
	fget := Values(vals)
	if v, _ := fget("email"); v != "a@b.fr" {
		t.Errorf("email = %v", v)
	}
	if v, _ := fget("data.email"); v != "c@d.fr" {
		t.Errorf("data.email = %v", v)
	}
	if v, _ := fget("topics"); !slices.Equal(v.([]string), []string{"x", "y"}) {
		t.Errorf("topics = %v", v)
	}
	if v, ok := fget("empty"); !ok || v != "" {
		t.Errorf("empty = %v, %v", v, ok)
	}
}

func TestText(t *testing.T) {
	for in, want := range map[any]string{"x": "x", true: "true", float64(3): "3", 1.5: "1.5", jsonNumber("12345678901234567890"): "12345678901234567890", "a\xffb": "ab"} {
		if got, ok := Text(in); !ok || got != want {
			t.Errorf("Text(%#v) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []any{nil, map[string]any{}, []any{}, []any{1, 2}} {
		if _, ok := Text(in); ok {
			t.Errorf("Text(%#v) ok", in)
		}
	}
}

func FuzzMap(f *testing.F) {
	f.Add([]byte(`{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","partners":"maybe"}`))
	f.Add([]byte(`{"email":"a@b.fr","at":1763634600000,"news":[1],"news_pre_ticked":true}`))
	f.Add([]byte(`{"email":null,"at":{"x":[]},"news":"\u0000"}`))
	m, err := New(source(baseFields))
	if err != nil {
		f.Fatal(err)
	}
	fallback := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := DecodeJSON(body)
		if err != nil {
			return
		}
		res := m.Map(Submission{Get: JSON(v), OccurredAt: fallback})
		if (res.Skip == "") == (len(res.Signals) == 0) {
			t.Fatalf("skip %q with %d signals", res.Skip, len(res.Signals))
		}
		for _, s := range res.Signals {
			if err := s.Validate(); err != nil {
				t.Fatalf("invalid signal %+v: %v", s, err)
			}
			if s.OccurredAt.Location() != time.UTC {
				t.Fatalf("occurred_at not UTC: %v", s.OccurredAt)
			}
			if s.Status == consent.StatusWithdrawn && len(s.Problems) > 0 {
				t.Fatalf("withdrawal with problems")
			}
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2025-11-20T10:30:00Z", "2025-11-20 10:30:00", "1763634600", "1763634600000", "1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{s, jsonNumber(s)} {
			if got, ok := ParseTime(v, time.UTC); ok {
				if y := got.Year(); y < 1970 || y > 9999 || got.Location() != time.UTC {
					t.Fatalf("ParseTime(%q) = %v", s, got)
				}
			}
		}
	})
}
