package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCircuitState(t *testing.T) {
	for _, c := range []struct{ failures, threshold, want int }{
		{0, 5, CircuitClosed}, {-1, 5, CircuitClosed}, {1, 5, CircuitRetrying}, {4, 5, CircuitRetrying},
		{5, 5, CircuitOpen}, {50, 5, CircuitOpen}, {3, 0, CircuitRetrying}, {1, 1, CircuitOpen},
	} {
		if got := CircuitState(c.failures, c.threshold); got != c.want {
			t.Errorf("CircuitState(%d, %d) = %d, want %d", c.failures, c.threshold, got, c.want)
		}
	}
}

// Init creates every configured series at zero, and only those: nothing
// for a destination that is not rate-limited, no outcome outside the
// documented lists.
func TestInitCreatesConfiguredSeries(t *testing.T) {
	m := New()
	m.Init([]string{"form-a"}, []string{"esp-a", "esp-b"}, []string{"esp-b"})
	if n := testutil.CollectAndCount(m.WebhooksReceived); n != len(WebhookOutcomes)+1 {
		t.Errorf("webhook series = %d, want %d", n, len(WebhookOutcomes)+1)
	}
	if n := testutil.CollectAndCount(m.SuppressionsPushed); n != 2*len(PushOutcomes) {
		t.Errorf("push series = %d, want %d", n, 2*len(PushOutcomes))
	}
	if n := testutil.CollectAndCount(m.RateLimitWait); n != 1 {
		t.Errorf("rate-limit wait series = %d, want 1 (esp-b only)", n)
	}
	want := `
# HELP consentsync_sweeper_requeued_total Tasks the sweeper actually enqueued, by kind (inbound, outbox; inbound_orphan: task ids Redis had half lost, replaced).
# TYPE consentsync_sweeper_requeued_total counter
consentsync_sweeper_requeued_total{kind="inbound"} 0
consentsync_sweeper_requeued_total{kind="inbound_orphan"} 0
consentsync_sweeper_requeued_total{kind="outbox"} 0
`
	if err := testutil.CollectAndCompare(m.Sweeps, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	for _, words := range [][]string{PushOutcomes, CallOutcomes, VerifyOutcomes} {
		for _, w := range words {
			if w == "retry" || w == "failure" {
				t.Errorf("outcome %q: the glossary's words are retried and failed", w)
			}
		}
	}
}
