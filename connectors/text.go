package connectors

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/consentsync/consentsync/consent"
)

// MaxQuoted is the longest sender word (an event or record type, a state)
// quoted in a skip reason, in bytes.
const MaxQuoted = 64

// DefaultTolerance is the timestamp window of a source whose
// config.Source.Tolerance is zero.
const DefaultTolerance = 5 * time.Minute

// Tolerance returns d, or DefaultTolerance when d is not positive.
func Tolerance(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTolerance
	}
	return d
}

// JSONObject decodes r's body as one JSON object, field by field. A nil
// request ("no request") or a body that is not a JSON object ("body is not
// a JSON object") returns an error wrapping ErrMalformed.
func JSONObject(r *Request) (map[string]json.RawMessage, error) {
	if r == nil {
		return nil, Malformed("no request")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &obj); err != nil || obj == nil {
		return nil, Malformed("body is not a JSON object")
	}
	return obj, nil
}

// JSONString returns a JSON string's value, or "" for anything else (null,
// a number, an object, a missing field).
func JSONString(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return v
}

// JSONScalar returns a JSON string's value or a JSON number's literal text
// ("1763633400", "-1.5e3"), or "" for anything else.
func JSONScalar(raw json.RawMessage) string {
	if v := JSONString(raw); v != "" {
		return v
	}
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	return n.String()
}

// ParseRFC3339 reads an RFC 3339 time with any offset and an optional
// fraction ("2025-11-20T10:40:00Z", "2025-11-20T11:40:00.1234567+01:00"),
// surrounding white space allowed, and returns it in UTC. It returns false
// for anything else and for the zero time. The year is not bounded: see
// InYearRange.
func ParseRFC3339(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.IsZero() {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// InYearRange reports whether t's UTC year is within
// consent.MinYear..consent.MaxYear (a time outside cannot be stored or
// rendered as JSON) and t is after the Unix epoch: 1970-01-01T00:00:00Z
// is what senders write for no date (JavaScript's new Date(0), a zeroed
// field), refused as the number 0 is, so that a withdrawal is dated by
// the next readable time (or its arrival), not by 1970, where it would
// lose to every grant.
func InYearRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= consent.MinYear && y <= consent.MaxYear && t.Unix() > 0
}

// Clip bounds a sender-supplied word before it goes into a skip reason or
// an error: v itself when it has at most n bytes, else its first n bytes
// and "...".
func Clip(v string, n int) string {
	if len(v) <= n {
		return v
	}
	return v[:n] + "..."
}

// ClipUTF8 returns s with invalid UTF-8 dropped, cut to at most n bytes on
// a rune boundary.
func ClipUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Quote quotes a sender-provided word for a skip reason (strconv.Quote),
// cut to its first n bytes, invalid UTF-8 replaced by "?".
func Quote(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strconv.Quote(strings.ToValidUTF8(s, "?"))
}
