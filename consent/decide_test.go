package consent

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var (
	dcNow   = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	dcTTL   = DefaultConsentTTL
	dcGrant = dcNow.Add(-30 * 24 * time.Hour) // a recent opt-in
	dcBuyer = dcNow.Add(-100 * 24 * time.Hour)
	dcParis = time.FixedZone("CEST", 2*3600)
)

const (
	dcPerson = "jeanne@example.fr"
	dcWorker = "jeanne@acme-corp.fr"
	dcRole   = "contact@acme-corp.fr"
)

func dcKey(ch Channel, p Purpose) Key { return Key{Channel: ch, Brand: "acme", Purpose: p} }

var (
	dcEmail    = dcKey(ChannelEmail, PurposeMarketing)
	dcPartners = dcKey(ChannelEmail, PurposePartners)
)

// Qualities of realistic grants.
var (
	dcGood    = Assess(qrGrant(), QualityContext{})
	dcUnknown = Assess(Signal{Status: StatusGranted, OccurredAt: qrAt, Evidence: Evidence{OptInLevel: "list_setting"}}, QualityContext{})
	dcBad     = Assess(Signal{Status: StatusGranted, OccurredAt: qrAt, Problems: []string{"express: box was pre-ticked"},
		Evidence: Evidence{Checkbox: "on", PreTicked: qrBool(true), WordingVersion: "v1"}}, QualityContext{})
)

func dcFacts(email string) Facts { return Facts{Known: true, Email: email} }

// dcWith returns f with a state for k.
func dcWith(f Facts, k Key, st Status, at time.Time, q Quality) Facts {
	states := make(map[Key]StateFact, len(f.States)+1)
	for kk, v := range f.States {
		states[kk] = v
	}
	states[k] = StateFact{Status: st, OccurredAt: at, Quality: q}
	f.States = states
	return f
}

func dcCustomer(f Facts, brand string, since time.Time) Facts {
	f.CustomerOf = map[string]time.Time{brand: since}
	return f
}

// dcEnd sets the end of the relationship with brand (a last order).
func dcEnd(f Facts, brand string, at time.Time) Facts {
	f.RelationshipEnd = map[string]time.Time{brand: at}
	return f
}

func dcContact(f Facts, brand string, at time.Time) Facts {
	f.LastContact = map[string]time.Time{brand: at}
	return f
}

// dcWant is an expected answer; zero times mean a nil pointer.
type dcWant struct {
	allowed bool
	basis   Basis
	reason  string
	since   time.Time
	expires time.Time
	detail  string // prefix
}

func dcCheck(t *testing.T, got Answer, want dcWant) {
	t.Helper()
	if got.Allowed != want.allowed || got.Basis != want.basis || got.Reason != want.reason {
		t.Errorf("got allowed=%v basis=%s reason=%s, want %v %s %s (detail %q)",
			got.Allowed, got.Basis, got.Reason, want.allowed, want.basis, want.reason, got.Detail)
	}
	dcCheckTime(t, "since", got.Since, want.since)
	dcCheckTime(t, "expires_at", got.ExpiresAt, want.expires)
	if !strings.HasPrefix(got.Detail, want.detail) || want.detail == "" && got.Detail != "" {
		t.Errorf("detail %q, want prefix %q", got.Detail, want.detail)
	}
}

func dcCheckTime(t *testing.T, name string, got *time.Time, want time.Time) {
	t.Helper()
	switch {
	case want.IsZero() && got != nil:
		t.Errorf("%s = %v, want nil", name, *got)
	case !want.IsZero() && got == nil:
		t.Errorf("%s = nil, want %v", name, want)
	case got != nil && !got.Equal(want):
		t.Errorf("%s = %v, want %v", name, *got, want)
	}
}

func dcRefused(reason string, since time.Time) dcWant {
	return dcWant{basis: BasisNone, reason: reason, since: since}
}

