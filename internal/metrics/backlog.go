package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentsync/consentsync/store"
)

// BacklogCollector exports, at each scrape, the unfinished work Postgres
// holds (store.Backlog): a destination that is down shows as a growing
// consentsync_outbox_oldest_pending_seconds long before anything "fails".
type BacklogCollector struct {
	Store  *store.Store
	Logger *slog.Logger
	// Destinations are the configured destination names: each gets its
	// gauges, at 0 when it has nothing waiting, so alerts see a series.
	Destinations []string
	// CircuitFailures is worker.circuit_failures: that many failed calls in
	// a row open a destination's circuit.
	CircuitFailures int
}

// Circuit states of consentsync_destination_circuit_state (docs/design.md
// §7.3: one retry schedule and circuit per destination, in Postgres).
const (
	// CircuitClosed: the last provider call succeeded.
	CircuitClosed = 0
	// CircuitRetrying: calls failed in a row, fewer than
	// worker.circuit_failures; the destination is held until its retry time.
	CircuitRetrying = 1
	// CircuitOpen: worker.circuit_failures calls or more failed in a row;
	// one probe call at a time until one succeeds.
	CircuitOpen = 2
)

var (
	descOutboxPending = prometheus.NewDesc("consentsync_outbox_pending", "Suppressions waiting to be pushed, by destination.", []string{"destination"}, nil)
	descOutboxOldest  = prometheus.NewDesc("consentsync_outbox_oldest_pending_seconds", "Age of the oldest suppression waiting to be pushed, by destination, in seconds.", []string{"destination"}, nil)
	descOutboxFailed  = prometheus.NewDesc("consentsync_outbox_failed", "Suppressions refused for good by the destination (to fix and re-push), by destination.", []string{"destination"}, nil)
	descInboxOpen     = prometheus.NewDesc("consentsync_inbox_unprocessed", "Stored webhooks not yet processed.", nil, nil)
	descInboxOldest   = prometheus.NewDesc("consentsync_inbox_oldest_unprocessed_seconds", "Age of the oldest stored webhook not yet processed, in seconds.", nil, nil)
	descWithdrawalOld = prometheus.NewDesc("consentsync_withdrawal_oldest_unhonoured_seconds", "Age of the oldest withdrawal not yet honoured (pushed, and read back where possible) at every destination, in seconds.", nil, nil)
	descInboxFailed   = prometheus.NewDesc("consentsync_inbox_failed", "Stored webhooks given up on after their last retry (see `consentsync replay`).", nil, nil)
	descCircuit       = prometheus.NewDesc("consentsync_destination_circuit_state", "A destination's circuit: 0 closed (last call succeeded), 1 retrying (calls failed in a row, held until the retry time), 2 open (worker.circuit_failures failed in a row: one probe call at a time).", []string{"destination"}, nil)
	descFailures      = prometheus.NewDesc("consentsync_destination_failed_calls", "Provider calls to a destination that failed in a row (0: the last one succeeded).", []string{"destination"}, nil)
)

// Describe implements prometheus.Collector.
func (c BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOutboxPending, descOutboxOldest, descOutboxFailed, descInboxOpen, descInboxOldest, descInboxFailed, descWithdrawalOld, descCircuit, descFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; a failed read exports nothing.
func (c BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	b, err := c.Store.Backlog(ctx)
	if err != nil {
		c.Logger.Warn("metrics: backlog unavailable", "err", err)
		return
	}
	names := map[string]bool{}
	for _, d := range c.Destinations {
		names[d] = true
	}
	for d := range b.OutboxPending {
		names[d] = true
	}
	for d := range b.OutboxFailed {
		names[d] = true
	}
	for d := range b.DestinationFailures {
		names[d] = true
	}
	for d := range names {
		ch <- prometheus.MustNewConstMetric(descOutboxPending, prometheus.GaugeValue, float64(b.OutboxPending[d]), d)
		ch <- prometheus.MustNewConstMetric(descOutboxOldest, prometheus.GaugeValue, b.OutboxOldest[d].Seconds(), d)
		ch <- prometheus.MustNewConstMetric(descOutboxFailed, prometheus.GaugeValue, float64(b.OutboxFailed[d]), d)
		n := b.DestinationFailures[d]
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(n), d)
		ch <- prometheus.MustNewConstMetric(descCircuit, prometheus.GaugeValue, float64(CircuitState(n, c.CircuitFailures)), d)
	}
	ch <- prometheus.MustNewConstMetric(descInboxOpen, prometheus.GaugeValue, float64(b.InboxUnprocessed))
	ch <- prometheus.MustNewConstMetric(descInboxOldest, prometheus.GaugeValue, b.InboxOldest.Seconds())
	ch <- prometheus.MustNewConstMetric(descInboxFailed, prometheus.GaugeValue, float64(b.InboxFailed))
	ch <- prometheus.MustNewConstMetric(descWithdrawalOld, prometheus.GaugeValue, b.WithdrawalOldest.Seconds())
}

// CircuitState is the circuit state (CircuitClosed, CircuitRetrying,
// CircuitOpen) of a destination whose last failures calls failed in a
// row, when threshold of them open the circuit (worker.circuit_failures;
// threshold <= 0 never opens it).
func CircuitState(failures, threshold int) int {
	switch {
	case failures <= 0:
		return CircuitClosed
	case threshold > 0 && failures >= threshold:
		return CircuitOpen
	default:
		return CircuitRetrying
	}
}
