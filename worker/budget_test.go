package worker

import (
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

// timeoutOf: a destination's timeout for one request; more requests add
// the longer of what the rate limit needs to let them go and a second per
// further round of connectors.InFlight concurrent requests (before, an
// unpaced per-address read-back of 500 got 10 s for 63 rounds, so any
// provider answering slower than 160 ms cut every batch off).
func TestTimeoutOf(t *testing.T) {
	t.Parallel()
	w := &Worker{Config: &config.Config{Destinations: []config.Destination{
		{Name: "unpaced", Kind: "test-unpaced-kind"},
		{Name: "paced", Kind: "test-unpaced-kind", RateLimit: 2, Timeout: 3 * time.Second},
		{Name: "fast", Kind: "test-unpaced-kind", RateLimit: 1000},
	}}}
	rounds := func(n int) time.Duration {
		return time.Duration((n+connectors.InFlight-1)/connectors.InFlight-1) * callAllowance
	}
	for _, c := range []struct {
		name  string
		calls int
		want  time.Duration
	}{
		{"unpaced", 1, 10 * time.Second},                   // the default timeout
		{"unpaced", connectors.InFlight, 10 * time.Second}, // one round
		{"unpaced", 500, 10*time.Second + rounds(500)},     // 63 rounds
		{"paced", 1, 3*time.Second + 500*time.Millisecond}, // one token at 2/s
		{"paced", 100, 3*time.Second + 50*time.Second},     // the limiter is slower than the rounds
		{"fast", 500, 10*time.Second + rounds(500)},        // the rounds are slower than the limiter
		{"unknown", 500, 10 * time.Second},                 // not configured: the default alone
	} {
		if got := w.timeoutOf(c.name, c.calls); got != c.want {
			t.Errorf("timeoutOf(%s, %d) = %s, want %s", c.name, c.calls, got, c.want)
		}
	}
	if rounds(500) != 62*time.Second {
		t.Fatalf("500 calls are %s of rounds, want 62s", rounds(500))
	}
}

// verifyBackoff doubles verify_after per attempt up to its cap (half the
// withdrawal deadline, at most 24 h), and never wraps negative whatever
// the settings.
func TestVerifyBackoff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		after   time.Duration
		attempt int
		want    time.Duration
	}{
		{time.Minute, 1, time.Minute},
		{time.Minute, 2, 2 * time.Minute},
		{time.Minute, 5, 16 * time.Minute},
		{time.Minute, 12, maxVerifyBackoff}, // 2048 min > 24 h
		{40 * time.Hour, 1, maxVerifyBackoff},
		{40 * time.Hour, 30, maxVerifyBackoff}, // was negative: 40h << 16 overflows int64
		{time.Hour, 1 << 30, maxVerifyBackoff},
		{0, 5, 0},
	} {
		if got := verifyBackoff(c.after, c.attempt, maxVerifyBackoff); got != c.want {
			t.Errorf("verifyBackoff(%s, %d) = %s, want %s", c.after, c.attempt, got, c.want)
		}
	}
}

func TestVerifyBackoffCap(t *testing.T) {
	t.Parallel()
	for deadline, want := range map[time.Duration]time.Duration{
		0:                  maxVerifyBackoff,
		48 * time.Hour:     24 * time.Hour,
		7 * 24 * time.Hour: 24 * time.Hour,
		12 * time.Hour:     6 * time.Hour,
	} {
		if got := verifyBackoffCap(deadline); got != want {
			t.Errorf("verifyBackoffCap(%s) = %s, want %s", deadline, got, want)
		}
	}
	// With a 12 h deadline, the eighth unanswered read-back at 1 min waits
	// 6 h, not 128 min doubled on to 24 h.
	if got := verifyBackoff(time.Minute, 12, verifyBackoffCap(12*time.Hour)); got != 6*time.Hour {
		t.Errorf("verifyBackoff under a 12 h deadline = %s, want 6h", got)
	}
}
