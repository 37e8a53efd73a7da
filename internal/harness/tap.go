package harness

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tap is an HTTP front for a fake provider that counts requests as they
// arrive and while they are in flight (a fake's own call log records a
// call only once answered, and a hanging call never is while it hangs).
// Point a destination's base_url at Tap.URL.
type Tap struct {
	// URL is the front's base URL.
	URL string

	inflight atomic.Int64
	mu       sync.Mutex
	arrivals []time.Time
	srv      *httptest.Server
}

// NewTap serves h behind a counting front on a loopback port until the
// test ends.
func NewTap(t testing.TB, h http.Handler) *Tap {
	tp := &Tap{}
	tp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		tp.arrivals = append(tp.arrivals, time.Now())
		tp.mu.Unlock()
		tp.inflight.Add(1)
		defer tp.inflight.Add(-1)
		h.ServeHTTP(w, r)
	}))
	tp.URL = tp.srv.URL
	t.Cleanup(func() {
		tp.srv.CloseClientConnections()
		tp.srv.Close()
	})
	return tp
}

// InFlight is how many requests are being answered now.
func (tp *Tap) InFlight() int { return int(tp.inflight.Load()) }

// Arrivals returns the arrival time of every request so far.
func (tp *Tap) Arrivals() []time.Time {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]time.Time(nil), tp.arrivals...)
}

// ArrivalsBetween counts requests that arrived in [from, to).
func (tp *Tap) ArrivalsBetween(from, to time.Time) int {
	n := 0
	for _, a := range tp.Arrivals() {
		if !a.Before(from) && a.Before(to) {
			n++
		}
	}
	return n
}
