// Package pipedrive is the inbound connector for Pipedrive person webhooks
// (kind "pipedrive").
//
// Body, webhooks v2 (https://pipedrive.readme.io/docs/guide-for-webhooks-v2):
//
//	{"meta": {"action": "change" | "create" | "delete", "entity": "person",
//	          "entity_id": "501", "id": "<delivery uuid>",
//	          "timestamp": "2025-11-20T10:10:00.123Z", "version": "2.0", ...},
//	 "data": {"id": 501, "emails": [{"label", "value", "primary"}],
//	          "marketing_status": "unsubscribed", "update_time",
//	          "custom_fields": {"<40-hex key>": {"type", "value" | "id" | "ids"}}},
//	 "previous": {only the fields that changed, with their old values} | null}
//
// Body, webhooks v1 (https://pipedrive.readme.io/docs/guide-for-webhooks),
// still sent by webhooks created before v2:
//
//	{"event": "updated.person", "meta": {"action": "updated", "object": "person",
//	   "id": 501, "timestamp": 1763633400 (Unix s), "webhook_id": "..."},
//	 "current": {"email": [{"label", "value", "primary"}], "marketing_status",
//	   "<custom field key>": value, ...},
//	 "previous": {the whole person before the change} | null}
//
// Authentication (https://pipedrive.readme.io/docs/guide-for-webhooks-v2,
// "http_auth_user" / "http_auth_password"): Pipedrive signs nothing; the
// webhook is created with HTTP basic auth credentials and sends them on
// every delivery. The password is one of the source's secrets; the user
// name is checked only when the option http_auth_user is set. There is no
// timestamp: a captured request can be replayed, and the inbox's dedup on
// the delivery id makes a replay a no-op.
//
// Consent meaning, for the source brand's marketing on email (Pipedrive
// Campaigns' marketing_status, https://developers.pipedrive.com/docs/api/v1/Persons#updatePerson):
//
//   - marketing_status becomes "unsubscribed" ("unsubscribed from ALL
//     marketing communications") → a withdrawal of every address of the
//     person, at meta.timestamp;
//   - "subscribed" (counted towards the marketing caps) and "archived"
//     (subscribed, kept but not billed) → no signal: a status set in the CRM
//     is not an express opt-in by the person, and archiving is not a
//     withdrawal; "no_consent" → no signal (absence of consent is not a
//     withdrawal);
//   - the configured opt-out custom field (option opt_out_field, its
//     opt-out values in opt_out_values) becomes one of those values → a
//     withdrawal as above; any other value gives no signal.
//
// A change is read only when the field changed: its value in data/current
// differs from the one in previous (v2 previous lists the changed fields
// only). A create event with the opt-out status is a withdrawal too. Every
// address of the person's emails array is withdrawn, the primary one first:
// the person objected, not one of their addresses.
package pipedrive

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind this package serves.
const Kind = "pipedrive"

// MarketingStatusField is the person field of Pipedrive Campaigns'
// marketing status; its values are the Status* constants.
const MarketingStatusField = "marketing_status"

// Marketing status values (https://developers.pipedrive.com/docs/api/v1/Persons#updatePerson).
const (
	StatusNoConsent    = "no_consent"
	StatusUnsubscribed = "unsubscribed"
	StatusSubscribed   = "subscribed"
	StatusArchived     = "archived"
)

// SourceOptions are a Pipedrive source's own keys.
type SourceOptions struct {
	// HTTPAuthUser, when set, must be the basic-auth user name of the
	// deliveries (the webhook's http_auth_user); empty: any user name.
	HTTPAuthUser string `yaml:"http_auth_user"`
	// OptOutField is the key of a person custom field that records an
	// opt-out (the 40-character hash Pipedrive shows in Data fields);
	// empty: only marketing_status is read.
	OptOutField string `yaml:"opt_out_field"`
	// OptOutValues are the values of OptOutField that mean "opted out",
	// compared case-insensitively after trimming: the option id of an
	// enum/set option ("37"), or a text ("yes"). Default ["true", "yes", "1"].
	OptOutValues []string `yaml:"opt_out_values"`
	// MarketingStatus reads marketing_status (default true).
	MarketingStatus *bool `yaml:"marketing_status"`
}

// Defaults sets opt_out_values and marketing_status when unset.
func (o *SourceOptions) Defaults() {
	if len(o.OptOutValues) == 0 {
		o.OptOutValues = []string{"true", "yes", "1"}
	}
	if o.MarketingStatus == nil {
		t := true
		o.MarketingStatus = &t
	}
}

