package standard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

var (
	key    = []byte("consentsync-standard-webhooks-key-0123")
	secret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	now    = time.Date(2025, 11, 20, 11, 0, 5, 0, time.UTC)
)

// The envelope the spec recommends: {type, timestamp, data}.
const body = `{"type":"contact.consent_updated","timestamp":"2025-11-20T11:00:00Z","data":{"email":"Ines.Roux@Example.fr","consents":{"newsletter":true,"partners":false,"unsubscribe_all":"no"},"version":"pref-v2"}}`

func cfg() config.Source {
	return config.Source{
		Name: "crm-standard", Kind: "standard", Brand: "acme", Secrets: []string{secret}, Tolerance: 5 * time.Minute,
		Fields: &config.Fields{
			Email:          "data.email",
			WordingVersion: "data.version",
			Consents: []config.ConsentField{
				{Field: "data.consents.newsletter", Channel: "email", Purpose: "marketing"},
				{Field: "data.consents.partners", Channel: "email", Purpose: "partners", Withdrawal: true},
			},
		},
	}
}

func newSource(t testing.TB, c config.Source) *Source {
	t.Helper()
	return fixtures.Build(t, NewSource, c, connectors.Deps{})
}

// sign computes the documented scheme independently of Sign.
func sign(k []byte, id, ts string, b []byte) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(b)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func request(h map[string]string, b []byte) *connectors.Request {
	return fixtures.Post("/webhooks/crm-standard", h, b)
}

func TestMessage(t *testing.T) {
	s := newSource(t, cfg())
	h, err := Sign(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", []byte(body), now)
	if err != nil {
		t.Fatal(err)
	}
	r := request(h, []byte(body))
	if err := s.Verify(r, now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	b, err := s.Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 11, 20, 11, 0, 0, 0, time.UTC)
	want := []fixtures.Signal{
		{Email: "ines.roux@example.fr", Channel: "email", Brand: "acme", Purpose: "marketing", Status: "granted", OccurredAt: at},
		{Email: "ines.roux@example.fr", Channel: "email", Brand: "acme", Purpose: "partners", Status: "withdrawn", OccurredAt: at},
	}
	if d := fixtures.DiffSignals(b.Signals, want); d != "" {
		t.Error(d)
	}
	if b.DedupKey != "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W" {
		t.Errorf("dedup %q", b.DedupKey)
	}
	if ev := b.Signals[0].Evidence; ev.Event != "contact.consent_updated" || ev.EventID != b.DedupKey || ev.WordingVersion != "pref-v2" {
		t.Errorf("evidence %+v", ev)
	}
	wantA := consent.Activity{Subject: consent.Subject{Email: "Ines.Roux@Example.fr"}, Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityForm, OccurredAt: at, Source: "crm-standard"}
	if len(b.Activities) != 1 || b.Activities[0] != wantA || len(b.Profiles) != 0 {
		t.Errorf("activities %+v profiles %+v", b.Activities, b.Profiles)
	}
}

func TestProfilesRequiredDoubleOptIn(t *testing.T) {
	c := cfg()
	f := *c.Fields
	f.Profile = "data.kind"
	f.ConfirmedAt = "data.confirmed_at"
	f.Consents = []config.ConsentField{
		{Field: "data.consents.newsletter", Channel: "email", Purpose: "marketing", DoubleOptIn: true},
		{Field: "data.consents.sms", Channel: "sms", Purpose: "marketing", Required: true},
	}
	f.Phone = "data.phone"
	c.Fields = &f
	s := newSource(t, c)
	at := time.Date(2025, 11, 20, 11, 0, 0, 0, time.UTC)
	msg := `{"type":"signup","timestamp":"2025-11-20T11:00:00Z","data":{"email":"a@b.fr","phone":"+33612345678","kind":"Customer","confirmed_at":1763636700,"consents":{"newsletter":"yes","sms":"on"}}}`
	b, err := s.Parse(request(map[string]string{IDHeader: "m"}, []byte(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 2 {
		t.Fatalf("signals %+v", b.Signals)
	}
	news, sms := b.Signals[0], b.Signals[1]
	if news.Status != consent.StatusGranted || news.Evidence.ConfirmedAt == nil || !news.Evidence.ConfirmedAt.Equal(at.Add(5*time.Minute)) || news.Evidence.OptInLevel != "double_opt_in" || news.Evidence.Required {
		t.Errorf("double opt-in signal %+v", news)
	}
	if sms.Status != consent.StatusGranted || !sms.Evidence.Required || sms.Evidence.ConfirmedAt != nil {
		t.Errorf("required signal %+v", sms)
	}
	sub := consent.Subject{Email: "a@b.fr", Phone: "+33612345678"}
	wantA := []consent.Activity{{Subject: sub, Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityForm, OccurredAt: at, Source: "crm-standard"}}
	wantP := []consent.ProfileFact{{Subject: sub, Brand: "acme", Profile: consent.ProfileCustomer, OccurredAt: at, Source: "crm-standard"}}
	if !slices.Equal(b.Activities, wantA) || !slices.Equal(b.Profiles, wantP) {
		t.Errorf("activities %+v profiles %+v", b.Activities, b.Profiles)
	}
}

func TestVerify(t *testing.T) {
	b := []byte(body)
	id := "msg_1"
	ts := strconv.FormatInt(now.Unix(), 10)
	stale := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
	tampered := append([]byte(nil), b...)
	tampered[len(tampered)-2] ^= 1
	otherKey := []byte("another-key-for-rotation")
	rotated := cfg()
	rotated.Secrets = []string{"whsec_" + base64.StdEncoding.EncodeToString(otherKey), secret}
	noPrefix := cfg()
	noPrefix.Secrets = []string{base64.StdEncoding.EncodeToString(key)}
	good := sign(key, id, ts, b)
	tests := []struct {
		name  string
		c     config.Source
		h     map[string]string
		body  []byte
		ok    bool
		stale bool
	}{
		{"valid", cfg(), map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: good}, b, true, false},
		{"several signatures, one good", cfg(), map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: "v1,AAAA v1a,xyz " + good}, b, true, false},
		{"svix aliases", cfg(), map[string]string{"Svix-Id": id, "Svix-Timestamp": ts, "Svix-Signature": good}, b, true, false},
		{"secret without prefix", noPrefix, map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: good}, b, true, false},
		{"rotation", rotated, map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: good}, b, true, false},
		{"rotation, new key", rotated, map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: sign(otherKey, id, ts, b)}, b, true, false},
		{"tampered", cfg(), map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: good}, tampered, false, false},
		{"other id", cfg(), map[string]string{IDHeader: "msg_2", TimestampHeader: ts, SignatureHeader: good}, b, false, false},
		{"key is the secret text", cfg(), map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: sign([]byte(secret), id, ts, b)}, b, false, false},
		{"v2 only", cfg(), map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: strings.Replace(good, "v1,", "v2,", 1)}, b, false, false},
		{"stale", cfg(), map[string]string{IDHeader: id, TimestampHeader: stale, SignatureHeader: sign(key, id, stale, b)}, b, false, true},
		{"ms not s", cfg(), map[string]string{IDHeader: id, TimestampHeader: ts + "000", SignatureHeader: sign(key, id, ts+"000", b)}, b, false, false},
		{"missing id", cfg(), map[string]string{TimestampHeader: ts, SignatureHeader: good}, b, false, false},
		{"missing signature", cfg(), map[string]string{IDHeader: id, TimestampHeader: ts}, b, false, false},
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
		{"no timestamp anywhere", `{"data":{"email":"a@b.fr","consents":{"newsletter":"on"}}}`, 0, 1, false},
		{"unix timestamp", `{"timestamp":1763636400,"data":{"email":"a@b.fr","consents":{"newsletter":"on"}}}`, 1, 0, false},
		{"wrong types", `{"type":[],"timestamp":{},"data":"x"}`, 0, 1, false},
		{"NUL", `{"timestamp":"2025-11-20T11:00:00Z","data":{"email":"a@b.fr","consents":{"newsletter":"\u0000"}}}`, 1, 0, false},
		{"invalid UTF-8", "{\"timestamp\":\"2025-11-20T11:00:00Z\",\"type\":\"\xff\",\"data\":{\"email\":\"a@b.fr\",\"consents\":{\"newsletter\":true}}}", 1, 0, false},
		{"empty", ``, 0, 0, true},
		{"null", `null`, 0, 0, true},
		{"array", `[]`, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, request(map[string]string{IDHeader: "m"}, []byte(tt.body)), tt.err)
			if b == nil {
				return
			}
			if len(b.Signals) != tt.signals || len(b.Skipped) != tt.skipped || b.DedupKey != "m" {
				t.Fatalf("signals %+v skipped %q dedup %q", b.Signals, b.Skipped, b.DedupKey)
			}
		})
	}
}

