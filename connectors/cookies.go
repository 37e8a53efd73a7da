package connectors

import (
	"strings"

	"github.com/consentsync/consentsync/consent"
)

// CookieName turns a consent platform's purpose or vendor id into the
// <name> of a "cookies:<name>" purpose (consent.CookiePurpose): trimmed,
// lower-cased, every byte outside a-z 0-9 _ . - replaced by '-'; "" when
// nothing but dashes would be left.
func CookieName(id string) string {
	out := []byte(strings.ToLower(strings.TrimSpace(id)))
	meaningful := false
	for i, c := range out {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.':
			meaningful = true
		case c != '-':
			out[i] = '-'
		}
	}
	if !meaningful {
		return ""
	}
	return string(out)
}

// CookiePurposeOf is the purpose of a consent platform's choice: for a
// vendor, "cookies:vendor.<CookieName(id)>", else "cookies:<CookieName(id)>",
// cut to consent.MaxCookiePurposeName. ok is false when id names nothing.
func CookiePurposeOf(id string, vendor bool) (consent.Purpose, bool) {
	name := CookieName(id)
	if name == "" {
		return "", false
	}
	if vendor {
		name = "vendor." + name
	}
	p, err := consent.CookiePurpose(ClipUTF8(name, consent.MaxCookiePurposeName))
	return p, err == nil
}

// Scope is where a consent platform's choice goes when a source maps it
// (Didomi purposes, Axeptio vendors): Purpose is required (a
// consent.Purpose), Brand defaults to the source's, Channel to email.
type Scope struct {
	Brand   string `yaml:"brand"`
	Purpose string `yaml:"purpose"`
	Channel string `yaml:"channel"`
}

// ValidateScopes checks a map of scopes under key ("purposes"): each needs
// a known purpose, and a known channel when it names one. bad is called
// with "<key>.<id>.purpose" or "<key>.<id>.channel".
func ValidateScopes(key string, m map[string]Scope, bad func(key, format string, args ...any)) {
	for id, sc := range m {
		k := key + "." + id
		if sc.Purpose == "" {
			bad(k+".purpose", "is required")
		} else if _, err := consent.ParsePurpose(sc.Purpose); err != nil {
			bad(k+".purpose", "%s", err.Error())
		}
		if sc.Channel != "" {
			if _, err := consent.ParseChannel(sc.Channel); err != nil {
				bad(k+".channel", "%s", err.Error())
			}
		}
	}
}

// ScopeBrands returns the brands m names (for config.BrandLister).
func ScopeBrands(m map[string]Scope) []string {
	var out []string
	for _, s := range m {
		if s.Brand != "" {
			out = append(out, s.Brand)
		}
	}
	return out
}

// ResolveScopes turns configured scopes into consent keys: each scope's
// brand defaults to brand (the source's), its channel to email. The map is
// keyed as m is (a platform's purpose or vendor id).
func ResolveScopes(m map[string]Scope, brand string) map[string]consent.Key {
	out := make(map[string]consent.Key, len(m))
	for id, sc := range m {
		k := consent.Key{Brand: brand, Purpose: consent.Purpose(sc.Purpose), Channel: consent.ChannelEmail}
		if sc.Brand != "" {
			k.Brand = sc.Brand
		}
		if sc.Channel != "" {
			k.Channel = consent.Channel(sc.Channel)
		}
		out[id] = k
	}
	return out
}
