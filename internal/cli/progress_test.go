package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressPlainLines: not on a terminal, a line when a phase starts,
// every Every items or Interval (whichever first), and where each phase
// ended; percentages when the total is known, counts when not.
func TestProgressPlainLines(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := NewProgress(&out, "replay")
	if p.tty {
		t.Fatal("a buffer is not a terminal")
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return clock }
	p.Every = 100
	f := p.Func()
	for i := int64(0); i <= 250; i++ {
		f("enqueue", i, 250)
	}
	// 150 more items, but slowly: the interval prints one.
	f("drift sendgrid-acme read back", 0, -1)
	f("drift sendgrid-acme read back", 10, -1)
	clock = clock.Add(6 * time.Second)
	f("drift sendgrid-acme read back", 20, -1)
	f("drift sendgrid-acme read back", 30, -1)
	p.Finish()
	want := []string{
		"replay: enqueue 0/250 (0%)",
		"replay: enqueue 100/250 (40%)",
		"replay: enqueue 200/250 (80%)",
		"replay: enqueue 250/250 (100%)",
		"replay: drift sendgrid-acme read back 0",
		"replay: drift sendgrid-acme read back 20",
		"replay: drift sendgrid-acme read back 30",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
	// Finish twice, or with nothing reported: no more lines.
	out.Reset()
	p.Finish()
	NewProgress(&out, "repush").Finish()
	if out.Len() != 0 {
		t.Fatalf("Finish without progress wrote %q", out.String())
	}
}

// TestProgressBar: on a terminal the bar names the command and phase and
// shows the count, then the total when done; an unknown total shows a
// count.
func TestProgressBar(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := NewProgress(&out, "verify-ledger")
	p.tty = true // as if out were a terminal
	f := p.Func()
	for i := int64(0); i <= 40; i++ {
		f("ledger rows", i, 40)
	}
	f("sendgrid-acme read back", 7, -1)
	p.Finish()
	s := out.String()
	for _, want := range []string{"verify-ledger: ledger rows", "40/40", "100%", "verify-ledger: sendgrid-acme read back", "7"} {
		if !strings.Contains(s, want) {
			t.Errorf("bar output lacks %q:\n%q", want, s)
		}
	}
	if strings.Contains(s, "verify-ledger: ledger rows 40/40 (100%)\n") {
		t.Error("the plain line was written on a terminal")
	}
}