func TestDecidePrecedence(t *testing.T) {
	strict := Policy{StrictQuality: true}
	lax := Policy{}
	valid := dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant, dcGood)
	consent := dcWant{allowed: true, basis: BasisConsent, reason: ReasonConsent, since: dcGrant, expires: dcGrant.Add(dcTTL)}
	soft := dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonSoftOptIn, since: dcBuyer, expires: dcBuyer.Add(dcTTL)}
	b2b := dcWant{allowed: true, basis: BasisB2B, reason: ReasonB2B}
	role := dcWant{allowed: true, basis: BasisB2B, reason: ReasonRoleAddress}
	optOut := dcWant{allowed: true, basis: BasisOptOutRegime, reason: ReasonOptOutChannel}
	withdrawnAt := dcNow.Add(-time.Hour)
	erased := valid
	erased.Erased, erased.ErasedAt = true, dcNow.Add(-time.Minute)
	erasedNoTime := valid
	erasedNoTime.Erased = true
	unknown := valid
	unknown.Known = false
	withdrawnEverything := dcWith(dcCustomer(dcFacts(dcRole), "acme", dcBuyer), dcEmail, StatusWithdrawn, withdrawnAt, nil)
	withdrawnEverything.Professional = true
	withdrawnPhone := dcWith(dcFacts(dcPerson), dcKey(ChannelPhone, PurposeMarketing), StatusWithdrawn, withdrawnAt, nil)

	for _, tc := range []struct {
		name string
		f    Facts
		q    Question
		p    Policy
		want dcWant
	}{
		// 1-3: who may never be mailed
		{"unknown subject", unknown, dcEmail, lax, dcRefused(ReasonUnknownSubject, time.Time{})},
		{"zero facts", Facts{}, dcEmail, lax, dcRefused(ReasonUnknownSubject, time.Time{})},
		{"erased beats a valid opt-in", erased, dcEmail, lax, dcRefused(ReasonErased, erased.ErasedAt)},
		{"erased beats the phone's opt-out regime", erased, dcKey(ChannelPhone, PurposeMarketing), lax, dcRefused(ReasonErased, erased.ErasedAt)},
		{"erased without a time", erasedNoTime, dcEmail, lax, dcRefused(ReasonErased, time.Time{})},
		{"withdrawn beats soft opt-in, B2B and role address", withdrawnEverything, dcEmail, lax, dcRefused(ReasonWithdrawn, withdrawnAt)},
		{"withdrawn beats the phone's opt-out regime", withdrawnPhone, dcKey(ChannelPhone, PurposeMarketing), lax, dcRefused(ReasonWithdrawn, withdrawnAt)},
		{"a phone withdrawal does not touch post", withdrawnPhone, dcKey(ChannelPost, PurposeMarketing), lax, optOut},
		{"a withdrawal for another brand does not count",
			dcWith(valid, Key{ChannelEmail, "beta", PurposeMarketing}, StatusWithdrawn, withdrawnAt, nil), dcEmail, lax, consent},
		{"a partners withdrawal does not touch marketing",
			dcWith(valid, dcPartners, StatusWithdrawn, withdrawnAt, nil), dcEmail, lax, consent},

		// 4: opt-out channels
		{"phone, prospect", dcFacts(dcPerson), dcKey(ChannelPhone, PurposeMarketing), lax, optOut},
		{"post, partners", dcFacts(dcPerson), dcKey(ChannelPost, PurposePartners), lax, optOut},
		{"phone, cookies needs consent", dcFacts(dcPerson), dcKey(ChannelPhone, PurposeCookies), lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"unknown channel needs consent", dcFacts(dcPerson), dcKey("fax", PurposeMarketing), lax, dcRefused(ReasonNoOptIn, time.Time{})},

		// 5: consent
		{"valid opt-in", valid, dcEmail, lax, consent},
		{"valid opt-in under strict", valid, dcEmail, strict, consent},
		{"opt-in with unknowns, lax", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant, dcUnknown), dcEmail, lax, consent},
		{"opt-in with unknowns, strict", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant, dcUnknown), dcEmail, strict,
			dcWant{basis: BasisNone, reason: ReasonInvalidOptIn, since: dcGrant, detail: "express: provider reported"}},
		{"granted state without quality, lax", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant, nil), dcEmail, lax, consent},
		{"granted state without quality, strict", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant, nil), dcEmail, strict,
			dcWant{basis: BasisNone, reason: ReasonInvalidOptIn, since: dcGrant, detail: "express: not assessed"}},
		{"granted state with a fail", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant, dcBad), dcEmail, lax,
			dcWant{basis: BasisNone, reason: ReasonInvalidOptIn, since: dcGrant, detail: "express: box was pre-ticked"}},
		{"customer with a valid opt-in: consent first", dcCustomer(valid, "acme", dcBuyer), dcEmail, lax, consent},
		{"professional with a valid opt-in: consent first", dcWith(dcFacts(dcRole), dcEmail, StatusGranted, dcGrant, dcGood), dcEmail, lax, consent},
		{"cookies opt-in", dcWith(dcFacts(dcPerson), dcKey(ChannelEmail, PurposeCookies), StatusGranted, dcGrant, dcGood), dcKey(ChannelEmail, PurposeCookies), lax, consent},
		{"opt-in time in another zone", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant.In(dcParis), dcGood), dcEmail, lax, consent},

		// 6: partners and other purposes
		{"partners, prospect", dcFacts(dcPerson), dcPartners, lax, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners, customer", dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcPartners, lax, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners, professional", func() Facts { f := dcFacts(dcWorker); f.Professional = true; return f }(), dcPartners, lax, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners, role address", dcFacts(dcRole), dcPartners, lax, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners, marketing opt-in does not cover partners", valid, dcPartners, lax, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners opt-in", dcWith(dcFacts(dcPerson), dcPartners, StatusGranted, dcGrant, dcGood), dcPartners, lax, consent},
		{"partners pending", dcWith(dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcPartners, StatusPending, dcGrant, dcGood), dcPartners, lax,
			dcRefused(ReasonPendingConfirmation, dcGrant)},
		{"partners invalid opt-in", dcWith(dcFacts(dcPerson), dcPartners, StatusGranted, dcGrant, dcBad), dcPartners, lax,
			dcWant{basis: BasisNone, reason: ReasonInvalidOptIn, since: dcGrant, detail: "express: box was pre-ticked"}},
		{"sale_sharing, customer", dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcKey(ChannelEmail, PurposeSaleSharing), lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"unknown purpose, customer", dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcKey(ChannelEmail, "surveys"), lax, dcRefused(ReasonNoOptIn, time.Time{})},

		// 7: soft opt-in
		{"customer, email", dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcEmail, lax, soft},
		{"customer, sms", dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcKey(ChannelSMS, PurposeMarketing), lax, soft},
		{"customer of another brand", dcCustomer(dcFacts(dcPerson), "beta", dcBuyer), dcEmail, lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"customer with a zero date is no customer", dcCustomer(dcFacts(dcPerson), "acme", time.Time{}), dcEmail, lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"customer with an invalid opt-in", dcWith(dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcEmail, StatusGranted, dcGrant, dcBad), dcEmail, lax, soft},
		{"customer with a pending opt-in", dcWith(dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcEmail, StatusPending, dcGrant, dcGood), dcEmail, lax, soft},
		{"customer with unknowns under strict", dcWith(dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcEmail, StatusGranted, dcGrant, dcUnknown), dcEmail, strict, soft},
		{"customer since the very instant of the question", dcCustomer(dcFacts(dcPerson), "acme", dcNow), dcEmail, lax,
			dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonSoftOptIn, since: dcNow, expires: dcNow.Add(dcTTL)}},

		// 8: B2B
		{"professional by signal", func() Facts { f := dcFacts(dcWorker); f.Professional = true; return f }(), dcEmail, lax, b2b},
		{"professional by signal, sms", func() Facts { f := dcFacts(dcWorker); f.Professional = true; return f }(), dcKey(ChannelSMS, PurposeMarketing), lax, b2b},
		{"professional by policy domain", dcFacts(dcWorker), dcEmail, Policy{ProfessionalDomains: []string{"acme-corp.fr"}}, b2b},
		{"professional signal on free mail", func() Facts { f := dcFacts("jeanne@gmail.com"); f.Professional = true; return f }(), dcEmail, lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"role address", dcFacts(dcRole), dcEmail, lax, role},
		{"role address with a +tag", dcFacts("Contact+promo@acme-corp.fr"), dcEmail, lax, role},
		{"role address that is also a listed domain", dcFacts(dcRole), dcEmail, Policy{ProfessionalDomains: []string{"acme-corp.fr"}}, role},
		{"role name at free mail is a person", dcFacts("sales@gmail.com"), dcEmail, lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"role address does not make sms B2B", dcFacts(dcRole), dcKey(ChannelSMS, PurposeMarketing), lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"professional with an invalid opt-in", func() Facts {
			f := dcWith(dcFacts(dcWorker), dcEmail, StatusGranted, dcGrant, dcBad)
			f.Professional = true
			return f
		}(), dcEmail, lax, b2b},
		{"customer and professional: soft opt-in first", func() Facts {
			f := dcCustomer(dcFacts(dcWorker), "acme", dcBuyer)
			f.Professional = true
			return f
		}(), dcEmail, lax, soft},
		{"professional, unknown channel", func() Facts { f := dcFacts(dcWorker); f.Professional = true; return f }(), dcKey("fax", PurposeMarketing), lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"customer, unknown channel", dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcKey("fax", PurposeMarketing), lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"phone-only professional", func() Facts { f := dcFacts(""); f.Professional = true; return f }(), dcKey(ChannelSMS, PurposeMarketing), lax, b2b},

		// 9: refusals
		{"nothing", dcFacts(dcPerson), dcEmail, lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"pending", dcWith(dcFacts(dcPerson), dcEmail, StatusPending, dcGrant, dcGood), dcEmail, lax, dcRefused(ReasonPendingConfirmation, dcGrant)},
		{"refused grant, no state", func() Facts {
			f := dcFacts(dcPerson)
			f.InvalidGrants = map[Key]time.Time{dcEmail: dcGrant}
			return f
		}(), dcEmail, lax, dcRefused(ReasonInvalidOptIn, dcGrant)},
		{"refused grant newer than pending: pending", func() Facts {
			f := dcWith(dcFacts(dcPerson), dcEmail, StatusPending, dcGrant, dcGood)
			f.InvalidGrants = map[Key]time.Time{dcEmail: dcGrant.Add(time.Hour)}
			return f
		}(), dcEmail, lax, dcRefused(ReasonPendingConfirmation, dcGrant)},
		{"refused grant newer than a valid opt-in: consent holds", func() Facts {
			f := valid
			f.InvalidGrants = map[Key]time.Time{dcEmail: dcGrant.Add(time.Hour)}
			return f
		}(), dcEmail, lax, consent},
		{"refused grant for another key", func() Facts {
			f := dcFacts(dcPerson)
			f.InvalidGrants = map[Key]time.Time{dcPartners: dcGrant}
			return f
		}(), dcEmail, lax, dcRefused(ReasonNoOptIn, time.Time{})},
		{"state with an unknown status", dcWith(dcFacts(dcPerson), dcEmail, "paused", dcGrant, nil), dcEmail, lax, dcRefused(ReasonNoOptIn, time.Time{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dcCheck(t, Decide(tc.f, tc.q, tc.p, dcNow), tc.want)
		})
	}
}

