package connectors

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMaskAddresses(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"no address here", "no address here"},
		{"j.doe@example.com", "<email>"},
		{"refused j.doe@example.com: invalid", "refused <email>: invalid"},
		{`{"email_address":"Jane.Doe+news@Example.co.uk","error":"x"}`, `{"email_address":"<email>","error":"x"}`},
		{"<john@example.com>, mary@example.org.", "<<email>>, <email>."},
		{"mailto:john@example.com", "mailto:<email>"},
		{`"john doe"@example.com is not valid`, "<email> is not valid"},
		{`{"detail":"\"john doe\"@example.com is not valid"}`, `{"detail":"<email> is not valid"}`},
		{"/lists/1/members/john.doe%40example.com?x=1", "/lists/1/members/<email>?x=1"},
		{"email=john%2Bnews%40example.com&x=1", "email=<email>&x=1"},
		{`"john\u0040example.com"`, `"<email>"`},
		{"john&#64;example.com / john&#x40;example.com", "<email> / <email>"},
		{"root@[192.0.2.1] root@localhost", "<email> <email>"},
		{"josé@exämple.fr", "<email>"},
		{"a@b@c.com", "<email>@c.com"},
		{"user@ trailing", "user@ trailing"},
		{"@example.com and 50% off", "@example.com and 50% off"},
		{"HTTP 400: Member Exists (a@x.io, b@y.io)", "HTTP 400: Member Exists (<email>, <email>)"},
		{"GET /v3/contacts/+33612345678: HTTP 500", "GET /v3/contacts/<phone>: HTTP 500"},
		{"/v3/contacts/%2B33612345678?identifierType=phone_id", "/v3/contacts/<phone>?identifierType=phone_id"},
		{"+447700900123456789 and +1 555", "<phone> and +1 555"},
		{"+12345678@example.com", "<email>"},
		{"2024-01-02T03:04:05+0100, 1+1, HTTP 429", "2024-01-02T03:04:05+0100, 1+1, HTTP 429"},
		{"mailchimp: GET /3.0/lists/a6b5da1054/members/62eeb292278cc15f5817cb78f7790b08?fields=status: HTTP 503",
			"mailchimp: GET /3.0/lists/a6b5da1054/members/<subscriber_hash>?fields=status: HTTP 503"},
		{"/members/62EEB292278CC15F5817CB78F7790B08/notes", "/members/<subscriber_hash>/notes"},
		{"/members/62eeb292278cc15f5817cb78f7790b0 trace 62eeb292278cc15f5817cb78f7790b08", "/members/62eeb292278cc15f5817cb78f7790b0 trace 62eeb292278cc15f5817cb78f7790b08"},
		{"/members/62eeb292278cc15f5817cb78f7790b08ff", "/members/62eeb292278cc15f5817cb78f7790b08ff"},
	}
	for _, tt := range tests {
		if got := MaskAddresses(tt.in); got != tt.want {
			t.Errorf("MaskAddresses(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactMasksAddresses(t *testing.T) {
	t.Parallel()
	body := `{"errors":[{"message":"` + strings.Repeat("x", ReceiptMax-20) + ` john.doe@example.com KEY-123"}]}`
	got := Redact(body, "KEY-123")
	if strings.Contains(got, "john") || strings.Contains(got, "KEY-123") || len(got) > ReceiptMax {
		t.Errorf("Redact = %q", got)
	}
	r := &Response{Body: []byte("HTTP 400: jane@example.com is invalid")}
	if got := r.Snippet(""); got != "HTTP 400: <email> is invalid" {
		t.Errorf("Snippet = %q", got)
	}
}

func FuzzMaskAddresses(f *testing.F) {
	for _, s := range []string{
		"j.doe@example.com", `"john doe"@example.com`, `\"a b\"@x.org`, "a%40b.com",
		"x\\u0040y.z", "a&#64;b.c", "root@[::1]", "a@b@c", `"a"@b"@c`, "josé@exämple.fr",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := MaskAddresses(s)
		for _, addr := range addrRE.FindAllString(s, -1) {
			if strings.Contains(got, addr) {
				t.Fatalf("MaskAddresses(%q) = %q still contains %q", s, got, addr)
			}
		}
		// Masked text masked again (a receipt, then the log line quoting
		// it) reveals nothing: masks next to quotes may merge into one
		// new match ("\"<email><email>\"@x" is a quoted local part), but
		// what got held is never shown again and a mask stays.
		again := MaskAddresses(got)
		for _, addr := range addrRE.FindAllString(got, -1) {
			if strings.Contains(again, addr) {
				t.Fatalf("masking %q twice left %q", got, addr)
			}
		}
		if strings.Contains(got, AddressMask) && !strings.Contains(again, AddressMask) {
			t.Fatalf("masking %q twice lost every mask: %q", got, again)
		}
	})
}

func TestMaskEmailAndPhone(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"jane.doe@example.com": "j***@e***.com", "j@x.io": "j***@x***.io", "josé@exämple.fr": "j***@e***.fr",
		"Émile@mail.example.co.uk": "É***@m***.uk", "a@localhost": "a***@l***", "a@b.": "a***@b***",
		"": "***", "no-at-sign": "***", "@example.com": "***", "jane@": "***", "a@b@c.org": "a***@c***.org",
		"\xff@\xfe.com": "****@****.com",
	} {
		if got := MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"+33612345678": "+33*******78", "+4915112345678": "+49*********78", "+1234": "***", "": "***", "+123456": "***", "+1234567": "+12***67",
	} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzMaskEmail: the masked form never holds the local part or the
// domain's name (when longer than the one character shown), and is valid
// UTF-8.
func FuzzMaskEmail(f *testing.F) {
	for _, s := range []string{"jane.doe@example.com", "a@b", "@", "x@@y.z", "josé@exämple.fr", "\xff@\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := MaskEmail(s)
		if !utf8.ValidString(got) {
			t.Fatalf("MaskEmail(%q) = %q: not UTF-8", s, got)
		}
		at := strings.LastIndexByte(s, '@')
		if at <= 0 {
			return
		}
		// What stands before "***@" is the local part shown: one rune at most.
		if shown, _, ok := strings.Cut(got, "***@"); ok && utf8.RuneCountInString(shown) > 1 {
			t.Fatalf("MaskEmail(%q) = %q shows the local part", s, got)
		}
		// A number of 8 runes or more shows its first three and last two
		// runes only: every rune between them is a star.
		if n := utf8.RuneCountInString(s); n >= 8 {
			p := []rune(MaskPhone(s))
			if len(p) != n || strings.Trim(string(p[3:n-2]), "*") != "" {
				t.Fatalf("MaskPhone(%q) = %q shows more than five runes of the number", s, string(p))
			}
		}
	})
}
