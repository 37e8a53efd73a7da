package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/consentsync/consentsync/service"
)

// PrintLinks prints the links of the person raw names for brand
// (service.Links, the same answer as POST /v1/subjects/{id}/links): the
// two header lines a sending tool adds to a message (RFC 2369, RFC 8058),
// then the preference-centre and double opt-in confirmation URLs.
func PrintLinks(ctx context.Context, w io.Writer, svc *service.Service, raw, brand, channel, purpose string) error {
	l, err := svc.Links(ctx, raw, brand, channel, purpose)
	if err != nil {
		return err
	}
	day := func(t time.Time) string { return t.UTC().Format("2006-01-02") }
	fmt.Fprintf(w, "List-Unsubscribe: %s\n", l.ListUnsubscribe)
	fmt.Fprintf(w, "List-Unsubscribe-Post: %s\n", l.ListUnsubscribePost)
	fmt.Fprintf(w, "\nunsubscribe (%s %s of %s, until %s): %s\n", l.Channel, l.Purpose, l.Brand, day(l.UnsubscribeExpires), l.UnsubscribeURL)
	fmt.Fprintf(w, "preference centre (until %s): %s\n", day(l.PreferencesExpires), l.PreferencesURL)
	fmt.Fprintf(w, "double opt-in confirmation (until %s): %s\n", day(l.ConfirmExpires), l.ConfirmURL)
	return nil
}
