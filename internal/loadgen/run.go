package loadgen

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// lateGrace is how long after the run's duration scheduled requests may
// still be sent; later ones are Skipped.
const lateGrace = 5 * time.Second

// requestTimeout bounds one request, send to last byte of the answer.
const requestTimeout = 60 * time.Second

// Sample is one request's outcome.
type Sample struct {
	// I is the generator's index.
	I int
	// Scheduled is when it should have been sent (Run; RunClosed: Start),
	// Start when it was, End when its answer was read (or the error came).
	Scheduled, Start, End time.Time
	// Status is the HTTP status, 0 on a transport error.
	Status int
}

// Ack is End - Start.
func (s Sample) Ack() time.Duration { return s.End.Sub(s.Start) }

// Stats is a run's outcome.
type Stats struct {
	// Samples are the requests sent, ordered by I.
	Samples []Sample
	// Status counts answers by status code.
	Status map[int]int
	// Errors counts transport errors (no answer).
	Errors int
	// Skipped counts requests scheduled but never sent (too late).
	Skipped int
	// Elapsed is from the run's start to its last answer.
	Elapsed time.Duration
}

// OK is the number of 2xx answers.
func (s Stats) OK() int {
	n := 0
	for code, c := range s.Status {
		if code >= 200 && code < 300 {
			n += c
		}
	}
	return n
}

// Rate is 2xx answers per second of Elapsed.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK()) / s.Elapsed.Seconds()
}

// AckPercentile is the q-quantile (0..1) of send → answer over answered
// requests (nearest rank on a sorted slice); 0 when none.
func (s Stats) AckPercentile(q float64) time.Duration {
	return percentile(s.durations(func(x Sample) time.Duration { return x.End.Sub(x.Start) }), q)
}

// IntendedPercentile is the q-quantile of scheduled → answer: it includes
// the time a request waited for a free connection.
func (s Stats) IntendedPercentile(q float64) time.Duration {
	return percentile(s.durations(func(x Sample) time.Duration { return x.End.Sub(x.Scheduled) }), q)
}

func (s Stats) durations(f func(Sample) time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(s.Samples))
	for _, x := range s.Samples {
		if x.Status != 0 {
			out = append(out, f(x))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Percentile is the q-quantile (0..1, nearest rank) of d, sorted or not;
// 0 when d is empty.
func Percentile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return percentile(s, q)
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	k = max(0, min(k, len(sorted)-1))
	return sorted[k]
}

// NewClient returns the HTTP client the drivers use: up to conns
// connections to one host, kept alive, no redirects.
func NewClient(conns int) *http.Client {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: t, Timeout: requestTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// send does one request and fills in the sample.
func send(ctx context.Context, c *http.Client, req *http.Request, s *Sample) {
	s.Start = time.Now()
	resp, err := c.Do(req.WithContext(ctx))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.Status = resp.StatusCode
	}
	s.End = time.Now()
}

type collector struct {
	mu      sync.Mutex
	samples []Sample
	skipped int
}

func (c *collector) add(s Sample) {
	c.mu.Lock()
	c.samples = append(c.samples, s)
	c.mu.Unlock()
}

func (c *collector) stats(start time.Time) Stats {
	st := Stats{Samples: c.samples, Status: map[int]int{}, Skipped: c.skipped}
	sort.Slice(st.Samples, func(i, j int) bool { return st.Samples[i].I < st.Samples[j].I })
	last := start
	for _, s := range st.Samples {
		if s.Status == 0 {
			st.Errors++
		} else {
			st.Status[s.Status]++
		}
		if s.End.After(last) {
			last = s.End
		}
	}
	st.Elapsed = last.Sub(start)
	return st
}

// Run sends gen(0), gen(1), ... open loop: request i at start + i/rate
// (rate per second) for duration, over at most concurrency connections.
// gen returning nil ends the run. It returns when every request sent has
// been answered (or ctx is done).
func Run(ctx context.Context, rate float64, duration time.Duration, concurrency int, gen func(i int) *http.Request) Stats {
	if rate <= 0 || concurrency <= 0 {
		return Stats{Status: map[int]int{}}
	}
	client := NewClient(concurrency)
	defer client.CloseIdleConnections()
	type job struct {
		i   int
		at  time.Time
		req *http.Request
	}
	n := int(rate * duration.Seconds())
	jobs := make(chan job, min(max(n, 1), 1<<20))
	var col collector
	col.samples = make([]Sample, 0, n)
	start := time.Now()
	deadline := start.Add(duration + lateGrace)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil || time.Now().After(deadline) {
					col.mu.Lock()
					col.skipped++
					col.mu.Unlock()
					continue
				}
				s := Sample{I: j.i, Scheduled: j.at}
				send(ctx, client, j.req, &s)
				col.add(s)
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		req := gen(i)
		if req == nil {
			break
		}
		jobs <- job{i: i, at: at, req: req}
	}
	close(jobs)
	wg.Wait()
	return col.stats(start)
}

// RunClosed sends gen(0), gen(1), ... back to back on concurrency
// connections for duration (or until gen returns nil): the most the server
// accepts at that concurrency.
func RunClosed(ctx context.Context, duration time.Duration, concurrency int, gen func(i int) *http.Request) Stats {
	client := NewClient(concurrency)
	defer client.CloseIdleConnections()
	var col collector
	var next atomic.Int64
	var genMu sync.Mutex
	start := time.Now()
	end := start.Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(end) {
				i := int(next.Add(1) - 1)
				genMu.Lock()
				req := gen(i)
				genMu.Unlock()
				if req == nil {
					return
				}
				s := Sample{I: i}
				send(ctx, client, req, &s)
				s.Scheduled = s.Start
				col.add(s)
			}
		}()
	}
	wg.Wait()
	return col.stats(start)
}
