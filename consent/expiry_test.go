package consent

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestCustomerExpiresAt(t *testing.T) {
	since := time.Date(2020, 1, 15, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		since time.Time
		end   time.Time
		ttl   time.Duration
		want  time.Time
	}{
		{"no order since", since, time.Time{}, dcTTL, since.Add(dcTTL)},
		{"a later order", since, since.AddDate(1, 0, 0), dcTTL, since.AddDate(1, 0, 0).Add(dcTTL)},
		{"an end before the customer date", since, since.AddDate(-1, 0, 0), dcTTL, since.Add(dcTTL)},
		{"a contract ending in the future", since, since.AddDate(10, 0, 0), dcTTL, since.AddDate(10, 0, 0).Add(dcTTL)},
		{"default ttl", since, time.Time{}, 0, since.Add(DefaultConsentTTL)},
	} {
		if got := CustomerExpiresAt(tc.since, tc.end, tc.ttl); !got.Equal(tc.want) {
			t.Errorf("%s: CustomerExpiresAt = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestExpiries(t *testing.T) {
	day := 24 * time.Hour
	now := dcNow
	month := 30 * day
	k := func(ch Channel, brand string) Key { return Key{Channel: ch, Brand: brand, Purpose: PurposeMarketing} }
	// A prospect whose opt-in is 3 years old less one day, one whose opt-in
	// is 3 years and a day old, a customer whose last order is 3 years ago
	// less a day.
	grantSoon := now.Add(-dcTTL + day)
	grantOld := now.Add(-dcTTL - day)
	buyerSince := now.Add(-5 * dcTTL)
	lastOrder := now.Add(-dcTTL + day)
	prospect := dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, grantSoon, dcGood)
	old := dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, grantOld, dcGood)
	customer := dcEnd(dcCustomer(dcFacts(dcPerson), "acme", buyerSince), "acme", lastOrder)
	clicker := dcContact(dcCustomer(dcFacts(dcPerson), "acme", now.Add(-dcTTL-day)), "acme", now.Add(-day))

	consentE := func(key Key, since, exp time.Time) Expiry {
		return Expiry{Key: key, Rule: ExpiryConsent, Since: since, ExpiresAt: exp, Expired: !now.Before(exp)}
	}
	customerE := func(ch Channel, since, exp time.Time) Expiry {
		return Expiry{Key: k(ch, "acme"), Rule: ExpiryCustomer, Since: since, ExpiresAt: exp, Expired: !now.Before(exp)}
	}
	for _, tc := range []struct {
		name   string
		f      Facts
		p      Policy
		now    time.Time
		within time.Duration
		want   []Expiry
	}{
		{"consent lapsing in a day, within a month", prospect, Policy{}, now, month, []Expiry{consentE(dcEmail, grantSoon, now.Add(day))}},
		{"consent lapsing in a day, within 1 day (at the horizon)", prospect, Policy{}, now, day, []Expiry{consentE(dcEmail, grantSoon, now.Add(day))}},
		{"consent lapsing in a day, within a day less 1µs", prospect, Policy{}, now, day - time.Microsecond, nil},
		{"consent lapsed a day ago", old, Policy{}, now, 0, []Expiry{consentE(dcEmail, grantOld, now.Add(-day))}},
		{"consent lapsing exactly now is expired", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, now.Add(-dcTTL), dcGood), Policy{}, now, 0,
			[]Expiry{consentE(dcEmail, now.Add(-dcTTL), now)}},
		{"a click renews a prospect", dcContact(old, "acme", now.Add(-day)), Policy{}, now, month, nil},
		{"customer: 3 years after the last order", customer, Policy{}, now, month, []Expiry{
			customerE(ChannelEmail, buyerSince, now.Add(day)), customerE(ChannelSMS, buyerSince, now.Add(day))}},
		{"customer, from the phone date: calls too", customer, Policy{}, PhoneOptInFrom, 4 * month, []Expiry{
			{Key: k(ChannelEmail, "acme"), Rule: ExpiryCustomer, Since: buyerSince, ExpiresAt: now.Add(day), Expired: true},
			{Key: k(ChannelPhone, "acme"), Rule: ExpiryCustomer, Since: buyerSince, ExpiresAt: now.Add(day), Expired: true},
			{Key: k(ChannelSMS, "acme"), Rule: ExpiryCustomer, Since: buyerSince, ExpiresAt: now.Add(day), Expired: true}}},
		{"a click does not renew a customer", clicker, Policy{}, now, 0, []Expiry{
			customerE(ChannelEmail, now.Add(-dcTTL-day), now.Add(-day)), customerE(ChannelSMS, now.Add(-dcTTL-day), now.Add(-day))}},
		{"customer and consent, sorted by expiry", dcWith(customer, dcKey(ChannelSMS, PurposePartners), StatusGranted, grantOld, dcGood), Policy{}, now, month, []Expiry{
			consentE(dcKey(ChannelSMS, PurposePartners), grantOld, now.Add(-day)),
			customerE(ChannelEmail, buyerSince, now.Add(day)), customerE(ChannelSMS, buyerSince, now.Add(day))}},
		{"withdrawn key skipped", dcWith(customer, dcEmail, StatusWithdrawn, now.Add(-day), nil), Policy{}, now, month, []Expiry{
			customerE(ChannelSMS, buyerSince, now.Add(day))}},
		{"withdrawal not lifted skipped", func() Facts {
			f := dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, grantSoon, dcUnknown)
			f.Withdrawals = map[Key]time.Time{dcEmail: grantSoon.Add(-day)}
			return f
		}(), Policy{}, now, month, nil},
		{"withdrawal lifted by an express grant", func() Facts {
			f := prospect
			f.Withdrawals = map[Key]time.Time{dcEmail: grantSoon.Add(-day)}
			return f
		}(), Policy{}, now, month, []Expiry{consentE(dcEmail, grantSoon, now.Add(day))}},
		{"invalid grant skipped", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, grantSoon, dcBad), Policy{}, now, month, nil},
		{"unknowns skipped under strict", dcWith(dcFacts(dcPerson), dcEmail, StatusGranted, grantSoon, dcUnknown), Policy{StrictQuality: true}, now, month, nil},
		{"pending skipped", dcWith(dcFacts(dcPerson), dcEmail, StatusPending, grantSoon, dcGood), Policy{}, now, month, nil},
		{"erased subject", func() Facts { f := old; f.Erased = true; return f }(), Policy{}, now, month, nil},
		{"unknown subject", func() Facts { f := old; f.Known = false; return f }(), Policy{}, now, month, nil},
		{"negative window counts as zero", prospect, Policy{}, now, -month, nil},
		{"zero customer date is no customer", dcCustomer(dcFacts(dcPerson), "acme", time.Time{}), Policy{}, now, month, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Expiries(tc.f, tc.p, tc.now, tc.within)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Expiries =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// Property: Expiries and Decide never disagree.
func TestExpiriesAgreeWithDecide(t *testing.T) {
	var keys []Key
	for _, ch := range []Channel{ChannelEmail, ChannelSMS, ChannelPhone, ChannelPost} {
		for _, b := range []string{"acme", "beta"} {
			for _, p := range []Purpose{PurposeMarketing, PurposePartners} {
				keys = append(keys, Key{ch, b, p})
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 11))
	var listed, answered int
	for i := range 5000 {
		f := dcRandomFacts(r, keys)
		p := Policy{StrictQuality: r.IntN(2) == 0}
		now := []time.Time{dcNow, PhoneOptInFrom, PhoneOptInFrom.Add(dcTTL)}[r.IntN(3)]
		within := []time.Duration{0, dcTTL / 2, 2 * dcTTL}[r.IntN(3)]
		exps := Expiries(f, p, now, within)
		byKey := map[Key][]Expiry{}
		for _, e := range exps {
			listed++
			byKey[e.Key] = append(byKey[e.Key], e)
			a := Decide(f, e.Key, p, now)
			if !e.Expired && !a.Allowed {
				t.Fatalf("case %d: %+v listed as running, Decide refuses: %+v", i, e, a)
			}
			if e.Expired && a.Allowed && a.ExpiresAt != nil && a.ExpiresAt.Equal(e.ExpiresAt) {
				t.Fatalf("case %d: %+v listed as expired, Decide allows on it: %+v", i, e, a)
			}
		}
		for _, k := range keys {
			a := Decide(f, k, p, now)
			if a.ExpiresAt == nil || a.ExpiresAt.After(now.Add(within)) {
				continue
			}
			rule := map[Basis]string{BasisConsent: ExpiryConsent, BasisSoftOptIn: ExpiryCustomer}[a.Basis]
			if !a.Allowed {
				rule = ""
			}
			found := false
			for _, e := range byKey[k] {
				if e.ExpiresAt.Equal(*a.ExpiresAt) && (rule == "" || e.Rule == rule) {
					found = true
				}
			}
			if a.Reason == ReasonExpired && !found {
				t.Fatalf("case %d: Decide %+v for %+v expired, not listed in %+v", i, a, k, byKey[k])
			}
			if a.Allowed {
				answered++
				if !found {
					t.Fatalf("case %d: Decide %+v for %+v lapses in the window, not listed in %+v", i, a, k, byKey[k])
				}
			}
		}
	}
	if listed < 500 || answered < 200 {
		t.Fatalf("poor coverage: %d listed, %d answers", listed, answered)
	}
}
