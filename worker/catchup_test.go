package worker

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/store"
)

// TestCatchUpRows: which rows a page yields for a destination, case by
// case — the rule is the eligibility one (consent.WithdrawnAt on the
// merged facts), the rows are reconciliation's (Route.suppression).
func TestCatchUpRows(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	rt := Route{Destination: "mg", Brand: "acme", Channels: []consent.Channel{consent.ChannelEmail}, Purposes: []consent.Purpose{consent.PurposeMarketing}}
	k := consent.Key{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing}
	express := consent.Quality{{Criterion: consent.CriterionExpress, Verdict: consent.Pass}}
	unknown := consent.Quality{{Criterion: consent.CriterionExpress, Verdict: consent.Unknown}}
	member := func(id int64, email string) store.Member {
		return store.Member{SubjectID: id, Email: email, EmailOriginal: email}
	}
	facts := func(states map[consent.Key]consent.StateFact, withdrawn ...time.Time) consent.Facts {
		f := consent.Facts{Known: true, States: states, Withdrawals: map[consent.Key]time.Time{}}
		for _, w := range withdrawn {
			f.Withdrawals[k] = w
		}
		return f
	}
	withdrawal := func(event, subject int64, at time.Time, source string) store.SetWithdrawal {
		return store.SetWithdrawal{EventID: event, SubjectID: subject, Channel: "email", Brand: "acme", Purpose: "marketing", OccurredAt: at, Source: source, Reason: "unsubscribe"}
	}
	withdrawnState := map[consent.Key]consent.StateFact{k: {Status: consent.StatusWithdrawn, OccurredAt: t0}}
	for _, tt := range []struct {
		name string
		page store.CatchUpPage
		want []string // "event target address"
	}{{
		name: "a standing withdrawal, one address",
		page: store.CatchUpPage{People: []store.Person{{Members: []store.Member{member(1, "Alice@Example.com")}, Facts: []consent.Facts{facts(withdrawnState, t0)}}},
			Withdrawals: []store.SetWithdrawal{withdrawal(10, 1, t0, "form")}},
		want: []string{"10 1 Alice@Example.com unsubscribe"},
	}, {
		name: "echo: the withdrawal came from this destination",
		page: store.CatchUpPage{People: []store.Person{{Members: []store.Member{member(1, "a@example.com")}, Facts: []consent.Facts{facts(withdrawnState, t0)}}},
			Withdrawals: []store.SetWithdrawal{withdrawal(10, 1, t0, "mg")}},
	}, {
		name: "echo spares only the address that withdrew: the alias is pushed",
		page: store.CatchUpPage{People: []store.Person{{Members: []store.Member{member(1, "bob@gmail.com"), member(2, "bob+x@gmail.com")},
			Facts: []consent.Facts{facts(withdrawnState, t0), facts(nil)}}},
			Withdrawals: []store.SetWithdrawal{withdrawal(10, 1, t0, "mg")}},
		want: []string{"10 2 bob+x@gmail.com unsubscribe"},
	}, {
		name: "lifted by a later valid express opt-in",
		page: store.CatchUpPage{People: []store.Person{{Members: []store.Member{member(1, "c@example.com")},
			Facts: []consent.Facts{facts(map[consent.Key]consent.StateFact{k: {Status: consent.StatusGranted, OccurredAt: t0.Add(time.Hour), Quality: express}}, t0)}}},
			Withdrawals: []store.SetWithdrawal{withdrawal(10, 1, t0, "form")}},
	}, {
		name: "a later provider subscribe lifts nothing",
		page: store.CatchUpPage{People: []store.Person{{Members: []store.Member{member(1, "d@example.com")},
			Facts: []consent.Facts{facts(map[consent.Key]consent.StateFact{k: {Status: consent.StatusGranted, OccurredAt: t0.Add(time.Hour), Quality: unknown}}, t0)}}},
			Withdrawals: []store.SetWithdrawal{withdrawal(10, 1, t0, "form")}},
		want: []string{"10 1 d@example.com unsubscribe"},
	}, {
		name: "the set's latest withdrawal, for every member; one already held is skipped",
		page: store.CatchUpPage{People: []store.Person{{Members: []store.Member{member(1, "e@gmail.com"), member(2, "e+1@gmail.com"), member(3, "e+2@gmail.com")},
			Facts: []consent.Facts{facts(withdrawnState, t0), facts(withdrawnState, t0.Add(time.Minute)), facts(nil)}}},
			Withdrawals: []store.SetWithdrawal{withdrawal(10, 1, t0, "form"), withdrawal(11, 2, t0.Add(time.Minute), "form")},
			Suppressed:  map[store.TargetKey]time.Time{{Target: 3, Key: k}: t0.Add(time.Hour), {Target: 1, Key: k}: t0}},
		want: []string{"11 1 e@gmail.com unsubscribe", "11 2 e+1@gmail.com unsubscribe"},
	}, {
		name: "another key withdrawn: not this destination's",
		page: store.CatchUpPage{People: []store.Person{{Members: []store.Member{member(1, "f@example.com")},
			Facts: []consent.Facts{facts(map[consent.Key]consent.StateFact{{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposePartners}: {Status: consent.StatusWithdrawn, OccurredAt: t0}})}}}},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range catchUpRows(rt, tt.page, consent.Policy{}) {
				if r.Destination != "mg" || r.Channel != "email" || r.Brand != "acme" || r.Purpose != "marketing" || r.Phone.Valid {
					t.Errorf("row shape %+v", r)
				}
				got = append(got, fmt.Sprintf("%d %d %s %s", r.ConsentEventID, r.TargetSubjectID, r.Email.String, r.Reason.String))
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("rows %q, want %q", got, tt.want)
			}
		})
	}
}

// RouteHash changes with what a destination must hear, not with the
// order it is listed in.
func TestRouteHash(t *testing.T) {
	a := Route{Destination: "x", Brand: "acme", Channels: []consent.Channel{"email", "sms"}, Purposes: []consent.Purpose{"marketing", "partners"}}
	b := Route{Destination: "y", Brand: "acme", Channels: []consent.Channel{"sms", "email"}, Purposes: []consent.Purpose{"partners", "marketing"}, Lift: true}
	if RouteHash(a) != RouteHash(b) {
		t.Error("the same route in another order hashes differently")
	}
	for _, c := range []Route{
		{Brand: "other", Channels: a.Channels, Purposes: a.Purposes},
		{Brand: "acme", Channels: []consent.Channel{"email"}, Purposes: a.Purposes},
		{Brand: "acme", Channels: a.Channels, Purposes: []consent.Purpose{"marketing"}},
	} {
		if RouteHash(c) == RouteHash(a) {
			t.Errorf("%+v hashes like %+v", c, a)
		}
	}
}
