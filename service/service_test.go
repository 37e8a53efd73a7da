package service_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/testenv"
	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
	"github.com/consentsync/consentsync/worker"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropTemplate()
	os.Exit(code)
}

// newService is the service over a fresh database and Redis index, with
// the real queue.
func newService(t *testing.T) (*service.Service, *store.Store, *asynq.Inspector) {
	t.Helper()
	st := testenv.Store(t)
	opt, err := jobs.RedisOpt(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	t.Cleanup(func() { client.Close(); insp.Close() })
	cfg, err := config.Parse([]byte(`sources:
  - {name: form, kind: form, brand: acme, secrets: [x]}
destinations:
  - {name: sg, kind: sendgrid, brand: acme, api_key: k}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return &service.Service{Store: st, Queue: jobs.Requeuer{Enqueuer: &jobs.Enqueuer{Client: client, MaxRetry: 3}, Inspector: insp}, Config: cfg}, st, insp
}

// stored reconciles one signal from a stored request and returns its id.
func stored(t *testing.T, st *store.Store, key string, sig consent.Signal) int64 {
	t.Helper()
	ctx := context.Background()
	id, _, err := st.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: key, Method: "POST", Path: "/webhooks/form", Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.Reconcile(ctx, st, id, worker.Prepare([]consent.Signal{sig}, "FR", time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestReplay(t *testing.T) {
	svc, st, insp := newService(t)
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour)
	sig := consent.Signal{Subject: consent.Subject{Email: "r@example.com"}, Channel: consent.ChannelEmail, Brand: "acme",
		Purpose: consent.PurposeMarketing, Status: consent.StatusGranted, OccurredAt: at, Source: "form", Evidence: consent.Evidence{Checkbox: "on"}}
	kept := stored(t, st, "a", sig)
	sig.Subject.Email = "erased@example.com"
	gone := stored(t, st, "b", sig)
	if _, err := st.DB.Exec(`UPDATE inbound_events SET body = NULL WHERE id = $1`, gone); err != nil {
		t.Fatal(err)
	}

	res, err := svc.Replay(ctx, service.ReplayRequest{IDs: []int64{kept, gone}})
	if err != nil || !slices.Equal(res.Requeued, []int64{kept}) || !slices.Equal(res.Erased, []int64{gone}) {
		t.Fatalf("replay = %+v, %v; want %d requeued, %d erased, no error", res, err, kept, gone)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueInbound, jobs.InboundTaskID(kept)); err != nil {
		t.Errorf("no inbound task for the replayed event: %v", err)
	}
	// Replaying again replaces the leftover task instead of being refused.
	if _, err := svc.Replay(ctx, service.ReplayRequest{IDs: []int64{kept}}); err != nil {
		t.Errorf("second replay: %v", err)
	}
	res, err = svc.Replay(ctx, service.ReplayRequest{IDs: []int64{kept, 99}})
	if !errors.Is(err, service.ErrMissingInbound) || !slices.Equal(res.Missing, []int64{99}) || !slices.Equal(res.Requeued, []int64{kept}) {
		t.Errorf("replay with an unknown id = %+v, %v; want 99 missing, ErrMissingInbound", res, err)
	}
	if _, err := svc.Replay(ctx, service.ReplayRequest{}); err == nil {
		t.Error("replay without ids or a time accepted")
	}
	res, err = svc.Replay(ctx, service.ReplayRequest{From: at.Add(-time.Hour)})
	if err != nil || len(res.Requeued) != 1 || len(res.Erased) != 1 {
		t.Errorf("replay by time = %+v, %v", res, err)
	}
}

func TestRepush(t *testing.T) {
	svc, st, _ := newService(t)
	ctx := context.Background()
	if _, err := svc.Repush(ctx, "nope", nil); !errors.Is(err, service.ErrUnknownDestination) {
		t.Errorf("unknown destination: %v, want ErrUnknownDestination", err)
	}
	sig := consent.Signal{Subject: consent.Subject{Email: "p@example.com"}, Channel: consent.ChannelEmail, Brand: "acme",
		Purpose: consent.PurposeMarketing, Status: consent.StatusWithdrawn, OccurredAt: time.Now().UTC().Add(-time.Minute), Source: "form"}
	id, _, err := st.InsertInbound(ctx, store.Inbound{Source: "form", Kind: "form", DedupKey: "w", Method: "POST", Path: "/webhooks/form"})
	if err != nil {
		t.Fatal(err)
	}
	routes := worker.RoutesFrom(svc.Config.Destinations)
	if _, err := worker.Reconcile(ctx, st, id, worker.Prepare([]consent.Signal{sig}, "FR", time.Now()), routes); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.Exec(`UPDATE suppression_outbox SET status = 'failed', last_error = 'HTTP 401'`); err != nil {
		t.Fatal(err)
	}
	back, err := svc.Repush(ctx, "sg", nil)
	if err != nil || back["sg"] != 1 {
		t.Fatalf("repush = %v, %v; want 1 row back for sg", back, err)
	}
	var status string
	if err := st.DB.Get(&status, `SELECT status FROM suppression_outbox`); err != nil || status != "pending" {
		t.Errorf("row %q, %v; want pending", status, err)
	}
}

func TestQuestion(t *testing.T) {
	svc, _, _ := newService(t)
	if q, err := svc.Question("", "acme", ""); err != nil || q != (consent.Question{Channel: consent.ChannelEmail, Brand: "acme", Purpose: consent.PurposeMarketing}) {
		t.Errorf("defaults: %+v, %v", q, err)
	}
	for _, bad := range [][3]string{{"fax", "acme", ""}, {"", "Acme", ""}, {"", " acme", ""}, {"", "", ""}, {"", "acme", "spam"}} {
		if _, err := svc.Question(bad[0], bad[1], bad[2]); !errors.Is(err, service.ErrBadQuestion) {
			t.Errorf("Question%q: %v, want ErrBadQuestion", bad, err)
		}
	}
	for _, bad := range []string{"", "not an address", "@", "+33"} {
		if _, err := svc.ParseIdentifier(bad); !errors.Is(err, service.ErrInvalidIdentifier) {
			t.Errorf("ParseIdentifier(%q): %v, want ErrInvalidIdentifier", bad, err)
		}
	}
}
