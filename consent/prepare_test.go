package consent

import (
	"reflect"
	"testing"
	"time"
)

func TestBoundByArrival(t *testing.T) {
	recv := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	paris := time.FixedZone("CEST", 2*3600)
	for _, tc := range []struct {
		name      string
		t, recv   time.Time
		want      time.Time
		wantMoved bool
	}{
		{"before arrival", recv.Add(-time.Hour), recv, recv.Add(-time.Hour), false},
		{"at arrival", recv, recv, recv, false},
		{"1µs after arrival", recv.Add(time.Microsecond), recv, recv, true},
		{"1ns after arrival", recv.Add(time.Nanosecond), recv, recv, true},
		{"a year in the future", recv.AddDate(1, 0, 0), recv, recv, true},
		{"same instant in another zone", recv.In(paris), recv, recv.In(paris), false},
		{"arrival with sub-µs, in another zone", recv.Add(time.Hour), recv.Add(999 * time.Nanosecond).In(paris), recv, true},
		{"zero arrival: no bound", recv.AddDate(50, 0, 0), time.Time{}, recv.AddDate(50, 0, 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, moved := BoundByArrival(tc.t, tc.recv)
			if !got.Equal(tc.want) || moved != tc.wantMoved {
				t.Errorf("BoundByArrival = %v, %v; want %v, %v", got, moved, tc.want, tc.wantMoved)
			}
			if moved && (got.Location() != time.UTC || got.Nanosecond()%1000 != 0) {
				t.Errorf("moved time %v is not canonical", got)
			}
			if !moved && got != tc.t {
				t.Errorf("unmoved time changed: %v", got)
			}
		})
	}
}

func TestConsentSubject(t *testing.T) {
	full := Subject{Email: "jeanne@example.fr", EmailOriginal: "Jeanne@Example.fr", Phone: "+33612345678", ExternalID: "crm:1"}
	for _, tc := range []struct {
		name      string
		ch        Channel
		sub       Subject
		wantOwner Subject
		wantLink  *Subject
	}{
		{"sms with number and address", ChannelSMS, full, Subject{Phone: full.Phone, ExternalID: "crm:1"},
			&Subject{Email: full.Email, EmailOriginal: full.EmailOriginal, Phone: full.Phone}},
		{"phone with number and address", ChannelPhone, full, Subject{Phone: full.Phone, ExternalID: "crm:1"},
			&Subject{Email: full.Email, EmailOriginal: full.EmailOriginal, Phone: full.Phone}},
		{"sms, number only", ChannelSMS, Subject{Phone: full.Phone}, Subject{Phone: full.Phone}, nil},
		{"sms without a number", ChannelSMS, Subject{Email: full.Email}, Subject{Email: full.Email}, nil},
		{"email with a number", ChannelEmail, full, full, nil},
		{"post with a number", ChannelPost, full, full, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner, link := ConsentSubject(Signal{Channel: tc.ch, Subject: tc.sub})
			if owner != tc.wantOwner || !reflect.DeepEqual(link, tc.wantLink) {
				t.Errorf("ConsentSubject = %+v, %+v; want %+v, %+v", owner, link, tc.wantOwner, tc.wantLink)
			}
		})
	}
}
