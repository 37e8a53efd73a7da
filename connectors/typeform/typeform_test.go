package typeform

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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

func fixture(t testing.TB) (fixtures.Fixture, config.Source) {
	t.Helper()
	return fixtures.Load(t, "typeform-optin", nil)
}

func newSource(t testing.TB, cfg config.Source) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, cfg, connectors.Deps{})
}

// sign computes the documented scheme independently of Sign.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestFixture(t *testing.T) {
	f, cfg := fixture(t)
	s := newSource(t, cfg)
	b := f.Run(t, s)
	if b.DedupKey != "01JD8Q3K5Z7W1X2Y3Z4A5B6C7D" {
		t.Errorf("dedup %q", b.DedupKey)
	}
	sig := b.Signals[0]
	want := consent.Evidence{EventID: "01JD8Q3K5Z7W1X2Y3Z4A5B6C7D", Event: "form_response", FormID: "lT4Z3j", Field: "newsletter_optin", WordingVersion: "newsletter-fr-v3", Checkbox: "true"}
	if sig.Evidence != want {
		t.Errorf("evidence %+v\nwant %+v", sig.Evidence, want)
	}
	if sig.Subject.Email != " Chloe.Bernard@Example.net " {
		t.Errorf("email must be kept as sent: %q", sig.Subject.Email)
	}
	if Sign("tf-secret-91c2", f.Body) != f.Request.Headers["Typeform-Signature"] {
		t.Error("Sign does not reproduce the fixture's signature")
	}
	wantA := consent.Activity{Subject: consent.Subject{Email: " Chloe.Bernard@Example.net "}, Brand: "acme", Channel: consent.ChannelEmail,
		Kind: consent.ActivityForm, OccurredAt: time.Date(2025, 11, 20, 9, 59, 40, 0, time.UTC), Source: "typeform-acme"}
	if len(b.Activities) != 1 || b.Activities[0] != wantA || len(b.Profiles) != 0 {
		t.Errorf("activities %+v profiles %+v", b.Activities, b.Profiles)
	}
}

func TestParseProfilesAndDoubleOptIn(t *testing.T) {
	_, cfg := fixture(t)
	fields := *cfg.Fields
	fields.Profile = "who_are_you"
	fields.ConfirmedAt = "hidden.confirmed_at"
	fields.Consents = []config.ConsentField{{Field: "newsletter_optin", Channel: "email", Purpose: "marketing", DoubleOptIn: true, Required: true}}
	cfg.Fields = &fields
	cfg.Profile = "customer"
	s := newSource(t, cfg)
	at := time.Date(2025, 11, 20, 9, 59, 40, 0, time.UTC)
	sub := consent.Subject{Email: "a@b.fr"}
	resp := func(hidden, answers string) string {
		return `{"event_id":"e1","event_type":"form_response","form_response":{"form_id":"F","submitted_at":"2025-11-20T09:59:40Z","hidden":{` + hidden + `},"answers":[` +
			`{"type":"email","email":"a@b.fr","field":{"id":"Fa1","ref":"email"}}` + answers + `]}}`
	}
	tests := []struct {
		name      string
		body      string
		status    consent.Status // "" = no signal
		confirmed bool
		profiles  []consent.Profile
	}{
		{"ticked, not confirmed", resp(``, `,{"type":"boolean","boolean":true,"field":{"ref":"newsletter_optin"}}`), consent.StatusPending, false, []consent.Profile{consent.ProfileCustomer}},
		{"ticked and confirmed", resp(`"confirmed_at":"2025-11-20T10:05:00Z"`, `,{"type":"boolean","boolean":true,"field":{"ref":"newsletter_optin"}}`), consent.StatusGranted, true, []consent.Profile{consent.ProfileCustomer}},
		{"professional chosen", resp(``, `,{"type":"choice","choice":{"label":"Professional"},"field":{"ref":"who_are_you"}}`), "", false,
			[]consent.Profile{consent.ProfileProfessional, consent.ProfileCustomer}},
		{"other choice", resp(``, `,{"type":"choice","choice":{"other":"a student"},"field":{"ref":"who_are_you"}}`), "", false, []consent.Profile{consent.ProfileCustomer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Parse(&connectors.Request{Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == "" {
				if len(b.Signals) != 0 {
					t.Fatalf("signals %+v", b.Signals)
				}
			} else {
				if len(b.Signals) != 1 || b.Signals[0].Status != tt.status || (b.Signals[0].Evidence.ConfirmedAt != nil) != tt.confirmed || !b.Signals[0].Evidence.Required {
					t.Fatalf("signals %+v", b.Signals)
				}
			}
			wantA := []consent.Activity{{Subject: sub, Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityForm, OccurredAt: at, Source: "typeform-acme"}}
			if !slices.Equal(b.Activities, wantA) {
				t.Errorf("activities %+v", b.Activities)
			}
			var wantP []consent.ProfileFact
			for _, p := range tt.profiles {
				wantP = append(wantP, consent.ProfileFact{Subject: sub, Brand: "acme", Profile: p, OccurredAt: at, Source: "typeform-acme"})
			}
			if !slices.Equal(b.Profiles, wantP) {
				t.Errorf("profiles %+v\nwant %+v", b.Profiles, wantP)
			}
		})
	}
	// A partial response is no submission: no contact.
	b, err := s.Parse(&connectors.Request{Body: []byte(`{"event_id":"e","event_type":"form_response_partial","form_response":{}}`)})
	if err != nil || len(b.Activities) != 0 || len(b.Profiles) != 0 {
		t.Fatalf("partial: %v %+v", err, b)
	}
}

func TestVerify(t *testing.T) {
	f, cfg := fixture(t)
	body := f.Body
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-1] = ' ' // the signed trailing newline
	rotated := cfg
	rotated.Secrets = []string{"tf-new", "tf-secret-91c2"}
	tests := []struct {
		name string
		cfg  config.Source
		sig  string
		body []byte
		ok   bool
	}{
		{"valid", cfg, sign("tf-secret-91c2", body), body, true},
		{"prefix case", cfg, "SHA256=" + strings.TrimPrefix(sign("tf-secret-91c2", body), "sha256="), body, true},
		{"tampered byte", cfg, sign("tf-secret-91c2", body), tampered, false},
		{"body without trailing newline", cfg, sign("tf-secret-91c2", body), body[:len(body)-1], false},
		{"wrong secret", cfg, sign("tf-other", body), body, false},
		{"missing", cfg, "", body, false},
		{"no prefix", cfg, strings.TrimPrefix(sign("tf-secret-91c2", body), "sha256="), body, false},
		{"hex instead of base64", cfg, "sha256=00ff", body, false},
		{"rotation second", rotated, sign("tf-secret-91c2", body), body, true},
		{"rotation first", rotated, sign("tf-new", body), body, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, tt.cfg)
			h := http.Header{}
			if tt.sig != "" {
				h.Set(SignatureHeader, tt.sig)
			}
			fixtures.VerifyErr(t, s.Verify(&connectors.Request{Method: "POST", Header: h, Body: tt.body}, f.Now), tt.ok, false)
		})
	}
}

