// Package shopify receives Shopify webhooks about customers' marketing
// consent (kind "shopify").
//
// Wire format (https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook,
// https://shopify.dev/docs/api/webhooks):
//
//   - The body is JSON. Shopify escapes "/" as "\/" and "&" as "\u0026", and
//     X-Shopify-Hmac-Sha256 is base64(HMAC-SHA256(secret, raw body)): the body
//     is verified as received and never re-serialized. There is no signed
//     timestamp, so there is no freshness window.
//   - X-Shopify-Topic names the topic. customers/create, customers/update,
//     customers/email_marketing_consent_update and
//     customers/marketing_consent_update carry the same consent objects:
//     email_marketing_consent{state, opt_in_level, consent_updated_at} about
//     the customer's email ("email" or "email_address") and
//     sms_marketing_consent{...} about their phone ("phone" or
//     "phone_number"). orders/create and orders/paid make the buyer a
//     customer of the brand and are a contact from the person (a profile
//     and an activity, not a consent: see parseOrder).
//   - X-Shopify-Event-Id identifies the event (X-Shopify-Webhook-Id the
//     delivery); X-Shopify-Triggered-At is when it was triggered.
//
// Only the body is signed. X-Shopify-Topic, X-Shopify-Event-Id,
// X-Shopify-Webhook-Id and X-Shopify-Triggered-At are not: whoever holds one
// signed body can re-send it with any of them changed. So nothing that
// decides what a body means comes from those headers:
//
//   - the dedup key is a hash of the signed body (see Parse), not the event
//     id: a re-sent body with a new event id is a duplicate;
//   - every time is read from the body (consent_updated_at, updated_at,
//     processed_at, created_at), never from X-Shopify-Triggered-At: a
//     re-sent body cannot be re-dated;
//   - the body's shape, not the topic, says how it is read: consent objects
//     are read only where they appear, at the top of a customer record, and
//     only an order-shaped body gives order facts. A forged topic can at
//     most change the wording of a skip reason; it cannot make an order be
//     read as consent or a customer record as an order.
//
// Whoever holds a signed body can still re-send it unchanged; that is a
// duplicate of a genuine Shopify retry and the inbox stores it once. A body
// signed with the same secret for another shop (an app's client secret is
// shared by every shop that installs it) is accepted too: use a per-shop
// secret (a custom app, or the shop's own webhook signing secret) for each
// source.
package shopify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Headers Shopify sends with every webhook. Only HeaderHMAC's value is
// tied to the body; the others are unsigned (see the package comment).
const (
	HeaderHMAC        = "X-Shopify-Hmac-Sha256"
	HeaderTopic       = "X-Shopify-Topic"
	HeaderEventID     = "X-Shopify-Event-Id"
	HeaderWebhookID   = "X-Shopify-Webhook-Id"
	HeaderTriggeredAt = "X-Shopify-Triggered-At"
)

// Topics to subscribe this source to. Parse does not branch on the topic
// header (it is unsigned): it reads the body's shape.
const (
	TopicCustomersCreate        = "customers/create"
	TopicCustomersUpdate        = "customers/update"
	TopicEmailConsentUpdate     = "customers/email_marketing_consent_update"
	TopicMarketingConsentUpdate = "customers/marketing_consent_update"
	TopicOrdersCreate           = "orders/create"
	TopicOrdersPaid             = "orders/paid"
)

const (
	consentEmail   = "email_marketing_consent"
	consentSMS     = "sms_marketing_consent"
	optInConfirmed = "confirmed_opt_in"
)

// Source verifies and parses one shop's (or app's) webhooks.
type Source struct {
	cfg config.Source
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Shopify source. cfg.Secrets are the app's client
// secrets (or the shop's webhook signing secret); several allow rotation.
// Signals go to cfg.Brand.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSource(cfg, "the app's client secret that signs X-Shopify-Hmac-Sha256"); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg}, nil
}

