package loadgen

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"time"

	"github.com/consentsync/consentsync/connectors/sendgrid"
)

// FormFields are the body's field names a Form writes; they must match the
// source's fields mapping.
type FormFields struct {
	Email      string
	OccurredAt string
	// Consent is the checkbox: "on" for an opt-in, "off" otherwise.
	Consent string
	// EventID is the dedup id field ("" writes none: the body hash dedups).
	EventID string
}

// DefaultFormFields are the names used when Form.Fields is zero.
var DefaultFormFields = FormFields{Email: "email", OccurredAt: "submitted_at", Consent: "newsletter", EventID: "event_id"}

// Form builds requests for a consentsync `form` source.
type Form struct {
	// URL is the webhook's full URL, e.g. http://127.0.0.1:8080/webhooks/bench-form.
	URL string
	// Secret is the HMAC key (or the bearer token when Header is empty).
	Secret string
	// Header is the signature header (the source's signature.header);
	// empty sends "Authorization: Bearer Secret".
	Header string
	// Algorithm is "sha256" (default) or "sha512"; Encoding "hex" (default)
	// or "base64"; Prefix is written before the signature.
	Algorithm, Encoding, Prefix string
	// Fields are the body's field names (zero: DefaultFormFields).
	Fields FormFields
	// Extra are constant fields added to every submission (e.g.
	// consent_version, ip).
	Extra map[string]any
}

// FormEvent is one submission of a bulk body.
type FormEvent struct {
	Email string
	OptIn bool
	At    time.Time
}

func (f Form) fields() FormFields {
	if f.Fields == (FormFields{}) {
		return DefaultFormFields
	}
	return f.Fields
}

// EventID is the event id a submission of (email, optIn, at) carries:
// hex of the first 16 bytes of SHA-256 over them (at in nanoseconds).
func (f Form) EventID(email string, optIn bool, at time.Time) string {
	h := sha256.Sum256([]byte(email + "\x00" + strconv.FormatBool(optIn) + "\x00" + strconv.FormatInt(at.UnixNano(), 10)))
	return hex.EncodeToString(h[:16])
}

// Submission returns one submission's fields.
func (f Form) Submission(email string, optIn bool, at time.Time) map[string]any {
	fl := f.fields()
	m := make(map[string]any, len(f.Extra)+4)
	for k, v := range f.Extra {
		m[k] = v
	}
	m[fl.Email] = email
	m[fl.OccurredAt] = at.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	box := "off"
	if optIn {
		box = "on"
	}
	m[fl.Consent] = box
	if fl.EventID != "" {
		m[fl.EventID] = f.EventID(email, optIn, at)
	}
	return m
}

// Body returns one submission as a JSON object.
func (f Form) Body(email string, optIn bool, at time.Time) []byte {
	b, _ := json.Marshal(f.Submission(email, optIn, at)) // maps of strings: cannot fail
	return b
}

// BulkBody returns the submissions as one JSON array (the form connector
// takes arrays for tools that batch).
func (f Form) BulkBody(events []FormEvent) []byte {
	items := make([]map[string]any, len(events))
	for i, e := range events {
		items[i] = f.Submission(e.Email, e.OptIn, e.At)
	}
	b, _ := json.Marshal(items)
	return b
}

// Sign returns the authentication header for body: (Header, Prefix +
// encoded HMAC) or ("Authorization", "Bearer " + Secret).
func (f Form) Sign(body []byte) (name, value string) {
	if f.Header == "" {
		return "Authorization", "Bearer " + f.Secret
	}
	var newHash func() hash.Hash = sha256.New
	if f.Algorithm == "sha512" {
		newHash = sha512.New
	}
	m := hmac.New(newHash, []byte(f.Secret))
	m.Write(body)
	sum := m.Sum(nil)
	enc := hex.EncodeToString(sum)
	if f.Encoding == "base64" {
		enc = base64.StdEncoding.EncodeToString(sum)
	}
	return f.Header, f.Prefix + enc
}

// Request returns a signed POST of one submission.
func (f Form) Request(email string, optIn bool, at time.Time) (*http.Request, error) {
	return f.post(f.Body(email, optIn, at))
}

// BulkRequest returns a signed POST of a JSON array of submissions.
func (f Form) BulkRequest(events []FormEvent) (*http.Request, error) {
	return f.post(f.BulkBody(events))
}

func (f Form) post(body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, f.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("loadgen: form request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	name, value := f.Sign(body)
	req.Header.Set(name, value)
	return req, nil
}

// NewSendGridKey returns a fresh P-256 key for a SendGrid source and its
// public half as SendGrid shows it (base64 PKIX DER): the source's secret.
func NewSendGridKey() (*ecdsa.PrivateKey, string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("loadgen: sendgrid key: %w", err)
	}
	pub, err := sendgrid.PublicKeyBase64(&k.PublicKey)
	if err != nil {
		return nil, "", err
	}
	return k, pub, nil
}

// SendGridEvent is one item of an Event Webhook body.
type SendGridEvent struct {
	Email string
	// Event is "unsubscribe", "group_unsubscribe", "spamreport", ...
	Event string
	At    time.Time
	// ID is sg_event_id ("" derives one from email, event and time).
	ID string
}

// SendGridEvents builds signed SendGrid Event Webhook requests.
type SendGridEvents struct {
	// URL is the webhook's full URL.
	URL string
	// Key signs (its public half is the source's secret).
	Key *ecdsa.PrivateKey
}

// Body returns events as SendGrid posts them: a JSON array of {email,
// timestamp (s), event, sg_event_id, sg_message_id}.
func (s SendGridEvents) Body(events []SendGridEvent) []byte {
	items := make([]map[string]any, len(events))
	for i, e := range events {
		id := e.ID
		if id == "" {
			h := sha256.Sum256([]byte(e.Email + "\x00" + e.Event + "\x00" + strconv.FormatInt(e.At.UnixNano(), 10)))
			id = base64.RawURLEncoding.EncodeToString(h[:16])
		}
		items[i] = map[string]any{"email": e.Email, "timestamp": e.At.Unix(), "event": e.Event, "sg_event_id": id, "sg_message_id": "bench." + id}
	}
	b, _ := json.Marshal(items)
	return b
}

// Request returns a POST of events signed at ts.
func (s SendGridEvents) Request(events []SendGridEvent, ts time.Time) (*http.Request, error) {
	body := s.Body(events)
	hdr, err := sendgrid.Sign(s.Key, ts, body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("loadgen: sendgrid request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return req, nil
}
