package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/lib/pq"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/metrics"
	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/store"
)

// slowProvider is a provider that takes delay to answer each push (all
// accepted), or gives up when the call's context ends.
type slowProvider struct {
	delay time.Duration
	calls atomic.Int32
}

func (p *slowProvider) MaxBatch() int { return 1 }

func (p *slowProvider) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	p.calls.Add(1)
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]connectors.Result, len(batch))
	for i, s := range batch {
		out[i] = connectors.Result{ID: s.ID, Receipt: "accepted"}
	}
	return out, nil
}

// pushWorker is a Worker for destination "slow" (timeout 3 s) on st and
// the test's Redis.
func pushWorker(t *testing.T, st *store.Store, dest connectors.Destination) (*Worker, asynq.RedisConnOpt) {
	t.Helper()
	opt, err := jobs.RedisOpt(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	cfg := &config.Config{Destinations: []config.Destination{{Name: "slow", Kind: "test", Brand: "acme", Timeout: 3 * time.Second}}}
	cfg.Defaults()
	return &Worker{Store: st, Enqueuer: &jobs.Enqueuer{Client: client, MaxRetry: 3}, Destinations: map[string]connectors.Destination{"slow": dest},
		Config: cfg, Metrics: metrics.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, opt
}

// queueSlow queues n pending suppressions for "slow" and returns their ids.
func queueSlow(t *testing.T, st *store.Store, n int) []int64 {
	t.Helper()
	ctx := context.Background()
	ids := make([]int64, n)
	for i := range ids {
		email := "slow" + string(rune('a'+i)) + "@example.com"
		err := st.Tx(ctx, func(tx *store.Tx) error {
			subject, _, err := tx.EnsureSubject(ctx, consent.Subject{Email: email})
			if err != nil {
				return err
			}
			s := consent.Signal{Subject: consent.Subject{Email: email}, Channel: consent.ChannelEmail, Brand: "acme",
				Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: time.Now().UTC(), Source: "test"}
			event, err := tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: subject, DedupKey: consent.FactKey(s), Signal: s,
				RecordedAt: time.Now().UTC(), Outcome: "applied", Hash: []byte{1}})
			if err != nil {
				return err
			}
			_, err = tx.AddOutbox(ctx, store.OutboxRow{Destination: "slow", ConsentEventID: event, SubjectID: subject, TargetSubjectID: subject,
				Action: store.OutboxSuppress, Email: sql.NullString{String: email, Valid: true}, Channel: "email", Brand: "acme", Purpose: "marketing"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DB.Select(&ids, `SELECT id FROM suppression_outbox WHERE destination = 'slow' ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	return ids
}

func pushTask(dest string) *asynq.Task {
	b, _ := json.Marshal(jobs.PushPayload{Destination: dest})
	return asynq.NewTask(jobs.TypeSuppressionPush, b)
}

// destinationFailures is the destination's failed calls in a row and
// whether it is held.
func destinationFailures(t *testing.T, st *store.Store, dest string) (int, bool) {
	t.Helper()
	var n int
	var held bool
	if err := st.DB.QueryRow(`SELECT failures, coalesce(hold_until > now(), false) FROM destination_status WHERE destination = $1`, dest).Scan(&n, &held); err != nil {
		t.Fatal(err)
	}
	return n, held
}

// A push task's context ending mid-call (the worker shutting down: every
// deploy; asynq's task deadline) is not the provider's failure: the rows
// go back to pending, due at once, and the destination is neither counted
// a failure (towards its circuit) nor held for a backoff.
func TestPushCancelledByTaskIsNoProviderFailure(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	prov := &slowProvider{delay: 2 * time.Second}
	w, _ := pushWorker(t, st, prov)
	ids := queueSlow(t, st, 1)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel) // SIGTERM mid-call
	_ = w.HandlePush(ctx, pushTask("slow"))
	if prov.calls.Load() != 1 {
		t.Fatalf("%d calls; want 1", prov.calls.Load())
	}
	if n, held := destinationFailures(t, st, "slow"); n != 0 || held {
		t.Errorf("after a call cut short by the task's own end: %d failures, held %v; want 0, false", n, held)
	}
	var due bool
	if err := st.DB.Get(&due, `SELECT status = 'pending' AND next_attempt_at <= now() AND lease_until IS NULL
		FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if !due {
		t.Errorf("row %d is not pending, due at once and free", ids[0])
	}
}

// A push task does not start a provider call it has no time left to
// finish (asynq's task deadline): the call would be cut short, counted as
// the provider's failure and hold the destination. It hands over to a new
// task instead; the first call is always made.
func TestPushStopsBeforeTaskDeadline(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	prov := &slowProvider{delay: 2 * time.Second}
	w, opt := pushWorker(t, st, prov)
	ids := queueSlow(t, st, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // room for one call of 3 s + 2 s
	defer cancel()
	_ = w.HandlePush(ctx, pushTask("slow"))
	if n, held := destinationFailures(t, st, "slow"); n != 0 || held {
		t.Errorf("after the task's deadline: %d failures, held %v; want 0, false", n, held)
	}
	var sent int
	if err := st.DB.Get(&sent, `SELECT count(*) FROM suppression_outbox WHERE id = ANY($1) AND status = 'sent'`, pq.Array(ids)); err != nil {
		t.Fatal(err)
	}
	if sent != 1 || prov.calls.Load() != 1 {
		t.Errorf("%d rows sent in %d calls; want the first call alone (no call started that the deadline would cut)", sent, prov.calls.Load())
	}
	// The rest goes on in a new task.
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	var next int
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListPendingTasks, insp.ListScheduledTasks} {
		tasks, err := list(jobs.QueueSuppression)
		if err != nil {
			t.Fatal(err)
		}
		next += len(tasks)
	}
	if next == 0 {
		t.Error("no push task scheduled for the rows left")
	}
}

// partialProvider answers every push without a result for the rows whose
// id is in skip (a provider that accepts part of a batch and says nothing
// of the rest), or with a transient per-item error for them.
type partialProvider struct {
	skip      map[int64]bool
	transient bool
}

func (p *partialProvider) MaxBatch() int { return 10 }

func (p *partialProvider) Push(_ context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	var out []connectors.Result
	for _, s := range batch {
		switch {
		case !p.skip[s.ID]:
			out = append(out, connectors.Result{ID: s.ID, Receipt: "accepted"})
		case p.transient:
			out = append(out, connectors.Result{ID: s.ID, Err: errors.New("try later")})
		}
	}
	return out, nil
}

// A row a provider keeps leaving out of its answers (or refusing for now)
// is retried later each time, not every 4 s for ever: each retry is a
// provider call, and the destination's own schedule (reset by every
// answer) never slows it down.
func TestPartialAnswerRetriesBackOff(t *testing.T) {
	t.Parallel()
	for _, transient := range []bool{false, true} {
		st := openStore(t)
		ids := queueSlow(t, st, 2)
		w, _ := pushWorker(t, st, &partialProvider{skip: map[int64]bool{ids[1]: true}, transient: transient})
		var waits []float64
		for range 6 {
			// The row comes due again; the push leaves it out again.
			if _, err := st.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = now() WHERE id = $1`, ids[1]); err != nil {
				t.Fatal(err)
			}
			if err := w.HandlePush(context.Background(), pushTask("slow")); err != nil {
				t.Fatal(err)
			}
			var wait float64
			if err := st.DB.Get(&wait, `SELECT extract(epoch FROM next_attempt_at - now()) FROM suppression_outbox WHERE id = $1 AND status = 'pending'`, ids[1]); err != nil {
				t.Fatal(err)
			}
			waits = append(waits, wait)
		}
		if last := waits[len(waits)-1]; last < 30 {
			t.Errorf("transient=%v: after 6 answers leaving the row out, it is retried in %.0f s (waits %v); want a growing backoff", transient, last, waits)
		}
	}
}

// queueScoped queues, for one subject at "slow", a row per action given
// (purpose per row), each on its own ledger row, and returns their ids.
func queueScoped(t *testing.T, st *store.Store, email string, rows ...[2]string) []int64 {
	t.Helper()
	ctx := context.Background()
	var subject int64
	err := st.Tx(ctx, func(tx *store.Tx) error {
		var err error
		if subject, _, err = tx.EnsureSubject(ctx, consent.Subject{Email: email}); err != nil {
			return err
		}
		for i, r := range rows {
			status := consent.StatusWithdrawn
			if r[0] == store.OutboxLift {
				status = consent.StatusGranted
			}
			s := consent.Signal{Subject: consent.Subject{Email: email}, Channel: consent.ChannelEmail, Brand: "acme",
				Purpose: consent.Purpose(r[1]), Status: status, OccurredAt: time.Now().UTC().Add(time.Duration(i) * time.Second), Source: "test"}
			event, err := tx.AppendLedger(ctx, store.LedgerEntry{SubjectID: subject, DedupKey: consent.FactKey(s), Signal: s,
				RecordedAt: time.Now().UTC(), Outcome: "applied", Hash: []byte{byte(i + 1)}})
			if err != nil {
				return err
			}
			if _, err := tx.AddOutbox(ctx, store.OutboxRow{Destination: "slow", ConsentEventID: event, SubjectID: subject, TargetSubjectID: subject,
				Action: r[0], Email: sql.NullString{String: email, Valid: true}, Channel: "email", Brand: "acme", Purpose: r[1]}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	if err := st.DB.Select(&ids, `SELECT id FROM suppression_outbox WHERE target_subject_id = $1 ORDER BY id`, subject); err != nil {
		t.Fatal(err)
	}
	return ids
}

// A push task that leaves work due before its own window (a withdrawal
// behind an older lift of its scope, due since then) must schedule its
// successor, not ask for its own window's task id — which it holds, so
// asynq refuses it as a duplicate and the chain ends until the sweeper.
func TestPushSuccessorNotInOwnWindow(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	w, opt := pushWorker(t, st, &slowProvider{})
	w.Enqueuer.Linger = time.Hour // one window holds the whole test
	ids := queueScoped(t, st, "chain@example.com", [2]string{store.OutboxLift, "marketing"}, [2]string{store.OutboxSuppress, "marketing"},
		[2]string{store.OutboxSuppress, "partners"})
	// The lift failed for now: due in 3 s. The withdrawal behind it has
	// been due for a while (since before this task's window began).
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET next_attempt_at = CASE WHEN id = $1 THEN now() + interval '3 seconds'
		ELSE now() - interval '2 hours' END WHERE id IN ($1, $2)`, ids[0], ids[1]); err != nil {
		t.Fatal(err)
	}
	// This task was enqueued for the window holding that time; it is
	// running (its id still taken).
	own := time.Now().Add(-2 * time.Hour)
	if err := w.Enqueuer.PushAt(context.Background(), "slow", own); err != nil {
		t.Fatal(err)
	}
	slot := own.Truncate(time.Hour).Add(time.Hour)
	b, _ := json.Marshal(jobs.PushPayload{Destination: "slow", At: slot.UnixMilli()})
	if err := w.HandlePush(context.Background(), asynq.NewTask(jobs.TypeSuppressionPush, b)); err != nil {
		t.Fatal(err)
	}
	var sent int
	if err := st.DB.Get(&sent, `SELECT count(*) FROM suppression_outbox WHERE id = $1 AND status = 'sent'`, ids[2]); err != nil || sent != 1 {
		t.Fatalf("the free withdrawal was not pushed (%d, %v)", sent, err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	ownID := jobs.PushTaskID("slow", slot.UnixMilli())
	var successors []string
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListPendingTasks, insp.ListScheduledTasks} {
		tasks, err := list(jobs.QueueSuppression)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range tasks {
			if ti.ID != ownID {
				successors = append(successors, ti.ID)
			}
		}
	}
	if len(successors) == 0 {
		t.Error("no successor scheduled: the lift and the withdrawal behind it wait for the sweeper")
	}
}

// checkingProvider is slowProvider that can be read back: it holds every
// suppression; reads counts the suppressions read back.
type checkingProvider struct {
	slowProvider
	reads atomic.Int32
}

func (p *checkingProvider) Check(_ context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	out := make([]connectors.Status, len(batch))
	for i, s := range batch {
		p.reads.Add(1)
		out[i] = connectors.Status{ID: s.ID, Suppressed: true, Receipt: "held"}
	}
	return out, nil
}

// A steady backlog of pushes (every task making its batchesPerTask calls)
// must not starve read-backs: each task reads back what is due before it
// hands over.
func TestPushBacklogDoesNotStarveReadBacks(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	prov := &checkingProvider{}
	w, _ := pushWorker(t, st, prov)
	ids := queueSlow(t, st, batchesPerTask+3)
	// The first row was sent earlier; its read-back is due.
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now() - interval '1 minute',
		verify_due_at = now() - interval '1 second' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.HandlePush(context.Background(), pushTask("slow")); err != nil {
		t.Fatal(err)
	}
	if prov.calls.Load() != batchesPerTask {
		t.Fatalf("%d push calls; want %d", prov.calls.Load(), batchesPerTask)
	}
	var verified bool
	if err := st.DB.Get(&verified, `SELECT verified_at IS NOT NULL FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if !verified || prov.reads.Load() == 0 {
		t.Errorf("the due read-back was not made (%d read) by a task whose pushes filled its batches", prov.reads.Load())
	}
}

// liftingProvider answers every read-back "not suppressed", and runs
// during it what happens meanwhile elsewhere (a grant lifting the
// suppression, queued and pushed).
type liftingProvider struct {
	slowProvider
	during func()
}

func (p *liftingProvider) Check(_ context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	if p.during != nil {
		p.during()
	}
	out := make([]connectors.Status, len(batch))
	for i, s := range batch {
		out[i] = connectors.Status{ID: s.ID, Receipt: "not suppressed"}
	}
	return out, nil
}

// A drift check whose read-back races a lift of the suppression it reads
// (queued and pushed while the call is in flight: the provider rightly no
// longer holds it) finds no drift: nothing is counted, recorded or pushed
// again over the person's new opt-in.
func TestDriftRacingALift(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	prov := &liftingProvider{}
	w, _ := pushWorker(t, st, prov)
	ids := queueScoped(t, st, "drift-race@example.com", [2]string{store.OutboxSuppress, "marketing"})
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now() WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	prov.during = func() {
		lift := queueScoped(t, st, "drift-race@example.com", [2]string{store.OutboxLift, "marketing"})
		if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now() WHERE id = $1`, lift[len(lift)-1]); err != nil {
			t.Error(err)
		}
	}
	reps, err := w.Drift(context.Background(), "slow", true, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Missing != 0 || reps[0].Repaired != 0 {
		t.Errorf("drift report %+v; want nothing missing or repaired (the suppression was lifted meanwhile)", reps)
	}
	var status string
	if err := st.DB.Get(&status, `SELECT status FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil || status != store.OutboxSent {
		t.Errorf("the lifted suppression is %s (%v); want sent, not pending to be pushed over the lift", status, err)
	}
}

// erasingProvider accepts every push, running during the first call what
// happens meanwhile elsewhere (the person is erased).
type erasingProvider struct {
	slowProvider
	during func()
	once   atomic.Bool
	got    []string
}

func (p *erasingProvider) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	if p.during != nil && p.once.CompareAndSwap(false, true) {
		p.during()
	}
	for _, s := range batch {
		p.got = append(p.got, s.Email)
	}
	return p.slowProvider.Push(ctx, batch)
}

// A subject erased while its suppression is claimed and in flight: the
// push completes, the erasure's own suppression is pushed too, and no
// outbox row keeps the address once sent.
func TestEraseWhileRowClaimed(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	prov := &erasingProvider{}
	w, _ := pushWorker(t, st, prov)
	w.Routes = RoutesFrom(w.Config.Destinations)
	ids := queueScoped(t, st, "erase-claimed@example.com", [2]string{store.OutboxSuppress, "marketing"})
	var subject int64
	if err := st.DB.Get(&subject, `SELECT subject_id FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	prov.during = func() {
		if err := w.Erase(context.Background(), subject, "test"); err != nil {
			t.Error(err)
		}
	}
	if err := w.HandlePush(context.Background(), pushTask("slow")); err != nil {
		t.Fatal(err)
	}
	var left, pending int
	if err := st.DB.Get(&left, `SELECT count(*) FROM suppression_outbox WHERE subject_id = $1 AND email IS NOT NULL AND status <> 'pending'`, subject); err != nil {
		t.Fatal(err)
	}
	if err := st.DB.Get(&pending, `SELECT count(*) FROM suppression_outbox WHERE subject_id = $1 AND status = 'pending'`, subject); err != nil {
		t.Fatal(err)
	}
	if left != 0 || pending != 0 || len(prov.got) < 1 || prov.got[0] != "erase-claimed@example.com" {
		t.Errorf("after the erasure: %d finished rows keep the address, %d pending; pushed %d", left, pending, len(prov.got))
	}
}

// Pushes slow enough that the task's deadline comes before its
// batchesPerTask calls must still leave room for a read-back: a task that
// spent its time on pushes and handed over, task after task, never read
// anything back.
func TestSlowPushesLeaveRoomForReadBack(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	prov := &checkingProvider{slowProvider: slowProvider{delay: 1500 * time.Millisecond}}
	w, _ := pushWorker(t, st, prov)
	ids := queueSlow(t, st, batchesPerTask+2)
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'sent', sent_at = now() - interval '1 minute',
		verify_due_at = now() - interval '1 second' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	if err := w.HandlePush(ctx, pushTask("slow")); err != nil {
		t.Fatal(err)
	}
	var verified bool
	if err := st.DB.Get(&verified, `SELECT verified_at IS NOT NULL FROM suppression_outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if !verified {
		t.Errorf("no read-back made by a task whose deadline its %d slow pushes reached", prov.calls.Load())
	}
	if n, held := destinationFailures(t, st, "slow"); n != 0 || held {
		t.Errorf("%d failures, held %v; want 0, false", n, held)
	}
}
