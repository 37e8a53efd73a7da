package form

import (
	"net/http"
	"testing"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// A page relaying the browser's Sec-GPC header: a single submission also
// objects to sale_sharing; a bulk array does not (one header cannot speak
// for several people); any value but "1" is no preference.
func TestParseGPC(t *testing.T) {
	t.Parallel()
	_, cfg := fixture(t)
	s := newSource(t, cfg)
	for _, tc := range []struct {
		name, ctype, body, gpc string
		want                   int // sale_sharing withdrawals
	}{
		{"json", "application/json", `{"email":"a@b.fr","submitted_at":"2025-11-20T10:45:00Z"}`, "1", 1},
		{"urlencoded", "application/x-www-form-urlencoded", "email=a%40b.fr&newsletter=on", "1", 1},
		{"multipart", "multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\na@b.fr\r\n--zz--\r\n", "1", 1},
		{"array", "application/json", `[{"email":"a@b.fr"},{"email":"c@d.fr"}]`, "1", 0},
		{"gpc 0", "application/json", `{"email":"a@b.fr"}`, "0", 0},
		{"no header", "application/json", `{"email":"a@b.fr"}`, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {tc.ctype}}
			if tc.gpc != "" {
				h.Set("Sec-GPC", tc.gpc)
			}
			b, err := s.Parse(&connectors.Request{Header: h, Body: []byte(tc.body), ReceivedAt: time.Date(2025, 11, 20, 10, 45, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, sig := range b.Signals {
				if sig.Purpose == consent.PurposeSaleSharing {
					n++
					if sig.Status != consent.StatusWithdrawn || !sig.Evidence.GPC || sig.Subject.Email != "a@b.fr" {
						t.Errorf("signal %+v", sig)
					}
				}
			}
			if n != tc.want {
				t.Errorf("%d sale_sharing withdrawals, want %d (signals %+v, skipped %q)", n, tc.want, b.Signals, b.Skipped)
			}
		})
	}
}