func TestNewSourceErrors(t *testing.T) {
	c := cfg()
	c.Secrets = []string{secret, "whsec_not base64!"}
	if _, err := NewSource(c, connectors.Deps{}); err == nil || !strings.HasPrefix(err.Error(), "secrets[1]:") || strings.Contains(err.Error(), "base64!") {
		t.Errorf("err = %v", err)
	}
	c.Secrets = nil
	if _, err := NewSource(c, connectors.Deps{}); err == nil || !strings.HasPrefix(err.Error(), "secrets:") {
		t.Errorf("err = %v", err)
	}
	if _, err := Sign("whsec_", "id", nil, now); err == nil {
		t.Error("Sign accepted an empty secret")
	}
}

func FuzzVerify(f *testing.F) {
	s := newSource(f, cfg())
	ts := strconv.FormatInt(now.Unix(), 10)
	f.Add([]byte(body), "msg_1", ts, sign(key, "msg_1", ts, []byte(body)))
	f.Fuzz(func(t *testing.T, b []byte, id, ts, sig string) {
		err := s.Verify(request(map[string]string{IDHeader: id, TimestampHeader: ts, SignatureHeader: sig}, b), now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("err %v", err)
		}
		if err == nil {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(strings.TrimSpace(id) + "." + strings.TrimSpace(ts) + "."))
			m.Write(b)
			ok := false
			for _, e := range strings.Fields(sig) {
				if v, s, _ := strings.Cut(e, ","); v == "v1" && connectors.EqualBase64(s, m.Sum(nil)) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("accepted a wrong signature")
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	s := newSource(f, cfg())
	f.Add([]byte(body))
	f.Fuzz(func(t *testing.T, b []byte) {
		batch := fixtures.FuzzParse(t, s, request(map[string]string{IDHeader: "m"}, b))
		if batch == nil {
			return
		}
		for _, sig := range batch.Signals {
			if sig.Status == consent.StatusWithdrawn && sig.Purpose != consent.PurposePartners {
				t.Fatalf("only the partners field withdraws")
			}
		}
		if len(batch.Activities) > 1 || len(batch.Activities) < min(len(batch.Signals), 1) || len(batch.Profiles) != 0 {
			t.Fatalf("activities %+v profiles %+v", batch.Activities, batch.Profiles)
		}
		for _, a := range batch.Activities {
			if a.Kind != consent.ActivityForm || a.Subject.Key() == "" || a.Brand != "acme" || a.Source != "crm-standard" {
				t.Fatalf("bad activity %+v", a)
			}
		}
	})
}
