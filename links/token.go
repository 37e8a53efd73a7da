// Package links signs and verifies the tokens of the links a person gets
// by email: one-click unsubscribe (RFC 8058), the preference centre and the
// double opt-in confirmation. A token is single-purpose, expires, names one
// subject and one brand, and holds no personal data: a subject id (the
// database's, meaningless outside it), a brand name, a channel and purpose
// code, an expiry and a random token id.
//
// Wire form (ASCII, URL-safe, about 70 characters):
//
//	<key id> "." base64url(payload) "." base64url(HMAC-SHA256(secret, "consentsync-link-v1." key id "." payload)[:16])
//
// payload = version (1) | purpose (1: 'u', 'p', 'c') | channel (1) |
// purpose of consent (1) | token id (8 random bytes) | expiry (uvarint,
// Unix seconds) | subject id (uvarint) | brand (the rest, UTF-8, 1–64 bytes).
//
// Keys rotate: several are accepted by id, the first signs (config
// pages.keys). The MAC is compared in constant time; verification never
// touches the database, so a forged or expired token costs nothing and
// reveals nothing about whether the person exists.
package links

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/consentsync/consentsync/consent"
)

// Purpose is what a token may be used for: each token serves one page.
type Purpose byte

// Purposes.
const (
	Unsubscribe Purpose = 'u' // POST /u/{token}: one-click withdrawal
	Preferences Purpose = 'p' // /p/{token}: the preference centre
	Confirm     Purpose = 'c' // /c/{token}: double opt-in confirmation
)

func (p Purpose) String() string {
	switch p {
	case Unsubscribe:
		return "unsubscribe"
	case Preferences:
		return "preferences"
	case Confirm:
		return "confirm"
	}
	return fmt.Sprintf("purpose(%d)", byte(p))
}

// Claims is what a token says.
type Claims struct {
	Purpose   Purpose
	SubjectID int64
	Brand     string
	// Channel and ConsentPurpose are the scope an unsubscribe token
	// withdraws (email marketing by default); other tokens carry email
	// marketing and ignore them.
	Channel        consent.Channel
	ConsentPurpose consent.Purpose
	// ID is the token's random id, 16 hex digits: the evidence a
	// withdrawal keeps, and the rate limiter's key.
	ID        string
	ExpiresAt time.Time
	// KeyID names the key that signed the token.
	KeyID string
}

// Key is one signing key (config.PageKey).
type Key struct {
	ID     string
	Secret []byte
}

// Signer signs with its first key and verifies with any of them.
type Signer struct {
	Keys []Key
}

// Errors Verify returns. Callers must answer both the same way, so that a
// token's holder learns nothing beyond "not valid".
var (
	// ErrInvalid: malformed, unknown key, bad MAC, or another purpose.
	ErrInvalid = errors.New("links: invalid token")
	// ErrExpired: well signed but past its expiry.
	ErrExpired = errors.New("links: expired token")
	// ErrNoKey: the signer has no key (pages.keys is empty).
	ErrNoKey = errors.New("links: no signing key (set pages.keys)")
	// ErrUnencodable: Issue was asked for claims a token cannot carry (a
	// cookie sub-purpose, a brand over MaxBrand bytes...).
	ErrUnencodable = errors.New("links: claims a token cannot carry")
)

const (
	version = 1
	macLen  = 16
	idLen   = 8
	// MaxBrand is the longest brand name a token carries, in bytes.
	MaxBrand = 64
	// MaxLen bounds a token's length; longer input is refused before any
	// decoding.
	MaxLen = 256
	domain = "consentsync-link-v1."
)

var channels = []consent.Channel{consent.ChannelEmail, consent.ChannelSMS, consent.ChannelPhone, consent.ChannelPost}
var purposes = []consent.Purpose{consent.PurposeMarketing, consent.PurposePartners, consent.PurposeCookies, consent.PurposeSaleSharing}

