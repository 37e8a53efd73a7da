// Package brevo receives Brevo (ex-Sendinblue) marketing and transactional
// email webhooks (kind "brevo").
//
// Wire format (https://developers.brevo.com/docs/marketing-webhooks,
// https://developers.brevo.com/docs/transactional-webhooks): JSON, one event
// object per request or, when batching is on, an array of up to 500:
//
//	{"id": 1234567, "camp_id": 42, "email": "lea@example.com",
//	 "campaign name": "Newsletter", "date_sent": "2025-11-20 11:00:00",
//	 "date_event": "2025-11-20 11:10:00", "event": "unsubscribed",
//	 "tag": "", "ts_sent": 1763632800, "ts_event": 1763633400,
//	 "ts": 1763637000, "list_id": [3, 7]}
//
// Times: ts_sent and ts_event are Unix seconds (UTC); date_sent,
// date_event and date are Paris local time ("YYYY-MM-DD HH:MM:SS", CET/CEST);
// ts on marketing events is shifted by Paris's offset and is not used.
// Transactional events carry "message-id" instead of camp_id, and may carry
// ts_epoch (Unix milliseconds, UTC).
//
// Brevo signs nothing. The webhook is configured with an
// "Authorization: Bearer <token>" header or with basic-auth credentials;
// either carries the secret.
package brevo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris must load on hosts without a zoneinfo database

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// MaxBatch is Brevo's documented batch size. Larger arrays are still read.
const MaxBatch = 500

// ParisZone is the zone of Brevo's "date" fields.
const ParisZone = "Europe/Paris"

const dateLayout = "2006-01-02 15:04:05"

// Source verifies and parses one Brevo account's webhooks.
type Source struct {
	cfg   config.Source
	paris *time.Location
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds a Brevo source. cfg.Secrets are the bearer tokens (or
// basic-auth passwords) configured on the webhook; several allow rotation.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSource(cfg, "the webhook's bearer token or basic-auth password"); err != nil {
		return nil, err
	}
	paris, err := time.LoadLocation(ParisZone)
	if err != nil {
		return nil, fmt.Errorf("brevo: loading %s: %w", ParisZone, err)
	}
	return &Source{cfg: cfg, paris: paris}, nil
}

// Verify accepts "Authorization: Bearer <secret>" or basic auth whose
// password is a secret (constant-time compare, every secret tried). Brevo
// sends no timestamp: now is unused. Errors wrap connectors.ErrUnauthorized.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil {
		return connectors.Unauthorized("no request")
	}
	auth := strings.TrimSpace(r.Header.Get("Authorization"))
	if auth == "" {
		return connectors.Unauthorized("missing Authorization header")
	}
	scheme, cred, _ := strings.Cut(auth, " ")
	var got string
	switch strings.ToLower(scheme) {
	case "bearer":
		got = strings.TrimSpace(cred)
	case "basic":
		_, pass, ok := (&http.Request{Header: r.Header}).BasicAuth()
		if !ok {
			return connectors.Unauthorized("unreadable basic auth")
		}
		got = pass
	default:
		return connectors.Unauthorized("Authorization scheme must be Bearer or Basic")
	}
	if got == "" {
		return connectors.Unauthorized("empty credentials")
	}
	if !connectors.AnySecret(s.cfg.Secrets, func(secret string) bool { return connectors.EqualToken(got, secret) }) {
		return connectors.Unauthorized("token does not match")
	}
	return nil
}

