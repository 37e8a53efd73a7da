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
}

var (
	descOutboxPending = prometheus.NewDesc("consentsync_outbox_pending", "Suppressions waiting to be pushed, by destination.", []string{"destination"}, nil)
	descOutboxOldest  = prometheus.NewDesc("consentsync_outbox_oldest_pending_seconds", "Age of the oldest suppression waiting to be pushed, by destination, in seconds.", []string{"destination"}, nil)
	descOutboxFailed  = prometheus.NewDesc("consentsync_outbox_failed", "Suppressions refused for good by the destination (to fix and re-push), by destination.", []string{"destination"}, nil)
	descInboxOpen     = prometheus.NewDesc("consentsync_inbox_unprocessed", "Stored webhooks not yet processed.", nil, nil)
	descInboxOldest   = prometheus.NewDesc("consentsync_inbox_oldest_unprocessed_seconds", "Age of the oldest stored webhook not yet processed, in seconds.", nil, nil)
	descWithdrawalOld = prometheus.NewDesc("consentsync_withdrawal_oldest_unhonoured_seconds", "Age of the oldest withdrawal not yet honoured (pushed, and read back where possible) at every destination, in seconds.", nil, nil)
	descInboxFailed   = prometheus.NewDesc("consentsync_inbox_failed", "Stored webhooks given up on after their last retry (see `consentsync replay`).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOutboxPending, descOutboxOldest, descOutboxFailed, descInboxOpen, descInboxOldest, descInboxFailed, descWithdrawalOld} {
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
	for d := range names {
		ch <- prometheus.MustNewConstMetric(descOutboxPending, prometheus.GaugeValue, float64(b.OutboxPending[d]), d)
		ch <- prometheus.MustNewConstMetric(descOutboxOldest, prometheus.GaugeValue, b.OutboxOldest[d].Seconds(), d)
		ch <- prometheus.MustNewConstMetric(descOutboxFailed, prometheus.GaugeValue, float64(b.OutboxFailed[d]), d)
	}
	ch <- prometheus.MustNewConstMetric(descInboxOpen, prometheus.GaugeValue, float64(b.InboxUnprocessed))
	ch <- prometheus.MustNewConstMetric(descInboxOldest, prometheus.GaugeValue, b.InboxOldest.Seconds())
	ch <- prometheus.MustNewConstMetric(descInboxFailed, prometheus.GaugeValue, float64(b.InboxFailed))
	ch <- prometheus.MustNewConstMetric(descWithdrawalOld, prometheus.GaugeValue, b.WithdrawalOldest.Seconds())
}
