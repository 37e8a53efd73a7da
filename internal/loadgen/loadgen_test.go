package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/form"
	"github.com/consentsync/consentsync/connectors/sendgrid"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/internal/fixtures"
)

// The bundled form fixture was signed by its sender: Sign must reproduce
// its X-Signature.
func TestFormSignMatchesFixture(t *testing.T) {
	all, err := fixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	for _, fx := range all {
		if fx.Name != "form-signup" {
			continue
		}
		body = fx.Body
		var src struct {
			Secrets   []string         `json:"secrets"`
			Signature config.Signature `json:"signature"`
		}
		if err := json.Unmarshal(fx.Source, &src); err != nil || len(src.Secrets) == 0 {
			t.Fatalf("fixture source: %v", err)
		}
		f := Form{Secret: src.Secrets[0], Header: src.Signature.Header, Algorithm: src.Signature.Algorithm, Encoding: src.Signature.Encoding}
		name, value := f.Sign(fx.Body)
		if name != "X-Signature" || value != fx.Request.Headers["X-Signature"] {
			t.Errorf("Sign = %s: %s, want the fixture's %s", name, value, fx.Request.Headers["X-Signature"])
		}
	}
	if body == nil {
		t.Fatal("fixture form-signup not found")
	}
	if n, v := (Form{Secret: "tok"}).Sign(body); n != "Authorization" || v != "Bearer tok" {
		t.Errorf("bearer: %s: %s", n, v)
	}
}

func toConnReq(t *testing.T, r *http.Request) *connectors.Request {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &connectors.Request{Method: r.Method, Path: r.URL.Path, Header: r.Header, Body: b, ReceivedAt: time.Now()}
}

