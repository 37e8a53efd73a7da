package consent

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestMergeFacts(t *testing.T) {
	t1, t2, t3 := dcGrant, dcGrant.Add(time.Hour), dcGrant.Add(2*time.Hour)
	a := dcWith(dcFacts("j.doe@gmail.com"), dcEmail, StatusGranted, t1, dcGood)
	a.CustomerOf = map[string]time.Time{"acme": t2}
	a.LastContact = map[string]time.Time{"acme": t1}
	a.RelationshipEnd = map[string]time.Time{"acme": t3}
	b := dcWith(dcFacts("jdoe+news@gmail.com"), dcEmail, StatusWithdrawn, t2, nil)
	b.CustomerOf = map[string]time.Time{"acme": t1, "beta": {}}
	b.LastContact = map[string]time.Time{"acme": t3}
	b.InvalidGrants = map[Key]time.Time{dcPartners: t1}
	b.InvalidDetails = map[Key]string{dcPartners: "express: box was pre-ticked"}
	c := Facts{Known: true, Professional: true} // a linked number
	c.InvalidGrants = map[Key]time.Time{dcEmail: t1}

	m := MergeFacts(a, b, c)
	want := Facts{
		Known: true, Email: "j.doe@gmail.com", Professional: true,
		States:          map[Key]StateFact{dcEmail: {Status: StatusWithdrawn, OccurredAt: t2}},
		Withdrawals:     map[Key]time.Time{dcEmail: t2},
		InvalidGrants:   map[Key]time.Time{dcPartners: t1},
		InvalidDetails:  map[Key]string{dcPartners: "express: box was pre-ticked"},
		CustomerOf:      map[string]time.Time{"acme": t1, "beta": {}},
		LastContact:     map[string]time.Time{"acme": t3},
		RelationshipEnd: map[string]time.Time{"acme": t3},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("MergeFacts =\n%+v\nwant\n%+v", m, want)
	}
	if got := Decide(m, dcEmail, Policy{}, dcNow); got.Reason != ReasonWithdrawn {
		t.Errorf("merged facts: %+v, want withdrawn", got)
	}
	if len(a.States) != 1 || a.States[dcEmail].Status != StatusGranted || a.Withdrawals != nil {
		t.Error("MergeFacts modified its input")
	}

	for _, tc := range []struct {
		name    string
		members []Facts
		check   func(Facts) bool
	}{
		{"email from the first non-empty other", []Facts{c, b, a}, func(f Facts) bool { return f.Email == b.Email }},
		{"erased only when every known member is", []Facts{{Known: true, Erased: true, ErasedAt: t1}, a}, func(f Facts) bool { return !f.Erased && f.ErasedAt.IsZero() }},
		{"every known member erased: latest erasure", []Facts{{Known: true, Erased: true, ErasedAt: t1}, {Known: true, Erased: true, ErasedAt: t3}, {}},
			func(f Facts) bool { return f.Known && f.Erased && f.ErasedAt.Equal(t3) }},
		{"nobody known", []Facts{{}, {}}, func(f Facts) bool { return !f.Known && !f.Erased }},
		{"a later express grant lifts a member's withdrawal", []Facts{b, dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, t3, dcGood)},
			func(f Facts) bool { return Decide(f, dcEmail, Policy{}, dcNow).Basis == BasisConsent }},
		{"a later provider subscribe does not", []Facts{b, dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, t3, dcUnknown)},
			func(f Facts) bool { return Decide(f, dcEmail, Policy{}, dcNow).Reason == ReasonWithdrawn }},
		{"a refused grant older than the merged state is dropped", []Facts{c, a}, func(f Facts) bool { return f.InvalidGrants == nil }},
		{"a refused grant newer than the merged state is kept", []Facts{
			func() Facts { f := c; f.InvalidGrants = map[Key]time.Time{dcEmail: t2}; return f }(), a},
			func(f Facts) bool { return f.InvalidGrants[dcEmail].Equal(t2) }},
		{"tie: withdrawal wins", []Facts{dcWith(Facts{Known: true}, dcEmail, StatusGranted, t2, dcGood), b},
			func(f Facts) bool { return f.States[dcEmail].Status == StatusWithdrawn }},
		{"tie between grants: the worse quality wins", []Facts{dcWith(Facts{Known: true}, dcEmail, StatusGranted, t2, dcGood), dcWith(Facts{Known: true}, dcEmail, StatusGranted, t2, dcBad)},
			func(f Facts) bool { return reflect.DeepEqual(f.States[dcEmail].Quality, dcBad) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f := MergeFacts(tc.members[0], tc.members[1:]...); !tc.check(f) {
				t.Errorf("got %+v", f)
			}
		})
	}
}

// Property: apart from Email, the merge does not depend on the order of
// the members; and when one member withdrew a key after everything the
// others recorded for it, every member order answers withdrawn.
func TestMergeFactsOrderIndependent(t *testing.T) {
	var keys []Key
	for _, ch := range []Channel{ChannelEmail, ChannelSMS, ChannelPhone} {
		for _, p := range []Purpose{PurposeMarketing, PurposePartners} {
			keys = append(keys, Key{ch, "acme", p})
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	for i := range 3000 {
		n := 2 + r.IntN(3)
		members := make([]Facts, n)
		for j := range members {
			members[j] = dcRandomFacts(r, keys)
			for k := range members[j].InvalidGrants {
				if r.IntN(2) == 0 {
					members[j].InvalidDetails = put(members[j].InvalidDetails, k, []string{"express: box was pre-ticked", "free: required"}[r.IntN(2)])
				}
			}
		}
		ref := MergeFacts(members[0], members[1:]...)
		ref.Email = ""
		perm := r.Perm(n)
		shuffled := make([]Facts, n)
		for j, pj := range perm {
			shuffled[j] = members[pj]
		}
		got := MergeFacts(shuffled[0], shuffled[1:]...)
		got.Email = ""
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("case %d: order %v changes the merge:\n%+v\nvs\n%+v", i, perm, got, ref)
		}

		// One member withdraws k after every state of the set.
		k := keys[r.IntN(len(keys))]
		w := dcNow.Add(dcTTL)
		who := r.IntN(n)
		withdrew := make([]Facts, n)
		copy(withdrew, members)
		withdrew[who].Known, withdrew[who].Erased = true, false
		withdrew[who] = dcWith(withdrew[who], k, StatusWithdrawn, w, nil)
		for _, order := range [][]int{perm, r.Perm(n)} {
			set := make([]Facts, n)
			for j, pj := range order {
				set[j] = withdrew[pj]
			}
			m := MergeFacts(set[0], set[1:]...)
			if m.Erased {
				continue // every member erased: erasure answers first
			}
			for _, now := range []time.Time{dcNow, PhoneOptInFrom} {
				if a := Decide(m, k, Policy{}, now); a.Reason != ReasonWithdrawn {
					t.Fatalf("case %d: member %d withdrew %+v, merged answer %+v", i, who, k, a)
				}
			}
		}
	}
}
