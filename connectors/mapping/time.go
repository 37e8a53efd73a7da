package mapping

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/consentsync/consentsync/connectors"
)

// zoned layouts carry their own offset; local layouts are read in the
// source's time zone (config.Source.Timezone).
var (
	zonedLayouts = []string{
		time.RFC3339Nano,                     // 2025-11-20T10:30:00Z, any offset, optional fraction
		"2006-01-02T15:04:05.999999999Z0700", // offset without colon: +0100
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z0700",
		"2006-01-02 15:04:05.999999999 -0700",
	}
	localLayouts = []string{
		"2006-01-02 15:04:05.999999999", // Mailchimp, Gravity Forms: no zone
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04",
	}
)

// unixMsFrom: integers at or above it are read as Unix milliseconds, below it
// as seconds (1e11 s is the year 5138; 1e11 ms is March 1973).
const unixMsFrom = 1e11

// ParseTime reads a sender's event time and returns it in UTC:
//
//   - RFC 3339 with any offset (fraction optional), also with "+0100" offsets
//     or a space instead of "T";
//   - "YYYY-MM-DD HH:MM:SS" (or with "T", optional fraction) without a zone,
//     read in loc (UTC when nil);
//   - a Unix time as a JSON number or a digit string: seconds below 1e11,
//     milliseconds from 1e11 on; a fraction is allowed on seconds.
//
// Years outside 1970..9999 are refused (they cannot be stored or rendered as
// JSON). It returns false for anything else.
func ParseTime(v any, loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.UTC
	}
	var t time.Time
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if s == "" || len(s) > 64 {
			return time.Time{}, false
		}
		if isNumeric(s) {
			return parseUnixText(s)
		}
		ok := false
		for _, l := range zonedLayouts {
			if p, err := time.Parse(l, s); err == nil {
				t, ok = p, true
				break
			}
		}
		for _, l := range localLayouts {
			if ok {
				break
			}
			if p, err := time.ParseInLocation(l, s, loc); err == nil {
				t, ok = p, true
			}
		}
		if !ok {
			return time.Time{}, false
		}
	case json.Number:
		return parseUnixText(x.String())
	case float64:
		return parseUnixFloat(x)
	case int:
		return parseUnixFloat(float64(x))
	case int64:
		return parseUnixFloat(float64(x))
	default:
		return time.Time{}, false
	}
	return inRange(t.UTC())
}

func isNumeric(s string) bool {
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0:
			dot = true
		default:
			return false
		}
	}
	return true
}

func parseUnixText(s string) (time.Time, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return time.Time{}, false
		}
		if n >= unixMsFrom {
			if n > 1<<53 {
				return time.Time{}, false
			}
			return inRange(time.UnixMilli(n).UTC())
		}
		return inRange(time.Unix(n, 0).UTC())
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, false
	}
	return parseUnixFloat(f)
}

func parseUnixFloat(f float64) (time.Time, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1<<53 {
		return time.Time{}, false
	}
	if f >= unixMsFrom {
		return inRange(time.UnixMilli(int64(f)).UTC())
	}
	sec, frac := math.Modf(f)
	return inRange(time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC())
}

// inRange returns t when its year is storable (connectors.InYearRange).
func inRange(t time.Time) (time.Time, bool) {
	if !connectors.InYearRange(t) {
		return time.Time{}, false
	}
	return t, true
}
