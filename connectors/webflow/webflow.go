// Package webflow is the inbound connector for Webflow form submissions
// (kind "webflow").
//
// Body (https://developers.webflow.com/data/reference/webhooks/events/form-submission):
//
//	{"triggerType": "form_submission",
//	 "payload": {"name", "siteId", "id", "formId", "formElementId",
//	   "submittedAt" (RFC 3339), "data": {"<field label>": value, ...}}}
//
// Signature (https://developers.webflow.com/data/docs/working-with-webhooks#validating-request-signatures):
// `x-webflow-signature` = hex HMAC-SHA256(secret, x-webflow-timestamp + ":" +
// raw body), `x-webflow-timestamp` in Unix **milliseconds**, refused outside
// the source's tolerance (default 5 minutes).
//
// Consent meaning comes from the fields mapping (package mapping). Paths are
// read inside payload first ("data.Email", "formId", "submittedAt"), then
// as a bare data label ("Email"), then from the root ("payload.data.Email").
package webflow

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
)

// Kind is the config kind this package serves.
const Kind = "webflow"

// Header names.
const (
	SignatureHeader = "X-Webflow-Signature"
	TimestampHeader = "X-Webflow-Timestamp"
)

// Source verifies and parses one Webflow source.
type Source struct {
	secrets   []string
	tolerance time.Duration
	mapper    *mapping.Mapper
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Webflow source. It needs at least one secret (the
// webhook secret, or the OAuth app's client secret for app webhooks) and a
// fields mapping. Tolerance defaults to 5 minutes. Errors name the config key.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSecrets(cfg.Secrets, ""); err != nil {
		return nil, err
	}
	m, err := mapping.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{secrets: cfg.Secrets, tolerance: connectors.Tolerance(cfg.Tolerance), mapper: m}, nil
}

// Sign returns the headers Webflow would send with body at ts:
// x-webflow-timestamp (Unix ms) and x-webflow-signature (hex HMAC-SHA256 of
// timestamp + ":" + body). For tests and the demo.
func Sign(secret string, body []byte, ts time.Time) map[string]string {
	t := strconv.FormatInt(ts.UnixMilli(), 10)
	mac := connectors.HMAC("sha256", []byte(secret), []byte(t+":"), body)
	return map[string]string{TimestampHeader: t, SignatureHeader: hex.EncodeToString(mac)}
}

// Verify checks the timestamp window first, then the signature against
// every secret, in constant time. Errors wrap connectors.ErrUnauthorized;
// a timestamp outside the tolerance also wraps connectors.ErrStale.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	sig := strings.TrimSpace(r.Header.Get(SignatureHeader))
	tsText := strings.TrimSpace(r.Header.Get(TimestampHeader))
	if sig == "" || tsText == "" {
		return connectors.Unauthorized("missing %s or %s header", SignatureHeader, TimestampHeader)
	}
	ts, ok := connectors.ParseUnix(tsText, "ms")
	if !ok {
		return connectors.Unauthorized("%s is not Unix milliseconds", TimestampHeader)
	}
	if err := connectors.CheckTimestamp(ts, now, s.tolerance); err != nil {
		return err
	}
	ok = connectors.AnySecret(s.secrets, func(sec string) bool {
		return connectors.EqualHex(sig, connectors.HMAC("sha256", []byte(sec), []byte(tsText+":"), r.Body))
	})
	if !ok {
		return connectors.Unauthorized("%s does not match", SignatureHeader)
	}
	return nil
}

// Parse reads one form submission and maps it (signals, a "form" activity
// and any profile facts: package mapping). occurred_at is the mapped
// fields.occurred_at if any, else payload.submittedAt. DedupKey is
// payload.id ("" when absent). A triggerType other than "form_submission"
// gives no signal. A body that is not an object with a payload object wraps
// connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	root, err := mapping.DecodeObject(r.Body)
	if err != nil {
		return nil, err
	}
	trigger, _ := root["triggerType"].(string)
	payload, ok := root["payload"].(map[string]any)
	if !ok {
		if trigger != "" && trigger != "form_submission" {
			return &connectors.Batch{Skipped: []string{fmt.Sprintf("triggerType %q: not a form submission", connectors.ClipUTF8(trigger, 64))}}, nil
		}
		return nil, connectors.Malformed("no payload object")
	}
	id, _ := mapping.Text(payload["id"])
	b := &connectors.Batch{DedupKey: connectors.ClipUTF8(id, 256)}
	if trigger != "" && trigger != "form_submission" {
		b.Skipped = []string{fmt.Sprintf("triggerType %q: not a form submission", connectors.ClipUTF8(trigger, 64))}
		return b, nil
	}
	data, _ := payload["data"].(map[string]any)
	get := mapping.Chain(mapping.JSON(payload), mapping.JSON(data), mapping.JSON(root))
	submitted, _ := mapping.ParseTime(payload["submittedAt"], time.UTC)
	formID, _ := mapping.Text(payload["formId"])
	res := s.mapper.Map(mapping.Submission{
		Get:        get,
		OccurredAt: connectors.FirstTime(submitted, r.ReceivedAt),
		EventID:    b.DedupKey,
		Event:      "form_submission",
		FormID:     formID,
	})
	res.Fill(b)
	return b, nil
}
