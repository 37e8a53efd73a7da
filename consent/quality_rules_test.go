package consent

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var qrAt = time.Date(2025, 9, 1, 10, 0, 0, 0, time.UTC)

// qrGrant is a well-evidenced grant: a standard tick, a wording version.
func qrGrant() Signal {
	return Signal{
		Subject: Subject{Email: "jeanne@example.fr"}, Channel: ChannelEmail, Brand: "acme",
		Purpose: PurposeMarketing, Status: StatusGranted, OccurredAt: qrAt, Source: "form",
		Evidence: Evidence{Checkbox: "true", WordingVersion: "v3", FormID: "signup"},
	}
}

func qrBool(b bool) *bool { return &b }

func qrTime(t time.Time) *time.Time { return &t }

func TestAssessCriteria(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*Signal)
		ctx     QualityContext
		crit    Criterion
		verdict Verdict
		reason  string // exact
	}{
		// express
		{"express: standard tick", nil, QualityContext{}, CriterionExpress, Pass, reasonTicked},
		{"express: tick in capitals", func(s *Signal) { s.Evidence.Checkbox = " ON " }, QualityContext{}, CriterionExpress, Pass, reasonTicked},
		{"express: unusual tick is still an act", func(s *Signal) { s.Evidence.Checkbox = "checked" }, QualityContext{}, CriterionExpress, Pass, reasonTicked},
		{"express: array label is still an act", func(s *Signal) { s.Evidence.Checkbox = "I agree" }, QualityContext{}, CriterionExpress, Pass, reasonTicked},
		{"express: pre-ticked evidence", func(s *Signal) { s.Evidence.PreTicked = qrBool(true) }, QualityContext{}, CriterionExpress, Fail, reasonPreTicked},
		{"express: not pre-ticked", func(s *Signal) { s.Evidence.PreTicked = qrBool(false) }, QualityContext{}, CriterionExpress, Pass, reasonTicked},
		{"express: mapping problem and evidence agree, one reason", func(s *Signal) {
			s.Evidence.PreTicked = qrBool(true)
			s.Problems = []string{"express: box was pre-ticked"}
		}, QualityContext{}, CriterionExpress, Fail, reasonPreTicked},
		{"express: problem alone", func(s *Signal) { s.Problems = []string{"express: consent inferred from terms acceptance"} }, QualityContext{}, CriterionExpress, Fail, "consent inferred from terms acceptance"},
		{"express: problem without text", func(s *Signal) { s.Problems = []string{"express:"} }, QualityContext{}, CriterionExpress, Fail, reasonUnnamedProblem},
		{"express: criterion name is case-insensitive", func(s *Signal) { s.Problems = []string{" Express : silence"} }, QualityContext{}, CriterionExpress, Fail, "silence"},
		{"express: a no value on a grant", func(s *Signal) { s.Evidence.Checkbox = "false" }, QualityContext{}, CriterionExpress, Fail, reasonNotATick},
		{"express: tick and confirmation", func(s *Signal) { s.Evidence.ConfirmedAt = qrTime(qrAt.Add(time.Hour)) }, QualityContext{}, CriterionExpress, Pass, reasonTickedConfirmed},
		{"express: confirmation time only", func(s *Signal) {
			s.Evidence.Checkbox = ""
			s.Evidence.ConfirmedAt = qrTime(qrAt)
		}, QualityContext{}, CriterionExpress, Pass, reasonConfirmed},
		{"express: confirmed_opt_in level only", func(s *Signal) {
			s.Evidence.Checkbox = ""
			s.Evidence.OptInLevel = "confirmed_opt_in"
		}, QualityContext{}, CriterionExpress, Pass, reasonConfirmed},
		{"express: double_opt_in level, any case", func(s *Signal) {
			s.Evidence.Checkbox = ""
			s.Evidence.OptInLevel = " Double_Opt_In "
		}, QualityContext{}, CriterionExpress, Pass, reasonConfirmed},
		{"express: zero confirmation time is no confirmation", func(s *Signal) {
			s.Evidence.Checkbox = ""
			s.Evidence.ConfirmedAt = qrTime(time.Time{})
		}, QualityContext{}, CriterionExpress, Unknown, reasonHowUnknown},
		{"express: single opt-in level says nothing", func(s *Signal) {
			s.Evidence.Checkbox = ""
			s.Evidence.OptInLevel = "single_opt_in"
		}, QualityContext{}, CriterionExpress, Unknown, reasonHowUnknown},
		{"express: provider subscription (Mailchimp list_setting)", func(s *Signal) {
			s.Evidence.Checkbox = ""
			s.Evidence.OptInLevel = "list_setting"
		}, QualityContext{}, CriterionExpress, Unknown, reasonHowUnknown},
		{"express: unreadable value", func(s *Signal) {
			s.Evidence.Checkbox = "maybe"
			s.Problems = []string{"unambiguous: value cannot be mapped"}
		}, QualityContext{}, CriterionExpress, Unknown, reasonNoTickShown},
		{"express: pre-ticked beats confirmation", func(s *Signal) {
			s.Evidence.PreTicked = qrBool(true)
			s.Evidence.ConfirmedAt = qrTime(qrAt)
		}, QualityContext{}, CriterionExpress, Fail, reasonPreTicked},

		// free
		{"free: optional box", nil, QualityContext{}, CriterionFree, Pass, reasonOptionalBox},
		{"free: required box", func(s *Signal) { s.Evidence.Required = true }, QualityContext{}, CriterionFree, Fail, reasonRequired},
		{"free: no box", func(s *Signal) { s.Evidence.Checkbox = "" }, QualityContext{}, CriterionFree, Unknown, reasonOptionalUnknown},
		{"free: blank box value", func(s *Signal) { s.Evidence.Checkbox = "  " }, QualityContext{}, CriterionFree, Unknown, reasonOptionalUnknown},
		{"free: problem and required", func(s *Signal) {
			s.Evidence.Required = true
			s.Problems = []string{"free: bundled with the terms"}
		}, QualityContext{}, CriterionFree, Fail, "bundled with the terms; " + reasonRequired},

		// prior
		{"prior: no message known", nil, QualityContext{}, CriterionPrior, Pass, reasonNoMessageBefore},
		{"prior: message a day before", nil, QualityContext{FirstMessageAt: qrAt.Add(-24 * time.Hour)}, CriterionPrior, Unknown, reasonMessageBefore},
		{"prior: message 1µs before", nil, QualityContext{FirstMessageAt: qrAt.Add(-time.Microsecond)}, CriterionPrior, Unknown, reasonMessageBefore},
		{"prior: message at the same instant", nil, QualityContext{FirstMessageAt: qrAt}, CriterionPrior, Pass, reasonNoMessageBefore},
		{"prior: same instant in another zone", nil, QualityContext{FirstMessageAt: qrAt.In(time.FixedZone("CEST", 2*3600))}, CriterionPrior, Pass, reasonNoMessageBefore},
		{"prior: message after", nil, QualityContext{FirstMessageAt: qrAt.Add(time.Microsecond)}, CriterionPrior, Pass, reasonNoMessageBefore},
		{"prior: problem", func(s *Signal) { s.Problems = []string{"prior: imported list"} }, QualityContext{}, CriterionPrior, Fail, "imported list"},

		// specific
		{"specific: one box one key", nil, QualityContext{}, CriterionSpecific, Pass, reasonNotBundled},
		{"specific: several channels", func(s *Signal) {
			s.Problems = []string{"specific: one checkbox mapped to several channels/purposes"}
		}, QualityContext{}, CriterionSpecific, Fail, "one checkbox mapped to several channels/purposes"},
		{"specific: several brands and channels", func(s *Signal) {
			s.Problems = []string{"specific: one checkbox mapped to several channels/purposes", "specific: one checkbox mapped to several brands"}
		}, QualityContext{}, CriterionSpecific, Fail, "one checkbox mapped to several channels/purposes; one checkbox mapped to several brands"},

		// informed
		{"informed: wording version", nil, QualityContext{}, CriterionInformed, Pass, reasonWordingVersion},
		{"informed: wording hash", func(s *Signal) {
			s.Evidence.WordingVersion = ""
			s.Evidence.WordingHash = "sha256:ab12"
		}, QualityContext{}, CriterionInformed, Pass, reasonWordingHash},
		{"informed: nothing kept", func(s *Signal) { s.Evidence.WordingVersion = " " }, QualityContext{}, CriterionInformed, Unknown, reasonNoWording},
		{"informed: problem", func(s *Signal) { s.Problems = []string{"informed: notice hidden"} }, QualityContext{}, CriterionInformed, Fail, "notice hidden"},

		// unambiguous
		{"unambiguous: standard tick", nil, QualityContext{}, CriterionUnambiguous, Pass, reasonStandardTick},
		{"unambiguous: 1", func(s *Signal) { s.Evidence.Checkbox = "1" }, QualityContext{}, CriterionUnambiguous, Pass, reasonStandardTick},
		{"unambiguous: yes", func(s *Signal) { s.Evidence.Checkbox = "Yes" }, QualityContext{}, CriterionUnambiguous, Pass, reasonStandardTick},
		{"unambiguous: checked", func(s *Signal) { s.Evidence.Checkbox = "checked" }, QualityContext{}, CriterionUnambiguous, Unknown, reasonUnusualTick},
		{"unambiguous: y", func(s *Signal) { s.Evidence.Checkbox = "y" }, QualityContext{}, CriterionUnambiguous, Unknown, reasonUnusualTick},
		{"unambiguous: array label", func(s *Signal) { s.Evidence.Checkbox = "I agree" }, QualityContext{}, CriterionUnambiguous, Unknown, reasonUnusualTick},
		{"unambiguous: mapped problem", func(s *Signal) {
			s.Evidence.Checkbox = "maybe"
			s.Problems = []string{"unambiguous: value cannot be mapped"}
		}, QualityContext{}, CriterionUnambiguous, Fail, "value cannot be mapped"},
		{"unambiguous: problem naming no criterion", func(s *Signal) { s.Problems = []string{"free text answer"} }, QualityContext{}, CriterionUnambiguous, Fail, "free text answer"},
		{"unambiguous: problem with an unknown prefix keeps its whole text", func(s *Signal) { s.Problems = []string{"lawful: no"} }, QualityContext{}, CriterionUnambiguous, Fail, "lawful: no"},
		{"unambiguous: empty problem", func(s *Signal) { s.Problems = []string{""} }, QualityContext{}, CriterionUnambiguous, Fail, reasonUnnamedProblem},
		{"unambiguous: a no value on a grant", func(s *Signal) { s.Evidence.Checkbox = "0" }, QualityContext{}, CriterionUnambiguous, Fail, reasonSaysNo},
		{"unambiguous: confirmation only", func(s *Signal) {
			s.Evidence.Checkbox = ""
			s.Evidence.ConfirmedAt = qrTime(qrAt)
		}, QualityContext{}, CriterionUnambiguous, Pass, reasonConfirmedClick},
		{"unambiguous: provider status only", func(s *Signal) { s.Evidence.Checkbox = "" }, QualityContext{}, CriterionUnambiguous, Pass, reasonReportedStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := qrGrant()
			if tc.edit != nil {
				tc.edit(&sig)
			}
			q := Assess(sig, tc.ctx)
			a := qrFind(t, q, tc.crit)
			if a.Verdict != tc.verdict || a.Reason != tc.reason {
				t.Errorf("%s = %s %q, want %s %q", tc.crit, a.Verdict, a.Reason, tc.verdict, tc.reason)
			}
		})
	}
}

