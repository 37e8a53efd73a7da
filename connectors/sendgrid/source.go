// Package sendgrid connects consentsync to Twilio SendGrid: the Event
// Webhook in (Source) and global suppressions out (Destination).
//
// Event Webhook security: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
// Event fields: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
// Global suppressions: https://www.twilio.com/docs/sendgrid/api-reference/suppressions-global-suppressions/add-recipient-addresses-to-the-global-suppression-group
package sendgrid

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind of both the source and the destination.
const Kind = "sendgrid"

// Signed-webhook headers.
const (
	// HeaderSignature carries base64(ASN.1 DER ECDSA P-256 signature).
	HeaderSignature = "X-Twilio-Email-Event-Webhook-Signature"
	// HeaderTimestamp carries the signing time in Unix seconds; its exact
	// bytes are signed.
	HeaderTimestamp = "X-Twilio-Email-Event-Webhook-Timestamp"
)

var _ connectors.Source = (*Source)(nil)

// Source verifies and parses SendGrid Event Webhook deliveries.
//
// Signature: HeaderSignature is the base64 ASN.1 DER ECDSA P-256 signature
// of SHA-256(HeaderTimestamp's bytes + raw body), checked against every
// public key in cfg.Secrets (base64 PKIX DER, as SendGrid shows it; PEM is
// accepted too). The timestamp (Unix seconds) must be within cfg.Tolerance
// (default 5m) of now.
//
// Body: a JSON array of events {email, timestamp (Unix s), event,
// sg_event_id, asm_group_id, type, ...}, possibly with CRLF between items.
//
// Meaning:
//   - unsubscribe, spamreport: withdrawal of the source brand's marketing on
//     email (docs/wire-formats.md "Scope");
//   - group_unsubscribe: withdrawal scoped by groups[asm_group_id]
//     (purpose, brand, channel override the defaults marketing, source brand,
//     email); an unmapped or missing group withdraws the default scope;
//   - group_resubscribe: grant with the same scope (Evidence.Event
//     "group_resubscribe"); one without asm_group_id is skipped;
//   - bounce (but type "blocked") and dropped: Batch.Undeliverable;
//   - delivered, open, click: a consent.Activity (kind delivered, open,
//     click) of the source brand on email: a message sent, which the
//     "prior" criterion compares grants with, and contacts (a click renews a
//     prospect's consent; an open does not);
//   - blocked, deferred, processed and anything else: Batch.Skipped.
//
// SendGrid delivers duplicates: a repeated sg_event_id inside a batch
// yields one signal. OccurredAt is the event's timestamp (a withdrawal
// without a readable one is dated at arrival, never dropped). DedupKey is the
// sha256 hex of the sorted unique sg_event_ids, or "" (hash of the body)
// when an event has none.
type Source struct {
	name      string
	brand     string
	keys      []*ecdsa.PublicKey
	tolerance time.Duration
	groups    map[string]scope
}

type scope struct {
	brand   string
	purpose consent.Purpose
	channel consent.Channel
}

// NewSource builds a SendGrid source. Every secret must be a base64 PKIX DER
// (or PEM) ECDSA P-256 public key; errors name the bad entry
// ("secrets[1]: ...") and the bad group ("groups[1201].purpose: ...").
// cfg.Options holds its SourceOptions (groups; none when nil).
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	opts := config.OptionsOf[SourceOptions](cfg.Options)
	if len(cfg.Secrets) == 0 {
		return nil, fmt.Errorf("secrets: at least one public key is required")
	}
	if cfg.Brand == "" {
		return nil, fmt.Errorf("brand: is required")
	}
	s := &Source{name: cfg.Name, brand: cfg.Brand, tolerance: connectors.Tolerance(cfg.Tolerance), groups: map[string]scope{}}
	for i, sec := range cfg.Secrets {
		k, err := ParsePublicKey(sec)
		if err != nil {
			return nil, fmt.Errorf("secrets[%d]: %w", i, err)
		}
		s.keys = append(s.keys, k)
	}
	for id, g := range opts.Groups {
		sc := scope{brand: cfg.Brand, purpose: consent.PurposeMarketing, channel: consent.ChannelEmail}
		if g.Brand != "" {
			sc.brand = g.Brand
		}
		if g.Purpose != "" {
			p, err := consent.ParsePurpose(g.Purpose)
			if err != nil {
				return nil, fmt.Errorf("groups[%s].purpose: %w", id, err)
			}
			sc.purpose = p
		}
		if g.Channel != "" {
			c, err := consent.ParseChannel(g.Channel)
			if err != nil {
				return nil, fmt.Errorf("groups[%s].channel: %w", id, err)
			}
			sc.channel = c
		}
		s.groups[strings.TrimSpace(id)] = sc
	}
	return s, nil
}

