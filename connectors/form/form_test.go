package form

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"mime/multipart"
	"net/http"
	"regexp"
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
	return fixtures.Load(t, "form-signup", nil)
}

func newSource(t testing.TB, cfg config.Source) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, cfg, connectors.Deps{})
}

func hexMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestFixture(t *testing.T) {
	f, cfg := fixture(t)
	s := newSource(t, cfg)
	b := f.Run(t, s)
	if b.DedupKey != "" {
		t.Errorf("dedup key %q, want \"\" (no event_id mapped)", b.DedupKey)
	}
	ev := b.Signals[0].Evidence
	if ev.Checkbox != "on" || ev.WordingVersion != "cgu-2025-09" || ev.IP != "203.0.113.24" || ev.PageURL != "https://www.example.com/salon" || ev.UserAgent == "" {
		t.Errorf("evidence %+v", ev)
	}
	if b.Signals[0].Source != "signup-form" || b.Signals[0].Subject.Email != "MANON.FAURE@EXAMPLE.COM" {
		t.Errorf("signal %+v", b.Signals[0])
	}
	// The submission is a contact from the person; the fixture's source has
	// no profile (config.Parse would default it to prospect).
	want := consent.Activity{Subject: consent.Subject{Email: "MANON.FAURE@EXAMPLE.COM"}, Brand: "acme", Channel: consent.ChannelEmail,
		Kind: consent.ActivityForm, OccurredAt: time.Date(2025, 11, 20, 10, 30, 0, 0, time.UTC), Source: "signup-form"}
	if len(b.Activities) != 1 || b.Activities[0] != want || len(b.Profiles) != 0 {
		t.Errorf("activities %+v profiles %+v", b.Activities, b.Profiles)
	}
}

