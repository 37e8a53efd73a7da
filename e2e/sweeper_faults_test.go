package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/sandbox"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/store"
)

// queueOutbox adds a pending suppression of email for destination, due an
// hour ago (older than any sweep_after), and returns its id.
func (e *env) queueOutbox(destination, email string) int64 {
	e.t.Helper()
	ctx := context.Background()
	var id int64
	err := e.App.Store.Tx(ctx, func(tx *store.Tx) error {
		subject, _, err := tx.EnsureSubject(ctx, consent.Subject{Email: email})
		if err != nil {
			return err
		}
		sig := consent.Signal{Subject: consent.Subject{Email: email}, Channel: consent.ChannelEmail, Brand: "acme",
			Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: time.Now().UTC(), Source: "test"}
		event, err := tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: subject, DedupKey: consent.FactKey(sig), Signal: sig,
			RecordedAt: time.Now().UTC(), Outcome: "applied", Hash: []byte{1}})
		if err != nil {
			return err
		}
		_, err = tx.AddOutbox(ctx, store.OutboxRow{Destination: destination, ConsentEventID: event, SubjectID: subject, TargetSubjectID: subject,
			Action: store.OutboxSuppress, Email: sql.NullString{String: email, Valid: true}, Channel: "email", Brand: "acme", Purpose: "marketing"})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.App.Store.DB.Get(&id, `UPDATE suppression_outbox SET next_attempt_at = now() - interval '1 hour'
		WHERE destination = $1 AND email = $2 RETURNING id`, destination, email); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// lostWebhooks stores two Postmark withdrawals (prefix-1@, prefix-2@
// example.com) whose inbound tasks Redis lost (deleted), for a sweep to
// find, and returns the id of the first.
func (e *env) lostWebhooks(prefix string) int64 {
	e.t.Helper()
	e.withdrawByPostmark(prefix + "-1@example.com")
	e.withdrawByPostmark(prefix + "-2@example.com")
	if _, err := e.App.Inspector.DeleteAllPendingTasks(jobs.QueueInbound); err != nil {
		e.t.Fatal(err)
	}
	var first int64
	if err := e.App.Store.DB.Get(&first, `SELECT min(id) FROM inbound_events`); err != nil {
		e.t.Fatal(err)
	}
	return first
}

// TestSweeperSkipsUnconfiguredDestination: rows left pending for a
// destination removed from (or renamed in) the configuration stay pending,
// to be pushed once it is configured again; the sweeper must not enqueue a
// push task for it every sweep — each is refused (not configured) and
// archived, so the archive (10,000 per queue) fills with them within days,
// pushing real dead letters out — nor count it as re-enqueued work.
func TestSweeperSkipsUnconfiguredDestination(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Worker.SweepAfter = time.Millisecond }})
	e.queueOutbox("removed-esp", "gone-dest@example.com")
	live := e.queueOutbox("sendgrid-acme", "live-dest@example.com")
	for i := range 2 {
		_, out, err := e.App.Worker.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && out != 1 {
			t.Errorf("sweep re-enqueued %d destinations; want 1 (sendgrid-acme; removed-esp is not configured)", out)
		}
		time.Sleep(300 * time.Millisecond) // the next linger window
	}
	tasks, err := e.App.Inspector.ListScheduledTasks(jobs.QueueSuppression)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := e.App.Inspector.ListPendingTasks(jobs.QueueSuppression)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range append(tasks, pending...) {
		var p jobs.PushPayload
		if err := json.Unmarshal(ti.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Destination == "removed-esp" {
			t.Errorf("push task %s enqueued for a destination the configuration lacks", ti.ID)
		}
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE destination = 'removed-esp' AND status = 'pending'`); n != 1 {
		t.Errorf("%d pending rows for the removed destination; want 1 (kept until it is configured again)", n)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE id = $1 AND status = 'pending'`, live); n != 1 {
		t.Fatalf("live row not pending")
	}
}

