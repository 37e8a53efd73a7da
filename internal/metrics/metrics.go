// Package metrics declares consentsync's Prometheus metrics. Labels carry
// configured names and fixed outcome words only: never an address, a subject
// or anything a sender controls.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the counters and histograms the receiver and worker update.
type Metrics struct {
	Registry *prometheus.Registry

	// WebhooksReceived counts webhook requests by source and outcome:
	// accepted, duplicate, unauthorized, malformed, too_large, unknown_source
	// (source label "unknown"), unavailable, enqueue_failed.
	WebhooksReceived *prometheus.CounterVec
	// Signals counts reconciled signals by source and outcome: applied,
	// stale, invalid, duplicate.
	Signals *prometheus.CounterVec
	// SuppressionsPushed counts outbox rows by destination and outcome:
	// sent, failed, retry.
	SuppressionsPushed *prometheus.CounterVec
	// PushSeconds observes one provider call's duration, by destination.
	PushSeconds *prometheus.HistogramVec
	// PushCalls counts provider calls by destination and outcome: ok (the
	// provider answered), retry (a transient failure held the destination).
	PushCalls *prometheus.CounterVec
	// InboundBatch observes how many webhooks one inbound task reconciled
	// in its transaction.
	InboundBatch prometheus.Histogram
	// InboundFailed counts inbound events given up on, by source.
	InboundFailed *prometheus.CounterVec
	// Verifications counts read-backs by destination and outcome:
	// verified, mismatch (re-pushed), retry, unverified (given up), error.
	Verifications *prometheus.CounterVec
	// DriftFound counts suppressions a drift check found missing at a
	// destination, by destination.
	DriftFound *prometheus.CounterVec
	// WithdrawalHonoured observes, per withdrawal, the seconds from its
	// receipt to its last destination settled (sent and verified, or sent
	// where no read-back exists).
	WithdrawalHonoured prometheus.Histogram
	// Sweeps counts sweeper re-enqueues by kind (inbound, outbox, and
	// inbound_orphan for orphaned task ids replaced).
	Sweeps *prometheus.CounterVec
}

// New registers the metrics (and the Go and process collectors) on a new
// registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		WebhooksReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_webhooks_received_total", Help: "Webhook requests by source and outcome.",
		}, []string{"source", "outcome"}),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_signals_total", Help: "Reconciled consent signals by source and outcome.",
		}, []string{"source", "outcome"}),
		SuppressionsPushed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_suppressions_pushed_total", Help: "Suppressions pushed by destination and outcome.",
		}, []string{"destination", "outcome"}),
		PushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "consentsync_push_duration_seconds", Help: "Duration of one push call to a destination, in seconds.",
			Buckets: prometheus.DefBuckets,
		}, []string{"destination"}),
		PushCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_push_calls_total", Help: "Provider calls by destination and outcome (ok, retry).",
		}, []string{"destination", "outcome"}),
		InboundBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "consentsync_inbound_batch_size", Help: "Webhooks reconciled in one transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		InboundFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_inbound_failed_total", Help: "Inbound events given up on after their last retry, by source.",
		}, []string{"source"}),
		Verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_verifications_total", Help: "Read-backs of pushed suppressions by destination and outcome (verified, mismatch, retry, unverified, error).",
		}, []string{"destination", "outcome"}),
		DriftFound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_drift_found_total", Help: "Suppressions a drift check found missing at a destination.",
		}, []string{"destination"}),
		WithdrawalHonoured: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "consentsync_withdrawal_honoured_seconds", Help: "Seconds from a withdrawal's receipt to its last destination settled.",
			Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600},
		}),
		Sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_sweeper_requeued_total", Help: "Work re-enqueued by the sweeper, by kind (inbound, outbox; inbound_orphan: task ids Redis had half lost, replaced).",
		}, []string{"kind"}),
	}
	r.MustRegister(m.WebhooksReceived, m.Signals, m.SuppressionsPushed, m.PushSeconds, m.PushCalls, m.InboundBatch, m.InboundFailed, m.Sweeps,
		m.Verifications, m.DriftFound, m.WithdrawalHonoured)
	return m
}
