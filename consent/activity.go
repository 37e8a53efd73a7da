package consent

import "time"

// ActivityKind is a contact between a brand and a person that is not itself
// a consent change.
type ActivityKind string

// Activity kinds. Click, reply, order and form are qualifying contacts from
// the person: they renew a prospect's consent (CNIL recommends counting the
// 3-year consent lifetime from the last contact coming from the person). An
// open does not count (it is not an act of the person: images load by
// themselves). Delivered records a message sent, which the "prior" criterion
// compares grants with.
const (
	ActivityClick     ActivityKind = "click"
	ActivityReply     ActivityKind = "reply"
	ActivityOrder     ActivityKind = "order"
	ActivityForm      ActivityKind = "form"
	ActivityOpen      ActivityKind = "open"
	ActivityDelivered ActivityKind = "delivered"
)

// Qualifying reports whether k renews consent (a contact from the person).
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
