package consent

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestNormalizeEmail(t *testing.T) {
	// "Élodie@Exämple.FR" composed (NFC) and decomposed (NFD).
	const nfc = "\u00c9lodie@Ex\u00e4mple.FR"
	const nfd = "E\u0301lodie@Exa\u0308mple.FR"
	if nfc == nfd || norm.NFC.String(nfd) != nfc {
		t.Fatal("test strings are not NFC/NFD of each other")
	}
	for _, tc := range []struct {
		in, want, orig string
	}{
		{"a@b.fr", "a@b.fr", "a@b.fr"},
		{"Jean.Dupont@Example.COM", "jean.dupont@example.com", "Jean.Dupont@Example.COM"},
		{"  a@b.fr  ", "a@b.fr", "a@b.fr"},
		{"\ta@b.fr\r\n", "a@b.fr", "a@b.fr"},
		{"\u00a0a@b.fr\u00a0", "a@b.fr", "a@b.fr"},                                 // NBSP
		{"\u2003a@b.fr\u3000", "a@b.fr", "a@b.fr"},                                 // em space, ideographic space
		{"\ufeffa@b.fr", "a@b.fr", "a@b.fr"},                                       // byte order mark from a CSV export
		{"mailto:A@B.fr", "a@b.fr", "A@B.fr"},                                      // mailto:
		{"MailTo: a@b.fr", "a@b.fr", "a@b.fr"},                                     // any case, space after
		{"Jean Dupont <Jean@Example.com>", "jean@example.com", "Jean@Example.com"}, // display name
		{`"Dupont, Jean" <jean@b.fr>`, "jean@b.fr", "jean@b.fr"},
		{"<a@b.fr>", "a@b.fr", "a@b.fr"},
		{"< a@b.fr >", "a@b.fr", "a@b.fr"},
		{"<mailto:a@b.fr>", "a@b.fr", "a@b.fr"},                            // List-Unsubscribe style
		{"mailto:Name <a@b.fr>", "a@b.fr", "a@b.fr"},                       // both
		{"mailto:mailto:a@b.fr", "a@b.fr", "a@b.fr"},                       // repeated prefix
		{"A <b> <a@b.fr>", "a@b.fr", "a@b.fr"},                             // the last <...> is the address
		{"user+tag@Gmail.com", "user+tag@gmail.com", "user+tag@Gmail.com"}, // aliases kept here (MailboxKey folds them)
		{"a@b.fr.", "a@b.fr", "a@b.fr."},                                   // root dot
		{"a@localhost", "a@localhost", "a@localhost"},
		{`"a@b"@c.fr`, `"a@b"@c.fr`, `"a@b"@c.fr`}, // quoted local part may hold @
		{nfc, "\u00e9lodie@xn--exmple-cua.fr", nfc},
		{nfd, "\u00e9lodie@xn--exmple-cua.fr", nfc}, // same as NFC input, original composed
		{"élodie@exämple.fr", "élodie@xn--exmple-cua.fr", "élodie@exämple.fr"},
		{"a@XN--EXMPLE-CUA.FR", "a@xn--exmple-cua.fr", "a@XN--EXMPLE-CUA.FR"},
		{"a@faß.de", "a@xn--fa-hia.de", "a@faß.de"},      // IDNA2008: ß kept, not mapped to ss
		{"a@ｅｘａｍｐｌｅ.fr", "a@example.fr", "a@ｅｘａｍｐｌｅ.fr"}, // full-width letters mapped (UTS #46)
		{"ÇA@B.FR", "ça@b.fr", "ÇA@B.FR"},
		{strings.Repeat("a", 243) + "@example.fr", strings.Repeat("a", 243) + "@example.fr", strings.Repeat("a", 243) + "@example.fr"}, // 254 octets
	} {
		got, orig, err := NormalizeEmail(tc.in)
		if err != nil {
			t.Errorf("NormalizeEmail(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want || orig != tc.orig {
			t.Errorf("NormalizeEmail(%q) = %q, %q; want %q, %q", tc.in, got, orig, tc.want, tc.orig)
		}
		if again, _, err := NormalizeEmail(got); err != nil || again != got {
			t.Errorf("NormalizeEmail(%q) = %q, %v: not idempotent", got, again, err)
		}
	}
}

func TestNormalizeEmailInvalid(t *testing.T) {
	for _, in := range []string{
		"", "   ", "\u00a0", "mailto:", "<>", "mailto:<>", "Jean Dupont", "ab.fr",
		"@x.fr", "a@", "a@b@c.fr", "a@@b.fr", `a"@b"@c.fr`,
		"a b@c.fr", "a@b c.fr", "a\t@b.fr", "a\u00a0b@c.fr", `"a b"@c.fr`,
		"a\x00@b.fr", "a@b.fr\x00", "\x00", "a\x01@b.fr", "a\x7f@b.fr", "a\u0085@b.fr", "a\u009f@b.fr",
		"a\u200b@b.fr", "a@b\u200b.fr", "a@b.fr\u00ad", "a\u202e@b.fr", // invisible format characters
		"\xff@b.fr", "a@\xc3.fr", "a\xc3\x28@b.fr", "\xed\xa0\x80@b.fr", // invalid UTF-8, surrogate
		"<a@b.fr", "a@b.fr>", "a<b@c.fr", "Name <a@b.fr> x",
		"a@b", "a@.fr", "a@b..fr", "a@b.fr..", "a@.", "a@..", "a@-b.fr", "a@b_c.fr", "a@[192.0.2.1]", "a@xn--zz.fr",
		strings.Repeat("a", 244) + "@example.fr", // 255 octets
		strings.Repeat("a", 64) + "@" + strings.Repeat("b.", 100) + "fr",
		"é" + strings.Repeat("a", 242) + "@example.fr", // 254 characters, 255 octets
	} {
		got, orig, err := NormalizeEmail(in)
		if err == nil {
			t.Errorf("NormalizeEmail(%q) = %q, %q; want an error", in, got, orig)
			continue
		}
		if !errors.Is(err, ErrBadEmail) {
			t.Errorf("NormalizeEmail(%q): error %v does not wrap ErrBadEmail", in, err)
		}
		if got != "" || orig != "" {
			t.Errorf("NormalizeEmail(%q) returned %q, %q with an error", in, got, orig)
		}
		if strings.Contains(err.Error(), in) && len(in) > 3 {
			t.Errorf("NormalizeEmail(%q): the error repeats the address: %v", in, err)
		}
	}
}

func TestMailboxKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"jean.dupont@gmail.com", "jeandupont@gmail.com"},
		{"j.e.a.n.dupont+news@gmail.com", "jeandupont@gmail.com"},
		{"jeandupont+a+b@gmail.com", "jeandupont@gmail.com"},
		{"jean.dupont@googlemail.com", "jeandupont@gmail.com"},
		{"jeandupont@gmail.com", "jeandupont@gmail.com"},
		{"jean.dupont+news@example.com", "jean.dupont+news@example.com"},
		{"jean.dupont@gmail.com.evil.fr", "jean.dupont@gmail.com.evil.fr"},
		{"jean.dupont@notgmail.com", "jean.dupont@notgmail.com"},
		{"jean.dupont@mail.gmail.com", "jean.dupont@mail.gmail.com"},
		{"jean.dupont@outlook.fr", "jean.dupont@outlook.fr"},
		{"no-at-sign", "no-at-sign"},
		{"", ""},
	} {
		if got := MailboxKey(tc.in); got != tc.want {
			t.Errorf("MailboxKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Every Gmail alias of one mailbox has one key; the key is its own key.
	k := MailboxKey("jeandupont@gmail.com")
	for _, alias := range []string{"Jean.Dupont@Gmail.com", "jean.dupont+x@googlemail.com", "j.eandupont+@gmail.com"} {
		n, _, err := NormalizeEmail(alias)
		if err != nil {
			t.Fatal(err)
		}
		if got := MailboxKey(n); got != k {
			t.Errorf("MailboxKey(%q) = %q, want %q", n, got, k)
		}
	}
	if MailboxKey(k) != k {
		t.Errorf("MailboxKey is not idempotent on %q", k)
	}
}

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct{ in, region, want string }{
		{"06 12 34 56 78", "FR", "+33612345678"},
		{"0612345678", "FR", "+33612345678"},
		{"06.12.34.56.78", "FR", "+33612345678"},
		{"06-12-34-56-78", "fr", "+33612345678"}, // region case does not matter
		{"+33 6 12 34 56 78", "FR", "+33612345678"},
		{"+33 6 12 34 56 78", "US", "+33612345678"}, // international form ignores the region
		{"+33 (0)6 12 34 56 78", "FR", "+33612345678"},
		{"0033 6 12 34 56 78", "FR", "+33612345678"}, // French international prefix
		{"  +33612345678  ", "", "+33612345678"},
		{"01 23 45 67 89", "FR", "+33123456789"},
		{"(415) 555-2671", "US", "+14155552671"},
		{"+1 415 555 2671", "FR", "+14155552671"},
		{"0470 12 34 56", "BE", "+32470123456"},
	} {
		got, err := NormalizePhone(tc.in, tc.region)
		if err != nil || got != tc.want {
			t.Errorf("NormalizePhone(%q, %q) = %q, %v; want %q", tc.in, tc.region, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, region string }{
		{"", "FR"}, {"   ", "FR"}, {"abc", "FR"}, {"not a number", "FR"}, {"+", "FR"}, {"12", "FR"},
		{"06 12", "FR"}, {"06 12 34 56 78 90 12 34", "FR"}, {"0612345678", ""}, {"0612345678", "ZZ"},
		{strings.Repeat("1", 65), "FR"},
		{"\x00\x01", "FR"}, {"0000000", "AX"}, // possible, but its E.164 form reads back as another number
		{"\xff\xfe", "FR"}, {"+999 123 456", "FR"},
	} {
		got, err := NormalizePhone(tc.in, tc.region)
		if err == nil {
			t.Errorf("NormalizePhone(%q, %q) = %q; want an error", tc.in, tc.region, got)
			continue
		}
		if !errors.Is(err, ErrBadPhone) {
			t.Errorf("NormalizePhone(%q, %q): %v does not wrap ErrBadPhone", tc.in, tc.region, err)
		}
	}
}

func TestNormalizeSubject(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Subject
		want Subject
		err  error
	}{
		{"email and phone", Subject{Email: " Jean@Example.COM ", Phone: "06 12 34 56 78", ExternalID: "hubspot:contact:1"},
			Subject{Email: "jean@example.com", EmailOriginal: "Jean@Example.COM", Phone: "+33612345678", ExternalID: "hubspot:contact:1"}, nil},
		{"email only", Subject{Email: "mailto:A@B.fr"}, Subject{Email: "a@b.fr", EmailOriginal: "A@B.fr"}, nil},
		{"original spelling kept when given", Subject{Email: "a@b.fr", EmailOriginal: " A@B.FR "},
			Subject{Email: "a@b.fr", EmailOriginal: "A@B.FR"}, nil},
		{"phone only", Subject{Phone: "+33 6 12 34 56 78"}, Subject{Phone: "+33612345678"}, nil},
		{"external id only", Subject{ExternalID: "hubspot:contact:501"}, Subject{ExternalID: "hubspot:contact:501"}, nil},
		{"bad phone beside a good email is dropped", Subject{Email: "a@b.fr", Phone: "garbage"},
			Subject{Email: "a@b.fr", EmailOriginal: "a@b.fr"}, nil},
		{"bad phone alone", Subject{Phone: "garbage"}, Subject{}, ErrBadPhone},
		{"bad phone with an external id", Subject{Phone: "garbage", ExternalID: "x:1"}, Subject{}, ErrBadPhone},
		{"bad email", Subject{Email: "not-an-address", Phone: "0612345678"}, Subject{}, ErrBadEmail},
		{"nothing", Subject{}, Subject{}, ErrNoSubject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeSubject(tc.in, "FR")
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if got != (Subject{}) {
					t.Errorf("got %+v with an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"a@b.fr", " Jean Dupont <Jean.Dupont+x@Gmail.com> ", "mailto:a@b.fr", "<mailto:a@b.fr>", "élodie@exämple.fr",
		"E\u0301lodie@Exa\u0308mple.FR", `"a@b"@c.fr`, "a@b.fr.", "a@\xff", "\x00", "a@xn--exmple-cua.fr", "İ@b.fr",
		"ẞ@b.fr", "a@b..fr", "mailto:mailto:a@b", "<<a@b>>", "\ufeffa@b.fr", strings.Repeat("a", 243) + "@example.fr",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, orig, err := NormalizeEmail(in)
		if err != nil {
			if !errors.Is(err, ErrBadEmail) || n != "" || orig != "" {
				t.Fatalf("NormalizeEmail(%q) = %q, %q, %v", in, n, orig, err)
			}
			return
		}
		if len(n) > 254 || !utf8.ValidString(n) || !utf8.ValidString(orig) {
			t.Fatalf("NormalizeEmail(%q) = %q: too long or not UTF-8", in, n)
		}
		if strings.ToLower(n) != n {
			t.Fatalf("NormalizeEmail(%q) = %q: not lower-case", in, n)
		}
		if !norm.NFC.IsNormalString(n) {
			t.Fatalf("NormalizeEmail(%q) = %q: not NFC", in, n)
		}
		if strings.Count(n, "@") < 1 || strings.HasPrefix(n, "@") || strings.HasSuffix(n, "@") {
			t.Fatalf("NormalizeEmail(%q) = %q: not local@domain", in, n)
		}
		if again, o2, err := NormalizeEmail(n); err != nil || again != n || o2 != n {
			t.Fatalf("NormalizeEmail(%q) = %q; again: %q, %q, %v", in, n, again, o2, err)
		}
		if fromOrig, o2, err := NormalizeEmail(orig); err != nil || fromOrig != n || o2 != orig {
			t.Fatalf("NormalizeEmail(%q) = %q, original %q; from the original: %q, %q, %v", in, n, orig, fromOrig, o2, err)
		}
		if k := MailboxKey(n); MailboxKey(k) != k {
			t.Fatalf("MailboxKey(%q) = %q is not a fixed point", n, k)
		}
	})
}

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"06 12 34 56 78", "+33 6 12 34 56 78", "0033612345678", "(415) 555-2671", "abc", "+", "+0", "\x00"} {
		f.Add(s, "FR")
	}
	f.Add("0470 12 34 56", "be")
	f.Add("123", "")
	f.Fuzz(func(t *testing.T, in, region string) {
		p, err := NormalizePhone(in, region)
		if err != nil {
			if !errors.Is(err, ErrBadPhone) || p != "" {
				t.Fatalf("NormalizePhone(%q, %q) = %q, %v", in, region, p, err)
			}
			return
		}
		if !strings.HasPrefix(p, "+") || len(p) > 16 || strings.Trim(p[1:], "0123456789") != "" {
			t.Fatalf("NormalizePhone(%q, %q) = %q: not E.164", in, region, p)
		}
		if again, err := NormalizePhone(p, "ZZ"); err != nil || again != p {
			t.Fatalf("NormalizePhone(%q) = %q, %v: not idempotent", p, again, err)
		}
	})
}