// Every profile on every channel for marketing and partners, with no opt-in,
// with a valid opt-in on every key, and with a withdrawal on every key.
func TestDecideProfileMatrix(t *testing.T) {
	profiles := []struct {
		name string
		f    Facts
	}{
		{"prospect", dcFacts(dcPerson)},
		{"customer", dcCustomer(dcFacts(dcPerson), "acme", dcBuyer)},
		{"professional", func() Facts { f := dcFacts(dcWorker); f.Professional = true; return f }()},
		{"role", dcFacts(dcRole)},
	}
	channels := []Channel{ChannelEmail, ChannelSMS, ChannelPhone, ChannelPost}
	purposes := []Purpose{PurposeMarketing, PurposePartners}
	// without opt-in: profile → channel → purpose → "allowed basis reason" or "refused reason"
	noOptIn := map[string]map[Channel][2]string{
		"prospect": {
			ChannelEmail: {"refused no_opt_in", "refused partners_need_opt_in"},
			ChannelSMS:   {"refused no_opt_in", "refused partners_need_opt_in"},
		},
		"customer": {
			ChannelEmail: {"allowed soft_opt_in customer_soft_opt_in", "refused partners_need_opt_in"},
			ChannelSMS:   {"allowed soft_opt_in customer_soft_opt_in", "refused partners_need_opt_in"},
		},
		"professional": {
			ChannelEmail: {"allowed legitimate_interest_b2b professional_no_objection", "refused partners_need_opt_in"},
			ChannelSMS:   {"allowed legitimate_interest_b2b professional_no_objection", "refused partners_need_opt_in"},
		},
		"role": {
			ChannelEmail: {"allowed legitimate_interest_b2b role_address_no_objection", "refused partners_need_opt_in"},
			ChannelSMS:   {"refused no_opt_in", "refused partners_need_opt_in"},
		},
	}
	render := func(a Answer) string {
		if a.Allowed {
			return fmt.Sprintf("allowed %s %s", a.Basis, a.Reason)
		}
		return "refused " + a.Reason
	}
	const optOut = "allowed opt_out_regime opt_out_channel_no_objection"
	for _, pr := range profiles {
		for _, ch := range channels {
			for i, pu := range purposes {
				q := dcKey(ch, pu)
				want := optOut
				if ch == ChannelEmail || ch == ChannelSMS {
					want = noOptIn[pr.name][ch][i]
				}
				if got := render(Decide(pr.f, q, Policy{}, dcNow)); got != want {
					t.Errorf("%s %s %s, no opt-in: %s, want %s", pr.name, ch, pu, got, want)
				}
				wantGranted := optOut
				if ch == ChannelEmail || ch == ChannelSMS {
					wantGranted = "allowed consent valid_opt_in"
				}
				if got := render(Decide(dcWith(pr.f, q, StatusGranted, dcGrant, dcGood), q, Policy{}, dcNow)); got != wantGranted {
					t.Errorf("%s %s %s, opted in: %s, want %s", pr.name, ch, pu, got, wantGranted)
				}
				if got := render(Decide(dcWith(pr.f, q, StatusWithdrawn, dcGrant, nil), q, Policy{}, dcNow)); got != "refused withdrawn" {
					t.Errorf("%s %s %s, withdrawn: %s", pr.name, ch, pu, got)
				}
			}
		}
	}
}

