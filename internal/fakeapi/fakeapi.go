// Package fakeapi is the common part of the provider fakes that stand in
// for third-party APIs in tests, the demo's sandbox and the bench: call
// recording, scripted answers (a 429 with the provider's own reset header,
// a 503, a permanent error), and JSON helpers. Each vendor's fake
// (connectors/<vendor>/<vendor>fake) owns its paths, authentication, body
// shapes, batch limits and error bodies, following the provider's
// documented contract; it embeds a Recorder and serves through Wrap.
package fakeapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxBody bounds a request body a fake reads (10 MiB).
const MaxBody = 10 << 20

// Answer is a scripted response. An empty Body with Status >= 400 is
// replaced by the fake's own error body for Status (Recorder.ErrorBody).
type Answer struct {
	Status int
	Header http.Header
	Body   string
	// For, when not empty, gives the answer only to a request whose path
	// or query holds For (an address, escaped or not): a connector that
	// reads several addresses at once may ask in any order.
	For string
}

// For returns answers with For set to target (see Answer.For).
func For(target string, answers ...Answer) []Answer {
	out := make([]Answer, len(answers))
	for i, a := range answers {
		a.For = target
		out[i] = a
	}
	return out
}

// RetryAfter is a 429 with "Retry-After: n" (delay-seconds, RFC 9110
// §10.2.3).
func RetryAfter(n int) Answer {
	return Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {strconv.Itoa(n)}}}
}

// TooMany is a 429 carrying the given headers (a provider's own reset
// headers: X-RateLimit-Reset, x-sib-ratelimit-reset, ...).
func TooMany(h http.Header) Answer { return Answer{Status: http.StatusTooManyRequests, Header: h} }

// Status is an answer with code and the fake's error body.
func Status(code int) Answer { return Answer{Status: code} }

// Repeat returns n copies of a.
func Repeat(a Answer, n int) []Answer {
	out := make([]Answer, n)
	for i := range out {
		out[i] = a
	}
	return out
}

// Call is one request a fake received.
type Call struct {
	Method   string
	Path     string
	RawQuery string
	// Header is the request's headers without credentials (Authorization
	// and the headers named in Recorder.Secret).
	Header http.Header
	Body   []byte
	// Status is the status answered; Scripted tells it came from Script.
	Status   int
	Scripted bool
	At       time.Time
}

// Recorder records calls and plays scripted answers. The zero value is
// ready; set ErrorBody, ContentType and SecretHeaders before serving.
type Recorder struct {
	// ErrorBody renders the provider's error body for a status (nil: a
	// plain status text).
	ErrorBody func(status int) string
	// ContentType of scripted error bodies (default application/json).
	ContentType string
	// SecretHeaders are request headers never recorded (beside
	// Authorization): "api-key", "X-Postmark-Server-Token".
	SecretHeaders []string
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu     sync.Mutex
	calls  []Call
	script []Answer
}

// Script queues answers given to the next requests, in order, before the
// fake's normal behaviour (an answer with For only to the requests it
// names).
func (r *Recorder) Script(a ...Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script, a...)
}

// Calls returns the calls received so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Find returns the first of calls with method and path (and rawQuery,
// when not empty): calls a connector makes at once arrive in any order.
func Find(calls []Call, method, path, rawQuery string) (Call, bool) {
	for _, c := range calls {
		if c.Method == method && c.Path == path && (rawQuery == "" || c.RawQuery == rawQuery) {
			return c, true
		}
	}
	return Call{}, false
}

// CallCount is len(Calls()).
func (r *Recorder) CallCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// ResetCalls forgets the calls and the script.
func (r *Recorder) ResetCalls() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls, r.script = nil, nil
}

func (r *Recorder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Wrap records every request to next and answers it from the script when
// one is queued. The body is buffered (at most MaxBody) so next can read it.
func (r *Recorder) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, MaxBody))
		req.Body = io.NopCloser(bytes.NewReader(body))
		h := req.Header.Clone()
		h.Del("Authorization")
		for _, s := range r.SecretHeaders {
			h.Del(s)
		}
		c := Call{Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery, Header: h, Body: body, At: r.now()}
		sw := &statusWriter{ResponseWriter: w}
		if a, ok := r.next(req.URL); ok {
			c.Scripted = true
			r.write(sw, a)
		} else {
			next.ServeHTTP(sw, req)
		}
		c.Status = sw.status
		if c.Status == 0 {
			c.Status = http.StatusOK
		}
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
	})
}

// next takes the first scripted answer for u (one without For, or whose
// For u's path or query holds).
func (r *Recorder) next(u *url.URL) (Answer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, a := range r.script {
		if a.For == "" || strings.Contains(u.Path, a.For) || strings.Contains(u.RawQuery, url.QueryEscape(a.For)) || strings.Contains(u.RawQuery, a.For) {
			r.script = append(r.script[:i:i], r.script[i+1:]...)
			return a, true
		}
	}
	return Answer{}, false
}

func (r *Recorder) write(w http.ResponseWriter, a Answer) {
	for k, vs := range a.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := a.Body
	if body == "" && status >= 400 {
		body = r.Error(status)
	}
	if w.Header().Get("Content-Type") == "" && body != "" {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// Error is the fake's error body for status.
func (r *Recorder) Error(status int) string {
	if r.ErrorBody != nil {
		return r.ErrorBody(status)
	}
	return strings.ToLower(http.StatusText(status))
}

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteRaw answers status with body of content type ctype.
func WriteRaw(w http.ResponseWriter, status int, ctype, body string) {
	if ctype != "" {
		w.Header().Set("Content-Type", ctype)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// Lower is how fakes key addresses: trimmed and lower-cased.
func Lower(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// LooksLikeEmail is the fakes' address check: one @ with text on both
// sides and a dot in the domain, no spaces.
func LooksLikeEmail(e string) bool {
	at := strings.IndexByte(e, '@')
	return at > 0 && at == strings.LastIndexByte(e, '@') && strings.Contains(e[at+1:], ".") && !strings.ContainsAny(e, " \t\r\n")
}
