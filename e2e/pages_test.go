package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/links"
	"github.com/consentsync/consentsync/server/pages"
)

const pagesSecret = "e2e-pages-secret-0123456789abcdef-0123"

// withPages turns the pages on (one key) and makes the SendGrid
// destination honour partners withdrawals too.
func withPages(cfg *config.Config) {
	cfg.Pages.Keys = []config.PageKey{{ID: "e2e", Secret: pagesSecret}}
	cfg.Pages.PartnerList = "partners-2026-12"
	cfg.Pages.Partners = []string{"Alpha Voyages", "Beta Assurances"}
	for i := range cfg.Destinations {
		if cfg.Destinations[i].Name == "sendgrid-acme" {
			cfg.Destinations[i].Purposes = []string{"marketing", "partners"}
		}
	}
}

// seed posts a signed signup-form submission for email with the
// newsletter and partner boxes as given, and waits for it.
func (e *env) seed(email string, newsletter, partners bool) {
	e.t.Helper()
	box := func(b bool) string {
		if b {
			return "on"
		}
		return ""
	}
	body := fmt.Sprintf(`{"email":%q,"submitted_at":%q,"newsletter":%q,"partner_offers":%q,"consent_version":"signup-v3"}`,
		email, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), box(newsletter), box(partners))
	if r := e.postForm(body); r.Status != http.StatusAccepted {
		e.t.Fatalf("seed: HTTP %d %s", r.Status, r.Body)
	}
	e.waitDrained()
}

// linksOf asks the admin API for email's links.
func (e *env) linksOf(email, body string) map[string]any {
	e.t.Helper()
	r := e.do("POST", "/v1/subjects/"+email+"/links", "", http.Header{"Authorization": {"Bearer test-admin-token"}}, []byte(body))
	if r.Status != http.StatusOK {
		e.t.Fatalf("links: HTTP %d %s", r.Status, r.Body)
	}
	return r.JSON
}

// consentStatus is the admin API's status of email's consent key ("" when none).
func (e *env) consentStatus(email, channel, brand, purpose string) (status string, allowed bool) {
	e.t.Helper()
	r := e.admin("GET", "/v1/subjects/"+email)
	if r.Status != http.StatusOK {
		e.t.Fatalf("subject: HTTP %d %s", r.Status, r.Body)
	}
	cs, _ := r.JSON["consents"].([]any)
	for _, c := range cs {
		m := c.(map[string]any)
		if m["channel"] == channel && m["brand"] == brand && m["purpose"] == purpose {
			return m["status"].(string), m["allowed"].(bool)
		}
	}
	return "", false
}

// noRedirect is a client that never follows a redirect and sends no
// cookie: how a mailbox provider posts a one-click unsubscribe.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

// oneClick posts to u exactly as Gmail does (RFC 8058 §3.2): form-encoded
// List-Unsubscribe=One-Click, no cookie, no credentials.
func oneClick(t *testing.T, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Mozilla/5.0 (compatible; Google-One-Click-Unsubscribe)")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if c := resp.Header.Get("Set-Cookie"); c != "" {
		t.Fatalf("a page set a cookie: %s", c)
	}
	return resp.StatusCode, string(b)
}

