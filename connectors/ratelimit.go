package connectors

import (
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
// error (transient: retried by the worker). Each wait, refused or not, is
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
	c.HTTPClient.Transport = &limitedTransport{base: base, lim: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)), name: destination, observe: d.RateWait}
	d.HTTP = c
	return d
}

type limitedTransport struct {
	base    http.RoundTripper
	lim     *rate.Limiter
	name    string
	observe func(destination string, wait time.Duration)
}

func (t *limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	err := t.lim.Wait(r.Context())
	if t.observe != nil {
		t.observe(t.name, time.Since(start))
	}
	if err != nil {
		return nil, err
	}
	return t.base.RoundTrip(r)
}
