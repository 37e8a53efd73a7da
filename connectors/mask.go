package connectors

import "regexp"

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

// MaskAddresses returns s with every email address replaced by AddressMask
// ("refused j.doe@example.com" → "refused <email>"), whichever way it is
// written: plain, with a quoted local part, percent-encoded
// ("j.doe%40example.com") or escaped inside JSON. Provider answers quoted in
// errors, logs, last_error and receipts go through it (see Redact), so that
// they carry no personal data.
func MaskAddresses(s string) string {
	return addrRE.ReplaceAllLiteralString(s, AddressMask)
}
