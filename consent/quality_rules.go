package consent

import (
	"slices"
	"strings"
)

// This file grades one grant against the six criteria of a valid consent
// (docs/rules.md, "What makes an opt-in valid"). Each criterion is one
// function below, with its legal source. They read only the signal (its
// Problems and Evidence) and the QualityContext: no I/O.
//
// Sources used throughout:
//   - GDPR art. 4(11) (definition: "freely given, specific, informed and
//     unambiguous indication ... by a statement or by a clear affirmative
//     action"), https://gdpr-info.eu/art-4-gdpr/
//   - GDPR art. 7 (conditions for consent), https://gdpr-info.eu/art-7-gdpr/
//   - GDPR recitals 32, 42, 43, https://gdpr-info.eu/recitals/no-32/
//   - EDPB Guidelines 05/2020 on consent under Regulation 2016/679,
//     https://www.edpb.europa.eu/our-work-tools/our-documents/guidelines/guidelines-052020-consent-under-regulation-2016679_en
//   - CNIL, "Les bases légales: le consentement",
//     https://www.cnil.fr/fr/les-bases-legales/consentement
//   - CNIL, "La prospection commerciale par courrier électronique",
//     https://www.cnil.fr/fr/la-prospection-commerciale-par-courrier-electronique
//     (French CPCE art. L34-5: prior consent for electronic prospecting)

// Reasons given by the criteria. Kept as constants so that tests, the ledger
// view and documentation agree on the wording. No reason contains personal
// data or a raw checkbox value.
const (
	reasonPreTicked       = "box was pre-ticked"
	reasonNotATick        = "the recorded answer is not a tick"
	reasonTicked          = "the person ticked the box"
	reasonTickedConfirmed = "the person ticked the box and clicked the confirmation"
	reasonConfirmed       = "the person clicked the confirmation (double opt-in)"
	reasonNoTickShown     = "the answer does not show a tick"
	reasonHowUnknown      = "provider reported a subscription without how it was collected"
	// ReasonImported is criterion express's reason for a grant imported by
	// a backfill with neither a tick nor a confirmation: how it was
	// collected is not known (Evidence.Imported).
	ReasonImported         = "imported without proof of how it was collected"
	reasonRequired         = "the box had to be ticked to submit the form (consent made a condition)"
	reasonOptionalBox      = "separate optional box"
	reasonOptionalUnknown  = "no evidence the opt-in was optional"
	reasonMessageBefore    = "a message reached the person before the opt-in: check it was not sent under this consent"
	reasonNoMessageBefore  = "no message recorded before the opt-in"
	reasonNotBundled       = "no sign of one answer covering several channels, brands or partners"
	reasonWordingVersion   = "wording version kept"
	reasonWordingHash      = "wording hash kept"
	reasonNoWording        = "no wording or notice version kept"
	reasonNoPartnerList    = "the list of partners shown was not kept"
	reasonSaysNo           = "the recorded answer says no, yet the signal is a grant"
	reasonStandardTick     = "standard tick value"
	reasonUnusualTick      = "value is truthy but not a standard tick (true, 1, on, yes)"
	reasonConfirmedClick   = "confirmed by a separate click"
	reasonReportedStatus   = "the sender reported an explicit subscription status"
	reasonNotAssessed      = "not assessed"
	reasonUnnamedProblem   = "unspecified problem"
	reasonProblemSeparator = "; "
)

// Assess grades a grant or a pending request against the six criteria and
// returns six assessments in Criteria order, each pass, fail or unknown with
// a reason. A withdrawal is never validated (GDPR art. 7(3): withdrawing
// must be as easy as giving, and is honoured without proof): Assess returns
// nil for it.
//
// Inputs:
//   - sig.Problems: a problem whose text starts with a criterion name and a
//     colon ("express: box was pre-ticked", "specific: one checkbox mapped to
//     several brands") makes that criterion fail, with the text after the
//     colon as reason; any other problem makes "unambiguous" fail with the
//     whole text. So a signal with problems always has a fail, and
//     Signal.Valid() false implies Quality.Valid false.
//   - sig.Evidence: Checkbox, PreTicked, Required, ConfirmedAt, OptInLevel,
//     WordingVersion, WordingHash, PartnerList (see each criterion below).
//   - sig.Purpose: a partners grant must name the partner list (informed).
//   - c.FirstMessageAt: the earliest message sent under this consent.
//
// The result is what the ledger keeps beside the signal; Quality.Valid
// decides whether the grant may grant anything.
func Assess(sig Signal, c QualityContext) Quality {
	if sig.Status == StatusWithdrawn {
		return nil
	}
	probs := problemsByCriterion(sig.Problems)
	ev := confirmationEvidence(sig)
	box := readTick(ev.Checkbox, len(probs[CriterionUnambiguous]) > 0)
	return Quality{
		assessExpress(ev, box, probs[CriterionExpress]),
		assessFree(ev, probs[CriterionFree]),
		assessPrior(sig, c, probs[CriterionPrior]),
		assessSpecific(probs[CriterionSpecific]),
		assessInformed(ev, sig.Purpose, probs[CriterionInformed]),
		assessUnambiguous(ev, box, probs[CriterionUnambiguous]),
	}
}

