package cli

import (
	"testing"
	"time"
)

func TestAgeAndOneLine(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-1: "-", 0: "0s", 59 * time.Second: "59s", 61 * time.Second: "1m1s", 3*time.Hour + 4*time.Minute + 5*time.Second: "3h4m",
		49 * time.Hour: "2d1h", 400 * 24 * time.Hour: "400d0h",
	} {
		if got := Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
	for in, want := range map[string]string{
		"a\nb\t c": "a b c", "": "", "ééééééééééé": "ééééééééé…", "0123456789": "0123456789",
	} {
		if got := oneLine(in, 10); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
