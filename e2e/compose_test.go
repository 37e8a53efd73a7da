package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// composeFormSecret is the form sources' secret in
// deploy/compose/consentsync.sandbox.yaml (README, "Compose quick start").
const composeFormSecret = "sandbox-form-secret"

// postSignedForm posts body to a form source as the README's curl does:
// hex HMAC-SHA256 of the raw body in X-Signature.
func (e *env) postSignedForm(source, body string) response {
	e.t.Helper()
	m := hmac.New(sha256.New, []byte(composeFormSecret))
	m.Write([]byte(body))
	h := http.Header{"Content-Type": {"application/json"}, "X-Signature": {hex.EncodeToString(m.Sum(nil))}}
	return e.do("POST", "/webhooks/"+source, "", h, []byte(body))
}

// TestComposeQuickStart runs the configuration docker compose mounts
// (deploy/compose/consentsync.sandbox.yaml) against the sandbox
// `consentsync sandbox` serves, and does what the README's quick start
// says: a sign-up, then an unsubscribe, each a signed form webhook; the
// withdrawal reaches every destination's fake and the queue UI's API (as the
// viewer) shows both queues having processed work.
func TestComposeQuickStart(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{configFile: "deploy/compose/consentsync.sandbox.yaml"})
	now := time.Now().UTC().Format(time.RFC3339)
	signup := fmt.Sprintf(`{"email":"ada@example.com","submitted_at":%q,"newsletter":"on","consent_version":"v1"}`, now)
	if r := e.postSignedForm("signup-form", signup); r.Status != http.StatusAccepted {
		t.Fatalf("sign-up: %d %s", r.Status, r.Body)
	}
	e.waitDrained()
	unsubscribe := fmt.Sprintf(`{"email":"ada@example.com","submitted_at":%q,"newsletter":"off"}`, time.Now().UTC().Add(time.Second).Format(time.RFC3339))
	if r := e.postSignedForm("unsubscribe-page", unsubscribe); r.Status != http.StatusAccepted {
		t.Fatalf("unsubscribe: %d %s", r.Status, r.Body)
	}
	e.waitFor("the withdrawal at every destination", func() bool {
		return slices.Contains(e.Sandbox.SendGridSuppressed(), "ada@example.com") &&
			e.Sandbox.MailchimpStatus("a6b5da1054", "ada@example.com") == "unsubscribed" &&
			e.Sandbox.Others().Brevo.EmailBlocklisted("ada@example.com") &&
			e.count(`SELECT count(*) FROM suppression_outbox WHERE status = 'sent'`) == 4
	})
	r := e.call(e.OpsURL, "GET", "/v1/subjects/ada@example.com", asViewerBasic, "")
	if r.Status != http.StatusOK {
		t.Fatalf("subject: %d %s", r.Status, r.Body)
	}
	var q struct {
		Queues []struct {
			Queue     string `json:"queue"`
			Processed int    `json:"processed"`
		} `json:"queues"`
	}
	r = e.call(e.OpsURL, "GET", "/ops/queues/api/queues", asViewerBasic, "")
	if err := json.Unmarshal([]byte(r.Body), &q); err != nil {
		t.Fatalf("queue UI API: %d %v", r.Status, err)
	}
	seen := map[string]int{}
	for _, x := range q.Queues {
		seen[x.Queue] = x.Processed
	}
	if seen["inbound"] < 1 || seen["suppression"] < 1 {
		t.Errorf("queue UI shows processed tasks %v, want inbound and suppression", seen)
	}
}
