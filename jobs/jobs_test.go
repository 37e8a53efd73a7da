package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/consentsync/consentsync/internal/testenv"
)

// TestEnqueueInboundReplacesOrphans: a task key left without its message
// (what allkeys-lru eviction of part of a task, or a half-deleted task,
// leaves) makes asynq refuse the id as a duplicate although nothing will
// run; EnqueueInbound sees it, drops it and enqueues a real task. A live
// task is left alone.
func TestEnqueueInboundReplacesOrphans(t *testing.T) {
	ctx := context.Background()
	u := testenv.Redis(t)
	opt, err := RedisOpt(u)
	if err != nil {
		t.Fatal(err)
	}
	ro, _ := redis.ParseURL(u)
	rc := redis.NewClient(ro)
	defer rc.Close()
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	defer client.Close()
	defer insp.Close()
	e := &Enqueuer{Client: client, MaxRetry: 3, Redis: rc}

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
	plain := &Enqueuer{Client: client, MaxRetry: 3}
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
