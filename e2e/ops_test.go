package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// opsCall is one request to a listener with its answer's headers.
type opsCall struct {
	Status int
	Header http.Header
	Body   string
}

// call sends method path to base with an optional credential: "bearer:T"
// or "basic:user:T".
func (e *env) call(base, method, path, cred, body string) opsCall {
	e.t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	switch kind, rest, _ := strings.Cut(cred, ":"); kind {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+rest)
	case "basic":
		user, pw, _ := strings.Cut(rest, ":")
		req.SetBasicAuth(user, pw)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return opsCall{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

const (
	asAdmin       = "bearer:test-admin-token"
	asViewer      = "bearer:" + viewerToken
	asViewerBasic = "basic:anyone:" + viewerToken
	asAdminBasic  = "basic:ops:test-admin-token"
)

// TestOpsListeners: the public listener serves webhooks and probes only;
// the ops listener serves the admin API, the queue UI, /metrics and pprof
// behind the tokens — 401 with one WWW-Authenticate header per scheme
// without a valid one, the viewer reading (Bearer or Basic) but refused
// every change with 403, pprof for the admin alone.
func TestOpsListeners(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true})
	form := fixture(t, "form-signup")
	if r := e.postFixture(form); r.Status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", r.Status, r.Body)
	}
	person := form.Expect.Signals[0].Email
	subject := "/v1/subjects/" + person
	// The signal reaches the ledger only through the worker: reconcile it
	// now so the person exists, then stop it again (the queue UI checks
	// below want tasks left pending).
	e.StartWorker()
	e.waitDrained()
	e.StopWorker()

	t.Run("public listener has no ops route", func(t *testing.T) {
		for _, p := range []string{subject, "/metrics", "/ops/queues/", "/debug/pprof/", "/v1/eligibility"} {
			if r := e.call(e.URL, "GET", p, asAdmin, ""); r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed {
				t.Errorf("public GET %s with the admin token: %d, want 404", p, r.Status)
			}
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := e.call(e.URL, "GET", p, "", ""); r.Status != http.StatusOK {
				t.Errorf("public GET %s: %d %s", p, r.Status, r.Body)
			}
			if r := e.call(e.OpsURL, "GET", p, "", ""); r.Status != http.StatusOK {
				t.Errorf("ops GET %s: %d %s (probes need no token)", p, r.Status, r.Body)
			}
		}
	})

	t.Run("401 prompts for Basic and Bearer", func(t *testing.T) {
		for _, p := range []string{subject, "/metrics", "/ops/queues/", "/debug/pprof/"} {
			for _, cred := range []string{"", "bearer:wrong", "basic:x:wrong", "basic:" + viewerToken + ":", "bearer:test-admin-token-and-more", "bearer:test-admin-toke"} {
				r := e.call(e.OpsURL, "GET", p, cred, "")
				if r.Status != http.StatusUnauthorized {
					t.Errorf("GET %s with %q: %d, want 401", p, cred, r.Status)
					continue
				}
				got := r.Header.Values("WWW-Authenticate")
				if len(got) != 2 || got[0] != `Basic realm="consentsync", charset="UTF-8"` || got[1] != `Bearer realm="consentsync"` {
					t.Errorf("GET %s: WWW-Authenticate %q, want two headers, Basic then Bearer", p, got)
				}
				if strings.Contains(r.Body, person) {
					t.Errorf("401 body carries the person: %s", r.Body)
				}
			}
		}
	})

	t.Run("viewer reads, Bearer or Basic", func(t *testing.T) {
		for _, cred := range []string{asViewer, asViewerBasic, asAdmin, asAdminBasic} {
			r := e.call(e.OpsURL, "GET", subject, cred, "")
			if r.Status != http.StatusOK || !strings.Contains(r.Body, `"consents"`) {
				t.Errorf("GET subject as %s: %d %.200s", cred, r.Status, r.Body)
			}
			if r := e.call(e.OpsURL, "GET", subject+"/history", cred, ""); r.Status != http.StatusOK {
				t.Errorf("GET history as %s: %d", cred, r.Status)
			}
		}
	})

	t.Run("viewer cannot change anything", func(t *testing.T) {
		body := `{"brand":"acme","subjects":["` + person + `"]}`
		for _, c := range []struct{ method, path, body string }{
			{"DELETE", subject, ""}, {"POST", "/v1/eligibility", body},
			{"DELETE", "/ops/queues/api/queues/inbound", ""},
			{"DELETE", "/ops/queues/api/queues/inbound/pending_tasks:delete_all", ""},
			{"POST", "/ops/queues/api/queues/inbound:pause", ""},
		} {
			for _, cred := range []string{asViewer, asViewerBasic} {
				if r := e.call(e.OpsURL, c.method, c.path, cred, c.body); r.Status != http.StatusForbidden {
					t.Errorf("%s %s as viewer: %d %s, want 403", c.method, c.path, r.Status, r.Body)
				}
			}
		}
		if r := e.call(e.OpsURL, "GET", subject, asViewer, ""); r.Status != http.StatusOK {
			t.Errorf("after the viewer's DELETE the person is gone: %d", r.Status)
		}
		var q struct {
			Queues []struct {
				Queue   string `json:"queue"`
				Size    int    `json:"size"`
				Paused  bool   `json:"paused"`
				Pending int    `json:"pending"`
			} `json:"queues"`
		}
		r := e.call(e.OpsURL, "GET", "/ops/queues/api/queues", asViewer, "")
		if err := json.Unmarshal([]byte(r.Body), &q); err != nil {
			t.Fatalf("queue list: %d %v %s", r.Status, err, r.Body)
		}
		for _, x := range q.Queues {
			if x.Paused {
				t.Errorf("queue %s paused by the viewer", x.Queue)
			}
		}
		// The admin can: pause and resume a queue.
		if r := e.call(e.OpsURL, "POST", "/ops/queues/api/queues/inbound:pause", asAdmin, ""); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Errorf("admin pause: %d %s", r.Status, r.Body)
		}
		if r := e.call(e.OpsURL, "POST", "/ops/queues/api/queues/inbound:resume", asAdminBasic, ""); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Errorf("admin resume: %d %s", r.Status, r.Body)
		}
		if r := e.call(e.OpsURL, "POST", "/v1/eligibility", asAdmin, body); r.Status != http.StatusOK {
			t.Errorf("admin eligibility batch: %d %s", r.Status, r.Body)
		}
	})

	t.Run("pprof is the admin's", func(t *testing.T) {
		if r := e.call(e.OpsURL, "GET", "/debug/pprof/", asViewer, ""); r.Status != http.StatusForbidden {
			t.Errorf("pprof as viewer: %d, want 403", r.Status)
		}
		if r := e.call(e.OpsURL, "GET", "/debug/pprof/", asAdminBasic, ""); r.Status != http.StatusOK {
			t.Errorf("pprof as admin: %d", r.Status)
		}
	})

	t.Run("metrics take either token", func(t *testing.T) {
		for _, cred := range []string{asViewer, asAdminBasic} {
			r := e.call(e.OpsURL, "GET", "/metrics", cred, "")
			if r.Status != http.StatusOK || !strings.Contains(r.Body, "consentsync_webhooks_received_total") {
				t.Errorf("metrics as %s: %d", cred, r.Status)
			}
		}
	})

	t.Run("queue UI is self-contained and read-only for the viewer", func(t *testing.T) {
		for cred, readOnly := range map[string]string{asViewerBasic: "true", asAdmin: "false"} {
			r := e.call(e.OpsURL, "GET", "/ops/queues/", cred, "")
			if r.Status != http.StatusOK || !strings.Contains(r.Body, `<div id="root">`) {
				t.Fatalf("queue UI as %s: %d %.200s", cred, r.Status, r.Body)
			}
			if !strings.Contains(r.Body, `FLAG_READ_ONLY="`+readOnly+`"`) {
				t.Errorf("queue UI as %s: read-only flag not %s", cred, readOnly)
			}
			if strings.Contains(r.Body, "https://") || strings.Contains(r.Body, "http://") {
				t.Errorf("queue UI page links to another host: %s", r.Body)
			}
			csp := r.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
				t.Errorf("queue UI CSP %q", csp)
			}
		}
		// A task shows its id and source, never the payload's bytes: a
		// webhook arrives while no worker runs, its task stays pending.
		if r := e.postFixture(fixture(t, "typeform-optin")); r.Status != http.StatusAccepted {
			t.Fatalf("webhook: %d %s", r.Status, r.Body)
		}
		r := e.call(e.OpsURL, "GET", "/ops/queues/api/queues/inbound/pending_tasks", asViewer, "")
		var tasks struct {
			Tasks []struct {
				ID      string `json:"id"`
				Payload string `json:"payload"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal([]byte(r.Body), &tasks); err != nil || len(tasks.Tasks) == 0 {
			t.Fatalf("pending tasks: %d %v %s", r.Status, err, r.Body)
		}
		got := tasks.Tasks[0].Payload
		if !strings.Contains(got, `"inbound_event":2`) || !strings.Contains(got, `"source":"typeform-acme"`) {
			t.Errorf("task payload shown as %q, want its inbound event id (2) and source", got)
		}
		if strings.Contains(r.Body, "@") {
			t.Errorf("queue UI shows an address: %s", r.Body)
		}
	})
}
