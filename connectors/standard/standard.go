// Package standard is the inbound connector for senders that follow the
// Standard Webhooks specification (kind "standard"),
// https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md.
//
// Headers: `webhook-id` (the message id, stable across retries),
// `webhook-timestamp` (Unix **seconds**), `webhook-signature` (a
// space-separated list of "v1,<base64>"). The signed content is
// id + "." + timestamp + "." + raw body; the key is the base64-decoded
// secret after its "whsec_" prefix; the MAC is HMAC-SHA256. Timestamps
// outside the tolerance (default 5 minutes) are refused. The svix-*
// header names of the reference implementation are accepted as aliases.
//
// Body: any JSON object, mapped by the source's fields mapping (package
// mapping). The spec's recommended envelope {"type", "timestamp", "data"}
// gives defaults: "timestamp" (RFC 3339) is the fallback occurred_at and
// "type" the evidence's event name.
package standard

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
)

// Kind is the config kind this package serves.
const Kind = "standard"

// Header names (Standard Webhooks spec, "Signature scheme").
const (
	IDHeader        = "Webhook-Id"
	TimestampHeader = "Webhook-Timestamp"
	SignatureHeader = "Webhook-Signature"
)

// secretPrefix marks a Standard Webhooks secret; the rest is base64.
const secretPrefix = "whsec_"

// Source verifies and parses one Standard Webhooks source.
type Source struct {
	keys      [][]byte
	tolerance time.Duration
	mapper    *mapping.Mapper
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Standard Webhooks source. Each secret is
// "whsec_<base64 key>" (the prefix is optional); a secret that is not
// base64 after its prefix is an error naming it ("secrets[1]: ..."). It
// also needs a fields mapping. Tolerance defaults to 5 minutes.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("secrets: at least one secret is required")
	}
	keys := make([][]byte, 0, len(cfg.Secrets))
	for i, s := range cfg.Secrets {
		k, err := DecodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secrets[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	m, err := mapping.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{keys: keys, tolerance: connectors.Tolerance(cfg.Tolerance), mapper: m}, nil
}

// DecodeSecret returns the HMAC key of a "whsec_<base64>" secret (prefix
// optional, standard base64 alphabet, padding optional).
func DecodeSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(secret), secretPrefix)
	if s == "" {
		return nil, errors.New("is empty")
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		k, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil || len(k) == 0 {
		return nil, errors.New("not a whsec_<base64> secret")
	}
	return k, nil
}

// Sign returns the three headers a Standard Webhooks sender sends with body:
// webhook-id = id, webhook-timestamp = ts in Unix seconds, webhook-signature
// = "v1," + base64 HMAC-SHA256(key, id.timestamp.body). For tests and the
// demo; it fails only on a secret DecodeSecret refuses.
func Sign(secret, id string, body []byte, ts time.Time) (map[string]string, error) {
	key, err := DecodeSecret(secret)
	if err != nil {
		return nil, err
	}
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := connectors.HMAC("sha256", key, []byte(id+"."+t+"."), body)
	return map[string]string{
		IDHeader:        id,
		TimestampHeader: t,
		SignatureHeader: "v1," + base64.StdEncoding.EncodeToString(mac),
	}, nil
}

func header(r *connectors.Request, name string) string {
	if v := strings.TrimSpace(r.Header.Get(name)); v != "" {
		return v
	}
	// svix-id, svix-timestamp, svix-signature
	return strings.TrimSpace(r.Header.Get("Svix-" + strings.TrimPrefix(name, "Webhook-")))
}

// Verify checks the timestamp window, then every "v1,<base64>" entry of
// webhook-signature against every secret, in constant time. Entries of
// other versions are ignored. Errors wrap connectors.ErrUnauthorized; a
// timestamp outside the tolerance also wraps connectors.ErrStale.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	id, tsText, sigs := header(r, IDHeader), header(r, TimestampHeader), header(r, SignatureHeader)
	if id == "" || tsText == "" || sigs == "" {
		return connectors.Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
	}
	ts, ok := connectors.ParseUnix(tsText, "s")
	if !ok {
		return connectors.Unauthorized("webhook-timestamp is not Unix seconds")
	}
	if err := connectors.CheckTimestamp(ts, now, s.tolerance); err != nil {
		return err
	}
	var candidates []string
	for _, entry := range strings.Fields(sigs) {
		if v, sig, ok := strings.Cut(entry, ","); ok && v == "v1" && sig != "" {
			candidates = append(candidates, sig)
		}
	}
	if len(candidates) == 0 {
		return connectors.Unauthorized("webhook-signature has no v1 signature")
	}
	prefix := []byte(id + "." + tsText + ".")
	match := false
	for _, key := range s.keys {
		mac := connectors.HMAC("sha256", key, prefix, r.Body)
		for _, c := range candidates {
			if connectors.EqualBase64(c, mac) {
				match = true
			}
		}
	}
	if !match {
		return connectors.Unauthorized("webhook-signature does not match")
	}
	return nil
}

// Parse maps one JSON object into signals, a "form" activity and any
// profile facts (package mapping). DedupKey is webhook-id. occurred_at is the
// mapped fields.occurred_at if any, else the body's "timestamp". A body
// that is not a JSON object wraps connectors.ErrMalformed. A request
// carrying "Sec-GPC: 1" (relayed Global Privacy Control) also gives a
// withdrawal of sale_sharing (mapping.GPC).
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	root, err := mapping.DecodeObject(r.Body)
	if err != nil {
		return nil, err
	}
	id := connectors.ClipUTF8(header(r, IDHeader), 256)
	occurred, _ := mapping.ParseTime(root["timestamp"], time.UTC)
	event, _ := root["type"].(string)
	res := s.mapper.Map(mapping.Submission{
		Get:        mapping.JSON(root),
		OccurredAt: connectors.FirstTime(occurred, r.ReceivedAt),
		EventID:    id,
		Event:      connectors.ClipUTF8(event, 128),
		GPC:        mapping.GPC(r.Header),
	})
	b := &connectors.Batch{DedupKey: id}
	res.Fill(b)
	return b, nil
}
