// Package progress carries a progress reporter through a context to the
// long operations an operator starts (replay, repush, drift,
// verify-ledger), the way net/http/httptrace carries a ClientTrace: the
// operations' signatures do not change, and without a reporter reporting
// costs one context lookup. The command line renders it (internal/cli:
// a bar on a terminal, plain lines otherwise).
package progress

import "context"

// Func is told how far an operation is: done items of total (total < 0:
// not known in advance), and what is being done now (a phase or a
// destination name; never personal data). It is called from the
// operation's goroutine, possibly very often: it must be cheap and throttle
// its own output.
type Func func(phase string, done, total int64)

type key struct{}

// With returns ctx carrying f.
func With(ctx context.Context, f Func) context.Context {
	return context.WithValue(ctx, key{}, f)
}

// Enabled reports whether ctx carries a reporter (so an operation may skip
// work done only to report, such as counting the total first).
func Enabled(ctx context.Context) bool {
	f, _ := ctx.Value(key{}).(Func)
	return f != nil
}

// Report tells ctx's reporter, if any, that done of total items of phase
// are done.
func Report(ctx context.Context, phase string, done, total int64) {
	if f, _ := ctx.Value(key{}).(Func); f != nil {
		f(phase, done, total)
	}
}
