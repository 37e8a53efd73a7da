package consent

import "time"

// DefaultConsentTTL is the consent lifetime used when Policy.ConsentTTL is
// not set: three years of 365 days (26 280 h), config's default for
// policy.consent_ttl. CNIL: prospect data may be kept for prospecting three
// years from collection or from the last contact coming from the person;
// customer data three years from the end of the commercial relationship
// (CNIL, "Référentiel relatif aux traitements de données à caractère
// personnel mis en œuvre aux fins de gestion des activités commerciales",
// 2021, https://www.cnil.fr/fr/la-prospection-commerciale-par-courrier-electronique).
const DefaultConsentTTL = 3 * 365 * 24 * time.Hour

// ConsentExpiresAt is the first instant at which a permission started at
// start lapses: max(start, lastContact) + ttl (DefaultConsentTTL when ttl is
// not positive). lastContact is the latest qualifying contact from the
// person with the brand (a grant, click, reply, order, form — not an email
// open; the store picks what counts) and may be zero.
//
// At ConsentExpiresAt exactly the permission has lapsed: it holds while
// now is strictly before it. Sweepers listing subjects for re-consent or
// deletion use the same function.
//
// Source: CONSENT-RULES.md ("Expiry"); CNIL référentiel "gestion des
// activités commerciales" (3 years from the last contact from the person).
func ConsentExpiresAt(start, lastContact time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		ttl = DefaultConsentTTL
	}
	if lastContact.After(start) {
		start = lastContact
	}
	return start.Add(ttl)
}

// Decide answers "may brand q.Brand send q.Purpose messages on q.Channel to
// this subject at now, and on what legal basis?" from the facts the store
// loaded. It is pure and total: every input gets an Answer with a basis and
// a reason (BasisNone for every refusal).
//
// Precedence, first match wins:
//
//  1. Unknown subject → refused, ReasonUnknownSubject. Fail-closed: we know
//     of no basis.
//  2. Erased → refused, ReasonErased, Since the erasure (GDPR art. 17).
//  3. A withdrawn state for the exact key (channel, brand, purpose) →
//     refused, ReasonWithdrawn, Since the withdrawal. An objection beats
//     every basis: consent (GDPR art. 7(3)), soft opt-in, B2B and the
//     opt-out channels alike (GDPR art. 21(2)-(3): the objection to direct
//     marketing is absolute; CPCE art. L34-5). A withdrawal of another key
//     (another brand, or partners vs marketing) does not count.
//  4. Phone (a call by a human) or post, for marketing or partners →
//     allowed, BasisOptOutRegime, ReasonOptOutChannel: these channels need
//     information and a way to object at collection, not an opt-in,
//     including for making the address available to partners (CNIL, "La
//     prospection commerciale par courrier postal et par téléphone",
//     https://www.cnil.fr/fr/la-prospection-commerciale-par-courrier-postal-et-par-telephone-appel-telephonique).
//     The national do-not-call list (Bloctel, Code de la consommation art.
//     L223-1) is outside consentsync's knowledge: callers must screen it.
//  5. Consent (ruleConsent): a granted state whose Quality is valid under
//     policy (Quality.Valid(p.StrictQuality)) and not expired
//     (ConsentExpiresAt(state time, LastContact[brand], ttl) after now) →
//     allowed, BasisConsent, Since the opt-in, ExpiresAt set. Consent is
//     checked before the soft opt-in and B2B bases: it is the strongest and
//     best-proven basis, so a customer who also opted in is answered
//     "consent".
//  6. Purposes other than marketing get nothing more: partners, cookies,
//     sale_sharing and any unknown purpose need a valid opt-in for everyone,
//     customers and professionals included (CNIL: consent to partners'
//     offers is separate; ePrivacy art. 5(3) for cookies). The refusal is
//     the consent rule's (pending_confirmation, invalid_opt_in, expired),
//     and for partners a plain absence of opt-in reads
//     ReasonPartnersNeedOptIn.
//  7. Email or SMS marketing to a customer of q.Brand (Facts.CustomerOf)
//     within ttl of max(customer date, LastContact[brand]) → allowed,
//     BasisSoftOptIn, Since the customer date, ExpiresAt the lapse: the
//     brand that sold may offer similar products unless the person
//     objected, never for partners or other brands (CPCE art. L34-5 al. 4; CNIL, "La
//     prospection commerciale par courrier électronique"; the 3-year limit
//     from the end of the relationship is CNIL's référentiel).
//  8. Marketing to a legal entity (a role address at a non-free-mail
//     domain, IsLegalEntityAddress; email only) → allowed, BasisB2B,
//     ReasonRoleAddress; to a professional (IsProfessional with
//     p.ProfessionalDomains and Facts.Professional; email or SMS) →
//     allowed, BasisB2B, ReasonB2B. The message must relate to the
//     person's job and they must have been told and able to object: that
//     is the sender's duty, not something the facts show (CNIL, "La
//     prospection commerciale par courrier électronique", B2B section).
//  9. Otherwise refused with the consent rule's reason, in this order:
//     a granted state that quality blocks → ReasonInvalidOptIn with Detail
//     ("express: box was pre-ticked"); an expired grant → ReasonExpired
//     with ExpiresAt; a pending state → ReasonPendingConfirmation (double
//     opt-in grants nothing until confirmed); a refused grant newer than
//     the state (Facts.InvalidGrants) → ReasonInvalidOptIn; else, when the
//     subject was a customer of the brand whose relationship lapsed →
//     ReasonExpired; else ReasonNoOptIn.
//
// Decide trusts the facts: which contacts renew the ttl (an email open
// must not), which grants were refused, and who is a customer is the
// store's job. Times are compared as instants (time zones do not matter).
func Decide(f Facts, q Question, p Policy, now time.Time) Answer {
	if a, ok := ruleObjection(f, q, p); ok {
		return a
	}
	if a, ok := ruleOptOutChannel(q); ok {
		return a
	}
	c := ruleConsent(f, q, p, now)
	if c.Allowed {
		return c
	}
	switch q.Purpose {
	case PurposeMarketing:
	case PurposePartners:
		if c.Reason == ReasonNoOptIn {
			c.Reason = ReasonPartnersNeedOptIn
		}
		return c
	default:
		return c
	}
	soft, isCustomer := ruleSoftOptIn(f, q, p, now)
	if soft.Allowed {
		return soft
	}
	if a, ok := ruleB2B(f, q, p); ok {
		return a
	}
	if c.Reason == ReasonNoOptIn && isCustomer {
		return soft // the relationship lapsed: expired
	}
	return c
}

