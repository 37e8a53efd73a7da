// Package jobs is the queue's vocabulary: asynq task type names, payloads,
// queue names and the helpers that enqueue them. Producers (the receiver,
// the worker, the sweeper) and the worker's handlers share it.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/consentsync/consentsync/internal/tracing"
)

// Task types.
const (
	// TypeInboundProcess turns one stored inbound event into signals and
	// reconciles them. Payload: InboundPayload. TaskID: "inbound:<id>".
	TypeInboundProcess = "inbound:process"
	// TypeSuppressionPush pushes a destination's pending outbox rows.
	// Payload: PushPayload.
	TypeSuppressionPush = "suppression:push"
)

// Queues: each is served by its own asynq server with its own
// concurrency (worker.concurrency, worker.push_concurrency), so a provider
// storm holding push slots never slows reconciliation.
const (
	QueueInbound     = "inbound"
	QueueSuppression = "suppression"
)

// InboundPayload names a row of inbound_events.
type InboundPayload struct {
	ID int64 `json:"id"`
	// Again: enqueued by the sweeper or an operator (replay), so the row may
	// have been reset since a worker last saw it processed; the worker's
	// cache of recently processed rows is not consulted.
	Again bool `json:"again,omitempty"`
	// TraceParent is the W3C traceparent (https://www.w3.org/TR/trace-context/)
	// of the span that enqueued the task, so the task's spans join the
	// webhook's trace; "" when tracing is off. Payloads enqueued before
	// this field existed decode with it empty: the task runs, in a trace
	// of its own.
	TraceParent string `json:"traceparent,omitempty"`
}

// PushPayload names a destination whose pending outbox rows to push.
type PushPayload struct {
	Destination string `json:"destination"`
	// At is when the push is due (Unix ms; the end of its linger window).
	// asynq schedules in whole seconds and may start the task up to a
	// second early; the handler waits until At.
	At int64 `json:"at,omitempty"`
	// TraceParent is the W3C traceparent of the span that enqueued the
	// push (a reconcile, or the push that scheduled its retry); "" when
	// tracing is off or the payload predates it. Suppressions committed
	// within one linger window share one task: it carries the trace of the
	// first enqueue.
	TraceParent string `json:"traceparent,omitempty"`
}

// Enqueuer enqueues consentsync's tasks.
type Enqueuer struct {
	Client   *asynq.Client
	MaxRetry int
	// Redis, when set, lets Inbound tell a live task from an orphaned task
	// id (see EnqueueInbound).
	Redis redis.UniversalClient
	// Linger is how long a suppression waits for others to share its
	// provider call (config worker.push_linger; default 200ms).
	Linger time.Duration
}

// InboundTaskID is the asynq TaskID of an inbound event's task: enqueueing
// the same event twice while a task for it exists is a no-op.
func InboundTaskID(id int64) string { return "inbound:" + strconv.FormatInt(id, 10) }

// Enqueued says what EnqueueInbound did.
type Enqueued int

// Outcomes of EnqueueInbound.
const (
	// Queued: a new task was enqueued.
	Queued Enqueued = iota
	// AlreadyQueued: a live task holds the id (queued, scheduled,
	// retrying, running): nothing to do.
	AlreadyQueued
	// ReplacedOrphan: the id was held by a task key without its message —
	// what Redis leaves when it evicts part of a task under memory
	// pressure, or a half-deleted task — which would never run; it was
	// removed and a new task enqueued.
	ReplacedOrphan
	// ReplacedArchived: the id was held by a task asynq had archived (given
	// up on) while the row was still waiting — its last retry failed before
	// the batch began (Postgres down), or its worker was killed on its last
	// try. It was removed from the archive and a new task enqueued.
	ReplacedArchived
)

// Inbound enqueues processing of inbound event id (EnqueueInbound). A live
// task already holding the id is not an error.
func (e *Enqueuer) Inbound(ctx context.Context, id int64) error {
	_, err := e.EnqueueInbound(ctx, id, false)
	return err
}

