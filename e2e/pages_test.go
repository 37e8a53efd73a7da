package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
