package consent

import "time"

// This file holds the rules a batch goes through before reconciliation:
// whose subject a consent belongs to, and which time a fact may carry.

// BoundByArrival bounds a sender's time by the time we received it: a fact
// cannot have occurred after it reached us. A t later than receivedAt is
// brought back to CanonicalTime(receivedAt) and moved reports true;
// otherwise t is returned as is. A zero receivedAt means no bound.
// Without this a grant dated in the future (a wrong clock, a forged field)
// would outrank every real withdrawal until that date (Supersedes orders
// by occurrence).
//
// Source: docs/rules.md ("Withdrawal": honoured at any time) and
// Supersedes (order by occurrence, not arrival: docs/design.md §1).
func BoundByArrival(t, receivedAt time.Time) (bounded time.Time, moved bool) {
	if receivedAt.IsZero() || !t.After(receivedAt) {
		return t, false
	}
	return CanonicalTime(receivedAt), true
}

// ConsentSubject returns the subject that owns the consent a signal
// carries, and the subject to link it with. SMS and phone consent reach a
// number: when the signal (already normalized, see NormalizeSubject) has a
// phone, the owner is the number's subject (Phone and ExternalID only),
// where an SMS provider's suppression and an eligibility question by
// number find it; the address given with it is the same person and comes
// back as link (Email, EmailOriginal and Phone), for erasure. Every other
// signal is owned by its own subject and link is nil.
//
// Source: docs/rules.md ("Who needs an opt-in": consent is per channel);
// GDPR art. 17 (an erasure covers every identifier of the person).
func ConsentSubject(sig Signal) (owner Subject, link *Subject) {
	sub := sig.Subject
	if (sig.Channel != ChannelSMS && sig.Channel != ChannelPhone) || sub.Phone == "" {
		return sub, nil
	}
	if sub.Email != "" {
		link = &Subject{Email: sub.Email, EmailOriginal: sub.EmailOriginal, Phone: sub.Phone}
	}
	return Subject{Phone: sub.Phone, ExternalID: sub.ExternalID}, link
}
