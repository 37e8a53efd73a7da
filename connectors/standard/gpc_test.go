package standard

import (
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/fixtures"
)

// A preference page relaying Sec-GPC: 1 through a Standard Webhooks
// sender: the signed message also objects to sale_sharing. The header is
// not signed (Standard Webhooks signs id, timestamp and body), so it is
// read as the sender relayed it.
func TestMessageGPC(t *testing.T) {
	t.Parallel()
	s := newSource(t, cfg())
	h, err := Sign(secret, "msg_gpc", []byte(body), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, gpc := range []string{"1", "0"} {
		h["Sec-GPC"] = gpc
		r := request(h, []byte(body))
		if err := s.Verify(r, now); err != nil {
			t.Fatal(err)
		}
		b, err := s.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2025, 11, 20, 11, 0, 0, 0, time.UTC)
		want := []fixtures.Signal{
			{Email: "ines.roux@example.fr", Channel: "email", Brand: "acme", Purpose: "marketing", Status: "granted", OccurredAt: at},
			{Email: "ines.roux@example.fr", Channel: "email", Brand: "acme", Purpose: "partners", Status: "withdrawn", OccurredAt: at},
		}
		if gpc == "1" {
			want = append(want, fixtures.Signal{Email: "ines.roux@example.fr", Channel: "email", Brand: "acme", Purpose: "sale_sharing", Status: "withdrawn", OccurredAt: at})
		}
		if d := fixtures.DiffSignals(b.Signals, want); d != "" {
			t.Errorf("Sec-GPC %s: %s", gpc, d)
		}
	}
}
