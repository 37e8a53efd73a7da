// Package hubspot is the inbound connector for HubSpot webhooks (kind
// "hubspot").
//
// Body (https://developers.hubspot.com/docs/api/webhooks): a JSON array of
// events, each
//
//	{"eventId", "subscriptionId", "portalId", "appId", "occurredAt" (Unix ms),
//	 "subscriptionType", "attemptNumber", "objectId", "propertyName",
//	 "propertyValue", "changeSource", "sourceId"}
//
// Consent meaning (docs/wire-formats.md, "hubspot" and "Scope"):
//
//   - contact.propertyChange of hs_email_optout to "true" → withdrawal of the
//     source brand's marketing on email, at occurredAt;
//   - hs_email_optout to "false" → no signal: a re-subscription in the CRM is
//     not an express opt-in by the person;
//   - contact.propertyChange of lifecyclestage to "customer" → a
//     consent.ProfileFact (customer of the source brand since occurredAt,
//     the "soft opt-in" profile of docs/rules.md); other stages are
//     skipped (a lead or an opportunity is not a customer);
//   - contact.propertyChange of hs_email_optout_<subscription id> (the
//     per-subscription-type property, "Opted out of email: <type>") to
//     "true" → withdrawal of the brand and purpose the source option
//     subscriptions maps that id to ({"<id>": {brand, purpose, channel}};
//     default brand the source's, channel email); an unmapped id is
//     skipped ("subscription 384887 not mapped"): opting out of one
//     subscription type is not a withdrawal of all marketing, and only the
//     configuration knows which purpose the type carries. "false" → no
//     signal, as for hs_email_optout. hs_email_optout itself stays the
//     withdrawal of all email marketing.
//     Subscription types: https://developers.hubspot.com/docs/guides/api/marketing/subscriptions-preferences.
//     HubSpot's webhook API offers no subscription-change event of its own
//     (the v3 eventType enum, https://developers.hubspot.com/docs/api-reference/2026-03/webhooks/guide,
//     lists propertyChange, creation, deletion, merge, restore,
//     associationChange, privacyDeletion; the v4 webhooks journal is polled,
//     not pushed): a communication-preferences change reaches a webhook as
//     this property change;
//   - contact.privacyDeletion → an erasure request (Batch.Erasures);
//   - anything else → skipped.
//
// Events name contacts by id: signals and profile facts carry
// Subject.ExternalID "hubspot:contact:<objectId>" and Resolve fetches the
// emails with the CRM API's batch read (100 contacts a call, cached). The newer "object.propertyChange" / "object.privacyDeletion" events
// with objectTypeId "0-1" (contacts) are read the same way.
//
// Signatures (https://developers.hubspot.com/docs/api/webhooks/validating-requests):
// only v3 (signed timestamp, 5-minute window) is accepted by default. v1
// and v2 carry no timestamp, so a captured request could be replayed for
// ever (and, once the inbox row is gone, processed again); they are
// accepted only with legacy_signatures: true (SourceOptions.LegacySignatures),
// when X-HubSpot-Signature-v3 is absent and X-HubSpot-Signature-Version
// says so.
package hubspot

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind this package serves.
const Kind = "hubspot"

// Header names.
const (
	SignatureV3Header = "X-HubSpot-Signature-v3"
	TimestampHeader   = "X-HubSpot-Request-Timestamp"
	SignatureHeader   = "X-HubSpot-Signature"
	VersionHeader     = "X-HubSpot-Signature-Version"
)

// DefaultAPIBaseURL is used when api_base_url is not set.
const DefaultAPIBaseURL = "https://api.hubapi.com"

// ExternalIDPrefix prefixes a contact id in Subject.ExternalID.
const ExternalIDPrefix = "hubspot:contact:"

// OptOutProperty is the contact property that says "opted out of all email".
const OptOutProperty = "hs_email_optout"

// LifecycleProperty is the contact property holding the lifecycle stage;
// LifecycleCustomer is its internal value for a customer
// (https://knowledge.hubspot.com/records/use-lifecycle-stages).
const (
	LifecycleProperty = "lifecyclestage"
	LifecycleCustomer = "customer"
)

