package shopify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

const fixtureName = "shopify-consent"

func fixture(t testing.TB) (fixtures.Fixture, *Source) {
	t.Helper()
	return fixtures.LoadSource(t, fixtureName, NewSource)
}

// sign computes Shopify's documented signature: base64(HMAC-SHA256(secret, body)).
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestFixture(t *testing.T) {
	f, src := fixture(t)
	b := f.Run(t, src)
	sig := b.Signals[0]
	if sig.Source != "shopify-acme" || sig.Evidence.OptInLevel != "confirmed_opt_in" || sig.Evidence.ConfirmedAt == nil ||
		!sig.Evidence.ConfirmedAt.Equal(time.Date(2025, 11, 20, 10, 20, 3, 0, time.UTC)) {
		t.Fatalf("evidence = %+v", sig.Evidence)
	}
	if sig.OccurredAt.Location() != time.UTC {
		t.Fatalf("occurred_at not UTC: %v", sig.OccurredAt)
	}
	if sig.Evidence.EventID != "98880550-7158-44d4-b7cd-2c97c8a091b5" {
		t.Fatalf("event id = %q", sig.Evidence.EventID)
	}
	// The dedup key comes from the signed body, not from the unsigned
	// X-Shopify-Event-Id header.
	sum := sha256.Sum256(f.Body)
	if want := "sha256:" + hex.EncodeToString(sum[:]); b.DedupKey != want {
		t.Fatalf("dedup key = %q, want %q", b.DedupKey, want)
	}
	// The SMS object (not_subscribed, null date) gives no signal but is noted.
	if !containsPrefix(b.Skipped, "sms: not_subscribed") {
		t.Fatalf("skipped = %q", b.Skipped)
	}
}

