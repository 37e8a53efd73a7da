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

func TestMapActivitiesAndProfiles(t *testing.T) {
	at := time.Date(2025, 11, 20, 10, 30, 0, 0, time.UTC)
	email := consent.Subject{Email: "A@B.fr"}
	phone := consent.Subject{Phone: "+33612345678"}
	form := func(sub consent.Subject, brand string, ch consent.Channel) []consent.Activity {
		return []consent.Activity{{Subject: sub, Brand: brand, Channel: ch, Kind: consent.ActivityForm, OccurredAt: at, Source: "src"}}
	}
	fact := func(sub consent.Subject, brand string, p consent.Profile) consent.ProfileFact {
		return consent.ProfileFact{Subject: sub, Brand: brand, Profile: p, OccurredAt: at, Source: "src"}
	}
	phoneFields := config.Fields{Phone: "tel", OccurredAt: "at", Profile: "profile", Consents: []config.ConsentField{{Field: "sms", Channel: "sms", Purpose: "marketing"}}}
	tests := []struct {
		name       string
		fields     config.Fields
		profile    string // config.Source.Profile
		brand      string // Submission.Brand
		body       string
		signals    int
		skip       string
		activities []consent.Activity
		profiles   []consent.ProfileFact
	}{
		{name: "grant: one form contact", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on"}`,
			signals: 1, activities: form(email, "acme", consent.ChannelEmail)},
		{name: "nothing answered is still a contact", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z"}`,
			skip: "no consent field answered", activities: form(email, "acme", consent.ChannelEmail)},
		{name: "boxes unticked is still a contact", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"no"}`,
			skip: "no consent given or withdrawn (boxes unticked)", activities: form(email, "acme", consent.ChannelEmail)},
		{name: "no subject: nothing", fields: baseFields, body: `{"at":"2025-11-20T10:30:00Z","news":"on","profile":"customer"}`, skip: "no email"},
		{name: "bad email: nothing", fields: baseFields, body: `{"email":"nope","at":"2025-11-20T10:30:00Z","news":"on","profile":"customer"}`, skip: "email is not an address"},
		{name: "no time: nothing", fields: baseFields, body: `{"email":"A@B.fr","news":"on","profile":"customer"}`, skip: "no occurred_at"},
		{name: "phone only: sms", fields: phoneFields, body: `{"tel":"+33612345678","at":"2025-11-20T10:30:00Z","sms":"1","profile":"Professional"}`,
			signals: 1, activities: form(phone, "acme", consent.ChannelSMS), profiles: []consent.ProfileFact{fact(phone, "acme", consent.ProfileProfessional)}},
		{name: "profile field customer, any case", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on","profile":" CUSTOMER "}`,
			signals: 1, activities: form(email, "acme", consent.ChannelEmail), profiles: []consent.ProfileFact{fact(email, "acme", consent.ProfileCustomer)}},
		{name: "profile field prospect", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on","profile":"prospect"}`,
			signals: 1, activities: form(email, "acme", consent.ChannelEmail)},
		{name: "profile field free text", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on","profile":"a loyal customer"}`,
			signals: 1, activities: form(email, "acme", consent.ChannelEmail)},
		{name: "profile field of the wrong type", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on","profile":{"x":"customer"}}`,
			signals: 1, activities: form(email, "acme", consent.ChannelEmail)},
		{name: "profile field as a one-item list", fields: baseFields, body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","profile":["professional"]}`,
			skip: "no consent field answered", activities: form(email, "acme", consent.ChannelEmail), profiles: []consent.ProfileFact{fact(email, "acme", consent.ProfileProfessional)}},
		{name: "source default customer", fields: baseFields, profile: "customer", body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on"}`,
			signals: 1, activities: form(email, "acme", consent.ChannelEmail), profiles: []consent.ProfileFact{fact(email, "acme", consent.ProfileCustomer)}},
		{name: "source default prospect", fields: baseFields, profile: "prospect", body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on","profile":""}`,
			signals: 1, activities: form(email, "acme", consent.ChannelEmail)},
		{name: "source default and field agree: one fact", fields: baseFields, profile: "professional", body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","profile":"professional"}`,
			skip: "no consent field answered", activities: form(email, "acme", consent.ChannelEmail), profiles: []consent.ProfileFact{fact(email, "acme", consent.ProfileProfessional)}},
		{name: "source default and field differ: both", fields: baseFields, profile: "professional", body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","profile":"customer"}`,
			skip: "no consent field answered", activities: form(email, "acme", consent.ChannelEmail),
			profiles: []consent.ProfileFact{fact(email, "acme", consent.ProfileCustomer), fact(email, "acme", consent.ProfileProfessional)}},
		{name: "submission brand", fields: baseFields, brand: "sister", body: `{"email":"A@B.fr","at":"2025-11-20T10:30:00Z","news":"on","profile":"customer"}`,
			signals: 1, activities: form(email, "sister", consent.ChannelEmail), profiles: []consent.ProfileFact{fact(email, "sister", consent.ProfileCustomer)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := source(tt.fields)
			cfg.Profile = tt.profile
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res := m.Map(Submission{Get: obj(t, tt.body), Brand: tt.brand})
			if res.Skip != tt.skip || len(res.Signals) != tt.signals {
				t.Fatalf("skip %q signals %+v", res.Skip, res.Signals)
			}
			if !slices.Equal(res.Activities, tt.activities) {
				t.Errorf("activities %+v\nwant %+v", res.Activities, tt.activities)
			}
			if !slices.Equal(res.Profiles, tt.profiles) {
				t.Errorf("profiles %+v\nwant %+v", res.Profiles, tt.profiles)
			}
			for _, a := range res.Activities {
				if a.OccurredAt.Location() != time.UTC {
					t.Errorf("activity time not UTC")
				}
			}
			for _, s := range res.Signals {
				if s.Brand != "acme" {
					t.Errorf("the submission brand moved a consent: %+v", s)
				}
			}
		})
	}
}

