package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/consentsync/consentsync/internal/tracing"
)

// HTTPOptions configures NewHTTPClient.
type HTTPOptions struct {
	// Timeout bounds one HTTP attempt, from dialling to the last byte of the
	// answer's body (http.Client.Timeout; default 10s). Destinations get
	// their own (config destinations[].timeout, see Deps.HTTPClient).
	Timeout time.Duration
	// WaitCap is the longest server-requested wait (Retry-After, reset
	// headers) honoured inside one call (default 30s). A longer wait ends the
	// call with a *RetryAfterError so the task is rescheduled instead.
	WaitCap time.Duration
	// RetryMax is how many times one call is retried in place (default 3).
	RetryMax int
	// MinWait and MaxWait bound the exponential backoff between in-place
	// retries when the server names no wait (defaults 200ms and 5s).
	MinWait, MaxWait time.Duration
	// Tracing, when set, makes each HTTP request a client span carrying a
	// traceparent header to the provider (tracing.Transport: method, host
	// and status only); nil: tracing off.
	Tracing trace.TracerProvider
}

// NewHTTPClient returns the go-retryablehttp client every connector uses:
// transport errors, 408, 425, 429 and 5xx (but 501) are retried in place up
// to RetryMax times, honouring Retry-After (seconds or HTTP-date, RFC 9110
// §10.2.3) and X-RateLimit-Reset (epoch seconds) up to WaitCap; it never
// logs (its default logger prints URLs).
//
// Timeouts are the exception: an attempt whose Timeout elapses is not
// retried in place, and Do returns an error wrapping ErrTimeout. A timeout
// is ambiguous (the provider may have received and applied the call, and
// only its answer was late), so a provider that does not answer in time
// is called once per call, not RetryMax+1 times, and holds the call for one
// Timeout, not RetryMax+1 of them. The task is retried later by the worker
// (asynq's backoff), which calls the provider again: that repeat is safe
// only because every Destination's provider call is idempotent (see
// Destination), so a suppression is delivered at least once, and a repeat
// changes nothing at the provider. A call that fails with a 408, 429 or 5xx
// answer is retried in place on the same grounds.
func NewHTTPClient(o HTTPOptions) *retryablehttp.Client {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.WaitCap == 0 {
		o.WaitCap = 30 * time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 3
	}
	if o.MinWait == 0 {
		o.MinWait = 200 * time.Millisecond
	}
	if o.MaxWait == 0 {
		o.MaxWait = 5 * time.Second
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Timeout: o.Timeout, Transport: tracing.Transport(http.DefaultTransport.(*http.Transport).Clone(), o.Tracing),
		CheckRedirect: sameOriginRedirect}
	c.Logger = nil
	c.RetryMax = o.RetryMax
	c.RetryWaitMin, c.RetryWaitMax = o.MinWait, o.MaxWait
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	waitCap := o.WaitCap
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if err != nil {
			if errors.Is(err, errRateRefused) {
				return false, nil // refused again until the deadline
			}
			if isTimeout(err) {
				// Ambiguous: the provider may have applied the call.
				// Not retried in place (see NewHTTPClient).
				return false, nil
			}
			return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
		}
		if !Transient(resp.StatusCode) || resp.StatusCode == http.StatusConflict {
			return false, nil
		}
		if d, ok := ServerWait(resp.Header, time.Now()); ok && d > waitCap {
			return false, nil // let the caller reschedule
		}
		return true, nil
	}
	c.Backoff = func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
		if resp != nil {
			if d, ok := ServerWait(resp.Header, time.Now()); ok {
				return min(d, waitCap)
			}
		}
		return retryablehttp.DefaultBackoff(lo, hi, attempt, nil)
	}
	return c
}

// sameOriginRedirect follows a redirect only to the scheme and host of the
// original request, at most 10 hops. Go drops Authorization on a redirect
// to another host but keeps every other header, and providers carry their
// keys in their own (api-key, X-Postmark-Server-Token): a redirect away
// (a mistyped or hijacked base_url) would hand the key to that host, or
// send it in clear on an https → http hop. Such a redirect is not
// followed: the 3xx itself is the answer, a permanent error in Do.
func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return http.ErrUseLastResponse
	}
	return nil
}

// Transient reports whether an HTTP status is worth retrying: 408, 409,
// 425, 429 and 5xx other than 501. Any other 4xx is permanent
// (docs/wire-formats.md, "Retry policy").
func Transient(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusConflict,
		status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	case status >= 500 && status != http.StatusNotImplemented:
		return true
	}
	return false
}

// MaxServerWait bounds any wait a server asks for (ServerWait): a
// destination is held (every withdrawal to it waits) at most this long per
// failed call, whatever its headers say.
const MaxServerWait = 7 * 24 * time.Hour

