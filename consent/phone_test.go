package consent

import (
	"testing"
	"time"
)

func TestPhoneOptInFrom(t *testing.T) {
	if want := time.Date(2026, 8, 10, 22, 0, 0, 0, time.UTC); !PhoneOptInFrom.Equal(want) {
		t.Fatalf("PhoneOptInFrom = %v, want %v", PhoneOptInFrom, want)
	}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{time.Date(2026, 8, 10, 23, 59, 0, 0, dcParis), false},
		{time.Date(2026, 8, 10, 23, 59, 59, 999999999, dcParis), false},
		{time.Date(2026, 8, 11, 0, 0, 0, 0, dcParis), true},
		{time.Date(2026, 8, 10, 22, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 8, 10, 21, 59, 59, 0, time.UTC), false},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
	} {
		if got := PhoneNeedsConsent(tc.now); got != tc.want {
			t.Errorf("PhoneNeedsConsent(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}

func TestDecidePhone(t *testing.T) {
	before := time.Date(2026, 8, 10, 23, 59, 0, 0, dcParis)
	from := time.Date(2026, 8, 11, 0, 0, 0, 0, dcParis)
	later := from.Add(400 * 24 * time.Hour)
	phone := dcKey(ChannelPhone, PurposeMarketing)
	phonePartners := dcKey(ChannelPhone, PurposePartners)
	post := dcKey(ChannelPost, PurposeMarketing)
	consumer := Facts{Known: true} // a number's subject: no email
	buyer := dcCustomer(consumer, "acme", dcBuyer)
	otherBrand := dcCustomer(consumer, "beta", dcBuyer)
	lapsed := dcCustomer(consumer, "acme", from.Add(-dcTTL))
	pro := consumer
	pro.Professional = true
	role := dcFacts(dcRole)
	optedIn := dcWith(consumer, phone, StatusGranted, dcGrant, dcGood)
	partnersOptIn := dcWith(consumer, phonePartners, StatusGranted, dcGrant, dcGood)
	withdrawn := dcWith(buyer, phone, StatusWithdrawn, dcGrant, nil)

	optOut := dcWant{allowed: true, basis: BasisOptOutRegime, reason: ReasonOptOutChannel}
	contract := dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonCustomerOngoingContract, since: dcBuyer, expires: dcBuyer.Add(dcTTL)}
	objection := dcWant{allowed: true, basis: BasisOptOutRegime, reason: ReasonProfessionalObjection}
	consent := dcWant{allowed: true, basis: BasisConsent, reason: ReasonConsent, since: dcGrant, expires: dcGrant.Add(dcTTL)}

	for _, tc := range []struct {
		name string
		f    Facts
		q    Question
		now  time.Time
		want dcWant
	}{
		{"consumer, 23:59 the day before", consumer, phone, before, optOut},
		{"consumer, from 00:00 on the 11th", consumer, phone, from, dcRefused(ReasonNoOptIn, time.Time{})},
		{"consumer, 1µs before the instant", consumer, phone, PhoneOptInFrom.Add(-time.Microsecond), optOut},
		{"consumer with a phone opt-in, after", optedIn, phone, from, consent},
		{"consumer with an sms opt-in only, after", dcWith(consumer, dcKey(ChannelSMS, PurposeMarketing), StatusGranted, dcGrant, dcGood), phone, from,
			dcRefused(ReasonNoOptIn, time.Time{})},
		{"consumer with a pending opt-in, after", dcWith(consumer, phone, StatusPending, dcGrant, dcGood), phone, from,
			dcRefused(ReasonPendingConfirmation, dcGrant)},
		{"consumer with an invalid opt-in, after", dcWith(consumer, phone, StatusGranted, dcGrant, dcBad), phone, from,
			dcWant{basis: BasisNone, reason: ReasonInvalidOptIn, since: dcGrant, detail: "express: box was pre-ticked"}},
		{"customer, before", buyer, phone, before, optOut},
		{"customer, after: ongoing contract", buyer, phone, from, contract},
		{"customer of another brand, after", otherBrand, phone, from, dcRefused(ReasonNoOptIn, time.Time{})},
		{"customer whose relationship lapsed, after", lapsed, phone, from,
			dcWant{basis: BasisNone, reason: ReasonExpired, since: from.Add(-dcTTL), expires: from}},
		{"customer, relationship lapses 1µs after the question", dcCustomer(consumer, "acme", from.Add(-dcTTL+time.Microsecond)), phone, from,
			dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonCustomerOngoingContract, since: from.Add(-dcTTL + time.Microsecond), expires: from.Add(time.Microsecond)}},
		{"customer with a recent order, long after", dcEnd(buyer, "acme", later.Add(-24*time.Hour)), phone, later,
			dcWant{allowed: true, basis: BasisSoftOptIn, reason: ReasonCustomerOngoingContract, since: dcBuyer, expires: later.Add(-24 * time.Hour).Add(dcTTL)}},
		{"customer with a consent too: consent first", dcWith(buyer, phone, StatusGranted, dcGrant, dcGood), phone, from, consent},
		{"customer who objected", withdrawn, phone, from, dcRefused(ReasonWithdrawn, dcGrant)},
		{"customer who objected, before", withdrawn, phone, before, dcRefused(ReasonWithdrawn, dcGrant)},
		{"professional, before", pro, phone, before, optOut},
		{"professional, after: objection regime", pro, phone, from, objection},
		{"professional by domain policy", dcFacts(dcWorker), phone, from, objection},
		{"role address, after", role, phone, from, objection},
		{"role name at free mail is a consumer", dcFacts("contact@gmail.com"), phone, from, dcRefused(ReasonNoOptIn, time.Time{})},
		{"partners, before", consumer, phonePartners, before, optOut},
		{"partners, after", consumer, phonePartners, from, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners, customer, after", buyer, phonePartners, from, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners, professional, after", pro, phonePartners, from, dcRefused(ReasonPartnersNeedOptIn, time.Time{})},
		{"partners opt-in, after", partnersOptIn, phonePartners, from, consent},
		{"cookies by phone need consent, before", consumer, dcKey(ChannelPhone, PurposeCookies), before, dcRefused(ReasonNoOptIn, time.Time{})},
		{"post stays opt-out, after", consumer, post, from, optOut},
		{"post partners stays opt-out, after", consumer, dcKey(ChannelPost, PurposePartners), later, optOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Policy{ProfessionalDomains: []string{"acme-corp.fr"}}
			dcCheck(t, Decide(tc.f, tc.q, p, tc.now), tc.want)
		})
	}
}
