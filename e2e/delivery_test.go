package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentsync/consentsync/internal/sandbox"
)

// withdrawByPostmark posts a Postmark unsubscribe for email: one
// withdrawal, pushed to SendGrid and Mailchimp.
func (e *env) withdrawByPostmark(email string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"RecordType":"SubscriptionChange","MessageStream":"broadcast","ChangedAt":"2025-11-20T10:40:00Z","Recipient":%q,"SuppressSending":true,"SuppressionReason":"ManualSuppression"}`, email)
	if r := e.do("POST", "/webhooks/postmark-acme", "token=pm-url-token-6a7c", http.Header{"Content-Type": {"application/json"}}, []byte(body)); r.Status != 202 {
		e.t.Fatalf("HTTP %d: %s", r.Status, r.Body)
	}
}

func successes(calls []sandbox.Call) int {
	n := 0
	for _, c := range calls {
		if c.Status >= 200 && c.Status < 300 {
			n++
		}
	}
	return n
}

// TestProviderFailures: 429 with Retry-After (seconds, HTTP-date, short and
// longer than the in-call cap), 503, and a permanent 400. Each ends with
// exactly the expected calls: one success, or one refusal and no retry.
func TestProviderFailures(t *testing.T) {
	cases := []struct {
		name      string
		script    func() []sandbox.Answer
		calls     int
		outcome   string // outbox status for SendGrid
		successes int
	}{
		{"429 retry-after seconds, waited in call", func() []sandbox.Answer { return []sandbox.Answer{sandbox.TooManyRequestsSeconds(1)} }, 2, "sent", 1},
		{"429 retry-after http-date", func() []sandbox.Answer {
			return []sandbox.Answer{sandbox.TooManyRequestsUntil(time.Now().Add(2 * time.Second))}
		}, 2, "sent", 1},
		{"429 longer than the cap: task rescheduled", func() []sandbox.Answer { return []sandbox.Answer{sandbox.TooManyRequestsSeconds(3)} }, 2, "sent", 1},
		{"429 with X-RateLimit-Reset", func() []sandbox.Answer {
			return []sandbox.Answer{sandbox.TooManyRequestsReset(time.Now().Add(2 * time.Second))}
		}, 2, "sent", 1},
		{"503 twice", func() []sandbox.Answer { return sandbox.Repeat(sandbox.Unavailable(), 2) }, 3, "sent", 1},
		{"permanent 400", func() []sandbox.Answer { return []sandbox.Answer{sandbox.BadRequest()} }, 1, "failed", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := start(t, envOptions{mutate: func(cfg *configT) { cfg.Worker.PushWaitCap = 2500 * time.Millisecond }})
			e.Sandbox.Script(sandbox.SendGrid, c.script()...)
			e.withdrawByPostmark("retry@example.com")
			e.waitDrained()
			// Let the sweeper run a few times: a refused row must stay refused.
			time.Sleep(1500 * time.Millisecond)
			calls := e.Sandbox.Calls(sandbox.SendGrid)
			if len(calls) != c.calls || successes(calls) != c.successes {
				t.Fatalf("SendGrid calls = %d (%d ok), want %d (%d ok)", len(calls), successes(calls), c.calls, c.successes)
			}
			var status string
			if err := e.App.Store.DB.Get(&status, `SELECT status FROM suppression_outbox WHERE destination = 'sendgrid-acme'`); err != nil {
				t.Fatal(err)
			}
			if status != c.outcome {
				t.Fatalf("outbox status %s, want %s", status, c.outcome)
			}
			if n := successes(e.Sandbox.Calls(sandbox.Mailchimp)); n != 1 {
				t.Fatalf("Mailchimp successes = %d, want 1 (unaffected)", n)
			}
			assertNoSecretsLogged(t, e)
		})
	}
}

// assertNoSecretsLogged checks that no API key, token or signing secret of
// the example config appears in any log line.
func assertNoSecretsLogged(t *testing.T, e *env) {
	t.Helper()
	logs := e.Logs.String()
	for _, secret := range []string{"SG.demo-key", "demo-key-us21", "pat-demo-hubspot", "hs-client-secret-7f3a", "mc-url-key-55d0",
		"pm-url-token-6a7c", "form-secret-3e8b", "tf-secret-91c2", "shpss_demo_0c1d", "mg-signing-key-0b9e", "test-admin-token"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a log line carries the secret %q", secret)
		}
	}
	if strings.Contains(logs, "retry@example.com") {
		t.Fatal("a log line carries a subject's address")
	}
}

// TestSweeperRecoversFromRedisLoss: with the worker stopped, webhooks are
// stored; Redis is wiped; a new worker's sweeper finds every stored event
// and every pending suppression in Postgres and finishes the work.
func TestSweeperRecoversFromRedisLoss(t *testing.T) {
	e := start(t, envOptions{noWorker: true})
	for _, name := range []string{"hubspot-optout-batch", "postmark-unsubscribe", "mailgun-unsubscribed", "form-signup"} {
		if r := e.postFixture(fixture(t, name)); r.Status != 202 {
			t.Fatalf("%s: HTTP %d", name, r.Status)
		}
	}
	// A suppression already queued in the outbox whose task is lost too.
	wipe := func() {
		opt, err := redis.ParseURL(e.App.Config.Process.RedisURL)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		defer c.Close()
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wipe()
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE status = 'received'`); n != 4 {
		t.Fatalf("stored = %d, want 4", n)
	}
	e.StartWorker()
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM inbound_events WHERE status = 'processed'`); n != 4 {
		t.Fatalf("processed = %d, want 4", n)
	}
	// 4 withdrawals (lena, paul, jules, emma) × 2 destinations.
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE status = 'sent'`); n != 8 {
		t.Fatalf("sent suppressions = %d, want 8", n)
	}
	// Second round: outbox rows committed, then Redis lost before the push.
	e.StopWorker()
	e.Sandbox.ResetCalls()
	e.withdrawByPostmark("second@example.com")
	e.StartWorker()
	e.waitFor("outbox row", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE email = 'second@example.com'`) == 2
	})
	e.StopWorker()
	wipe()
	_, _ = e.App.Store.DB.Exec(`UPDATE suppression_outbox SET status = 'pending', sent_at = NULL, lease_until = NULL WHERE email = 'second@example.com'`)
	e.StartWorker()
	e.waitDrained()
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE email = 'second@example.com' AND status = 'sent'`); n != 2 {
		t.Fatalf("second round: sent = %d, want 2", n)
	}
}