// Validate checks the options (config.OptionsValidator).
func (o *SourceOptions) Validate(readOnly bool, bad func(key, format string, args ...any)) {
	for i, v := range o.OptOutValues {
		if strings.TrimSpace(v) == "" {
			bad(fmt.Sprintf("opt_out_values[%d]", i), "is empty")
		}
	}
	if o.MarketingStatus != nil && !*o.MarketingStatus && strings.TrimSpace(o.OptOutField) == "" {
		bad("opt_out_field", "is required when marketing_status is false (nothing would be read)")
	}
}

// Source verifies and parses one Pipedrive webhook's deliveries.
type Source struct {
	cfg        config.Source
	user       string
	field      string
	values     []string
	readStatus bool
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Pipedrive source: secrets are the webhook's
// http_auth_password values (several allow rotation), cfg.Options its
// SourceOptions. Errors name the config key.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSource(cfg, "the webhook's http_auth_password"); err != nil {
		return nil, err
	}
	o := config.OptionsOf[SourceOptions](cfg.Options)
	s := &Source{cfg: cfg, user: o.HTTPAuthUser, field: strings.TrimSpace(o.OptOutField), readStatus: o.MarketingStatus == nil || *o.MarketingStatus}
	for _, v := range o.OptOutValues {
		s.values = append(s.values, strings.ToLower(strings.TrimSpace(v)))
	}
	if len(s.values) == 0 {
		s.values = []string{"true", "yes", "1"}
	}
	if !s.readStatus && s.field == "" {
		return nil, errors.New("opt_out_field: is required when marketing_status is false")
	}
	return s, nil
}

// BasicAuth returns the Authorization header value Pipedrive sends for
// user and password. For tests and the demo.
func BasicAuth(user, password string) string {
	r, _ := http.NewRequest("POST", "/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// Verify checks the HTTP basic auth credentials: the password must equal
// one of the secrets and, with http_auth_user set, the user name must equal
// it (constant-time compares). now is unused: nothing is timestamped.
// Errors wrap connectors.ErrUnauthorized.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil || r.Header == nil {
		return connectors.Unauthorized("no basic auth")
	}
	user, pass, ok := (&http.Request{Header: r.Header}).BasicAuth()
	if !ok {
		return connectors.Unauthorized("no basic auth (set http_auth_user and http_auth_password on the Pipedrive webhook)")
	}
	userOK := s.user == "" || connectors.EqualToken(user, s.user)
	passOK := connectors.AnySecret(s.cfg.Secrets, func(sec string) bool { return connectors.EqualToken(pass, sec) })
	if !userOK || !passOK {
		return connectors.Unauthorized("basic auth credentials do not match")
	}
	return nil
}

// event is one delivery, v1 or v2, in v2's terms.
type event struct {
	version  int
	action   string // create, change, delete (v1 added/updated/deleted mapped)
	name     string // "change.person", "updated.person"
	entity   string
	id       string // delivery id (v2) or dedup parts (v1)
	at       any
	data     map[string]any
	previous map[string]any
	hasPrev  bool
}

