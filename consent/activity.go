package consent

import "time"

// ActivityKind is a contact between a brand and a person that is not itself
// a consent change.
type ActivityKind string

// Activity kinds. Click, reply, order and form are qualifying contacts from
// the person: they renew a prospect's consent (see Qualifying). An open
// does not count (it is not an act of the person: images load by
// themselves). Delivered records a message sent, which the "prior"
// criterion compares grants with. An order also extends a customer's
// relationship (Facts.RelationshipEnd).
const (
	ActivityClick     ActivityKind = "click"
	ActivityReply     ActivityKind = "reply"
	ActivityOrder     ActivityKind = "order"
	ActivityForm      ActivityKind = "form"
	ActivityOpen      ActivityKind = "open"
	ActivityDelivered ActivityKind = "delivered"
)

// Qualifying reports whether k renews a prospect's consent: a contact
// coming from the person — click, reply, order, form — renews it; an open
// and a delivery do not (nor any unknown kind). A form contact of a
// submission that only withdrew does not either (see Renews). A
// customer's soft opt-in is not renewed by contacts at all
// (CustomerExpiresAt).
//
// Source: CNIL référentiel "gestion des activités commerciales" (3 years
// from the last contact coming from the person, such as a click on a link
// in an email, a reply or an order; an open is not one); CNIL sanction against CALOGA (2025), which renewed retention on
// email opens; docs/rules.md ("Expiry").
func (k ActivityKind) Qualifying() bool {
	switch k {
	case ActivityClick, ActivityReply, ActivityOrder, ActivityForm:
		return true
	}
	return false
}

// Activity is one contact: Subject did Kind with Brand on Channel at
// OccurredAt, as Source reported it.
type Activity struct {
	Subject    Subject      `json:"subject"`
	Brand      string       `json:"brand"`
	Channel    Channel      `json:"channel"`
	Kind       ActivityKind `json:"kind"`
	OccurredAt time.Time    `json:"occurred_at"`
	Source     string       `json:"source"`
}

// ProfileFact is what a sender says about who the subject is to a brand:
// a customer (an order, a CRM lifecycle stage) or a professional (a CRM
// company record, a form's "I am a professional" field).
type ProfileFact struct {
	Subject    Subject   `json:"subject"`
	Brand      string    `json:"brand"`
	Profile    Profile   `json:"profile"`
	OccurredAt time.Time `json:"occurred_at"`
	Source     string    `json:"source"`
}

// Renews reports, per subject key (Subject.Key) of a submission's signals,
// whether the submission's form contact renews consent: false when every
// signal of that subject is a withdrawal — a submission that only
// withdraws (an unsubscribe form, a preference centre unticked) is no sign
// of interest — and true as soon as one is a grant or a pending request.
// Subjects without signals are absent: their form contact stands on
// ActivityKind.Qualifying alone (see KeepActivity).
//
// Source: CNIL référentiel "gestion des activités commerciales" (only a
// contact showing the person's interest restarts the 3 years); GDPR art.
// 7(3); docs/rules.md ("Expiry").
func Renews(sigs []Signal) map[string]bool {
	out := map[string]bool{}
	for _, s := range sigs {
		k := s.Subject.Key()
		if s.Status != StatusWithdrawn {
			out[k] = true
		} else if _, seen := out[k]; !seen {
			out[k] = false
		}
	}
	return out
}

// KeepActivity reports whether activity a may be recorded as a contact,
// given renews (the result of Renews for the same submission): everything
// but a form contact of a subject whose submission only withdrew. The
// contact names the address and the number the form gave, while SMS and
// call signals belong to the number (ConsentSubject): the signals of
// either identifier are the submission's, so a contact is kept when one
// of them renews, dropped when all of them only withdrew.
func KeepActivity(a Activity, renews map[string]bool) bool {
	if a.Kind != ActivityForm {
		return true
	}
	seen := false
	for _, k := range []string{a.Subject.Key(), a.Subject.Email, a.Subject.Phone} {
		if k == "" {
			continue
		}
		if r, ok := renews[k]; ok {
			if r {
				return true
			}
			seen = true
		}
	}
	return !seen
}
