package connectors

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// A destination's limiter refuses a request whose wait would outlast its
// context, and is the destination's own: the shared client is not paced.
func TestWithRateLimit(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	var mu sync.Mutex
	var waits []time.Duration
	var names []string
	shared := Deps{HTTP: NewHTTPClient(HTTPOptions{RetryMax: -1}), RateWait: func(d string, w time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		names, waits = append(names, d), append(waits, w)
	}}
	limited := shared.WithRateLimit("esp-a", 0.01, 1) // one request, then one per 100 s
	if limited.HTTP == shared.HTTP {
		t.Fatal("WithRateLimit changed the shared client")
	}
	get := func(c *retryablehttp.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(limited.HTTPClient(5 * time.Second)); err != nil {
		t.Fatalf("first request: %v", err)
	}
	if err := get(limited.HTTPClient(5 * time.Second)); err == nil {
		t.Fatal("second request within the same 100 s was not refused by the limiter")
	}
	for range 3 {
		if err := get(shared.HTTP); err != nil {
			t.Fatalf("shared client paced: %v", err)
		}
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("server saw %d requests, want 4", n)
	}
	// Both paced requests reported their wait under the destination's
	// name (the refused one too); the shared client's none.
	mu.Lock()
	if len(waits) != 2 || names[0] != "esp-a" || names[1] != "esp-a" {
		t.Errorf("rate waits reported = %v %v, want two for esp-a", names, waits)
	}
	mu.Unlock()
	if same := shared.WithRateLimit("esp-a", 0, 0); same.HTTP != shared.HTTP {
		t.Error("rate 0 must leave the client as is")
	}
}

// Requests queued behind a destination's limiter get their whole timeout
// once their token comes: eight concurrent calls at 10/s (the last waits
// ~700ms) under a 300ms timeout all succeed, and the timeout still ends a
// call whose answer is slow.
func TestRateLimitWaitIsNotTheTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	d := Deps{HTTP: NewHTTPClient(HTTPOptions{RetryMax: -1})}.WithRateLimit("esp-a", 10, 1)
	c := d.HTTPClient(300 * time.Millisecond)
	call := func(path string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		r, err := Do(c, req, "")
		if err == nil && string(r.Body) != `{"ok":true}` {
			return errors.New("body " + string(r.Body))
		}
		return err
	}
	errs := make(chan error, InFlight)
	for range InFlight {
		go func() { errs <- call("/fast") }()
	}
	for range InFlight {
		if err := <-errs; err != nil {
			t.Errorf("a call queued behind the limiter failed: %v", err)
		}
	}
	if err := call("/slow"); !errors.Is(err, ErrTimeout) {
		t.Errorf("slow answer: err = %v, want ErrTimeout", err)
	}
	// The client of another timeout shares the limiter.
	if other := d.HTTPClient(time.Second); other.HTTPClient.Transport.(*limitedTransport).lim != c.HTTPClient.Transport.(*limitedTransport).lim {
		t.Error("a client with another timeout got its own limiter")
	}
}

// A request the limiter refuses (its wait would outlast the call's
// deadline) is not retried in place: each retry would be refused the same
// way, after a backoff that only brings the deadline nearer, and each
// would count as another wait.
func TestRateLimitRefusalNotRetried(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	var waits atomic.Int32
	d := Deps{HTTP: NewHTTPClient(HTTPOptions{RetryMax: 3}), RateWait: func(string, time.Duration) { waits.Add(1) }}.
		WithRateLimit("esp-a", 0.01, 1) // one request, then one per 100 s
	c := d.HTTPClient(0)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		_, err := Do(c, req, "")
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	// Retried in place, the refusal would wait again per retry (RateWait)
	// and back off between: the waits say so without a clock.
	err := call()
	if err == nil {
		t.Fatal("second request within 100 s was not refused")
	}
	if errors.Is(err, ErrPermanent) {
		t.Errorf("refusal %v is permanent", err)
	}
	if n := waits.Load(); n != 2 {
		t.Errorf("%d waits for two calls: the refused one was retried in place", n)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}
