package cli

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
)

// QueueLegend says what each word of `consentsync queues` means; the same
// words are used by the README's glossary ("Operating consentsync") and
// the queue UI (asynqmon's tabs): one word per state.
const QueueLegend = `retried: asynq tasks whose last attempt errored; asynq runs them again later.
archived: asynq tasks out of attempts (worker.max_retry), kept for inspection (the queue UI's Archived tab).
errors today: attempts that errored today (each one was then retried or archived).
failed: rows given up for good — a suppression a destination refused (fix the cause, then repush),
        a webhook whose processing errored after its last attempt (fix the cause, then replay).`

// PrintQueues prints `consentsync queues`: per asynq queue its tasks by
// state (asynq.QueueInfo), then the inbox's and each destination's outbox
// rows by status (store.InboxCounts, store.OutboxCounts), and the legend.
// asynq's own "failed" count (attempts that errored today) is shown as
// "ERRORS TODAY", so that "failed" means one thing only: a row given up for
// good.
func PrintQueues(w io.Writer, queues []*asynq.QueueInfo, inbox map[string]int64, outbox map[string]map[string]int64) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSIZE\tPENDING\tACTIVE\tSCHEDULED\tRETRIED\tARCHIVED\tLATENCY\tPROCESSED TODAY\tERRORS TODAY")
	for _, q := range queues {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", q.Queue, q.Size, q.Pending, q.Active, q.Scheduled,
			q.Retry, q.Archived, q.Latency.Round(time.Millisecond), q.Processed, q.Failed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ninbox: %d waiting to be processed, %d processed, %d failed (see replay)\n", inbox["received"], inbox["processed"], inbox["failed"])
	names := make([]string, 0, len(outbox))
	for d := range outbox {
		names = append(names, d)
	}
	slices.Sort(names)
	for _, d := range names {
		c := outbox[d]
		fmt.Fprintf(w, "outbox %s: %d pending, %d sent, %d failed (see repush)\n", d, c["pending"], c["sent"], c["failed"])
	}
	_, err := fmt.Fprintf(w, "\n%s\n", QueueLegend)
	return err
}
