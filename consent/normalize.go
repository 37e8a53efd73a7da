package consent

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// ErrBadEmail is wrapped by NormalizeEmail for input that is not an address.
var ErrBadEmail = errors.New("invalid email address")

// ErrBadPhone is wrapped by NormalizePhone for input that is not a number.
var ErrBadPhone = errors.New("invalid phone number")

// maxEmailLen is the longest address SMTP can carry (RFC 5321 §4.5.3.1.3,
// errata 1690: 254 octets).
const maxEmailLen = 254

// NormalizeEmail returns the matching form of an address and the spelling to
// keep for provider calls.
//
// The matching form is: surrounding white space (and byte order marks)
// trimmed, a "mailto:" prefix and angle brackets ("Name <a@b>",
// "<mailto:a@b>") removed, Unicode NFC, lower-cased, and the domain converted
// to ASCII with the IDNA Lookup profile (UTS #46, via golang.org/x/net/idna).
// The original is the trimmed, unwrapped input as sent, NFC but with its case
// kept.
//
// It returns an error wrapping ErrBadEmail for empty input, invalid UTF-8,
// control (including invisible format characters such as U+200B) or space
// characters, a missing local part or domain, an empty domain label ("a@.fr",
// "a@b..fr"), or an address over 254 octets.
func NormalizeEmail(raw string) (normalized, original string, err error) {
	s := unwrapEmail(raw)
	if s == "" {
		return "", "", fmt.Errorf("%w: empty", ErrBadEmail)
	}
	if !utf8.ValidString(s) {
		return "", "", fmt.Errorf("%w: not UTF-8", ErrBadEmail)
	}
	for _, r := range s {
		// U+FFFD stands for bytes that were not UTF-8: the address is corrupt.
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '<' || r == '>' || r == utf8.RuneError {
			return "", "", fmt.Errorf("%w: forbidden character %U", ErrBadEmail, r)
		}
	}
	s = norm.NFC.String(s)
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", "", fmt.Errorf("%w: want local@domain", ErrBadEmail)
	}
	local, domain := s[:at], s[at+1:]
	if strings.ContainsRune(local, '@') && !(strings.HasPrefix(local, `"`) && strings.HasSuffix(local, `"`)) {
		return "", "", fmt.Errorf("%w: more than one @", ErrBadEmail)
	}
	asciiDomain, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || asciiDomain == "" || !strings.Contains(asciiDomain, ".") && asciiDomain != "localhost" ||
		slices.Contains(strings.Split(asciiDomain, "."), "") {
		return "", "", fmt.Errorf("%w: bad domain", ErrBadEmail)
	}
	// Lower-casing can leave a string that is no longer NFC: compose again so
	// that normalizing a normalized address gives it back.
	normalized = norm.NFC.String(strings.ToLower(local)) + "@" + strings.ToLower(asciiDomain)
	if len(normalized) > maxEmailLen {
		return "", "", fmt.Errorf("%w: longer than %d octets", ErrBadEmail, maxEmailLen)
	}
	return normalized, s, nil
}

// unwrapEmail trims white space and removes "mailto:" prefixes and angle
// brackets for as long as there are some, so that the result never starts
// with one (normalizing is idempotent).
func unwrapEmail(s string) string {
	for {
		s = strings.TrimFunc(s, isBlank)
		i := strings.LastIndexByte(s, '<')
		switch {
		case len(s) >= 7 && strings.EqualFold(s[:7], "mailto:"):
			s = s[7:]
		case i >= 0 && strings.HasSuffix(s, ">"):
			s = s[i+1 : len(s)-1]
		default:
			return s
		}
	}
}

// isBlank reports white space and the byte order mark some exports put
// before the first field.
func isBlank(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' }

// MailboxKey folds the aliases of one mailbox onto one key, for matching
// suppressions: at gmail.com and googlemail.com dots in the local part are
// ignored and a "+tag" suffix is dropped (Gmail delivers all of them to one
// inbox). Other domains keep their local part, minus nothing. The input must
// already be normalized.
func MailboxKey(normalized string) string {
	at := strings.LastIndexByte(normalized, '@')
	if at < 0 {
		return normalized
	}
	local, domain := normalized[:at], normalized[at+1:]
	if domain != "gmail.com" && domain != "googlemail.com" {
		return normalized
	}
	if i := strings.IndexByte(local, '+'); i >= 0 {
		local = local[:i]
	}
	return strings.ReplaceAll(local, ".", "") + "@gmail.com"
}

// NormalizePhone parses a phone number and formats it as E.164, reading
// national numbers in defaultRegion (ISO 3166-1 alpha-2, e.g. "FR"). It uses
// github.com/nyaruka/phonenumbers (libphonenumber's metadata) and returns an
// error wrapping ErrBadPhone when the number cannot be parsed, is not a
// possible number, or does not read back from its own E.164 form.
func NormalizePhone(raw, defaultRegion string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrBadPhone)
	}
	if len(s) > 64 {
		return "", fmt.Errorf("%w: too long", ErrBadPhone)
	}
	n, err := phonenumbers.Parse(s, strings.ToUpper(defaultRegion))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadPhone, err)
	}
	if !phonenumbers.IsPossibleNumber(n) {
		return "", fmt.Errorf("%w: not a possible number", ErrBadPhone)
	}
	e164 := phonenumbers.Format(n, phonenumbers.E164)
	// Some possible but invalid numbers ("0000000" in AX) do not read back
	// from their own E.164 form: reject them, so that a normalized number
	// always normalizes to itself and matches.
	// The check reads the E.164 form both without a region and in the
	// default region: libphonenumber strips national prefixes per region, so
	// "+61000000" read in CC loses a digit.
	for _, region := range []string{"ZZ", strings.ToUpper(defaultRegion)} {
		if m, err := phonenumbers.Parse(e164, region); err != nil || phonenumbers.Format(m, phonenumbers.E164) != e164 {
			return "", fmt.Errorf("%w: not a stable number", ErrBadPhone)
		}
	}
	return e164, nil
}

// NormalizeSubject normalizes the identifiers of s in place: the email with
// NormalizeEmail (keeping the original spelling) and the phone with
// NormalizePhone. A subject with only an ExternalID is left as is.
func NormalizeSubject(s Subject, defaultRegion string) (Subject, error) {
	out := Subject{ExternalID: s.ExternalID}
	if s.Email != "" {
		n, orig, err := NormalizeEmail(s.Email)
		if err != nil {
			return Subject{}, err
		}
		out.Email, out.EmailOriginal = n, orig
		if s.EmailOriginal != "" {
			out.EmailOriginal = strings.TrimSpace(s.EmailOriginal)
		}
	}
	if s.Phone != "" {
		p, err := NormalizePhone(s.Phone, defaultRegion)
		if err != nil {
			if out.Email == "" {
				return Subject{}, err
			}
			// An unusable phone beside a good email does not lose the signal.
		} else {
			out.Phone = p
		}
	}
	if out.Key() == "" {
		return Subject{}, ErrNoSubject
	}
	return out, nil
}
