package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/consentsync/consentsync/jobs"
)

// artifacts is where browser tests save screenshots: $ARTIFACTS_DIR, else
// bin/artifacts at the repository root (ignored by git and docker).
func artifacts(t *testing.T) string {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "bin", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// queueBrowser starts headless Chromium (chromiumPath) with a new empty
// profile and the flags a closed network needs (no sandbox, no GPU, no
// QUIC, no first-run, no background or component traffic). It skips the
// test when no Chromium exists.
func queueBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// queueRow is one row of asynqmon's queues overview table, by column label.
type queueRow map[string]string

// readQueues reads the dashboard's queues table as the person sees it.
func readQueues(ctx context.Context) (map[string]queueRow, []string, error) {
	type table struct {
		Head []string   `json:"head"`
		Rows [][]string `json:"rows"`
	}
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[table](`(() => {
		const t = document.querySelector('table[aria-label="queues overview table"]');
		if (!t) return {head: [], rows: []};
		const text = el => el.innerText.trim();
		return {
			head: [...t.querySelectorAll('thead th')].map(text),
			rows: [...t.querySelectorAll('tbody tr')].map(r => [...r.querySelectorAll('th, td')].map(text)),
		};
	})()`))
	if err != nil {
		return nil, nil, err
	}
	out := map[string]queueRow{}
	for _, r := range cells.Rows {
		row := queueRow{}
		for i, c := range r {
			if i < len(cells.Head) {
				row[cells.Head[i]] = c
			}
		}
		out[row["Queue"]] = row
	}
	return out, cells.Head, nil
}