// ruleObjection refuses an unknown subject, an erased subject, and a key
// the person withdrew (steps 1-3 of Decide). Source: GDPR art. 7(3), 17,
// 21(2)-(3).
func ruleObjection(f Facts, q Question, p Policy) (Answer, bool) {
	switch {
	case !f.Known:
		return refusal(ReasonUnknownSubject, time.Time{}), true
	case f.Erased:
		return refusal(ReasonErased, f.ErasedAt), true
	}
	if st, ok := f.States[q]; ok && st.Status == StatusWithdrawn {
		return refusal(ReasonWithdrawn, st.OccurredAt), true
	}
	if w, ok := f.Withdrawals[q]; ok && !liftsWithdrawal(f.States[q], w, p) {
		return refusal(ReasonWithdrawn, w), true
	}
	return Answer{}, false
}

// liftsWithdrawal reports whether state st lifts a withdrawal that occurred
// at w: only a granted state that occurred after it, valid under the policy
// and with the express criterion passed (the person acted again). A pending
// double opt-in, a provider's "subscribed" of unknown origin, or a grant the
// strict policy refuses leaves the objection in force — and so no soft
// opt-in or B2B basis may override it. Source: CONSENT-RULES.md
// ("Withdrawal": a later grant lifts a withdrawal only if it is itself a
// valid express opt-in that occurred after the withdrawal); GDPR art. 7(3),
// 21(3).
func liftsWithdrawal(st StateFact, w time.Time, p Policy) bool {
	if st.Status != StatusGranted || !st.OccurredAt.After(w) || !st.Quality.Valid(p.StrictQuality) {
		return false
	}
	for _, a := range st.Quality {
		if a.Criterion == CriterionExpress {
			return a.Verdict == Pass
		}
	}
	return false
}

// ruleOptOutChannel allows marketing and partners by phone (human calls)
// and post unless the person objected (step 4 of Decide). Source: CNIL,
// "La prospection commerciale par courrier postal et par téléphone".
func ruleOptOutChannel(q Question) (Answer, bool) {
	if q.Channel != ChannelPhone && q.Channel != ChannelPost {
		return Answer{}, false
	}
	if q.Purpose != PurposeMarketing && q.Purpose != PurposePartners {
		return Answer{}, false
	}
	return Answer{Allowed: true, Basis: BasisOptOutRegime, Reason: ReasonOptOutChannel}, true
}

