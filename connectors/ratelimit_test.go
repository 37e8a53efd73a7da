package connectors

import (
	"context"
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
