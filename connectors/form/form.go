// Package form is the generic inbound connector (kind "form") for any form
// tool that can post a submission: Gravity Forms, WPForms, a custom page.
//
// Body: one JSON object (application/json, also an array of objects for
// tools that batch), application/x-www-form-urlencoded, or
// multipart/form-data (file parts are ignored). What the fields mean is
// configured in the source's fields mapping (see package mapping).
//
// Authentication (docs/wire-formats.md, "form"): with `signature` configured, the
// header named there carries Prefix + hex or base64 of
// HMAC-SHA256/SHA512(secret, raw body); without it, the request must carry
// `Authorization: Bearer <secret>`.
package form

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
)

// Kind is the config kind this package serves.
const Kind = "form"

// Limits on multipart bodies (the receiver already bounds the body size).
const (
	maxParts     = 1000
	maxPartBytes = 64 << 10
)

// Source verifies and parses one form source.
type Source struct {
	name    string
	secrets []string
	sig     *config.Signature
	mapper  *mapping.Mapper
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a form source. It needs at least one secret and a fields
// mapping with an email (or phone) and consent fields. A signature block
// needs a header; its algorithm defaults to sha256 and its encoding to hex.
// Errors name the config key ("secrets: at least one secret is required").
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSecrets(cfg.Secrets, ""); err != nil {
		return nil, err
	}
	var sig *config.Signature
	if cfg.Signature != nil {
		c := *cfg.Signature
		if c.Header == "" {
			return nil, errors.New("signature.header: required")
		}
		if c.Algorithm == "" {
			c.Algorithm = "sha256"
		}
		if c.Algorithm != "sha256" && c.Algorithm != "sha512" {
			return nil, fmt.Errorf("signature.algorithm: %q: want sha256 or sha512", c.Algorithm)
		}
		if c.Encoding == "" {
			c.Encoding = "hex"
		}
		if c.Encoding != "hex" && c.Encoding != "base64" {
			return nil, fmt.Errorf("signature.encoding: %q: want hex or base64", c.Encoding)
		}
		sig = &c
	}
	m, err := mapping.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{name: cfg.Name, secrets: cfg.Secrets, sig: sig, mapper: m}, nil
}

// Verify checks the configured HMAC header over the raw body, or, without a
// signature block, the bearer token, against every secret (rotation), in
// constant time. There is no timestamp in either scheme. Errors wrap
// connectors.ErrUnauthorized.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if s.sig == nil {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			return connectors.Unauthorized("missing Authorization: Bearer token")
		}
		if !connectors.AnySecret(s.secrets, func(sec string) bool { return connectors.EqualToken(token, sec) }) {
			return connectors.Unauthorized("bearer token does not match")
		}
		return nil
	}
	v := strings.TrimSpace(r.Header.Get(s.sig.Header))
	if v == "" {
		return connectors.Unauthorized("missing %s header", s.sig.Header)
	}
	if p := s.sig.Prefix; p != "" {
		if len(v) < len(p) || !strings.EqualFold(v[:len(p)], p) {
			return connectors.Unauthorized("%s header lacks its prefix", s.sig.Header)
		}
		v = v[len(p):]
	}
	ok := connectors.AnySecret(s.secrets, func(sec string) bool {
		mac := connectors.HMAC(s.sig.Algorithm, []byte(sec), r.Body)
		if s.sig.Encoding == "base64" {
			return connectors.EqualBase64(v, mac)
		}
		return connectors.EqualHex(v, mac)
	})
	if !ok {
		return connectors.Unauthorized("%s signature does not match", s.sig.Header)
	}
	return nil
}

func bearer(h string) (string, bool) {
	h = strings.TrimSpace(h)
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(h[len(p):])
	return t, t != ""
}

// Parse reads the submission(s) by Content-Type (sniffing JSON when the type
// is missing or unknown) and maps them: signals, and for each readable
// submission a "form" activity and any profile facts (package mapping). DedupKey is the mapped event id
// (fields.event_id); for a JSON array, the sha256 hex of the sorted ids when
// every item has one; else "" (the caller hashes the body). Errors wrap
// connectors.ErrMalformed and carry fixed texts (plus at most a byte offset
// or a limit): they never quote the body, which holds personal data, since
// they are logged and sent back to the sender.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return nil, connectors.Malformed("empty body")
	}
	gpc := mapping.GPC(r.Header)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/x-www-form-urlencoded":
		return s.parseValues(r.Body, r.ReceivedAt, gpc)
	case mt == "multipart/form-data":
		return s.parseMultipart(r.Body, params["boundary"], r.ReceivedAt, gpc)
	case mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"):
		return s.parseJSON(r.Body, r.ReceivedAt, gpc)
	}
	if b := bytes.TrimSpace(bytes.TrimPrefix(r.Body, []byte("\xef\xbb\xbf"))); len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		return s.parseJSON(r.Body, r.ReceivedAt, gpc)
	}
	return s.parseValues(r.Body, r.ReceivedAt, gpc)
}

