package connectors

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// HMAC returns HMAC-<alg>(key, parts...) with alg "sha256" (default) or
// "sha512".
func HMAC(alg string, key []byte, parts ...[]byte) []byte {
	h := sha256.New
	if alg == "sha512" {
		h = sha512.New
	}
	m := hmac.New(func() hash.Hash { return h() }, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// EqualHex compares a hex-encoded signature (any case) with want in constant
// time. Undecodable input is simply unequal.
func EqualHex(got string, want []byte) bool {
	b, err := hex.DecodeString(strings.TrimSpace(got))
	return err == nil && hmac.Equal(b, want)
}

// EqualBase64 compares a base64 (standard or URL alphabet, padded or not)
// signature with want in constant time.
func EqualBase64(got string, want []byte) bool {
	got = strings.TrimSpace(got)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(got); err == nil {
			return hmac.Equal(b, want)
		}
	}
	return false
}

// EqualToken compares two secrets carried as text (URL tokens, bearer
// tokens) in constant time.
func EqualToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// AnySecret reports whether ok(secret) holds for one of secrets (rotation).
// Every secret is tried, so timing does not reveal which one matched.
func AnySecret(secrets []string, ok func(secret string) bool) bool {
	match := false
	for _, s := range secrets {
		if s != "" && ok(s) {
			match = true
		}
	}
	return match
}

// CheckTimestamp checks that ts is within tolerance of now, in either
// direction. It returns an error wrapping ErrStale.
func CheckTimestamp(ts, now time.Time, tolerance time.Duration) error {
	d := now.Sub(ts)
	if d < 0 {
		d = -d
	}
	if d > tolerance {
		return fmt.Errorf("%w: %w: %s away from now, tolerance %s", ErrUnauthorized, ErrStale, d.Round(time.Second), tolerance)
	}
	return nil
}

// ParseUnix reads an integer Unix timestamp in seconds (unit "s") or
// milliseconds (unit "ms"). It returns false for anything else.
func ParseUnix(v, unit string) (time.Time, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	if unit == "ms" {
		if n > 1<<53 {
			return time.Time{}, false
		}
		return time.UnixMilli(n).UTC(), true
	}
	if n > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}
