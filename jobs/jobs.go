// Package jobs is the queue's vocabulary: asynq task type names, payloads,
// queue names and the helpers that enqueue them. Producers (the receiver,
// the worker, the sweeper) and the worker's handlers share it.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
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

// Queues and their weights: suppressions first, they carry withdrawals that
// must reach every provider.
const (
	QueueInbound     = "inbound"
	QueueSuppression = "suppression"
)

// Queues is the weighted queue map the worker serves.
var Queues = map[string]int{QueueSuppression: 6, QueueInbound: 4}

// InboundPayload names a row of inbound_events.
type InboundPayload struct {
	ID int64 `json:"id"`
}

// PushPayload names a destination whose pending outbox rows to push.
type PushPayload struct {
	Destination string `json:"destination"`
}

// Enqueuer enqueues consentsync's tasks.
type Enqueuer struct {
	Client   *asynq.Client
	MaxRetry int
}

// InboundTaskID is the asynq TaskID of an inbound event's task: enqueueing
// the same event twice while a task for it exists is a no-op.
func InboundTaskID(id int64) string { return "inbound:" + strconv.FormatInt(id, 10) }

// Inbound enqueues processing of inbound event id. A task already queued or
// retrying for it is not an error.
func (e *Enqueuer) Inbound(ctx context.Context, id int64) error {
	b, _ := json.Marshal(InboundPayload{ID: id})
	_, err := e.Client.EnqueueContext(ctx, asynq.NewTask(TypeInboundProcess, b),
		asynq.TaskID(InboundTaskID(id)), asynq.Queue(QueueInbound), asynq.MaxRetry(e.MaxRetry), asynq.Timeout(2*time.Minute))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("jobs: enqueue inbound: %w", err)
	}
	return nil
}

// Push enqueues a push of destination's pending outbox rows, after delay.
// Several push tasks for one destination are harmless: each claims what is
// pending (store.ClaimOutbox) and leaves when nothing is.
func (e *Enqueuer) Push(ctx context.Context, destination string, delay time.Duration) error {
	b, _ := json.Marshal(PushPayload{Destination: destination})
	opts := []asynq.Option{asynq.Queue(QueueSuppression), asynq.MaxRetry(e.MaxRetry), asynq.Timeout(5 * time.Minute)}
	if delay > 0 {
		opts = append(opts, asynq.ProcessIn(delay))
	}
	if _, err := e.Client.EnqueueContext(ctx, asynq.NewTask(TypeSuppressionPush, b), opts...); err != nil {
		return fmt.Errorf("jobs: enqueue push: %w", err)
	}
	return nil
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
	Enqueuer  *Enqueuer
	Inspector *asynq.Inspector
}

// Inbound drops any leftover task of inbound event id, then enqueues one.
func (r Requeuer) Inbound(ctx context.Context, id int64) error {
	// Nothing to delete is the usual case. An active task cannot be
	// deleted: it is being processed now, and the row reset to received is
	// picked up again by the sweeper.
	_ = r.Inspector.DeleteTask(QueueInbound, InboundTaskID(id))
	return r.Enqueuer.Inbound(ctx, id)
}

// Push enqueues a push of destination's due suppressions (Enqueuer.Push).
func (r Requeuer) Push(ctx context.Context, destination string, delay time.Duration) error {
	return r.Enqueuer.Push(ctx, destination, delay)
}