// confirmationEvidence returns the evidence with confirmation claims that
// cannot hold removed: a pending request is by definition not confirmed
// (whatever level the sender names), and a confirmation dated before the
// request it confirms is no confirmation.
func confirmationEvidence(sig Signal) Evidence {
	ev := sig.Evidence
	if sig.Status != StatusGranted || ev.ConfirmedAt != nil && ev.ConfirmedAt.Before(sig.OccurredAt) {
		ev.ConfirmedAt = nil
		switch strings.ToLower(strings.TrimSpace(ev.OptInLevel)) {
		case "confirmed_opt_in", "double_opt_in":
			ev.OptInLevel = ""
		}
	}
	return ev
}

// tick is what a recorded checkbox value (Evidence.Checkbox, the raw text
// of the answer) shows.
type tick int

const (
	tickNone     tick = iota // no value recorded
	tickStandard             // true, 1, on, yes
	tickUnusual              // accepted as a tick, but unusual ("checked", "y", an array's label)
	tickNo                   // a "no" value (false, 0, off, no, unchecked, n)
	tickUnread               // the mapping could not read it (an unambiguous problem)
)

// readTick classifies a recorded checkbox value. Only true/1/on/yes
// (case-insensitive, trimmed) are standard ticks. The values ParseCheckbox
// also accepts ("checked", "y", a non-empty array rendered as its labels:
// "I agree") are unusual: the person did answer, but the answer's meaning
// rests on our reading. A value the mapping flagged as unreadable (a problem
// naming "unambiguous") is unread.
func readTick(raw string, unreadable bool) tick {
	v := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case v == "":
		if unreadable {
			return tickUnread
		}
		return tickNone
	case unreadable:
		return tickUnread
	}
	switch v {
	case "true", "1", "on", "yes":
		return tickStandard
	case "false", "0", "off", "no", "unchecked", "n":
		return tickNo
	}
	return tickUnusual
}

// confirmed reports whether the evidence shows a double-opt-in confirmation:
// a confirmation time, or the sender's opt-in level "confirmed_opt_in"
// (Shopify) / "double_opt_in".
func confirmed(e Evidence) bool {
	if e.ConfirmedAt != nil && !e.ConfirmedAt.IsZero() {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(e.OptInLevel)) {
	case "confirmed_opt_in", "double_opt_in":
		return true
	}
	return false
}

// LiftingEvidence states which evidence makes criterion express pass, and
// so which grants may lift a withdrawal (LiftsWithdrawal) or bring a person
// back after an erasure (Revives). It is the rule assessExpress applies,
// written for people (the README quotes it).
const LiftingEvidence = `Criterion "express" passes, so a grant can lift a withdrawal or revive an erased identity, only on:
- a ticked box: Evidence.checkbox is a tick (true, 1, on, yes; or an accepted unusual tick: checked, y, a label), the box was not pre-ticked (Evidence.pre_ticked not true), and no problem names "express";
- a double opt-in confirmation on a granted signal: Evidence.confirmed_at not before the signal's occurred_at, or Evidence.opt_in_level "confirmed_opt_in" (Shopify) or "double_opt_in" (form mappings).
Nothing else passes: a provider's "subscribed" with only an event name or another opt-in level (Mailchimp subscribe, opt_in_level "list_setting"; Shopify subscribed with "single_opt_in" or "unknown"; a Postmark reactivation), a pre-ticked box, a "no" value, or a pending double opt-in leaves express unknown or failed, and the withdrawal or erasure in force.`

