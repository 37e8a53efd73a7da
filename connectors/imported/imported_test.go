package imported

import (
	"errors"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// TestRoundTrip: a page encodes and parses back to the same signals, each
// with the inbox row's source whatever the body said.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2021, 3, 4, 9, 15, 0, 0, time.UTC)
	p := Page{From: "provider mailchimp-acme", Skipped: []string{"item 3: bad email"}, Signals: []consent.Signal{{
		Subject: consent.Subject{Email: "a@example.com"}, Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing,
		Status: consent.StatusWithdrawn, OccurredAt: at, Source: "forged-source",
		Evidence: consent.Evidence{Imported: Evidence("mailchimp-acme", at), Event: "unsubscribed"},
	}}}
	body, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("mailchimp-acme", body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 1 || b.Signals[0].Source != "mailchimp-acme" || !b.Signals[0].OccurredAt.Equal(at) ||
		b.Signals[0].Evidence.Imported != "imported from mailchimp-acme at 2021-03-04T09:15:00Z" || len(b.Skipped) != 1 {
		t.Fatalf("batch %+v", b)
	}
}

// TestParseMalformed: bodies that are not a page are ErrMalformed (the
// worker marks the row failed), never a panic.
func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"", "null x", "[1,2]", `{"signals": "no"}`, `{"signals": [{"occurred_at": "yesterday"}]}`, "\x00\xff"} {
		if _, err := Parse("s", []byte(body)); !errors.Is(err, connectors.ErrMalformed) {
			t.Errorf("%q: %v", body, err)
		}
	}
	if b, err := Parse("s", []byte(`{}`)); err != nil || len(b.Signals) != 0 {
		t.Errorf("empty page: %+v %v", b, err)
	}
}

// FuzzParse: any inbox body parses or is ErrMalformed; parsed signals all
// carry the row's source.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"from":"csv","signals":[{"subject":{"email":"a@example.com"},"channel":"email","brand":"acme","purpose":"marketing","status":"withdrawn","occurred_at":"2024-01-01T00:00:00Z","source":"x","evidence":{"imported":"imported from x at 2024-01-01T00:00:00Z"}}]}`))
	f.Add([]byte(`{"signals":[{}],"skipped":["line 2: bad email"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := Parse("src", body)
		if err != nil {
			if !errors.Is(err, connectors.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		for _, s := range b.Signals {
			if s.Source != "src" {
				t.Fatalf("source %q", s.Source)
			}
		}
	})
}
