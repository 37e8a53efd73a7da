package config

import (
	"strings"
	"testing"
	"time"
)

func TestPagesDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", MinPageSecret)
	c, err := Parse([]byte("pages:\n  public_url: https://consent.example.com\n  keys:\n    - {id: k2, secret: \"${K2}\"}\n    - {id: k1, secret: \""+secret+"\"}\n"),
		vars(map[string]string{"K2": secret + "-new"}))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pages
	if !p.Enabled() || p.Keys[0].ID != "k2" || p.Keys[0].Secret != secret+"-new" || p.UnsubscribeTTL != 8760*time.Hour ||
		p.PreferencesTTL != 2160*time.Hour || p.ConfirmTTL != 168*time.Hour || p.IPPerMinute != 60 || p.TokenPerMinute != 20 {
		t.Fatalf("pages = %+v", p)
	}
	if c, err := Parse(nil, vars(nil)); err != nil || c.Pages.Enabled() {
		t.Fatalf("no pages section: %v %+v", err, c.Pages)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"pages:\n  keys: [{id: k1, secret: " + secret + "}]\n", "pages.public_url: is required"},
		{"pages:\n  public_url: ftp://x\n", "pages.public_url: \"ftp://x\" must be"},
		{"pages:\n  public_url: https://x.fr/?a=1\n", "must be an http:// or https:// URL"},
		{"pages:\n  public_url: https://x.fr\n  keys: [{id: k1, secret: short}]\n", "pages.keys[0].secret: must be at least 32 bytes (it is 5)"},
		{"pages:\n  public_url: https://x.fr\n  keys: [{id: 'bad id', secret: " + secret + "}]\n", "pages.keys[0].id: \"bad id\" must be"},
		{"pages:\n  public_url: https://x.fr\n  keys: [{id: a, secret: " + secret + "}, {id: a, secret: " + secret + "}]\n", "pages.keys[1].id: \"a\" is used twice"},
		{"pages:\n  unsubscribe_ttl: 1s\n", "pages.unsubscribe_ttl: must be at least 1m"},
		{"pages:\n  ip_per_minute: -1\n", "pages.ip_per_minute: must be at least 1"},
		{"pages:\n  client_ip_header: 'X Bad'\n", "pages.client_ip_header"},
		{"pages:\n  bogus: 1\n", "pages.bogus (line 2): unknown key"},
	} {
		_, err := Parse([]byte(tc.yaml), vars(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// Read-only: secrets may be missing (consentsync subject, links fails later, naming the key).
	if _, err := ParseWith([]byte("pages:\n  public_url: https://x.fr\n  keys: [{id: k1, secret: \"${MISSING}\"}]\n"), vars(nil),
		Options{AllowMissingSecrets: true}); err != nil {
		t.Fatalf("read-only: %v", err)
	}
}