// ImportedWithoutProof reports whether quality q is that of a grant a
// backfill imported with no proof of how it was collected (criterion
// express unknown with ReasonImported).
func ImportedWithoutProof(q Quality) bool {
	for _, a := range q {
		if a.Criterion == CriterionExpress {
			return a.Verdict == Unknown && a.Reason == ReasonImported
		}
	}
	return false
}

// Unknowns renders q's unknown assessments as "criterion: reason" joined
// by "; " ("" when none).
func (q Quality) Unknowns() string {
	var parts []string
	for _, a := range q {
		if a.Verdict == Unknown {
			parts = append(parts, a.String())
		}
	}
	return strings.Join(parts, reasonProblemSeparator)
}

// ExpressPassed reports whether quality q has criterion express passed (see
// LiftingEvidence). A nil or unassessed quality has not.
func ExpressPassed(q Quality) bool {
	for _, a := range q {
		if a.Criterion == CriterionExpress {
			return a.Verdict == Pass
		}
	}
	return false
}

// assessExpress: the person acted — ticked a box or clicked a confirmation.
//
//   - fail: a problem "express: ...", or Evidence.PreTicked true ("box was
//     pre-ticked"), or a recorded "no" value on a grant;
//   - pass: a ticked box (standard or unusual value) or a double-opt-in
//     confirmation;
//   - unknown: a value the mapping could not read ("the answer does not show
//     a tick"), or neither a box nor a confirmation ("provider reported a
//     subscription without how it was collected").
//
// Source: GDPR art. 4(11) ("clear affirmative action") and recital 32
// ("silence, pre-ticked boxes or inactivity should not ... constitute
// consent"); CJEU C-673/17 Planet49 (2019): a pre-ticked box is no valid
// consent; CNIL, "Les bases légales: le consentement" (acte positif clair).
func assessExpress(e Evidence, box tick, problems []string) Assessment {
	fails := problems
	if e.PreTicked != nil && *e.PreTicked {
		fails = appendReason(fails, reasonPreTicked)
	}
	if box == tickNo {
		fails = appendReason(fails, reasonNotATick)
	}
	if len(fails) > 0 {
		return fail(CriterionExpress, fails)
	}
	ticked := box == tickStandard || box == tickUnusual
	switch {
	case ticked && confirmed(e):
		return Assessment{CriterionExpress, Pass, reasonTickedConfirmed}
	case ticked:
		return Assessment{CriterionExpress, Pass, reasonTicked}
	case confirmed(e):
		return Assessment{CriterionExpress, Pass, reasonConfirmed}
	case box == tickUnread:
		return Assessment{CriterionExpress, Unknown, reasonNoTickShown}
	case strings.TrimSpace(e.Imported) != "":
		return Assessment{CriterionExpress, Unknown, ReasonImported}
	}
	return Assessment{CriterionExpress, Unknown, reasonHowUnknown}
}

// assessFree: the person could say no and still get the service.
//
//   - fail: a problem "free: ...", or Evidence.Required (the form could not
//     be sent without ticking the box);
//   - pass: a checkbox value was recorded and the box was not required
//     ("separate optional box");
//   - unknown: no checkbox value ("no evidence the opt-in was optional").
//
// Source: GDPR art. 7(4) and recital 43 (consent is presumed not free when
// the service is made conditional on it); EDPB Guidelines 05/2020 §§ 26-41;
// CNIL, "Les bases légales: le consentement" (consentement libre: pas de
// contrainte, pas de couplage).
func assessFree(e Evidence, problems []string) Assessment {
	fails := problems
	if e.Required {
		fails = appendReason(fails, reasonRequired)
	}
	if len(fails) > 0 {
		return fail(CriterionFree, fails)
	}
	if strings.TrimSpace(e.Checkbox) != "" {
		return Assessment{CriterionFree, Pass, reasonOptionalBox}
	}
	return Assessment{CriterionFree, Unknown, reasonOptionalUnknown}
}

