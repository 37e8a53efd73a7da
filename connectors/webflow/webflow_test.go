package webflow

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const secret = "wf-webhook-secret-2d4e"

// A form_submission as Webflow documents it
// (https://developers.webflow.com/data/reference/webhooks/events/form-submission).
const body = `{
  "triggerType": "form_submission",
  "payload": {
    "name": "Newsletter",
    "siteId": "65427cf400e02b306eaa049c",
    "data": {
      "Name": "Jules Petit",
      "Email": "Jules.Petit@Example.org",
      "Newsletter ACME": "true",
      "Offres partenaires": "false",
      "Consent version": "wf-2025-10"
    },
    "schema": [],
    "submittedAt": "2025-11-20T10:15:30.117Z",
    "id": "6321ca84df3949bfc6752327",
    "formId": "65429eadebe8a9f3a30f62d0",
    "formElementId": "4e038d2c-6a1e-4953-7be9-a59a2b453177"
  }
}`

var now = time.Date(2025, 11, 20, 10, 15, 31, 0, time.UTC)

func cfg() config.Source {
	return config.Source{
		Name: "webflow-acme", Kind: "webflow", Brand: "acme", Secrets: []string{secret}, Tolerance: 5 * time.Minute,
		Fields: &config.Fields{
			Email:          "data.Email",
			WordingVersion: "data.Consent version",
			Consents: []config.ConsentField{
				{Field: "data.Newsletter ACME", Channel: "email", Purpose: "marketing"},
				{Field: "Offres partenaires", Channel: "email", Purpose: "partners"}, // bare label
			},
		},
	}
}

func newSource(t testing.TB, c config.Source) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, c, connectors.Deps{})
}

