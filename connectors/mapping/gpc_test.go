package mapping

import (
	"net/http"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
)

func TestGPCHeader(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want bool
	}{
		{http.Header{"Sec-Gpc": {"1"}}, true},
		{http.Header{"Sec-Gpc": {" 1 "}}, true},
		{http.Header{"Sec-Gpc": {"0"}}, false},
		{http.Header{"Sec-Gpc": {"true"}}, false},
		{http.Header{"Sec-Gpc": {""}}, false},
		{http.Header{"Sec-Gpc": {"1", "1"}}, false},
		{http.Header{"Sec-Gpc": {"1,0"}}, false},
		{http.Header{"Gpc": {"1"}}, false},
		{http.Header{}, false},
		{nil, false},
	} {
		if got := GPC(tc.h); got != tc.want {
			t.Errorf("GPC(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
	// Header names are case-insensitive once canonicalized.
	h := http.Header{}
	h.Set("sec-gpc", "1")
	if !GPC(h) {
		t.Error("lower-case header name")
	}
}

func TestMapGPC(t *testing.T) {
	at := time.Date(2025, 11, 20, 10, 45, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		fields  map[string]any
		gpc     bool
		want    []string // "purpose status channel"
		skipped bool
	}{
		{"gpc alone is a signal", map[string]any{"email": "a@b.fr"}, true, []string{"sale_sharing withdrawn email"}, false},
		{"gpc beside a grant", map[string]any{"email": "a@b.fr", "newsletter": "on"}, true, []string{"marketing granted email", "sale_sharing withdrawn email"}, false},
		{"phone only: sms", map[string]any{"phone": "+33612345678"}, true, []string{"sale_sharing withdrawn sms"}, false},
		{"no gpc", map[string]any{"email": "a@b.fr"}, false, nil, true},
		{"gpc without a person", map[string]any{"newsletter": "on"}, true, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(config.Source{Name: "pref", Kind: "form", Brand: "acme", Fields: &config.Fields{Email: "email", Phone: "phone",
				Consents: []config.ConsentField{{Field: "newsletter", Channel: "email", Purpose: "marketing"}}}})
			if err != nil {
				t.Fatal(err)
			}
			res := m.Map(Submission{Get: JSON(tc.fields), OccurredAt: at, GPC: tc.gpc})
			var got []string
			for _, s := range res.Signals {
				got = append(got, string(s.Purpose)+" "+string(s.Status)+" "+string(s.Channel))
				if s.Purpose == consent.PurposeSaleSharing && (!s.Evidence.GPC || s.Evidence.Field != GPCHeader || s.Brand != "acme" || !s.OccurredAt.Equal(at) || s.Source != "pref") {
					t.Errorf("gpc signal %+v", s)
				}
				if err := s.Validate(); err != nil {
					t.Error(err)
				}
			}
			if len(got) != len(tc.want) || (res.Skip != "") != tc.skipped {
				t.Fatalf("signals %q skip %q, want %q", got, res.Skip, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("signal %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