func qrFind(t *testing.T, q Quality, c Criterion) Assessment {
	t.Helper()
	for _, a := range q {
		if a.Criterion == c {
			return a
		}
	}
	t.Fatalf("no %s assessment in %v", c, q)
	return Assessment{}
}

func TestAssessShape(t *testing.T) {
	for _, st := range []Status{StatusGranted, StatusPending} {
		sig := qrGrant()
		sig.Status = st
		q := Assess(sig, QualityContext{})
		if len(q) != len(Criteria) {
			t.Fatalf("%s: %d assessments, want %d", st, len(q), len(Criteria))
		}
		for i, a := range q {
			if a.Criterion != Criteria[i] {
				t.Errorf("%s: assessment %d is %s, want %s", st, i, a.Criterion, Criteria[i])
			}
			if a.Reason == "" {
				t.Errorf("%s: %s has no reason", st, a.Criterion)
			}
		}
		if !q.Valid(true) {
			t.Errorf("%s: a well-evidenced opt-in is blocked under strict: %s", st, q.Detail(true))
		}
	}
}

// Withdrawals are never validated: no quality, whatever they carry.
func TestAssessWithdrawalIsNeverValidated(t *testing.T) {
	sig := qrGrant()
	sig.Status = StatusWithdrawn
	sig.Evidence.PreTicked = qrBool(true)
	sig.Evidence.Required = true
	sig.Problems = []string{"express: box was pre-ticked"}
	if q := Assess(sig, QualityContext{FirstMessageAt: qrAt.Add(-time.Hour)}); q != nil {
		t.Errorf("Assess(withdrawal) = %v, want nil", q)
	}
}