// assessPrior: the opt-in came before any message sent under it.
//
//   - fail: a problem "prior: ..." (a sender or mapping knows the message
//     was sent under this consent before it was given);
//   - unknown: c.FirstMessageAt is set and strictly before sig.OccurredAt.
//     A delivered message may have been transactional (an order
//     confirmation) or sent under an earlier consent (a re-subscription),
//     so it does not prove a breach: strict_quality makes it block;
//   - pass otherwise ("no message recorded before the opt-in"). A message
//     at the very instant of the opt-in is not before it.
//
// The verdict is only as good as the message log the store passes in:
// with no log it passes.
//
// Source: CPCE art. L34-5 ("consentement préalable"); CNIL, "La prospection
// commerciale par courrier électronique" (consentement préalable de la
// personne); GDPR art. 6(1)(a) (consent is a basis only for processing it
// preceded).
func assessPrior(sig Signal, c QualityContext, problems []string) Assessment {
	if len(problems) > 0 {
		return fail(CriterionPrior, problems)
	}
	if !c.FirstMessageAt.IsZero() && c.FirstMessageAt.Before(sig.OccurredAt) {
		return Assessment{CriterionPrior, Unknown, reasonMessageBefore}
	}
	return Assessment{CriterionPrior, Pass, reasonNoMessageBefore}
}

// assessSpecific: one answer for one channel, one brand and one purpose,
// partners apart from the brand.
//
//   - fail: a problem "specific: ..." (the mapping emits one when a single
//     checkbox is mapped to several channels or purposes — brand marketing
//     and partners at once — or to several brands);
//   - pass otherwise.
//
// Source: GDPR art. 6(1)(a) ("one or more specific purposes"), recitals 32
// and 43 (separate consent for separate processing operations); EDPB
// Guidelines 05/2020 §§ 55-61 (granularity); CNIL, "La prospection
// commerciale par courrier électronique" (consent to partners' offers is
// collected apart, e.g. a second box).
func assessSpecific(problems []string) Assessment {
	if len(problems) > 0 {
		return fail(CriterionSpecific, problems)
	}
	return Assessment{CriterionSpecific, Pass, reasonNotBundled}
}

// assessInformed: the person saw what they agreed to and how to withdraw.
// We can only prove it by the wording (notice) shown at collection and, for
// purpose partners, by the list of partners shown.
//
//   - fail: a problem "informed: ...", or purpose partners without
//     Evidence.PartnerList ("the list of partners shown was not kept"):
//     consent to partners' offers is informed only if it names the
//     companies that will rely on it;
//   - pass: Evidence.WordingVersion or Evidence.WordingHash is kept (and,
//     for partners, Evidence.PartnerList);
//   - unknown otherwise ("no wording or notice version kept").
//
// Source: GDPR art. 4(11) ("informed"), art. 7(1) (the controller must be
// able to demonstrate consent), art. 7(3) (informed of the right to
// withdraw before giving consent), recital 42; EDPB Guidelines 05/2020
// §§ 62-74 (the identity of each controller relying on the consent);
// CNIL, "Les bases légales: le consentement" (consentement éclairé); CNIL
// sanctions against EDF (SAN-2022-021, 2022) and Foriou (2024): partner
// consent collected without naming the partners is not informed.
func assessInformed(e Evidence, purpose Purpose, problems []string) Assessment {
	fails := problems
	if purpose == PurposePartners && strings.TrimSpace(e.PartnerList) == "" {
		fails = appendReason(fails, reasonNoPartnerList)
	}
	if len(fails) > 0 {
		return fail(CriterionInformed, fails)
	}
	switch {
	case strings.TrimSpace(e.WordingVersion) != "":
		return Assessment{CriterionInformed, Pass, reasonWordingVersion}
	case strings.TrimSpace(e.WordingHash) != "":
		return Assessment{CriterionInformed, Pass, reasonWordingHash}
	}
	return Assessment{CriterionInformed, Unknown, reasonNoWording}
}

