package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Pages configures the public pages people reach from an email: one-click
// unsubscribe (RFC 8058, POST /u/{token}), the preference centre
// (/p/{token}) and the double opt-in confirmation (/c/{token}), and the
// signed links to them (POST /v1/subjects/{id}/links, consentsync links).
// The pages are served only when Keys is not empty.
type Pages struct {
	// PublicURL is the scheme, host and optional path prefix people reach
	// this service at ("https://consent.example.com"): every link starts
	// with it. Required when Keys is set.
	PublicURL string `yaml:"public_url"`
	// Keys sign and verify the links' tokens (HMAC-SHA256). The first
	// signs; every one verifies a token carrying its id, so a key is
	// rotated by putting a new one first and removing the old one once
	// the links it signed have expired.
	Keys []PageKey `yaml:"keys"`
	// UnsubscribeTTL is how long an unsubscribe link works (default
	// 8760h, one year: a person may unsubscribe from an old message).
	UnsubscribeTTL time.Duration `yaml:"unsubscribe_ttl"`
	// PreferencesTTL is how long a preference-centre link works (default
	// 2160h, 90 days).
	PreferencesTTL time.Duration `yaml:"preferences_ttl"`
	// ConfirmTTL is how long a double opt-in confirmation link works
	// (default 168h, 7 days).
	ConfirmTTL time.Duration `yaml:"confirm_ttl"`
	// IPPerMinute is how many requests one client IP (IPv4 /32, IPv6 /64)
	// may make to the pages per minute, with bursts of as many (default 60).
	IPPerMinute int `yaml:"ip_per_minute"`
	// TokenPerMinute is how many requests one link may serve per minute,
	// with bursts of as many (default 20).
	TokenPerMinute int `yaml:"token_per_minute"`
	// ClientIPHeader names a header set by a reverse proxy you run that
	// carries the client's address ("X-Forwarded-For": its last entry is
	// read); empty (the default) reads the connection's address. Set it
	// only behind such a proxy: a client can write any header.
	ClientIPHeader string `yaml:"client_ip_header"`
	// PartnerList is the version of the partner list the preference
	// centre shows beside a partners toggle, kept as evidence.partner_list
	// (docs/rules.md, "Partners": without it a partners opt-in is not
	// informed). Empty (the default): a partners toggle there can only be
	// turned off.
	PartnerList string `yaml:"partner_list"`
	// Partners are the partners' names the preference centre lists beside
	// a partners toggle.
	Partners []string `yaml:"partners"`
}

// PageKey is one link-signing key.
type PageKey struct {
	// ID names the key inside each token: 1–16 letters, digits, '_' or '-'.
	ID string `yaml:"id"`
	// Secret is the HMAC key: at least 32 bytes (put it in the
	// environment: secret: ${CONSENTSYNC_PAGES_KEY}).
	Secret string `yaml:"secret"`
}

// Enabled reports whether the pages are served (at least one key).
func (p Pages) Enabled() bool { return len(p.Keys) > 0 }

var pageKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,16}$`)

// MinPageSecret is the shortest pages.keys[].secret accepted, in bytes.
const MinPageSecret = 32

func (p *Pages) defaults() {
	if p.UnsubscribeTTL == 0 {
		p.UnsubscribeTTL = 8760 * time.Hour
	}
	if p.PreferencesTTL == 0 {
		p.PreferencesTTL = 2160 * time.Hour
	}
	if p.ConfirmTTL == 0 {
		p.ConfirmTTL = 168 * time.Hour
	}
	if p.IPPerMinute == 0 {
		p.IPPerMinute = 60
	}
	if p.TokenPerMinute == 0 {
		p.TokenPerMinute = 20
	}
}

func (p Pages) validate(readOnly bool, bad func(path, format string, args ...any)) {
	if p.Enabled() || p.PublicURL != "" {
		u, err := url.Parse(p.PublicURL)
		switch {
		case p.PublicURL == "":
			bad("pages.public_url", "is required with pages.keys (the scheme and host people reach the pages at)")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			bad("pages.public_url", "%q must be an http:// or https:// URL with a host and no query", p.PublicURL)
		}
	}
	seen := map[string]bool{}
	for i, k := range p.Keys {
		kp := fmt.Sprintf("pages.keys[%d]", i)
		switch {
		case !pageKeyRE.MatchString(k.ID):
			bad(kp+".id", "%q must be 1-16 letters, digits, '_' or '-'", k.ID)
		case seen[k.ID]:
			bad(kp+".id", "%q is used twice", k.ID)
		}
		seen[k.ID] = true
		if !readOnly && len(k.Secret) < MinPageSecret {
			bad(kp+".secret", "must be at least %d bytes (it is %d)", MinPageSecret, len(k.Secret))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"unsubscribe_ttl", p.UnsubscribeTTL}, {"preferences_ttl", p.PreferencesTTL}, {"confirm_ttl", p.ConfirmTTL}} {
		if d.v < time.Minute {
			bad("pages."+d.key, "must be at least 1m")
		}
	}
	if p.IPPerMinute < 1 {
		bad("pages.ip_per_minute", "must be at least 1")
	}
	if p.TokenPerMinute < 1 {
		bad("pages.token_per_minute", "must be at least 1")
	}
	if h := p.ClientIPHeader; h != "" && strings.ContainsAny(h, " :\r\n") {
		bad("pages.client_ip_header", "%q is not a header name", h)
	}
}