func get(t *testing.T, u string, header http.Header) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestOneClickUnsubscribe: the links API returns the RFC 8058 header
// values; a GET (a mail scanner's prefetch) changes nothing; the one-click
// POST as Gmail sends it withdraws, with its evidence, and reaches every
// destination; repeating it stores nothing new; forged and expired tokens
// get the same answer.
func TestOneClickUnsubscribe(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: withPages})
	const email = "claire.martin@example.com"
	e.seed(email, true, false)
	if st, ok := e.consentStatus(email, "email", "acme", "marketing"); st != "granted" || !ok {
		t.Fatalf("seeded state %q allowed=%v", st, ok)
	}
	l := e.linksOf(email, `{"brand":"acme"}`)
	lu, _ := l["list_unsubscribe"].(string)
	uu, _ := l["unsubscribe_url"].(string)
	if l["list_unsubscribe_post"] != "List-Unsubscribe=One-Click" || lu != "<"+uu+">" || !strings.HasPrefix(uu, e.URL+"/u/") {
		t.Fatalf("links = %v", l)
	}
	for _, k := range []string{"preferences_url", "confirm_url"} {
		if s, _ := l[k].(string); !strings.HasPrefix(s, e.URL+"/") || strings.Contains(s, "claire") {
			t.Fatalf("%s = %q", k, s)
		}
	}
	if strings.Contains(uu, "claire") || strings.Contains(uu, "example") {
		t.Fatalf("the token shows the address: %s", uu)
	}

	// A prefetch: a page with one button, the address masked, nothing stored.
	for i := 0; i < 3; i++ {
		code, body, h := get(t, uu, http.Header{"User-Agent": {"Mozilla/5.0 (link scanner)"}})
		if code != http.StatusOK || !strings.Contains(body, `name="List-Unsubscribe" value="One-Click"`) || !strings.Contains(body, "c•••@example.com") {
			t.Fatalf("GET: %d %s", code, body)
		}
		if strings.Contains(body, email) || h.Get("Set-Cookie") != "" || h.Get("Referrer-Policy") != "no-referrer" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("GET leaks or misses a header: %v\n%s", h, body)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE source LIKE '\_%'`); n != 0 {
		t.Fatalf("a GET stored %d submissions", n)
	}
	if st, _ := e.consentStatus(email, "email", "acme", "marketing"); st != "granted" {
		t.Fatalf("after GETs: %q", st)
	}

	code, body := oneClick(t, uu)
	if code != http.StatusOK {
		t.Fatalf("one-click: %d %s", code, body)
	}
	e.waitDrained()
	if st, ok := e.consentStatus(email, "email", "acme", "marketing"); st != "withdrawn" || ok {
		t.Fatalf("after one-click: %q allowed=%v", st, ok)
	}
	if !slices.Contains(e.Sandbox.SendGridSuppressed(), email) {
		t.Fatalf("SendGrid suppressions: %v", e.Sandbox.SendGridSuppressed())
	}
	if st := e.Sandbox.MailchimpStatus("a6b5da1054", email); st != "unsubscribed" {
		t.Fatalf("Mailchimp status %q", st)
	}
	var ev struct {
		Evidence []byte `db:"evidence"`
	}
	if err := e.App.Store.DB.Get(&ev, `SELECT evidence FROM consent_events WHERE source = $1`, pages.SourceOneClick); err != nil {
		t.Fatal(err)
	}
	var evidence map[string]any
	_ = json.Unmarshal(ev.Evidence, &evidence)
	tok := strings.TrimPrefix(uu, e.URL+"/u/")
	claims, err := links.Signer{Keys: []links.Key{{ID: "e2e", Secret: []byte(pagesSecret)}}}.Verify(tok, links.Unsubscribe, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if evidence["ip"] != "127.0.0.0/24" || evidence["event_id"] != claims.ID || evidence["event"] != "one_click" ||
		!strings.Contains(fmt.Sprint(evidence["user_agent"]), "Google-One-Click") {
		t.Fatalf("evidence = %v", evidence)
	}

	// Idempotent: the same POST again stores nothing and pushes nothing.
	calls := e.Sandbox.CallCount(sandbox.SendGrid)
	for i := 0; i < 2; i++ {
		if code, _ := oneClick(t, uu); code != http.StatusOK {
			t.Fatalf("repeat: %d", code)
		}
	}
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM consent_events WHERE source = $1`, pages.SourceOneClick); n != 1 {
		t.Fatalf("%d one-click ledger rows, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE source = $1`, pages.SourceOneClick); n != 1 {
		t.Fatalf("%d one-click inbox rows, want 1", n)
	}
	if c := e.Sandbox.CallCount(sandbox.SendGrid); c != calls {
		t.Fatalf("repeats called SendGrid %d more times", c-calls)
	}

	if m := e.do("GET", "/metrics", "", http.Header{"Authorization": {"Bearer " + viewerToken}}, nil); !strings.Contains(m.Body, `consentsync_pages_requests_total{outcome="stored",page="unsubscribe"} 1`) ||
		!strings.Contains(m.Body, `consentsync_pages_requests_total{outcome="unchanged",page="unsubscribe"} 2`) ||
		!strings.Contains(m.Body, `consentsync_pages_requests_total{outcome="shown",page="unsubscribe"} 3`) {
		t.Fatalf("metrics lack the pages' counts:\n%s", grepLines(m.Body, "consentsync_pages"))
	}
	// Forged, expired, other-purpose and unknown-subject tokens: one answer.
	sg := links.Signer{Keys: []links.Key{{ID: "e2e", Secret: []byte(pagesSecret)}}}
	expired, _, _ := sg.Issue(links.Claims{Purpose: links.Unsubscribe, SubjectID: claims.SubjectID, Brand: "acme", ExpiresAt: time.Now().Add(-time.Second)})
	nobody, _, _ := sg.Issue(links.Claims{Purpose: links.Unsubscribe, SubjectID: 987654, Brand: "acme", ExpiresAt: time.Now().Add(time.Hour)})
	forged := tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tok, "AA")]
	prefs := strings.TrimPrefix(l["preferences_url"].(string), e.URL+"/p/")
	var first string
	for i, bad := range []string{forged, expired, nobody, prefs, "x", strings.Repeat("k", 300)} {
		code, body := oneClick(t, e.URL+"/u/"+url.PathEscape(bad))
		if code != http.StatusNotFound {
			t.Fatalf("bad token %d: %d %s", i, code, body)
		}
		if i == 0 {
			first = body
		} else if stripNonce(body) != stripNonce(first) {
			t.Fatalf("bad token %d answers differently:\n%s\n---\n%s", i, body, first)
		}
	}
	// A body that is not the one-click pair is refused, and stores nothing.
	req, _ := http.NewRequest("POST", uu, bytes.NewReader([]byte("List-Unsubscribe=Maybe")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad body: %d", resp.StatusCode)
	}
}

