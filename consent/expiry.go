package consent

import (
	"cmp"
	"slices"
	"time"
)

// Expiry rules: which permission lapses.
const (
	// ExpiryConsent: a prospect's opt-in (ConsentExpiresAt).
	ExpiryConsent = "consent"
	// ExpiryCustomer: a customer's soft opt-in, or from PhoneOptInFrom the
	// ongoing-contract exception for calls (CustomerExpiresAt).
	ExpiryCustomer = "customer_relationship"
)

// Expiry is one permission that lapses: the permission of Key under Rule
// (ExpiryConsent or ExpiryCustomer), started at Since (the opt-in, or the
// customer date), lapses at ExpiresAt; Expired reports that it already has
// at the time asked about.
type Expiry struct {
	Key       Key       `json:"key"`
	Rule      string    `json:"rule"`
	Since     time.Time `json:"since"`
	ExpiresAt time.Time `json:"expires_at"`
	Expired   bool      `json:"expired"`
}

// Expiries lists every permission of f that lapses at or before
// now+within (within below zero counts as zero), expired ones included
// (ExpiresAt at or before now), sorted by ExpiresAt, then channel, brand,
// purpose and rule:
//
//   - ExpiryConsent: each key whose state is a grant valid under the policy
//     (Quality.Valid(p.StrictQuality)), lapsing at ConsentExpiresAt(grant,
//     LastContact[brand], ttl);
//   - ExpiryCustomer: for each brand the subject is a customer of (a
//     non-zero Facts.CustomerOf), the keys the relationship allows —
//     marketing by email and SMS, and by phone when PhoneNeedsConsent(now)
//     — lapsing at CustomerExpiresAt(since, RelationshipEnd[brand], ttl).
//
// Nothing is listed that no longer matters: an unknown or erased subject
// gives nil; withdrawn keys (the same test as Decide's step 3), pending
// states and grants quality refuses are skipped.
//
// Expiries uses Decide's own helpers, so the two agree: a listed
// permission that has not expired is allowed by Decide at now (on that
// basis or a stronger one), an expired one is not Decide's basis, and every
// consent or soft-opt-in answer whose ExpiresAt falls in the window is
// listed with that ExpiresAt. Source: CNIL référentiel "gestion des
// activités commerciales" (3 years, then re-consent or deletion);
// docs/rules.md ("Expiry").
func Expiries(f Facts, p Policy, now time.Time, within time.Duration) []Expiry {
	if !f.Known || f.Erased {
		return nil
	}
	horizon := now.Add(max(within, 0))
	var out []Expiry
	add := func(k Key, rule string, since, exp time.Time) {
		if exp.After(horizon) {
			return
		}
		if _, withdrawn := WithdrawnAt(f, k, p); withdrawn {
			return
		}
		out = append(out, Expiry{Key: k, Rule: rule, Since: since, ExpiresAt: exp, Expired: !now.Before(exp)})
	}
	for k, st := range f.States {
		if st.Status != StatusGranted || !st.Quality.Valid(p.StrictQuality) {
			continue
		}
		add(k, ExpiryConsent, st.OccurredAt, consentExpiry(f, k, st, p))
	}
	channels := []Channel{ChannelEmail, ChannelSMS}
	if PhoneNeedsConsent(now) {
		channels = append(channels, ChannelPhone)
	}
	for brand := range f.CustomerOf {
		since, exp, ok := customerRelationship(f, brand, p)
		if !ok {
			continue
		}
		for _, ch := range channels {
			add(Key{Channel: ch, Brand: brand, Purpose: PurposeMarketing}, ExpiryCustomer, since, exp)
		}
	}
	slices.SortFunc(out, func(a, b Expiry) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), cmp.Compare(a.Key.Channel, b.Key.Channel),
			cmp.Compare(a.Key.Brand, b.Key.Brand), cmp.Compare(a.Key.Purpose, b.Key.Purpose), cmp.Compare(a.Rule, b.Rule))
	})
	return out
}