// EnqueueInbound enqueues processing of inbound event id under TaskID
// InboundTaskID(id); again marks work asked for again
// (InboundPayload.Again). When asynq refuses the id as a duplicate, the
// existing task key is checked (with e.Redis, dropOrphan): a key that
// holds no task message is an orphan (asynq's enqueue script only tests
// that the key exists), so it is deleted and the task enqueued again; so
// is, when again is set (the row is known to be still waiting: the
// sweeper, a batch that could not take it), a task asynq archived, which
// would otherwise hold the id of a received row for good. Without e.Redis
// a duplicate is assumed live. It says which it did (Enqueued); an error
// wraps asynq's or Redis's refusal ("jobs: enqueue inbound", "jobs: check
// task").
func (e *Enqueuer) EnqueueInbound(ctx context.Context, id int64, again bool) (Enqueued, error) {
	enqueue := func() error {
		b, _ := json.Marshal(InboundPayload{ID: id, Again: again, TraceParent: tracing.TraceParent(ctx)})
		_, err := e.Client.EnqueueContext(ctx, asynq.NewTask(TypeInboundProcess, b),
			asynq.TaskID(InboundTaskID(id)), asynq.Queue(QueueInbound), asynq.MaxRetry(e.MaxRetry), asynq.Timeout(2*time.Minute))
		return err
	}
	err := enqueue()
	if err == nil {
		return Queued, nil
	}
	if !errors.Is(err, asynq.ErrTaskIDConflict) {
		return 0, fmt.Errorf("jobs: enqueue inbound: %w", err)
	}
	if e.Redis == nil {
		return AlreadyQueued, nil
	}
	key := TaskKey(QueueInbound, InboundTaskID(id))
	dropped, err := dropOrphan.Run(ctx, e.Redis, []string{key, archiveKey(QueueInbound)}, InboundTaskID(id), again).Int()
	if err != nil {
		return 0, fmt.Errorf("jobs: check task %s: %w", InboundTaskID(id), err)
	}
	if dropped == 0 {
		return AlreadyQueued, nil
	}
	if err := enqueue(); errors.Is(err, asynq.ErrTaskIDConflict) {
		return AlreadyQueued, nil // enqueued meanwhile by another process
	} else if err != nil {
		return 0, fmt.Errorf("jobs: enqueue inbound: %w", err)
	}
	switch dropped {
	case 2:
		return Queued, nil // the task had just ended: no orphan
	case 3:
		return ReplacedArchived, nil
	}
	return ReplacedOrphan, nil
}

// dropOrphan deletes, atomically (a live task enqueued meanwhile is never
// touched), the task key KEYS[1] when it holds no task message or is no
// hash at all (a clobbered key, which asynq's own scripts would fail on
// for good), or, when ARGV[2] is "1", when it holds a task in state
// "archived" (removing task id ARGV[1] from the queue's archive, KEYS[2],
// too). It returns 1 when it deleted an orphan, 3 when it deleted an
// archived task, 2 when no key is there any more (the task ended since
// the refusal), 0 when a live task holds the key.
var dropOrphan = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return 2
end
if redis.call("TYPE", KEYS[1]).ok ~= "hash" then
	redis.call("DEL", KEYS[1])
	return 1
end
if redis.call("HEXISTS", KEYS[1], "msg") == 1 then
	if ARGV[2] ~= "1" or redis.call("HGET", KEYS[1], "state") ~= "archived" then
		return 0
	end
	redis.call("ZREM", KEYS[2], ARGV[1])
	redis.call("DEL", KEYS[1])
	return 3