// TestQueueUIInBrowser opens the queue UI in real headless Chromium as an
// operator with the viewer token would: the browser meets a 401, asks for
// credentials (a Basic challenge it can parse, realm consentsync) and gets
// the viewer token typed in; the dashboard lists the inbound and
// suppression queues with the counts asynq holds, and follows them live as
// webhooks arrive; nothing is requested from another host and the page's
// policy blocks nothing it needs; the read-only UI shows no actions and a
// delete sent from the page is refused (403) and deletes nothing.
// Screenshots go to the artefacts directory; UPDATE_SCREENSHOTS=1 also
// writes docs/img/queues.png and docs/img/queue-tasks.png for the README.
func TestQueueUIInBrowser(t *testing.T) {
	t.Parallel()
	ctx := queueBrowser(t)
	e := start(t, envOptions{})
	// A withdrawal runs through both queues (inbound, then a push per
	// destination); then, with the worker stopped, webhooks wait in the
	// inbound queue.
	if r := e.postFixture(fixture(t, "postmark-unsubscribe")); r.Status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", r.Status, r.Body)
	}
	e.waitDrained()
	e.waitFor("both queues to have processed work", func() bool {
		in, err1 := e.App.Inspector.GetQueueInfo(jobs.QueueInbound)
		sup, err2 := e.App.Inspector.GetQueueInfo(jobs.QueueSuppression)
		// The suppression queue keeps the read-backs, scheduled
		// worker.verify_after later.
		return err1 == nil && err2 == nil && in.Processed > 0 && sup.Processed > 0
	})
	e.StopWorker()
	for _, name := range []string{"form-signup", "typeform-optin", "mailchimp-unsubscribe"} {
		if r := e.postFixture(fixture(t, name)); r.Status != http.StatusAccepted && r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	inboundSize := func() int {
		qi, err := e.App.Inspector.GetQueueInfo(jobs.QueueInbound)
		if err != nil {
			t.Fatal(err)
		}
		return qi.Size
	}
	pending := inboundSize()
	if pending != 3 {
		t.Fatalf("inbound queue holds %d tasks, want the 3 webhooks", pending)
	}

	yes := true
	var (
		mu         sync.Mutex
		challenges []*fetch.AuthChallenge
		requested  []string
	)
	// The listener runs in the tab's reading loop: it records, and answers
	// the paused requests from other goroutines (Listen's rules).
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *fetch.EventRequestPaused:
			go func() {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			}()
		case *fetch.EventAuthRequired:
			mu.Lock()
			challenges = append(challenges, ev.AuthChallenge)
			mu.Unlock()
			// What a person types into the browser's prompt.
			answer := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: "operator", Password: viewerToken}
			go func() {
				_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: answer})
			}()
		case *network.EventRequestWillBeSent:
			mu.Lock()
			requested = append(requested, ev.Request.URL)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	cspWatch := `window.__blocked = []; document.addEventListener('securitypolicyviolation', e => window.__blocked.push(e.violatedDirective + ' ' + e.blockedURI));`
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			if _, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch})
			return err
		}),
		chromedp.Navigate(e.OpsURL+"/ops/queues/"),
		chromedp.WaitVisible(chromedp.CSS(`table[aria-label="queues overview table"] tbody tr`)),
	); err != nil {
		t.Fatalf("open the queue UI: %v", err)
	}
	mu.Lock()
	if len(challenges) == 0 {
		t.Fatal("the browser was never asked for credentials")
	}
	if c := challenges[0]; !strings.EqualFold(c.Scheme, "basic") || c.Realm != "consentsync" {
		t.Errorf("the browser's prompt: scheme %q realm %q, want Basic realm consentsync", c.Scheme, c.Realm)
	}
	mu.Unlock()

	// The dashboard: both queues, the counts asynq holds, no actions.
	var rows map[string]queueRow
	var head []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if rows, head, err = readQueues(ctx); err != nil {
			t.Fatal(err)
		}
		if rows[jobs.QueueInbound] != nil && rows[jobs.QueueSuppression] != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	in, sup := rows[jobs.QueueInbound], rows[jobs.QueueSuppression]
	if in == nil || sup == nil {
		t.Fatalf("the dashboard lists %v, want the inbound and suppression queues", rows)
	}
	if in["Size"] != fmt.Sprint(pending) {
		t.Errorf("inbound size on the page %q, asynq holds %d", in["Size"], pending)
	}
	if sup["Processed"] == "0" || sup["Processed"] == "" {
		t.Errorf("suppression queue shows processed %q after the pushes", sup["Processed"])
	}
	for _, h := range head {
		if h == "Actions" {
			t.Error("the read-only UI shows the Actions column")
		}
	}
	if readOnly, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.READ_ONLY === true`)); err != nil || !readOnly {
		t.Errorf("window.READ_ONLY = %v (%v)", readOnly, err)
	}
	dir := artifacts(t)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, filepath.Join(dir, "queues.png"), shot)

	// Live: two more webhooks, and the page follows (asynqmon polls every
	// 8 s by default).
	for _, name := range []string{"shopify-consent", "mailgun-unsubscribed"} {
		if r := e.postFixture(fixture(t, name)); r.Status != http.StatusAccepted && r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	now := inboundSize()
	if now != pending+2 {
		t.Fatalf("inbound queue holds %d, want %d", now, pending+2)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		rows, _, err := readQueues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rows[jobs.QueueInbound]["Size"] == fmt.Sprint(now) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page still shows inbound size %q, asynq holds %d", rows[jobs.QueueInbound]["Size"], now)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Read-only: a delete sent from the page, with the browser's
	// credentials, is refused and deletes nothing.
	del := func(path string) int {
		t.Helper()
		js := fmt.Sprintf(`fetch(%q, {method: "DELETE"}).then(r => r.status)`, path)
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return status
	}
	for _, p := range []string{"/ops/queues/api/queues/inbound/pending_tasks:delete_all", "/ops/queues/api/queues/inbound", "/v1/subjects/manon.faure@example.com"} {
		if got := del(p); got != http.StatusForbidden {
			t.Errorf("DELETE %s from the read-only UI: %d, want 403", p, got)
		}
	}
	if got := inboundSize(); got != now {
		t.Errorf("after the refused deletes the inbound queue holds %d, want %d", got, now)
	}

	// The pending tasks: ids and sources, no address.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.OpsURL+"/ops/queues/queues/inbound?status=pending"),
		chromedp.WaitVisible(chromedp.Search(`//*[contains(text(), "inbound_event")]`)),
	); err != nil {
		t.Fatalf("pending tasks page: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	save(t, filepath.Join(dir, "queue-tasks.png"), shot)
	if !strings.Contains(text, `"source"`) || strings.Contains(text, "@") {
		t.Errorf("pending tasks page: want sources and no address:\n%s", text)
	}

	blocked, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__blocked`))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocked) > 0 {
		t.Errorf("the page's content security policy blocked %q", blocked)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, u := range requested {
		if !strings.HasPrefix(u, e.OpsURL+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the queue UI requested %s (another host)", u)
		}
	}
	if len(requested) < 3 {
		t.Errorf("saw only %d requests: %q", len(requested), requested)
	}
	if os.Getenv("UPDATE_SCREENSHOTS") != "" {
		for _, f := range []string{"queues.png", "queue-tasks.png"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			save(t, filepath.Join("..", "docs", "img", f), b)
		}
	}
	t.Logf("screenshots in %s", dir)
}

func save(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
