package connectors

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// slowServer answers nothing until the client gives up; it counts calls.
func slowServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leave
		select {
		case <-r.Context().Done():
		case <-release: // the test is over
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv, &hits
}

// TestDestinationTimeout: a destination's own timeout (200ms) bounds its
// calls although the shared client would wait an hour, and a timed-out call
// is made once (not retried in place, see NewHTTPClient).
func TestDestinationTimeout(t *testing.T) {
	srv, hits := slowServer(t)
	shared := NewHTTPClient(HTTPOptions{Timeout: time.Hour})
	c := Deps{HTTP: shared}.HTTPClient(200 * time.Millisecond)
	if c == shared || shared.HTTPClient.Timeout != time.Hour {
		t.Fatal("the shared client was not left alone")
	}
	// The call's context ends long after 200ms: an ErrTimeout (rather than a
	// context error) shows the 200ms timeout ended the call.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v3/asm/suppressions/global", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Do(c, req, "")
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want a transient ErrTimeout", err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("calls = %d, want 1 (a timeout is not retried in place)", n)
	}
}

func TestDepsHTTPClient(t *testing.T) {
	shared := NewHTTPClient(HTTPOptions{Timeout: 10 * time.Second, RetryMax: 5})
	d := Deps{HTTP: shared}
	if d.HTTPClient(0) != shared || d.HTTPClient(10*time.Second) != shared {
		t.Error("timeout 0 or the shared one's: want the shared client")
	}
	c := d.HTTPClient(time.Second)
	if c.HTTPClient.Timeout != time.Second || c.RetryMax != 5 || c.HTTPClient.Transport != shared.HTTPClient.Transport || c.CheckRetry == nil {
		t.Errorf("derived client: timeout %s, retries %d", c.HTTPClient.Timeout, c.RetryMax)
	}
	if own := (Deps{}).HTTPClient(3 * time.Second); own.HTTPClient.Timeout != 3*time.Second {
		t.Errorf("no shared client: timeout %s", own.HTTPClient.Timeout)
	}
}

// TestDoBodyCutShort: a 2xx whose body stops coming (the attempt's timeout
// elapses while it is read, or the connection drops) is not an answer: Do
// fails with ErrTimeout (or a transient error), never a Response holding
// the part read, which a connector would take for the provider's answer.
func TestDoBodyCutShort(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte(`{"ok":`))
		w.(http.Flusher).Flush()
		if r.URL.Path == "/drop" {
			panic(http.ErrAbortHandler) // the connection is cut
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	for _, limited := range []bool{false, true} {
		d := Deps{HTTP: NewHTTPClient(HTTPOptions{RetryMax: -1})}
		if limited {
			d = d.WithRateLimit("esp-a", 100, 1)
		}
		c := d.HTTPClient(300 * time.Millisecond)
		for _, path := range []string{"/slow", "/drop"} {
			req, _ := retryablehttp.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+path, nil)
			r, err := Do(c, req, "")
			if err == nil {
				t.Errorf("rate-limited %v %s: Do = %q, nil; want an error", limited, path, r.Body)
				continue
			}
			if errors.Is(err, ErrPermanent) {
				t.Errorf("rate-limited %v %s: %v is permanent", limited, path, err)
			}
			if timeout := errors.Is(err, ErrTimeout); timeout != (path == "/slow") {
				t.Errorf("rate-limited %v %s: err = %v, ErrTimeout %v", limited, path, err, timeout)
			}
		}
	}
}

// A provider call is never redirected to another host or scheme: the 3xx is
// the answer (a permanent error) and the other host never sees the key,
// whichever header carries it; a redirect on the same host is followed.
func TestRedirectStaysOnTheHost(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		case "/moved":
			http.Redirect(w, r, "/here", http.StatusPermanentRedirect)
		case "/here":
			if r.Header.Get("api-key") != "k-secret" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}
	}))
	defer srv.Close()
	c := NewHTTPClient(HTTPOptions{RetryMax: -1})
	call := func(path string) error {
		req, _ := retryablehttp.NewRequest(http.MethodPost, srv.URL+path, []byte(`{}`))
		req.Header.Set("api-key", "k-secret")
		_, err := Do(c, req, "k-secret")
		return err
	}
	err := call("/away")
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "307") {
		t.Errorf("redirect to another host: err = %v, want a permanent HTTP 307", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
	if err := call("/moved"); err != nil {
		t.Errorf("same-host redirect: %v", err)
	}
	// Derived clients (a destination's own timeout) keep the policy.
	d := Deps{HTTP: c}.HTTPClient(time.Second)
	req, _ := retryablehttp.NewRequest(http.MethodGet, srv.URL+"/away", nil)
	if _, err := Do(d, req, ""); !errors.Is(err, ErrPermanent) || elsewhere.Load() != 0 {
		t.Errorf("derived client: err = %v, other host %d requests", err, elsewhere.Load())
	}
}

// TestServerWaitBounded: every form of a provider's requested wait is
// bounded as Retry-After delay-seconds is (MaxServerWait): a reset header
// in milliseconds (read as epoch seconds it lies 50,000 years ahead), a
// proxy's HTTP-date far in the future or a provider clock years off must
// not hold a destination — every withdrawal to it — for centuries.
func TestServerWaitBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"delay-seconds", http.Header{"Retry-After": {"120"}}, 2 * time.Minute},
		{"delay-seconds huge", http.Header{"Retry-After": {"99999999999"}}, MaxServerWait},
		{"HTTP-date near", http.Header{"Retry-After": {now.Add(time.Hour).Format(http.TimeFormat)}}, time.Hour},
		{"HTTP-date years ahead", http.Header{"Retry-After": {now.AddDate(30, 0, 0).Format(http.TimeFormat)}}, MaxServerWait},
		{"reset epoch seconds", http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(now.Add(30*time.Second).Unix(), 10)}}, 30 * time.Second},
		{"reset epoch milliseconds", http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(now.Add(30*time.Second).UnixMilli(), 10)}}, MaxServerWait},
	} {
		got, ok := ServerWait(tt.h, now)
		if !ok || got != tt.want {
			t.Errorf("%s: ServerWait = %v, %v; want %v", tt.name, got, ok, tt.want)
		}
	}
}