// Verify checks X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(secret, raw
// body)) against every configured secret, in constant time. Shopify signs
// no timestamp, so now is unused. Errors wrap connectors.ErrUnauthorized.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil {
		return connectors.Unauthorized("no request")
	}
	got := r.Header.Get(HeaderHMAC)
	if strings.TrimSpace(got) == "" {
		return connectors.Unauthorized("missing %s header", HeaderHMAC)
	}
	ok := connectors.AnySecret(s.cfg.Secrets, func(secret string) bool {
		return connectors.EqualBase64(got, connectors.HMAC("sha256", []byte(secret), r.Body))
	})
	if !ok {
		return connectors.Unauthorized("%s does not match the body", HeaderHMAC)
	}
	return nil
}

// Parse turns one webhook into a Batch. The body's shape decides how it is
// read, whatever X-Shopify-Topic says (the topic is not signed):
//
//   - a JSON object with a top-level email_marketing_consent or
//     sms_marketing_consent key is a customer record (customers/* topics):
//     its consent objects give signals (below);
//   - else an object with an order's processed_at or order_number key is an
//     order (orders/create, orders/paid): see parseOrder;
//   - anything else is skipped.
//
// Consent states map as follows (per channel object):
//
//	subscribed      granted (opt_in_level kept; confirmed_opt_in also sets ConfirmedAt)
//	pending         pending (double opt-in sent, not confirmed)
//	unsubscribed    withdrawn
//	not_subscribed  no signal: the person never subscribed, and absence is not withdrawal
//	redacted        Batch.Erasures
//	invalid         Batch.Undeliverable
//
// An SMS signal names the customer's number and, when it is an address,
// their email: the number is given with the address, so the worker links
// the two into one person (the consent stays the number's).
//
// occurred_at is the consent object's consent_updated_at (RFC 3339, any
// offset, converted to UTC), else the record's own top-level updated_at
// (customer payloads carry it), else the channel is skipped: it is never
// taken from X-Shopify-Triggered-At, which is unsigned. Evidence.EventID is
// X-Shopify-Event-Id, kept for the record only (it is unsigned too).
//
// DedupKey is "sha256:" + the hex SHA-256 of the raw body: it is derived
// from the signed bytes, so re-sending a signed body with another event id
// or topic is a duplicate. A genuine Shopify retry re-sends the same body;
// two deliveries with identical bodies (one change firing two topics)
// carry the same facts, so keeping one of them loses nothing. A body that
// is not a JSON object returns an error wrapping connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	obj, err := connectors.JSONObject(r)
	if err != nil {
		return nil, err
	}
	b := &connectors.Batch{DedupKey: DedupKey(r.Body)}
	switch {
	case isCustomerRecord(obj):
		s.parseCustomer(r.Header, obj, b)
	case isOrder(obj):
		s.parseOrder(obj, b)
	default:
		// The topic only words the reason: it is unsigned.
		switch topic := strings.TrimSpace(r.Header.Get(HeaderTopic)); {
		case topic == "" || strings.HasPrefix(topic, "customers"):
			b.Skipped = append(b.Skipped, "customer: no marketing consent object")
		case strings.HasPrefix(topic, "orders/"):
			b.Skipped = append(b.Skipped, "order: body is not an order (no processed_at or order_number)")
		default:
			b.Skipped = append(b.Skipped, fmt.Sprintf("topic %q: no consent meaning", connectors.Clip(topic, connectors.MaxQuoted)))
		}
	}
	return b, nil
}