func TestMapRequiredAndDoubleOptIn(t *testing.T) {
	at := time.Date(2025, 11, 20, 10, 30, 0, 0, time.UTC)
	fields := config.Fields{Email: "email", OccurredAt: "at", ConfirmedAt: "confirmed", Consents: []config.ConsentField{
		{Field: "news", Channel: "email", Purpose: "marketing", DoubleOptIn: true},
		{Field: "terms_and_news", Channel: "email", Purpose: "marketing", Brand: "sister", Required: true},
		{Field: "prefs", Channel: "sms", Purpose: "marketing", Required: true, Withdrawal: true},
	}}
	type want struct {
		brand     string
		status    consent.Status
		required  bool
		confirmed string // RFC 3339, "" = none
		optIn     string
		problems  []string
	}
	tests := []struct {
		name   string
		fields config.Fields
		body   string
		want   []want
	}{
		{"double opt-in ticked, not confirmed: pending", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on"}`,
			[]want{{"acme", consent.StatusPending, false, "", "", nil}}},
		{"double opt-in confirmed: granted", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":"2025-11-20T11:45:00+01:00"}`,
			[]want{{"acme", consent.StatusGranted, false, "2025-11-20T10:45:00Z", OptInDouble, nil}}},
		{"confirmation in Unix ms", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":1763635500000}`,
			[]want{{"acme", consent.StatusGranted, false, "2025-11-20T10:45:00Z", OptInDouble, nil}}},
		{"confirmation without zone: source zone (Paris)", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":"2025-11-20 11:45:00"}`,
			[]want{{"acme", consent.StatusGranted, false, "2025-11-20T10:45:00Z", OptInDouble, nil}}},
		{"unreadable confirmation: pending", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":"yes"}`,
			[]want{{"acme", consent.StatusPending, false, "", "", nil}}},
		{"null confirmation: pending", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":null}`,
			[]want{{"acme", consent.StatusPending, false, "", "", nil}}},
		{"double opt-in unticked: nothing", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"off","confirmed":"2025-11-20T10:45:00Z"}`, nil},
		{"double opt-in ambiguous: recorded grant, never applied", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"maybe"}`,
			[]want{{"acme", consent.StatusGranted, false, "", "", []string{ProblemAmbiguous}}}},
		{"confirmation on a box without double opt-in: ignored", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","terms_and_news":"1","confirmed":"2025-11-20T10:45:00Z"}`,
			[]want{{"sister", consent.StatusGranted, true, "", "", nil}}},
		{"required box ticked", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","terms_and_news":true}`,
			[]want{{"sister", consent.StatusGranted, true, "", "", nil}}},
		{"required box ambiguous", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","terms_and_news":"sure"}`,
			[]want{{"sister", consent.StatusGranted, true, "", "", []string{ProblemAmbiguous}}}},
		{"required withdrawal field unticked: a withdrawal, not a grant", fields, `{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","prefs":"0"}`,
			[]want{{"acme", consent.StatusWithdrawn, false, "", "", nil}}},
		{"double opt-in without confirmed_at mapped: pending", config.Fields{Email: "email", OccurredAt: "at", Consents: []config.ConsentField{
			{Field: "news", Channel: "email", Purpose: "marketing", DoubleOptIn: true}}},
			`{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":"2025-11-20T10:45:00Z"}`,
			[]want{{"acme", consent.StatusPending, false, "", "", nil}}},
		{"double opt-in pre-ticked and confirmed", config.Fields{Email: "email", OccurredAt: "at", ConfirmedAt: "confirmed", Consents: []config.ConsentField{
			{Field: "news", Channel: "email", Purpose: "marketing", DoubleOptIn: true, PreTicked: true, Required: true}}},
			`{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":"2025-11-20T10:45:00Z"}`,
			[]want{{"acme", consent.StatusGranted, true, "2025-11-20T10:45:00Z", OptInDouble, []string{ProblemPreTicked}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustMapper(t, tt.fields)
			res := m.Map(Submission{Get: obj(t, tt.body)})
			if len(res.Signals) != len(tt.want) {
				t.Fatalf("signals %+v (skip %q), want %d", res.Signals, res.Skip, len(tt.want))
			}
			for i, w := range tt.want {
				g := res.Signals[i]
				conf := ""
				if g.Evidence.ConfirmedAt != nil {
					if g.Evidence.ConfirmedAt.Location() != time.UTC {
						t.Errorf("confirmed_at not UTC")
					}
					conf = g.Evidence.ConfirmedAt.Format(time.RFC3339)
				}
				if g.Brand != w.brand || g.Status != w.status || g.Evidence.Required != w.required || conf != w.confirmed ||
					g.Evidence.OptInLevel != w.optIn || !slices.Equal(g.Problems, w.problems) {
					t.Errorf("signal %d = %s %s required=%v confirmed=%q opt-in=%q problems=%q, want %+v",
						i, g.Brand, g.Status, g.Evidence.Required, conf, g.Evidence.OptInLevel, g.Problems, w)
				}
				// A confirmed grant keeps the submission time: the consent was
				// given by ticking; the confirmation is its proof.
				if !g.OccurredAt.Equal(at) {
					t.Errorf("occurred_at %v", g.OccurredAt)
				}
				if err := g.Validate(); err != nil {
					t.Error(err)
				}
			}
		})
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
		// The Unix epoch is what senders write for no date (JavaScript's
		// new Date(0).toISOString(), a zeroed field): as the number 0 is,
		// its text is refused, so the submission is dated at arrival
		// instead of 1970 (where a withdrawal would lose to any grant).
		{"1970-01-01T00:00:00Z", time.Time{}, false},
		{"1970-01-01T00:00:00.000Z", time.Time{}, false},
		{"1970-01-01T01:00:00+01:00", time.Time{}, false},
		{"1970-01-01 01:00:00", time.Time{}, false}, // Paris: the epoch
		{"1970-01-01T00:00:01Z", time.Unix(1, 0).UTC(), true},
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
	f.Add([]byte(`{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","profile":"Customer","news":"yes"}`))
	f.Add([]byte(`{"email":"a@b.fr","at":"2025-11-20T10:30:00Z","news":"on","confirmed":"2025-11-20 11:00:00","partners":true}`))
	fields := baseFields
	fields.ConfirmedAt = "confirmed"
	fields.Consents = []config.ConsentField{
		{Field: "news", Channel: "email", Purpose: "marketing", DoubleOptIn: true},
		{Field: "partners", Channel: "email", Purpose: "partners", Required: true},
	}
	m, err := New(source(fields))
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
		if len(res.Signals) > 0 && len(res.Activities) != 1 {
			t.Fatalf("signals without their form activity: %+v", res.Activities)
		}
		if len(res.Activities) > 1 || len(res.Profiles) > 2 || (len(res.Activities) == 0 && len(res.Profiles) > 0) {
			t.Fatalf("activities %+v profiles %+v", res.Activities, res.Profiles)
		}
		for _, a := range res.Activities {
			if a.Kind != consent.ActivityForm || a.Subject.Key() == "" || a.Brand != "acme" || a.Source != "src" ||
				a.OccurredAt.IsZero() || a.OccurredAt.Location() != time.UTC {
				t.Fatalf("bad activity %+v", a)
			}
		}
		for _, p := range res.Profiles {
			if (p.Profile != consent.ProfileCustomer && p.Profile != consent.ProfileProfessional) || p.Subject.Key() == "" || p.Brand != "acme" ||
				p.Source != "src" || p.OccurredAt.IsZero() || p.OccurredAt.Location() != time.UTC {
				t.Fatalf("bad profile %+v", p)
			}
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
			if (s.Evidence.ConfirmedAt != nil) != (s.Evidence.OptInLevel == OptInDouble) || (s.Evidence.ConfirmedAt != nil && s.Status != consent.StatusGranted) {
				t.Fatalf("confirmation evidence on %+v", s)
			}
			if s.Status == consent.StatusPending && s.Purpose != consent.PurposeMarketing {
				t.Fatalf("pending without double opt-in: %+v", s)
			}
			if s.Evidence.Required != (s.Purpose == consent.PurposePartners) {
				t.Fatalf("required evidence on %+v", s)
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

// TestMapPartnerList: a partners box carries the partner list the person
// saw — the submission's field when mapped, else the mapping's fixed list —
// and only a partners box does; without either, none (and the rules fail
// "informed").
func TestMapPartnerList(t *testing.T) {
	withField := baseFields
	withField.PartnerList = "plist"
	withFixed := baseFields
	withFixed.Consents = []config.ConsentField{
		{Field: "news", Channel: "email", Purpose: "marketing"},
		{Field: "partners", Channel: "email", Purpose: "partners", PartnerList: "partners-2025-10"},
	}
	both := withFixed
	both.PartnerList = "plist"
	for _, tc := range []struct {
		name   string
		fields config.Fields
		body   string
		want   string
	}{
		{"none", baseFields, `{"email":"a@b.fr","at":1763634600,"news":"on","partners":"on","plist":"v9"}`, ""},
		{"field", withField, `{"email":"a@b.fr","at":1763634600,"news":"on","partners":"on","plist":" v9 "}`, "v9"},
		{"field absent", withField, `{"email":"a@b.fr","at":1763634600,"news":"on","partners":"on"}`, ""},
		{"fixed", withFixed, `{"email":"a@b.fr","at":1763634600,"news":"on","partners":"on"}`, "partners-2025-10"},
		{"field wins", both, `{"email":"a@b.fr","at":1763634600,"news":"on","partners":"on","plist":"v9"}`, "v9"},
		{"field empty: fixed", both, `{"email":"a@b.fr","at":1763634600,"news":"on","partners":"on","plist":""}`, "partners-2025-10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustMapper(t, tc.fields).Map(Submission{Get: obj(t, tc.body)})
			if len(res.Signals) != 2 {
				t.Fatalf("signals: %+v", res.Signals)
			}
			for _, s := range res.Signals {
				want := ""
				if s.Purpose == consent.PurposePartners {
					want = tc.want
				}
				if s.Evidence.PartnerList != want {
					t.Errorf("%s: partner_list %q, want %q", s.Purpose, s.Evidence.PartnerList, want)
				}
			}
		})
	}
}