func TestDecideExpiry(t *testing.T) {
	day := 24 * time.Hour
	prospect := func(granted time.Time) Facts {
		return dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, granted, dcGood)
	}
	consentUntil := func(granted, exp time.Time) dcWant {
		return dcWant{allowed: true, basis: BasisConsent, reason: ReasonConsent, since: granted, expires: exp}
	}
	expired := func(granted, exp time.Time) dcWant {
		return dcWant{basis: BasisNone, reason: ReasonExpired, since: granted, expires: exp}
	}
	atTTL := dcNow.Add(-dcTTL)
	for _, tc := range []struct {
		name string
		f    Facts
		p    Policy
		want dcWant
	}{
		{"1µs before the ttl", prospect(atTTL.Add(time.Microsecond)), Policy{}, consentUntil(atTTL.Add(time.Microsecond), dcNow.Add(time.Microsecond))},
		{"exactly at the ttl", prospect(atTTL), Policy{}, expired(atTTL, dcNow)},
		{"1µs after the ttl", prospect(atTTL.Add(-time.Microsecond)), Policy{}, expired(atTTL.Add(-time.Microsecond), dcNow.Add(-time.Microsecond))},
		{"exactly at the ttl, other zone", prospect(atTTL.In(dcParis)), Policy{}, expired(atTTL, dcNow)},
		{"explicit ttl equal to the default", prospect(atTTL), Policy{ConsentTTL: dcTTL}, expired(atTTL, dcNow)},
		{"negative ttl means the default", prospect(atTTL.Add(time.Microsecond)), Policy{ConsentTTL: -time.Hour}, consentUntil(atTTL.Add(time.Microsecond), dcNow.Add(time.Microsecond))},
		{"short ttl", prospect(dcNow.Add(-day)), Policy{ConsentTTL: day}, expired(dcNow.Add(-day), dcNow)},
		{"short ttl, 1µs left", prospect(dcNow.Add(-day + time.Microsecond)), Policy{ConsentTTL: day}, consentUntil(dcNow.Add(-day+time.Microsecond), dcNow.Add(time.Microsecond))},
		{"a contact renews the opt-in", dcContact(prospect(dcNow.Add(-4*365*day)), "acme", dcNow.Add(-365*day)), Policy{},
			consentUntil(dcNow.Add(-4*365*day), dcNow.Add(-365*day).Add(dcTTL))},
		{"a contact exactly ttl ago does not", dcContact(prospect(dcNow.Add(-4*365*day)), "acme", atTTL), Policy{},
			expired(dcNow.Add(-4*365*day), dcNow)},
		{"a contact 1µs less than ttl ago does", dcContact(prospect(dcNow.Add(-4*365*day)), "acme", atTTL.Add(time.Microsecond)), Policy{},
			consentUntil(dcNow.Add(-4*365*day), dcNow.Add(time.Microsecond))},
		{"a contact with another brand does not", dcContact(prospect(dcNow.Add(-4*365*day)), "beta", dcNow.Add(-day)), Policy{},
			expired(dcNow.Add(-4*365*day), dcNow.Add(-365*day))},
		{"a contact before the opt-in changes nothing", dcContact(prospect(dcGrant), "acme", dcGrant.Add(-day)), Policy{},
			consentUntil(dcGrant, dcGrant.Add(dcTTL))},
		{"a contact at the opt-in instant (tie)", dcContact(prospect(dcGrant), "acme", dcGrant), Policy{},
			consentUntil(dcGrant, dcGrant.Add(dcTTL))},
		{"expired opt-in, active customer: soft opt-in", dcCustomer(prospect(atTTL), "acme", dcBuyer), Policy{},
			dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonSoftOptIn, since: dcBuyer, expires: dcBuyer.Add(dcTTL)}},
		{"expired opt-in, professional: B2B", func() Facts { f := prospect(atTTL); f.Email = dcWorker; f.Professional = true; return f }(), Policy{},
			dcWant{allowed: true, basis: BasisB2B, reason: ReasonB2B}},
		{"customer exactly ttl ago, no contact: lapsed", dcCustomer(dcFacts(dcPerson), "acme", atTTL), Policy{}, expired(atTTL, dcNow)},
		{"customer 1µs less than ttl ago", dcCustomer(dcFacts(dcPerson), "acme", atTTL.Add(time.Microsecond)), Policy{},
			dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonSoftOptIn, since: atTTL.Add(time.Microsecond), expires: dcNow.Add(time.Microsecond)}},
		{"old customer with a recent order", dcEnd(dcCustomer(dcFacts(dcPerson), "acme", dcNow.Add(-10*365*day)), "acme", dcNow.Add(-day)), Policy{},
			dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonSoftOptIn, since: dcNow.Add(-10 * 365 * day), expires: dcNow.Add(-day).Add(dcTTL)}},
		{"old customer with a recent click: lapsed (clicks do not renew a customer)",
			dcContact(dcCustomer(dcFacts(dcPerson), "acme", dcNow.Add(-10*365*day)), "acme", dcNow.Add(-day)), Policy{},
			expired(dcNow.Add(-10*365*day), dcNow.Add(-10*365*day).Add(dcTTL))},
		{"lapsed customer, professional: B2B", func() Facts { f := dcCustomer(dcFacts(dcWorker), "acme", atTTL); f.Professional = true; return f }(), Policy{},
			dcWant{allowed: true, basis: BasisB2B, reason: ReasonB2B}},
		{"lapsed customer with an expired opt-in: the opt-in's expiry", dcCustomer(prospect(atTTL.Add(-day)), "acme", atTTL), Policy{},
			expired(atTTL.Add(-day), dcNow.Add(-day))},
		{"lapsed customer with a pending opt-in: pending", dcWith(dcCustomer(dcFacts(dcPerson), "acme", atTTL), dcEmail, StatusPending, dcGrant, nil), Policy{},
			dcRefused(ReasonPendingConfirmation, dcGrant)},
		{"expired partners opt-in", dcWith(dcCustomer(dcFacts(dcPerson), "acme", dcBuyer), dcPartners, StatusGranted, atTTL, dcGood), Policy{},
			expired(atTTL, dcNow)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := dcEmail
			if _, ok := tc.f.States[dcPartners]; ok {
				q = dcPartners
			}
			dcCheck(t, Decide(tc.f, q, tc.p, dcNow), tc.want)
		})
	}
}

