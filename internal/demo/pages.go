package demo

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/app"
	"github.com/consentsync/consentsync/service"
)

// demoPerson signs up on the demo's form, gets the links a sending tool
// puts in each message, and unsubscribes in one click.
const demoPerson = "camille.roux@example.com"

// pagesOutcome is what the pages part of the demo did.
type pagesOutcome struct {
	links        *service.Links
	pageStatus   int
	pageMasked   bool
	clickStatus  int
	destinations []string // every destination that must hear the withdrawal
	problems     []string
}

// withPages turns the public pages on for the demo: links point at its
// own listener, signed with a key drawn for this run.
func withPages(cfg *config.Config, base string) {
	cfg.Pages.PublicURL = base
	cfg.Pages.Keys = []config.PageKey{{ID: "demo", Secret: randomToken() + randomToken()}}
	cfg.Pages.PartnerList = "partners-2026-12"
	cfg.Pages.Partners = []string{"Alpha Voyages", "Beta Assurances"}
}

// runPages signs demoPerson up on the signup form (signed as the form
// signs), asks the service for the person's links, opens the preference
// centre, then posts the unsubscribe link exactly as Gmail does (RFC 8058)
// and waits until the withdrawal reached every destination.
func runPages(ctx context.Context, a *app.App, base string, cfg *config.Config, timeout time.Duration) pagesOutcome {
	var o pagesOutcome
	bad := func(format string, args ...any) { o.problems = append(o.problems, fmt.Sprintf(format, args...)) }
	src, ok := cfg.Source("signup-form")
	if !ok || src.Signature == nil {
		bad("pages: no signup-form source to sign up with")
		return o
	}
	body := fmt.Sprintf(`{"email":%q,"submitted_at":%q,"newsletter":"on","consent_version":"signup-v3","ip":"198.51.100.23"}`,
		demoPerson, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	sig := hex.EncodeToString(connectors.HMAC(src.Signature.Algorithm, []byte(src.Secrets[0]), []byte(body)))
	if code, err := send(ctx, "POST", base+"/webhooks/signup-form", "application/json", body, map[string]string{src.Signature.Header: sig}); err != nil || code != http.StatusAccepted {
		bad("pages: sign-up answered %d (%v)", code, err)
		return o
	}
	waitDrained(ctx, a, timeout)
	l, err := a.Service.Links(ctx, demoPerson, "acme", "", "")
	if err != nil {
		bad("pages: links: %v", err)
		return o
	}
	o.links = l
	page, err := fetch(ctx, l.PreferencesURL)
	o.pageStatus, o.pageMasked = page.code, strings.Contains(page.body, "c•••@example.com") && !strings.Contains(page.body, demoPerson)
	if err != nil || o.pageStatus != http.StatusOK || !o.pageMasked {
		bad("pages: preference centre answered %d (%v), address masked: %v", o.pageStatus, err, o.pageMasked)
	}
	o.clickStatus, err = send(ctx, "POST", l.UnsubscribeURL, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click", nil)
	if err != nil || o.clickStatus != http.StatusOK {
		bad("pages: one-click unsubscribe answered %d (%v)", o.clickStatus, err)
	}
	withdrawal := consent.Signal{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing}
	for _, r := range a.Worker.Routes {
		if r.Covers(withdrawal) {
			o.destinations = append(o.destinations, r.Destination)
		}
	}
	slices.Sort(o.destinations)
	return o
}

// printPages prints the pages part and adds its problems: every
// destination covering acme's email marketing must hold the person's
// suppression, sent.
func printPages(ctx context.Context, out io.Writer, a *app.App, o pagesOutcome) []string {
	problems := o.problems
	fmt.Fprintln(out, "\nONE-CLICK UNSUBSCRIBE (RFC 8058) AND THE PREFERENCE CENTRE")
	if o.links == nil {
		return problems
	}
	fmt.Fprintf(out, "  %s signed up on signup-form. The headers a sending tool adds to each message to them:\n", demoPerson)
	fmt.Fprintf(out, "    List-Unsubscribe: %s\n    List-Unsubscribe-Post: %s\n", o.links.ListUnsubscribe, o.links.ListUnsubscribePost)
	fmt.Fprintf(out, "  preference centre (GET %d, address shown as c•••@example.com): %s\n", o.pageStatus, o.links.PreferencesURL)
	fmt.Fprintln(out, "    (these links work while the demo runs: `consentsync demo -serve` keeps it running to open them in a browser)")
	fmt.Fprintf(out, "  double opt-in confirmation link: %s\n", o.links.ConfirmURL)
	fmt.Fprintf(out, "  one-click POST, as Gmail sends it: HTTP %d; the withdrawal at every destination of acme's email marketing:\n", o.clickStatus)
	rows, err := a.Store.ListOutbox(ctx)
	if err != nil {
		return append(problems, err.Error())
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    DESTINATION\tPUSH\tREAD BACK\tPROVIDER RECEIPT")
	for _, d := range o.destinations {
		found := false
		for _, r := range rows {
			if r.Destination != d || !strings.EqualFold(r.Email.String, demoPerson) || r.Purpose != "marketing" {
				continue
			}
			found = true
			receipt := oneLine(r.Receipt.String)
			if len(receipt) > 50 {
				receipt = receipt[:47] + "..."
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", d, r.Status, readBack(a, r), receipt)
			if r.Status != "sent" {
				problems = append(problems, fmt.Sprintf("one-click: %s is %s", d, r.Status))
			}
		}
		if !found {
			fmt.Fprintf(tw, "    %s\tmissing\t\t\n", d)
			problems = append(problems, "one-click: no suppression queued for "+d)
		}
	}
	_ = tw.Flush()
	return problems
}

type fetched struct {
	code int
	body string
}

func fetch(ctx context.Context, u string) (fetched, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return fetched{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return fetched{resp.StatusCode, string(b)}, nil
}

// send posts body without following redirects or sending a cookie.
func send(ctx context.Context, method, u, ctype, body string, header map[string]string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", ctype)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
