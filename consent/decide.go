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

// ConsentExpiresAt is the first instant at which a prospect's consent
// started at start lapses: max(start, lastContact) + ttl (DefaultConsentTTL
// when ttl is not positive). lastContact is the latest qualifying contact
// from the person with the brand (a grant, click, reply, order, form — not
// an email open, see ActivityKind.Qualifying; the store picks what counts)
// and may be zero.
//
// At ConsentExpiresAt exactly the permission has lapsed: it holds while
// now is strictly before it. Expiries, which sweepers use to list subjects
// for re-consent or deletion, uses the same function.
//
// Source: docs/rules.md ("Expiry"); CNIL référentiel "gestion des
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

// CustomerExpiresAt is the first instant at which a customer's soft opt-in
// (and, by phone from PhoneOptInFrom, the ongoing-contract exception)
// lapses: ttl (DefaultConsentTTL when not positive) after the end of the
// commercial relationship, max(since, relationshipEnd). since is when the
// person became a customer of the brand (Facts.CustomerOf);
// relationshipEnd is the latest order or contract end the sources reported
// (Facts.RelationshipEnd; zero when none, and it may lie in the future for
// a contract still running). Clicks, opens and other contacts do not move
// it: only the relationship does.
//
// At CustomerExpiresAt exactly the permission has lapsed.
//
// Source: docs/rules.md ("Expiry"); CNIL référentiel "gestion des
// activités commerciales" (2021): customer data used for prospecting may be
// kept 3 years from the end of the commercial relationship; CNIL sanction
// against CALOGA (2025) for renewing retention on email opens.
func CustomerExpiresAt(since, relationshipEnd time.Time, ttl time.Duration) time.Time {
	return ConsentExpiresAt(since, relationshipEnd, ttl)
}

// PhoneOptInFrom is when telephone prospecting of consumers in France
// becomes opt-in: 2026-08-11 at 00:00 in Paris (CEST, UTC+2, a fixed
// offset so that no tzdata is needed; the instant is
// 2026-08-10T22:00:00Z). Calls decided at or after it need the consumer's
// prior consent (see PhoneNeedsConsent). Read it, do not assign it.
//
// Source: Code de la consommation art. L223-1 as amended by loi n° 2025-594
// du 30 juin 2025 contre toutes les fraudes aux aides publiques (in force
// on 11 August 2026); docs/rules.md ("Who needs an opt-in").
var PhoneOptInFrom = time.Date(2026, 8, 11, 0, 0, 0, 0, time.FixedZone("CEST", 2*3600))