end
redis.call("DEL", KEYS[1])
return 1
`)

// TaskKey is the Redis key asynq keeps a task's hash under (asynq's
// internal/base.TaskKey: "asynq:{<queue>}:t:<id>"); its "msg" field holds
// the encoded task, "state" its state.
func TaskKey(queue, taskID string) string { return "asynq:{" + queue + "}:t:" + taskID }

// archiveKey is the sorted set of a queue's archived task ids (asynq's
// internal/base.ArchivedKey).
func archiveKey(queue string) string { return "asynq:{" + queue + "}:archived" }

// PushTaskID is the TaskID of destination's push due at slot (a multiple
// of the linger, Unix ms): every enqueue within one linger window names the
// same task, so suppressions committed meanwhile share one push.
func PushTaskID(destination string, slot int64) string {
	return "push:" + destination + ":" + strconv.FormatInt(slot, 10)
}

// Push enqueues a push of destination's pending outbox rows at the end of
// the current linger window (Enqueuer.Linger, default 200ms): the first
// suppression of a window enqueues the task, later ones find it there.
// Each window has its own TaskID, so a suppression committed while the
// previous window's task runs is pushed by the next one.
func (e *Enqueuer) Push(ctx context.Context, destination string) error {
	return e.PushAt(ctx, destination, time.Now())
}

// PushAt enqueues a push of destination's pending outbox rows at the end
// of the linger window holding at (a destination's retry time, say). A task
// already holding the window's id is not an error. Several push tasks for
// one destination are harmless: each claims what is pending
// (store.ClaimPush) and leaves when nothing is.
func (e *Enqueuer) PushAt(ctx context.Context, destination string, at time.Time) error {
	_, err := e.EnqueuePushAt(ctx, destination, at)
	return err
}

// EnqueuePushAt is PushAt saying what it did: Queued when it enqueued a
// new task, AlreadyQueued when a task already held the window's id (the
// sweeper counts only the first).
func (e *Enqueuer) EnqueuePushAt(ctx context.Context, destination string, at time.Time) (Enqueued, error) {
	linger := e.Linger
	if linger <= 0 {
		linger = 200 * time.Millisecond
	}
	slot := at.Truncate(linger).Add(linger)
	b, _ := json.Marshal(PushPayload{Destination: destination, At: slot.UnixMilli(), TraceParent: tracing.TraceParent(ctx)})
	_, err := e.Client.EnqueueContext(ctx, asynq.NewTask(TypeSuppressionPush, b),
		asynq.TaskID(PushTaskID(destination, slot.UnixMilli())), asynq.Queue(QueueSuppression),
		asynq.MaxRetry(e.MaxRetry), asynq.Timeout(5*time.Minute), asynq.ProcessAt(slot))
	switch {
	case err == nil:
		return Queued, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return AlreadyQueued, nil
	default:
		return 0, fmt.Errorf("jobs: enqueue push: %w", err)
	}
}

// RedisOpt parses a redis:// URL into asynq's connection option.
func RedisOpt(url string) (asynq.RedisConnOpt, error) {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		return nil, fmt.Errorf("jobs: REDIS_URL: %w", err)
	}
	return opt, nil
}

// Requeuer enqueues work an operator asks for again (replay, repush): an
// inbound task replaces any leftover task holding the event's id (a task
// archived after its last retry keeps the id, and a new one would be
// refused as a duplicate).
type Requeuer struct {
	*Enqueuer // Push as is
	Inspector *asynq.Inspector
}

// Inbound drops any leftover task of inbound event id, then enqueues one.
func (r Requeuer) Inbound(ctx context.Context, id int64) error {
	// Nothing to delete is the usual case. An active task cannot be
	// deleted: it is being processed now, and the row reset to received is
	// picked up again by the sweeper.
	_ = r.Inspector.DeleteTask(QueueInbound, InboundTaskID(id))
	_, err := r.Enqueuer.EnqueueInbound(ctx, id, true)
	return err
}

// EvictionPolicy returns the Redis server's maxmemory-policy ("" when the
// server does not say, e.g. a managed Redis that refuses CONFIG). Any
// policy but "noeviction" lets Redis drop queued tasks under memory
// pressure: Postgres still holds the work (the sweeper re-enqueues it), but
// only after worker.sweep_after, so it is reported as degraded.
func EvictionPolicy(ctx context.Context, rc redis.UniversalClient) (string, error) {
	m, err := rc.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", err
	}
	return m["maxmemory-policy"], nil
}

// ArchivedTask is a task asynq gave up on ("archived": its last retry
// failed, or it was refused with SkipRetry), kept in Redis for asynq's
// archive retention (90 days, 10,000 tasks per queue).
type ArchivedTask struct {
	Queue, ID, Type string
	// InboundID is the inbound event an inbound task was for (0 for a
	// push); Destination the destination a push was for ("" otherwise).
	InboundID   int64
	Destination string
	// LastError is the error of its last run, as the handler returned it.
	LastError    string
	LastFailedAt time.Time
	Retried      int
}

// ArchivedTasks returns up to limit archived tasks of each of
// consentsync's queues, and how many each queue holds in all. A queue
// that does not exist yet holds none.
func (r Requeuer) ArchivedTasks(ctx context.Context, limit int) ([]ArchivedTask, map[string]int, error) {
	var out []ArchivedTask
	total := map[string]int{}
	// GetQueueInfo on a queue never used is an error that does not wrap
	// asynq.ErrQueueNotFound: ask only about the queues Redis has.
	known, err := r.Inspector.Queues()
	if err != nil {
		return nil, nil, fmt.Errorf("jobs: queues: %w", err)
	}
	for _, q := range []string{QueueInbound, QueueSuppression} {
		if !slices.Contains(known, q) {
			continue
		}
		qi, err := r.Inspector.GetQueueInfo(q)
		if err != nil {
			return nil, nil, fmt.Errorf("jobs: queue %s: %w", q, err)
		}
		total[q] = qi.Archived
		if qi.Archived == 0 {
			continue
		}
		tasks, err := r.Inspector.ListArchivedTasks(q, asynq.PageSize(limit))
		if err != nil {
			return nil, nil, fmt.Errorf("jobs: archived tasks of %s: %w", q, err)
		}
		for _, t := range tasks {
			a := ArchivedTask{Queue: q, ID: t.ID, Type: t.Type, LastError: t.LastErr, LastFailedAt: t.LastFailedAt, Retried: t.Retried}
			switch t.Type {
			case TypeInboundProcess:
				var p InboundPayload
				if json.Unmarshal(t.Payload, &p) == nil {
					a.InboundID = p.ID
				}
			case TypeSuppressionPush:
				var p PushPayload
				if json.Unmarshal(t.Payload, &p) == nil {
					a.Destination = p.Destination
				}
			}
			out = append(out, a)
		}
	}
	return out, total, nil
}

// ErrNotArchived: a task id names no archived task.
var ErrNotArchived = errors.New("no archived task with this id")

// DropArchivedPush deletes archived push task id (a PushTaskID) and
// returns the destination it was for, so its pending rows can be pushed
// again; ErrNotArchived when no archived push task has that id.
func (r Requeuer) DropArchivedPush(ctx context.Context, id string) (string, error) {
	info, err := r.Inspector.GetTaskInfo(QueueSuppression, id)
	if err != nil || info.State != asynq.TaskStateArchived || info.Type != TypeSuppressionPush {
		return "", fmt.Errorf("%w: %q", ErrNotArchived, id)
	}
	var p PushPayload
	if err := json.Unmarshal(info.Payload, &p); err != nil || p.Destination == "" {
		return "", fmt.Errorf("jobs: archived task %q has no destination", id)
	}
	if err := r.Inspector.DeleteTask(QueueSuppression, id); err != nil {
		return "", fmt.Errorf("jobs: delete archived task %q: %w", id, err)
	}
	return p.Destination, nil
}
