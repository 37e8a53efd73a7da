package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynqmon"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/jobs"
)

// QueueUIPath is where the queue UI (asynqmon) is served on the ops
// listener.
const QueueUIPath = "/ops/queues"

// InboundSources names the source of an inbound event (store.Store), for
// the queue UI's task descriptions.
type InboundSources interface {
	InboundSource(ctx context.Context, id int64) (string, error)
}

// queueUI is asynqmon twice over the same Redis: the full UI for the admin
// token and the read-only one for the viewer (asynqmon.Options.ReadOnly:
// the UI hides every action and its API refuses non-GET requests; guard
// refuses them first with 403). Both describe tasks with taskFormatter and
// are served self-contained (selfContained).
type queueUI struct {
	full, readOnly *asynqmon.HTTPHandler
	role           func(*http.Request) Role
}

func (s *Server) newQueueUI() *queueUI {
	f := &taskFormatter{sources: s.InboundSources}
	o := asynqmon.Options{RootPath: QueueUIPath, RedisConnOpt: s.RedisOpt, PayloadFormatter: f, ResultFormatter: f}
	ro := o
	ro.ReadOnly = true
	return &queueUI{full: asynqmon.New(o), readOnly: asynqmon.New(ro), role: s.RoleOf}
}

func (q *queueUI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := q.readOnly
	if q.role(r) == RoleAdmin {
		h = q.full
	}
	selfContained(h).ServeHTTP(w, r)
}

// Close closes both UIs' Redis connections.
func (q *queueUI) Close() {
	_ = q.full.Close()
	_ = q.readOnly.Close()
}

// queueUICSP lets the queue UI load nothing but its own files: asynqmon's
// page carries inline scripts and its components inline styles, and it
// talks only to its own API. A request to any other host is refused by the
// browser.
const queueUICSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// externalStylesheet matches asynqmon's <link rel="stylesheet"> tags to
// Google Fonts (Roboto and Material Icons). The UI's icons are SVG
// components, so nothing uses Material Icons; without Roboto the page falls
// back to the system's sans-serif font (Material UI's font stack:
// "Roboto", "Helvetica", "Arial", sans-serif).
var externalStylesheet = regexp.MustCompile(`<link[^>]*href="https?://[^"]*"[^>]*/?>`)

// selfContained serves h's pages without any external request and
// without an address: every answer carries queueUICSP; the page itself
// (every GET outside /api/ and /static/ renders asynqmon's index.html)
// loses its links to other hosts; and every answer of the API has its email
// addresses masked (connectors.MaskAddresses) — a task's last error, which
// the formatters do not see, could quote one.
func selfContained(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", queueUICSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		rest := strings.TrimPrefix(r.URL.Path, QueueUIPath)
		api := strings.HasPrefix(rest, "/api/")
		if r.Method != http.MethodGet || strings.HasPrefix(rest, "/static/") {
			h.ServeHTTP(w, r)
			return
		}
		buf := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(buf, r)
		body := buf.body.Bytes()
		switch {
		case api:
			body = []byte(connectors.MaskAddresses(string(body)))
		case strings.HasPrefix(http.DetectContentType(body), "text/html"):
			body = externalStylesheet.ReplaceAll(body, nil)
		}
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(buf.code)
		_, _ = w.Write(body)
	})
}

// bufferedResponse holds an answer until it is rewritten.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

var _ io.Writer = (*bufferedResponse)(nil)

// taskFormatter describes a task for the queue UI by what names the work —
// the inbound event's id and its source, the destination and when its push
// is due — and never shows payload bytes as such: a payload it cannot read
// shows as its type and length only, so no personal data reaches the page
// whatever a task carries. It is asynqmon's PayloadFormatter and
// ResultFormatter.
type taskFormatter struct {
	sources InboundSources

	mu    sync.Mutex
	cache map[int64]string // inbound event id → source (never changes)
}

// maxSourceCache bounds taskFormatter.cache (it is emptied when full).
const maxSourceCache = 4096

// FormatPayload is asynqmon.PayloadFormatter: a JSON object such as
// {"inbound_event": 42, "source": "hubspot-acme"} or {"destination":
// "sendgrid-acme", "due": "2026-01-02T03:04:05.2Z"}.
func (f *taskFormatter) FormatPayload(taskType string, payload []byte) string {
	switch taskType {
	case jobs.TypeInboundProcess:
		var p jobs.InboundPayload
		if json.Unmarshal(payload, &p) == nil && p.ID > 0 {
			v := map[string]any{"inbound_event": p.ID}
			if src := f.source(p.ID); src != "" {
				v["source"] = src
			}
			if p.Again {
				v["again"] = true
			}
			return marshal(v)
		}
	case jobs.TypeSuppressionPush:
		var p jobs.PushPayload
		if json.Unmarshal(payload, &p) == nil && p.Destination != "" {
			v := map[string]any{"destination": p.Destination}
			if p.At > 0 {
				v["due"] = time.UnixMilli(p.At).UTC().Format(time.RFC3339Nano)
			}
			return marshal(v)
		}
	}
	return fmt.Sprintf("(%s payload, %d bytes, not shown)", taskType, len(payload))
}

// FormatResult is asynqmon.ResultFormatter: the length only.
func (f *taskFormatter) FormatResult(_ string, result []byte) string {
	if len(result) == 0 {
		return ""
	}
	return fmt.Sprintf("(%d bytes, not shown)", len(result))
}

// source looks the inbound event's source up (1 s at most), "" when it
// cannot.
func (f *taskFormatter) source(id int64) string {
	if f.sources == nil {
		return ""
	}
	f.mu.Lock()
	src, ok := f.cache[id]
	f.mu.Unlock()
	if ok {
		return src
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	src, err := f.sources.InboundSource(ctx, id)
	if err != nil {
		return ""
	}
	f.mu.Lock()
	if f.cache == nil || len(f.cache) >= maxSourceCache {
		f.cache = map[int64]string{}
	}
	f.cache[id] = src
	f.mu.Unlock()
	return src
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
