package consent

import "time"

// Profile is what the law calls the person relative to a brand
// (docs/rules.md, "Who needs an opt-in").
type Profile string

// Profiles.
const (
	// ProfileProspect: anyone else; needs an explicit prior opt-in.
	ProfileProspect Profile = "prospect"
	// ProfileCustomer: existing commercial relationship with a brand; may get
	// that brand's offers for similar products unless they object (soft
	// opt-in, CNIL; French CPCE art. L34-5).
	ProfileCustomer Profile = "customer"
	// ProfileProfessional: a work address, messaged about their job; allowed
	// unless they object.
	ProfileProfessional Profile = "professional"
)

// Basis is the legal footing of an eligibility answer.
type Basis string

// Bases.
const (
	BasisConsent       Basis = "consent"
	BasisSoftOptIn     Basis = "soft_opt_in"
	BasisB2B           Basis = "legitimate_interest_b2b"
	BasisOptOutRegime  Basis = "opt_out_regime"
	BasisNone          Basis = "none"
	BasisObjectionOnly Basis = "objection" // used in stored states: a withdrawal
)

// Reasons an eligibility answer gives.
const (
	ReasonConsent             = "valid_opt_in"
	ReasonSoftOptIn           = "customer_soft_opt_in"
	ReasonB2B                 = "professional_no_objection"
	ReasonRoleAddress         = "role_address_no_objection"
	ReasonOptOutChannel       = "opt_out_channel_no_objection"
	ReasonWithdrawn           = "withdrawn"
	ReasonNoOptIn             = "no_opt_in"
	ReasonInvalidOptIn        = "invalid_opt_in"
	ReasonPendingConfirmation = "pending_confirmation"
	ReasonExpired             = "expired"
	ReasonErased              = "erased"
	ReasonPartnersNeedOptIn   = "partners_need_opt_in"
	ReasonUnknownSubject      = "unknown_subject"
	// ReasonCustomerOngoingContract: a marketing call, from PhoneOptInFrom,
	// to a customer of the brand within the retention period (Code de la
	// consommation art. L223-1: the ongoing-contract exception).
	ReasonCustomerOngoingContract = "customer_ongoing_contract"
	// ReasonProfessionalObjection: a marketing call, from PhoneOptInFrom, to
	// a professional or legal entity, who stays in the objection regime.
	ReasonProfessionalObjection = "professional_objection_regime"
)

// Key names one consent: a channel, a brand and a purpose.
type Key struct {
	Channel Channel `json:"channel"`
	Brand   string  `json:"brand"`
	Purpose Purpose `json:"purpose"`
}

// StateFact is a current state as eligibility needs it: the winning signal's
// status, time, validity and quality.
type StateFact struct {
	Status     Status
	OccurredAt time.Time
	// Quality of the grant that made the state (nil for withdrawals).
	Quality Quality
	// Source is the configured source the winning signal came from (shown
	// to support; the rules do not read it).
	Source string
}

// Facts is everything consentsync knows about one subject that bears on
// eligibility, as loaded from the store in one pass.
type Facts struct {
	// Known is false when no subject matches the identifier.
	Known bool
	// Email is the normalized address (empty for phone-only subjects).
	Email string
	// Erased: the subject asked for erasure at ErasedAt; nothing may be sent.
	Erased   bool
	ErasedAt time.Time
	// Professional: a signal or the domain policy says the address is a
	// work address.
	Professional bool
	// CustomerOf maps a brand to when the subject became its customer.
	CustomerOf map[string]time.Time
	// RelationshipEnd maps a brand to the latest end of the commercial
	// relationship the sources reported: the latest order, or a contract's
	// end (which may lie in the future). A customer's soft opt-in lapses
	// CustomerExpiresAt(CustomerOf, RelationshipEnd, ttl); clicks and opens
	// do not count here.
	RelationshipEnd map[string]time.Time
	// States are the current states by key.
	States map[Key]StateFact
	// Withdrawals maps a key to its latest withdrawal ever recorded (even
	// when a later signal made the state something else): only a valid
	// express opt-in that occurred after it lifts it.
	Withdrawals map[Key]time.Time
	// InvalidGrants maps a key to the time of its latest grant that was
	// recorded but refused (quality fail), when it is newer than the state.
	InvalidGrants map[Key]time.Time
	// InvalidDetails gives, for each key of InvalidGrants, why that grant
	// was refused ("express: box was pre-ticked").
	InvalidDetails map[Key]string
	// LastContact maps a brand to the latest qualifying contact from the
	// person (click, reply, order, form, grant — not an open): it renews a
	// prospect's consent (ConsentExpiresAt), not a customer's soft opt-in.
	LastContact map[string]time.Time
}

// Policy is the part of the configuration the rules read.
type Policy struct {
	// ConsentTTL is how long a consent lasts without a qualifying contact,
	// and a customer's soft opt-in after the end of the relationship (CNIL
	// recommends 3 years); zero means DefaultConsentTTL.
	ConsentTTL time.Duration
	// StrictQuality makes an "unknown" criterion block like a "fail".
	StrictQuality bool
	// ProfessionalDomains are email domains whose addresses are
	// professional (never a free-mail domain).
	ProfessionalDomains []string
}

// Question is "may Brand send Purpose messages on Channel?".
type Question = Key

// Answer is an eligibility decision, always with its basis and reason.
// Since is when the deciding fact occurred (the opt-in, the withdrawal, the
// start of the customer relationship), when there is one.
type Answer struct {
	Allowed bool       `json:"allowed"`
	Basis   Basis      `json:"basis"`
	Reason  string     `json:"reason"`
	Since   *time.Time `json:"since"`
	// Detail explains a refusal caused by quality ("express: box was
	// pre-ticked"), or, with Quality "unknown", what could not be assessed.
	Detail string `json:"detail,omitempty"`
	// Quality is "unknown" when the answer rests on a grant imported by a
	// backfill without proof of how it was collected
	// (ImportedWithoutProof): allowed when policy.strict_quality is off,
	// but the controller cannot demonstrate it (GDPR art. 7(1)). Empty
	// otherwise.
	Quality Verdict `json:"quality,omitempty"`
	// ExpiresAt is the first instant at which a consent or soft-opt-in
	// permission lapses (ConsentExpiresAt without new contact from the
	// person; CustomerExpiresAt without a new order or contract); nil for
	// other bases.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}
