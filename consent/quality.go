package consent

import "time"

// Criterion is one of the six conditions a valid opt-in meets (GDPR art.
// 4(11); CNIL, "Les bases légales: le consentement",
// https://www.cnil.fr/fr/les-bases-legales/consentement).
type Criterion string

// The six criteria, in the order they are reported.
const (
	CriterionExpress     Criterion = "express"
	CriterionFree        Criterion = "free"
	CriterionPrior       Criterion = "prior"
	CriterionSpecific    Criterion = "specific"
	CriterionInformed    Criterion = "informed"
	CriterionUnambiguous Criterion = "unambiguous"
)

// Criteria lists the six criteria in report order.
var Criteria = []Criterion{CriterionExpress, CriterionFree, CriterionPrior, CriterionSpecific, CriterionInformed, CriterionUnambiguous}

// Verdict is a criterion's result.
type Verdict string

// Verdicts.
const (
	Pass    Verdict = "pass"
	Fail    Verdict = "fail"
	Unknown Verdict = "unknown"
)

// Assessment is one criterion's verdict with its reason.
type Assessment struct {
	Criterion Criterion `json:"criterion"`
	Verdict   Verdict   `json:"verdict"`
	Reason    string    `json:"reason"`
}

// Quality is the six assessments of one grant, in Criteria order.
type Quality []Assessment

// QualityContext is what the store knows beyond the signal itself.
type QualityContext struct {
	// FirstMessageAt is the earliest marketing message the brand is known to
	// have sent the subject on the channel (zero when none is known).
	FirstMessageAt time.Time
}
