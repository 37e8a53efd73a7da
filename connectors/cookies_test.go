package connectors

import (
	"strings"
	"testing"
)

func TestCookiePurposeOf(t *testing.T) {
	for _, tc := range []struct {
		id     string
		vendor bool
		want   string
	}{
		{"analytics", false, "cookies:analytics"},
		{" Mesure d'audience ", false, "cookies:mesure-d-audience"},
		{"c:matomo-Ab12", true, "cookies:vendor.c-matomo-ab12"},
		{"iab:755", true, "cookies:vendor.iab-755"},
		{"é", false, ""},
		{"---", false, ""},
		{"", true, ""},
		{strings.Repeat("a", 80), true, "cookies:vendor." + strings.Repeat("a", 57)},
	} {
		p, ok := CookiePurposeOf(tc.id, tc.vendor)
		if string(p) != tc.want || ok != (tc.want != "") {
			t.Errorf("CookiePurposeOf(%q, %v) = %q, %v; want %q", tc.id, tc.vendor, p, ok, tc.want)
		}
	}
}