func TestParseCases(t *testing.T) {
	_, cfg := fixture(t)
	s := newSource(t, cfg)
	resp := func(answers string) string {
		return `{"event_id":"e1","event_type":"form_response","form_response":{"form_id":"F","submitted_at":"2025-11-20T09:59:40Z","hidden":{"consent_version":"v9"},"answers":[` + answers + `]}}`
	}
	email := `{"type":"email","email":"a@b.fr","field":{"id":"Fa1","ref":"email"}}`
	tests := []struct {
		name    string
		body    string
		signals []consent.Purpose
		checks  []string
		skipped int
		err     bool
	}{
		{"choice label", resp(email + `,{"type":"choice","choice":{"label":"Yes"},"field":{"id":"x","ref":"newsletter_optin"}}`), []consent.Purpose{consent.PurposeMarketing}, []string{"Yes"}, 0, false},
		{"choices labels", resp(email + `,{"type":"choices","choices":{"labels":["Partners"]},"field":{"id":"x","ref":"partners_optin"}}`), []consent.Purpose{consent.PurposePartners}, []string{"Partners"}, 0, false},
		{"text ambiguous", resp(email + `,{"type":"text","text":"maybe later","field":{"id":"x","ref":"newsletter_optin"}}`), []consent.Purpose{consent.PurposeMarketing}, []string{"maybe later"}, 0, false},
		{"number 1", resp(email + `,{"type":"number","number":1,"field":{"id":"x","ref":"newsletter_optin"}}`), []consent.Purpose{consent.PurposeMarketing}, []string{"1"}, 0, false},
		{"unanswered", resp(email), nil, nil, 1, false},
		{"no email", resp(`{"type":"boolean","boolean":true,"field":{"id":"x","ref":"newsletter_optin"}}`), nil, nil, 1, false},
		{"first answer for a ref wins", resp(email + `,{"type":"boolean","boolean":false,"field":{"ref":"newsletter_optin"}},{"type":"boolean","boolean":true,"field":{"ref":"newsletter_optin"}}`), nil, nil, 1, false},
		{"answers of wrong types", resp(`3,null,"x",{"type":7},{"type":"boolean","field":"x"},{"type":"choice","choice":"x","field":{"ref":"newsletter_optin"}}`), nil, nil, 1, false},
		{"answers not an array", `{"event_id":"e","form_response":{"answers":{"a":1},"submitted_at":"2025-11-20T09:59:40Z"}}`, nil, nil, 1, false},
		{"partial response", `{"event_id":"e","event_type":"form_response_partial","form_response":{}}`, nil, nil, 1, false},
		{"no submitted_at", `{"event_id":"e","form_response":{"answers":[` + email + `,{"type":"boolean","boolean":true,"field":{"ref":"newsletter_optin"}}]}}`, nil, nil, 1, false},
		{"NUL in strings", resp(`{"type":"email","email":"a@b.fr","field":{"ref":"email"}},{"type":"choice","choice":{"label":"yes\u0000"},"field":{"ref":"newsletter_optin"}}`), []consent.Purpose{consent.PurposeMarketing}, []string{"yes\x00"}, 0, false},
		{"invalid UTF-8", "{\"event_id\":\"e\xff\",\"form_response\":{\"submitted_at\":\"2025-11-20T09:59:40Z\",\"answers\":[" + email + ",{\"type\":\"boolean\",\"boolean\":true,\"field\":{\"ref\":\"newsletter_optin\"}}]}}", []consent.Purpose{consent.PurposeMarketing}, []string{"true"}, 0, false},
		{"event_id number", `{"event_id":12,"form_response":{"submitted_at":"2025-11-20T09:59:40Z","answers":[]}}`, nil, nil, 1, false},
		{"no form_response", `{"event_id":"e"}`, nil, nil, 0, true},
		{"form_response wrong type", `{"form_response":[]}`, nil, nil, 0, true},
		{"empty", ``, nil, nil, 0, true},
		{"null", `null`, nil, nil, 0, true},
		{"array", `[]`, nil, nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, &connectors.Request{Body: []byte(tt.body)}, tt.err)
			if b == nil {
				return
			}
			if len(b.Signals) != len(tt.signals) || len(b.Skipped) != tt.skipped {
				t.Fatalf("signals %+v skipped %v", b.Signals, b.Skipped)
			}
			for i, p := range tt.signals {
				if b.Signals[i].Purpose != p || b.Signals[i].Evidence.Checkbox != tt.checks[i] {
					t.Errorf("signal %d: %s %q", i, b.Signals[i].Purpose, b.Signals[i].Evidence.Checkbox)
				}
				if err := b.Signals[i].Validate(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestPathOrder(t *testing.T) {
	f, cfg := fixture(t)
	// Map by field id and by root and form_response paths.
	cfg.Fields = &config.Fields{Email: "Fa1", EventID: "event_id", FormID: "definition.id", OccurredAt: "landed_at",
		Consents: []config.ConsentField{{Field: "Fa2", Channel: "email", Purpose: "marketing"}}}
	s := newSource(t, cfg)
	b, err := s.Parse(f.ConnectorRequest())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 1 {
		t.Fatalf("signals %+v skipped %v", b.Signals, b.Skipped)
	}
	sig := b.Signals[0]
	if !sig.OccurredAt.Equal(time.Date(2025, 11, 20, 9, 58, 12, 0, time.UTC)) || sig.Evidence.FormID != "lT4Z3j" || sig.Evidence.EventID != "01JD8Q3K5Z7W1X2Y3Z4A5B6C7D" {
		t.Errorf("signal %+v", sig)
	}
}

func FuzzVerify(f *testing.F) {
	fx, cfg := fixture(f)
	s := newSource(f, cfg)
	f.Add(fx.Body, fx.Request.Headers["Typeform-Signature"])
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		err := s.Verify(&connectors.Request{Header: http.Header{SignatureHeader: {sig}}, Body: body}, fx.Now)
		if err == nil && strings.TrimSpace(sig) != sign("tf-secret-91c2", body) {
			// Only other spellings of the same MAC may pass (padding, URL alphabet, case of the prefix).
			m := hmac.New(sha256.New, []byte("tf-secret-91c2"))
			m.Write(body)
			if !connectors.EqualBase64(strings.TrimSpace(sig)[len("sha256="):], m.Sum(nil)) {
				t.Fatalf("accepted a wrong signature")
			}
		}
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("err %v", err)
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, cfg := fixture(f)
	s := newSource(f, cfg)
	f.Add(fx.Body)
	f.Add([]byte(`{"form_response":{"answers":[{"type":"choices","choices":{"labels":[1,null]},"field":{"ref":"partners_optin"}}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Body: body})
		if b == nil {
			return
		}
		for _, sig := range b.Signals {
			if sig.Source != "typeform-acme" {
				t.Fatalf("bad signal %+v", sig)
			}
		}
		if len(b.Activities) > 1 || len(b.Activities) < min(len(b.Signals), 1) || len(b.Profiles) != 0 {
			t.Fatalf("activities %+v profiles %+v", b.Activities, b.Profiles)
		}
		for _, a := range b.Activities {
			if a.Kind != consent.ActivityForm || a.Subject.Key() == "" || a.Brand != "acme" || a.Source != "typeform-acme" {
				t.Fatalf("bad activity %+v", a)
			}
		}
	})
}