// Parse reads one delivery (v1 or v2). Person create and change events
// give withdrawals as the package comment says; other entities and
// actions are skipped. DedupKey is v2's meta.id, or for v1 a hash of
// webhook_id, the person id and the timestamp ("" when they are missing:
// the caller hashes the body). occurred_at is meta.timestamp (RFC 3339 in
// v2, Unix seconds in v1), else data.update_time (UTC), else the arrival
// time. A body that is not a JSON object with a meta object wraps
// connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	root, err := mapping.DecodeObject(r.Body)
	if err != nil {
		return nil, err
	}
	ev, err := readEvent(root)
	if err != nil {
		return nil, err
	}
	b := &connectors.Batch{DedupKey: ev.id}
	if ev.entity == "person" {
		// The person's addresses, whatever the event means: their erasure
		// finds the request.
		for _, m := range []map[string]any{ev.data, ev.previous} {
			if m != nil {
				for _, a := range emails(m) {
					b.Named = append(b.Named, consent.Subject{Email: a})
				}
			}
		}
	}
	if ev.entity != "person" {
		b.Skipped = append(b.Skipped, fmt.Sprintf("%s: not a person event", connectors.Quote(ev.name, connectors.MaxQuoted)))
		return b, nil
	}
	if ev.action != "create" && ev.action != "change" {
		b.Skipped = append(b.Skipped, fmt.Sprintf("%s: no consent meaning", connectors.Quote(ev.name, connectors.MaxQuoted)))
		return b, nil
	}
	if ev.data == nil {
		b.Skipped = append(b.Skipped, "no person data")
		return b, nil
	}
	field, value, reason := s.optOut(ev)
	if field == "" {
		b.Skipped = append(b.Skipped, reason)
		return b, nil
	}
	addrs := emails(ev.data)
	if len(addrs) == 0 {
		b.Skipped = append(b.Skipped, "opt-out of a person without an email address")
		return b, nil
	}
	at, ok := mapping.ParseTime(ev.at, time.UTC)
	if !ok {
		at, ok = mapping.ParseTime(ev.data["update_time"], time.UTC)
	}
	if !ok {
		if r.ReceivedAt.IsZero() {
			b.Skipped = append(b.Skipped, "opt-out without a readable timestamp")
			return b, nil
		}
		// A withdrawal is never dropped for a bad date: it is dated on arrival.
		at = r.ReceivedAt.UTC()
		b.Skipped = append(b.Skipped, "no readable meta.timestamp: dated at arrival")
	}
	evID, _ := mapping.Text(idOf(root))
	for _, a := range addrs {
		b.Signals = append(b.Signals, connectors.EmailWithdrawal(s.cfg, a, at, consent.Evidence{
			EventID:  connectors.ClipUTF8(evID, 200),
			Event:    connectors.ClipUTF8(ev.name, connectors.MaxQuoted),
			Field:    connectors.ClipUTF8(field, 64),
			Checkbox: connectors.ClipUTF8(value, 64),
		}))
	}
	return b, nil
}

// idOf is meta.id (v2 delivery id, v1 object id) for the evidence.
func idOf(root map[string]any) any {
	meta, _ := root["meta"].(map[string]any)
	return meta["id"]
}

func readEvent(root map[string]any) (event, error) {
	meta, ok := root["meta"].(map[string]any)
	if !ok {
		return event{}, connectors.Malformed("no meta object")
	}
	text := func(m map[string]any, k string) string { v, _ := mapping.Text(m[k]); return strings.TrimSpace(v) }
	var ev event
	prev, hasPrev := root["previous"].(map[string]any)
	ev.previous, ev.hasPrev = prev, hasPrev
	if d, ok := root["data"].(map[string]any); ok || text(meta, "version") == "2.0" || meta["entity"] != nil {
		ev.version = 2
		ev.data = d
		ev.action = text(meta, "action")
		ev.entity = text(meta, "entity")
		ev.name = ev.action + "." + ev.entity
		ev.id = connectors.ClipUTF8(text(meta, "id"), 200)
		ev.at = meta["timestamp"]
		return ev, nil
	}
	ev.version = 1
	ev.data, _ = root["current"].(map[string]any)
	ev.entity = text(meta, "object")
	switch a := text(meta, "action"); a {
	case "added":
		ev.action = "create"
	case "updated":
		ev.action = "change"
	default:
		ev.action = a
	}
	ev.name = text(root, "event")
	if ev.name == "" {
		ev.name = text(meta, "action") + "." + ev.entity
	}
	ev.at = meta["timestamp"]
	wh, id, ts := text(meta, "webhook_id"), text(meta, "id"), text(meta, "timestamp_micro")
	if ts == "" {
		ts = text(meta, "timestamp")
	}
	if wh != "" && id != "" && ts != "" {
		ev.id = connectors.HashParts("pipedrive-v1", wh, id, ts)
	}
	return ev, nil
}