// assessUnambiguous: there is no doubt the answer was "yes".
//
//   - fail: a problem "unambiguous: ..." or a problem naming no criterion
//     (free text, "maybe", a value that cannot be mapped), or a "no" value
//     recorded on a grant;
//   - pass: a standard tick value (true, 1, on, yes); with no checkbox
//     value, a double-opt-in confirmation ("confirmed by a separate click")
//     or a sender's explicit subscription status (a provider's "subscribed"
//     event is a status, not a value we read — how it was collected is the
//     express criterion's question);
//   - unknown: a value accepted as ticked but unusual ("checked", "y", an
//     array's label such as "I agree").
//
// Source: GDPR art. 4(11) ("unambiguous indication"), recital 32; EDPB
// Guidelines 05/2020 §§ 75-82; CNIL, "Les bases légales: le consentement"
// (consentement univoque).
func assessUnambiguous(e Evidence, box tick, problems []string) Assessment {
	fails := problems
	if box == tickNo {
		fails = appendReason(fails, reasonSaysNo)
	}
	if len(fails) > 0 {
		return fail(CriterionUnambiguous, fails)
	}
	switch box {
	case tickStandard:
		return Assessment{CriterionUnambiguous, Pass, reasonStandardTick}
	case tickUnusual:
		return Assessment{CriterionUnambiguous, Unknown, reasonUnusualTick}
	}
	if confirmed(e) {
		return Assessment{CriterionUnambiguous, Pass, reasonConfirmedClick}
	}
	return Assessment{CriterionUnambiguous, Pass, reasonReportedStatus}
}

// problemsByCriterion sorts a signal's problems by the criterion they name
// ("express: box was pre-ticked" → express, "box was pre-ticked"). A problem
// that names no criterion counts against "unambiguous" with its whole text.
func problemsByCriterion(problems []string) map[Criterion][]string {
	if len(problems) == 0 {
		return nil
	}
	out := make(map[Criterion][]string, len(problems))
	for _, p := range problems {
		c, reason := parseProblem(p)
		out[c] = appendReason(out[c], reason)
	}
	return out
}

// parseProblem splits "criterion: reason". The criterion name is matched
// case-insensitively after trimming.
func parseProblem(p string) (Criterion, string) {
	text := strings.TrimSpace(p)
	if name, reason, ok := strings.Cut(text, ":"); ok {
		c := Criterion(strings.ToLower(strings.TrimSpace(name)))
		if slices.Contains(Criteria, c) {
			if reason = strings.TrimSpace(reason); reason == "" {
				reason = reasonUnnamedProblem
			}
			return c, reason
		}
	}
	if text == "" {
		text = reasonUnnamedProblem
	}
	return CriterionUnambiguous, text
}

// appendReason appends r unless it is already there. It never modifies the
// backing array of its argument.
func appendReason(rs []string, r string) []string {
	if slices.Contains(rs, r) {
		return rs
	}
	return append(slices.Clip(rs), r)
}

func fail(c Criterion, reasons []string) Assessment {
	return Assessment{c, Fail, strings.Join(reasons, reasonProblemSeparator)}
}

// String renders an assessment as "criterion: reason" ("express: box was
// pre-ticked"), the form eligibility answers use in Answer.Detail.
func (a Assessment) String() string { return string(a.Criterion) + ": " + a.Reason }

// Blocking returns the assessments that stop the grant from granting: every
// fail, and with strict (policy.strict_quality) every unknown too. Under
// strict, a criterion missing from q (a quality that was never assessed, or
// a verdict that is neither pass nor fail) is reported as unknown "not
// assessed": strictness fails closed. Without strict a missing criterion
// does not block. Withdrawals carry a nil quality and are never validated:
// do not call Blocking for them.
//
// Source: docs/rules.md ("each pass / fail / unknown"); GDPR art. 7(1)
// (the controller must be able to demonstrate consent — strict mode treats
// what cannot be demonstrated as missing).
func (q Quality) Blocking(strict bool) []Assessment {
	var out []Assessment
	for _, c := range Criteria {
		i := slices.IndexFunc(q, func(a Assessment) bool { return a.Criterion == c })
		if i < 0 {
			if strict {
				out = append(out, Assessment{c, Unknown, reasonNotAssessed})
			}
			continue
		}
		switch a := q[i]; a.Verdict {
		case Pass:
		case Fail:
			out = append(out, a)
		default:
			if strict {
				a.Verdict = Unknown
				out = append(out, a)
			}
		}
	}
	return out
}

// Valid reports whether the grant may grant: no blocking assessment (see
// Blocking).
func (q Quality) Valid(strict bool) bool { return len(q.Blocking(strict)) == 0 }

// Detail renders the blocking assessments as "criterion: reason" joined by
// "; " ("express: box was pre-ticked; informed: no wording or notice
// version kept"), or "" when nothing blocks.
func (q Quality) Detail(strict bool) string {
	b := q.Blocking(strict)
	parts := make([]string, len(b))
	for i, a := range b {
		parts[i] = a.String()
	}
	return strings.Join(parts, reasonProblemSeparator)
}
