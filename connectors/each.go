package connectors

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// InFlight is how many requests a connector's per-address calls (a
// read-back, a lift, a push the provider takes one address at a time)
// keep in flight at once. The destination's rate limiter
// (destinations[].rate_limit) still paces them: InFlight bounds the
// concurrency, the limiter the rate. 8 stays under the strictest published
// concurrency limit among the providers (Mailchimp: 10 simultaneous
// connections per user,
// https://mailchimp.com/developer/marketing/docs/fundamentals/#api-limits).
const InFlight = 8

// Each calls call(ctx, i) for every i in [0, n), at most InFlight at a
// time, and returns the n answers in index order. The first call to fail
// ends Each: the context of the calls still running is cancelled, no
// call is started after it (not even one already waiting for a slot), and
// its error is returned as is with no answer: a per-address Check or Lift
// fails as a whole. When ctx ends first, Each returns ctx's error, never
// answers with some missing; once every call has answered, the answers
// are returned even if ctx has ended since. call must not write shared
// state: it answers through its return value only. A call that panics
// fails as an error wrapping ErrPanic (Recover): the calls run on Each's
// goroutines, where no handler's recovery (asynq's) would catch it, and
// the process would end.
func Each[T any](ctx context.Context, n int, call func(ctx context.Context, i int) (T, error)) ([]T, error) {
	out := make([]T, n)
	var answered atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(InFlight)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				// A call failed (or ctx ended) while this one waited
				// for a slot: it is not started.
				return err
			}
			v, err := Recover(func() (T, error) { return call(gctx, i) })
			if err != nil {
				return err
			}
			out[i] = v
			answered.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if answered.Load() != int64(n) {
		// ctx ended before every call was started: report it rather than
		// answers that are missing. (Every call answered: the answers
		// stand, even if ctx ended since.)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, context.Canceled
	}
	return out, nil
}

// CheckByAddress reads back batch one distinct address at a time
// (GroupByAddress), at most InFlight addresses at once, with check, and
// returns one Status per suppression: its address's Status with the
// suppression's ID, in first-seen address order. The first check to fail
// ends it, as Each does: its error is returned as is, with no Status.
func CheckByAddress(ctx context.Context, batch []Suppression, check func(ctx context.Context, addr string) (Status, error)) ([]Status, error) {
	return byAddress(ctx, batch, check, func(s *Status, id int64) { s.ID = id })
}

// LiftByAddress lifts batch one distinct address at a time, at most
// InFlight addresses at once, with lift, and returns one Result per
// suppression, as CheckByAddress does.
func LiftByAddress(ctx context.Context, batch []Suppression, lift func(ctx context.Context, addr string) (Result, error)) ([]Result, error) {
	return byAddress(ctx, batch, lift, func(r *Result, id int64) { r.ID = id })
}

func byAddress[T any](ctx context.Context, batch []Suppression, call func(ctx context.Context, addr string) (T, error), setID func(*T, int64)) ([]T, error) {
	addrs, ids := GroupByAddress(batch)
	answers, err := Each(ctx, len(addrs), func(ctx context.Context, i int) (T, error) { return call(ctx, addrs[i]) })
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(batch))
	for i, a := range addrs {
		for _, id := range ids[AddrKey(a)] {
			v := answers[i]
			setID(&v, id)
			out = append(out, v)
		}
	}
	return out, nil
}

// ErrPanic is wrapped by the error of a call that panicked (Recover).
var ErrPanic = errors.New("connector call panicked")

// Recover calls call and returns its answer, or, when it panics, an error
// wrapping ErrPanic with the panic's text redacted (Redact: no address).
// For the goroutines a connector starts, which a task handler's own
// recovery does not cover.
func Recover[T any](call func() (T, error)) (v T, err error) {
	defer func() {
		if x := recover(); x != nil {
			var zero T
			v, err = zero, fmt.Errorf("%w: %s", ErrPanic, Redact(fmt.Sprint(x), ""))
		}
	}()
	return call()
}
