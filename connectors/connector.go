// Package connectors defines the two shapes every vendor connector takes, in
// the manner of net/http's Handler and asynq's ServeMux: an inbound Source
// (Verify the raw request, then Parse it into canonical signals) and an
// outbound Destination (Push suppressions to the provider's API). One folder
// per vendor implements them (connectors/hubspot, connectors/mailchimp, ...);
// connectors/registry builds them from config by kind.
//
// Connectors never touch the store: they turn bytes into consent.Signals and
// suppressions into HTTP calls.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/consentsync/consentsync/consent"
)

// Request is one webhook delivery as received: the raw body bytes exactly as
// sent (signatures cover them; never re-serialize), the method, the path and
// raw query the sender used, and the headers.
type Request struct {
	Method   string
	Path     string // e.g. "/webhooks/hubspot-acme"
	RawQuery string // without "?"
	Header   http.Header
	Body     []byte
	// ReceivedAt is when consentsync received the request (the inbox row's
	// received_at). Parsers use it as the time of a submission that carries
	// none: a form posts as it is submitted, and an opt-in or a withdrawal
	// must not be lost for a missing timestamp. Zero when unknown.
	ReceivedAt time.Time
}

// Query parses RawQuery; a malformed query yields what could be read.
func (r *Request) Query() url.Values {
	v, _ := url.ParseQuery(r.RawQuery)
	return v
}

// Batch is what one request says.
type Batch struct {
	// DedupKey identifies the delivery for the inbox's (source, dedup key)
	// uniqueness: the sender's event id, or a stable hash of what makes the
	// delivery unique. Empty means "hash of the raw body" (set by the caller).
	DedupKey string
	// Signals are the canonical consent signals, in the order sent. A signal
	// whose Subject has only an ExternalID must be resolved (see Resolver).
	Signals []consent.Signal
	// Undeliverable lists addresses (or numbers: Shopify's SMS state
	// "invalid") the sender reports as bouncing or cleaned: not a consent
	// change, reported for operators, and named by the request (an erasure
	// of one of them deletes the request's raw body).
	Undeliverable []string
	// Named lists identifiers the request names without a fact about them
	// (skipped items: a Mailchimp profile update, a Shopify record whose
	// consent is not_subscribed), as sent: the worker records the request
	// as naming them, so that their erasure deletes its raw body like that
	// of any request that named the person.
	Named []consent.Subject
	// Erasures lists subjects whose erasure the sender requested (HubSpot
	// contact.privacyDeletion).
	Erasures []consent.Subject
	// Activities are contacts that are not consent changes (clicks, orders,
	// deliveries): they renew consent or date the messages sent.
	Activities []consent.Activity
	// Profiles are what the sender says the subjects are to a brand
	// (customer, professional).
	Profiles []consent.ProfileFact
	// Skipped describes items that carried no consent meaning or could not be
	// read ("item 3: unknown event \"open\""). They are kept on the inbox row.
	Skipped []string
}

// Source verifies and parses one sender's webhooks.
//
// Verify checks the request's authenticity on the raw bytes with a constant
// time compare and, where the scheme has a timestamp, that it is within the
// source's tolerance of now. It returns an error wrapping ErrUnauthorized (or
// ErrStale) and never inspects the body's meaning.
//
// Parse turns a verified request into a Batch without I/O. It returns an
// error wrapping ErrMalformed when the body cannot be read at all; items that
// cannot be read inside a readable batch go to Batch.Skipped instead, so one
// bad item never loses the others.
type Source interface {
	Verify(r *Request, now time.Time) error
	Parse(r *Request) (*Batch, error)
}

// Resolver is implemented by sources whose requests name subjects by the
// sender's own ids (HubSpot objectId): Resolve fills Subject.Email (keeping
// Subject.ExternalID) in b.Signals, b.Activities and b.Profiles from the
// sender's API, in place. Erasures keep their ExternalID (the contact is
// already gone at the sender; the store maps external ids it has seen). An
// item whose subject no longer exists at the sender is dropped and reported
// in skipped; a transport failure is returned as an error (the task is
// retried). It is called by the worker, never by the receiver.
type Resolver interface {
	Resolve(ctx context.Context, b *Batch) (skipped []string, err error)
}

// Responder is implemented by sources whose sender needs a specific answer
// to a stored delivery (Salesforce's SOAP Ack). Without it the receiver
// answers 202 with {"id", "duplicate"}.
type Responder interface {
	Respond(w http.ResponseWriter, id string, duplicate bool)
}

// Prober is implemented by sources whose sender checks the URL with a GET
// before using it (Mailchimp). Probe answers it; it must verify the request
// like Verify does.
type Prober interface {
	Probe(w http.ResponseWriter, r *Request)
}

// TokenIssuer is implemented by sources whose sender first obtains an
// OAuth 2.0 access token with the client credentials grant (RFC 6749
// §4.4) and then presents it as "Authorization: Bearer" on each delivery
// (Didomi). IssueToken answers POST /webhooks/{source}/oauth/token: the
// token request (r.Body form-encoded, client authentication by HTTP basic
// auth or client_id/client_secret parameters, RFC 6749 §2.3.1), with the
// access token response (§5.1) or an error response (§5.2). It never
// stores anything and never logs the credentials.
type TokenIssuer interface {
	IssueToken(w http.ResponseWriter, r *Request, now time.Time)
}

// Sentinel errors callers branch on.
var (
	// ErrUnauthorized: missing or bad signature, token or org id (HTTP 401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrStale: the signed timestamp is outside the tolerance (HTTP 401).
	ErrStale = errors.New("signature timestamp outside tolerance")
	// ErrMalformed: the body cannot be read (HTTP 400).
	ErrMalformed = errors.New("malformed body")
	// ErrPermanent: a destination refused the call in a way a retry will not
	// change (4xx other than 408, 409 and 429).
	ErrPermanent = errors.New("permanent failure")
	// ErrTimeout: a provider call's timeout elapsed before the answer came
	// (transient, but ambiguous: the provider may have applied the call).
	// It is not retried in place; the task is retried later, which is safe
	// because provider calls are idempotent (see NewHTTPClient).
	ErrTimeout = errors.New("provider call timed out")
)

// Malformed wraps ErrMalformed with a reason.
func Malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Unauthorized wraps ErrUnauthorized with a reason. The reason must not
// contain a secret or the expected signature.
func Unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthorized, fmt.Sprintf(format, args...))
}

// FirstTime returns the first non-zero time of ts (zero when all are).
func FirstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
