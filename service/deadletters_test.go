package service_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/cli"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
	"github.com/consentsync/consentsync/worker"
)

// TestDeadLetters: a failed webhook, a failed suppression and archived
// inbound and push tasks are listed with reason and age, no address in
// full; the archived push task is taken by its id (dropped, its
// destination pushed), replay drops the archived inbound task, and an id
// that is not archived is refused.
func TestDeadLetters(t *testing.T) {
	svc, st, insp := newService(t)
	ctx := context.Background()
	rq := svc.Queue.(jobs.Requeuer)
	svc.Archive = rq
	now := time.Now()
	svc.Now = func() time.Time { return now }
	// Nothing yet, not even a queue in Redis: an empty answer, no error.
	if d, err := svc.DeadLetters(ctx, 10); err != nil || d.WebhooksTotal+d.SuppressionsTotal+d.TasksTotal != 0 {
		t.Fatalf("empty dead letters = %+v, %v", d, err)
	}

	// A withdrawal whose suppression sg refused for good.
	sig := consent.Signal{Subject: consent.Subject{Email: "dead.letter@example.com"}, Channel: consent.ChannelEmail, Brand: "acme",
		Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: now.UTC().Add(-time.Minute), Source: "form"}
	wid, _, err := st.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: "w", Method: "POST", Path: "/webhooks/form", Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.Reconcile(ctx, st, wid, worker.Prepare([]consent.Signal{sig}, "FR", now), worker.RoutesFrom(svc.Config.Destinations)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'failed', attempts = 1, created_at = now() - interval '3 hours',
		last_error = 'HTTP 400: dead.letter@example.com is not a valid recipient'`); err != nil {
		t.Fatal(err)
	}
	// A webhook given up on, its task archived.
	fid, _, err := st.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: "f", Method: "POST", Path: "/webhooks/form", Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.Exec(`UPDATE inbound_events SET status = 'failed', attempts = 4, error = 'resolve: contact jane@example.org: HTTP 500',
		received_at = now() - interval '2 days' WHERE id = $1`, fid); err != nil {
		t.Fatal(err)
	}
	if _, err := rq.EnqueueInbound(ctx, fid, false); err != nil {
		t.Fatal(err)
	}
	if err := insp.ArchiveTask(jobs.QueueInbound, jobs.InboundTaskID(fid)); err != nil {
		t.Fatal(err)
	}
	// A push task given up on.
	at := now.Add(time.Hour)
	if _, err := rq.EnqueuePushAt(ctx, "sg", at); err != nil {
		t.Fatal(err)
	}
	pushes, err := insp.ListScheduledTasks(jobs.QueueSuppression)
	if err != nil || len(pushes) != 1 {
		t.Fatalf("scheduled pushes = %d, %v", len(pushes), err)
	}
	pushID := pushes[0].ID
	if err := insp.ArchiveTask(jobs.QueueSuppression, pushID); err != nil {
		t.Fatal(err)
	}

	svc.Now = time.Now
	d, err := svc.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.WebhooksTotal != 1 || len(d.Webhooks) != 1 || d.Webhooks[0].ID != fid || d.Webhooks[0].Attempts != 4 || d.Webhooks[0].Age < 47*time.Hour {
		t.Errorf("failed webhooks = %d %+v", d.WebhooksTotal, d.Webhooks)
	}
	if d.SuppressionsTotal != 1 || len(d.Suppressions) != 1 || d.Suppressions[0].Destination != "sg" || d.Suppressions[0].Address != "d***@e***.com" ||
		d.Suppressions[0].Age < 2*time.Hour || !strings.Contains(d.Suppressions[0].Reason, "HTTP 400") {
		t.Errorf("failed suppressions = %d %+v", d.SuppressionsTotal, d.Suppressions)
	}
	if d.TasksTotal != 2 || len(d.Tasks) != 2 {
		t.Fatalf("archived tasks = %d %+v, want 2", d.TasksTotal, d.Tasks)
	}
	byQueue := map[string]service.DeadTask{}
	for _, k := range d.Tasks {
		byQueue[k.Queue] = k
	}
	if k := byQueue[jobs.QueueInbound]; k.InboundID != fid || k.ID != jobs.InboundTaskID(fid) || k.Age != -1 {
		t.Errorf("archived inbound task = %+v", k)
	}
	if k := byQueue[jobs.QueueSuppression]; k.Destination != "sg" || k.ID != pushID {
		t.Errorf("archived push task = %+v", k)
	}
	var out bytes.Buffer
	if err := cli.PrintDeadLetters(&out, d); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, leak := range []string{"dead.letter", "jane@", "example.org"} {
		if strings.Contains(text, leak) {
			t.Errorf("deadletters shows %q:\n%s", leak, text)
		}
	}
	for _, want := range []string{"FAILED WEBHOOKS: 1", "FAILED SUPPRESSIONS: 1", "ARCHIVED TASKS: 2", "consentsync repush -id " + pushID,
		"consentsync replay -id " + strconv.FormatInt(fid, 10), "<email>", "2d0h", "3h0m"} {
		if !strings.Contains(text, want) {
			t.Errorf("deadletters lacks %q:\n%s", want, text)
		}
	}
	if d, err := svc.DeadLetters(ctx, 1); err != nil || len(d.Tasks) != 2 || d.TasksTotal != 2 {
		t.Errorf("limit 1 per queue: %d tasks of %d, %v", len(d.Tasks), d.TasksTotal, err)
	}

	// Taken by id: the archived push is dropped and sg pushed now.
	dests, err := svc.RepushTasks(ctx, []string{pushID, "push:sg:1"})
	if !errors.Is(err, jobs.ErrNotArchived) || len(dests) != 1 || dests[0] != "sg" {
		t.Fatalf("RepushTasks = %v, %v; want [sg] and ErrNotArchived for the unknown id", dests, err)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueSuppression, pushID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("archived push task still there: %v", err)
	}
	if q, err := insp.GetQueueInfo(jobs.QueueSuppression); err != nil || q.Scheduled+q.Pending != 1 {
		t.Errorf("push queue after repush: %+v, %v; want one push", q, err)
	}
	// replay takes the failed webhook and its archived task goes.
	if _, err := svc.Replay(ctx, service.ReplayRequest{IDs: []int64{fid}}); err != nil {
		t.Fatal(err)
	}
	d, err = svc.DeadLetters(ctx, 10)
	if err != nil || d.WebhooksTotal != 0 || d.TasksTotal != 0 || d.SuppressionsTotal != 1 {
		t.Errorf("after repush and replay: %d webhooks, %d tasks, %d suppressions, %v; want 0, 0, 1", d.WebhooksTotal, d.TasksTotal, d.SuppressionsTotal, err)
	}
}
