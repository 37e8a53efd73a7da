package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/internal/tracing"
)

// redisEnqueuer is an Enqueuer on a Redis index of the test's own, with
// the Redis client it checks task keys with (Enqueuer.Redis) and an
// inspector; all are closed at the test's end.
func redisEnqueuer(t *testing.T) (*Enqueuer, *redis.Client, *asynq.Inspector) {
	t.Helper()
	u := testenv.Redis(t)
	opt, err := RedisOpt(u)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(ro)
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	t.Cleanup(func() {
		insp.Close()
		client.Close()
		rc.Close()
	})
	return &Enqueuer{Client: client, MaxRetry: 3, Redis: rc}, rc, insp
}

// TestEnqueueInboundReplacesOrphans: a task key left without its message
// (what allkeys-lru eviction of part of a task, or a half-deleted task,
// leaves) makes asynq refuse the id as a duplicate although nothing will
// run; EnqueueInbound sees it, drops it and enqueues a real task. A live
// task is left alone.
func TestEnqueueInboundReplacesOrphans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, rc, insp := redisEnqueuer(t)

	if got, err := e.EnqueueInbound(ctx, 7, false); err != nil || got != Queued {
		t.Fatalf("first enqueue = %v, %v", got, err)
	}
	if got, err := e.EnqueueInbound(ctx, 7, false); err != nil || got != AlreadyQueued {
		t.Fatalf("live duplicate = %v, %v; want AlreadyQueued", got, err)
	}
	// An orphan: the key holds only a state, as after a partial eviction.
	if err := rc.HSet(ctx, TaskKey(QueueInbound, InboundTaskID(8)), "state", "pending").Err(); err != nil {
		t.Fatal(err)
	}
	plain := &Enqueuer{Client: e.Client, MaxRetry: 3}
	if got, err := plain.EnqueueInbound(ctx, 8, false); err != nil || got != AlreadyQueued {
		t.Fatalf("without Redis the orphan is taken for live: %v, %v", got, err)
	}
	if got, err := e.EnqueueInbound(ctx, 8, false); err != nil || got != ReplacedOrphan {
		t.Fatalf("orphan = %v, %v; want ReplacedOrphan", got, err)
	}
	info, err := insp.GetTaskInfo(QueueInbound, InboundTaskID(8))
	if err != nil || info.Type != TypeInboundProcess || info.State != asynq.TaskStatePending {
		t.Fatalf("after replacing the orphan: %+v, %v; want a pending inbound task", info, err)
	}
}

// TestEnqueuePushAtSaysWhatItDid: the first push of a linger window is
// Queued, a second one in the same window finds its task (AlreadyQueued),
// the next window's is Queued again — the sweeper counts only the Queued.
func TestEnqueuePushAtSaysWhatItDid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt, err := RedisOpt(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	e := &Enqueuer{Client: client, MaxRetry: 3, Linger: time.Hour}
	at := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
	for i, c := range []struct {
		at   time.Time
		want Enqueued
	}{{at, Queued}, {at.Add(time.Minute), AlreadyQueued}, {at.Add(time.Hour), Queued}} {
		if got, err := e.EnqueuePushAt(ctx, "esp-a", c.at); err != nil || got != c.want {
			t.Fatalf("push %d = %v, %v; want %v", i, got, err, c.want)
		}
	}
	if err := e.PushAt(ctx, "esp-a", at); err != nil {
		t.Fatalf("PushAt on a held window: %v, want nil", err)
	}
}

// TestPayloadsCarryTraceParent: a payload enqueued inside a span carries
// its traceparent; one enqueued before the field existed (no
// "traceparent") still decodes, with none.
func TestPayloadsCarryTraceParent(t *testing.T) {
	t.Parallel()
	for _, old := range []string{`{"id":42}`, `{"id":42,"again":true}`} {
		var p InboundPayload
		if err := json.Unmarshal([]byte(old), &p); err != nil || p.ID != 42 || p.TraceParent != "" {
			t.Fatalf("old inbound payload %s: %+v, %v", old, p, err)
		}
	}
	var pp PushPayload
	if err := json.Unmarshal([]byte(`{"destination":"sendgrid-acme","at":1764000000000}`), &pp); err != nil || pp.Destination != "sendgrid-acme" || pp.TraceParent != "" {
		t.Fatalf("old push payload: %+v, %v", pp, err)
	}

	ctx := context.Background()
	u := testenv.Redis(t)
	opt, err := RedisOpt(u)
	if err != nil {
		t.Fatal(err)
	}
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	defer client.Close()
	defer insp.Close()
	tp := sdktrace.NewTracerProvider()
	sctx, span := tp.Tracer("test").Start(ctx, "receive")
	defer span.End()
	e := &Enqueuer{Client: client, MaxRetry: 1}
	if err := e.Inbound(sctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := e.Push(sctx, "sendgrid-acme"); err != nil {
		t.Fatal(err)
	}
	want := tracing.TraceParent(sctx)
	ti, err := insp.GetTaskInfo(QueueInbound, InboundTaskID(7))
	if err != nil {
		t.Fatal(err)
	}
	var ip InboundPayload
	if err := json.Unmarshal(ti.Payload, &ip); err != nil || ip.TraceParent != want || want == "" {
		t.Fatalf("inbound payload %s, want traceparent %q", ti.Payload, want)
	}
	tasks, err := insp.ListScheduledTasks(QueueSuppression)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("scheduled pushes: %v, %v", tasks, err)
	}
	if err := json.Unmarshal(tasks[0].Payload, &pp); err != nil || pp.TraceParent != want {
		t.Fatalf("push payload %s, want traceparent %q", tasks[0].Payload, want)
	}
	// Tracing off: no field at all, as before.
	if err := e.Inbound(ctx, 8); err != nil {
		t.Fatal(err)
	}
	ti, _ = insp.GetTaskInfo(QueueInbound, InboundTaskID(8))
	if strings.Contains(string(ti.Payload), "traceparent") {
		t.Fatalf("payload without a span: %s", ti.Payload)
	}
}

// TestEnqueueInboundReplacesArchivedWhenAskedAgain: an archived task holds
// its id; asked again (the sweeper: the row still waits) EnqueueInbound
// removes it from the archive and enqueues a new task; a first enqueue
// (again false) leaves the archive alone.
func TestEnqueueInboundReplacesArchivedWhenAskedAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _, insp := redisEnqueuer(t)
	if got, err := e.EnqueueInbound(ctx, 11, false); err != nil || got != Queued {
		t.Fatalf("first enqueue = %v, %v", got, err)
	}
	if err := insp.ArchiveTask(QueueInbound, InboundTaskID(11)); err != nil {
		t.Fatal(err)
	}
	if got, err := e.EnqueueInbound(ctx, 11, false); err != nil || got != AlreadyQueued {
		t.Fatalf("first-time enqueue over an archived task = %v, %v; want AlreadyQueued", got, err)
	}
	if got, err := e.EnqueueInbound(ctx, 11, true); err != nil || got != ReplacedArchived {
		t.Fatalf("again over an archived task = %v, %v; want ReplacedArchived", got, err)
	}
	info, err := insp.GetTaskInfo(QueueInbound, InboundTaskID(11))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("after replacing the archived task: %+v, %v; want pending", info, err)
	}
	if archived, err := insp.ListArchivedTasks(QueueInbound); err != nil || len(archived) != 0 {
		t.Fatalf("archive holds %d tasks, %v; want none", len(archived), err)
	}
}