func indexOf[T comparable](xs []T, x T) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// Issue signs a token for c with the first key. c.ID is drawn at random
// when empty (16 hex digits otherwise), c.KeyID is set. Errors: ErrNoKey,
// or ErrUnencodable for a claim that cannot be encoded (unknown purpose,
// channel or consent purpose, a brand empty or over MaxBrand bytes, a
// subject id not positive).
func (s Signer) Issue(c Claims) (string, Claims, error) {
	if len(s.Keys) == 0 || len(s.Keys[0].Secret) == 0 {
		return "", c, ErrNoKey
	}
	if c.Channel == "" {
		c.Channel = consent.ChannelEmail
	}
	if c.ConsentPurpose == "" {
		c.ConsentPurpose = consent.PurposeMarketing
	}
	ch, pu := indexOf(channels, c.Channel), indexOf(purposes, c.ConsentPurpose)
	switch {
	case c.Purpose != Unsubscribe && c.Purpose != Preferences && c.Purpose != Confirm:
		return "", c, fmt.Errorf("%w: unknown purpose %v", ErrUnencodable, c.Purpose)
	case ch < 0 || pu < 0:
		return "", c, fmt.Errorf("%w: channel %q, purpose %q (a token names email, sms, phone or post and marketing, partners, cookies or sale_sharing)", ErrUnencodable, c.Channel, c.ConsentPurpose)
	case c.SubjectID <= 0:
		return "", c, fmt.Errorf("%w: subject id must be positive", ErrUnencodable)
	case c.Brand == "" || len(c.Brand) > MaxBrand || !utf8.ValidString(c.Brand):
		return "", c, fmt.Errorf("%w: brand must be 1-%d bytes of UTF-8", ErrUnencodable, MaxBrand)
	case c.ExpiresAt.IsZero() || c.ExpiresAt.Unix() <= 0:
		return "", c, fmt.Errorf("%w: no expiry", ErrUnencodable)
	}
	var id [idLen]byte
	if c.ID == "" {
		if _, err := rand.Read(id[:]); err != nil {
			return "", c, err
		}
		c.ID = hex.EncodeToString(id[:])
	} else if b, err := hex.DecodeString(c.ID); err != nil || len(b) != idLen {
		return "", c, errors.New("links: token id must be 16 hex digits")
	} else {
		copy(id[:], b)
	}
	c.ExpiresAt = time.Unix(c.ExpiresAt.Unix(), 0).UTC()
	p := make([]byte, 0, 4+idLen+2*binary.MaxVarintLen64+len(c.Brand))
	p = append(p, version, byte(c.Purpose), byte(ch), byte(pu))
	p = append(p, id[:]...)
	p = binary.AppendUvarint(p, uint64(c.ExpiresAt.Unix()))
	p = binary.AppendUvarint(p, uint64(c.SubjectID))
	p = append(p, c.Brand...)
	k := s.Keys[0]
	c.KeyID = k.ID
	payload := base64.RawURLEncoding.EncodeToString(p)
	return k.ID + "." + payload + "." + base64.RawURLEncoding.EncodeToString(mac(k, payload)), c, nil
}

func mac(k Key, payload string) []byte {
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte(domain))
	m.Write([]byte(k.ID))
	m.Write([]byte{'.'})
	m.Write([]byte(payload))
	return m.Sum(nil)[:macLen]
}

// Verify checks tok for purpose want at now and returns its claims.
// Errors: ErrInvalid (malformed, unknown key id, bad MAC, another
// purpose: a token is single-purpose) or ErrExpired (now at or after the
// expiry). The MAC is checked before the payload is read and compared in
// constant time.
func (s Signer) Verify(tok string, want Purpose, now time.Time) (Claims, error) {
	c, err := s.verify(tok, now)
	if err != nil {
		return Claims{}, err
	}
	if c.Purpose != want {
		return Claims{}, ErrInvalid
	}
	return c, nil
}

// canonical reports whether tok holds only what Sign writes: key id
// letters, digits, '_' and '-', the base64url alphabet (RFC 4648 §5) and
// '.'. Go's base64 decoders skip CR and LF even in Strict mode, so without
// this a token with a line break inside would verify too: one token, many
// spellings, each its own key for the per-token rate limit.
func canonical(tok string) bool {
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func (s Signer) verify(tok string, now time.Time) (Claims, error) {
	if len(tok) == 0 || len(tok) > MaxLen || !canonical(tok) {
		return Claims{}, ErrInvalid
	}
	kid, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return Claims{}, ErrInvalid
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return Claims{}, ErrInvalid
	}
	var key *Key
	for i := range s.Keys {
		if s.Keys[i].ID == kid && len(s.Keys[i].Secret) > 0 {
			key = &s.Keys[i]
			break
		}
	}
	if key == nil {
		return Claims{}, ErrInvalid
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(got) != macLen || !hmac.Equal(got, mac(*key, payload)) {
		return Claims{}, ErrInvalid
	}
	p, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil || len(p) < 4+idLen+2+1 || p[0] != version {
		return Claims{}, ErrInvalid
	}
	c := Claims{Purpose: Purpose(p[1]), KeyID: kid}
	if int(p[2]) >= len(channels) || int(p[3]) >= len(purposes) {
		return Claims{}, ErrInvalid
	}
	c.Channel, c.ConsentPurpose = channels[p[2]], purposes[p[3]]
	c.ID = hex.EncodeToString(p[4 : 4+idLen])
	r := p[4+idLen:]
	exp, n := binary.Uvarint(r)
	if n <= 0 || exp == 0 || exp > 1<<40 {
		return Claims{}, ErrInvalid
	}
	r = r[n:]
	sub, n := binary.Uvarint(r)
	if n <= 0 || sub == 0 || sub > 1<<62 {
		return Claims{}, ErrInvalid
	}
	r = r[n:]
	if len(r) == 0 || len(r) > MaxBrand || !utf8.Valid(r) {
		return Claims{}, ErrInvalid
	}
	c.SubjectID, c.Brand = int64(sub), string(r)
	c.ExpiresAt = time.Unix(int64(exp), 0).UTC()
	switch c.Purpose {
	case Unsubscribe, Preferences, Confirm:
	default:
		return Claims{}, ErrInvalid
	}
	if !now.Before(c.ExpiresAt) {
		return Claims{}, ErrExpired
	}
	return c, nil
}
