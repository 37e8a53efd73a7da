package consent

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

// grant returns a valid granted signal for a@b.fr at t.
func grant(at time.Time) Signal {
	return Signal{
		Subject: Subject{Email: "a@b.fr"}, Channel: ChannelEmail, Brand: "acme", Purpose: PurposeMarketing,
		Status: StatusGranted, OccurredAt: at, Source: "signup-form",
	}
}

func with(s Signal, status Status, problems ...string) Signal {
	s.Status = status
	s.Problems = problems
	return s
}

func TestSignalValidate(t *testing.T) {
	ok := grant(t0)
	for _, tc := range []struct {
		name   string
		mutate func(*Signal)
		want   error
	}{
		{"valid grant", func(*Signal) {}, nil},
		{"valid withdrawal", func(s *Signal) { s.Status = StatusWithdrawn }, nil},
		{"valid pending", func(s *Signal) { s.Status = StatusPending }, nil},
		{"phone subject", func(s *Signal) { s.Subject = Subject{Phone: "+33612345678"} }, nil},
		{"external id subject", func(s *Signal) { s.Subject = Subject{ExternalID: "hubspot:contact:1"} }, nil},
		{"with problems it is still storable", func(s *Signal) { s.Problems = []string{"ambiguous checkbox"} }, nil},
		{"every channel", func(s *Signal) { s.Channel = ChannelPost }, nil},
		{"every purpose", func(s *Signal) { s.Purpose = PurposeSaleSharing }, nil},
		{"no subject", func(s *Signal) { s.Subject = Subject{} }, ErrNoSubject},
		{"only an original spelling", func(s *Signal) { s.Subject = Subject{EmailOriginal: "A@B.fr"} }, ErrNoSubject},
		{"no time", func(s *Signal) { s.OccurredAt = time.Time{} }, ErrNoTime},
		{"no channel", func(s *Signal) { s.Channel = "" }, ErrBadSignal},
		{"bad channel", func(s *Signal) { s.Channel = "fax" }, ErrBadSignal},
		{"channel case", func(s *Signal) { s.Channel = "Email" }, ErrBadSignal},
		{"no purpose", func(s *Signal) { s.Purpose = "" }, ErrBadSignal},
		{"bad purpose", func(s *Signal) { s.Purpose = "ads" }, ErrBadSignal},
		{"no status", func(s *Signal) { s.Status = "" }, ErrBadSignal},
		{"bad status", func(s *Signal) { s.Status = "revoked" }, ErrBadSignal},
		{"no brand", func(s *Signal) { s.Brand = "" }, ErrBadSignal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mutate(&s)
			err := s.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignalValid(t *testing.T) {
	for _, tc := range []struct {
		s    Signal
		want bool
	}{
		{with(grant(t0), StatusGranted), true},
		{with(grant(t0), StatusGranted, "ambiguous checkbox"), false},
		{with(grant(t0), StatusPending), true},
		{with(grant(t0), StatusPending, "pre-ticked"), false},
		{with(grant(t0), StatusWithdrawn), true},
		{with(grant(t0), StatusWithdrawn, "whatever"), true}, // a withdrawal always applies (GDPR art. 7(3))
	} {
		if got := tc.s.Valid(); got != tc.want {
			t.Errorf("%s with problems %q: Valid() = %v", tc.s.Status, tc.s.Problems, got)
		}
	}
}

func TestSubjectKey(t *testing.T) {
	for _, tc := range []struct {
		s    Subject
		want string
	}{
		{Subject{Email: "a@b.fr", Phone: "+33612345678", ExternalID: "x:1"}, "a@b.fr"},
		{Subject{Phone: "+33612345678", ExternalID: "x:1"}, "+33612345678"},
		{Subject{ExternalID: "x:1"}, "x:1"},
		{Subject{EmailOriginal: "A@B.fr"}, ""},
		{Subject{}, ""},
	} {
		if got := tc.s.Key(); got != tc.want {
			t.Errorf("%+v.Key() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestParseChannelPurpose(t *testing.T) {
	for _, c := range []string{"email", "sms", "phone", "post"} {
		if got, err := ParseChannel(c); err != nil || string(got) != c {
			t.Errorf("ParseChannel(%q) = %q, %v", c, got, err)
		}
	}
	for _, p := range []string{"marketing", "partners", "cookies", "sale_sharing", "cookies:analytics", "cookies:iab.1", "cookies:ad-perso_2",
		"cookies:" + strings.Repeat("a", MaxCookiePurposeName)} {
		if got, err := ParsePurpose(p); err != nil || string(got) != p {
			t.Errorf("ParsePurpose(%q) = %q, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "Email", " email", "fax", "marketing"} {
		if _, err := ParseChannel(bad); err == nil {
			t.Errorf("ParseChannel(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "Marketing", "email", "sale-sharing", "cookies:", "cookies:Analytics", "cookies:a b", "cookies:a:b",
		"cookies:é", "cookies:a\x00", "Cookies:analytics", "cookies:" + strings.Repeat("a", MaxCookiePurposeName+1), "marketing:x"} {
		if _, err := ParsePurpose(bad); !errors.Is(err, ErrBadPurpose) {
			t.Errorf("ParsePurpose(%q) = %v, want ErrBadPurpose", bad, err)
		}
	}
	for p, want := range map[Purpose]bool{"cookies": true, "cookies:analytics": true, "marketing": false, "sale_sharing": false, "cookiesx": false} {
		if p.IsCookies() != want {
			t.Errorf("%q.IsCookies() = %v", p, !want)
		}
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"Mozilla/5.0", 100, "Mozilla/5.0"},
		{"a\x00b\x00", 100, "ab"},
		{"a\xffb", 100, "a\uFFFDb"},
		{"a\xff\xfeb", 100, "a\uFFFDb"},
		{"abcdef", 3, "abc"},
		{"éé", 3, "é"}, // never cut inside a rune
		{"€", 2, ""},
		{"", 10, ""},
		{"abc", 0, ""},
	} {
		if got := CleanText(tc.in, tc.max); got != tc.want {
			t.Errorf("CleanText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

// dirty is what a sender may put in any string: a NUL, invalid UTF-8 and
// more bytes than the ledger keeps.
var dirty = "x\x00\xff" + strings.Repeat("é", 3000)

func clean(s string, max int) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0) && len(s) <= max
}

// Every string field of Evidence is cleaned, including fields added later.
func TestEvidenceCleanCoversEveryField(t *testing.T) {
	var e Evidence
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		if v.Field(i).Kind() == reflect.String {
			v.Field(i).SetString(dirty)
		}
	}
	pre := true
	at := t0
	e.PreTicked, e.ConfirmedAt = &pre, &at
	c := reflect.ValueOf(e.Clean())
	for i := range c.NumField() {
		f := c.Field(i)
		if f.Kind() == reflect.String && !clean(f.String(), 2048) {
			t.Errorf("Evidence.Clean left %s dirty (%d bytes)", c.Type().Field(i).Name, f.Len())
		}
	}
	if got := e.Clean(); got.PreTicked != &pre || got.ConfirmedAt != &at {
		t.Error("Clean changed the pointers")
	}
	if e.UserAgent != dirty {
		t.Error("Clean changed its receiver")
	}
}

func TestSignalClean(t *testing.T) {
	s := grant(t0)
	s.Brand, s.Source = dirty, dirty
	s.Problems = []string{dirty, "ok"}
	s.Evidence.UserAgent = dirty
	c := s.Clean()
	if !clean(c.Brand, 200) || !clean(c.Source, 200) || !clean(c.Problems[0], 500) || c.Problems[1] != "ok" ||
		!clean(c.Evidence.UserAgent, 2048) {
		t.Errorf("Clean left dirty strings: %+v", c)
	}
	if s.Problems[0] != dirty || s.Brand != dirty {
		t.Error("Clean changed the original signal")
	}
	if c.Subject != s.Subject || !c.OccurredAt.Equal(s.OccurredAt) || c.Status != s.Status {
		t.Error("Clean changed what it does not clean")
	}
	if got := grant(t0).Clean(); got.Problems != nil {
		t.Errorf("Clean made nil problems %#v", got.Problems)
	}
}