// ParsePublicKey reads a SendGrid verification key: base64 of the PKIX DER
// encoding (what the SendGrid UI and API show), or a PEM "PUBLIC KEY"
// block. It must be an ECDSA P-256 key.
func ParsePublicKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil {
			return nil, fmt.Errorf("not a PEM public key")
		}
		der = blk.Bytes
	} else {
		var err error
		der, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("not base64 (want the base64 PKIX DER public key SendGrid shows)")
		}
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key")
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("not an ECDSA P-256 public key")
	}
	return k, nil
}

// Verify checks the ECDSA signature over SHA-256(timestamp header + raw
// body) against every configured key, then the timestamp's distance to now.
// It returns an error wrapping connectors.ErrUnauthorized (and
// connectors.ErrStale for a timestamp outside the tolerance).
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	sigB64 := r.Header.Get(HeaderSignature)
	if sigB64 == "" {
		return connectors.Unauthorized("sendgrid: missing %s header", HeaderSignature)
	}
	tsRaw := r.Header.Get(HeaderTimestamp)
	if tsRaw == "" {
		return connectors.Unauthorized("sendgrid: missing %s header", HeaderTimestamp)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sigB64))
	if err != nil {
		return connectors.Unauthorized("sendgrid: signature is not base64")
	}
	digest := signedDigest([]byte(tsRaw), r.Body)
	ok := false
	for _, k := range s.keys { // every key is tried (rotation)
		if ecdsa.VerifyASN1(k, digest, sig) {
			ok = true
		}
	}
	if !ok {
		return connectors.Unauthorized("sendgrid: signature does not match")
	}
	ts, good := connectors.ParseUnix(tsRaw, "s")
	if !good {
		return connectors.Unauthorized("sendgrid: timestamp is not Unix seconds")
	}
	return connectors.CheckTimestamp(ts, now, s.tolerance)
}

func signedDigest(ts, body []byte) []byte {
	h := sha256.New()
	h.Write(ts)
	h.Write(body)
	return h.Sum(nil)
}

// Sign signs body as SendGrid does, at ts (truncated to the second), and
// returns the two headers to send: HeaderTimestamp (Unix seconds) and
// HeaderSignature (base64 ASN.1 DER ECDSA signature of SHA-256(timestamp +
// body)). priv must be a P-256 key whose public half, as base64 PKIX DER
// (see PublicKeyBase64), is in the source's secrets. For tests and the demo.
func Sign(priv *ecdsa.PrivateKey, ts time.Time, body []byte) (map[string]string, error) {
	if priv == nil {
		return nil, fmt.Errorf("sendgrid: nil private key")
	}
	tsRaw := strconv.FormatInt(ts.Unix(), 10)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, signedDigest([]byte(tsRaw), body))
	if err != nil {
		return nil, fmt.Errorf("sendgrid: sign: %w", err)
	}
	return map[string]string{
		HeaderTimestamp: tsRaw,
		HeaderSignature: base64.StdEncoding.EncodeToString(sig),
	}, nil
}

// PublicKeyBase64 returns pub as SendGrid shows a verification key: base64
// of its PKIX DER encoding (the form cfg.Secrets take).
func PublicKeyBase64(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("sendgrid: %w", err)
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// event is one item, read field by field so a wrong type in one field
// skips only what needs it.
type event struct {
	email, name, id, typ string
	badEmail             bool
	at                   time.Time
	hasAt                bool
	group                string
}

// Parse reads a delivery. It returns an error wrapping
// connectors.ErrMalformed when the body is not a JSON array.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 || body[0] != '[' {
		return nil, connectors.Malformed("sendgrid: body is not a JSON array")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, connectors.Malformed("sendgrid: body is not a JSON array")
	}
	b := &connectors.Batch{}
	ids := map[string]bool{}
	allHaveID := len(items) > 0
	seen := map[string]int{} // sg_event_id → first item index
	undeliverable := map[string]bool{}
	for i, raw := range items {
		ev, ok := readEvent(raw)
		if !ok {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: not an event object", i))
			allHaveID = false
			continue
		}
		if ev.email != "" && !ev.badEmail {
			b.Named = append(b.Named, consent.Subject{Email: ev.email}) // whatever the event means
		}
		if ev.id == "" {
			allHaveID = false
		} else {
			ids[ev.id] = true
			if j, dup := seen[ev.id]; dup {
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: duplicate of item %d (same sg_event_id)", i, j))
				continue
			}
			seen[ev.id] = i
		}
		s.event(b, i, ev, undeliverable, r.ReceivedAt)
	}
	if allHaveID {
		keys := make([]string, 0, len(ids))
		for id := range ids {
			keys = append(keys, id)
		}
		sort.Strings(keys)
		b.DedupKey = connectors.HashParts(keys...)
	}
	return b, nil
}

