package harness

import (
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
)

// TestConfigYAMLLoads checks that the configuration the harness writes is
// one consentsync accepts (a fault test must not fail on its own
// configuration).
func TestConfigYAMLLoads(t *testing.T) {
	c := Config{SendGridURL: "http://127.0.0.1:1", MailchimpURL: "http://127.0.0.1:2", Concurrency: 4, MaxRetry: 5, PushWaitCap: 2 * time.Second}
	cfg, err := config.Parse([]byte(c.YAML()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, c.YAML())
	}
	if cfg.Worker.SweepAfter != 3*time.Second || cfg.Worker.Concurrency != 4 || len(cfg.Sources) != 1 || len(cfg.Destinations) != 2 {
		t.Errorf("parsed %+v", cfg.Worker)
	}
	for _, d := range cfg.Destinations {
		if d.Timeout != 3*time.Second {
			t.Errorf("%s timeout %s, want 3s", d.Name, d.Timeout)
		}
	}
}

// TestStream checks the mix a Workload makes: every person's events,
// duplicates as repeated event ids, reversed pairs, distinct times.
func TestStream(t *testing.T) {
	w := NewWorkload("t", 1)
	events := w.Stream(Mix{People: 1000, WithdrawFrac: 0.5, DupFrac: 0.1, ReorderFrac: 0.1})
	ids := map[string]int{}
	times := map[time.Time]string{}
	lastAt := map[string]time.Time{}
	reversed := 0
	for _, e := range events {
		ids[e.EventID]++
		if ids[e.EventID] > 1 {
			continue
		}
		if id, ok := times[e.OccurredAt]; ok && id != e.EventID {
			t.Fatalf("two events at %s", e.OccurredAt)
		}
		times[e.OccurredAt] = e.EventID
		if e.EventID != EventIDFor(e.Email, e.Withdraw, e.OccurredAt) {
			t.Fatalf("event id not loadgen's")
		}
		if prev, ok := lastAt[e.Email]; ok && e.OccurredAt.Before(prev) {
			reversed++
		}
		lastAt[e.Email] = e.OccurredAt
	}
	distinct := len(ids)
	dups := len(events) - distinct
	if len(lastAt) != 1000 {
		t.Errorf("%d people, want 1000", len(lastAt))
	}
	if f := float64(dups) / float64(distinct); f < 0.07 || f > 0.13 {
		t.Errorf("duplicate share %.2f, want about 0.1", f)
	}
	if f := float64(reversed) / 500; f < 0.06 || f > 0.14 {
		t.Errorf("reversed pairs %.2f of withdrawing people, want about 0.1", f)
	}
	if n := len(NewWorkload("t", 1).Stream(Mix{People: 1000, WithdrawFrac: 0.5, DupFrac: 0.1, ReorderFrac: 0.1})); n != len(events) {
		t.Errorf("not reproducible: %d then %d events", len(events), n)
	}
}

// TestSlowReader checks that a slow body arrives whole.
func TestSlowReader(t *testing.T) {
	body := []byte(`{"email":"a@example.com","newsletter":"on"}`)
	r := &slowReader{b: body, pause: 10 * time.Millisecond}
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != string(body) || !r.paused {
		t.Errorf("got %q paused %v", got, r.paused)
	}
}

func TestMaskEmails(t *testing.T) {
	if got := maskEmails(`parse: bad "x-1@example.com" and y@z.fr`); got != `parse: bad "<email>" and <email>` {
		t.Errorf("got %q", got)
	}
}
