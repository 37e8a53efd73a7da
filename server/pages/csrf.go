package pages

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/consentsync/consentsync/links"
)

// csrfTTL is how long a rendered form may be submitted.
const csrfTTL = 2 * time.Hour

// csrfToken binds a form to the link it was rendered for and the time it
// was: "<unix seconds>.<base64url HMAC-SHA256(first key, "csrf." token id
// "." seconds)[:16]>". Together with net/http's CrossOriginProtection
// (Sec-Fetch-Site / Origin) it keeps another site from posting the form
// (OWASP CSRF cheat sheet: synchronizer token, HMAC variant, no cookie).
func csrfToken(sg links.Signer, tokenID string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + base64.RawURLEncoding.EncodeToString(csrfMAC(sg.Keys[0].Secret, tokenID, ts))
}

func csrfMAC(secret []byte, tokenID, ts string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("csrf." + tokenID + "." + ts))
	return m.Sum(nil)[:16]
}

// csrfValid checks v for tokenID at now with any of the signer's keys:
// made within csrfTTL, not in the future by more than a minute.
func csrfValid(sg links.Signer, tokenID, v string, now time.Time) bool {
	ts, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > 64 {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	at := time.Unix(sec, 0)
	if now.Sub(at) > csrfTTL || at.Sub(now) > time.Minute {
		return false
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		return false
	}
	for _, k := range sg.Keys {
		if hmac.Equal(got, csrfMAC(k.Secret, tokenID, ts)) {
			return true
		}
	}
	return false
}
