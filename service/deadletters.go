package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/jobs"
)

// Archive reads and clears the tasks asynq gave up on (jobs.Requeuer).
type Archive interface {
	ArchivedTasks(ctx context.Context, limit int) ([]jobs.ArchivedTask, map[string]int, error)
	DropArchivedPush(ctx context.Context, id string) (string, error)
}

// Dead letters, in the glossary's words (README "Glossary of states"):
//
//   - a failed webhook: a stored request given up on after its last retry
//     (inbox status "failed"; its own task usually archived) — `replay -id ID`;
//   - a failed suppression: an outbox row a destination refused for good
//     (outbox status "failed") — `repush -id ID` once the cause is fixed;
//   - an archived task: a task asynq gave up on. An inbound one is its
//     failed webhook (replay takes either id); a push one leaves its rows
//     pending in Postgres (the sweeper pushes them) — `repush -id TASK`
//     drops it and pushes its destination now.
//
// No address appears in full: each is masked (connectors.MaskEmail,
// connectors.MaskPhone), and addresses quoted in errors are replaced
// (connectors.MaskAddresses).
type DeadLetters struct {
	Webhooks     []DeadWebhook
	Suppressions []DeadSuppression
	Tasks        []DeadTask
	// Totals: how many there are in all (the lists hold up to the limit).
	WebhooksTotal, SuppressionsTotal, TasksTotal int64
}

// DeadWebhook is a failed webhook.
type DeadWebhook struct {
	ID       int64
	Source   string
	Attempts int
	Reason   string
	// Age is since the request was received.
	Age time.Duration
}

// DeadSuppression is a failed suppression (or lift).
type DeadSuppression struct {
	ID          int64
	Destination string
	// Address is the masked email address or phone number.
	Address                 string
	Brand, Channel, Purpose string
	// Action is "suppress" or "lift".
	Action   string
	Attempts int
	Reason   string
	// Age is since the suppression was queued.
	Age time.Duration
}

// DeadTask is an archived asynq task.
type DeadTask struct {
	Queue, ID, Type string
	// InboundID (inbound tasks) or Destination (push tasks): what it was for.
	InboundID   int64
	Destination string
	Retried     int
	Reason      string
	// Age is since its last failure; -1 when asynq recorded none (a task
	// archived by hand).
	Age time.Duration
}

// ErrNoArchive: listing or taking archived tasks needs Redis.
var ErrNoArchive = errors.New("archived tasks need the queue (REDIS_URL)")

// DeadLetters lists up to limit (> 0) dead letters of each kind, oldest
// first, with why and how old; archived tasks only when s.Archive is set.
func (s *Service) DeadLetters(ctx context.Context, limit int) (DeadLetters, error) {
	if limit <= 0 {
		limit = 50
	}
	var out DeadLetters
	hooks, n, err := s.Store.FailedWebhooks(ctx, limit)
	if err != nil {
		return out, err
	}
	now := s.now()
	out.WebhooksTotal = n
	for _, h := range hooks {
		out.Webhooks = append(out.Webhooks, DeadWebhook{ID: h.ID, Source: h.Source, Attempts: h.Attempts,
			Reason: connectors.MaskAddresses(h.Error.String), Age: now.Sub(h.ReceivedAt)})
	}
	rows, n, err := s.Store.FailedSuppressions(ctx, "", limit)
	if err != nil {
		return out, err
	}
	out.SuppressionsTotal = n
	for _, r := range rows {
		addr := connectors.MaskEmail(r.Email.String)
		if !r.Email.Valid {
			addr = connectors.MaskPhone(r.Phone.String)
		}
		out.Suppressions = append(out.Suppressions, DeadSuppression{ID: r.ID, Destination: r.Destination, Address: addr,
			Brand: r.Brand, Channel: r.Channel, Purpose: r.Purpose, Action: r.Action, Attempts: r.Attempts,
			Reason: connectors.MaskAddresses(r.LastError.String), Age: now.Sub(r.CreatedAt)})
	}
	if s.Archive == nil {
		return out, nil
	}
	tasks, totals, err := s.Archive.ArchivedTasks(ctx, limit)
	if err != nil {
		return out, err
	}
	for _, n := range totals {
		out.TasksTotal += int64(n)
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].LastFailedAt.Before(tasks[j].LastFailedAt) })
	for _, t := range tasks {
		age := time.Duration(-1)
		if !t.LastFailedAt.IsZero() {
			age = now.Sub(t.LastFailedAt)
		}
		out.Tasks = append(out.Tasks, DeadTask{Queue: t.Queue, ID: t.ID, Type: t.Type, InboundID: t.InboundID, Destination: t.Destination,
			Retried: t.Retried, Reason: connectors.MaskAddresses(t.LastError), Age: age})
	}
	return out, nil
}

// RepushTasks takes archived push tasks by id (jobs.PushTaskID, as
// DeadLetters lists them): each is deleted and a push of its destination
// enqueued, which claims whatever the destination has pending. It returns
// the destinations pushed; an id that names no archived push task is an
// error wrapping jobs.ErrNotArchived (after taking the others).
func (s *Service) RepushTasks(ctx context.Context, ids []string) ([]string, error) {
	if s.Archive == nil || s.Queue == nil {
		return nil, ErrNoArchive
	}
	var dests, missing []string
	seen := map[string]bool{}
	for _, id := range ids {
		d, err := s.Archive.DropArchivedPush(ctx, id)
		if errors.Is(err, jobs.ErrNotArchived) {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return dests, err
		}
		if !seen[d] {
			seen[d] = true
			if err := s.Queue.Push(ctx, d); err != nil {
				return dests, fmt.Errorf("enqueue push for %s: %w", d, err)
			}
			dests = append(dests, d)
		}
	}
	if len(missing) > 0 {
		return dests, fmt.Errorf("%w: %v", jobs.ErrNotArchived, missing)
	}
	return dests, nil
}
