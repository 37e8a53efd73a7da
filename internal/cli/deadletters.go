package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/consentsync/consentsync/jobs"
	"github.com/consentsync/consentsync/service"
)

// PrintDeadLetters prints service.DeadLetters: failed webhooks, failed
// suppressions and archived tasks, each with its id (what replay or repush
// takes), why and how old, and the command that takes it. Addresses are
// masked by the service.
func PrintDeadLetters(w io.Writer, d service.DeadLetters) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "FAILED WEBHOOKS: %d (inbox: given up after their last retry; fix the cause, then `consentsync replay -id ID`)\n", d.WebhooksTotal)
	if len(d.Webhooks) > 0 {
		fmt.Fprintln(tw, "ID\tSOURCE\tATTEMPTS\tAGE\tREASON")
		for _, h := range d.Webhooks {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", h.ID, h.Source, h.Attempts, Age(h.Age), oneLine(h.Reason, 90))
		}
		_ = tw.Flush()
	}
	more(w, len(d.Webhooks), d.WebhooksTotal)

	fmt.Fprintf(w, "\nFAILED SUPPRESSIONS: %d (outbox: refused for good by the destination; fix the cause, then `consentsync repush -id ID`)\n", d.SuppressionsTotal)
	if len(d.Suppressions) > 0 {
		fmt.Fprintln(tw, "ID\tDESTINATION\tADDRESS\tCONSENT\tACTION\tATTEMPTS\tAGE\tREASON")
		for _, s := range d.Suppressions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s/%s\t%s\t%d\t%s\t%s\n", s.ID, s.Destination, s.Address, s.Brand, s.Channel, s.Purpose,
				s.Action, s.Attempts, Age(s.Age), oneLine(s.Reason, 80))
		}
		_ = tw.Flush()
	}
	more(w, len(d.Suppressions), d.SuppressionsTotal)

	fmt.Fprintf(w, "\nARCHIVED TASKS: %d (asynq gave up on them)\n", d.TasksTotal)
	if len(d.Tasks) > 0 {
		fmt.Fprintln(tw, "TASK ID\tQUEUE\tFOR\tRETRIED\tAGE\tTAKE WITH\tREASON")
		for _, t := range d.Tasks {
			what, take := "", ""
			switch t.Type {
			case jobs.TypeInboundProcess:
				what, take = "webhook "+strconv.FormatInt(t.InboundID, 10), "consentsync replay -id "+strconv.FormatInt(t.InboundID, 10)
			case jobs.TypeSuppressionPush:
				what, take = "push "+t.Destination, "consentsync repush -id "+t.ID
			default:
				what = t.Type
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Queue, what, t.Retried, Age(t.Age), take, oneLine(t.Reason, 70))
		}
		_ = tw.Flush()
	}
	more(w, len(d.Tasks), d.TasksTotal)
	_, err := fmt.Fprintln(w, "\n(ages: since received, queued, or the task's last failure; addresses masked)")
	return err
}

func more(w io.Writer, shown int, total int64) {
	if int64(shown) < total {
		fmt.Fprintf(w, "… and %d more (-limit)\n", total-int64(shown))
	}
}

// oneLine folds s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// Age formats a duration for a person, to two units: "42s", "5m12s",
// "3h4m", "2d5h"; a negative one (unknown) is "-".
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
