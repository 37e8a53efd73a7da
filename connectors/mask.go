package connectors

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// AddressMask is what MaskAddresses puts in place of an email address.
const AddressMask = "<email>"

// addrRE matches an email address as it may appear in a provider's answer:
//
//   - the local part: a dot-atom (RFC 5322 §3.2.3 atext and dots, which
//     also covers percent-encoded text such as "john%2Bnews", but without
//     "/", "=", "&" and "?": legal yet unheard of in real addresses, they
//     delimit URL paths and form values, which would otherwise be masked
//     along with the address they carry), a quoted
//     string ("john doe"), or a quoted string whose quotes are escaped as
//     inside a JSON string (\"john doe\"); letters and digits of any script
//     are accepted too (RFC 6531);
//   - the at sign as written, percent-encoded (%40), JSON-escaped (\u0040)
//     or as an HTML character reference (&#64;, &#x40;);
//   - the domain: dot-separated labels of letters, digits and hyphens (any
//     script, so IDNs are covered as well as their punycode), or an address
//     literal in brackets ([192.0.2.1], [IPv6:...]).
//
// It is deliberately generous: masking something that is not an address
// costs a little readability, leaving an address in a log costs privacy.
var addrRE = regexp.MustCompile(
	`(?:` +
		`"(?:[^"\\\r\n]|\\.)*"` + // quoted local part
		`|\\"(?:[^"\\\r\n]|\\[^"])*\\"` + // quoted local part inside a JSON string
		`|[\p{L}\p{N}!#$%'*+^_` + "`" + `{|}~.-]+` + // dot-atom (and percent-encoded) local part
		`)` +
		`(?:@|%40|\\u0040|&#64;|&#[xX]40;)` +
		`(?:` +
		`\[[^\]\s]{1,64}\]` + // address literal
		`|[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?)*` +
		`)`)

// PhoneMask is what MaskAddresses puts in place of a phone number.
const PhoneMask = "<phone>"

// phoneRE matches a phone number in E.164 form (ITU-T Recommendation
// E.164: "+", then up to 15 digits) as paths and answers carry it: "+" (or
// its percent-encoding "%2B") and at least 7 digits
// ("/v3/contacts/+33612345678"); no upper bound, so a longer run of
// digits is masked too rather than cut.
var phoneRE = regexp.MustCompile(`(?:\+|%2[bB])[0-9]{7,}`)

// HashMask is what MaskAddresses puts in place of a Mailchimp subscriber
// hash.
const HashMask = "<subscriber_hash>"

// memberHashRE matches a Mailchimp member path's subscriber hash, the MD5
// of the lower-cased address ("/members/{subscriber_hash}",
// https://mailchimp.com/developer/marketing/docs/methods-parameters/#path-parameters):
// an unsalted hash of an address is a pseudonym anyone can recompute from a
// list of addresses, so personal data too (GDPR recital 26).
var memberHashRE = regexp.MustCompile(`(/members/)[0-9a-fA-F]{32}\b`)

// MaskAddresses returns s with every email address replaced by AddressMask
// ("refused j.doe@example.com" → "refused <email>"), whichever way it is
// written: plain, with a quoted local part, percent-encoded
// ("j.doe%40example.com") or escaped inside JSON, and every E.164 phone
// number ("+33612345678", "%2B33612345678") by PhoneMask, and every
// Mailchimp subscriber hash in a member path by HashMask. Provider answers
// and request paths quoted in errors, logs, last_error and receipts go
// through it (see Redact), so that they carry no personal data.
func MaskAddresses(s string) string {
	s = phoneRE.ReplaceAllLiteralString(addrRE.ReplaceAllLiteralString(s, AddressMask), PhoneMask)
	return memberHashRE.ReplaceAllString(s, "${1}"+HashMask)
}

// MaskEmail shows an email address for an operator without disclosing it:
// the first character of the local part and of the domain, then "***", and
// the top-level domain when it is plain ASCII of up to 10 characters
// ("jane.doe@example.com" → "j***@e***.com"). Enough to
// tell two rows apart, not to recover the address. Anything without an "@"
// is "***".
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "***"
	}
	local, domain := addr[:at], addr[at+1:]
	tld := ""
	if dot := strings.LastIndexByte(domain, '.'); dot > 0 && dot < len(domain)-1 && len(domain)-dot <= 11 && strings.Trim(domain[dot+1:], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == "" {
		tld = domain[dot:] // a top-level domain, up to 10 ASCII letters, digits, hyphens
	}
	return firstRune(local) + "***@" + firstRune(domain) + "***" + tld
}

// MaskPhone shows a phone number (E.164, "+33612345678") as its first
// three and last two characters with the digits between them hidden
// ("+33*******78"); a number of fewer than eight characters is "***".
func MaskPhone(p string) string {
	if utf8.RuneCountInString(p) < 8 {
		return "***"
	}
	r := []rune(p)
	return string(r[:3]) + strings.Repeat("*", len(r)-5) + string(r[len(r)-2:])
}

func firstRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return "*"
	}
	return string(r)
}