// Source verifies, parses and resolves one HubSpot app's webhooks.
type Source struct {
	name      string
	brand     string
	secrets   []string
	legacy    bool // accept v1/v2 signatures (legacy_signatures)
	tolerance time.Duration
	publicURL string
	apiBase   string
	apiToken  string
	http      *retryablehttp.Client
	clock     func() time.Time
	cache     *contactCache
	subs      map[string]scope
}

var (
	_ connectors.Source   = (*Source)(nil)
	_ connectors.Resolver = (*Source)(nil)
)

// Cache bounds for contact id → email lookups (see Resolve): 10,000
// contacts (one 10,000-event webhook, about 1 MB), each for 10 minutes, so
// that an email changed at HubSpot is read again within that time.
const (
	cacheSize = 10000
	cacheTTL  = 10 * time.Minute
)

// SourceOptions are a HubSpot source's own keys.
type SourceOptions struct {
	// PublicURL is the scheme and host HubSpot posts to
	// ("https://hooks.example.com"): v2 and v3 signatures cover the full
	// URL (required).
	PublicURL string `yaml:"public_url"`
	// APIBaseURL is the CRM API root Resolve calls (default
	// DefaultAPIBaseURL).
	APIBaseURL string `yaml:"api_base_url"`
	// APIToken is a private app token with crm.objects.contacts.read:
	// events carry contact ids, and Resolve reads their emails (required).
	APIToken string `yaml:"api_token"`
	// LegacySignatures also accepts v1/v2 signatures, which carry no
	// timestamp and so cannot refuse replays (default false; see Verify).
	LegacySignatures bool `yaml:"legacy_signatures"`
	// Subscriptions maps a HubSpot email subscription type id ("384887")
	// to what an opt-out of it (hs_email_optout_<id> "true") withdraws.
	Subscriptions map[string]Subscription `yaml:"subscriptions"`
}

// Subscription is the scope of one HubSpot subscription type: Purpose is
// required (a consent.Purpose: marketing, partners, cookies:<name>, ...),
// Brand defaults to the source's, Channel to email.
type Subscription struct {
	Brand   string `yaml:"brand"`
	Purpose string `yaml:"purpose"`
	Channel string `yaml:"channel"`
}

// SubscriptionOptOutPrefix starts the per-subscription-type opt-out
// property: hs_email_optout_<subscription type id>.
const SubscriptionOptOutPrefix = OptOutProperty + "_"

// Validate checks subscriptions: digit ids, a known purpose, a known
// channel when set (config.OptionsValidator). Keys are
// "subscriptions.<id>.purpose" and the like.
func (o *SourceOptions) Validate(_ bool, bad func(key, format string, args ...any)) {
	for id, sub := range o.Subscriptions {
		k := "subscriptions." + id
		if !isDigits(id) {
			bad(k, "must be a HubSpot subscription type id (digits)")
		}
		if sub.Purpose == "" {
			bad(k+".purpose", "is required")
		} else if _, err := consent.ParsePurpose(sub.Purpose); err != nil {
			bad(k+".purpose", "%s", err.Error())
		}
		if sub.Channel != "" {
			if _, err := consent.ParseChannel(sub.Channel); err != nil {
				bad(k+".channel", "%s", err.Error())
			}
		}
	}
}

// Brands returns the brands subscriptions name (config.BrandLister).
func (o *SourceOptions) Brands() []string {
	var out []string
	for _, s := range o.Subscriptions {
		if s.Brand != "" {
			out = append(out, s.Brand)
		}
	}
	return out
}

// scope is a resolved Subscription.
type scope struct {
	brand   string
	purpose consent.Purpose
	channel consent.Channel
}

// Defaults sets api_base_url to DefaultAPIBaseURL when unset.
func (o *SourceOptions) Defaults() {
	if o.APIBaseURL == "" {
		o.APIBaseURL = DefaultAPIBaseURL
	}
}

