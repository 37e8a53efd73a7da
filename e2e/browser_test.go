package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/consentsync/consentsync/server/pages"
)

// chromiumPath finds a Chromium binary ($CHROMIUM, then Debian's
// /usr/bin/chromium, then the usual names on $PATH); the browser tests
// skip, saying so, only when there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium binary found (install Debian's chromium package, or set CHROMIUM): browser test skipped")
	return ""
}

// axeVersion is the axe-core release the accessibility check injects.
const axeVersion = "4.14.1"

// axeSource returns axe-core's axe.min.js: $AXE_CORE_JS when set, else the
// copy `npm install axe-core@4.14.1` put in the user cache directory
// (outside the repository), installing it there on first use.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_CORE_JS")
	if path == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "consentsync", "axe-core-"+axeVersion)
		path = filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
		if _, err := os.Stat(path); err != nil {
			axeInstall.Do(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				out, err := exec.CommandContext(ctx, "npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--no-save",
					"--loglevel=error", "axe-core@"+axeVersion).CombinedOutput()
				if err != nil {
					axeErr = string(out) + err.Error()
				}
			})
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("axe-core is needed for the accessibility check (npm install axe-core@%s, or set AXE_CORE_JS): %v %s", axeVersion, err, axeErr)
	}
	return string(b)
}

var (
	axeInstall sync.Once
	axeErr     string
)

// browser is one headless Chromium with a new empty profile, recording
// every URL it requests.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1300),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.requests = append(b.requests, e.Request.URL)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("network.enable: %v", err)
	}
	return b
}