func TestConsentExpiresAt(t *testing.T) {
	for _, tc := range []struct {
		start, contact time.Time
		ttl            time.Duration
		want           time.Time
	}{
		{dcGrant, time.Time{}, time.Hour, dcGrant.Add(time.Hour)},
		{dcGrant, dcGrant.Add(time.Minute), time.Hour, dcGrant.Add(time.Hour + time.Minute)},
		{dcGrant, dcGrant.Add(-time.Minute), time.Hour, dcGrant.Add(time.Hour)},
		{dcGrant, time.Time{}, 0, dcGrant.Add(26280 * time.Hour)},
		{dcGrant, time.Time{}, -1, dcGrant.Add(26280 * time.Hour)},
	} {
		if got := ConsentExpiresAt(tc.start, tc.contact, tc.ttl); !got.Equal(tc.want) {
			t.Errorf("ConsentExpiresAt(%v, %v, %v) = %v, want %v", tc.start, tc.contact, tc.ttl, got, tc.want)
		}
	}
}

// The answer's times are copies: changing them does not change the facts.
func TestDecideTimesAreCopies(t *testing.T) {
	f := dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, dcGrant, dcGood)
	a := Decide(f, dcEmail, Policy{}, dcNow)
	*a.Since = a.Since.Add(time.Hour)
	if !f.States[dcEmail].OccurredAt.Equal(dcGrant) {
		t.Error("Since aliases the facts")
	}
}

