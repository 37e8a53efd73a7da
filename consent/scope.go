package consent

import "slices"

// ExpandScope turns a withdrawal that covers every brand (sig.Scope ==
// ScopeAllBrands) into one withdrawal per brand: the brands of the list and
// the signal's own brand, sorted and without duplicates or empty names.
// Each copy keeps the signal's channel, purpose, status, time, source,
// evidence, subject and Scope, with its own Brand — so each has its own
// FactKey (the key includes the brand) and its own ledger row. Grants,
// pending requests and brand-scoped signals (empty Scope or ScopeBrand) are
// returned unchanged, alone: a consent is given per brand (criterion
// specific), only an objection may cover them all. The result never
// aliases brands; evidence pointers are shared (they are read-only).
//
// Source: GDPR art. 7(3) (withdrawing must be as easy as giving); CNIL
// sanction against CALOGA (2025): a person could not unsubscribe from all
// of the company's brand databases at once; docs/rules.md ("Withdrawal").
func ExpandScope(sig Signal, brands []string) []Signal {
	if sig.Status != StatusWithdrawn || sig.Scope != ScopeAllBrands {
		return []Signal{sig}
	}
	all := make([]string, 0, len(brands)+1)
	for _, b := range brands {
		if b != "" {
			all = append(all, b)
		}
	}
	if sig.Brand != "" {
		all = append(all, sig.Brand)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	out := make([]Signal, len(all))
	for i, b := range all {
		s := sig
		s.Brand = b
		if len(sig.Problems) > 0 {
			s.Problems = slices.Clone(sig.Problems)
		}
		out[i] = s
	}
	return out
}
