package consent

import (
	"strings"
	"testing"
)

func TestAssessInformedPartners(t *testing.T) {
	partners := func(ev Evidence) Signal {
		s := qrGrant()
		s.Purpose = PurposePartners
		s.Evidence = ev
		return s
	}
	informed := func(q Quality) Assessment {
		for _, a := range q {
			if a.Criterion == CriterionInformed {
				return a
			}
		}
		t.Fatal("no informed assessment")
		return Assessment{}
	}
	for _, tc := range []struct {
		name    string
		sig     Signal
		verdict Verdict
		reason  string
	}{
		{"partners without a list", partners(Evidence{Checkbox: "on", WordingVersion: "v3"}), Fail, reasonNoPartnerList},
		{"partners with blank list", partners(Evidence{Checkbox: "on", WordingVersion: "v3", PartnerList: "  "}), Fail, reasonNoPartnerList},
		{"partners with a list and wording", partners(Evidence{Checkbox: "on", WordingVersion: "v3", PartnerList: "partners-v7"}), Pass, reasonWordingVersion},
		{"partners with a list, no wording", partners(Evidence{Checkbox: "on", PartnerList: "partners-v7"}), Unknown, reasonNoWording},
		{"partners, informed problem and no list", func() Signal {
			s := partners(Evidence{Checkbox: "on"})
			s.Problems = []string{"informed: notice missing"}
			return s
		}(), Fail, "notice missing; " + reasonNoPartnerList},
		{"marketing needs no list", qrGrant(), Pass, reasonWordingVersion},
		{"pending partners without a list", func() Signal {
			s := partners(Evidence{Checkbox: "on", WordingVersion: "v3"})
			s.Status = StatusPending
			return s
		}(), Fail, reasonNoPartnerList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := informed(Assess(tc.sig, QualityContext{}))
			if a.Verdict != tc.verdict || a.Reason != tc.reason {
				t.Errorf("informed = %s %q, want %s %q", a.Verdict, a.Reason, tc.verdict, tc.reason)
			}
		})
	}

	// Decide: a partners grant without the list is no consent.
	q := Assess(partners(Evidence{Checkbox: "on", WordingVersion: "v3"}), QualityContext{})
	a := Decide(dcWith(dcFacts(dcPerson), dcPartners, StatusGranted, dcGrant, q), dcPartners, Policy{}, dcNow)
	if a.Allowed || a.Reason != ReasonInvalidOptIn || !strings.HasPrefix(a.Detail, "informed: "+reasonNoPartnerList) {
		t.Errorf("partners grant without list: %+v", a)
	}
	q = Assess(partners(Evidence{Checkbox: "on", WordingVersion: "v3", PartnerList: "partners-v7"}), QualityContext{})
	if a := Decide(dcWith(dcFacts(dcPerson), dcPartners, StatusGranted, dcGrant, q), dcPartners, Policy{StrictQuality: true}, dcNow); !a.Allowed {
		t.Errorf("partners grant with list: %+v", a)
	}
}
