//go:build chaos

package chaos

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/fakeprovider"
	"github.com/consentsync/consentsync/internal/harness"
)

// TestWorkerKilledDuringHangingPush is fault 1: the worker is SIGKILLed
// while SendGrid calls hang; once restarted, every push completes within
// worker.sweep_after + destinations[].timeout (a lease tied to the call's
// timeout), not after a 5-minute lease.
func TestWorkerKilledDuringHangingPush(t *testing.T) {
	const (
		sweepAfter = 3 * time.Second
		timeout    = 3 * time.Second
		// slack covers one sweep_every tick, the restarted worker's start
		// and the push itself on a loaded 2-core machine.
		slack = 8 * time.Second
	)
	e := newEnv(t, harness.Config{SweepAfter: sweepAfter, DestTimeout: timeout}, harness.RedisOptions{})
	serve := e.c.StartServe("serve-1")
	work1 := e.c.StartWork("work-1")
	ctx := context.Background()
	s := harness.NewSender(serve.URL())
	w := harness.NewWorkload("kill", 1)

	// Warm-up: the pipeline works end to end.
	s.Drive(ctx, w.Stream(harness.Mix{People: 20, WithdrawFrac: 0.5}), 20)
	e.waitDone("warm-up", s.Records(), 30*time.Second)

	// SendGrid hangs; withdrawals keep coming; the worker's pushes to
	// SendGrid block in the call.
	e.sg.SetFault(fakeprovider.Fault{Kind: fakeprovider.Hang})
	load := s.DriveAsync(ctx, w.Stream(harness.Mix{People: 30, WithdrawFrac: 0.6}), 15)
	if _, err := harness.Eventually(ctx, 20*time.Second, 20*time.Millisecond, func(context.Context) error {
		if e.sgTap.InFlight() == 0 {
			return errNoHang
		}
		return nil
	}); err != nil {
		t.Fatalf("no SendGrid call hanging: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // well inside the 3 s call timeout
	if e.sgTap.InFlight() == 0 {
		t.Fatal("the SendGrid call stopped hanging before the kill")
	}
	hanging := e.sgTap.InFlight()
	work1.Kill()
	killedAt := time.Now()
	t.Logf("worker SIGKILLed with %d SendGrid calls hanging", hanging)
	e.sg.SetFault(fakeprovider.Fault{})
	<-load

	e.c.StartWork("work-1")
	bound := sweepAfter + timeout + slack
	_, err := harness.WaitDone(ctx, e.c.DB(), s.Records(), e.logs, bound)
	if err != nil {
		b, _ := harness.ReadBacklog(ctx, e.c.DB())
		t.Fatalf("after the worker was SIGKILLed mid-push and restarted, the pushes did not complete within sweep_after (%s) + timeout (%s) + %s slack: %v\n"+
			"backlog now: %s\n(the killed pusher's outbox rows stay leased: the lease is not tied to the destination timeout)",
			sweepAfter, timeout, slack, err, b)
	}
	t.Logf("every push completed %s after the kill (bound from the restart %s)", time.Since(killedAt).Round(time.Millisecond), bound)
	e.audit(s.Records())
}

var errNoHang = errors.New("no SendGrid call in flight yet")
