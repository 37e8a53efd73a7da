//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/harness"
)

// TestServeSIGTERMDrains is fault 7: `serve` gets SIGTERM under load.
// /readyz turns 503 first (a load balancer stops sending), the listener
// keeps answering for server.drain_grace while in-flight requests finish
// (senders see no refused connection during the grace), and nothing it
// accepted is lost.
func TestServeSIGTERMDrains(t *testing.T) {
	const (
		sweepAfter = 3 * time.Second
		grace      = 4 * time.Second
		// readyBy: how soon after SIGTERM /readyz must say 503.
		readyBy = time.Second
		// edge: the end of the grace is not asserted to the millisecond.
		edge = 300 * time.Millisecond
	)
	e := newEnv(t, harness.Config{SweepAfter: sweepAfter, DrainGrace: grace}, harness.RedisOptions{})
	ctx := context.Background()
	serve := e.c.Start("serve-1", "serve")
	if err := serve.WaitHTTP(ctx, "/readyz", 200, 60*time.Second); err != nil {
		if lines := serve.LogLines("drain_grace"); len(lines) > 0 {
			t.Fatalf("serve does not start with server.drain_grace: %s in the configuration (the configurable drain grace is not built yet?): %s",
				grace, lines[len(lines)-1])
		}
		t.Fatal(err)
	}
	e.c.StartWork("work-1")
	w := harness.NewWorkload("drain", 7)
	s := harness.NewSender(serve.URL())
	// In-flight requests: bodies sent in two halves 1.5 s apart.
	slow := harness.NewSender(serve.URL())
	slow.SetSlowBody(1500 * time.Millisecond)

	// Probe /readyz every 50 ms.
	var (
		pmu    sync.Mutex
		probes []readyProbe
	)
	pctx, stopProbes := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		for pctx.Err() == nil {
			at := time.Now()
			code, _, err := serve.Get(pctx, "/readyz")
			if pctx.Err() != nil {
				return
			}
			pmu.Lock()
			probes = append(probes, readyProbe{at: at, code: code, refused: err != nil && harness.IsRefused(err), err: err})
			pmu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()

	load := s.DriveAsync(ctx, w.Stream(harness.Mix{People: 200, WithdrawFrac: 0.4}), 30)
	slowLoad := slow.DriveAsync(ctx, w.Stream(harness.Mix{People: 40, WithdrawFrac: 0.4}), 5)
	time.Sleep(3 * time.Second)
	sigAt := time.Now()
	if err := serve.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-load
	<-slowLoad
	exitErr := serve.Wait(grace + 30*time.Second)
	stopProbes()
	pwg.Wait()
	graceEnd := sigAt.Add(grace)
	t.Logf("SIGTERM at +3s; serve exited %s after it (%v); grace %s", serve.ExitedAt().Sub(sigAt).Round(time.Millisecond), exitErr, grace)

	// 1. /readyz turns 503 first.
	var ready503 time.Time
	for _, p := range probes {
		if p.at.After(sigAt) && p.code == 503 {
			ready503 = p.at
			break
		}
	}
	if ready503.IsZero() {
		t.Errorf("/readyz never answered 503 after SIGTERM (probes after it: %s)", probeSummary(probes, sigAt))
	} else if d := ready503.Sub(sigAt); d > readyBy {
		t.Errorf("/readyz answered 503 only %s after SIGTERM, want ≤ %s", d.Round(time.Millisecond), readyBy)
	}

	// 2. No refused connection during the grace: senders and probes.
	var refused []string
	all := append(s.Records(), slow.Records()...)
	for _, r := range all {
		if r.Refused && !r.Sent.Before(sigAt) && r.Sent.Before(graceEnd.Add(-edge)) {
			refused = append(refused, fmt.Sprintf("webhook POST refused at +%s", r.Sent.Sub(sigAt).Round(time.Millisecond)))
		}
	}
	for _, p := range probes {
		if p.refused && !p.at.Before(sigAt) && p.at.Before(graceEnd.Add(-edge)) {
			refused = append(refused, fmt.Sprintf("/readyz refused at +%s", p.at.Sub(sigAt).Round(time.Millisecond)))
		}
	}
	if len(refused) > 0 {
		t.Errorf("%d connections refused within the %s drain grace after SIGTERM (the listener closed early), first: %s",
			len(refused), grace, strings.Join(refused[:min(5, len(refused))], "; "))
	}
	if !ready503.IsZero() {
		for _, p := range probes {
			if p.refused && p.at.Before(ready503) {
				t.Errorf("the listener refused connections (+%s) before /readyz said 503", p.at.Sub(sigAt).Round(time.Millisecond))
				break
			}
		}
	}

	// 3. Requests in flight at SIGTERM finished with 202.
	inflight, finished := 0, 0
	var bad []string
	for _, r := range slow.Records() {
		if r.Sent.Before(sigAt) && (r.Done.After(sigAt) || r.Done.IsZero()) {
			inflight++
			if r.Accepted() {
				finished++
			} else {
				bad = append(bad, fmt.Sprintf("status %d err %v", r.Status, r.Err))
			}
		}
	}
	t.Logf("%d slow requests in flight at SIGTERM, %d answered 202", inflight, finished)
	if inflight == 0 {
		t.Errorf("no request was in flight at SIGTERM: the test did not exercise the drain")
	}
	if len(bad) > 0 {
		t.Errorf("%d requests in flight at SIGTERM did not finish with 202, first: %s", len(bad), bad[0])
	}

	// 4. Nothing accepted is lost. After the grace the only listener is
	// gone: refusals and errors from then on are expected.
	e.waitDone("after the drain", all, 30*time.Second)
	a := &harness.Audit{DB: e.c.DB(), Records: all, Destinations: e.logs,
		Outages: []harness.Window{{Name: "after the drain grace", From: graceEnd.Add(-edge), To: time.Now().Add(time.Hour)}}}
	a.Run(t)
}

// readyProbe is one GET /readyz: when, its status (0 on an error) and
// whether the connection was refused.
type readyProbe struct {
	at      time.Time
	code    int
	refused bool
	err     error
}

// probeSummary lists the first /readyz answers after from, compactly.
func probeSummary(probes []readyProbe, from time.Time) string {
	var out []string
	for _, p := range probes {
		if p.at.Before(from) {
			continue
		}
		what := fmt.Sprint(p.code)
		if p.err != nil {
			what = "error"
			if p.refused {
				what = "refused"
			}
		}
		out = append(out, fmt.Sprintf("+%s %s", p.at.Sub(from).Round(10*time.Millisecond), what))
		if len(out) == 10 {
			break
		}
	}
	return strings.Join(out, ", ")
}