// dcRandomFacts draws facts over a small space so that every rule and
// every tie is hit often.
func dcRandomFacts(r *rand.Rand, keys []Key) Facts {
	emails := []string{dcPerson, dcWorker, dcRole, "sales@gmail.com", "info@yahoo.co.uk", ""}
	statuses := []Status{StatusGranted, StatusWithdrawn, StatusPending}
	qualities := []Quality{dcGood, dcUnknown, dcBad, nil}
	tm := func() time.Time {
		// a handful of instants around the TTL boundary, to make ties
		return dcNow.Add(-time.Duration(r.IntN(5)) * dcTTL / 2).Add(time.Duration(r.IntN(3)-1) * time.Microsecond)
	}
	f := Facts{
		Known:        r.IntN(20) != 0,
		Email:        emails[r.IntN(len(emails))],
		Erased:       r.IntN(20) == 0,
		Professional: r.IntN(3) == 0,
		States:       map[Key]StateFact{},
	}
	if f.Erased && r.IntN(2) == 0 {
		f.ErasedAt = tm()
	}
	for _, k := range keys {
		if r.IntN(2) == 0 {
			f.States[k] = StateFact{Status: statuses[r.IntN(len(statuses))], OccurredAt: tm(), Quality: qualities[r.IntN(len(qualities))]}
		}
		if r.IntN(8) == 0 {
			if f.InvalidGrants == nil {
				f.InvalidGrants = map[Key]time.Time{}
			}
			f.InvalidGrants[k] = tm()
		}
	}
	for _, b := range []string{"acme", "beta"} {
		if r.IntN(3) == 0 {
			if f.CustomerOf == nil {
				f.CustomerOf = map[string]time.Time{}
			}
			f.CustomerOf[b] = tm()
		}
		if r.IntN(3) == 0 {
			if f.LastContact == nil {
				f.LastContact = map[string]time.Time{}
			}
			f.LastContact[b] = tm()
		}
		if r.IntN(3) == 0 {
			if f.RelationshipEnd == nil {
				f.RelationshipEnd = map[string]time.Time{}
			}
			f.RelationshipEnd[b] = tm()
		}
	}
	for _, k := range keys {
		if r.IntN(8) == 0 {
			if f.Withdrawals == nil {
				f.Withdrawals = map[Key]time.Time{}
			}
			f.Withdrawals[k] = tm()
		}
	}
	return f
}

