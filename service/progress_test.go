package service_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/progress"
	"github.com/consentsync/consentsync/service"
)

// reports records what an operation reported, per phase.
type reports struct {
	calls map[string][][2]int64
	order []string
}

func (r *reports) f(phase string, done, total int64) {
	if r.calls == nil {
		r.calls = map[string][][2]int64{}
	}
	if _, ok := r.calls[phase]; !ok {
		r.order = append(r.order, phase)
	}
	r.calls[phase] = append(r.calls[phase], [2]int64{done, total})
}

// last is the last (done, total) of phase.
func (r *reports) last(phase string) [2]int64 {
	c := r.calls[phase]
	if len(c) == 0 {
		return [2]int64{-99, -99}
	}
	return c[len(c)-1]
}

// TestLongOperationsReportProgress: replay, repush and verify-ledger tell
// a reporter carried in the context how far they are, from 0 to the total
// of what they did, never going backwards; without a reporter they run as
// before.
func TestLongOperationsReportProgress(t *testing.T) {
	svc, st, _ := newService(t)
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour)
	const n = 7
	ids := make([]int64, n)
	for i := range ids {
		sig := consent.Signal{Subject: consent.Subject{Email: fmt.Sprintf("p%d@example.com", i)}, Channel: consent.ChannelEmail, Brand: "acme",
			Purpose: consent.PurposeMarketing, Status: consent.StatusGranted, OccurredAt: at, Source: "form", Evidence: consent.Evidence{Checkbox: "on"}}
		ids[i] = stored(t, st, fmt.Sprint("k", i), sig)
	}
	monotonic := func(r *reports) {
		t.Helper()
		for phase, calls := range r.calls {
			for i := 1; i < len(calls); i++ {
				if calls[i][0] < calls[i-1][0] {
					t.Errorf("%s went backwards: %v", phase, calls)
				}
			}
		}
	}

	var rp reports
	res, err := svc.Replay(progress.With(ctx, rp.f), service.ReplayRequest{IDs: ids})
	if err != nil || len(res.Requeued) != n {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if got := rp.last("enqueue"); got != [2]int64{n, n} || rp.calls["enqueue"][0] != [2]int64{0, n} || len(rp.calls["enqueue"]) != n+1 {
		t.Errorf("replay progress %v, want 0..%d of %d", rp.calls["enqueue"], n, n)
	}
	monotonic(&rp)

	var vl reports
	rep, err := svc.VerifyLedger(progress.With(ctx, vl.f), "", nil)
	if err != nil || rep.Rows != n {
		t.Fatalf("verify-ledger: %+v, %v", rep, err)
	}
	if got := vl.last("ledger rows"); got != [2]int64{n, n} || vl.calls["ledger rows"][0] != [2]int64{0, n} {
		t.Errorf("verify-ledger progress %v, want 0..%d of %d", vl.calls["ledger rows"], n, n)
	}
	monotonic(&vl)
	// Without a reporter: the same answer.
	if rep2, err := svc.VerifyLedger(ctx, "", nil); err != nil || string(rep2.Root) != string(rep.Root) {
		t.Errorf("verify-ledger without progress: %+v, %v", rep2, err)
	}

	var rpush reports
	if _, err := svc.Repush(progress.With(ctx, rpush.f), "sg", nil); err != nil {
		t.Fatal(err)
	}
	if len(rpush.order) != 2 || rpush.order[0] != "re-queue failed suppressions" || rpush.order[1] != "enqueue pushes" {
		t.Errorf("repush phases %v", rpush.order)
	}
	if got := rpush.last("enqueue pushes"); got != [2]int64{0, 0} {
		t.Errorf("repush with nothing failed: %v, want 0 of 0", got)
	}
	monotonic(&rpush)
}