// TestSweeperUsesDatabaseClock: rows are stamped by Postgres (received_at,
// next_attempt_at: now()); a worker whose own clock is behind (a clock
// jumped back, a host without NTP) must still find work Redis lost once it
// is sweep_after old by that clock, not a day later.
func TestSweeperUsesDatabaseClock(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Worker.SweepAfter = time.Second }})
	e.withdrawByPostmark("sweep-clock@example.com")
	if _, err := e.App.Inspector.DeleteAllPendingTasks(jobs.QueueInbound); err != nil {
		t.Fatal(err)
	}
	row := e.queueOutbox("sendgrid-acme", "sweep-clock-out@example.com")
	if _, err := e.App.Store.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = now() WHERE id = $1`, row); err != nil {
		t.Fatal(err)
	}
	e.App.Worker.Now = func() time.Time { return time.Now().Add(-24 * time.Hour) }
	time.Sleep(1500 * time.Millisecond) // older than sweep_after by Postgres's clock
	in, out, err := e.App.Worker.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in != 1 || out != 1 {
		t.Errorf("sweep with the worker's clock a day behind re-enqueued %d webhooks, %d destinations; want 1, 1", in, out)
	}
}

// TestPushRetryUsesDatabaseClock: a failed call's retry time is compared
// with Postgres's now() by every claim (ClaimPush: hold_until,
// next_attempt_at); a worker whose clock ran a year ahead when the call
// failed (a clock jump) must hold the destination for the backoff, not for
// a year that no success can cut short (nothing is claimed before).
func TestPushRetryUsesDatabaseClock(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true})
	row := e.queueOutbox("sendgrid-acme", "push-clock@example.com")
	if _, err := e.App.Store.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = now() WHERE id = $1`, row); err != nil {
		t.Fatal(err)
	}
	e.Sandbox.Script(sandbox.SendGrid, sandbox.Repeat(sandbox.Unavailable(), 20)...)
	e.App.Worker.Now = func() time.Time { return time.Now().Add(365 * 24 * time.Hour) }
	b, _ := json.Marshal(jobs.PushPayload{Destination: "sendgrid-acme"})
	if err := e.App.Worker.HandlePush(context.Background(), asynq.NewTask(jobs.TypeSuppressionPush, b)); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE id = $1 AND status = 'pending' AND attempts = 1`, row); n != 1 {
		t.Fatalf("the row was not tried once and left pending")
	}
	if n := e.count(`SELECT count(*) FROM destination_status WHERE destination = 'sendgrid-acme' AND hold_until > now() + interval '1 hour'`); n != 0 {
		t.Errorf("destination held for more than an hour after one failed call (the worker's clock ahead)")
	}
	if n := e.count(`SELECT count(*) FROM suppression_outbox WHERE id = $1 AND next_attempt_at > now() + interval '1 hour'`, row); n != 0 {
		t.Errorf("row retried more than an hour after one failed call (the worker's clock ahead)")
	}
}

// TestSweepGoesOnPastOneBadTask: a task key of the wrong type (a string
// where asynq keeps a hash: WRONGTYPE) made the sweep stop at that
// webhook, every sweep, so no later webhook and no destination's due
// outbox rows were ever re-enqueued again, and the webhook itself waited
// for good (replay's DeleteTask fails on it too); such a key is now
// replaced as an orphan. (A refused enqueue the sweep goes on past:
// TestSweepGoesOnPastARefusedEnqueue.)
func TestSweepGoesOnPastOneBadTask(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Worker.SweepAfter = time.Millisecond }})
	first := e.lostWebhooks("sweep-bad")
	if err := e.App.Redis.Set(context.Background(), jobs.TaskKey(jobs.QueueInbound, jobs.InboundTaskID(first)), "clobbered", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e.queueOutbox("sendgrid-acme", "sweep-bad-out@example.com")
	time.Sleep(5 * time.Millisecond)
	in, out, err := e.App.Worker.Sweep(context.Background())
	if err != nil {
		t.Errorf("sweep: %v; want the clobbered task key replaced as an orphan", err)
	}
	if in != 1 || out != 1 {
		t.Errorf("sweep re-enqueued %d webhooks, %d destinations; want 1, 1 (and the clobbered one replaced)", in, out)
	}
	info, err := e.App.Inspector.GetTaskInfo(jobs.QueueInbound, jobs.InboundTaskID(first))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("task of the webhook whose key was clobbered: %+v, %v; want pending", info, err)
	}
}

// TestSweeperLeavesHeldDestination: a destination held by its retry
// schedule (a storm: hold_until ahead) has its push scheduled for then; its
// other rows are due, yet no task is missing. The sweeper enqueued one
// every sweep all through the storm, and counted each as work Redis had
// lost (consentsync_sweeper_requeued_total{kind="outbox"}); once the hold
// ends, due rows no task took are its again.
func TestSweeperLeavesHeldDestination(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Worker.SweepAfter = time.Millisecond }})
	e.queueOutbox("sendgrid-acme", "sweep-held@example.com")
	if _, err := e.App.Store.DB.Exec(`INSERT INTO destination_status (destination, failures, hold_until) VALUES ('sendgrid-acme', 4, now() + interval '1 hour')
		ON CONFLICT (destination) DO UPDATE SET failures = 4, hold_until = now() + interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	_, out, err := e.App.Worker.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out != 0 {
		t.Errorf("sweep re-enqueued %d destinations during a hold; want 0 (its retry push is scheduled)", out)
	}
	if _, err := e.App.Store.DB.Exec(`UPDATE destination_status SET hold_until = now() - interval '1 second' WHERE destination = 'sendgrid-acme'`); err != nil {
		t.Fatal(err)
	}
	if _, out, err = e.App.Worker.Sweep(context.Background()); err != nil || out != 1 {
		t.Errorf("sweep after the hold re-enqueued %d destinations, %v; want 1", out, err)
	}
}

// TestSweepGoesOnPastARefusedEnqueue: an enqueue Redis still refuses (here
// an archived task whose queue's archive key was clobbered: removing it
// fails with WRONGTYPE) does not stop the sweep: the later webhook and the
// destination's due rows are re-enqueued, and the refusal is returned.
func TestSweepGoesOnPastARefusedEnqueue(t *testing.T) {
	t.Parallel()
	e := start(t, envOptions{noWorker: true, mutate: func(c *configT) { c.Worker.SweepAfter = time.Millisecond }})
	first := e.lostWebhooks("sweep-refused")
	ctx := context.Background()
	if err := e.App.Redis.HSet(ctx, jobs.TaskKey(jobs.QueueInbound, jobs.InboundTaskID(first)), "msg", "x", "state", "archived").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.App.Redis.Set(ctx, "asynq:{"+jobs.QueueInbound+"}:archived", "clobbered", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e.queueOutbox("sendgrid-acme", "sweep-refused-out@example.com")
	time.Sleep(5 * time.Millisecond)
	in, out, err := e.App.Worker.Sweep(ctx)
	if err == nil {
		t.Error("sweep returned no error; want the refused enqueue reported")
	}
	if in != 1 || out != 1 {
		t.Errorf("sweep re-enqueued %d webhooks, %d destinations; want 1, 1 (past the refused one)", in, out)
	}
}