// Parse turns one event or a batch of events into a Batch:
//
//	unsubscribed, spam, complaint  withdrawal of cfg.Brand's email marketing
//	hard_bounce                    Batch.Undeliverable
//	delivered                      a consent.Activity "delivered" of cfg.Brand on email
//	opened, unique_opened          a consent.Activity "open"
//	click                          a consent.Activity "click"
//	list_addition                  skipped: being added to a list is not evidence of express consent
//	anything else                  skipped
//
// occurred_at is ts_event (Unix seconds, UTC), else ts_epoch (ms, UTC),
// else date_event or date read as Europe/Paris local time (a time inside the
// hour repeated when summer time ends is ambiguous: time.Date picks one of
// the two), else, for a withdrawal, the arrival time (a withdrawal is never
// dropped for a bad date). DedupKey is
// the hex SHA-256 of the sorted item keys (event, email, camp_id or
// message-id, ts_event). A body that is neither a JSON object nor an array
// returns an error wrapping connectors.ErrMalformed; an item that is not an
// object is skipped.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	if r == nil {
		return nil, connectors.Malformed("no request")
	}
	items, err := splitItems(r.Body)
	if err != nil {
		return nil, err
	}
	b := &connectors.Batch{}
	keys := make([]string, 0, len(items))
	for i, raw := range items {
		label := fmt.Sprintf("item %d", i+1)
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			b.Skipped = append(b.Skipped, label+": not an object")
			continue
		}
		event := connectors.JSONString(obj["event"])
		email := connectors.JSONString(obj["email"])
		ref := connectors.JSONScalar(obj["camp_id"])
		if ref == "" {
			ref = connectors.JSONString(obj["message-id"])
		}
		keys = append(keys, strings.Join([]string{event, email, ref, connectors.JSONScalar(obj["ts_event"])}, "\x00"))
		if strings.TrimSpace(email) != "" {
			b.Named = append(b.Named, consent.Subject{Email: email}) // whatever the event means
		}

		var kind consent.ActivityKind
		switch strings.ToLower(event) {
		case "unsubscribed", "spam", "complaint":
		case "delivered":
			kind = consent.ActivityDelivered
		case "opened", "unique_opened":
			kind = consent.ActivityOpen
		case "click":
			kind = consent.ActivityClick
		case "hard_bounce", "hardbounce":
			if strings.TrimSpace(email) == "" {
				b.Skipped = append(b.Skipped, label+": hard_bounce without email")
				continue
			}
			b.Undeliverable = append(b.Undeliverable, email)
			continue
		case "list_addition":
			b.Skipped = append(b.Skipped, label+": list_addition is not evidence of express consent")
			continue
		case "":
			b.Skipped = append(b.Skipped, label+": no event")
			continue
		default:
			b.Skipped = append(b.Skipped, fmt.Sprintf("%s: event %q: no consent meaning", label, connectors.Clip(event, connectors.MaxQuoted)))
			continue
		}
		if strings.TrimSpace(email) == "" {
			b.Skipped = append(b.Skipped, label+": no email")
			continue
		}
		at, ok := s.eventTime(obj)
		switch {
		case !ok && kind == "" && !r.ReceivedAt.IsZero():
			// A withdrawal is never dropped for a bad date: it is dated when
			// it reached us (later than it occurred, so it wins over older
			// grants).
			at = r.ReceivedAt.UTC()
			b.Skipped = append(b.Skipped, label+": no readable event time: dated at arrival")
		case !ok:
			b.Skipped = append(b.Skipped, label+": no readable event time")
			continue
		}
		if kind != "" {
			b.Activities = append(b.Activities, connectors.EmailActivity(s.cfg, email, kind, at))
			continue
		}
		ev := consent.Evidence{Event: event, ListID: listIDs(obj["list_id"])}
		if id := connectors.JSONString(obj["message-id"]); id != "" {
			ev.EventID = id
		} else if c := connectors.JSONScalar(obj["camp_id"]); c != "" {
			ev.EventID = "campaign:" + c
		}
		b.Signals = append(b.Signals, connectors.EmailWithdrawal(s.cfg, email, at, ev))
	}
	b.DedupKey = connectors.HashKeys(keys)
	return b, nil
}

// eventTime picks the event's time: ts_event (s, UTC), ts_epoch (ms, UTC),
// then date_event or date (Paris local time). A time outside the years
// consent.MinYear..MaxYear (which cannot be stored or rendered as JSON) is
// passed over.
func (s *Source) eventTime(obj map[string]json.RawMessage) (time.Time, bool) {
	if t, ok := connectors.ParseUnix(connectors.JSONScalar(obj["ts_event"]), "s"); ok && connectors.InYearRange(t) {
		return t, true
	}
	if t, ok := connectors.ParseUnix(connectors.JSONScalar(obj["ts_epoch"]), "ms"); ok && connectors.InYearRange(t) {
		return t, true
	}
	for _, k := range []string{"date_event", "date"} {
		v := strings.TrimSpace(connectors.JSONString(obj[k]))
		if v == "" {
			continue
		}
		if t, err := time.ParseInLocation(dateLayout, v, s.paris); err == nil && connectors.InYearRange(t) {
			return t.UTC(), true
		}
		if t, ok := connectors.ParseRFC3339(v); ok && connectors.InYearRange(t) { // transactional "date" may carry an offset
			return t, true
		}
	}
	return time.Time{}, false
}

// splitItems returns the body's events: the array's elements, or the one
// object.
func splitItems(body []byte) ([]json.RawMessage, error) {
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	switch {
	case strings.HasPrefix(trimmed, "["):
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, connectors.Malformed("body is not a JSON array of events")
		}
		return items, nil
	case strings.HasPrefix(trimmed, "{"):
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, connectors.Malformed("body is not a JSON object")
		}
		return []json.RawMessage{json.RawMessage(body)}, nil
	}
	return nil, connectors.Malformed("body is neither a JSON object nor an array")
}

// listIDs renders list_id ([3, 7] or 3) as "3,7".
func listIDs(raw json.RawMessage) string {
	if v := connectors.JSONScalar(raw); v != "" {
		return v
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) != nil {
		return ""
	}
	var out []string
	for _, a := range arr {
		if v := connectors.JSONScalar(a); v != "" {
			out = append(out, v)
		}
	}
	return strings.Join(out, ",")
}