func TestVerify(t *testing.T) {
	f, _ := fixture(t)
	secret := "shpss_demo_0c1d"
	tampered := append([]byte(nil), f.Body...)
	tampered[len(tampered)/2] ^= 0x01
	// Re-serializing turns "\/" into "/" and "\u0026" into "&": different bytes.
	var v any
	if err := json.Unmarshal(f.Body, &v); err != nil {
		t.Fatal(err)
	}
	reserialized, _ := json.Marshal(v)

	tests := []struct {
		name    string
		secrets []string
		body    []byte
		header  string // "" = the fixture's, "-" = none
		wantErr bool
	}{
		{"fixture", []string{secret}, f.Body, "", false},
		{"tampered byte", []string{secret}, tampered, "", true},
		{"re-serialized body", []string{secret}, reserialized, "", true},
		{"wrong secret", []string{"other"}, f.Body, "", true},
		{"missing header", []string{secret}, f.Body, "-", true},
		{"garbage header", []string{secret}, f.Body, "not base64 !!", true},
		{"rotation: second secret matches", []string{"old-secret", secret}, f.Body, "", false},
		{"computed signature", []string{"k2"}, []byte(`{"a":1}`), sign("k2", []byte(`{"a":1}`)), false},
		{"empty body signed", []string{"k2"}, nil, sign("k2", nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Source{Name: "s", Kind: "shopify", Brand: "acme", Secrets: tt.secrets}
			src, err := NewSource(cfg, connectors.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			req := f.ConnectorRequest()
			req.Body = tt.body
			switch tt.header {
			case "":
			case "-":
				req.Header.Del(HeaderHMAC)
			default:
				req.Header.Set(HeaderHMAC, tt.header)
			}
			fixtures.VerifyErr(t, src.Verify(req, f.Now), !tt.wantErr, false, secret, f.Request.Headers[HeaderHMAC])
		})
	}
}

// TestUnsignedHeadersCannotReplay: X-Shopify-Event-Id, -Webhook-Id,
// -Triggered-At and -Topic are not covered by the HMAC. Re-sending a signed
// body with any of them changed must still verify (it is Shopify's body)
// but give the same dedup key and the same facts, so the inbox drops it as
// a duplicate and it can neither resurrect nor re-date a consent.
func TestUnsignedHeadersCannotReplay(t *testing.T) {
	f, src := fixture(t)
	orig, err := src.Parse(f.ConnectorRequest())
	if err != nil {
		t.Fatal(err)
	}
	variants := []struct {
		name string
		set  map[string]string // "" deletes the header
	}{
		{"new event id", map[string]string{HeaderEventID: "11111111-2222-3333-4444-555555555555"}},
		{"new webhook id", map[string]string{HeaderWebhookID: "w-2", HeaderEventID: ""}},
		{"no ids at all", map[string]string{HeaderWebhookID: "", HeaderEventID: ""}},
		{"triggered in year 9999", map[string]string{HeaderTriggeredAt: "9999-12-31T23:59:59Z", HeaderEventID: "e-2"}},
		{"triggered later", map[string]string{HeaderTriggeredAt: "2030-01-01T00:00:00Z", HeaderEventID: "e-3"}},
		{"other customers topic", map[string]string{HeaderTopic: TopicCustomersUpdate, HeaderEventID: "e-4"}},
		{"orders topic", map[string]string{HeaderTopic: TopicOrdersCreate, HeaderEventID: "e-5"}},
		{"unknown topic", map[string]string{HeaderTopic: "app/uninstalled", HeaderEventID: "e-6"}},
		{"no topic", map[string]string{HeaderTopic: ""}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			req := f.ConnectorRequest()
			for k, val := range v.set {
				if val == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, val)
				}
			}
			if err := src.Verify(req, f.Now); err != nil {
				t.Fatalf("Verify: %v", err) // the body is genuine: only a dedup can stop it
			}
			b, err := src.Parse(req)
			if err != nil {
				t.Fatal(err)
			}
			if b.DedupKey != orig.DedupKey {
				t.Fatalf("dedup key %q, want %q: a replay with changed headers would be stored again", b.DedupKey, orig.DedupKey)
			}
			f.Check(t, b)
			for i := range b.Signals {
				if !b.Signals[i].OccurredAt.Equal(orig.Signals[i].OccurredAt) {
					t.Fatalf("occurred_at %v, want %v", b.Signals[i].OccurredAt, orig.Signals[i].OccurredAt)
				}
			}
			if len(b.Activities)+len(b.Profiles)+len(b.Erasures)+len(b.Undeliverable) != 0 {
				t.Fatalf("extra facts: %+v", b)
			}
		})
	}

	// A consent object without consent_updated_at (the fixture's SMS one
	// has none) is never dated by X-Shopify-Triggered-At.
	body := []byte(`{"id":1,"email":"a@example.com","email_marketing_consent":{"state":"subscribed","opt_in_level":"single_opt_in","consent_updated_at":null}}`)
	for _, trig := range []string{"2025-11-20T10:00:00Z", "9999-12-31T23:59:59Z"} {
		h := http.Header{}
		h.Set(HeaderHMAC, sign("shpss_demo_0c1d", body))
		h.Set(HeaderTopic, TopicCustomersUpdate)
		h.Set(HeaderTriggeredAt, trig)
		req := &connectors.Request{Method: "POST", Header: h, Body: body}
		if err := src.Verify(req, f.Now); err != nil {
			t.Fatal(err)
		}
		b, err := src.Parse(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Signals) != 0 || !containsPrefix(b.Skipped, "email: no consent_updated_at or updated_at") {
			t.Fatalf("triggered %s: signals %+v skipped %q", trig, b.Signals, b.Skipped)
		}
	}
}

func TestNewSource(t *testing.T) {
	for _, cfg := range []config.Source{
		{Name: "s", Brand: "acme"},
		{Name: "s", Brand: "acme", Secrets: []string{""}},
		{Name: "s", Secrets: []string{"x"}},
	} {
		if _, err := NewSource(cfg, connectors.Deps{}); err == nil {
			t.Fatalf("NewSource(%+v) succeeded", cfg)
		}
	}
	_, err := NewSource(config.Source{Name: "s", Brand: "acme"}, connectors.Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), "secrets:") {
		t.Fatalf("err = %v, want it to name the secrets key", err)
	}
}