// stripNonce removes the per-answer CSP nonce so two pages compare.
func stripNonce(s string) string {
	if i := strings.Index(s, `nonce="`); i >= 0 {
		if j := strings.Index(s[i+7:], `"`); j >= 0 {
			return s[:i] + s[i+7+j:]
		}
	}
	return s
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// postPage posts form to a page as a same-origin browser would.
func postPage(t *testing.T, u string, form url.Values, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) e2e")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDoubleOptInConfirmation: a pending double opt-in request is shown
// on /c/{token}; opening it confirms nothing; a cross-site post or one
// without the form's CSRF token is refused; the form's POST grants, with
// the confirmation's and the request's evidence, and the grant passes the
// six criteria.
func TestDoubleOptInConfirmation(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: func(c *config.Config) {
		withPages(c)
		for i := range c.Sources {
			if c.Sources[i].Name == "signup-form" {
				c.Sources[i].Fields.Consents = append(c.Sources[i].Fields.Consents,
					config.ConsentField{Field: "newsletter_doi", Channel: "email", Purpose: "marketing", DoubleOptIn: true})
			}
		}
	}})
	const email = "paul.durand@example.com"
	body := fmt.Sprintf(`{"email":%q,"submitted_at":%q,"newsletter_doi":"on","consent_version":"signup-v3"}`, email, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	if r := e.postForm(body); r.Status != http.StatusAccepted {
		t.Fatalf("seed: %d %s", r.Status, r.Body)
	}
	e.waitDrained()
	if st, ok := e.consentStatus(email, "email", "acme", "marketing"); st != "pending" || ok {
		t.Fatalf("seeded %q allowed=%v", st, ok)
	}
	cu := e.linksOf(email, `{"brand":"acme"}`)["confirm_url"].(string)
	code, page, _ := get(t, cu+"?lang=fr", nil)
	if code != http.StatusOK || !strings.Contains(page, "Confirmez votre inscription") || !strings.Contains(page, "doi-confirm-2026-12") ||
		!strings.Contains(page, "p•••@example.com") || strings.Contains(page, email) {
		t.Fatalf("GET: %d %s", code, page)
	}
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field:\n%s", page)
	}
	if code, _ := postPage(t, cu, url.Values{"csrf": {m[1]}}, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}); code != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d", code)
	}
	if code, body := postPage(t, cu, url.Values{"csrf": {"1.forged"}}, nil); code != http.StatusOK || !strings.Contains(body, "too old") {
		t.Fatalf("forged CSRF: %d %s", code, body)
	}
	time.Sleep(200 * time.Millisecond)
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE source = $1`, pages.SourceConfirm); n != 0 {
		t.Fatalf("refused posts stored %d rows", n)
	}
	code, done := postPage(t, cu, url.Values{"csrf": {m[1]}, "lang": {"en"}}, http.Header{"Sec-Fetch-Site": {"same-origin"}})
	if code != http.StatusOK || !strings.Contains(done, "your subscription is confirmed") {
		t.Fatalf("confirm: %d %s", code, done)
	}
	e.waitDrained()
	if st, ok := e.consentStatus(email, "email", "acme", "marketing"); st != "granted" || !ok {
		t.Fatalf("after confirmation: %q allowed=%v", st, ok)
	}
	var q struct {
		Quality  []byte `db:"quality"`
		Evidence []byte `db:"evidence"`
	}
	if err := e.App.Store.DB.Get(&q, `SELECT quality, evidence FROM consent_events WHERE source = $1`, pages.SourceConfirm); err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	_ = json.Unmarshal(q.Evidence, &ev)
	// The request's own evidence (its box, its wording) is confirmed.
	if ev["confirmed_at"] == nil || ev["opt_in_level"] != "double_opt_in" || ev["wording_version"] != "signup-v3" || ev["checkbox"] != "on" ||
		ev["ip"] != "127.0.0.0/24" || ev["event"] != "double_opt_in" {
		t.Fatalf("evidence %v", ev)
	}
	var quality []struct{ Criterion, Verdict string }
	_ = json.Unmarshal(q.Quality, &quality)
	if len(quality) != 6 {
		t.Fatalf("quality %s", q.Quality)
	}
	for _, c := range quality {
		if c.Verdict != "pass" {
			t.Errorf("the confirmed grant: %s is %s (%s)", c.Criterion, c.Verdict, q.Quality)
		}
	}
	// Nothing is pending any more: the page says so, and a second POST
	// stores nothing.
	if _, page, _ := get(t, cu, nil); !strings.Contains(page, "nothing to confirm") {
		t.Fatalf("after: %s", page)
	}
	postPage(t, cu, url.Values{"csrf": {m[1]}}, nil)
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE source = $1`, pages.SourceConfirm); n != 1 {
		t.Fatalf("%d confirmation rows, want 1", n)
	}
}

