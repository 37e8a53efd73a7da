//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/fakeprovider"
	"github.com/consentsync/consentsync/internal/harness"
)

// TestPostgresRestart is fault 4: Postgres is restarted twice mid-load,
// first with a fast shutdown, then an immediate one (a crash). While it is
// down the receiver answers 503 (the sender retries later), never 500 nor
// a dropped connection; once it is back consentsync recovers by itself
// (no process restarted); nothing acknowledged is lost, and pushes whose
// outcome could not be recorded are retried soon, not after a lease.
func TestPostgresRestart(t *testing.T) {
	const (
		sweepAfter = 3 * time.Second
		rate       = 20.0
		down       = 3 * time.Second
		// recovery: how long after Postgres is back a 503 or an error may
		// still be met (connection pools reconnecting).
		recovery = 5 * time.Second
		// drain: the whole backlog after the load, well under the 5-minute
		// push lease.
		drain = 2*sweepAfter + 30*time.Second
	)
	e := newEnv(t, harness.Config{SweepAfter: sweepAfter}, harness.RedisOptions{})
	serve := e.c.StartServe("serve-1")
	work := e.c.StartWork("work-1")
	ctx := context.Background()
	// Provider calls take 400 ms, so that pushes are in flight when
	// Postgres goes away and their outcome cannot be recorded at once.
	for _, p := range []*fakeprovider.Provider{e.sg, e.mc} {
		p.SetFault(fakeprovider.Fault{Kind: fakeprovider.Slow, Delay: 400 * time.Millisecond})
	}
	s := harness.NewSender(serve.URL())
	w := harness.NewWorkload("pg", 4)
	load := s.DriveAsync(ctx, w.Stream(harness.Mix{People: 320, WithdrawFrac: 0.4}), rate)

	var outages []harness.Window
	var lastUp time.Time
	for i, mode := range []harness.StopMode{harness.Fast, harness.Immediate} {
		time.Sleep(4 * time.Second)
		from := time.Now()
		if err := e.c.PG.Stop(mode); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		time.Sleep(down)
		// While it is down: /readyz says so.
		if code, body, err := serve.Get(ctx, "/readyz"); err != nil || code != 503 || !strings.Contains(string(body), "postgres") {
			t.Errorf("/readyz while Postgres is down (%s stop): got %d %s (err %v), want 503 naming postgres", mode, code, strings.TrimSpace(string(body)), err)
		}
		if err := e.c.PG.Start(); err != nil {
			t.Fatal(err)
		}
		lastUp = time.Now()
		outages = append(outages, harness.Window{Name: fmt.Sprintf("postgres %s stop #%d", mode, i+1), From: from, To: lastUp.Add(recovery)})

		// Requests sent while it was down were answered 503, not 5xx
		// of another kind nor a dropped connection.
		var n503, other int
		var first string
		for _, r := range s.Records() {
			if r.Sent.Before(stopped) || r.Sent.After(lastUp.Add(-200*time.Millisecond)) {
				continue
			}
			if r.Status == 503 {
				n503++
				continue
			}
			other++
			if first == "" {
				first = fmt.Sprintf("status %d err %v", r.Status, r.Err)
			}
		}
		t.Logf("Postgres %s stop: %d requests answered 503 while down, %d otherwise", mode, n503, other)
		if n503 == 0 {
			t.Errorf("Postgres %s stop: no request was answered 503 while Postgres was down", mode)
		}
		if other > 0 {
			t.Errorf("Postgres %s stop: %d requests sent while Postgres was down got something else than 503, first: %s", mode, other, first)
		}
	}
	<-load
	loadEnd := time.Now()

	// Recovered without a restart: both processes still run, /readyz is
	// 200, and requests after the recovery window were accepted.
	for _, p := range []*harness.Proc{serve, work} {
		if p.Exited() {
			t.Errorf("%s exited during the Postgres restarts: %v", p.Name, p.Wait(0))
		}
	}
	if err := serve.WaitHTTP(ctx, "/readyz", 200, 10*time.Second); err != nil {
		t.Errorf("serve did not become ready again after Postgres came back: %v", err)
	}
	accepted := 0
	for _, r := range s.Records() {
		if r.Sent.After(lastUp.Add(recovery)) && r.Accepted() {
			accepted++
		}
	}
	if accepted == 0 {
		t.Errorf("no request accepted after Postgres came back (+%s)", recovery)
	}

	if _, err := harness.WaitDone(ctx, e.c.DB(), s.Records(), e.logs, drain); err != nil {
		b, _ := harness.ReadBacklog(ctx, e.c.DB())
		t.Errorf("acknowledged work not done within %s after the load ended (Postgres restarted twice): %v\nbacklog: %s", drain, err, b)
	} else {
		t.Logf("all acknowledged work done %s after the load", time.Since(loadEnd).Round(time.Millisecond))
	}
	e.audit(s.Records(), outages...)
}