type orderWant struct {
	email, at string
}

type want struct {
	status     consent.Status
	channel    consent.Channel
	email      string
	phone      string
	occurredAt string
}

func TestParse(t *testing.T) {
	cfg := config.Source{Name: "shopify-acme", Kind: "shopify", Brand: "acme", Secrets: []string{"k"}}
	src, err := NewSource(cfg, connectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		topic         string
		triggered     string
		body          string
		signals       []want
		erasures      int
		undeliverable []string
		skipped       []string   // prefixes that must appear
		order         *orderWant // the order's activity and customer profile
	}{
		{
			name:    "unsubscribed with offset",
			topic:   TopicCustomersUpdate,
			body:    `{"id":1,"email":"A.B@Example.com","email_marketing_consent":{"state":"unsubscribed","opt_in_level":"single_opt_in","consent_updated_at":"2025-11-20T05:00:00-05:00"}}`,
			signals: []want{{consent.StatusWithdrawn, consent.ChannelEmail, "A.B@Example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			// The customer's number is given with their address: the SMS
			// signal carries both, so the worker links them (one person:
			// erasing the address erases the number, and every view by
			// either identifier shows the SMS consent).
			name:  "email and sms on one customer: the sms signal names the address too",
			topic: TopicCustomersUpdate,
			body: `{"id":8,"email":"C@Example.com","phone":"+33612345678",` +
				`"email_marketing_consent":{"state":"subscribed","opt_in_level":"confirmed_opt_in","consent_updated_at":"2025-11-20T10:00:00Z"},` +
				`"sms_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T11:00:00Z"}}`,
			signals: []want{{consent.StatusGranted, consent.ChannelEmail, "C@Example.com", "", "2025-11-20T10:00:00Z"},
				{consent.StatusWithdrawn, consent.ChannelSMS, "C@Example.com", "+33612345678", "2025-11-20T11:00:00Z"}},
		},
		{
			// An address that is not one does not cost the number its
			// withdrawal (the worker drops a signal whose email is bad).
			name:    "sms beside an address that is not one: the number alone",
			topic:   TopicCustomersUpdate,
			body:    `{"id":9,"email":"jean.dupont@","phone":"+33612345678","sms_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T11:00:00Z"}}`,
			signals: []want{{consent.StatusWithdrawn, consent.ChannelSMS, "", "+33612345678", "2025-11-20T11:00:00Z"}},
		},
		{
			name:    "pending",
			topic:   TopicEmailConsentUpdate,
			body:    `{"customer_id":7,"email_address":"p@example.com","email_marketing_consent":{"state":"pending","opt_in_level":"confirmed_opt_in","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusPending, consent.ChannelEmail, "p@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "sms subscribed (marketing_consent_update payload)",
			topic:   TopicMarketingConsentUpdate,
			body:    `{"id":7,"phone":"+33612345678","sms_marketing_consent":{"state":"subscribed","opt_in_level":"single_opt_in","consent_updated_at":"2025-11-20T10:00:00.5Z"}}`,
			signals: []want{{consent.StatusGranted, consent.ChannelSMS, "", "+33612345678", "2025-11-20T10:00:00.5Z"}},
		},
		{
			name:      "missing date: the record's updated_at, not X-Shopify-Triggered-At",
			topic:     TopicCustomersUpdate,
			triggered: "9999-12-31T23:59:59Z",
			body:      `{"email":"a@example.com","updated_at":"2025-11-20T11:00:00+01:00","email_marketing_consent":{"state":"unsubscribed","consent_updated_at":null}}`,
			signals:   []want{{consent.StatusWithdrawn, consent.ChannelEmail, "a@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:      "missing date: X-Shopify-Triggered-At is unsigned, never used",
			topic:     TopicCustomersUpdate,
			triggered: "2025-11-20T11:00:00+01:00",
			body:      `{"email":"a@example.com","email_marketing_consent":{"state":"unsubscribed","consent_updated_at":null}}`,
			skipped:   []string{"email: no consent_updated_at or updated_at"},
		},
		{
			name:      "missing date, unreadable updated_at: skipped",
			topic:     TopicCustomersUpdate,
			triggered: "2025-11-20T11:00:00+01:00",
			body:      `{"email":"a@example.com","updated_at":42,"email_marketing_consent":{"state":"subscribed"}}`,
			skipped:   []string{"email: no consent_updated_at or updated_at"},
		},
		{
			name:    "confirmed_opt_in dated by updated_at only: granted, no confirmation time",
			topic:   TopicCustomersUpdate,
			body:    `{"email":"a@example.com","updated_at":"2025-11-20T10:00:00Z","email_marketing_consent":{"state":"subscribed","opt_in_level":"confirmed_opt_in"}}`,
			signals: []want{{consent.StatusGranted, consent.ChannelEmail, "a@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "not_subscribed with a date: no signal",
			topic:   TopicCustomersUpdate,
			body:    `{"email":"a@example.com","email_marketing_consent":{"state":"not_subscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			skipped: []string{"email: not_subscribed"},
		},
		{
			name:     "redacted is an erasure",
			topic:    TopicCustomersUpdate,
			body:     `{"email":"a@example.com","email_marketing_consent":{"state":"redacted","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			erasures: 1,
		},
		{
			name:          "invalid is undeliverable",
			topic:         TopicCustomersUpdate,
			body:          `{"email":"a@example.com","email_marketing_consent":{"state":"invalid"}}`,
			undeliverable: []string{"a@example.com"},
		},
		{
			name:    "uppercase state",
			topic:   TopicCustomersCreate,
			body:    `{"email":"a@example.com","email_marketing_consent":{"state":"SUBSCRIBED","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusGranted, consent.ChannelEmail, "a@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "unknown state",
			topic:   TopicCustomersUpdate,
			body:    `{"email":"a@example.com","email_marketing_consent":{"state":"maybe"}}`,
			skipped: []string{`email: unknown state "maybe"`},
		},
		{
			name:    "no email",
			topic:   TopicCustomersUpdate,
			body:    `{"email":null,"email_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			skipped: []string{"email: no email"},
		},
		{
			name:    "no consent objects",
			topic:   TopicCustomersUpdate,
			body:    `{"email":"a@example.com"}`,
			skipped: []string{"customer: no marketing consent object"},
		},
		{
			name:  "order: activity and customer profile, no consent signal",
			topic: TopicOrdersCreate,
			body: `{"id":1,"email":"A@Example.com","created_at":"2025-11-20T11:00:00+01:00","processed_at":"2025-11-20T11:00:00+01:00",` +
				`"customer":{"email":"other@example.com","email_marketing_consent":{"state":"subscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}}`,
			order: &orderWant{"A@Example.com", "2025-11-20T10:00:00Z"},
		},
		{
			name:  "paid order",
			topic: TopicOrdersPaid,
			body:  `{"id":1,"email":"a@example.com","processed_at":"2025-11-20T10:00:00.25Z"}`,
			order: &orderWant{"a@example.com", "2025-11-20T10:00:00.25Z"},
		},
		{
			name:  "imported order: processed_at in the past wins over created_at",
			topic: TopicOrdersCreate,
			body:  `{"email":"a@example.com","created_at":"2025-11-20T10:00:00Z","processed_at":"2019-03-01T09:00:00-05:00"}`,
			order: &orderWant{"a@example.com", "2019-03-01T14:00:00Z"},
		},
		{
			name:  "created_at when processed_at is null",
			topic: TopicOrdersCreate,
			body:  `{"email":"a@example.com","created_at":"2025-11-20T10:00:00Z","processed_at":null}`,
			order: &orderWant{"a@example.com", "2025-11-20T10:00:00Z"},
		},
		{
			name:      "no order time: X-Shopify-Triggered-At is unsigned, never used",
			topic:     TopicOrdersCreate,
			triggered: "2025-11-20T11:00:00+01:00",
			body:      `{"email":"a@example.com","order_number":1001,"processed_at":"not a time","created_at":"not a time"}`,
			skipped:   []string{"order: no processed_at or created_at"},
		},
		{
			name:    "no order time at all",
			topic:   TopicOrdersCreate,
			body:    `{"email":"a@example.com","processed_at":null,"created_at":42}`,
			skipped: []string{"order: no processed_at or created_at"},
		},
		{
			name:  "order contact_email",
			topic: TopicOrdersCreate,
			body:  `{"email":"","contact_email":"c@example.com","order_number":1001,"created_at":"2025-11-20T10:00:00Z"}`,
			order: &orderWant{"c@example.com", "2025-11-20T10:00:00Z"},
		},
		{
			name:  "order customer.email",
			topic: TopicOrdersPaid,
			body:  `{"email":null,"customer":{"id":5,"email":"c@example.com"},"order_number":1001,"created_at":"2025-11-20T10:00:00Z"}`,
			order: &orderWant{"c@example.com", "2025-11-20T10:00:00Z"},
		},
		{
			name:    "order without email",
			topic:   TopicOrdersCreate,
			body:    `{"id":1,"phone":"+33612345678","customer":null,"order_number":1001,"created_at":"2025-11-20T10:00:00Z"}`,
			skipped: []string{"order: no email"},
		},
		{
			name:    "order customer of the wrong type",
			topic:   TopicOrdersCreate,
			body:    `{"customer":"c@example.com","order_number":1001,"created_at":"2025-11-20T10:00:00Z"}`,
			skipped: []string{"order: no email"},
		},
		{
			name:    "test order",
			topic:   TopicOrdersPaid,
			body:    `{"email":"a@example.com","test":true,"order_number":1001,"created_at":"2025-11-20T10:00:00Z"}`,
			skipped: []string{"order: test order"},
		},
		{
			name:    "cancelled order",
			topic:   TopicOrdersCreate,
			body:    `{"email":"a@example.com","order_number":1001,"processed_at":"2025-11-20T10:00:00Z","cancelled_at":"2025-11-20T12:00:00Z"}`,
			skipped: []string{"order: cancelled"},
		},
		{
			name:  "open order: cancelled_at null",
			topic: TopicOrdersCreate,
			body:  `{"email":"a@example.com","order_number":1001,"processed_at":"2025-11-20T10:00:00Z","cancelled_at":null}`,
			order: &orderWant{"a@example.com", "2025-11-20T10:00:00Z"},
		},
		// The topic header is unsigned: the body's shape decides.
		{
			name:  "order body with a forged customers/* topic: the order's facts, no consent from its customer snapshot",
			topic: TopicEmailConsentUpdate,
			body: `{"id":1,"email":"a@example.com","order_number":1001,"processed_at":"2025-11-20T10:00:00Z",` +
				`"customer":{"email":"a@example.com","email_marketing_consent":{"state":"subscribed","opt_in_level":"confirmed_opt_in","consent_updated_at":"2025-11-20T10:00:00Z"}}}`,
			order: &orderWant{"a@example.com", "2025-11-20T10:00:00Z"},
		},
		{
			name:    "customer body with a forged orders/create topic: its consent, no customer profile",
			topic:   TopicOrdersCreate,
			body:    `{"id":7,"email":"a@example.com","created_at":"2019-01-01T00:00:00Z","updated_at":"2025-11-20T10:00:00Z","email_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusWithdrawn, consent.ChannelEmail, "a@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "customer body without consent objects under orders/create: no customer profile",
			topic:   TopicOrdersPaid,
			body:    `{"id":7,"email":"a@example.com","created_at":"2019-01-01T00:00:00Z","updated_at":"2025-11-20T10:00:00Z"}`,
			skipped: []string{"order: body is not an order"},
		},
		{
			name:    "checkout body under orders/create: not an order",
			topic:   TopicOrdersCreate,
			body:    `{"token":"t","cart_token":"c","email":"a@example.com","created_at":"2025-11-20T10:00:00Z","line_items":[{"id":1}],"completed_at":null}`,
			skipped: []string{"order: body is not an order"},
		},
		{
			name:    "customer body with a forged unknown topic is still read",
			topic:   "products/create",
			body:    `{"email":"a@example.com","email_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusWithdrawn, consent.ChannelEmail, "a@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "customer body without a topic",
			topic:   "",
			body:    `{"email":"a@example.com","email_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusWithdrawn, consent.ChannelEmail, "a@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:  "order time past year 9999 after the offset",
			topic: TopicOrdersCreate,
			body:  `{"email":"a@example.com","processed_at":"9999-12-31T23:00:00-05:00","created_at":"2025-11-20T10:00:00Z"}`,
			order: &orderWant{"a@example.com", "2025-11-20T10:00:00Z"},
		},
		{
			name:    "pending with confirmed_opt_in: pending, no confirmation time",
			topic:   TopicEmailConsentUpdate,
			body:    `{"email":"p@example.com","email_marketing_consent":{"state":"pending","opt_in_level":"confirmed_opt_in","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusPending, consent.ChannelEmail, "p@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "other topic",
			topic:   "products/create",
			body:    `{"id":1}`,
			skipped: []string{`topic "products/create"`},
		},
		{
			name:    "wrong types",
			topic:   TopicCustomersUpdate,
			body:    `{"email":42,"phone":true,"email_marketing_consent":"subscribed","sms_marketing_consent":{"state":5,"consent_updated_at":7}}`,
			skipped: []string{"email: consent object is not an object", "sms: no phone"},
		},
		{
			name:    "NUL inside a string still parses",
			topic:   TopicCustomersUpdate,
			body:    `{"email":"a\u0000@example.com","email_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusWithdrawn, consent.ChannelEmail, "a\x00@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "invalid UTF-8 still parses",
			topic:   TopicCustomersUpdate,
			body:    "{\"email\":\"a\xff@example.com\",\"email_marketing_consent\":{\"state\":\"unsubscribed\",\"consent_updated_at\":\"2025-11-20T10:00:00Z\"}}",
			signals: []want{{consent.StatusWithdrawn, consent.ChannelEmail, "a\uFFFD@example.com", "", "2025-11-20T10:00:00Z"}},
		},
		{
			name:    "huge id number",
			topic:   TopicCustomersUpdate,
			body:    `{"id":1e400,"email":"a@example.com","email_marketing_consent":{"state":"unsubscribed","consent_updated_at":"2025-11-20T10:00:00Z"}}`,
			signals: []want{{consent.StatusWithdrawn, consent.ChannelEmail, "a@example.com", "", "2025-11-20T10:00:00Z"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(HeaderTopic, tt.topic)
			h.Set(HeaderEventID, "ev-1")
			if tt.triggered != "" {
				h.Set(HeaderTriggeredAt, tt.triggered)
			}
			b, err := src.Parse(&connectors.Request{Method: "POST", Header: h, Body: []byte(tt.body)})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(b.Signals) != len(tt.signals) {
				t.Fatalf("signals = %+v, want %d (skipped %q)", b.Signals, len(tt.signals), b.Skipped)
			}
			for i, w := range tt.signals {
				g := b.Signals[i]
				if g.Status != w.status || g.Channel != w.channel || g.Subject.Email != w.email || g.Subject.Phone != w.phone ||
					g.OccurredAt.Format(time.RFC3339Nano) != w.occurredAt || g.Brand != "acme" || g.Purpose != consent.PurposeMarketing || g.Source != "shopify-acme" {
					t.Fatalf("signal %d = %+v, want %+v", i, g, w)
				}
				if err := g.Validate(); err != nil {
					t.Fatalf("signal %d invalid: %v", i, err)
				}
				if g.Status != consent.StatusGranted && g.Evidence.ConfirmedAt != nil {
					t.Fatalf("signal %d: %s with a confirmation time", i, g.Status)
				}
			}
			if tt.order == nil {
				if len(b.Activities) != 0 || len(b.Profiles) != 0 {
					t.Fatalf("activities %+v profiles %+v", b.Activities, b.Profiles)
				}
			} else {
				at, err := time.Parse(time.RFC3339Nano, tt.order.at)
				if err != nil {
					t.Fatal(err)
				}
				sub := consent.Subject{Email: tt.order.email}
				wantA := consent.Activity{Subject: sub, Brand: "acme", Channel: consent.ChannelEmail, Kind: consent.ActivityOrder, OccurredAt: at.UTC(), Source: "shopify-acme"}
				wantP := consent.ProfileFact{Subject: sub, Brand: "acme", Profile: consent.ProfileCustomer, OccurredAt: at.UTC(), Source: "shopify-acme"}
				if len(b.Activities) != 1 || b.Activities[0] != wantA || b.Activities[0].OccurredAt.Location() != time.UTC {
					t.Fatalf("activities %+v, want %+v", b.Activities, wantA)
				}
				if len(b.Profiles) != 1 || b.Profiles[0] != wantP || b.Profiles[0].OccurredAt.Location() != time.UTC {
					t.Fatalf("profiles %+v, want %+v", b.Profiles, wantP)
				}
			}
			if len(b.Erasures) != tt.erasures {
				t.Fatalf("erasures = %v", b.Erasures)
			}
			if strings.Join(b.Undeliverable, ",") != strings.Join(tt.undeliverable, ",") {
				t.Fatalf("undeliverable = %v, want %v", b.Undeliverable, tt.undeliverable)
			}
			for _, p := range tt.skipped {
				if !containsPrefix(b.Skipped, p) {
					t.Fatalf("skipped = %q, want one starting with %q", b.Skipped, p)
				}
			}
			if sum := sha256.Sum256([]byte(tt.body)); b.DedupKey != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Fatalf("dedup = %q, want sha256 of the body", b.DedupKey)
			}
			for _, r := range b.Skipped {
				if strings.Contains(r, "@") {
					t.Fatalf("skip reason carries personal data: %q", r)
				}
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	_, src := fixture(t)
	for _, body := range []string{"", "null", "[]", `"x"`, "42", "{", "\xff\xfe", "{\"a\":\x00}"} {
		h := http.Header{}
		h.Set(HeaderTopic, TopicCustomersUpdate)
		_, err := src.Parse(&connectors.Request{Header: h, Body: []byte(body)})
		if !errors.Is(err, connectors.ErrMalformed) {
			t.Fatalf("Parse(%q) err = %v, want ErrMalformed", body, err)
		}
	}
	if _, err := src.Parse(nil); !errors.Is(err, connectors.ErrMalformed) {
		t.Fatalf("Parse(nil) = %v", err)
	}
	if err := src.Verify(nil, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("Verify(nil) = %v", err)
	}
	// No header map at all.
	if err := src.Verify(&connectors.Request{Body: []byte("{}")}, time.Now()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("Verify(no headers) = %v", err)
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func FuzzVerify(f *testing.F) {
	fx, src := fixture(f)
	f.Add(fx.Body, fx.Request.Headers[HeaderHMAC])
	f.Add([]byte(""), "")
	f.Add([]byte("{}"), sign("shpss_demo_0c1d", []byte("{}")))
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		h := http.Header{}
		h.Set(HeaderHMAC, sig)
		err := src.Verify(&connectors.Request{Header: h, Body: body}, fx.Now)
		if err != nil && !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		// Accepted only when the signature is really over these bytes.
		if err == nil && !connectors.EqualBase64(sig, connectors.HMAC("sha256", []byte("shpss_demo_0c1d"), body)) {
			t.Fatalf("accepted a wrong signature")
		}
		if err == nil && sig == fx.Request.Headers[HeaderHMAC] && !bytes.Equal(body, fx.Body) {
			t.Fatalf("fixture signature accepted for other bytes")
		}
	})
}

func FuzzParse(f *testing.F) {
	fx, src := fixture(f)
	f.Add(fx.Body, TopicEmailConsentUpdate, "2025-11-20T10:20:04.5Z")
	f.Add([]byte(`{"email":"a@b","sms_marketing_consent":{"state":"redacted"}}`), TopicCustomersUpdate, "")
	f.Add([]byte(`[]`), TopicOrdersCreate, "x")
	f.Add([]byte(`{"email":"a@example.com","processed_at":"2025-11-20T10:00:00Z","customer":{"email":"b@example.com"}}`), TopicOrdersPaid, "")
	f.Add([]byte(`{"contact_email":"a@example.com","test":false}`), TopicOrdersCreate, "2025-11-20T10:20:04.5Z")
	f.Fuzz(func(t *testing.T, body []byte, topic, triggered string) {
		h := http.Header{}
		h.Set(HeaderTopic, topic)
		h.Set(HeaderTriggeredAt, triggered)
		b := fixtures.FuzzParse(t, src, &connectors.Request{Header: h, Body: body})
		if b == nil {
			return
		}
		// The unsigned headers change nothing but skip wording.
		bare, err := src.Parse(&connectors.Request{Header: http.Header{}, Body: body})
		if err != nil {
			t.Fatalf("parsed with headers, not without: %v", err)
		}
		if bare.DedupKey != b.DedupKey ||
			!reflect.DeepEqual(b.Signals, bare.Signals) || !reflect.DeepEqual(b.Activities, bare.Activities) ||
			!reflect.DeepEqual(b.Profiles, bare.Profiles) || !reflect.DeepEqual(b.Erasures, bare.Erasures) ||
			!reflect.DeepEqual(b.Undeliverable, bare.Undeliverable) {
			t.Fatalf("topic %q / triggered %q changed the result:\n%+v\n%+v", topic, triggered, b, bare)
		}
		for _, s := range b.Signals {
			if s.Brand != "acme" || s.Source != "shopify-acme" {
				t.Fatalf("bad signal %+v", s)
			}
		}
		if len(b.Activities) != len(b.Profiles) || (len(b.Activities) > 0 && len(b.Signals) > 0) {
			t.Fatalf("activities %+v profiles %+v signals %+v", b.Activities, b.Profiles, b.Signals)
		}
		for _, a := range b.Activities {
			if a.Kind != consent.ActivityOrder || a.Channel != consent.ChannelEmail || a.Subject.Email == "" || a.Brand != "acme" || a.Source != "shopify-acme" ||
				a.OccurredAt.Year() > 9999 {
				t.Fatalf("bad activity %+v", a)
			}
		}
		for _, p := range b.Profiles {
			if p.Profile != consent.ProfileCustomer || p.Subject.Email == "" || p.Brand != "acme" || p.Source != "shopify-acme" ||
				p.OccurredAt.Year() > 9999 {
				t.Fatalf("bad profile %+v", p)
			}
		}
	})
}

// TestParseNamesTheCustomer: a record whose consent gives no signal
// (not_subscribed) and a skipped test order still name the customer
// (Batch.Named), so that their erasure deletes the stored request.
func TestParseNamesTheCustomer(t *testing.T) {
	t.Parallel()
	src, err := NewSource(config.Source{Name: "shopify-acme", Kind: "shopify", Brand: "acme", Secrets: []string{"k"}}, connectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"email":"n@example.com","phone":"+33612345678","email_marketing_consent":{"state":"not_subscribed"}}`, "n@example.com|+33612345678"},
		{`{"email":"t@example.com","test":true,"order_number":1,"processed_at":"2025-11-20T10:00:00Z"}`, "t@example.com|"},
	} {
		b, err := src.Parse(&connectors.Request{Method: "POST", Header: http.Header{}, Body: []byte(tt.body)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range b.Named {
			got = append(got, n.Email+n.Phone)
		}
		if want := strings.Split(strings.TrimSuffix(tt.want, "|"), "|"); len(b.Signals) != 0 || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: signals %d, named %q; want none and %q", tt.body, len(b.Signals), got, want)
		}
	}
}
