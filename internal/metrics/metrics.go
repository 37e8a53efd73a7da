// Package metrics declares consentsync's Prometheus metrics. Labels carry
// configured names and fixed outcome words only: never an address, a subject
// or anything a sender controls (an unknown source is counted under source
// "unknown", not under the path it was sent to).
//
// The words of the outcome labels are the glossary's (README "Glossary of states"):
// "failed" is refused for good (never tried again without an operator),
// "retried" will be tried again, "sent" and "verified" are done.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label values of each counter, exported so that Init can create every
// series at zero and tests can check the set.
var (
	// WebhookOutcomes are consentsync_webhooks_received_total's outcomes:
	// accepted and duplicate (committed, or already committed), then the
	// refusals — unauthorized (signature, token or timestamp check failed),
	// malformed (unreadable or unparseable body), too_large (over
	// server.body_limit), unknown_source (source "unknown") — and the
	// storage faults: unavailable (Postgres refused the write: 503, the
	// sender retries) and enqueue_failed (committed and answered, not
	// enqueued: the sweeper picks it up; also counted as accepted).
	WebhookOutcomes = []string{"accepted", "duplicate", "unauthorized", "malformed", "too_large", "unavailable", "enqueue_failed"}
	// SignalOutcomes are consentsync_signals_total's outcomes: applied (it
	// changed or confirmed the consent record), stale (older than what the
	// record holds for that consent), invalid (fails the quality criteria of
	// docs/rules.md, kept in the ledger as invalid), duplicate (already in
	// the ledger).
	SignalOutcomes = []string{"applied", "stale", "invalid", "duplicate"}
	// SignalStatuses are consentsync_signal_statuses_total's statuses: the
	// consent status a signal carries (consent.Status).
	SignalStatuses = []string{"granted", "withdrawn", "pending"}
	// PushOutcomes are consentsync_suppressions_pushed_total's outcomes, per
	// outbox row: sent, failed (refused for good), retried (the call or the
	// row failed transiently: pending again).
	PushOutcomes = []string{"sent", "failed", "retried"}
	// CallOutcomes are consentsync_push_calls_total's outcomes, per provider
	// call: ok (the provider answered, whatever it said of each row),
	// retried (a transient failure held the destination).
	CallOutcomes = []string{"ok", "retried"}
	// VerifyOutcomes are consentsync_verifications_total's outcomes, per
	// read-back of a sent suppression: verified (held), mismatch (missing:
	// pending again), retried (the provider cannot say yet), unverified
	// (given up after worker.verify_attempts), error (the read-back call
	// failed).
	VerifyOutcomes = []string{"verified", "mismatch", "retried", "unverified", "error"}
	// SweepKinds are consentsync_sweeper_requeued_total's kinds: inbound
	// (stored webhooks enqueued again), outbox (push tasks enqueued for
	// destinations with due rows), inbound_orphan (task ids Redis had half
	// lost, replaced). Only tasks actually enqueued count; work a live task
	// already holds does not.
	SweepKinds = []string{"inbound", "outbox", "inbound_orphan"}
)