func (s *Source) parseJSON(body []byte, at time.Time, gpc bool) (*connectors.Batch, error) {
	v, err := mapping.DecodeJSON(body)
	if err != nil {
		return nil, jsonError(err)
	}
	switch x := v.(type) {
	case map[string]any:
		return s.one(mapping.JSON(x), at, gpc), nil
	case []any:
		b := &connectors.Batch{}
		ids := make([]string, 0, len(x))
		for i, item := range x {
			obj, ok := item.(map[string]any)
			if !ok {
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: not an object", i+1))
				continue
			}
			res := s.mapper.Map(mapping.Submission{Get: mapping.JSON(obj), OccurredAt: at})
			b.Signals = append(b.Signals, res.Signals...)
			b.Activities = append(b.Activities, res.Activities...)
			b.Profiles = append(b.Profiles, res.Profiles...)
			if res.Skip != "" {
				b.Skipped = append(b.Skipped, fmt.Sprintf("item %d: %s", i+1, res.Skip))
			}
			if res.EventID != "" {
				ids = append(ids, res.EventID)
			}
		}
		if len(x) == 0 {
			b.Skipped = append(b.Skipped, "empty array")
		} else if len(ids) == len(x) {
			b.DedupKey = connectors.HashKeys(ids)
		}
		return b, nil
	}
	return nil, connectors.Malformed("want a JSON object")
}

func (s *Source) parseValues(body []byte, at time.Time, gpc bool) (*connectors.Batch, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil && len(vals) == 0 {
		// url.EscapeError quotes the bad escape: keep the text fixed.
		return nil, connectors.Malformed("form-encoded body: invalid escape or separator, no field readable")
	}
	return s.one(mapping.Values(vals), at, gpc), nil
}

func (s *Source) parseMultipart(body []byte, boundary string, at time.Time, gpc bool) (*connectors.Batch, error) {
	if boundary == "" {
		return nil, connectors.Malformed("multipart body without boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	vals := url.Values{}
	for n := 0; ; n++ {
		if n >= maxParts {
			return nil, connectors.Malformed("multipart body: more than %d parts", maxParts)
		}
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, multipartError(err)
		}
		name := p.FormName()
		if name == "" || p.FileName() != "" {
			p.Close()
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, maxPartBytes+1))
		p.Close()
		if err != nil {
			// e.g. a quoted-printable part with a bad escape, or a part cut
			// short by the end of the body.
			return nil, connectors.Malformed("multipart body: unreadable part content")
		}
		if len(b) > maxPartBytes {
			return nil, connectors.Malformed("multipart body: field over %d bytes", maxPartBytes)
		}
		vals.Add(name, string(b))
	}
	return s.one(mapping.Values(vals), at, gpc), nil
}

// jsonError turns a JSON decoding error into a fixed text with at most the
// byte offset: encoding/json's messages quote input characters.
func jsonError(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return connectors.Malformed("JSON: syntax error at byte %d", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return connectors.Malformed("JSON: body ends inside a value")
	default: // mapping.DecodeJSON: data after the value
		return connectors.Malformed("JSON: not a single JSON value")
	}
}

// multipartError turns a mime/multipart error into a fixed text: the
// library's messages quote the offending header or body line ("malformed
// MIME header line: ...", "got line ..."), which may be an address.
func multipartError(err error) error {
	var proto textproto.ProtocolError
	switch {
	case errors.As(err, &proto):
		return connectors.Malformed("multipart body: malformed part header")
	case errors.Is(err, multipart.ErrMessageTooLarge):
		return connectors.Malformed("multipart body: part header too large")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return connectors.Malformed("multipart body: ends before the closing boundary")
	default:
		return connectors.Malformed("multipart body: malformed (expected a part boundary)")
	}
}

// one maps a single submission; at (the arrival time) dates it when it
// carries no readable time of its own; gpc says the request relayed
// "Sec-GPC: 1" (mapping.GPC: an objection to sale_sharing).
func (s *Source) one(get mapping.Lookup, at time.Time, gpc bool) *connectors.Batch {
	res := s.mapper.Map(mapping.Submission{Get: get, OccurredAt: at, GPC: gpc})
	b := &connectors.Batch{DedupKey: res.EventID}
	res.Fill(b)
	return b
}