func (b *browser) run(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// value runs one action that returns a value.
func value[T any](t *testing.T, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// axeViolation is one failed axe-core rule.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

type axeResult struct {
	Violations []axeViolation `json:"violations"`
	Passes     []struct {
		ID string `json:"id"`
	} `json:"passes"`
}

// checkA11y injects axe-core into the page and fails on any serious or
// critical violation of WCAG 2.1 A/AA and axe's best practices (minor and
// moderate ones are logged).
func (b *browser) checkA11y(t *testing.T, axe, page string) {
	t.Helper()
	var res axeResult
	value(t, b, chromedp.Evaluate[bool](axe+";true"))
	res = value(t, b, chromedp.Evaluate[axeResult](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}).then(r => ({violations: r.violations, passes: r.passes.map(p => ({id: p.id}))}))`,
		chromedp.EvalAwaitPromise))
	if len(res.Passes) == 0 {
		t.Fatalf("%s: axe-core ran no rule", page)
	}
	for _, v := range res.Violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s: accessibility violation %s (%s): %s at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
		} else {
			t.Logf("%s: minor accessibility finding %s (%s): %s", page, v.ID, v.Impact, v.Help)
		}
	}
	t.Logf("%s: axe-core %s: %d rules passed, %d violations", page, axeVersion, len(res.Passes), len(res.Violations))
}

// screenshot saves the full page as name in the test's artefact directory
// (go test -artifacts keeps it) and, when CONSENTSYNC_UPDATE_SCREENSHOT
// names a path, there too (docs/img/preference-centre.png).
func (b *browser) screenshot(t *testing.T, name string, alsoTo string) {
	t.Helper()
	png := value(t, b, chromedp.FullScreenshot(100))
	p := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	if alsoTo != "" {
		if err := os.WriteFile(alsoTo, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	return value(t, b, chromedp.Text(chromedp.CSS(sel)))
}

func (b *browser) checked(t *testing.T, v string) bool {
	t.Helper()
	return value(t, b, chromedp.Evaluate[bool](`document.querySelector('input[name=on][value="`+v+`"]').checked`))
}

// TestPreferenceCentreInBrowser drives Debian's Chromium, headless,
// against the running service: the preference centre in French and
// English (axe-core finds no serious or critical violation, nothing is
// loaded from elsewhere, no cookie is set, the address is masked); the
// person turns partners' offers off with the mouse and email marketing on
// with the keyboard and saves; the admin API then shows the grant (valid,
// all six criteria passed) and the withdrawal, and the SendGrid fake holds
// the suppression. Then the unsubscribe page: opening it changes nothing,
// its one button withdraws.
func TestPreferenceCentreInBrowser(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	axe := axeSource(t)
	e := start(t, envOptions{mutate: withPages})
	const email = "louise.bernard@example.com"
	e.seed(email, false, true)
	if st, ok := e.consentStatus(email, "email", "acme", "partners"); st != "granted" || !ok {
		t.Fatalf("seeded partners %q allowed=%v", st, ok)
	}
	l := e.linksOf(email, `{"brand":"acme"}`)
	prefs := l["preferences_url"].(string)
	unsub := l["unsubscribe_url"].(string)
	mk, pt := "email:marketing:acme", "email:partners:acme"

	// French, by ?lang=.
	b.run(t, chromedp.Navigate(prefs+"?lang=fr"), chromedp.WaitVisible(chromedp.CSS("h1")))
	lang := value(t, b, chromedp.Evaluate[string](`document.documentElement.lang`))
	body := b.text(t, "body")
	if lang != "fr" || !strings.Contains(body, "Vos préférences de communication") || !strings.Contains(body, "l•••@example.com") ||
		!strings.Contains(body, "pc-email-marketing-2026-12") || !strings.Contains(body, "Alpha Voyages") {
		t.Fatalf("French page (lang %q):\n%s", lang, body)
	}
	if strings.Contains(body, email) {
		t.Fatal("the page shows the address in full")
	}
	b.checkA11y(t, axe, "preference centre (fr)")
	b.screenshot(t, "preference-centre-fr.png", "")

	// English, by Accept-Language.
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "en-GB,en;q=0.9"}}); err != nil {
		t.Fatal(err)
	}
	b.run(t, chromedp.Navigate(prefs), chromedp.WaitVisible(chromedp.CSS("h1")))
	lang = value(t, b, chromedp.Evaluate[string](`document.documentElement.lang`))
	if h1 := b.text(t, "h1"); lang != "en" || h1 != "Your communication preferences" {
		t.Fatalf("English page: lang %q, h1 %q", lang, h1)
	}
	if !b.checked(t, pt) || b.checked(t, mk) {
		t.Fatalf("shown states: partners %v, marketing %v", b.checked(t, pt), b.checked(t, mk))
	}
	b.checkA11y(t, axe, "preference centre (en)")
	b.screenshot(t, "preference-centre-en.png", os.Getenv("CONSENTSYNC_UPDATE_SCREENSHOT"))

	// Partners off with the mouse, marketing on with the keyboard (Space on
	// the focused box), then save.
	b.run(t,
		chromedp.Click(chromedp.CSS(`input[name=on][value="`+pt+`"]`)),
		chromedp.Focus(chromedp.CSS(`input[name=on][value="`+mk+`"]`)),
		chromedp.KeyEvent(" "),
	)
	if b.checked(t, pt) || !b.checked(t, mk) {
		t.Fatal("the clicks did not toggle the boxes")
	}
	b.run(t, chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	if n := b.text(t, ".notice"); !strings.Contains(n, "Your choices are saved") {
		t.Fatalf("notice %q", n)
	}
	b.screenshot(t, "preference-centre-saved.png", "")
	e.waitDrained()
	if st, ok := e.consentStatus(email, "email", "acme", "marketing"); st != "granted" || !ok {
		t.Fatalf("marketing after the page: %q allowed=%v", st, ok)
	}
	if st, ok := e.consentStatus(email, "email", "acme", "partners"); st != "withdrawn" || ok {
		t.Fatalf("partners after the page: %q allowed=%v", st, ok)
	}
	if !slices.Contains(e.Sandbox.SendGridSuppressed(), email) {
		t.Fatalf("SendGrid suppressions: %v", e.Sandbox.SendGridSuppressed())
	}
	if st := e.Sandbox.MailchimpStatus("a6b5da1054", email); st == "unsubscribed" {
		t.Fatal("Mailchimp (marketing only) was told to unsubscribe")
	}
	var q struct {
		Quality  []byte `db:"quality"`
		Evidence []byte `db:"evidence"`
	}
	if err := e.App.Store.DB.Get(&q, `SELECT quality, evidence FROM consent_events WHERE source = $1 AND status = 'granted'`, pages.SourcePreferences); err != nil {
		t.Fatal(err)
	}
	var quality []struct{ Criterion, Verdict string }
	_ = json.Unmarshal(q.Quality, &quality)
	if len(quality) != 6 {
		t.Fatalf("quality %s", q.Quality)
	}
	for _, c := range quality {
		if c.Verdict != "pass" {
			t.Errorf("the page's grant: %s is %s (%s)", c.Criterion, c.Verdict, q.Quality)
		}
	}
	var ev map[string]any
	_ = json.Unmarshal(q.Evidence, &ev)
	if ev["wording_version"] != "pc-email-marketing-2026-12" || !strings.HasPrefix(ev["wording_hash"].(string), "sha256:") ||
		ev["ip"] != "127.0.0.0/24" || !strings.Contains(ev["user_agent"].(string), "Chrome") || !strings.Contains(ev["page_url"].(string), "/p/") {
		t.Fatalf("evidence %v", ev)
	}

	// The unsubscribe page in the browser: opening it withdraws nothing;
	// its one button does.
	b.run(t, chromedp.Navigate(unsub), chromedp.WaitVisible(chromedp.CSS("button")))
	b.checkA11y(t, axe, "unsubscribe")
	b.screenshot(t, "unsubscribe.png", "")
	time.Sleep(200 * time.Millisecond)
	if st, ok := e.consentStatus(email, "email", "acme", "marketing"); st != "granted" || !ok {
		t.Fatalf("opening the unsubscribe page changed marketing: %q", st)
	}
	b.run(t, chromedp.Click(chromedp.CSS("button")), chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
	if h1 := b.text(t, "h1"); h1 != "You are unsubscribed" {
		t.Fatalf("after the button: %q", h1)
	}
	e.waitDrained()
	if st, _ := e.consentStatus(email, "email", "acme", "marketing"); st != "withdrawn" {
		t.Fatalf("after the button: %q", st)
	}
	if st := e.Sandbox.MailchimpStatus("a6b5da1054", email); st != "unsubscribed" {
		t.Fatalf("Mailchimp after the button: %q", st)
	}
	// The page links to the preference centre, which now shows the
	// withdrawal; the unsubscribe page itself no longer asks.
	b.run(t, chromedp.Click(chromedp.CSS(`a[href*="/p/"]`)), chromedp.WaitVisible(chromedp.CSS(`input[name=on]`)))
	if h1 := b.text(t, "h1"); h1 != "Your communication preferences" || b.checked(t, mk) || b.checked(t, pt) {
		t.Fatalf("preference centre after unsubscribing: %q, marketing %v, partners %v", h1, b.checked(t, mk), b.checked(t, pt))
	}
	b.run(t, chromedp.Navigate(unsub), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := b.text(t, "h1"); h1 != "You are unsubscribed" {
		t.Fatalf("unsubscribe page once unsubscribed: %q", h1)
	}

	// The confirmation page (nothing pending) and the refusal page.
	b.run(t, chromedp.Navigate(l["confirm_url"].(string)), chromedp.WaitVisible(chromedp.CSS("h1")))
	b.checkA11y(t, axe, "confirmation")
	b.run(t, chromedp.Navigate(e.URL+"/p/e2e.forged.token"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := b.text(t, "h1"); h1 != "This link does not work" {
		t.Fatalf("forged link: %q", h1)
	}
	b.checkA11y(t, axe, "refusal")

	// Nothing came from elsewhere, and no cookie was set.
	host := mustHost(t, e.URL)
	b.mu.Lock()
	reqs := slices.Clone(b.requests)
	b.mu.Unlock()
	for _, r := range reqs {
		if u, err := url.Parse(r); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != host {
			t.Errorf("third-party request: %s", r)
		}
	}
	if len(reqs) < 4 {
		t.Fatalf("recorded %d requests only", len(reqs))
	}
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{e.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies.Cookies) != 0 {
		t.Fatalf("cookies set: %v", cookies.Cookies)
	}
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