// Metrics are the counters and histograms the receiver and worker update.
type Metrics struct {
	Registry *prometheus.Registry

	// WebhooksReceived counts webhook requests by source and outcome
	// (WebhookOutcomes).
	WebhooksReceived *prometheus.CounterVec
	// WebhookAck observes, per webhook request, the seconds from the
	// request's arrival at the handler to its answer (the inbox commit is
	// most of it), by source ("unknown" for an unknown one).
	WebhookAck *prometheus.HistogramVec
	// Signals counts reconciled signals by source and outcome
	// (SignalOutcomes).
	Signals *prometheus.CounterVec
	// SignalStatuses counts reconciled signals by source and the consent
	// status they carry (SignalStatuses), whatever their outcome.
	SignalStatuses *prometheus.CounterVec
	// SuppressionsPushed counts outbox rows by destination and outcome
	// (PushOutcomes).
	SuppressionsPushed *prometheus.CounterVec
	// PushSeconds observes one provider call's duration (push or lift,
	// rate-limit waits included), by destination, in seconds.
	PushSeconds *prometheus.HistogramVec
	// PushCalls counts provider calls by destination and outcome
	// (CallOutcomes).
	PushCalls *prometheus.CounterVec
	// RateLimitWait observes, per HTTP request to a destination, the
	// seconds it waited for its rate limiter (destinations[].rate_limit or
	// the kind's default; connectors.Deps.WithRateLimit), by destination.
	// Destinations without a limit observe nothing.
	RateLimitWait *prometheus.HistogramVec
	// InboundBatch observes how many webhooks one inbound task reconciled
	// in its transaction.
	InboundBatch prometheus.Histogram
	// InboundFailed counts inbound events given up on, by source.
	InboundFailed *prometheus.CounterVec
	// Verifications counts read-backs by destination and outcome
	// (VerifyOutcomes).
	Verifications *prometheus.CounterVec
	// DriftFound counts suppressions a drift check found missing at a
	// destination, by destination.
	DriftFound *prometheus.CounterVec
	// WithdrawalHonoured observes, per withdrawal, the seconds from its
	// receipt to its last destination settled (sent and verified, or sent
	// where no read-back exists).
	WithdrawalHonoured prometheus.Histogram
	// Sweeps counts sweeper re-enqueues by kind (SweepKinds).
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
			Name: "consentsync_webhooks_received_total", Help: "Webhook requests by source and outcome (accepted, duplicate, unauthorized, malformed, too_large, unknown_source, unavailable, enqueue_failed).",
		}, []string{"source", "outcome"}),
		WebhookAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "consentsync_webhook_ack_seconds", Help: "Seconds from a webhook request's arrival to its answer, by source.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_signals_total", Help: "Reconciled consent signals by source and outcome (applied, stale, invalid, duplicate).",
		}, []string{"source", "outcome"}),
		SignalStatuses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_signal_statuses_total", Help: "Reconciled consent signals by source and the status they carry (granted, withdrawn, pending).",
		}, []string{"source", "status"}),
		SuppressionsPushed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_suppressions_pushed_total", Help: "Outbox rows pushed by destination and outcome (sent, failed, retried).",
		}, []string{"destination", "outcome"}),
		PushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "consentsync_push_duration_seconds", Help: "Duration of one provider call (push or lift) to a destination, in seconds.",
			Buckets: prometheus.DefBuckets,
		}, []string{"destination"}),
		PushCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_push_calls_total", Help: "Provider calls by destination and outcome (ok, retried).",
		}, []string{"destination", "outcome"}),
		RateLimitWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "consentsync_ratelimit_wait_seconds", Help: "Seconds one HTTP request to a destination waited for the destination's rate limiter.",
			Buckets: []float64{.001, .005, .025, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"destination"}),
		InboundBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "consentsync_inbound_batch_size", Help: "Webhooks reconciled in one transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		InboundFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_inbound_failed_total", Help: "Inbound events given up on after their last retry, by source.",
		}, []string{"source"}),
		Verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_verifications_total", Help: "Read-backs of pushed suppressions by destination and outcome (verified, mismatch, retried, unverified, error).",
		}, []string{"destination", "outcome"}),
		DriftFound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_drift_found_total", Help: "Suppressions a drift check found missing at a destination.",
		}, []string{"destination"}),
		WithdrawalHonoured: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "consentsync_withdrawal_honoured_seconds", Help: "Seconds from a withdrawal's receipt to its last destination settled.",
			Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600},
		}),
		Sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentsync_sweeper_requeued_total", Help: "Tasks the sweeper actually enqueued, by kind (inbound, outbox; inbound_orphan: task ids Redis had half lost, replaced).",
		}, []string{"kind"}),
	}
	r.MustRegister(m.WebhooksReceived, m.WebhookAck, m.Signals, m.SignalStatuses, m.SuppressionsPushed, m.PushSeconds, m.PushCalls, m.RateLimitWait,
		m.InboundBatch, m.InboundFailed, m.Sweeps, m.Verifications, m.DriftFound, m.WithdrawalHonoured)
	return m
}

// Init creates, at zero, every series of the configured sources and
// destinations (names from the configuration, never from requests), so
// that rate() and increase() see the first event and dashboards show a
// flat line rather than "no data". rateLimited names the destinations
// whose requests are paced.
func (m *Metrics) Init(sources, destinations, rateLimited []string) {
	m.WebhooksReceived.WithLabelValues("unknown", "unknown_source")
	m.WebhookAck.WithLabelValues("unknown")
	for _, s := range sources {
		for _, o := range WebhookOutcomes {
			m.WebhooksReceived.WithLabelValues(s, o)
		}
		for _, o := range SignalOutcomes {
			m.Signals.WithLabelValues(s, o)
		}
		for _, st := range SignalStatuses {
			m.SignalStatuses.WithLabelValues(s, st)
		}
		m.WebhookAck.WithLabelValues(s)
		m.InboundFailed.WithLabelValues(s)
	}
	for _, d := range destinations {
		for _, o := range PushOutcomes {
			m.SuppressionsPushed.WithLabelValues(d, o)
		}
		for _, o := range CallOutcomes {
			m.PushCalls.WithLabelValues(d, o)
		}
		for _, o := range VerifyOutcomes {
			m.Verifications.WithLabelValues(d, o)
		}
		m.PushSeconds.WithLabelValues(d)
		m.DriftFound.WithLabelValues(d)
	}
	for _, d := range rateLimited {
		m.RateLimitWait.WithLabelValues(d)
	}
	for _, k := range SweepKinds {
		m.Sweeps.WithLabelValues(k)
	}
}