// PhoneNeedsConsent reports whether a marketing call by a human decided at
// now needs the consumer's prior opt-in: now is at or after PhoneOptInFrom.
// Before it, phone is an opt-out channel (allowed unless the person
// objected; Bloctel). Rules are decided for the time of the question, so
// answers about the past stay explained.
//
// Source: Code de la consommation art. L223-1 as amended by loi n° 2025-594.
func PhoneNeedsConsent(now time.Time) bool { return !now.Before(PhoneOptInFrom) }

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
//  3. A withdrawn state for the exact key (channel, brand, purpose), or a
//     withdrawal (Facts.Withdrawals) that the current state does not lift
//     (LiftsWithdrawal: only a later valid grant with express passed) →
//     refused, ReasonWithdrawn, Since the withdrawal. An objection beats
//     every basis: consent (GDPR art. 7(3)), soft opt-in, B2B and the
//     opt-out channels alike (GDPR art. 21(2)-(3): the objection to direct
//     marketing is absolute; CPCE art. L34-5). A withdrawal of another key
//     (another brand, or partners vs marketing) does not count.
//  4. Post, and phone (a call by a human) decided before PhoneOptInFrom,
//     for marketing or partners → allowed, BasisOptOutRegime,
//     ReasonOptOutChannel: these channels need information and a way to
//     object at collection, not an opt-in, including for making the
//     address available to partners (CNIL, "La prospection commerciale par
//     courrier postal et par téléphone",
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
//  6. Phone from PhoneOptInFrom, marketing or partners (rulePhone; Code de
//     la consommation art. L223-1 as amended by loi n° 2025-594): partners
//     need the opt-in of step 5 for everyone (refusal
//     ReasonPartnersNeedOptIn when there is none). Marketing: a customer of
//     q.Brand within CustomerExpiresAt → allowed, BasisSoftOptIn,
//     ReasonCustomerOngoingContract (the ongoing-contract exception);
//     else a professional or legal entity (IsProfessional,
//     IsLegalEntityAddress) → allowed, BasisOptOutRegime,
//     ReasonProfessionalObjection (professionals stay in the objection
//     regime); else refused as in step 10.
//  7. Purposes other than marketing get nothing more: partners, cookies,
//     sale_sharing and any unknown purpose need a valid opt-in for everyone,
//     customers and professionals included (CNIL: consent to partners'
//     offers is separate; ePrivacy art. 5(3) for cookies). The refusal is
//     the consent rule's (pending_confirmation, invalid_opt_in, expired),
//     and for partners a plain absence of opt-in reads
//     ReasonPartnersNeedOptIn.
//  8. Email or SMS marketing to a customer of q.Brand (Facts.CustomerOf)
//     while now is before CustomerExpiresAt(customer date,
//     RelationshipEnd[brand], ttl) → allowed, BasisSoftOptIn, Since the
//     customer date, ExpiresAt the lapse: the brand that sold may offer
//     similar products unless the person objected, never for partners or
//     other brands (CPCE art. L34-5 al. 4; CNIL, "La prospection
//     commerciale par courrier électronique"; the 3-year limit from the end
//     of the relationship — last order or contract end, not clicks or
//     opens — is CNIL's référentiel).
//  9. Marketing to a legal entity (a role address at a non-free-mail
//     domain, IsLegalEntityAddress; email only) → allowed, BasisB2B,
//     ReasonRoleAddress; to a professional (IsProfessional with
//     p.ProfessionalDomains and Facts.Professional; email or SMS) →
//     allowed, BasisB2B, ReasonB2B. The message must relate to the
//     person's job and they must have been told and able to object: that
//     is the sender's duty, not something the facts show (CNIL, "La
//     prospection commerciale par courrier électronique", B2B section).
//  10. Otherwise refused with the consent rule's reason, in this order:
//     a granted state that quality blocks → ReasonInvalidOptIn with Detail
//     ("express: box was pre-ticked"); an expired grant → ReasonExpired
//     with ExpiresAt; a pending state → ReasonPendingConfirmation (double
//     opt-in grants nothing until confirmed); a refused grant newer than
//     the state (Facts.InvalidGrants) → ReasonInvalidOptIn; else, when the
//     subject was a customer of the brand whose relationship lapsed →
//     ReasonExpired; else ReasonNoOptIn.
//
// Decide trusts the facts: which contacts renew a prospect's ttl (an email
// open must not), when the relationship with a customer ended, which grants
// were refused, and who is a customer is the store's job. Times are
// compared as instants (time zones do not matter). Expiries lists the
// lapses of the same permissions with the same helpers.
func Decide(f Facts, q Question, p Policy, now time.Time) Answer {
	if a, ok := ruleObjection(f, q, p); ok {
		return a
	}
	if a, ok := ruleOptOutChannel(q, now); ok {
		return a
	}
	c := ruleConsent(f, q, p, now)
	if c.Allowed {
		return c
	}
	if a, ok := rulePhone(f, q, p, now, c); ok {
		return a
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
	if at, ok := WithdrawnAt(f, q, p); ok {
		return refusal(ReasonWithdrawn, at), true
	}
	return Answer{}, false
}

// WithdrawnAt reports whether key k is withdrawn in f (a person's merged
// facts, MergeFacts), and since when: its state is withdrawn, or its latest
// withdrawal is not lifted by the state (LiftsWithdrawal). It is step 3 of
// Decide, and what decides which withdrawals a destination added later
// must still hear (worker catch-up): one rule for both.
//
// Source: docs/rules.md ("Withdrawal"); GDPR art. 7(3), 21(3).
func WithdrawnAt(f Facts, k Key, p Policy) (time.Time, bool) {
	if st, ok := f.States[k]; ok && st.Status == StatusWithdrawn {
		return st.OccurredAt, true
	}
	if w, ok := f.Withdrawals[k]; ok && !LiftsWithdrawal(f.States[k], w, p) {
		return w, true
	}
	return time.Time{}, false
}

// LiftsWithdrawal reports whether state st lifts a withdrawal that occurred
// at withdrawnAt: only a granted state that occurred strictly after it,
// valid under the policy (st.Quality.Valid(p.StrictQuality)) and with
// criterion express passed (ExpressPassed: the person acted again, see
// LiftingEvidence). A pending double opt-in, a provider's "subscribed" of
// unknown origin (Mailchimp subscribe, Shopify subscribed without a
// confirmed opt-in level, a Postmark reactivation: express unknown), or a
// grant the strict policy refuses leaves the objection in force — and so
// no soft opt-in or B2B basis may override it.
//
// Source: docs/rules.md ("Withdrawal": a later grant lifts a withdrawal
// only if it is itself a valid express opt-in that occurred after the
// withdrawal); GDPR art. 7(3), 21(3).
func LiftsWithdrawal(st StateFact, withdrawnAt time.Time, p Policy) bool {
	return st.Status == StatusGranted && st.OccurredAt.After(withdrawnAt) &&
		st.Quality.Valid(p.StrictQuality) && ExpressPassed(st.Quality)
}

// Revives reports whether signal sig, with its assessed quality q
// (Assess), brings a person back after an erasure at erasedAt: only a new
// valid express opt-in — status granted, no problems, occurred strictly
// after erasedAt, q valid under the policy and criterion express passed
// (LiftingEvidence). A provider's "subscribed" without evidence of an
// express act, a pending request or a withdrawal revives nothing: the
// erased identity stays forgotten and the signal is dropped.
//
// Source: GDPR art. 17 (erasure) and 4(11), 7(1) (a new consent must be
// one the controller can demonstrate); docs/rules.md ("Withdrawal").
func Revives(sig Signal, q Quality, erasedAt time.Time, p Policy) bool {
	return sig.Status == StatusGranted && sig.Valid() && sig.OccurredAt.After(erasedAt) &&
		q.Valid(p.StrictQuality) && ExpressPassed(q)
}

// ruleOptOutChannel allows marketing and partners by post, and by phone
// (human calls) decided before PhoneOptInFrom, unless the person objected
// (step 4 of Decide). Source: CNIL, "La prospection commerciale par
// courrier postal et par téléphone"; Code de la consommation art. L223-1.
func ruleOptOutChannel(q Question, now time.Time) (Answer, bool) {
	if q.Purpose != PurposeMarketing && q.Purpose != PurposePartners {
		return Answer{}, false
	}
	if q.Channel != ChannelPost && (q.Channel != ChannelPhone || PhoneNeedsConsent(now)) {
		return Answer{}, false
	}
	return Answer{Allowed: true, Basis: BasisOptOutRegime, Reason: ReasonOptOutChannel}, true
}

// rulePhone decides marketing and partners calls by a human from
// PhoneOptInFrom when no valid consent allowed them (step 6 of Decide; c
// is ruleConsent's refusal). Partners: the consent refusal
// (ReasonPartnersNeedOptIn when there was no opt-in at all). Marketing: a
// customer of the brand within CustomerExpiresAt is allowed under the
// ongoing-contract exception (BasisSoftOptIn,
// ReasonCustomerOngoingContract); a professional or a legal entity stays in
// the objection regime (BasisOptOutRegime, ReasonProfessionalObjection);
// anyone else is refused with the consent reason (ReasonExpired when the
// customer relationship lapsed and there was no opt-in).
//
// Source: Code de la consommation art. L223-1 as amended by loi n° 2025-594
// du 30 juin 2025 (consentement préalable du consommateur; exception for
// sollicitations in the frame of an ongoing contract for related
// products; the law protects consumers: professionals keep the
// opposition regime); docs/rules.md ("Who needs an opt-in").
func rulePhone(f Facts, q Question, p Policy, now time.Time, c Answer) (Answer, bool) {
	if q.Channel != ChannelPhone || !PhoneNeedsConsent(now) {
		return Answer{}, false
	}
	switch q.Purpose {
	case PurposePartners:
		if c.Reason == ReasonNoOptIn {
			c.Reason = ReasonPartnersNeedOptIn
		}
		return c, true
	case PurposeMarketing:
	default:
		return Answer{}, false
	}
	since, exp, isCustomer := customerRelationship(f, q.Brand, p)
	if isCustomer && now.Before(exp) {
		return Answer{Allowed: true, Basis: BasisSoftOptIn, Reason: ReasonCustomerOngoingContract,
			Since: timeRef(since), ExpiresAt: &exp}, true
	}
	if IsLegalEntityAddress(f.Email) || IsProfessional(f.Email, p.ProfessionalDomains, f.Professional) {
		return Answer{Allowed: true, Basis: BasisOptOutRegime, Reason: ReasonProfessionalObjection}, true
	}
	if c.Reason == ReasonNoOptIn && isCustomer {
		a := refusal(ReasonExpired, since)
		a.ExpiresAt = &exp
		return a, true
	}
	return c, true
}

// customerRelationship returns when the subject became a customer of
// brand and when that relationship's permission lapses
// (CustomerExpiresAt). ok is false when the subject is no customer of the
// brand (no entry or a zero date).
func customerRelationship(f Facts, brand string, p Policy) (since, expires time.Time, ok bool) {
	since, ok = f.CustomerOf[brand]
	if !ok || since.IsZero() {
		return time.Time{}, time.Time{}, false
	}
	return since, CustomerExpiresAt(since, f.RelationshipEnd[brand], p.ConsentTTL), true
}

// consentExpiry returns when the consent of state st for key k lapses
// (ConsentExpiresAt from the grant and the brand's last contact).
func consentExpiry(f Facts, k Key, st StateFact, p Policy) time.Time {
	return ConsentExpiresAt(st.OccurredAt, f.LastContact[k.Brand], p.ConsentTTL)
}

// ruleConsent reads the state of the key as an opt-in (steps 5 and 10 of
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
				if ImportedWithoutProof(st.Quality) {
					a.Quality = Unknown
				}
				return a
			}
			exp := consentExpiry(f, q, st, p)
			if !now.Before(exp) {
				a := refusal(ReasonExpired, st.OccurredAt)
				a.ExpiresAt = &exp
				return a
			}
			a := Answer{Allowed: true, Basis: BasisConsent, Reason: ReasonConsent,
				Since: timeRef(st.OccurredAt), ExpiresAt: &exp}
			if ImportedWithoutProof(st.Quality) {
				a.Quality, a.Detail = Unknown, st.Quality.Unknowns()
			}
			return a
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
// email or SMS unless they objected (step 8 of Decide), until
// CustomerExpiresAt: ttl after the end of the relationship (the later of
// the customer date and Facts.RelationshipEnd — last order or contract
// end; clicks and opens do not count). The second result reports a
// customer relationship with the brand at all; when it lapsed, the Answer
// is the ReasonExpired refusal. A zero customer date is no customer.
// Source: CPCE art. L34-5 al. 4 (produits ou services analogues fournis
// par la même personne); CNIL, "La prospection commerciale par courrier
// électronique"; CNIL référentiel "gestion des activités commerciales" (3
// years from the end of the relationship).
func ruleSoftOptIn(f Facts, q Question, p Policy, now time.Time) (Answer, bool) {
	if q.Purpose != PurposeMarketing || q.Channel != ChannelEmail && q.Channel != ChannelSMS {
		return Answer{}, false
	}
	since, exp, ok := customerRelationship(f, q.Brand, p)
	if !ok {
		return Answer{}, false
	}
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
// unless they objected (step 9 of Decide). A role address at a free-mail
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
