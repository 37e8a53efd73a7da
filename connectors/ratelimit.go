package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// WithRateLimit returns d with an HTTP client whose every request (each
// attempt of a push, a read-back or a lift, including a connector's
// per-address calls) first waits for a token of a limiter of perSecond
// requests per second with a burst of burst (at least 1). perSecond <= 0
// returns d unchanged. The limiter is this process's: several worker
// processes each get their own, so set destinations[].rate_limit to the
// provider's limit divided by the number of worker processes.
//
// A request whose context ends while it waits fails with the context's
// error, one whose wait would outlast its context's deadline is refused at
// once (both transient: retried by the worker, not in place). The attempt's timeout
// (destinations[].timeout, http.Client.Timeout) starts once the token is
// granted: time spent queued behind the limiter never times a call out, so
// a connector's concurrent per-address calls (InFlight) under a low rate
// all get their full timeout. Each wait, refused or not, is
// reported to d.RateWait under destination (the configured name).
func (d Deps) WithRateLimit(destination string, perSecond float64, burst int) Deps {
	if perSecond <= 0 {
		return d
	}
	if d.HTTP == nil {
		d.HTTP = NewHTTPClient(HTTPOptions{})
	}
	c := d.cloneHTTP(0) // the limiter is this destination's alone
	base := c.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.HTTPClient.Transport = &limitedTransport{base: base, lim: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)),
		name: destination, observe: d.RateWait, timeout: c.HTTPClient.Timeout}
	c.HTTPClient.Timeout = 0 // applied by the transport, after the wait
	d.HTTP = c
	return d
}

// errRateRefused is a limiter's refusal of a request whose wait for a
// token would outlast its context's deadline. It is not retried in place
// (NewHTTPClient): a retry would be refused the same way, its backoff only
// bringing the deadline nearer.
var errRateRefused = errors.New("rate limit: no token before the call's deadline")

// limitedTransport waits for a token, then makes the attempt with its own
// timeout (0: none).
type limitedTransport struct {
	base    http.RoundTripper
	lim     *rate.Limiter
	name    string
	observe func(destination string, wait time.Duration)
	timeout time.Duration
}

// withTimeout is t with another attempt timeout, sharing t's limiter.
func (t *limitedTransport) withTimeout(d time.Duration) *limitedTransport {
	c := *t
	c.timeout = d
	return &c
}

func (t *limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	err := t.lim.Wait(r.Context())
	if t.observe != nil {
		t.observe(t.name, time.Since(start))
	}
	if err != nil {
		if r.Context().Err() == nil {
			// Refused at once: the wait would outlast the deadline.
			err = fmt.Errorf("%w: %w", errRateRefused, err)
		}
		return nil, err
	}
	if t.timeout <= 0 {
		return t.base.RoundTrip(r)
	}
	// As http.Client.Timeout: the deadline covers the answer's body too,
	// so it is released when the body is closed.
	ctx, cancel := context.WithTimeout(r.Context(), t.timeout)
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody ends an attempt's timeout context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
