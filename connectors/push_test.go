package connectors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// bisectCall is a provider that refuses a whole call holding any of bad,
// and counts its calls; cancel, when set, is called before call number
// cancelAt, which then fails as a call cut off by the context would.
type bisectCall struct {
	bad      map[string]bool
	calls    int
	cancelAt int
	cancel   context.CancelFunc
	ids      map[string][]int64
}

func (b *bisectCall) call(ctx context.Context, addrs []string) ([]Result, bool, error) {
	b.calls++
	if b.cancel != nil && b.calls == b.cancelAt {
		b.cancel()
		return nil, false, ctx.Err()
	}
	for _, a := range addrs {
		if b.bad[a] {
			if len(addrs) > 1 {
				return nil, true, nil
			}
			var out []Result
			for _, id := range b.ids[AddrKey(a)] {
				out = append(out, Result{ID: id, Err: Permanent("refused")})
			}
			return out, false, nil
		}
	}
	var out []Result
	for _, a := range addrs {
		for _, id := range b.ids[AddrKey(a)] {
			out = append(out, Result{ID: id})
		}
	}
	return out, false, nil
}

func bisectBatch(n int) ([]string, map[string][]int64) {
	var batch []Suppression
	for i := range n {
		batch = append(batch, Suppression{ID: int64(i), Email: fmt.Sprintf("p%d@example.com", i)})
	}
	return GroupByAddress(batch)
}

func TestBisect(t *testing.T) {
	t.Parallel()
	cases := []struct {
		n     int
		bad   []int
		calls int // at most
	}{
		{1, nil, 1},
		{500, nil, 1},
		{1, []int{0}, 1},
		{2, []int{1}, 3},
		{500, []int{317}, 19},
		{500, []int{0, 499}, 37},
		{8, []int{0, 1, 2, 3, 4, 5, 6, 7}, 15},
	}
	for _, c := range cases {
		addrs, ids := bisectBatch(c.n)
		b := &bisectCall{bad: map[string]bool{}, ids: ids}
		for _, i := range c.bad {
			b.bad[addrs[i]] = true
		}
		res, err := Bisect(context.Background(), addrs, ids, b.call)
		if err != nil || len(res) != c.n {
			t.Fatalf("%+v: %v, %d results", c, err, len(res))
		}
		for _, r := range res {
			if want := slices.Contains(c.bad, int(r.ID)); want != errors.Is(r.Err, ErrPermanent) || (!want && r.Err != nil) {
				t.Fatalf("%+v: result %+v", c, r)
			}
		}
		if b.calls > c.calls {
			t.Fatalf("%+v: %d calls", c, b.calls)
		}
	}
}

// TestBisectContextEnds: the first call's failure is the whole call's
// error; a later one, when the context ended, keeps the finished Results
// and gives the others transient ones; a later failure with the context
// still alive is the whole call's error.
func TestBisectContextEnds(t *testing.T) {
	t.Parallel()
	addrs, ids := bisectBatch(8)
	ctx, cancel := context.WithCancel(context.Background())
	b := &bisectCall{bad: map[string]bool{addrs[3]: true}, ids: ids, cancelAt: 1, cancel: cancel}
	if _, err := Bisect(ctx, addrs, ids, b.call); err == nil {
		t.Fatal("first call failed: want an error")
	}

	ctx, cancel = context.WithCancel(context.Background())
	b = &bisectCall{bad: map[string]bool{addrs[3]: true}, ids: ids, cancelAt: 4, cancel: cancel}
	res, err := Bisect(ctx, addrs, ids, b.call)
	if err != nil || len(res) != 8 {
		t.Fatalf("%v %+v", err, res)
	}
	for _, r := range res {
		switch {
		case r.ID <= 1 && r.Err != nil:
			t.Fatalf("finished: %+v", r)
		case r.ID > 1 && (r.Err == nil || errors.Is(r.Err, ErrPermanent)):
			t.Fatalf("not finished: %+v", r)
		}
	}

	failing := func(n int) func(context.Context, []string) ([]Result, bool, error) {
		calls := 0
		return func(ctx context.Context, a []string) ([]Result, bool, error) {
			calls++
			if calls == n {
				return nil, false, errors.New("HTTP 503")
			}
			return nil, len(a) > 1, nil
		}
	}
	if _, err := Bisect(context.Background(), addrs, ids, failing(3)); err == nil {
		t.Fatal("a later 503 with time left: want an error")
	}
}

func TestPushByAddressContextEnds(t *testing.T) {
	t.Parallel()
	var batch []Suppression
	for i := range 5 {
		batch = append(batch, Suppression{ID: int64(i), Email: fmt.Sprintf("p%d@example.com", i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	res, err := PushByAddress(ctx, batch, 2, func(ctx context.Context, b []Suppression) ([]Result, error) {
		calls++
		if calls == 2 {
			cancel()
			return nil, ctx.Err()
		}
		var out []Result
		for _, s := range b {
			out = append(out, Result{ID: s.ID})
		}
		return out, nil
	})
	if err != nil || len(res) != 5 {
		t.Fatalf("%v %+v", err, res)
	}
	for _, r := range res {
		if (r.ID < 2) != (r.Err == nil) || errors.Is(r.Err, ErrPermanent) {
			t.Fatalf("result %+v", r)
		}
	}
}

func TestSettling(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		sent time.Time
		want bool
	}{
		{time.Time{}, false},
		{now, true},
		{now.Add(-time.Minute), true},
		{now.Add(-2 * time.Minute), false},
		{now.Add(-time.Hour), false},
		{now.Add(time.Minute), true},
		{now.Add(time.Hour), false},
	} {
		if got := Settling(Suppression{SentAt: c.sent}, now, 2*time.Minute); got != c.want {
			t.Errorf("sent %v: %v, want %v", c.sent, got, c.want)
		}
	}
}
