package connectors

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Deps are what connectors may use besides their config. Constructors take
// them explicitly; there is no package-level state.
type Deps struct {
	// HTTP calls provider and sender APIs (see NewHTTPClient). Connectors
	// with their own timeout derive their client from it (HTTPClient).
	HTTP *retryablehttp.Client
	// Logger never receives personal data or secrets.
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// RateWait, when set, is told after each rate-limited request to a
	// destination how long it waited for the destination's limiter
	// (WithRateLimit), with the destination's configured name: the
	// worker's consentsync_ratelimit_wait_seconds. It must not block.
	RateWait func(destination string, wait time.Duration)
}

// Clock returns d.Now or time.Now.
func (d Deps) Clock() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// HTTPClient returns the client of a connector whose calls timeout bounds
// (config destinations[].timeout; 0 means "the shared client's own"):
//
//   - d.HTTP nil: a NewHTTPClient with timeout (0: its default, 10s);
//   - timeout 0, or equal to d.HTTP's: d.HTTP itself;
//   - otherwise a client with d.HTTP's retry policy, backoff, wait cap and
//     error handling, and the same transport (so connections stay pooled),
//     whose attempts time out after timeout instead. d.HTTP is not changed.
//
// A timed-out attempt is not retried in place (see NewHTTPClient).
func (d Deps) HTTPClient(timeout time.Duration) *retryablehttp.Client {
	if d.HTTP == nil {
		return NewHTTPClient(HTTPOptions{Timeout: timeout})
	}
	if timeout <= 0 || attemptTimeout(d.HTTP.HTTPClient) == timeout {
		return d.HTTP
	}
	return d.cloneHTTP(timeout)
}

// attemptTimeout is c's per-attempt timeout: the rate-limited transport's
// when it has one, else c.Timeout (0 for a nil c).
func attemptTimeout(c *http.Client) time.Duration {
	if c == nil {
		return 0
	}
	if lt, ok := c.Transport.(*limitedTransport); ok {
		return lt.timeout
	}
	return c.Timeout
}

// cloneHTTP is a copy of d.HTTP (not nil) whose attempts time out after
// timeout (0: d.HTTP's own), with the same transport.
func (d Deps) cloneHTTP(timeout time.Duration) *retryablehttp.Client {
	base := d.HTTP
	hc := &http.Client{Timeout: timeout}
	if base.HTTPClient != nil {
		hc.Transport, hc.CheckRedirect, hc.Jar = base.HTTPClient.Transport, base.HTTPClient.CheckRedirect, base.HTTPClient.Jar
		if timeout == 0 {
			hc.Timeout = base.HTTPClient.Timeout
		}
		if lt, ok := hc.Transport.(*limitedTransport); ok {
			// A rate-limited client times its attempts in the
			// transport, after the limiter's wait (WithRateLimit).
			if timeout != 0 {
				hc.Transport = lt.withTimeout(timeout)
			}
			hc.Timeout = 0
		}
	}
	// Field by field: retryablehttp.Client holds sync.Once values that must
	// not be copied.
	return &retryablehttp.Client{
		HTTPClient:      hc,
		Logger:          base.Logger,
		RetryWaitMin:    base.RetryWaitMin,
		RetryWaitMax:    base.RetryWaitMax,
		RetryMax:        base.RetryMax,
		RequestLogHook:  base.RequestLogHook,
		ResponseLogHook: base.ResponseLogHook,
		CheckRetry:      base.CheckRetry,
		Backoff:         base.Backoff,
		ErrorHandler:    base.ErrorHandler,
		PrepareRetry:    base.PrepareRetry,
	}
}