// Every problem makes a fail, so a signal that is not Valid() never has a
// valid quality; and Assess leaves the signal's problems alone.
func TestAssessProblemsAlwaysFail(t *testing.T) {
	for _, p := range []string{"express: x", "free: x", "prior: x", "specific: x", "informed: x", "unambiguous: x", "x", "", ":", "express"} {
		sig := qrGrant()
		sig.Problems = make([]string, 1, 4)
		sig.Problems[0] = p
		q := Assess(sig, QualityContext{})
		if q.Valid(false) {
			t.Errorf("problem %q: quality valid (%v)", p, q)
		}
		if len(sig.Problems) != 1 || sig.Problems[:2][1] != "" {
			t.Errorf("problem %q: Assess wrote into the signal's problems", p)
		}
	}
}

func TestQualityBlocking(t *testing.T) {
	pass := func(c Criterion) Assessment { return Assessment{c, Pass, "ok"} }
	allPass := Quality{}
	for _, c := range Criteria {
		allPass = append(allPass, pass(c))
	}
	with := func(i int, a Assessment) Quality {
		q := slices.Clone(allPass)
		q[i] = a
		return q
	}
	for _, tc := range []struct {
		name              string
		q                 Quality
		lax, strict       []Criterion
		laxDetail, strDet string
	}{
		{"all pass", allPass, nil, nil, "", ""},
		{"one unknown", with(4, Assessment{CriterionInformed, Unknown, "no wording or notice version kept"}),
			nil, []Criterion{CriterionInformed}, "", "informed: no wording or notice version kept"},
		{"one fail", with(0, Assessment{CriterionExpress, Fail, "box was pre-ticked"}),
			[]Criterion{CriterionExpress}, []Criterion{CriterionExpress}, "express: box was pre-ticked", "express: box was pre-ticked"},
		{"corrupt verdict counts as unknown", with(1, Assessment{CriterionFree, "", "?"}),
			nil, []Criterion{CriterionFree}, "", "free: ?"},
		{"nil quality: nothing assessed", nil, nil, Criteria, "", ""},
		{"missing criterion", allPass[:5], nil, []Criterion{CriterionUnambiguous}, "", "unambiguous: " + reasonNotAssessed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				want, wantDetail := tc.lax, tc.laxDetail
				if strict {
					want, wantDetail = tc.strict, tc.strDet
				}
				var got []Criterion
				for _, a := range tc.q.Blocking(strict) {
					got = append(got, a.Criterion)
					if a.Verdict == Pass {
						t.Errorf("strict=%v: a pass blocks", strict)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("strict=%v: blocking %v, want %v", strict, got, want)
				}
				if tc.q.Valid(strict) != (len(want) == 0) {
					t.Errorf("strict=%v: Valid = %v", strict, tc.q.Valid(strict))
				}
				if d := tc.q.Detail(strict); wantDetail != "" && d != wantDetail {
					t.Errorf("strict=%v: Detail = %q, want %q", strict, d, wantDetail)
				}
			}
		})
	}
}