// Requests pass consentsync's own form connector: verified, and mapped to a
// grant, a withdrawal, and one signal per item of a bulk body.
func TestFormAgainstConnector(t *testing.T) {
	for _, sig := range []*config.Signature{
		{Header: "X-Signature", Algorithm: "sha256", Encoding: "hex"},
		{Header: "X-Sig", Algorithm: "sha512", Encoding: "base64", Prefix: "sha512="},
		nil,
	} {
		cfg := config.Source{Name: "bench-form", Kind: "form", Brand: "acme", Secrets: []string{"s3cret"}, Signature: sig,
			Fields: &config.Fields{Email: "email", OccurredAt: "submitted_at", EventID: "event_id", WordingVersion: "consent_version",
				Consents: []config.ConsentField{{Field: "newsletter", Channel: "email", Purpose: "marketing", Withdrawal: true}}}}
		src, err := form.NewSource(cfg, connectors.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		f := Form{URL: "http://x/webhooks/bench-form", Secret: "s3cret", Extra: map[string]any{"consent_version": "v1"}}
		if sig != nil {
			f.Header, f.Algorithm, f.Encoding, f.Prefix = sig.Header, sig.Algorithm, sig.Encoding, sig.Prefix
		}
		at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
		for _, optIn := range []bool{true, false} {
			req, err := f.Request("A.User@example.com", optIn, at)
			if err != nil {
				t.Fatal(err)
			}
			cr := toConnReq(t, req)
			if err := src.Verify(cr, time.Now()); err != nil {
				t.Fatalf("%v: verify: %v", sig, err)
			}
			wrong := *cr
			wrong.Body = append([]byte(nil), cr.Body...)
			wrong.Body[len(wrong.Body)-2] ^= 1
			if sig != nil && src.Verify(&wrong, time.Now()) == nil {
				t.Fatalf("%v: a changed body verified", sig)
			}
			b, err := src.Parse(cr)
			if err != nil {
				t.Fatal(err)
			}
			want := consent.StatusWithdrawn
			if optIn {
				want = consent.StatusGranted
			}
			if len(b.Signals) != 1 || b.Signals[0].Status != want || !b.Signals[0].OccurredAt.Equal(at) {
				t.Fatalf("optIn %v: signals %+v, want one %s at %v", optIn, b.Signals, want, at)
			}
			if b.DedupKey != f.EventID("A.User@example.com", optIn, at) {
				t.Errorf("dedup key %q, want the event id", b.DedupKey)
			}
		}
		evs := []FormEvent{{"a@example.com", true, at}, {"b@example.com", false, at}, {"c@example.com", true, at.Add(time.Second)}}
		req, err := f.BulkRequest(evs)
		if err != nil {
			t.Fatal(err)
		}
		cr := toConnReq(t, req)
		if err := src.Verify(cr, time.Now()); err != nil {
			t.Fatalf("bulk verify: %v", err)
		}
		b, err := src.Parse(cr)
		if err != nil || len(b.Signals) != 3 || b.DedupKey == "" {
			t.Fatalf("bulk: %v, %d signals, key %q; want 3 and a key", err, len(b.Signals), b.DedupKey)
		}
	}
}

func TestSendGridAgainstConnector(t *testing.T) {
	key, pub, err := NewSendGridKey()
	if err != nil {
		t.Fatal(err)
	}
	src, err := sendgrid.NewSource(config.Source{Name: "bench-sg", Kind: "sendgrid", Brand: "acme", Secrets: []string{pub}}, connectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s := SendGridEvents{URL: "http://x/webhooks/bench-sg", Key: key}
	now := time.Now()
	var evs []SendGridEvent
	for _, e := range []string{"a@example.com", "b@example.com"} {
		evs = append(evs, SendGridEvent{Email: e, Event: "unsubscribe", At: now.Add(-time.Minute)})
	}
	req, err := s.Request(evs, now)
	if err != nil {
		t.Fatal(err)
	}
	cr := toConnReq(t, req)
	if err := src.Verify(cr, now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	other, _, _ := NewSendGridKey()
	bad, _ := SendGridEvents{URL: s.URL, Key: other}.Request(evs, now)
	if src.Verify(toConnReq(t, bad), now) == nil {
		t.Fatal("a request signed with another key verified")
	}
	b, err := src.Parse(cr)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 2 || b.Signals[0].Status != consent.StatusWithdrawn {
		t.Fatalf("signals %+v, want 2 withdrawals", b.Signals)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := Percentile(d, q); got != want {
			t.Errorf("p%v = %v, want %v", q, got, want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty: want 0")
	}
}

// Run keeps its schedule (open loop): with one connection and a server
// slower than the interval, requests queue and the intended latency grows
// while the ack latency stays the server's.
func TestRunOpenLoop(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%5 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	gen := func(i int) *http.Request {
		r, _ := http.NewRequest("POST", srv.URL, nil)
		return r
	}
	st := Run(context.Background(), 100, 300*time.Millisecond, 1, gen)
	if len(st.Samples) != 30 || st.Status[202]+st.Status[503] != 30 || st.Status[503] != 6 {
		t.Fatalf("samples %d status %v, want 30 with 6×503", len(st.Samples), st.Status)
	}
	for i, s := range st.Samples {
		if s.I != i || s.Start.Before(s.Scheduled) {
			t.Fatalf("sample %d: %+v", i, s)
		}
	}
	if ack, intended := st.AckPercentile(0.99), st.IntendedPercentile(0.99); ack > 200*time.Millisecond || intended < 150*time.Millisecond {
		t.Errorf("ack p99 %v, intended p99 %v: want the queueing in intended only", ack, intended)
	}

	// Enough connections: on schedule, rate ≈ 100/s, nil ends early.
	st = Run(context.Background(), 100, 300*time.Millisecond, 8, func(i int) *http.Request {
		if i == 20 {
			return nil
		}
		return gen(i)
	})
	if len(st.Samples) != 20 || st.IntendedPercentile(1) > 200*time.Millisecond {
		t.Errorf("%d samples, intended max %v", len(st.Samples), st.IntendedPercentile(1))
	}

	st = RunClosed(context.Background(), 200*time.Millisecond, 4, gen)
	if st.OK() < 10 || st.Rate() <= 0 || st.Errors != 0 {
		t.Errorf("closed loop: ok %d rate %.0f errors %d", st.OK(), st.Rate(), st.Errors)
	}
}