// Property: whatever the facts, an erased or unknown subject, or a
// withdrawn key, is never allowed; and every answer is well-formed.
func TestDecideNeverOverridesObjection(t *testing.T) {
	var keys []Key
	for _, ch := range []Channel{ChannelEmail, ChannelSMS, ChannelPhone, ChannelPost} {
		for _, b := range []string{"acme", "beta"} {
			for _, p := range []Purpose{PurposeMarketing, PurposePartners, PurposeCookies} {
				keys = append(keys, Key{ch, b, p})
			}
		}
	}
	r := rand.New(rand.NewPCG(2025, 3))
	ttls := []time.Duration{0, dcTTL, 24 * time.Hour}
	var objected, allowed int
	for i := range 10000 {
		f := dcRandomFacts(r, keys)
		q := keys[r.IntN(len(keys))]
		p := Policy{ConsentTTL: ttls[r.IntN(len(ttls))], StrictQuality: r.IntN(2) == 0}
		if r.IntN(2) == 0 {
			p.ProfessionalDomains = []string{"acme-corp.fr", "gmail.com"}
		}
		nows := []time.Time{dcNow, PhoneOptInFrom, PhoneOptInFrom.Add(dcTTL / 4)}
		now := nows[r.IntN(len(nows))].Add(time.Duration(r.IntN(3)-1) * time.Microsecond)
		a := Decide(f, q, p, now)
		st, has := f.States[q]
		if !f.Known || f.Erased || has && st.Status == StatusWithdrawn {
			objected++
			if a.Allowed {
				t.Fatalf("case %d: allowed (%+v) despite known=%v erased=%v state=%+v", i, a, f.Known, f.Erased, st)
			}
		}
		if a.Allowed {
			allowed++
		}
		if a.Allowed != (a.Basis != BasisNone) || a.Reason == "" {
			t.Fatalf("case %d: malformed answer %+v", i, a)
		}
		if a.Since != nil && a.Since.IsZero() {
			t.Fatalf("case %d: zero Since", i)
		}
		if a.Allowed && a.ExpiresAt != nil && !now.Before(*a.ExpiresAt) {
			t.Fatalf("case %d: allowed past its expiry", i)
		}
		switch a.Basis {
		case BasisConsent:
			if !has || st.Status != StatusGranted || !st.Quality.Valid(p.StrictQuality) {
				t.Fatalf("case %d: consent without a valid grant: %+v", i, st)
			}
		case BasisSoftOptIn, BasisB2B:
			phoneCustomer := a.Basis == BasisSoftOptIn && q.Channel == ChannelPhone && PhoneNeedsConsent(now)
			if q.Purpose != PurposeMarketing || q.Channel != ChannelEmail && q.Channel != ChannelSMS && !phoneCustomer {
				t.Fatalf("case %d: %s for %+v", i, a.Basis, q)
			}
			if a.Basis == BasisB2B && strings.HasSuffix(f.Email, "@gmail.com") {
				t.Fatalf("case %d: B2B for a free-mail address", i)
			}
		case BasisOptOutRegime:
			if q.Channel != ChannelPhone && q.Channel != ChannelPost || q.Purpose == PurposeCookies {
				t.Fatalf("case %d: opt-out regime for %+v", i, q)
			}
			if q.Channel == ChannelPhone && PhoneNeedsConsent(now) && (q.Purpose != PurposeMarketing || a.Reason != ReasonProfessionalObjection) {
				t.Fatalf("case %d: phone opt-out regime after %v: %+v for %+v", i, PhoneOptInFrom, a, q)
			}
		}
	}
	if objected < 1000 || allowed < 1000 {
		t.Fatalf("poor coverage: %d objected, %d allowed of 10000", objected, allowed)
	}
}

func BenchmarkDecide(b *testing.B) {
	f := dcCustomer(dcFacts(dcWorker), "acme", dcBuyer)
	f.Professional = true
	for _, ch := range []Channel{ChannelEmail, ChannelSMS, ChannelPhone, ChannelPost} {
		for _, br := range []string{"acme", "beta", "gamma"} {
			f = dcWith(f, Key{ch, br, PurposeMarketing}, StatusGranted, dcGrant, dcGood)
			f = dcWith(f, Key{ch, br, PurposePartners}, StatusPending, dcGrant, dcUnknown)
		}
	}
	f = dcContact(f, "acme", dcNow.Add(-time.Hour))
	p := Policy{StrictQuality: true, ProfessionalDomains: []string{"acme-corp.fr", "example.org"}}
	questions := []Question{dcEmail, dcPartners, dcKey(ChannelSMS, PurposeMarketing), dcKey(ChannelPost, PurposeMarketing), {ChannelEmail, "delta", PurposeMarketing}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = Decide(f, questions[i%len(questions)], p, dcNow)
		i++
	}
}