// The realistic grants of each connector family, end to end.
func TestAssessRealisticGrants(t *testing.T) {
	mailchimp := qrGrant()
	mailchimp.Evidence = Evidence{EventID: "e1", ListID: "l1", OptInLevel: "list_setting"}
	shopify := qrGrant()
	shopify.Evidence = Evidence{OptInLevel: "confirmed_opt_in", ConfirmedAt: qrTime(qrAt)}
	preTicked := qrGrant()
	preTicked.Evidence.PreTicked = qrBool(true)
	preTicked.Problems = []string{"express: box was pre-ticked"}
	for _, tc := range []struct {
		name        string
		sig         Signal
		lax, strict bool
	}{
		{"form with wording", qrGrant(), true, true},
		{"mailchimp subscribe", mailchimp, true, false},
		{"shopify confirmed", shopify, true, false}, // free + informed unknown
		{"pre-ticked form box", preTicked, false, false},
	} {
		q := Assess(tc.sig, QualityContext{})
		if q.Valid(false) != tc.lax || q.Valid(true) != tc.strict {
			t.Errorf("%s: valid lax=%v strict=%v, want %v %v (%v)", tc.name, q.Valid(false), q.Valid(true), tc.lax, tc.strict, q)
		}
	}
}

func FuzzAssess(f *testing.F) {
	f.Add("true", "express: box was pre-ticked", "", "v1", false, false, uint8(0), int64(0))
	f.Add("I agree", "", "confirmed_opt_in", "", true, true, uint8(1), int64(-1))
	f.Add("maybe", "unambiguous: value cannot be mapped", "", "", false, false, uint8(2), int64(3600))
	f.Add("\xff\x00", ":", "double_opt_in", "\x00", true, false, uint8(0), int64(-1<<62))
	f.Fuzz(func(t *testing.T, box, problem, level, wording string, pre, required bool, status uint8, msgOffset int64) {
		sig := qrGrant()
		sig.Status = []Status{StatusGranted, StatusPending, StatusWithdrawn}[status%3]
		sig.Evidence = Evidence{Checkbox: box, OptInLevel: level, WordingVersion: wording, PreTicked: &pre, Required: required}
		if problem != "" {
			sig.Problems = []string{problem}
		}
		q := Assess(sig, QualityContext{FirstMessageAt: qrAt.Add(time.Duration(msgOffset))})
		if sig.Status == StatusWithdrawn {
			if q != nil {
				t.Fatal("withdrawal assessed")
			}
			return
		}
		if len(q) != len(Criteria) {
			t.Fatalf("%d assessments", len(q))
		}
		for i, a := range q {
			if a.Criterion != Criteria[i] || a.Reason == "" {
				t.Fatalf("bad assessment %d: %+v", i, a)
			}
			switch a.Verdict {
			case Pass, Fail, Unknown:
			default:
				t.Fatalf("verdict %q", a.Verdict)
			}
		}
		if problem != "" && q.Valid(false) {
			t.Fatal("a problem did not make a fail")
		}
		if pre && q[0].Verdict != Fail {
			t.Fatal("pre-ticked box passed express")
		}
		if required && q[1].Verdict != Fail {
			t.Fatal("required box passed free")
		}
		if q.Valid(true) && !q.Valid(false) {
			t.Fatal("strict is laxer than non-strict")
		}
		if d := q.Detail(false); (d == "") != q.Valid(false) || strings.Contains(d, "pass") && q.Valid(false) {
			t.Fatalf("Detail %q disagrees with Valid", d)
		}
	})
}

func TestAssessConfirmationThatCannotHold(t *testing.T) {
	at := time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC)
	before := at.Add(-24 * time.Hour)
	after := at.Add(time.Hour)
	express := func(s Signal) Verdict { return Assess(s, QualityContext{})[0].Verdict }
	base := Signal{Status: StatusGranted, OccurredAt: at}
	s := base
	s.Evidence.ConfirmedAt = &after
	if v := express(s); v != Pass {
		t.Errorf("confirmed after the request: express %s, want pass", v)
	}
	s.Evidence.ConfirmedAt = &before
	if v := express(s); v != Unknown {
		t.Errorf("confirmed before the request: express %s, want unknown", v)
	}
	p := base
	p.Status = StatusPending
	p.Evidence.OptInLevel = "confirmed_opt_in"
	if v := express(p); v != Unknown {
		t.Errorf("pending with a confirmed level: express %s, want unknown", v)
	}
}
