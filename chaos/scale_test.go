//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/harness"
)

// TestTwoServeTwoWorkDuplicatesReordered is fault 6: two serve and two
// work processes share Postgres and Redis; 10% of the deliveries are
// repeated (possibly to the other receiver) and some people's opt-in and
// later withdrawal arrive in the reverse order (about 5% of the
// deliveries). Every request is processed exactly once and every person
// ends in the state of their latest submission (by occurrence, not
// arrival), as the admin API shows it.
func TestTwoServeTwoWorkDuplicatesReordered(t *testing.T) {
	const (
		sweepAfter = 3 * time.Second
		rate       = 30.0
	)
	e := newEnv(t, harness.Config{SweepAfter: sweepAfter}, harness.RedisOptions{})
	s1 := e.c.StartServe("serve-1")
	s2 := e.c.StartServe("serve-2")
	e.c.StartWork("work-1")
	e.c.StartWork("work-2")
	ctx := context.Background()
	s := harness.NewSender(s1.URL(), s2.URL())
	w := harness.NewWorkload("scale", 6)
	events := w.Stream(harness.Mix{People: 200, WithdrawFrac: 0.5, DupFrac: 0.10, ReorderFrac: 0.16})

	// What each person's latest submission says, and how the stream
	// was made.
	latest := map[string]harness.Event{}
	seen := map[string]bool{}
	dups, reordered := 0, 0
	for _, ev := range events {
		if seen[ev.EventID] {
			dups++
			continue
		}
		seen[ev.EventID] = true
		if prev, ok := latest[ev.Email]; ok && ev.OccurredAt.Before(prev.OccurredAt) {
			reordered++
		}
		if prev, ok := latest[ev.Email]; !ok || ev.OccurredAt.After(prev.OccurredAt) {
			latest[ev.Email] = ev
		}
	}
	t.Logf("%d deliveries: %d duplicates (%.0f%%), %d out of order (%.0f%%), %d people",
		len(events), dups, 100*float64(dups)/float64(len(events)), reordered, 100*float64(reordered)/float64(len(events)), len(latest))

	s.Drive(ctx, events, rate)
	e.waitDone("two receivers, two workers", s.Records(), 60*time.Second)
	rep := e.audit(s.Records())
	if rep.DuplicatesAnswered < dups {
		t.Errorf("%d duplicate deliveries sent, only %d answered as duplicates", dups, rep.DuplicatesAnswered)
	}

	// Final states through the admin API, alternating receivers.
	wrong := 0
	for i, email := range sortedKeys(latest) {
		p := s1
		if i%2 == 1 {
			p = s2
		}
		code, body, err := p.Get(ctx, "/v1/subjects/"+url.PathEscape(email))
		if err != nil || code != 200 {
			t.Errorf("GET /v1/subjects/<person %d>: %d %v", i, code, err)
			wrong++
			continue
		}
		var v struct {
			Consents []struct {
				Channel, Brand, Purpose, Status string
				Allowed                         bool
			} `json:"consents"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("subject view: %v", err)
		}
		want := latest[email].Status()
		got := "none"
		allowed := false
		for _, c := range v.Consents {
			if c.Channel == "email" && c.Brand == harness.Brand && c.Purpose == "marketing" {
				got, allowed = c.Status, c.Allowed
			}
		}
		if got != want || (want == "withdrawn" && allowed) {
			wrong++
			if wrong <= 5 {
				t.Errorf("person %d (%s): email marketing state %q (allowed %v), want %q (latest submission by occurrence)", i, describe(events, email), got, allowed, want)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d people in the wrong final state", wrong, len(latest))
	}
}

// describe says how a person's submissions were delivered (no address).
func describe(events []harness.Event, email string) string {
	var out string
	for _, e := range events {
		if e.Email == email {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%s@%s", e.Status(), e.OccurredAt.Format("15:04:05.000"))
		}
	}
	return "delivered " + out
}

func sortedKeys(m map[string]harness.Event) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
