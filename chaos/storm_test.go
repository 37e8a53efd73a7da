//go:build chaos

package chaos

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/fakeprovider"
	"github.com/consentsync/consentsync/internal/harness"
)

// TestProviderStorm is fault 5: both providers answer 429 (with reset
// headers) for 10 s, then 503 for 5 s — the 60 s + 30 s scaled
// down. While they do:
//   - inbound processing keeps ≥ 80% of its normal rate, measured first in
//     the same test with the same load (pushes must not starve inbound
//     work: separate queues with their own concurrency, or equivalent);
//   - each destination gets at most 2 calls per retry interval (the 5 s
//     the providers ask for): one retry schedule per destination, a
//     circuit that opens, not one retry loop per row;
//
// and after it everything is delivered.
func TestProviderStorm(t *testing.T) {
	const (
		sweepAfter = 3 * time.Second
		rate       = 30.0
		normalFor  = 10 * time.Second
		tooMany    = 10 * time.Second
		unavail    = 5 * time.Second
		interval   = 5 * time.Second // Retry-After / rate-limit reset the providers ask for
		afterStorm = 60 * time.Second
	)
	e := newEnv(t, harness.Config{SweepAfter: sweepAfter}, harness.RedisOptions{})
	serve := e.c.StartServe("serve-1")
	e.c.StartWork("work-1")
	ctx := context.Background()
	s := harness.NewSender(serve.URL())
	w := harness.NewWorkload("storm", 5)
	mix := func(d time.Duration) harness.Mix {
		// Half of the people withdraw: 1.5 requests per person.
		return harness.Mix{People: int(rate * d.Seconds() / 1.5), WithdrawFrac: 0.5}
	}

	// Normal rate, same load, providers healthy.
	n0 := time.Now()
	s.Drive(ctx, w.Stream(mix(normalFor)), rate)
	n1 := time.Now()
	normal := float64(e.processedBetween(n0, n1)) / n1.Sub(n0).Seconds()
	e.waitDone("normal phase", s.Records(), 30*time.Second)
	t.Logf("normal inbound processing rate: %.1f/s (load %.0f/s)", normal, rate)

	// The storm.
	storm := []fakeprovider.Phase{
		{Fault: fakeprovider.Fault{Kind: fakeprovider.TooMany, Reset: interval, RetryAfter: interval}, For: tooMany},
		{Fault: fakeprovider.Fault{Kind: fakeprovider.Unavailable, RetryAfter: interval}, For: unavail},
	}
	stormFor := tooMany + unavail
	s0 := time.Now()
	e.sg.Storm(storm...)
	e.mc.Storm(storm...)
	s.Drive(ctx, w.Stream(mix(stormFor)), rate)
	s1 := time.Now()
	stormRate := float64(e.processedBetween(s0, s1)) / s1.Sub(s0).Seconds()
	if d := time.Until(s0.Add(stormFor)); d > 0 {
		time.Sleep(d)
	}
	end := s0.Add(stormFor)
	t.Logf("inbound processing rate during the storm: %.1f/s (%.0f%% of normal)", stormRate, 100*stormRate/normal)
	if stormRate < 0.8*normal {
		t.Errorf("inbound processing fell to %.1f/s during the provider storm, %.0f%% of the normal %.1f/s (want ≥ 80%%): push retries starve inbound work",
			stormRate, 100*stormRate/normal, normal)
	}
	maxCalls := 2 * int(math.Ceil(stormFor.Seconds()/interval.Seconds()))
	for name, tap := range map[string]*harness.Tap{harness.SendGridDest: e.sgTap, harness.MailchimpDest: e.mcTap} {
		n := tap.ArrivalsBetween(s0, end)
		t.Logf("%s: %d calls during the %s storm (at most %d allowed: 2 per %s retry interval)", name, n, stormFor, maxCalls, interval)
		if n > maxCalls {
			t.Errorf("%s got %d calls during the %s storm, want ≤ %d (2 per destination per %s retry interval): retries are per row/task, not one schedule per destination",
				name, n, stormFor, maxCalls, interval)
		}
	}

	if _, err := harness.WaitDone(ctx, e.c.DB(), s.Records(), e.logs, afterStorm); err != nil {
		t.Errorf("not everything delivered within %s after the storm: %v", afterStorm, err)
	} else {
		t.Logf("everything delivered %s after the storm", time.Since(end).Round(time.Millisecond))
	}
	e.audit(s.Records())
}
