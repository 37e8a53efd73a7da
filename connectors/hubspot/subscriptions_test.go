package hubspot

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// subsFixture is the per-subscription-type fixture and its source config.
func subsFixture(t testing.TB, sandboxURL string) (fixtures.Fixture, config.Source) {
	t.Helper()
	if sandboxURL == "" {
		sandboxURL = "http://127.0.0.1:1"
	}
	return fixtures.Load(t, "hubspot-subscription-optout", map[string]string{"SANDBOX_URL": sandboxURL})
}

func TestSubscriptionFixture(t *testing.T) {
	t.Parallel()
	f, _ := subsFixture(t, "")
	sb := fixtureFake(t, f)
	_, cfg := subsFixture(t, sb.URL)
	s := newSource(t, cfg, testHTTP())
	r := f.ConnectorRequest()
	if err := s.Verify(r, f.Now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if V3Signature(secret, "POST", "https://hooks.example.com/webhooks/hubspot-prefs", f.Body, f.Request.Headers[TimestampHeader]) != f.Request.Headers[SignatureV3Header] {
		t.Error("V3Signature does not reproduce the fixture's signature")
	}
	b, err := s.Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Skipped) != 2 || !strings.Contains(b.Skipped[0], "subscription 999111 not mapped") || !strings.Contains(b.Skipped[1], "hs_email_optout_384890 false") {
		t.Errorf("skipped %q", b.Skipped)
	}
	if _, err := s.Resolve(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	f.Check(t, b)
	if ev := b.Signals[0].Evidence; ev.Field != "hs_email_optout_384890" || ev.EventID != "62515:4201:601" || ev.Checkbox != "true" {
		t.Errorf("evidence %+v", ev)
	}
}

func TestSubscriptionCases(t *testing.T) {
	t.Parallel()
	_, cfg := subsFixture(t, "")
	cfg = withOptions(cfg, func(o *SourceOptions) {
		o.Subscriptions = map[string]Subscription{
			"1": {Purpose: "marketing"},
			"2": {Brand: "acme-pro", Purpose: "partners"},
			"3": {Purpose: "cookies:newsletter_tracking", Channel: "sms"},
		}
	})
	s := newSource(t, cfg, connectors.Deps{})
	ev := func(prop, val string) string {
		return `[{"eventId":1,"portalId":9,"objectId":7,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"` + prop + `","propertyValue":` + val + `}]`
	}
	at := time.UnixMilli(1763632800000).UTC()
	for _, tc := range []struct {
		name, body string
		want       *consent.Signal // nil: skipped
		skip       string
	}{
		{"mapped marketing", ev("hs_email_optout_1", `"true"`), &consent.Signal{Brand: "acme", Purpose: "marketing", Channel: "email"}, ""},
		{"mapped other brand, partners", ev("hs_email_optout_2", `"TRUE"`), &consent.Signal{Brand: "acme-pro", Purpose: "partners", Channel: "email"}, ""},
		{"cookie sub-purpose on sms", ev("hs_email_optout_3", `true`), &consent.Signal{Brand: "acme", Purpose: "cookies:newsletter_tracking", Channel: "sms"}, ""},
		{"object event", strings.Replace(ev("hs_email_optout_1", `"true"`), `"contact.propertyChange"`, `"object.propertyChange","objectTypeId":"0-1"`, 1), &consent.Signal{Brand: "acme", Purpose: "marketing", Channel: "email"}, ""},
		{"all email stays all email", ev("hs_email_optout", `"true"`), &consent.Signal{Brand: "acme", Purpose: "marketing", Channel: "email"}, ""},
		{"unmapped id", ev("hs_email_optout_4", `"true"`), nil, "subscription 4 not mapped"},
		{"re-subscribed", ev("hs_email_optout_1", `"false"`), nil, "not an express opt-in"},
		{"odd value", ev("hs_email_optout_1", `"yes"`), nil, "neither true nor false"},
		{"null value", ev("hs_email_optout_1", `null`), nil, "neither true nor false"},
		{"not an id", ev("hs_email_optout_abc", `"true"`), nil, "not mapped"},
		{"empty id", ev("hs_email_optout_", `"true"`), nil, "not mapped"},
		{"id with sign", ev("hs_email_optout_-1", `"true"`), nil, "not mapped"},
		{"timestamp property", ev("hs_email_optout_timestamp", `"1763632800000"`), nil, "not mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fixtures.Parse(t, s, &connectors.Request{Body: []byte(tc.body)}, false)
			if tc.want == nil {
				if len(b.Signals) != 0 || len(b.Skipped) != 1 || !strings.Contains(b.Skipped[0], tc.skip) {
					t.Fatalf("signals %+v skipped %q, want skip %q", b.Signals, b.Skipped, tc.skip)
				}
				return
			}
			if len(b.Signals) != 1 {
				t.Fatalf("signals %+v skipped %q", b.Signals, b.Skipped)
			}
			sig := b.Signals[0]
			if sig.Brand != tc.want.Brand || sig.Purpose != tc.want.Purpose || sig.Channel != tc.want.Channel || sig.Status != consent.StatusWithdrawn ||
				!sig.OccurredAt.Equal(at) || sig.Subject.ExternalID != "hubspot:contact:7" {
				t.Errorf("signal %+v", sig)
			}
			if err := sig.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSubscriptionOptions(t *testing.T) {
	t.Parallel()
	base := "sources:\n  - {name: h, kind: hubspot, brand: acme, secrets: [s], public_url: \"https://x.example\", api_token: t, subscriptions: %s}\n"
	for _, tc := range []struct{ subs, want string }{
		{`{"12x": {purpose: marketing}}`, "sources[0].subscriptions.12x: must be a HubSpot subscription type id"},
		{`{"12": {}}`, "sources[0].subscriptions.12.purpose: is required"},
		{`{"12": {purpose: ads}}`, "sources[0].subscriptions.12.purpose: invalid purpose"},
		{`{"12": {purpose: "cookies:Bad Name"}}`, "sources[0].subscriptions.12.purpose: invalid purpose"},
		{`{"12": {purpose: marketing, channel: fax}}`, "sources[0].subscriptions.12.channel: unknown channel"},
	} {
		_, err := config.Parse([]byte(strings.Replace(base, "%s", tc.subs, 1)), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.subs, err, tc.want)
		}
	}
	c, err := config.Parse([]byte(strings.Replace(base, "%s", `{"12": {brand: acme-pro, purpose: "cookies:analytics"}}`, 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Brands(); strings.Join(got, ",") != "acme,acme-pro" {
		t.Errorf("brands %q: the subscription's brand is a configured brand", got)
	}
	// A config built in code is validated by NewSource, naming the key.
	_, cfg := subsFixture(t, "")
	bad := withOptions(cfg, func(o *SourceOptions) { o.Subscriptions = map[string]Subscription{"7": {Purpose: "nope"}} })
	if _, err := NewSource(bad, connectors.Deps{}); err == nil || !strings.HasPrefix(err.Error(), "subscriptions.7.purpose: ") {
		t.Errorf("NewSource: %v", err)
	}
}

func FuzzParseSubscriptions(f *testing.F) {
	fx, cfg := subsFixture(f, "")
	s := newSource(f, cfg, connectors.Deps{})
	f.Add(fx.Body)
	f.Add([]byte(`[{"eventId":1,"portalId":9,"objectId":7,"occurredAt":1763632800000,"subscriptionType":"contact.propertyChange","propertyName":"hs_email_optout_384887","propertyValue":"true"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := fixtures.FuzzParse(t, s, &connectors.Request{Body: body})
		if b == nil {
			return
		}
		for _, sig := range b.Signals {
			if sig.Status != consent.StatusWithdrawn || sig.Brand != "acme" ||
				(sig.Purpose != consent.PurposeMarketing && sig.Purpose != consent.PurposePartners) {
				t.Fatalf("bad signal %+v", sig)
			}
			if sig.Purpose == consent.PurposePartners && sig.Evidence.Field != "hs_email_optout_384890" {
				t.Fatalf("partners withdrawal from %q", sig.Evidence.Field)
			}
		}
	})
}