// ruleConsent reads the state of the key as an opt-in (steps 5 and 9 of
// Decide): allowed with BasisConsent, or refused with the reason the opt-in
// does not hold (invalid_opt_in, expired, pending_confirmation, no_opt_in).
// Source: GDPR art. 4(11), 6(1)(a), 7; CPCE art. L34-5; CNIL, "La
// prospection commerciale par courrier électronique".
func ruleConsent(f Facts, q Question, p Policy, now time.Time) Answer {
	st, has := f.States[q]
	if has {
		switch st.Status {
		case StatusGranted:
			if detail := st.Quality.Detail(p.StrictQuality); detail != "" {
				a := refusal(ReasonInvalidOptIn, st.OccurredAt)
				a.Detail = detail
				return a
			}
			exp := ConsentExpiresAt(st.OccurredAt, f.LastContact[q.Brand], p.ConsentTTL)
			if !now.Before(exp) {
				a := refusal(ReasonExpired, st.OccurredAt)
				a.ExpiresAt = &exp
				return a
			}
			return Answer{Allowed: true, Basis: BasisConsent, Reason: ReasonConsent,
				Since: timeRef(st.OccurredAt), ExpiresAt: &exp}
		case StatusPending:
			return refusal(ReasonPendingConfirmation, st.OccurredAt)
		}
	}
	if t, bad := f.InvalidGrants[q]; bad && (!has || t.After(st.OccurredAt)) {
		a := refusal(ReasonInvalidOptIn, t)
		a.Detail = f.InvalidDetails[q]
		return a
	}
	return refusal(ReasonNoOptIn, time.Time{})
}

// ruleSoftOptIn allows the brand that sold to market to its customer by
// email or SMS unless they objected (step 7 of Decide), for ttl after the
// later of the customer date and the last contact (an order is a contact).
// The second result reports a customer relationship with the brand at all;
// when it lapsed, the Answer is the ReasonExpired refusal. A zero customer
// date is no customer. Source: CPCE art. L34-5 al. 4 (produits ou services analogues
// fournis par la même personne); CNIL, "La prospection commerciale par
// courrier électronique"; CNIL référentiel "gestion des activités
// commerciales" (3 years from the end of the relationship).
func ruleSoftOptIn(f Facts, q Question, p Policy, now time.Time) (Answer, bool) {
	since, ok := f.CustomerOf[q.Brand]
	if !ok || since.IsZero() || q.Purpose != PurposeMarketing || q.Channel != ChannelEmail && q.Channel != ChannelSMS {
		return Answer{}, false
	}
	exp := ConsentExpiresAt(since, f.LastContact[q.Brand], p.ConsentTTL)
	if !now.Before(exp) {
		a := refusal(ReasonExpired, since)
		a.ExpiresAt = &exp
		return a, true
	}
	return Answer{Allowed: true, Basis: BasisSoftOptIn, Reason: ReasonSoftOptIn,
		Since: timeRef(since), ExpiresAt: &exp}, true
}

// ruleB2B allows marketing to legal entities (role addresses, email only)
// and to professionals at their work address or number (email and SMS)
// unless they objected (step 8 of Decide). A role address at a free-mail
// domain is a person's mailbox and gets nothing here. Source: CNIL, "La
// prospection commerciale par courrier électronique" (B2B: information and
// objection; generic addresses of legal entities are outside the rules
// protecting persons).
func ruleB2B(f Facts, q Question, p Policy) (Answer, bool) {
	if q.Purpose != PurposeMarketing {
		return Answer{}, false
	}
	if q.Channel == ChannelEmail && IsLegalEntityAddress(f.Email) {
		return Answer{Allowed: true, Basis: BasisB2B, Reason: ReasonRoleAddress}, true
	}
	if (q.Channel == ChannelEmail || q.Channel == ChannelSMS) && IsProfessional(f.Email, p.ProfessionalDomains, f.Professional) {
		return Answer{Allowed: true, Basis: BasisB2B, Reason: ReasonB2B}, true
	}
	return Answer{}, false
}

// refusal is a not-allowed answer with BasisNone, Since at (nil when zero).
func refusal(reason string, at time.Time) Answer {
	return Answer{Basis: BasisNone, Reason: reason, Since: timeRef(at)}
}

// timeRef returns a pointer to a copy of t, or nil for the zero time.
func timeRef(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
