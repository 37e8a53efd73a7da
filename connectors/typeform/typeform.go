// Package typeform is the inbound connector for Typeform webhooks (kind
// "typeform").
//
// Body (https://www.typeform.com/developers/webhooks/example-response/):
//
//	{"event_id", "event_type": "form_response",
//	 "form_response": {"form_id", "token", "submitted_at" (RFC 3339),
//	   "hidden": {...},
//	   "answers": [{"type", "<type>": value, "field": {"id", "ref", "type"}}]}}
//
// Signature (https://www.typeform.com/developers/webhooks/secure-your-webhooks/):
// `Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, raw body)>`; there
// is no timestamp, so a captured request can be replayed: the inbox's dedup
// on event_id makes a replay a no-op.
//
// Consent meaning comes from the source's fields mapping (package mapping);
// a mapped path is looked up, in order, as an answer's field.ref, an
// answer's field.id, a path inside form_response ("hidden.consent_version",
// "submitted_at"), then a path from the root ("event_id"). Unanswered fields
// are omitted by Typeform, so they give no signal.
package typeform

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
)

// Kind is the config kind this package serves.
const Kind = "typeform"

// SignatureHeader carries "sha256=" + base64 HMAC-SHA256(secret, raw body).
const SignatureHeader = "Typeform-Signature"

// Source verifies and parses one Typeform source.
type Source struct {
	secrets []string
	mapper  *mapping.Mapper
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Typeform source. It needs at least one secret (the
// webhook's secret) and a fields mapping whose paths name answers by
// field.ref. Errors name the config key.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSecrets(cfg.Secrets, ""); err != nil {
		return nil, err
	}
	m, err := mapping.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{secrets: cfg.Secrets, mapper: m}, nil
}

// Sign returns the Typeform-Signature header value for body: "sha256=" +
// base64 HMAC-SHA256(secret, body). For tests and the demo.
func Sign(secret string, body []byte) string {
	return "sha256=" + base64.StdEncoding.EncodeToString(connectors.HMAC("sha256", []byte(secret), body))
}

// Verify checks Typeform-Signature over the raw body against every secret,
// in constant time. Errors wrap connectors.ErrUnauthorized.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	v := strings.TrimSpace(r.Header.Get(SignatureHeader))
	if v == "" {
		return connectors.Unauthorized("missing %s header", SignatureHeader)
	}
	const prefix = "sha256="
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return connectors.Unauthorized("%s: want sha256=<base64>", SignatureHeader)
	}
	v = v[len(prefix):]
	ok := connectors.AnySecret(s.secrets, func(sec string) bool {
		return connectors.EqualBase64(v, connectors.HMAC("sha256", []byte(sec), r.Body))
	})
	if !ok {
		return connectors.Unauthorized("%s does not match", SignatureHeader)
	}
	return nil
}

// Parse reads one form response and maps it (signals, a "form" activity
// and any profile facts: package mapping). occurred_at is the mapped
// fields.occurred_at if any, else form_response.submitted_at. DedupKey is
// event_id ("" when absent: the caller hashes the body). An event_type other
// than "form_response" (partial responses) gives no signal. A body that is
// not an object with a form_response object wraps connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	root, err := mapping.DecodeObject(r.Body)
	if err != nil {
		return nil, err
	}
	eventID, _ := root["event_id"].(string)
	b := &connectors.Batch{DedupKey: eventID}
	eventType, _ := root["event_type"].(string)
	if eventType != "" && eventType != "form_response" {
		b.Skipped = []string{fmt.Sprintf("event_type %q: not a submitted response", connectors.ClipUTF8(eventType, 64))}
		return b, nil
	}
	fr, ok := root["form_response"].(map[string]any)
	if !ok {
		return nil, connectors.Malformed("no form_response object")
	}
	byRef, byID := answers(fr["answers"])
	get := mapping.Chain(
		func(p string) (any, bool) { v, ok := byRef[p]; return v, ok },
		func(p string) (any, bool) { v, ok := byID[p]; return v, ok },
		mapping.JSON(fr),
		mapping.JSON(root),
	)
	submitted, _ := mapping.ParseTime(fr["submitted_at"], time.UTC)
	formID, _ := fr["form_id"].(string)
	if eventType == "" {
		eventType = "form_response"
	}
	res := s.mapper.Map(mapping.Submission{
		Get:        get,
		OccurredAt: connectors.FirstTime(submitted, r.ReceivedAt),
		EventID:    eventID,
		Event:      eventType,
		FormID:     formID,
	})
	res.Fill(b)
	return b, nil
}

// answers indexes the answers by field.ref and field.id; the first answer for
// a field wins. Malformed answers are ignored.
func answers(v any) (byRef, byID map[string]any) {
	byRef, byID = map[string]any{}, map[string]any{}
	list, _ := v.([]any)
	for _, item := range list {
		a, ok := item.(map[string]any)
		if !ok {
			continue
		}
		val, ok := answerValue(a)
		if !ok {
			continue
		}
		field, _ := a["field"].(map[string]any)
		if ref, _ := field["ref"].(string); ref != "" {
			if _, dup := byRef[ref]; !dup {
				byRef[ref] = val
			}
		}
		if id, _ := field["id"].(string); id != "" {
			if _, dup := byID[id]; !dup {
				byID[id] = val
			}
		}
	}
	return byRef, byID
}

// answerValue reads an answer by its type: boolean → bool, choice → its
// label (or "other" text), choices → the list of labels (plus "other"),
// email, phone_number, text, number, date, url, file_url → that value.
func answerValue(a map[string]any) (any, bool) {
	typ, _ := a["type"].(string)
	switch typ {
	case "":
		return nil, false
	case "choice":
		c, ok := a["choice"].(map[string]any)
		if !ok {
			return nil, false
		}
		if l, ok := c["label"]; ok && l != nil {
			return l, true
		}
		if o, ok := c["other"]; ok {
			return o, true
		}
		return nil, false
	case "choices":
		c, ok := a["choices"].(map[string]any)
		if !ok {
			return nil, false
		}
		labels, _ := c["labels"].([]any)
		out := append([]any{}, labels...)
		if o, ok := c["other"].(string); ok && o != "" {
			out = append(out, o)
		}
		return out, true
	}
	v, ok := a[typ]
	return v, ok
}