// optOut returns the field and value that make ev an opt-out, or "" and
// why not.
func (s *Source) optOut(ev event) (field, value, reason string) {
	var reasons []string
	if s.readStatus {
		cur, ok := fieldText(ev.data, MarketingStatusField)
		cur = strings.ToLower(strings.TrimSpace(cur))
		old, oldOK := fieldText(ev.previous, MarketingStatusField)
		_, inPrev := ev.previous[MarketingStatusField]
		switch {
		case !ok:
			reasons = append(reasons, "no marketing_status")
		case !changed(ev, inPrev, oldOK, old, cur):
			reasons = append(reasons, "marketing_status unchanged")
		case cur == StatusUnsubscribed:
			return MarketingStatusField, cur, ""
		case cur == StatusSubscribed || cur == StatusArchived:
			reasons = append(reasons, fmt.Sprintf("marketing_status %s: a status set in the CRM is not an express opt-in", cur))
		case cur == StatusNoConsent:
			reasons = append(reasons, "marketing_status no_consent: absence of consent is not a withdrawal")
		default:
			reasons = append(reasons, fmt.Sprintf("marketing_status %s: unknown", connectors.Quote(cur, connectors.MaxQuoted)))
		}
	}
	if s.field != "" {
		cur, ok := customText(ev, ev.data, s.field)
		cur = strings.TrimSpace(cur)
		old, oldOK := customText(ev, ev.previous, s.field)
		switch {
		case !ok:
			reasons = append(reasons, "opt-out field absent")
		case !changed(ev, prevHasCustom(ev, s.field), oldOK, old, cur):
			reasons = append(reasons, "opt-out field unchanged")
		case slices.Contains(s.values, strings.ToLower(cur)):
			return s.field, cur, ""
		default:
			reasons = append(reasons, "opt-out field not set to an opt-out value")
		}
	}
	return "", "", strings.Join(reasons, "; ")
}

// changed reports whether a field's value cur is new in ev: always for a
// create, or a change without a previous object (nothing to compare with);
// otherwise the field must be in previous (v2 lists only the changed
// fields; v1 the whole person) with another value.
func changed(ev event, inPrev, oldOK bool, old, cur string) bool {
	if ev.action != "change" || !ev.hasPrev {
		return true
	}
	if !inPrev {
		return false
	}
	return !oldOK || !strings.EqualFold(strings.TrimSpace(old), cur)
}

func prevHasCustom(ev event, key string) bool {
	if ev.version == 2 {
		cf, _ := ev.previous["custom_fields"].(map[string]any)
		_, ok := cf[key]
		return ok
	}
	_, ok := ev.previous[key]
	return ok
}

// fieldText is m[k] as text; null and absent are not ok.
func fieldText(m map[string]any, k string) (string, bool) {
	if m == nil || m[k] == nil {
		return "", false
	}
	return mapping.Text(m[k])
}

// customText reads a custom field: v2 data.custom_fields[key] is an object
// {"type", "value"} or {"type", "id"} (enum) or {"type", "ids"} (set); v1
// current[key] is the raw value (an enum's option id). A set yields its ids
// joined by ",", so a set field is an opt-out only with one option chosen.
func customText(ev event, m map[string]any, key string) (string, bool) {
	if m == nil {
		return "", false
	}
	var v any
	if ev.version == 2 {
		cf, _ := m["custom_fields"].(map[string]any)
		v = cf[key]
	} else {
		v = m[key]
	}
	if o, ok := v.(map[string]any); ok {
		for _, k := range []string{"id", "value"} {
			if o[k] != nil {
				return mapping.Text(o[k])
			}
		}
		if ids, ok := o["ids"].([]any); ok {
			parts := make([]string, 0, len(ids))
			for _, id := range ids {
				if t, ok := mapping.Text(id); ok {
					parts = append(parts, t)
				}
			}
			return strings.Join(parts, ","), len(parts) > 0
		}
		return "", false
	}
	if v == nil {
		return "", false
	}
	return mapping.Text(v)
}

// emails returns the person's distinct addresses, primary first: v2
// data.emails or v1 current.email, each an array of {"value", "primary",
// "label"} (a plain string or an array of strings is accepted too).
func emails(data map[string]any) []string {
	raw := data["emails"]
	if raw == nil {
		raw = data["email"]
	}
	var primary, others []string
	seen := map[string]bool{}
	add := func(v string, isPrimary bool) {
		v = strings.TrimSpace(v)
		k := strings.ToLower(v)
		if v == "" || seen[k] || !strings.Contains(v, "@") {
			return
		}
		seen[k] = true
		if isPrimary {
			primary = append(primary, v)
		} else {
			others = append(others, v)
		}
	}
	switch x := raw.(type) {
	case string:
		add(x, true)
	case []any:
		for _, item := range x {
			switch e := item.(type) {
			case string:
				add(e, false)
			case map[string]any:
				v, _ := e["value"].(string)
				p, _ := mapping.Text(e["primary"])
				add(v, strings.EqualFold(p, "true"))
			}
		}
	}
	return append(primary, others...)
}