// TestPreferenceCentreAllBrands: "withdraw from every brand" withdraws
// every channel × purpose the person has from every configured brand,
// each with its own ledger row, and pushes to every brand's destinations;
// a toggle for a key the page did not show is ignored; the pages are
// rate-limited per link.
func TestPreferenceCentreAllBrands(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: func(c *config.Config) {
		withPages(c)
		c.Pages.TokenPerMinute = 8
		d := c.Destinations[0]
		d.Name, d.Brand = "sendgrid-beta", "beta"
		c.Destinations = append(c.Destinations, d)
	}})
	const email = "anne.petit@example.com"
	e.seed(email, true, true)
	pu := e.linksOf(email, `{"brand":"acme"}`)["preferences_url"].(string)
	_, page, _ := get(t, pu, nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "acme, beta") {
		t.Fatalf("page:\n%s", page)
	}
	// A box the page did not show (beta: no state, not the link's brand)
	// is ignored; a cross-site post is refused.
	if code, body := postPage(t, pu, url.Values{"csrf": {m[1]}, "shown": {"email:marketing:beta"}, "on": {"email:marketing:beta"}}, nil); code != http.StatusOK || !strings.Contains(body, "Nothing changed") {
		t.Fatalf("unshown toggle: %d %s", code, body)
	}
	if code, _ := postPage(t, pu, url.Values{"csrf": {m[1]}, "all": {"1"}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}); code != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d", code)
	}
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE source = $1`, pages.SourcePreferences); n != 0 {
		t.Fatalf("refused posts stored %d rows", n)
	}
	form := url.Values{"csrf": {m[1]}, "all": {"1"},
		"shown": {"email:marketing:acme", "email:partners:acme", "email:marketing:beta"}, "on": {"email:marketing:beta"}}
	if code, body := postPage(t, pu, form, nil); code != http.StatusOK || !strings.Contains(body, "Your choices are saved") {
		t.Fatalf("POST: %d %s", code, body)
	}
	e.waitDrained()
	got := e.ledger(pages.SourcePreferences)
	if len(got) != 4 {
		t.Fatalf("ledger rows %v, want marketing and partners withdrawn for acme and beta", got)
	}
	for _, k := range [][2]string{{"acme", "marketing"}, {"acme", "partners"}, {"beta", "marketing"}, {"beta", "partners"}} {
		if st, ok := e.consentStatus(email, "email", k[0], k[1]); st != "withdrawn" || ok {
			t.Errorf("%v: %q allowed=%v", k, st, ok)
		}
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'sendgrid-beta' AND status = 'sent'`); n == 0 {
		t.Fatal("beta's destination got no suppression")
	}
	// The link's own budget: 8 requests a minute, then 429 with Retry-After.
	var limited bool
	for i := 0; i < 10 && !limited; i++ {
		code, _, h := get(t, pu, nil)
		limited = code == http.StatusTooManyRequests && h.Get("Retry-After") != ""
	}
	if !limited {
		t.Fatal("no 429 after the link's budget")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLinksForScopesATokenCannotCarry: a link asked for a scope a token
// cannot name (a cookie sub-purpose, "cookies:analytics") is a bad
// question, 400 with the reason, not a 503 "storage unavailable" logged as
// a storage error; so is a configured brand too long for a token (over 64
// bytes), and the configuration check refuses such a brand when the pages
// are on.
func TestLinksForScopesATokenCannotCarry(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: withPages})
	const email = "cookie.links@example.com"
	e.seed(email, true, false)
	h := http.Header{"Authorization": {"Bearer test-admin-token"}}
	r := e.do("POST", "/v1/subjects/"+email+"/links", "", h, []byte(`{"brand":"acme","purpose":"cookies:analytics"}`))
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "cookies:analytics") {
		t.Errorf("links for a cookie sub-purpose: HTTP %d %s, want 400 naming it", r.Status, r.Body)
	}
	if r := e.do("POST", "/v1/subjects/"+email+"/links", "", h, []byte(`{"brand":"acme","purpose":"partners"}`)); r.Status != http.StatusOK {
		t.Errorf("links for partners: HTTP %d %s", r.Status, r.Body)
	}
	cfg := *e.App.Config
	cfg.Destinations = append([]config.Destination(nil), cfg.Destinations...)
	cfg.Destinations[0].Brand = strings.Repeat("b", 65)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "brand") {
		t.Errorf("a 65-byte brand with the pages on: validation %v", err)
	}
}