// NewSource builds a HubSpot source; cfg.Options holds its SourceOptions
// (config.Parse sets it; a config built in code may leave it nil and get
// the defaults). It needs the app's client secret(s) (secrets), public_url
// (the scheme and host HubSpot posts to: v2 and v3 signatures cover the
// full URL) and api_token (a private app token with
// crm.objects.contacts.read, for Resolve); api_base_url defaults to
// DefaultAPIBaseURL. legacy_signatures (default false) also accepts v1/v2
// signatures, see Verify. deps.HTTP defaults to connectors.NewHTTPClient.
// Errors name the config key.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	opts := config.OptionsOf[SourceOptions](cfg.Options)
	if err := connectors.CheckSecrets(cfg.Secrets, ""); err != nil {
		return nil, err
	}
	if cfg.Brand == "" {
		return nil, errors.New("brand: required")
	}
	pub := strings.TrimRight(strings.TrimSpace(opts.PublicURL), "/")
	if pub == "" {
		return nil, errors.New("public_url: required (HubSpot signs the URL it posts to, e.g. https://hooks.example.com)")
	}
	if !connectors.IsHTTPURL(pub) {
		return nil, errors.New("public_url: want scheme and host, e.g. https://hooks.example.com")
	}
	base := strings.TrimRight(strings.TrimSpace(opts.APIBaseURL), "/")
	if base == "" {
		base = DefaultAPIBaseURL
	}
	if !connectors.IsHTTPURL(base) {
		return nil, errors.New("api_base_url: must be an http:// or https:// URL")
	}
	if opts.APIToken == "" {
		return nil, errors.New("api_token: required (contact emails are fetched from the HubSpot CRM API)")
	}
	var verr error
	opts.Validate(false, func(key, format string, args ...any) {
		if verr == nil {
			verr = fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
		}
	})
	if verr != nil {
		return nil, verr
	}
	subs := make(map[string]scope, len(opts.Subscriptions))
	for id, sub := range opts.Subscriptions {
		sc := scope{brand: cfg.Brand, purpose: consent.Purpose(sub.Purpose), channel: consent.ChannelEmail}
		if sub.Brand != "" {
			sc.brand = sub.Brand
		}
		if sub.Channel != "" {
			sc.channel = consent.Channel(sub.Channel)
		}
		subs[id] = sc
	}
	return &Source{
		subs:      subs,
		name:      cfg.Name,
		brand:     cfg.Brand,
		secrets:   cfg.Secrets,
		legacy:    opts.LegacySignatures,
		tolerance: connectors.Tolerance(cfg.Tolerance),
		publicURL: pub,
		apiBase:   base,
		apiToken:  opts.APIToken,
		http:      deps.HTTPClient(0),
		clock:     deps.Clock,
		cache:     newContactCache(cacheSize, cacheTTL),
	}, nil
}

// v3URIDecoder decodes the characters HubSpot's v3 scheme wants decoded in
// the request URI (validating-requests, "Validate the v3 request signature").
var v3URIDecoder = strings.NewReplacer(
	"%3A", ":", "%3a", ":", "%2F", "/", "%2f", "/", "%3F", "?", "%3f", "?",
	"%40", "@", "%21", "!", "%24", "$", "%27", "'", "%28", "(", "%29", ")",
	"%2A", "*", "%2a", "*", "%2C", ",", "%2c", ",", "%3B", ";", "%3b", ";",
)

// V3Signature returns the v3 signature: base64 HMAC-SHA256(secret, method +
// uri + body + timestamp), with the URI's %3A, %2F, %3F, %40, %21, %24, %27,
// %28, %29, %2A, %2C, %3B decoded and timestamp the header text verbatim
// (Unix ms).
func V3Signature(secret, method, uri string, body []byte, timestamp string) string {
	mac := connectors.HMAC("sha256", []byte(secret), []byte(method+v3URIDecoder.Replace(uri)), body, []byte(timestamp))
	return base64.StdEncoding.EncodeToString(mac)
}

// Sign returns the headers HubSpot sends with a v3-signed request at ts:
// X-HubSpot-Request-Timestamp (Unix ms) and X-HubSpot-Signature-v3. uri is
// the full URL HubSpot posts to (public_url + path [+ "?" + query]). For
// tests and the demo.
func Sign(secret, method, uri string, body []byte, ts time.Time) map[string]string {
	t := strconv.FormatInt(ts.UnixMilli(), 10)
	return map[string]string{
		TimestampHeader:   t,
		SignatureV3Header: V3Signature(secret, method, uri, body, t),
	}
}

// URI is the URL HubSpot signed for r: public_url + path (+ "?" + raw query).
func (s *Source) URI(r *connectors.Request) string {
	p := r.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	u := s.publicURL + p
	if r.RawQuery != "" {
		u += "?" + r.RawQuery
	}
	return u
}

