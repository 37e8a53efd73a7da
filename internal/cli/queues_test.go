package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// TestPrintQueuesOneWordPerState: asynq's count of errored attempts is not
// called "failed" (the word of rows given up for good), and every number
// lands under its own word.
func TestPrintQueuesOneWordPerState(t *testing.T) {
	t.Parallel()
	qs := []*asynq.QueueInfo{{Queue: "inbound", Size: 17, Pending: 2, Active: 3, Scheduled: 4, Retry: 5, Archived: 6, Latency: 1500 * time.Millisecond, Processed: 90, Failed: 9}}
	var out bytes.Buffer
	err := PrintQueues(&out, qs, map[string]int64{"received": 1, "processed": 20, "failed": 7},
		map[string]map[string]int64{"z-dest": {"pending": 1}, "sendgrid-acme": {"pending": 11, "sent": 12, "failed": 0}})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	lines := strings.Split(s, "\n")
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if strings.Contains(strings.ToLower(lines[0]), "fail") {
		t.Errorf("queue header says failed: %q", lines[0])
	}
	// Column by column: the header word over its number.
	want := map[string]string{"PENDING": "2", "ACTIVE": "3", "SCHEDULED": "4", "RETRIED": "5", "ARCHIVED": "6", "LATENCY": "1.5s"}
	for i, h := range header[:8] {
		if v, ok := want[h]; ok && row[i] != v {
			t.Errorf("column %s = %s, want %s (row %q)", h, row[i], v, lines[1])
		}
	}
	if n := len(row); n != 10 || row[8] != "90" || row[9] != "9" {
		t.Errorf("processed/errors today not last: %q", lines[1])
	}
	for _, w := range []string{"inbox: 1 waiting to be processed, 20 processed, 7 failed (see replay)",
		"outbox sendgrid-acme: 11 pending, 12 sent, 0 failed (see repush)", "retried:", "archived:", "failed: rows given up for good"} {
		if !strings.Contains(s, w) {
			t.Errorf("output lacks %q:\n%s", w, s)
		}
	}
	if i, j := strings.Index(s, "outbox sendgrid-acme"), strings.Index(s, "outbox z-dest"); i < 0 || j < i {
		t.Errorf("destinations not in name order:\n%s", s)
	}
	// "failed" appears only for rows given up for good: inbox, outbox, legend.
	for _, l := range lines {
		if regexp.MustCompile(`(?i)\bfailed\b`).MatchString(l) && !strings.HasPrefix(l, "inbox:") && !strings.HasPrefix(l, "outbox ") && !strings.HasPrefix(l, "failed:") {
			t.Errorf("\"failed\" used for something else: %q", l)
		}
	}
}