// DedupKey is the inbox key of a Shopify webhook: "sha256:" + the hex
// SHA-256 of its raw (signed) body.
func DedupKey(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// isCustomerRecord reports whether the body carries a consent object at its
// top level, as customer payloads do (customers/create, customers/update,
// the consent-update topics; even customers/delete sends them as null).
// Orders carry consent only inside "customer", as a snapshot.
func isCustomerRecord(obj map[string]json.RawMessage) bool {
	_, email := obj[consentEmail]
	_, sms := obj[consentSMS]
	return email || sms
}

// isOrder reports whether the body looks like an order
// (https://shopify.dev/docs/api/admin-rest/latest/resources/order): orders
// always carry processed_at and order_number; customers, checkouts and
// draft orders carry neither.
func isOrder(obj map[string]json.RawMessage) bool {
	_, processed := obj["processed_at"]
	_, number := obj["order_number"]
	return processed || number
}

// parseOrder handles orders/create and orders/paid
// (https://shopify.dev/docs/api/admin-rest/latest/resources/order). An
// order makes its buyer a customer of the brand (the "soft opt-in" profile
// of docs/rules.md) and is a qualifying contact from the person: it adds
// a consent.ProfileFact{Profile: customer} and a consent.Activity{Kind:
// order} on email, both for cfg.Brand, and no consent signal (the order's
// customer.email_marketing_consent is a snapshot, not an event; consent
// changes come from the customers/* topics).
//
// The buyer is the order's "email", else "contact_email", else
// customer.email, kept as sent. The time is processed_at (when the order
// was placed; Shopify lets imported orders set it in the past), else
// created_at, else the order is skipped (never X-Shopify-Triggered-At,
// which is unsigned). Test orders ("test": true) and cancelled orders
// (cancelled_at set) are skipped: they are no commercial relationship.
// Both topics fire for a paid order; the two facts are the same and the
// worker keeps one.
func (s *Source) parseOrder(obj map[string]json.RawMessage, b *connectors.Batch) {
	for _, k := range []string{"email", "contact_email"} {
		if v := connectors.JSONString(obj[k]); strings.TrimSpace(v) != "" {
			b.Named = append(b.Named, consent.Subject{Email: v})
		}
	}
	if string(obj["test"]) == "true" {
		b.Skipped = append(b.Skipped, "order: test order")
		return
	}
	if c, ok := obj["cancelled_at"]; ok && !isNull(c) {
		b.Skipped = append(b.Skipped, "order: cancelled")
		return
	}
	email := firstString(obj, "email", "contact_email")
	if email == "" {
		var customer map[string]json.RawMessage
		if json.Unmarshal(obj["customer"], &customer) == nil {
			email = firstString(customer, "email")
		}
	}
	if email == "" {
		b.Skipped = append(b.Skipped, "order: no email")
		return
	}
	at, ok := parseTime(connectors.JSONString(obj["processed_at"]))
	if !ok {
		at, ok = parseTime(connectors.JSONString(obj["created_at"]))
	}
	if !ok {
		b.Skipped = append(b.Skipped, "order: no processed_at or created_at")
		return
	}
	b.Activities = append(b.Activities, connectors.EmailActivity(s.cfg, email, consent.ActivityOrder, at))
	b.Profiles = append(b.Profiles, consent.ProfileFact{
		Subject:    consent.Subject{Email: email},
		Brand:      s.cfg.Brand,
		Profile:    consent.ProfileCustomer,
		OccurredAt: at,
		Source:     s.cfg.Name,
	})
}

// channelSpec is one consent object of a customer payload.
type channelSpec struct {
	key     string // "email_marketing_consent"
	label   string // "email", used in skip reasons
	channel consent.Channel
	subject consent.Subject
}

func (s *Source) parseCustomer(h http.Header, obj map[string]json.RawMessage, b *connectors.Batch) {
	email := firstString(obj, "email", "email_address")
	phone := firstString(obj, "phone", "phone_number")
	recordUpdated, hasRecordUpdated := parseTime(connectors.JSONString(obj["updated_at"]))
	eventID := strings.TrimSpace(h.Get(HeaderEventID))
	// The record names the customer whatever its consent objects say (a
	// not_subscribed one gives no signal): their erasure finds the request.
	if strings.TrimSpace(email) != "" {
		b.Named = append(b.Named, consent.Subject{Email: email})
	}
	if strings.TrimSpace(phone) != "" {
		b.Named = append(b.Named, consent.Subject{Phone: phone})
	}

	specs := []channelSpec{
		{key: consentEmail, label: "email", channel: consent.ChannelEmail, subject: consent.Subject{Email: email}},
		{key: consentSMS, label: "sms", channel: consent.ChannelSMS, subject: consent.Subject{Phone: phone}},
	}
	found := false
	// The number is given with the customer's address: SMS signals carry
	// both, so the worker links them into one person (consent.ConsentSubject:
	// the consent stays the number's). An address that is not one is left
	// out: the worker would drop the whole signal for it.
	smsWith := consent.Subject{Phone: phone}
	if _, _, err := consent.NormalizeEmail(email); err == nil {
		smsWith.Email = email
	}
	for _, sp := range specs {
		raw, ok := obj[sp.key]
		if !ok || isNull(raw) {
			continue
		}
		found = true
		var c map[string]json.RawMessage
		if err := json.Unmarshal(raw, &c); err != nil || c == nil {
			b.Skipped = append(b.Skipped, sp.label+": consent object is not an object")
			continue
		}
		if sp.subject.Key() == "" {
			b.Skipped = append(b.Skipped, sp.label+": no "+identifierName(sp.channel))
			continue
		}
		state := strings.ToLower(strings.TrimSpace(connectors.JSONString(c["state"])))
		var status consent.Status
		switch state {
		case "subscribed":
			status = consent.StatusGranted
		case "pending":
			status = consent.StatusPending
		case "unsubscribed":
			status = consent.StatusWithdrawn
		case "not_subscribed":
			// The person never subscribed: no evidence either way. Turning
			// it into a withdrawal would suppress, in every provider, people
			// who opted in elsewhere (absence is not withdrawal).
			b.Skipped = append(b.Skipped, sp.label+": not_subscribed (never subscribed): no signal")
			continue
		case "redacted":
			b.Erasures = append(b.Erasures, sp.subject)
			continue
		case "invalid":
			b.Undeliverable = append(b.Undeliverable, sp.subject.Key())
			continue
		case "":
			b.Skipped = append(b.Skipped, sp.label+": no state")
			continue
		default:
			b.Skipped = append(b.Skipped, fmt.Sprintf("%s: unknown state %q", sp.label, connectors.Clip(state, connectors.MaxQuoted)))
			continue
		}

		// Times come from the signed body only.
		updatedAt, hasUpdated := parseTime(connectors.JSONString(c["consent_updated_at"]))
		occurred := updatedAt
		if !hasUpdated {
			if !hasRecordUpdated {
				b.Skipped = append(b.Skipped, sp.label+": no consent_updated_at or updated_at")
				continue
			}
			occurred = recordUpdated
		}
		optIn := strings.ToLower(strings.TrimSpace(connectors.JSONString(c["opt_in_level"])))
		ev := consent.Evidence{
			EventID:    eventID,
			Event:      state,
			Field:      sp.key,
			OptInLevel: optIn,
		}
		if status == consent.StatusGranted && optIn == optInConfirmed && hasUpdated {
			t := updatedAt
			ev.ConfirmedAt = &t
		}
		sub := sp.subject
		if sp.channel == consent.ChannelSMS {
			sub = smsWith
		}
		b.Signals = append(b.Signals, consent.Signal{
			Subject:    sub,
			Channel:    sp.channel,
			Brand:      s.cfg.Brand,
			Purpose:    consent.PurposeMarketing,
			Status:     status,
			OccurredAt: occurred,
			Source:     s.cfg.Name,
			Evidence:   ev,
		})
	}
	if !found {
		b.Skipped = append(b.Skipped, "customer: no marketing consent object")
	}
}

func identifierName(c consent.Channel) string {
	if c == consent.ChannelEmail {
		return "email"
	}
	return "phone"
}

// parseTime reads an RFC 3339 time with any offset (and optional fraction)
// and returns it in UTC; a year outside consent.MinYear..MaxYear (not
// storable, not renderable as JSON) is not readable.
func parseTime(v string) (time.Time, bool) {
	t, ok := connectors.ParseRFC3339(v)
	return t, ok && connectors.InYearRange(t)
}

func firstString(obj map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		// The address is kept as sent: the worker normalizes it.
		if v := connectors.JSONString(obj[k]); strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

func isNull(raw json.RawMessage) bool {
	return strings.TrimSpace(string(raw)) == "null"
}
