package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/consentsync/consentsync/internal/loadgen"
)

// Event is one form submission about one person: an opt-in (the
// newsletter box ticked) or a withdrawal (explicitly unticked). The same
// Event sent twice is a duplicate delivery (same event id, same body).
type Event struct {
	Email string
	// Withdraw: the box is unticked (a withdrawal), else ticked (an opt-in).
	Withdraw bool
	// OccurredAt is the submission's time (submitted_at), in the past so
	// that the receiver does not bring it back to the arrival time.
	OccurredAt time.Time
	// EventID is the submission's id (fields.event_id: the dedup key);
	// EventIDFor(Email, Withdraw, OccurredAt).
	EventID string
}

// Status is the consent status the event sets ("granted" or "withdrawn").
func (e Event) Status() string {
	if e.Withdraw {
		return "withdrawn"
	}
	return "granted"
}

// form is how submissions to FormSource are built and signed: loadgen's
// form requests, with the field names Config.YAML maps.
var form = loadgen.Form{Secret: FormSecret, Header: SignatureHeader, Extra: map[string]any{"consent_version": "chaos-2026-01"}}

// EventIDFor is the event id loadgen gives the submission (email, opt-in,
// time): the same triple is the same event.
func EventIDFor(email string, withdraw bool, at time.Time) string {
	return form.EventID(email, !withdraw, at)
}

// Body is the JSON body posted for e (loadgen.Form.Body).
func (e Event) Body() []byte { return form.Body(e.Email, !e.Withdraw, e.OccurredAt) }

// Sign returns the signature header's name and value for body
// (loadgen.Form.Sign: hex HMAC-SHA256 with FormSecret).
func Sign(body []byte) (name, value string) { return form.Sign(body) }

// Record is the outcome of one POST.
type Record struct {
	Event Event
	// Target is the base URL the request went to.
	Target string
	// Sent is when the request started, Done when its answer (or error)
	// was complete.
	Sent, Done time.Time
	// Status is the HTTP status (0 on a transport error).
	Status int
	// ID and Duplicate are the 202 answer's fields.
	ID        string
	Duplicate bool
	// Err is the transport error, if any; Refused says it was a refused
	// connection (no listener).
	Err     error
	Refused bool
}

// Accepted reports a 202.
func (r Record) Accepted() bool { return r.Status == http.StatusAccepted }

// Sender posts signed form submissions to FormSource on one or more
// consentsync HTTP addresses (round robin) and records every outcome. It
// is safe for concurrent use.
type Sender struct {
	client  *http.Client
	mu      sync.Mutex
	targets []string
	next    int
	records []Record
	// Slow, when > 0, makes every request send its body in two halves this
	// far apart (an in-flight request that lasts that long).
	slow atomic.Int64
}

// NewSender returns a Sender posting to targets (base URLs such as
// Proc.URL()).
func NewSender(targets ...string) *Sender {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 128
	return &Sender{client: &http.Client{Timeout: 20 * time.Second, Transport: tr}, targets: targets}
}

// SetTargets replaces the addresses requests go to.
func (s *Sender) SetTargets(targets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = targets
}

// SetSlowBody makes every later request send its body in two parts d apart
// (0: at once).
func (s *Sender) SetSlowBody(d time.Duration) { s.slow.Store(int64(d)) }

func (s *Sender) target() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.targets[s.next%len(s.targets)]
	s.next++
	return t
}

// Send posts e once, records the outcome and returns it.
func (s *Sender) Send(ctx context.Context, e Event) Record {
	return s.SendTo(ctx, s.target(), e)
}

// SendTo posts e to target (a base URL), records the outcome and returns it.
func (s *Sender) SendTo(ctx context.Context, target string, e Event) Record {
	body := e.Body()
	rec := Record{Event: e, Target: target, Sent: time.Now()}
	var rd io.Reader = bytes.NewReader(body)
	if d := time.Duration(s.slow.Load()); d > 0 {
		rd = &slowReader{b: body, pause: d}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+"/webhooks/"+FormSource, rd)
	if err != nil {
		rec.Err = err
		return s.add(rec)
	}
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/json")
	name, value := Sign(body)
	req.Header.Set(name, value)
	// Deliveries are idempotent (the event id is the dedup key), as a real
	// sender's retries are: Go may then replay a request whose reused
	// keep-alive connection the server closed before reading it.
	req.Header.Set("Idempotency-Key", e.EventID)
	resp, err := s.client.Do(req)
	if err != nil {
		rec.Done, rec.Err, rec.Refused = time.Now(), err, errors.Is(err, syscall.ECONNREFUSED)
		return s.add(rec)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	rec.Done, rec.Status = time.Now(), resp.StatusCode
	if resp.StatusCode == http.StatusAccepted {
		var ans struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(b, &ans); err != nil || ans.ID == "" {
			rec.Err = fmt.Errorf("202 with an unreadable answer %q", b)
		}
		rec.ID, rec.Duplicate = ans.ID, ans.Duplicate
	}
	return s.add(rec)
}

func (s *Sender) add(r Record) Record {
	s.mu.Lock()
	s.records = append(s.records, r)
	s.mu.Unlock()
	return r
}

// Records returns every outcome so far, in completion order.
func (s *Sender) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Drive sends events open loop at rate per second, in order: event i
// starts at start + i/rate whether or not earlier requests have been
// answered (at most 512 in flight). It returns when every request has
// been answered or failed, or ctx ends (the rest is not sent).
func (s *Sender) Drive(ctx context.Context, events []Event, rate float64) {
	start := time.Now()
	sem := make(chan struct{}, 512)
	var wg sync.WaitGroup
	for i, e := range events {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return
			case <-time.After(d):
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func(e Event) {
			defer wg.Done()
			defer func() { <-sem }()
			s.Send(ctx, e)
		}(e)
	}
	wg.Wait()
}

// DriveAsync is Drive in a goroutine; the returned channel is closed when
// it returns.
func (s *Sender) DriveAsync(ctx context.Context, events []Event, rate float64) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); s.Drive(ctx, events, rate) }()
	return done
}

// slowReader yields the first half of b, sleeps pause, then the rest.
type slowReader struct {
	b      []byte
	off    int
	pause  time.Duration
	paused bool
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	half := len(r.b) / 2
	if r.off >= half && !r.paused {
		time.Sleep(r.pause)
		r.paused = true
	}
	end := len(r.b)
	if !r.paused {
		end = half
	}
	n := copy(p, r.b[r.off:end])
	r.off += n
	return n, nil
}

// IsRefused reports whether err is a refused TCP connection.
func IsRefused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && errors.Is(op.Err, syscall.ECONNREFUSED))
}