// BoundWait is d within [0, MaxServerWait]: how every wait a provider or a
// connector names (ServerWait, a RetryAfterError) is bounded before a
// destination is held for it.
func BoundWait(d time.Duration) time.Duration { return min(max(d, 0), MaxServerWait) }

// ServerWait reads how long the server asked us to wait: Retry-After as
// delay-seconds or an HTTP-date (RFC 9110 §10.2.3), else X-RateLimit-Reset
// as epoch seconds (SendGrid). Negative waits count as zero; every form is
// bounded by MaxServerWait (a reset in epoch milliseconds, a date years
// ahead, a clock far off would otherwise hold a destination for ever).
func ServerWait(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return BoundWait(time.Duration(min(s, int64(MaxServerWait/time.Second))) * time.Second), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return BoundWait(t.Sub(now)), true
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 1e9 {
			return BoundWait(time.Unix(s, 0).Sub(now)), true // Sub saturates: no overflow
		}
	}
	return 0, false
}

// MaxAnswer is how much of an answer's body Do reads: 1 MiB.
const MaxAnswer = 1 << 20

// Response is a provider's answer: status, headers and up to MaxAnswer
// bytes of body.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Truncated: the body was longer than MaxAnswer; Body holds its
	// first MaxAnswer bytes (a listing must then ask for less).
	Truncated bool
}

// Snippet returns at most ReceiptMax bytes of the body, with secret and
// email addresses removed (see Redact).
func (r *Response) Snippet(secret string) string {
	return Redact(string(r.Body), secret)
}

// redactScan is how much of a text Redact reads before masking: enough
// beyond ReceiptMax that an address starting inside the kept bytes is read
// whole (an addr-spec has at most 254 bytes, 3 times that percent-encoded).
const redactScan = ReceiptMax + 2048

// Redact makes provider or transport text fit for an error, a log line,
// last_error or a receipt: it replaces secret (when not empty) with
// "[redacted]", masks every email address (MaskAddresses), bounds the result
// to ReceiptMax bytes and drops invalid UTF-8.
func Redact(s, secret string) string {
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	if len(s) > redactScan {
		s = s[:redactScan]
	}
	s = MaskAddresses(s)
	if len(s) > ReceiptMax {
		s = s[:ReceiptMax]
	}
	return strings.ToValidUTF8(s, "")
}

// Do sends req through c and classifies the answer:
//   - 2xx: the Response, nil; a 2xx whose body could not be read whole
//     (the timeout elapsed, the connection dropped): a transient error,
//     wrapping ErrTimeout for a timeout;
//   - transient status (see Transient) still failing after in-place
//     retries: a *RetryAfterError when the server named a wait, else a
//     plain transient error;
//   - any other status: an error wrapping ErrPermanent;
//   - an attempt whose timeout elapsed (see NewHTTPClient): a transient
//     error wrapping ErrTimeout;
//   - other transport failures: a transient error.
//
// Error strings name the method, the path, the status and a redacted body
// snippet (see Redact: no secret, no email address), never the query (it
// may carry a key).
func Do(c *retryablehttp.Client, req *retryablehttp.Request, secret string) (*Response, error) {
	what := req.Method + " " + Redact(req.URL.Path, secret)
	resp, err := c.Do(req)
	if err != nil {
		if isTimeout(err) && req.Context().Err() == nil {
			return nil, fmt.Errorf("%s: %w", what, ErrTimeout)
		}
		return nil, fmt.Errorf("%s: %s", what, transportReason(err))
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if len(body) > MaxAnswer {
		r.Body, r.Truncated = body[:MaxAnswer], true
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if rerr != nil {
			// Cut short (the attempt's timeout, a dropped
			// connection): the part read is not the answer.
			if isTimeout(rerr) && req.Context().Err() == nil {
				return nil, fmt.Errorf("%s: HTTP %d: reading the answer: %w", what, resp.StatusCode, ErrTimeout)
			}
			return nil, fmt.Errorf("%s: HTTP %d: reading the answer: %s", what, resp.StatusCode, transportReason(rerr))
		}
		return r, nil
	}
	cause := fmt.Errorf("%s: HTTP %d: %s", what, resp.StatusCode, r.Snippet(secret))
	if Transient(resp.StatusCode) {
		if d, ok := ServerWait(resp.Header, time.Now()); ok {
			return r, &RetryAfterError{Delay: d, Err: cause}
		}
		return r, cause
	}
	return r, fmt.Errorf("%w: %w", ErrPermanent, cause)
}

// isTimeout reports whether err is an attempt's timeout
// (http.Client.Timeout, a dial or TLS handshake timeout).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transportReason describes a transport error without its URL.
func transportReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err.Error()
	}
	s := err.Error()
	if i := strings.Index(s, "://"); i >= 0 {
		return "transport error"
	}
	return s
}
