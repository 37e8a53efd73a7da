package consent

import (
	"strings"
	"testing"
	"time"
)

// Grants as the connectors build them, after a withdrawal (or erasure) at
// ltOut.
var ltOut = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func ltSignal(at time.Time, ev Evidence, problems ...string) Signal {
	return Signal{Subject: Subject{Email: dcPerson}, Channel: ChannelEmail, Brand: "acme", Purpose: PurposeMarketing,
		Status: StatusGranted, OccurredAt: at, Source: "src", Evidence: ev, Problems: problems}
}

func TestLiftsWithdrawalAndRevives(t *testing.T) {
	after := ltOut.Add(time.Hour)
	confirmedAt := after.Add(time.Minute)
	early := after.Add(-time.Minute)
	for _, tc := range []struct {
		name   string
		sig    Signal
		lax    bool // lifts / revives under the lax policy
		strict bool // under strict_quality
	}{
		// A provider's "subscribed" carries no evidence of an express act.
		{"mailchimp subscribe", ltSignal(after, Evidence{Event: "subscribe", ListID: "l1", OptInLevel: "list_setting", IP: "192.0.2.1"}), false, false},
		{"shopify subscribed, single opt-in", ltSignal(after, Evidence{Event: "subscribed", Field: "email_marketing_consent", OptInLevel: "single_opt_in"}), false, false},
		{"shopify subscribed, unknown level", ltSignal(after, Evidence{Event: "subscribed", OptInLevel: "unknown"}), false, false},
		{"postmark-like reactivation", ltSignal(after, Evidence{Event: "reactivation", ListID: "outbound"}), false, false},
		{"crm status change", ltSignal(after, Evidence{Event: "propertyChange", Field: "hs_email_optout"}), false, false},
		// Express acts.
		{"ticked box", ltSignal(after, Evidence{Checkbox: "on", WordingVersion: "v3"}), true, true},
		{"ticked box, no wording: strict refuses", ltSignal(after, Evidence{Checkbox: "true"}), true, false},
		{"unusual tick value", ltSignal(after, Evidence{Checkbox: "checked", WordingVersion: "v3"}), true, false},
		{"confirmed double opt-in", ltSignal(after, Evidence{ConfirmedAt: &confirmedAt, OptInLevel: "double_opt_in", WordingVersion: "v3"}), true, false},
		{"shopify confirmed opt-in", ltSignal(after, Evidence{Event: "subscribed", OptInLevel: "confirmed_opt_in", ConfirmedAt: &after}), true, false},
		{"ticked box and confirmation", ltSignal(after, Evidence{Checkbox: "yes", ConfirmedAt: &confirmedAt, WordingHash: "ab12"}), true, true},
		// Express acts that do not count.
		{"pre-ticked box", ltSignal(after, Evidence{Checkbox: "on", PreTicked: dcBoolPtr(true), WordingVersion: "v3"}, "express: box was pre-ticked"), false, false},
		{"pre-ticked without a problem", ltSignal(after, Evidence{Checkbox: "on", PreTicked: dcBoolPtr(true), WordingVersion: "v3"}), false, false},
		{"a 'no' value", ltSignal(after, Evidence{Checkbox: "no"}), false, false},
		{"confirmation before the request", ltSignal(after, Evidence{ConfirmedAt: &early, OptInLevel: "double_opt_in"}), false, false},
		{"required box (not free)", ltSignal(after, Evidence{Checkbox: "on", Required: true, WordingVersion: "v3"}), false, false},
		{"ticked box, at the withdrawal instant", ltSignal(ltOut, Evidence{Checkbox: "on", WordingVersion: "v3"}), false, false},
		{"ticked box, 1µs after", ltSignal(ltOut.Add(time.Microsecond), Evidence{Checkbox: "on", WordingVersion: "v3"}), true, true},
		{"ticked box, before", ltSignal(ltOut.Add(-time.Hour), Evidence{Checkbox: "on", WordingVersion: "v3"}), false, false},
		{"pending request", func() Signal {
			s := ltSignal(after, Evidence{Checkbox: "on", WordingVersion: "v3"})
			s.Status = StatusPending
			return s
		}(), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := Assess(tc.sig, QualityContext{})
			st := StateFact{Status: tc.sig.Status, OccurredAt: tc.sig.OccurredAt, Quality: q}
			for _, pc := range []struct {
				p    Policy
				want bool
			}{{Policy{}, tc.lax}, {Policy{StrictQuality: true}, tc.strict}} {
				if got := LiftsWithdrawal(st, ltOut, pc.p); got != pc.want {
					t.Errorf("LiftsWithdrawal strict=%v = %v, want %v (quality %v)", pc.p.StrictQuality, got, pc.want, q)
				}
				if got := Revives(tc.sig, q, ltOut, pc.p); got != pc.want {
					t.Errorf("Revives strict=%v = %v, want %v", pc.p.StrictQuality, got, pc.want)
				}
				// Decide agrees: the withdrawal holds unless lifted.
				f := dcWith(dcFacts(dcPerson), dcEmail, st.Status, st.OccurredAt, q)
				f.Withdrawals = map[Key]time.Time{dcEmail: ltOut}
				a := Decide(f, dcEmail, pc.p, after.Add(time.Hour))
				if withdrawn := a.Reason == ReasonWithdrawn; withdrawn == pc.want {
					t.Errorf("Decide strict=%v: %+v, lift=%v", pc.p.StrictQuality, a, pc.want)
				}
			}
		})
	}
}

func TestRevivesNeedsAGrant(t *testing.T) {
	s := ltSignal(ltOut.Add(time.Hour), Evidence{Checkbox: "on", WordingVersion: "v3"})
	q := Assess(s, QualityContext{})
	if !Revives(s, q, ltOut, Policy{}) {
		t.Fatal("a ticked box should revive")
	}
	w := s
	w.Status = StatusWithdrawn
	if Revives(w, q, ltOut, Policy{}) {
		t.Error("a withdrawal revived")
	}
	bad := s
	bad.Problems = []string{"something odd"}
	if Revives(bad, q, ltOut, Policy{}) {
		t.Error("a signal with problems revived")
	}
	if Revives(s, nil, ltOut, Policy{}) {
		t.Error("an unassessed grant revived")
	}
	if !Revives(s, q, time.Time{}, Policy{}) {
		t.Error("a zero erasure time should not block")
	}
}

func TestExpressPassed(t *testing.T) {
	if ExpressPassed(nil) {
		t.Error("nil quality passed")
	}
	if !ExpressPassed(dcGood) || ExpressPassed(dcUnknown) || ExpressPassed(dcBad) {
		t.Error("ExpressPassed disagrees with Assess")
	}
	for _, word := range []string{"pre_ticked", "confirmed_at", "confirmed_opt_in", "double_opt_in", "Mailchimp", "Shopify", "Postmark"} {
		if !strings.Contains(LiftingEvidence, word) {
			t.Errorf("LiftingEvidence does not mention %q", word)
		}
	}
}

func dcBoolPtr(b bool) *bool { return &b }