// TestBacklogMetricsAndRepush: a destination that keeps failing shows in
// the backlog gauges; a suppression refused for good is pushed again by
// repush once the cause is fixed.
func TestBacklogMetricsAndRepush(t *testing.T) {
	e := start(t, envOptions{})
	e.Sandbox.Script(sandbox.SendGrid, sandbox.BadRequest())
	e.Sandbox.Script(sandbox.Mailchimp, sandbox.Repeat(sandbox.Unavailable(), 200)...)
	e.withdrawByPostmark("backlog@example.com")
	e.waitFor("sendgrid refusal", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'sendgrid-acme' AND status = 'failed'`) == 1
	})
	metrics := e.do("GET", "/metrics", "", http.Header{"Authorization": {"Bearer " + viewerToken}}, nil).Body
	for _, want := range []string{`consentsync_outbox_failed{destination="sendgrid-acme"} 1`, `consentsync_outbox_pending{destination="mailchimp-acme"} 1`,
		`consentsync_outbox_oldest_pending_seconds{destination="mailchimp-acme"}`, `consentsync_suppressions_pushed_total{destination="sendgrid-acme",outcome="failed"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(metrics, `consentsync_outbox_failed{destination="mailchimp-acme"} 0`) {
		t.Error("/metrics lacks a zero failed gauge for a healthy destination")
	}
	if strings.Contains(metrics, "backlog@example.com") {
		t.Error("/metrics carries an address")
	}
	back, err := e.App.Store.RequeueFailed(context.Background(), "sendgrid-acme", nil)
	if err != nil || back["sendgrid-acme"] != 1 {
		t.Fatalf("requeue: %v %v", back, err)
	}
	if err := e.App.Enqueuer.Push(context.Background(), "sendgrid-acme"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("sendgrid re-push", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'sendgrid-acme' AND status = 'sent'`) == 1
	})
	if n := successes(e.Sandbox.Calls(sandbox.SendGrid)); n != 1 {
		t.Fatalf("SendGrid successes = %d, want 1", n)
	}
}

// A call that fails for good in place (503 on every attempt) holds the
// destination and schedules its retry: the suppression is delivered by that
// retry, with no sweeper (sweep_after is an hour here).
func TestDestinationRetryScheduled(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{mutate: func(cfg *configT) {
		cfg.Worker.SweepAfter = time.Hour
		cfg.Worker.SweepEvery = time.Hour
	}})
	e.Sandbox.Script(sandbox.SendGrid, sandbox.Repeat(sandbox.Unavailable(), 4)...)
	e.withdrawByPostmark("retry@example.com")
	e.waitFor("the suppression to be sent by the scheduled retry", func() bool {
		return e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'sendgrid-acme' AND status = 'sent'`) == 1
	})
	if calls := e.Sandbox.Calls(sandbox.SendGrid); len(calls) != 5 || successes(calls) != 1 {
		t.Fatalf("SendGrid calls = %d (%d ok), want 5 (1 ok): 4 failed attempts in one call, then the retry", len(calls), successes(calls))
	}
}
