// Package postmark receives Postmark's Subscription Change webhook (kind
// "postmark").
//
// Wire format (https://postmarkapp.com/developer/webhooks/subscription-change-webhook):
// one JSON object per request,
//
//	{"RecordType": "SubscriptionChange", "MessageID": "...", "MessageStream": "broadcast",
//	 "ChangedAt": "2025-11-20T10:40:00Z", "Recipient": "jules@example.org",
//	 "Origin": "Recipient" | "Customer" | "Admin", "SuppressSending": true,
//	 "SuppressionReason": "ManualSuppression" | "SpamComplaint" | "HardBounce" | null, ...}
//
// Postmark signs nothing. The webhook URL carries the secret, either as the
// query parameter `token` (https://hooks.example.com/webhooks/pm?token=...)
// or as HTTP basic auth credentials (https://user:secret@hooks.example.com/...),
// which Postmark supports for webhook URLs.
package postmark

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// QueryToken is the URL query parameter that carries the secret.
const QueryToken = "token"

// RecordSubscriptionChange is the only RecordType with a consent meaning.
const RecordSubscriptionChange = "SubscriptionChange"

// SuppressionReason values (Postmark's documented set).
const (
	ReasonManualSuppression = "ManualSuppression"
	ReasonSpamComplaint     = "SpamComplaint"
	ReasonHardBounce        = "HardBounce"
)

// Source verifies and parses one Postmark server's webhooks.
type Source struct {
	cfg config.Source
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Postmark source. cfg.Secrets are the URL tokens (or
// basic-auth passwords) the webhook URL carries; several allow rotation.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSource(cfg, "the token in the webhook URL's ?token= or its basic-auth password"); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg}, nil
}

// Verify accepts the request when its query parameter `token`, or the
// password of its HTTP basic auth, equals one of cfg.Secrets (constant-time
// compare, every secret tried). Postmark sends no timestamp: now is unused.
// Errors wrap connectors.ErrUnauthorized.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil {
		return connectors.Unauthorized("no request")
	}
	token := r.Query().Get(QueryToken)
	_, pass, hasBasic := basicAuth(r.Header)
	if token == "" && !hasBasic {
		return connectors.Unauthorized("no ?%s= query parameter and no basic auth", QueryToken)
	}
	ok := connectors.AnySecret(s.cfg.Secrets, func(secret string) bool {
		t := token != "" && connectors.EqualToken(token, secret)
		p := hasBasic && connectors.EqualToken(pass, secret)
		return t || p
	})
	if !ok {
		return connectors.Unauthorized("token or basic-auth password does not match")
	}
	return nil
}

// Parse turns one Subscription Change into a Batch:
//
//	SuppressSending true,  ManualSuppression or SpamComplaint  withdrawal of cfg.Brand's email marketing
//	SuppressSending true,  HardBounce                          Batch.Undeliverable
//	SuppressSending false  (reactivation)                      skipped: reactivation is not an express opt-in
//	other RecordType or SuppressionReason                      skipped
//
// occurred_at is ChangedAt (RFC 3339, converted to UTC). Evidence.Event is
// the reason, Evidence.ListID the message stream, Evidence.EventID the
// MessageID when present. DedupKey is the hex SHA-256 of Recipient,
// MessageStream, ChangedAt and SuppressSending (Postmark sends no event id).
// A body that is not a JSON object returns an error wrapping
// connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	obj, err := connectors.JSONObject(r)
	if err != nil {
		return nil, err
	}
	b := &connectors.Batch{}
	// Whatever the record is (a bounce, a delivery), it names its recipient.
	for _, k := range []string{"Recipient", "Email"} {
		if v := connectors.JSONString(obj[k]); strings.TrimSpace(v) != "" {
			b.Named = append(b.Named, consent.Subject{Email: v})
		}
	}
	rt := connectors.JSONString(obj["RecordType"])
	if rt != RecordSubscriptionChange {
		if rt == "" {
			b.Skipped = append(b.Skipped, "no RecordType")
		} else {
			b.Skipped = append(b.Skipped, fmt.Sprintf("record type %q: not a subscription change", connectors.Clip(rt, connectors.MaxQuoted)))
		}
		return b, nil
	}

	recipient := connectors.JSONString(obj["Recipient"])
	stream := connectors.JSONString(obj["MessageStream"])
	changedAt := connectors.JSONString(obj["ChangedAt"])
	reason := connectors.JSONString(obj["SuppressionReason"])
	raw := string(obj["SuppressSending"])
	suppress, suppressKnown := raw == "true", raw == "true" || raw == "false"
	if suppressKnown {
		b.DedupKey = dedupKey(recipient, stream, changedAt, suppress)
	}

	switch {
	case strings.TrimSpace(recipient) == "":
		b.Skipped = append(b.Skipped, "subscription change: no Recipient")
		return b, nil
	case !suppressKnown:
		b.Skipped = append(b.Skipped, "subscription change: SuppressSending is not a boolean")
		return b, nil
	case !suppress:
		b.Skipped = append(b.Skipped, "subscription change: reactivation is not an express opt-in")
		return b, nil
	}

	switch reason {
	case ReasonHardBounce:
		b.Undeliverable = append(b.Undeliverable, recipient)
		return b, nil
	case ReasonManualSuppression, ReasonSpamComplaint:
	case "":
		b.Skipped = append(b.Skipped, "subscription change: suppression without SuppressionReason")
		return b, nil
	default:
		b.Skipped = append(b.Skipped, fmt.Sprintf("subscription change: unknown SuppressionReason %q", connectors.Clip(reason, connectors.MaxQuoted)))
		return b, nil
	}

	at, ok := connectors.ParseRFC3339(changedAt)
	if !ok || !connectors.InYearRange(at) {
		// A withdrawal is never dropped for a bad date: it is dated when it
		// reached us (later than it occurred, so it wins over older grants).
		if r.ReceivedAt.IsZero() {
			b.Skipped = append(b.Skipped, "subscription change: no readable ChangedAt")
			return b, nil
		}
		at = r.ReceivedAt.UTC()
		b.Skipped = append(b.Skipped, "subscription change: no readable ChangedAt, dated at arrival")
	}
	b.Signals = append(b.Signals, connectors.EmailWithdrawal(s.cfg, recipient, at, consent.Evidence{
		EventID: connectors.JSONString(obj["MessageID"]),
		Event:   reason,
		ListID:  stream,
	}))
	return b, nil
}

// dedupKey is the hex SHA-256 of the fields that make one subscription
// change unique, separated by NUL so that field boundaries cannot shift.
func dedupKey(recipient, stream, changedAt string, suppress bool) string {
	h := sha256.New()
	for _, p := range []string{recipient, stream, changedAt, fmt.Sprint(suppress)} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// basicAuth reads an "Authorization: Basic" header.
func basicAuth(h http.Header) (user, pass string, ok bool) {
	if h == nil {
		return "", "", false
	}
	return (&http.Request{Header: h}).BasicAuth()
}