// Verify checks X-HubSpot-Signature-v3 (timestamp within the tolerance,
// then the HMAC). A request without a valid v3 signature is refused, unless
// the source has legacy_signatures: true and the request has no v3 header:
// then X-HubSpot-Signature is checked as v2 (hex SHA-256 of secret + method
// + URI + body) or v1 (hex SHA-256 of secret + body) as
// X-HubSpot-Signature-Version says. v1 and v2 sign no timestamp, so a
// captured request verifies for ever: that is why they are off by default.
// Every secret is tried, in constant time. Errors wrap
// connectors.ErrUnauthorized; a stale v3 timestamp also wraps
// connectors.ErrStale.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	method := r.Method
	if method == "" {
		method = "POST"
	}
	uri := s.URI(r)
	if sig := strings.TrimSpace(r.Header.Get(SignatureV3Header)); sig != "" {
		tsText := strings.TrimSpace(r.Header.Get(TimestampHeader))
		ts, ok := connectors.ParseUnix(tsText, "ms")
		if !ok {
			return connectors.Unauthorized("%s missing or not Unix milliseconds", TimestampHeader)
		}
		if err := connectors.CheckTimestamp(ts, now, s.tolerance); err != nil {
			return err
		}
		decoded := v3URIDecoder.Replace(uri)
		ok = connectors.AnySecret(s.secrets, func(sec string) bool {
			mac := connectors.HMAC("sha256", []byte(sec), []byte(method+decoded), r.Body, []byte(tsText))
			return connectors.EqualBase64(sig, mac)
		})
		if !ok {
			return connectors.Unauthorized("%s does not match", SignatureV3Header)
		}
		return nil
	}
	sig := strings.TrimSpace(r.Header.Get(SignatureHeader))
	if !s.legacy {
		if sig != "" {
			return connectors.Unauthorized("missing %s header (v1/v2 %s refused: they sign no timestamp; see legacy_signatures)", SignatureV3Header, SignatureHeader)
		}
		return connectors.Unauthorized("missing %s header", SignatureV3Header)
	}
	if sig == "" {
		return connectors.Unauthorized("missing %s header", SignatureV3Header)
	}
	var prefix func(sec string) string
	switch v := strings.ToLower(strings.TrimSpace(r.Header.Get(VersionHeader))); v {
	case "v2":
		prefix = func(sec string) string { return sec + method + uri }
	case "v1":
		prefix = func(sec string) string { return sec }
	default:
		return connectors.Unauthorized("%s without a v1 or v2 %s", SignatureHeader, VersionHeader)
	}
	ok := connectors.AnySecret(s.secrets, func(sec string) bool {
		h := sha256.New()
		h.Write([]byte(prefix(sec)))
		h.Write(r.Body)
		return connectors.EqualHex(sig, h.Sum(nil))
	})
	if !ok {
		return connectors.Unauthorized("%s does not match", SignatureHeader)
	}
	return nil
}