// event adds what item i means to b.
func (s *Source) event(b *connectors.Batch, i int, ev event, undeliverable map[string]bool, receivedAt time.Time) {
	var status consent.Status
	sc := scope{brand: s.brand, purpose: consent.PurposeMarketing, channel: consent.ChannelEmail}
	if kind, ok := activityKind(ev.name); ok {
		if reason := unusable(ev); reason != "" {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s", i, reason))
			return
		}
		b.Activities = append(b.Activities, consent.Activity{
			Subject:    consent.Subject{Email: ev.email},
			Brand:      s.brand,
			Channel:    consent.ChannelEmail,
			Kind:       kind,
			OccurredAt: ev.at,
			Source:     s.name,
		})
		return
	}
	switch ev.name {
	case "unsubscribe", "spamreport":
		status = consent.StatusWithdrawn
	case "group_unsubscribe":
		status = consent.StatusWithdrawn
		if g, ok := s.groups[ev.group]; ok && ev.group != "" {
			sc = g
		}
	case "group_resubscribe":
		if ev.group == "" {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: group_resubscribe without asm_group_id", i))
			return
		}
		status = consent.StatusGranted
		if g, ok := s.groups[ev.group]; ok {
			sc = g
		}
	case "bounce", "dropped":
		if ev.name == "bounce" && strings.EqualFold(ev.typ, "blocked") {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: blocked bounce (temporary), not a consent change", i))
			return
		}
		if !usableEmail(ev.email) {
			b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s without a valid email", i, ev.name))
			return
		}
		if !undeliverable[ev.email] {
			undeliverable[ev.email] = true
			b.Undeliverable = append(b.Undeliverable, ev.email)
		}
		return
	case "":
		b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: no event name", i))
		return
	default:
		b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: event %s has no consent meaning", i, connectors.Quote(ev.name, 32)))
		return
	}
	if !ev.hasAt && status == consent.StatusWithdrawn && !receivedAt.IsZero() && usableEmail(ev.email) {
		// A withdrawal is never dropped for a bad date: it is dated when it
		// reached us (later than it occurred, so it wins over older grants).
		ev.at, ev.hasAt = receivedAt.UTC(), true
		b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: no valid timestamp: dated at arrival", i))
	}
	if reason := unusable(ev); reason != "" {
		b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s", i, reason))
		return
	}
	sig := consent.Signal{
		Subject:    consent.Subject{Email: ev.email},
		Channel:    sc.channel,
		Brand:      sc.brand,
		Purpose:    sc.purpose,
		Status:     status,
		OccurredAt: ev.at,
		Source:     s.name,
		Evidence:   consent.Evidence{EventID: ev.id, Event: ev.name},
	}
	if ev.group != "" && (ev.name == "group_unsubscribe" || ev.name == "group_resubscribe") {
		sig.Evidence.ListID = "asm_group:" + ev.group
	}
	b.Signals = append(b.Signals, sig)
}

// activityKind maps the engagement events that become activities.
func activityKind(event string) (consent.ActivityKind, bool) {
	switch event {
	case "delivered":
		return consent.ActivityDelivered, true
	case "open":
		return consent.ActivityOpen, true
	case "click":
		return consent.ActivityClick, true
	}
	return "", false
}

// unusable says why ev cannot give a signal or an activity ("no email",
// "invalid email", "no valid timestamp"), or "" when it can.
func unusable(ev event) string {
	switch {
	case ev.email == "" && !ev.badEmail:
		return "no email"
	case !usableEmail(ev.email):
		return "invalid email"
	case !ev.hasAt:
		return "no valid timestamp"
	}
	return ""
}

func usableEmail(e string) bool {
	_, _, err := consent.NormalizeEmail(e)
	return err == nil
}

// readEvent reads the fields consentsync uses; ok is false when raw is not
// a JSON object. Fields of the wrong type are left empty.
func readEvent(raw json.RawMessage) (event, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return event{}, false
	}
	var ev event
	// encoding/json turns invalid UTF-8 into U+FFFD: such an address is
	// not the one the person has, so it is dropped rather than mangled.
	if utf8.Valid(m["email"]) {
		ev.email = connectors.JSONString(m["email"])
	} else {
		ev.badEmail = true
	}
	ev.name = connectors.JSONString(m["event"])
	ev.id = connectors.JSONString(m["sg_event_id"])
	ev.typ = connectors.JSONString(m["type"])
	ev.group = idString(m["asm_group_id"])
	ev.at, ev.hasAt = unixTime(m["timestamp"])
	return ev, true
}

// idString reads an integer id sent as a JSON number or a numeric string.
func idString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
	}
	return ""
}

// unixTime reads Unix seconds sent as an integer, a float or a numeric
// string; the time must fall between 1970 and 9999.
func unixTime(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 {
		return time.Time{}, false
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}, false
		}
		n = json.Number(strings.TrimSpace(s))
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f >= 253402300800 {
		return time.Time{}, false
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return time.Unix(i, 0).UTC(), true
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}
