package connectors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEachOrderAndWidth: answers come back in index order whatever order
// the calls finish in, and never more than InFlight calls run at once —
// while, given calls that wait for one another, InFlight do run together.
func TestEachOrderAndWidth(t *testing.T) {
	t.Parallel()
	var running, peak atomic.Int32
	const n = 50
	got, err := Each(context.Background(), n, func(ctx context.Context, i int) (int, error) {
		r := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		time.Sleep(time.Duration((n-i)%7) * time.Millisecond) // finish out of order
		return i * i, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d answers, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i*i {
			t.Fatalf("answer %d = %d, want %d", i, v, i*i)
		}
	}
	if p := peak.Load(); p > InFlight || p < 2 {
		t.Errorf("at most %d calls ran at once, want between 2 and InFlight (%d)", p, InFlight)
	}
}

// TestEachFirstErrorEnds: the first failure is returned as is, with no
// answers; calls still running see their context cancelled and no call
// starts after it.
func TestEachFirstErrorEnds(t *testing.T) {
	t.Parallel()
	boom := &RetryAfterError{Delay: time.Second, Err: errors.New("HTTP 429")}
	var started, cancelled atomic.Int32
	full := make(chan struct{}) // closed once InFlight calls run
	got, err := Each(context.Background(), 1000, func(ctx context.Context, i int) (string, error) {
		if started.Add(1) == InFlight {
			close(full)
		}
		if i == 3 {
			<-full // fail with every slot taken, so that calls are running
			return "", boom
		}
		select {
		case <-ctx.Done():
			cancelled.Add(1)
			return "", ctx.Err()
		case <-time.After(5 * time.Second):
			return fmt.Sprint(i), nil
		}
	})
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra != boom {
		t.Fatalf("error %v, want the failing call's own", err)
	}
	if got != nil {
		t.Errorf("answers %v beside an error", got)
	}
	if s := started.Load(); s != InFlight {
		t.Errorf("%d calls started, want %d (none after the failure)", s, InFlight)
	}
	if c := cancelled.Load(); c != InFlight-1 {
		t.Errorf("%d running calls saw their context cancelled, want the %d beside the failing one", c, InFlight-1)
	}
}

// TestEachCancelledContext: a context already ended starts no call and
// is reported, never as answers missing.
func TestEachCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	got, err := Each(ctx, 10, func(context.Context, int) (int, error) { calls++; return 1, nil })
	if !errors.Is(err, context.Canceled) || got != nil || calls != 0 {
		t.Errorf("Each on an ended context: %v, %v, %d calls; want context.Canceled, nothing, 0 calls", got, err, calls)
	}
}

// TestEachAnswersStandAfterLateCancel: when every call has answered and
// ctx ends only then (the last call's answer races the caller's deadline),
// the answers are returned: dropping them would repeat lifts done.
func TestEachAnswersStandAfterLateCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	got, err := Each(ctx, 3, func(_ context.Context, i int) (int, error) {
		if n.Add(1) == 3 {
			cancel() // the last call ends ctx as it answers
		}
		return i * 10, nil
	})
	if err != nil || len(got) != 3 || got[2] != 20 {
		t.Errorf("Each = %v, %v; want [0 10 20], nil", got, err)
	}
}

// TestCheckByAddress: one call per distinct address (case and spaces
// aside), its Status copied to each of that address's suppressions.
func TestCheckByAddress(t *testing.T) {
	t.Parallel()
	batch := []Suppression{{ID: 1, Email: "a@x.fr"}, {ID: 2, Email: "b@x.fr"}, {ID: 3, Email: " A@X.fr"}}
	var calls atomic.Int32
	got, err := CheckByAddress(context.Background(), batch, func(_ context.Context, a string) (Status, error) {
		calls.Add(1)
		return Status{Suppressed: a == "a@x.fr", Receipt: "read " + a}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d calls for 2 distinct addresses", calls.Load())
	}
	want := []Status{{ID: 1, Suppressed: true, Receipt: "read a@x.fr"}, {ID: 3, Suppressed: true, Receipt: "read a@x.fr"}, {ID: 2, Receipt: "read b@x.fr"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

// TestEachPanic: a per-address call that panics (a connector bug on an
// answer it did not expect) fails Each with an error, as it failed the
// task when the calls ran in the worker's own goroutine (asynq recovers a
// handler's panic), instead of ending the whole process from one of
// Each's goroutines. The panic's text is redacted: no address.
func TestEachPanic(t *testing.T) {
	t.Parallel()
	// One panic per run, so that each assertion is about the panic it
	// names (with two, which ends Each first is the scheduler's choice).
	for _, c := range []struct {
		name  string
		panic func()
	}{
		{"runtime error", func() {
			var m map[string]int
			m["x"] = 1 // a nil map
		}},
		{"panic naming an address", func() { panic("unexpected answer for jane.doe@example.com") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Each(context.Background(), 20, func(ctx context.Context, i int) (int, error) {
				if i == 5 {
					c.panic()
				}
				return i, nil
			})
			if !errors.Is(err, ErrPanic) {
				t.Fatalf("Each of a panicking call = %v, want an error wrapping ErrPanic", err)
			}
			if strings.Contains(err.Error(), "jane.doe@example.com") {
				t.Errorf("error %q names the address", err)
			}
		})
	}
	_, err := CheckByAddress(context.Background(), []Suppression{{ID: 1, Email: "a@example.com"}}, func(context.Context, string) (Status, error) {
		var s *Status
		return *s, nil
	})
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("CheckByAddress of a panicking check = %v, want an error wrapping ErrPanic", err)
	}
}