func TestParseActivitiesAndProfiles(t *testing.T) {
	_, base := fixture(t)
	fields := *base.Fields
	fields.Profile = "who"
	fields.ConfirmedAt = "confirmed_at"
	fields.Consents = append([]config.ConsentField(nil), fields.Consents...)
	fields.Consents[0].DoubleOptIn = true
	fields.Consents[1].Required = true
	base.Fields = &fields
	customers := base
	customers.Profile = "customer"
	prospects := base
	prospects.Profile = "prospect"
	at := time.Date(2025, 11, 20, 10, 30, 0, 0, time.UTC)
	act := func(email string) consent.Activity {
		return consent.Activity{Subject: consent.Subject{Email: email}, Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityForm, OccurredAt: at, Source: "signup-form"}
	}
	fact := func(email string, p consent.Profile) consent.ProfileFact {
		return consent.ProfileFact{Subject: consent.Subject{Email: email}, Brand: "acme", Profile: p, OccurredAt: at, Source: "signup-form"}
	}
	tests := []struct {
		name       string
		cfg        config.Source
		ctype      string
		body       string
		statuses   []consent.Status
		activities []consent.Activity
		profiles   []consent.ProfileFact
	}{
		{"double opt-in box, unconfirmed: pending", base, "application/json", `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on"}`,
			[]consent.Status{consent.StatusPending}, []consent.Activity{act("a@b.fr")}, nil},
		{"double opt-in box, confirmed: granted", base, "application/json", `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on","confirmed_at":"2025-11-20T10:40:00Z"}`,
			[]consent.Status{consent.StatusGranted}, []consent.Activity{act("a@b.fr")}, nil},
		{"profile field", base, "application/x-www-form-urlencoded", "email=a%40b.fr&submitted_at=2025-11-20T10%3A30%3A00Z&who=Professional&newsletter=off",
			nil, []consent.Activity{act("a@b.fr")}, []consent.ProfileFact{fact("a@b.fr", consent.ProfileProfessional)}},
		{"source profile customer, array: one of each per readable item", customers, "application/json",
			`[{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","partner_offers":"yes"},{"submitted_at":"2025-11-20T10:30:00Z"},{"email":"c@d.fr","submitted_at":"2025-11-20T10:30:00Z"}]`,
			[]consent.Status{consent.StatusGranted}, []consent.Activity{act("a@b.fr"), act("c@d.fr")},
			[]consent.ProfileFact{fact("a@b.fr", consent.ProfileCustomer), fact("c@d.fr", consent.ProfileCustomer)}},
		{"source profile prospect", prospects, "application/json", `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","who":"prospect"}`,
			nil, []consent.Activity{act("a@b.fr")}, nil},
		{"no time: nothing", customers, "application/json", `{"email":"a@b.fr","newsletter":"on","who":"customer"}`, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, tt.cfg)
			b, err := s.Parse(&connectors.Request{Header: http.Header{"Content-Type": {tt.ctype}}, Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			var statuses []consent.Status
			for _, sig := range b.Signals {
				statuses = append(statuses, sig.Status)
				if sig.Purpose == consent.PurposePartners && !sig.Evidence.Required {
					t.Errorf("required box without Evidence.Required: %+v", sig)
				}
			}
			if !slices.Equal(statuses, tt.statuses) {
				t.Errorf("statuses %v, want %v", statuses, tt.statuses)
			}
			if !slices.Equal(b.Activities, tt.activities) {
				t.Errorf("activities %+v\nwant %+v", b.Activities, tt.activities)
			}
			if !slices.Equal(b.Profiles, tt.profiles) {
				t.Errorf("profiles %+v\nwant %+v", b.Profiles, tt.profiles)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	f, cfg := fixture(t)
	body := f.Body
	tampered := append([]byte(nil), body...)
	tampered[10] ^= 1

	sha512b64 := func(secret string, b []byte) string {
		m := hmac.New(sha512.New, []byte(secret))
		m.Write(b)
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	rotated := cfg
	rotated.Secrets = []string{"new-secret", "form-secret-3e8b"}
	b64cfg := cfg
	b64cfg.Signature = &config.Signature{Header: "X-Gravity-Sig", Algorithm: "sha512", Encoding: "base64", Prefix: "sha512="}
	bearerCfg := cfg
	bearerCfg.Signature = nil

	tests := []struct {
		name    string
		cfg     config.Source
		headers map[string]string
		body    []byte
		ok      bool
	}{
		{"fixture", cfg, map[string]string{"X-Signature": hexMAC("form-secret-3e8b", body)}, body, true},
		{"upper-case hex", cfg, map[string]string{"X-Signature": strings.ToUpper(hexMAC("form-secret-3e8b", body))}, body, true},
		{"tampered body", cfg, map[string]string{"X-Signature": hexMAC("form-secret-3e8b", body)}, tampered, false},
		{"wrong secret", cfg, map[string]string{"X-Signature": hexMAC("other", body)}, body, false},
		{"missing header", cfg, nil, body, false},
		{"garbage header", cfg, map[string]string{"X-Signature": "zz"}, body, false},
		{"rotation: second secret", rotated, map[string]string{"X-Signature": hexMAC("form-secret-3e8b", body)}, body, true},
		{"rotation: first secret", rotated, map[string]string{"X-Signature": hexMAC("new-secret", body)}, body, true},
		{"sha512 base64 prefix", b64cfg, map[string]string{"X-Gravity-Sig": "sha512=" + sha512b64("form-secret-3e8b", body)}, body, true},
		{"sha512 without prefix", b64cfg, map[string]string{"X-Gravity-Sig": sha512b64("form-secret-3e8b", body)}, body, false},
		{"sha512 given sha256", b64cfg, map[string]string{"X-Gravity-Sig": "sha512=" + hexMAC("form-secret-3e8b", body)}, body, false},
		{"bearer", bearerCfg, map[string]string{"Authorization": "Bearer form-secret-3e8b"}, body, true},
		{"bearer lower-case scheme", bearerCfg, map[string]string{"Authorization": "bearer form-secret-3e8b"}, body, true},
		{"bearer wrong", bearerCfg, map[string]string{"Authorization": "Bearer form-secret-3e8c"}, body, false},
		{"bearer prefix of secret", bearerCfg, map[string]string{"Authorization": "Bearer form-secret"}, body, false},
		{"bearer missing", bearerCfg, nil, body, false},
		{"basic instead of bearer", bearerCfg, map[string]string{"Authorization": "Basic form-secret-3e8b"}, body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, tt.cfg)
			err := s.Verify(fixtures.Post("/webhooks/signup-form", tt.headers, tt.body), f.Now)
			if tt.ok && err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !tt.ok {
				if !errors.Is(err, connectors.ErrUnauthorized) {
					t.Fatalf("err = %v, want ErrUnauthorized", err)
				}
				if strings.Contains(err.Error(), "form-secret") || strings.Contains(err.Error(), hexMAC("form-secret-3e8b", body)) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestParseShapes(t *testing.T) {
	_, cfg := fixture(t)
	cfg.Fields.EventID = "entry_id"
	s := newSource(t, cfg)

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("email", "jo@example.com")
	mw.WriteField("submitted_at", "2025-11-20 10:30:00")
	mw.WriteField("newsletter", "1")
	mw.WriteField("entry_id", "77")
	fw, _ := mw.CreateFormFile("cv", "cv.pdf")
	fw.Write([]byte("%PDF"))
	mw.Close()

	tests := []struct {
		name    string
		ctype   string
		body    string
		signals int
		dedup   string
		skipped int
		err     bool
	}{
		{"json", "application/json", `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on","entry_id":"e1"}`, 1, "e1", 0, false},
		{"json sniffed", "", ` {"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":true}`, 1, "", 0, false},
		// RFC 8259 §8.1: a parser may ignore a byte order mark; .NET's
		// UTF8Encoding(true) writes one. The signature still covers it.
		{"json with a byte order mark", "application/json", "\uFEFF" + `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on"}`, 1, "", 0, false},
		{"json sniffed after a byte order mark", "", "\uFEFF" + `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on"}`, 1, "", 0, false},
		{"json with charset", "application/json; charset=utf-8", `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","partner_offers":"yes"}`, 1, "", 0, false},
		{"form-encoded", "application/x-www-form-urlencoded", "email=a%40b.fr&submitted_at=2025-11-20+10%3A30%3A00&newsletter=on&partner_offers=&entry_id=9", 1, "9", 0, false},
		{"form-encoded sniffed", "text/plain", "email=a%40b.fr&submitted_at=1763634600&newsletter=on", 1, "", 0, false},
		{"multipart", mw.FormDataContentType(), mp.String(), 1, "77", 0, false},
		{"array", "application/json", `[{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on","entry_id":"2"},{"email":"c@d.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on","entry_id":"1"}]`, 2, "", 0, false},
		{"array with a bad item", "application/json", `[{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on"},3,{"newsletter":"on"}]`, 1, "", 2, false},
		{"empty array", "application/json", `[]`, 0, "", 1, false},
		{"no email", "application/json", `{"newsletter":"on","submitted_at":"2025-11-20T10:30:00Z"}`, 0, "", 1, false},
		{"wrong types", "application/json", `{"email":["a","b"],"submitted_at":true,"newsletter":{"x":1}}`, 0, "", 1, false},
		{"invalid UTF-8", "application/json", "{\"email\":\"a\xff@b.fr\",\"submitted_at\":\"2025-11-20T10:30:00Z\",\"newsletter\":\"on\"}", 0, "", 1, false},
		{"NUL in strings", "application/json", `{"email":"a@b.fr","submitted_at":"2025-11-20T10:30:00Z","newsletter":"on\u0000","consent_version":"v\u00001"}`, 1, "", 0, false},
		{"empty body", "application/json", ``, 0, "", 0, true},
		{"null", "application/json", `null`, 0, "", 0, true},
		{"string", "application/json", `"x"`, 0, "", 0, true},
		{"truncated", "application/json", `{"email":`, 0, "", 0, true},
		{"trailing junk", "application/json", `{} {}`, 0, "", 0, true},
		{"multipart without boundary", "multipart/form-data", "--x\r\n", 0, "", 0, true},
		{"broken multipart", "multipart/form-data; boundary=zz", "--zz\r\nbroken", 0, "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.ctype != "" {
				h.Set("Content-Type", tt.ctype)
			}
			b := fixtures.Parse(t, s, &connectors.Request{Method: "POST", Header: h, Body: []byte(tt.body)}, tt.err)
			if b == nil {
				return
			}
			if len(b.Signals) != tt.signals || len(b.Skipped) != tt.skipped {
				t.Fatalf("signals %d skipped %v, want %d and %d", len(b.Signals), b.Skipped, tt.signals, tt.skipped)
			}
			if tt.dedup != "" && b.DedupKey != tt.dedup {
				t.Errorf("dedup %q, want %q", b.DedupKey, tt.dedup)
			}
			for _, sig := range b.Signals {
				if err := sig.Validate(); err != nil {
					t.Errorf("invalid signal: %v", err)
				}
			}
		})
	}
}

func TestParseArrayDedup(t *testing.T) {
	_, cfg := fixture(t)
	cfg.Fields.EventID = "entry_id"
	s := newSource(t, cfg)
	parse := func(body string) string {
		b, err := s.Parse(&connectors.Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return b.DedupKey
	}
	a := parse(`[{"entry_id":"1"},{"entry_id":"2"}]`)
	b := parse(`[{"entry_id":"2"},{"entry_id":"1"}]`)
	if a == "" || a != b {
		t.Errorf("array dedup keys %q %q: want equal and non-empty", a, b)
	}
	if k := parse(`[{"entry_id":"1"},{}]`); k != "" {
		t.Errorf("partial ids give %q, want \"\"", k)
	}
}

func TestNewSourceErrors(t *testing.T) {
	_, cfg := fixture(t)
	tests := []struct {
		name   string
		mutate func(c *config.Source)
		want   string
	}{
		{"no secrets", func(c *config.Source) { c.Secrets = nil }, "secrets:"},
		{"no header", func(c *config.Source) { c.Signature = &config.Signature{Algorithm: "sha256"} }, "signature.header:"},
		{"bad algorithm", func(c *config.Source) { c.Signature = &config.Signature{Header: "X", Algorithm: "md5"} }, "signature.algorithm:"},
		{"bad encoding", func(c *config.Source) { c.Signature = &config.Signature{Header: "X", Encoding: "b32"} }, "signature.encoding:"},
		{"no fields", func(c *config.Source) { c.Fields = nil }, "fields:"},
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
}

func FuzzVerify(f *testing.F) {
	fx, cfg := fixture(f)
	s := newSource(f, cfg)
	f.Add(fx.Body, fx.Request.Headers["X-Signature"])
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		r := &connectors.Request{Method: "POST", Header: http.Header{"X-Signature": {sig}}, Body: body}
		err := s.Verify(r, fx.Now)
		if err == nil && !hmac.Equal([]byte(strings.ToLower(strings.TrimSpace(sig))), []byte(hexMAC("form-secret-3e8b", body))) {
			t.Fatalf("accepted a signature that is not the HMAC")
		}
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("err %v does not wrap ErrUnauthorized", err)
		}
	})
}

var digits = regexp.MustCompile(`[0-9]+`)

// fixedErrors are every error text Parse may return, numbers as "N".
var fixedErrors = map[string]bool{}

func init() {
	for _, m := range []string{
		"empty body", "want a JSON object",
		"JSON: syntax error at byte N", "JSON: body ends inside a value", "JSON: not a single JSON value",
		"form-encoded body: invalid escape or separator, no field readable",
		"multipart body without boundary", "multipart body: more than N parts", "multipart body: field over N bytes",
		"multipart body: unreadable part content", "multipart body: malformed part header", "multipart body: part header too large",
		"multipart body: ends before the closing boundary", "multipart body: malformed (expected a part boundary)",
	} {
		fixedErrors[connectors.ErrMalformed.Error()+": "+m] = true
	}
}

func FuzzParse(f *testing.F) {
	fx, cfg := fixture(f)
	s := newSource(f, cfg)
	f.Add(fx.Body, "application/json")
	f.Add([]byte("email=a%40b.fr&submitted_at=1763634600&newsletter=on"), "application/x-www-form-urlencoded")
	f.Add([]byte("--zz\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\na@b.fr\r\n--zz--\r\n"), "multipart/form-data; boundary=zz")
	f.Add([]byte(`[{"email":"a@b.fr"},null]`), "")
	f.Add([]byte("--zz\r\nleak@example.com\r\n\r\nx\r\n--zz--\r\n"), "multipart/form-data; boundary=zz")
	f.Add([]byte("%zz"), "application/x-www-form-urlencoded")
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		b, err := s.Parse(&connectors.Request{Header: http.Header{"Content-Type": {ctype}}, Body: body})
		if err != nil {
			if !errors.Is(err, connectors.ErrMalformed) {
				t.Fatalf("err %v does not wrap ErrMalformed", err)
			}
			// Fixed texts only (numbers aside): nothing from the body.
			if msg := digits.ReplaceAllString(err.Error(), "N"); !fixedErrors[msg] {
				t.Fatalf("error text is not a fixed one: %q", err.Error())
			}
			return
		}
		for _, sig := range b.Signals {
			if err := sig.Validate(); err != nil {
				t.Fatalf("invalid signal %+v: %v", sig, err)
			}
			if sig.Source != "signup-form" || sig.OccurredAt.Location() != time.UTC {
				t.Fatalf("bad signal %+v", sig)
			}
			if sig.Status == consent.StatusWithdrawn {
				t.Fatalf("no withdrawal field is mapped")
			}
		}
		if len(b.Activities) < min(len(b.Signals), 1) || len(b.Profiles) != 0 {
			t.Fatalf("activities %+v profiles %+v for %d signals", b.Activities, b.Profiles, len(b.Signals))
		}
		for _, a := range b.Activities {
			if a.Kind != consent.ActivityForm || a.Subject.Key() == "" || a.Brand != "acme" || a.Source != "signup-form" ||
				a.OccurredAt.IsZero() || a.OccurredAt.Location() != time.UTC {
				t.Fatalf("bad activity %+v", a)
			}
		}
	})
}

// TestMalformedErrorsQuoteNothing: Parse errors are logged and sent back to
// the sender; the body holds personal data, so no error may quote it
// (mime/multipart, net/textproto, net/url and encoding/json messages do).
func TestMalformedErrorsQuoteNothing(t *testing.T) {
	_, cfg := fixture(t)
	s := newSource(t, cfg)
	const pii = "leak.me@example.com"
	mp := "multipart/form-data; boundary=zz"
	tests := []struct {
		name, ctype, body string
	}{
		{"multipart header line without colon", mp, "--zz\r\n" + pii + "\r\n\r\nx\r\n--zz--\r\n"},
		{"multipart header line after a good one", mp, "--zz\r\nContent-Disposition: form-data; name=\"email\"\r\n" + pii + "\r\n\r\nx\r\n--zz--\r\n"},
		{"multipart header initial line folded", mp, "--zz\r\n " + pii + ": x\r\n\r\nx\r\n--zz--\r\n"},
		{"multipart header name with a space", mp, "--zz\r\nX " + pii + ": x\r\n\r\nx\r\n--zz--\r\n"},
		{"multipart line where a part should start", mp, "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--zz--" + pii + "\r\n"},
		{"multipart part cut short", mp, "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--zz" + pii + "\r\n"},
		{"multipart cut short", mp, "--zz\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n" + pii},
		{"form-encoded bad escape", "application/x-www-form-urlencoded", "%" + pii},
		{"form-encoded bad escape sniffed", "", "%zz" + pii},
		{"JSON syntax error inside a value", "application/json", `{"email":"` + pii + `"x}`},
		{"JSON bad escape", "application/json", `{"email":"` + pii + `\q"}`},
		{"JSON truncated", "application/json", `{"email":"` + pii},
		{"JSON trailing value", "application/json", `{"email":"a@b.fr"} "` + pii + `"`},
		{"JSON bad literal", "application/json", `{"email":` + pii + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.ctype != "" {
				h.Set("Content-Type", tt.ctype)
			}
			_, err := s.Parse(&connectors.Request{Method: "POST", Header: h, Body: []byte(tt.body)})
			if !errors.Is(err, connectors.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			msg := err.Error()
			for _, frag := range []string{"leak", "example", "@", "%zz", `"`} {
				if strings.Contains(msg, frag) {
					t.Fatalf("error quotes the body (%q): %s", frag, msg)
				}
			}
		})
	}
}

// TestUndatedSubmissionTakesArrivalTime: a submission without a readable
// time is dated when consentsync received it, never lost.
func TestUndatedSubmissionTakesArrivalTime(t *testing.T) {
	_, cfg := fixture(t)
	s := newSource(t, cfg)
	at := time.Date(2026, 11, 29, 16, 25, 0, 0, time.UTC)
	for _, body := range []string{
		`{"email":"a@b.fr","newsletter":"on"}`,
		`{"email":"a@b.fr","submitted_at":"29/11/2026 16:25","newsletter":"on"}`,
	} {
		b, err := s.Parse(&connectors.Request{Method: "POST", Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body), ReceivedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Signals) != 1 || !b.Signals[0].OccurredAt.Equal(at) {
			t.Fatalf("%s: signals %+v, want one dated %s", body, b.Signals, at)
		}
		// Without an arrival time there is nothing to date it with.
		b, err = s.Parse(&connectors.Request{Method: "POST", Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)})
		if err != nil || len(b.Signals) != 0 || len(b.Skipped) != 1 {
			t.Fatalf("%s without arrival time: %+v %v", body, b, err)
		}
	}
}

// TestParseHiddenUntickedField: Rails' check_box, Laravel and Symfony
// forms post a hidden "0" before the checkbox, so that an unticked box
// still sends a value: ticked posts newsletter=0&newsletter=1, unticked
// newsletter=0 (the framework reads the last value). The ticked post is
// an opt-in, with nothing ambiguous about it; the unticked one is none.
func TestParseHiddenUntickedField(t *testing.T) {
	t.Parallel()
	_, cfg := fixture(t)
	s := newSource(t, cfg)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, tt := range []struct {
		body   string
		status consent.Status // "" for no signal
	}{
		{"email=a%40b.fr&submitted_at=2025-11-20T10%3A30%3A00Z&newsletter=0&newsletter=1", consent.StatusGranted},
		{"email=a%40b.fr&submitted_at=2025-11-20T10%3A30%3A00Z&newsletter=off&newsletter=on", consent.StatusGranted},
		{"email=a%40b.fr&submitted_at=2025-11-20T10%3A30%3A00Z&newsletter=0", ""},
	} {
		b := fixtures.Parse(t, s, &connectors.Request{Method: "POST", Header: h, Body: []byte(tt.body)}, false)
		var got []consent.Signal
		for _, sig := range b.Signals {
			if sig.Purpose == consent.PurposeMarketing {
				got = append(got, sig)
			}
		}
		switch {
		case tt.status == "" && len(got) != 0:
			t.Errorf("%s: signals %+v, want none", tt.body, got)
		case tt.status != "" && (len(got) != 1 || got[0].Status != tt.status || len(got[0].Problems) != 0):
			t.Errorf("%s: signals %+v, want one %s without problems", tt.body, got, tt.status)
		}
	}
}