// Parse reads the event array (a single event object is accepted too).
// DedupKey is the sha256 hex of the sorted "portalId:eventId:objectId" keys
// of the batch, one per line (eventId alone is not unique), or "" when an
// item lacks one. Signals, profile facts and erasures carry only
// Subject.ExternalID: call Resolve.
// A body that is not a JSON array or object wraps connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	v, err := mapping.DecodeJSON(r.Body)
	if err != nil {
		return nil, connectors.Malformed("JSON: %v", err)
	}
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case map[string]any:
		items = []any{x}
	default:
		return nil, connectors.Malformed("want a JSON array of events")
	}
	b := &connectors.Batch{}
	keys := make([]string, 0, len(items))
	for i, item := range items {
		n := i + 1
		ev, ok := item.(map[string]any)
		if !ok {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: not an object", n))
			continue
		}
		portal, event, object := intText(ev["portalId"]), intText(ev["eventId"]), intText(ev["objectId"])
		key := ""
		if portal != "" && event != "" && object != "" {
			key = portal + ":" + event + ":" + object
			keys = append(keys, key)
		}
		typ, _ := ev["subscriptionType"].(string)
		kind := eventKind(typ, ev)
		if kind == "" {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: event %q not mapped", n, connectors.ClipUTF8(typ, 64)))
			continue
		}
		if object == "" {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: no objectId", n))
			continue
		}
		subject := consent.Subject{ExternalID: ExternalIDPrefix + object}
		if kind == "privacyDeletion" {
			b.Erasures = append(b.Erasures, subject)
			continue
		}
		prop, _ := ev["propertyName"].(string)
		val, _ := mapping.Text(ev["propertyValue"])
		sc := scope{brand: s.brand, purpose: consent.PurposeMarketing, channel: consent.ChannelEmail}
		switch {
		case strings.HasPrefix(prop, SubscriptionOptOutPrefix):
			id := strings.TrimPrefix(prop, SubscriptionOptOutPrefix)
			mapped, ok := s.subs[id]
			switch {
			case !isDigits(id):
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: property %q not mapped", n, connectors.ClipUTF8(prop, 64)))
				continue
			case !ok:
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: subscription %s not mapped (source option subscriptions)", n, connectors.ClipUTF8(id, 20)))
				continue
			}
			sc = mapped
			switch strings.ToLower(strings.TrimSpace(val)) {
			case "true":
			case "false":
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s false: a re-subscription is not an express opt-in", n, connectors.ClipUTF8(prop, 64)))
				continue
			default:
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s value is neither true nor false", n, connectors.ClipUTF8(prop, 64)))
				continue
			}
		case prop == OptOutProperty:
			switch strings.ToLower(strings.TrimSpace(val)) {
			case "true":
			case "false":
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s false: a re-subscription is not an express opt-in", n, OptOutProperty))
				continue
			default:
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s value is neither true nor false", n, OptOutProperty))
				continue
			}
		case prop == LifecycleProperty:
			if stage := strings.ToLower(strings.TrimSpace(val)); stage != LifecycleCustomer {
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s %q is not a customer", n, LifecycleProperty, connectors.ClipUTF8(stage, 64)))
				continue
			}
		default:
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: property %q not mapped", n, connectors.ClipUTF8(prop, 64)))
			continue
		}
		// ParseUnix allows up to 2^53 ms; a year past consent.MaxYear cannot
		// be stored or rendered as JSON.
		occurred, ok := connectors.ParseUnix(intText(ev["occurredAt"]), "ms")
		switch {
		case ok && connectors.InYearRange(occurred):
		case prop != LifecycleProperty && !r.ReceivedAt.IsZero():
			// A withdrawal is never dropped for a bad date: it is dated when
			// it reached us (later than it occurred, so it wins over older
			// grants).
			occurred = r.ReceivedAt.UTC()
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: no occurredAt: dated at arrival", n))
		default:
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: no occurredAt", n))
			continue
		}
		if prop == LifecycleProperty {
			b.Profiles = append(b.Profiles, consent.ProfileFact{
				Subject:    subject,
				Brand:      s.brand,
				Profile:    consent.ProfileCustomer,
				OccurredAt: occurred,
				Source:     s.name,
			})
			continue
		}
		b.Signals = append(b.Signals, consent.Signal{
			Subject:    subject,
			Channel:    sc.channel,
			Brand:      sc.brand,
			Purpose:    sc.purpose,
			Status:     consent.StatusWithdrawn,
			OccurredAt: occurred,
			Source:     s.name,
			Evidence: consent.Evidence{
				EventID:  key,
				Event:    connectors.ClipUTF8(typ, 64),
				Field:    connectors.ClipUTF8(prop, 64),
				Checkbox: connectors.ClipUTF8(val, 64),
			},
		})
	}
	if len(items) == 0 {
		b.Skipped = append(b.Skipped, "empty batch")
	} else if len(keys) == len(items) {
		b.DedupKey = connectors.HashKeys(keys)
	}
	return b, nil
}

// eventKind is "propertyChange", "privacyDeletion" or "" for a contact event.
func eventKind(typ string, ev map[string]any) string {
	switch typ {
	case "contact.propertyChange":
		return "propertyChange"
	case "contact.privacyDeletion":
		return "privacyDeletion"
	case "object.propertyChange", "object.privacyDeletion":
		if ot, _ := ev["objectTypeId"].(string); ot == "0-1" {
			return strings.TrimPrefix(typ, "object.")
		}
	}
	return ""
}

// intText renders a positive integer id sent as a JSON number or a digit
// string; anything else is "".
func intText(v any) string {
	t, ok := mapping.Text(v)
	if !ok {
		return ""
	}
	t = strings.TrimSpace(t)
	if t == "" || len(t) > 20 {
		return ""
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return ""
		}
	}
	return t
}
