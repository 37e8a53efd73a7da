package consent

import (
	"reflect"
	"testing"
)

func TestQualifying(t *testing.T) {
	for k, want := range map[ActivityKind]bool{
		ActivityClick: true, ActivityReply: true, ActivityOrder: true, ActivityForm: true,
		ActivityOpen: false, ActivityDelivered: false, "bounce": false, "": false,
	} {
		if got := k.Qualifying(); got != want {
			t.Errorf("%q.Qualifying() = %v, want %v", k, got, want)
		}
	}
}

func TestRenews(t *testing.T) {
	sig := func(email string, st Status) Signal { return Signal{Subject: Subject{Email: email}, Status: st} }
	got := Renews([]Signal{
		sig("a@x.fr", StatusWithdrawn), sig("a@x.fr", StatusWithdrawn), // only withdraws
		sig("b@x.fr", StatusWithdrawn), sig("b@x.fr", StatusGranted), // withdraws one key, grants another
		sig("c@x.fr", StatusGranted), sig("c@x.fr", StatusWithdrawn),
		sig("d@x.fr", StatusPending),
	})
	want := map[string]bool{"a@x.fr": false, "b@x.fr": true, "c@x.fr": true, "d@x.fr": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Renews = %v, want %v", got, want)
	}
	act := func(email string, k ActivityKind) Activity { return Activity{Subject: Subject{Email: email}, Kind: k} }
	for _, tc := range []struct {
		a    Activity
		want bool
	}{
		{act("a@x.fr", ActivityForm), false},
		{act("a@x.fr", ActivityClick), true},
		{act("b@x.fr", ActivityForm), true},
		{act("e@x.fr", ActivityForm), true}, // no signal in the submission
		{act("a@x.fr", ActivityOpen), true}, // recorded; Qualifying keeps it from renewing
	} {
		if got := KeepActivity(tc.a, want); got != tc.want {
			t.Errorf("KeepActivity(%s %s) = %v, want %v", tc.a.Subject.Email, tc.a.Kind, got, tc.want)
		}
	}
	if len(Renews(nil)) != 0 {
		t.Error("Renews(nil) not empty")
	}
}

// TestKeepActivityNumberOwnedWithdrawal: a form that only withdraws SMS
// (an address and a number given, the SMS box unticked) renews nothing.
// The withdrawal belongs to the number (ConsentSubject, as the worker
// prepares it) while the form contact names the address first: the
// submission is still one that only withdraws (docs/rules.md, "Expiry":
// "A form submission that only withdraws renews nothing"; CNIL
// référentiel; CALOGA 2025).
func TestKeepActivityNumberOwnedWithdrawal(t *testing.T) {
	t.Parallel()
	given := Subject{Email: "a@x.fr", Phone: "+33612345678"}
	owned := func(ch Channel, st Status) Signal {
		s := Signal{Subject: given, Channel: ch, Status: st}
		s.Subject, _ = ConsentSubject(s)
		return s
	}
	contact := Activity{Subject: given, Kind: ActivityForm}
	for _, tc := range []struct {
		name string
		sigs []Signal
		want bool
	}{
		{"sms withdrawn only", []Signal{owned(ChannelSMS, StatusWithdrawn)}, false},
		{"sms and email withdrawn", []Signal{owned(ChannelSMS, StatusWithdrawn), owned(ChannelEmail, StatusWithdrawn)}, false},
		{"sms withdrawn, email granted", []Signal{owned(ChannelSMS, StatusWithdrawn), owned(ChannelEmail, StatusGranted)}, true},
		{"sms granted, email withdrawn", []Signal{owned(ChannelSMS, StatusGranted), owned(ChannelEmail, StatusWithdrawn)}, true},
		{"no signal", nil, true},
	} {
		if got := KeepActivity(contact, Renews(tc.sigs)); got != tc.want {
			t.Errorf("%s: KeepActivity = %v, want %v", tc.name, got, tc.want)
		}
	}
}