// sign computes the documented scheme independently of Sign.
func sign(sec, ts string, b []byte) string {
	m := hmac.New(sha256.New, []byte(sec))
	m.Write([]byte(ts + ":"))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

func request(headers map[string]string, b []byte) *connectors.Request {
	r := fixtures.Post("/webhooks/webflow-acme", headers, b)
	if _, ok := r.Header["Content-Type"]; !ok {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

func TestSubmission(t *testing.T) {
	s := newSource(t, cfg())
	r := request(Sign(secret, []byte(body), now.Add(-time.Second)), []byte(body))
	if err := s.Verify(r, now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	b, err := s.Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	want := []fixtures.Signal{{Email: "jules.petit@example.org", Channel: "email", Brand: "acme", Purpose: "marketing", Status: "granted",
		OccurredAt: time.Date(2025, 11, 20, 10, 15, 30, 117e6, time.UTC)}}
	if d := fixtures.DiffSignals(b.Signals, want); d != "" {
		t.Error(d)
	}
	if b.DedupKey != "6321ca84df3949bfc6752327" {
		t.Errorf("dedup %q", b.DedupKey)
	}
	ev := b.Signals[0].Evidence
	if ev.FormID != "65429eadebe8a9f3a30f62d0" || ev.EventID != "6321ca84df3949bfc6752327" || ev.WordingVersion != "wf-2025-10" || ev.Event != "form_submission" || ev.Checkbox != "true" {
		t.Errorf("evidence %+v", ev)
	}
	wantA := consent.Activity{Subject: consent.Subject{Email: "Jules.Petit@Example.org"}, Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityForm,
		OccurredAt: time.Date(2025, 11, 20, 10, 15, 30, 117e6, time.UTC), Source: "webflow-acme"}
	if len(b.Activities) != 1 || b.Activities[0] != wantA || len(b.Profiles) != 0 {
		t.Errorf("activities %+v profiles %+v", b.Activities, b.Profiles)
	}
}

func TestProfilesAndDoubleOptIn(t *testing.T) {
	c := cfg()
	f := *c.Fields
	f.Profile = "data.Vous êtes"
	f.ConfirmedAt = "data.Confirmed"
	f.Consents = []config.ConsentField{{Field: "data.Newsletter ACME", Channel: "email", Purpose: "marketing", DoubleOptIn: true}}
	c.Fields = &f
	c.Profile = "professional"
	s := newSource(t, c)
	at := time.Date(2025, 11, 20, 10, 15, 30, 0, time.UTC)
	sub := consent.Subject{Email: "a@b.fr"}
	tests := []struct {
		name     string
		data     string
		status   consent.Status
		profiles []consent.Profile
	}{
		{"pending, default profile", `"Newsletter ACME":"true"`, consent.StatusPending, []consent.Profile{consent.ProfileProfessional}},
		{"confirmed, customer said", `"Newsletter ACME":"true","Confirmed":"2025-11-20T10:20:00Z","Vous êtes":"customer"`, consent.StatusGranted,
			[]consent.Profile{consent.ProfileCustomer, consent.ProfileProfessional}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"triggerType":"form_submission","payload":{"id":"x","submittedAt":"2025-11-20T10:15:30Z","data":{"Email":"a@b.fr",` + tt.data + `}}}`
			b, err := s.Parse(request(nil, []byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Signals) != 1 || b.Signals[0].Status != tt.status {
				t.Fatalf("signals %+v", b.Signals)
			}
			if tt.status == consent.StatusGranted && (b.Signals[0].Evidence.ConfirmedAt == nil || !b.Signals[0].Evidence.ConfirmedAt.Equal(at.Add(270*time.Second))) {
				t.Errorf("confirmed_at %v", b.Signals[0].Evidence.ConfirmedAt)
			}
			wantA := []consent.Activity{{Subject: sub, Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityForm, OccurredAt: at, Source: "webflow-acme"}}
			if !slices.Equal(b.Activities, wantA) {
				t.Errorf("activities %+v", b.Activities)
			}
			var wantP []consent.ProfileFact
			for _, p := range tt.profiles {
				wantP = append(wantP, consent.ProfileFact{Subject: sub, Brand: "acme", Profile: p, OccurredAt: at, Source: "webflow-acme"})
			}
			if !slices.Equal(b.Profiles, wantP) {
				t.Errorf("profiles %+v\nwant %+v", b.Profiles, wantP)
			}
		})
	}
	// Another trigger is no submission: no contact.
	b, err := s.Parse(request(nil, []byte(`{"triggerType":"site_publish","payload":{"data":{"Email":"a@b.fr"},"submittedAt":"2025-11-20T10:15:30Z"}}`)))
	if err != nil || len(b.Activities) != 0 || len(b.Profiles) != 0 {
		t.Fatalf("site_publish: %v %+v", err, b)
	}
}

func TestVerify(t *testing.T) {
	b := []byte(body)
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	stale := strconv.FormatInt(now.Add(-5*time.Minute-time.Second).UnixMilli(), 10)
	tampered := append([]byte(nil), b...)
	tampered[5] ^= 1
	rotated := cfg()
	rotated.Secrets = []string{"wf-new", secret}
	tests := []struct {
		name  string
		c     config.Source
		h     map[string]string
		body  []byte
		ok    bool
		stale bool
	}{
		{"valid", cfg(), map[string]string{TimestampHeader: ts, SignatureHeader: sign(secret, ts, b)}, b, true, false},
		{"Sign matches the scheme", cfg(), Sign(secret, b, now), b, true, false},
		{"tampered", cfg(), map[string]string{TimestampHeader: ts, SignatureHeader: sign(secret, ts, b)}, tampered, false, false},
		{"wrong secret", cfg(), map[string]string{TimestampHeader: ts, SignatureHeader: sign("x", ts, b)}, b, false, false},
		{"timestamp changed", cfg(), map[string]string{TimestampHeader: strconv.FormatInt(now.UnixMilli()+1, 10), SignatureHeader: sign(secret, ts, b)}, b, false, false},
		{"stale", cfg(), map[string]string{TimestampHeader: stale, SignatureHeader: sign(secret, stale, b)}, b, false, true},
		{"seconds not ms", cfg(), map[string]string{TimestampHeader: ts[:10], SignatureHeader: sign(secret, ts[:10], b)}, b, false, true},
		{"missing signature", cfg(), map[string]string{TimestampHeader: ts}, b, false, false},
		{"missing timestamp", cfg(), map[string]string{SignatureHeader: sign(secret, ts, b)}, b, false, false},
		{"junk timestamp", cfg(), map[string]string{TimestampHeader: "soon", SignatureHeader: sign(secret, "soon", b)}, b, false, false},
		{"rotation", rotated, map[string]string{TimestampHeader: ts, SignatureHeader: sign(secret, ts, b)}, b, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fixtures.VerifyErr(t, newSource(t, tt.c).Verify(request(tt.h, tt.body), now), tt.ok, tt.stale)
		})
	}
}

func TestParseCases(t *testing.T) {
	s := newSource(t, cfg())
	tests := []struct {
		name    string
		body    string
		signals int
		skipped int
		err     bool
	}{
		{"other trigger", `{"triggerType":"site_publish","payload":{"domains":[]}}`, 0, 1, false},
		{"other trigger without payload", `{"triggerType":"site_publish"}`, 0, 1, false},
		{"no data", `{"triggerType":"form_submission","payload":{"id":"x","submittedAt":"2025-11-20T10:15:30Z"}}`, 0, 1, false},
		{"checkbox as bool", `{"triggerType":"form_submission","payload":{"id":"x","submittedAt":"2025-11-20T10:15:30Z","data":{"Email":"a@b.fr","Newsletter ACME":true}}}`, 1, 0, false},
		{"no submittedAt", `{"triggerType":"form_submission","payload":{"id":"x","data":{"Email":"a@b.fr","Newsletter ACME":true}}}`, 0, 1, false},
		{"wrong types", `{"triggerType":7,"payload":{"id":{},"submittedAt":[],"data":["Email"]}}`, 0, 1, false},
		{"NUL", `{"triggerType":"form_submission","payload":{"id":"x\u0000","submittedAt":"2025-11-20T10:15:30Z","data":{"Email":"a@b.fr","Newsletter ACME":"on\u0000"}}}`, 1, 0, false},
		{"invalid UTF-8", "{\"triggerType\":\"form_submission\",\"payload\":{\"id\":\"\xff\",\"submittedAt\":\"2025-11-20T10:15:30Z\",\"data\":{\"Email\":\"a@b.fr\",\"Newsletter ACME\":\"on\"}}}", 1, 0, false},
		{"no payload", `{"triggerType":"form_submission"}`, 0, 0, true},
		{"empty", ``, 0, 0, true},
		{"null", `null`, 0, 0, true},
		{"array", `[]`, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, request(nil, []byte(tt.body)), tt.err)
			if b == nil {
				return
			}
			if len(b.Signals) != tt.signals || len(b.Skipped) != tt.skipped {
				t.Fatalf("signals %+v skipped %q", b.Signals, b.Skipped)
			}
			for _, sig := range b.Signals {
				if err := sig.Validate(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	s := newSource(f, cfg())
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	f.Add([]byte(body), ts, sign(secret, ts, []byte(body)))
	f.Fuzz(func(t *testing.T, b []byte, ts, sig string) {
		err := s.Verify(request(map[string]string{TimestampHeader: ts, SignatureHeader: sig}, b), now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("err %v", err)
		}
		if err == nil && !strings.EqualFold(strings.TrimSpace(sig), sign(secret, strings.TrimSpace(ts), b)) {
			t.Fatalf("accepted a wrong signature")
		}
	})
}

func FuzzParse(f *testing.F) {
	s := newSource(f, cfg())
	f.Add([]byte(body))
	f.Add([]byte(`{"triggerType":"form_submission","payload":{"data":{"Email":1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		batch := fixtures.FuzzParse(t, s, request(nil, b))
		if batch == nil {
			return
		}
		for _, sig := range batch.Signals {
			if sig.Status == consent.StatusWithdrawn {
				t.Fatalf("bad signal %+v", sig)
			}
		}
		if len(batch.Activities) > 1 || len(batch.Activities) < min(len(batch.Signals), 1) || len(batch.Profiles) != 0 {
			t.Fatalf("activities %+v profiles %+v", batch.Activities, batch.Profiles)
		}
		for _, a := range batch.Activities {
			if a.Kind != consent.ActivityForm || a.Subject.Key() == "" || a.Brand != "acme" || a.Source != "webflow-acme" {
				t.Fatalf("bad activity %+v", a)
			}
		}
	})
}
