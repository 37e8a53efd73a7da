package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/internal/tracing"
	"github.com/consentsync/consentsync/store"
)

// handleWebhook is POST /webhooks/{source} (docs/design.md §5.1):
//
//	404 unknown source; 413 body over server.body_limit; 401 bad or stale
//	signature; 400 unparseable body; 503 Postgres unavailable (the sender
//	retries); otherwise 202 {"id", "duplicate"} once the raw request is
//	committed to the inbox (or the sender-specific answer, e.g. Salesforce's
//	SOAP Ack). Never 5xx for bad input.
//
// Order: verify on the raw bytes, parse (to refuse what can never be
// processed and to find the dedup key), commit, answer, enqueue. A failed
// enqueue still answers 202: the row is committed and the sweeper picks it up.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	w, r, span := s.startReceive(w, r)
	defer span.End()
	name := r.PathValue("source")
	src, ok := s.Sources[name]
	label := name
	if !ok {
		label = "unknown" // the path is the sender's: never a label
	}
	defer func() { s.Metrics.WebhookAck.WithLabelValues(label).Observe(time.Since(arrived).Seconds()) }()
	if !ok {
		s.Metrics.WebhooksReceived.WithLabelValues("unknown", "unknown_source").Inc()
		span.SetAttributes(tracing.AttrOutcome.String("unknown_source"))
		writeError(w, http.StatusNotFound, "unknown source")
		return
	}
	span.SetAttributes(tracing.AttrSource.String(name))
	count := func(outcome string) {
		s.Metrics.WebhooksReceived.WithLabelValues(name, outcome).Inc()
		span.SetAttributes(tracing.AttrOutcome.String(outcome))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.Config.Server.BodyLimit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			count("too_large")
			writeError(w, http.StatusRequestEntityTooLarge, "body over "+strconv.FormatInt(s.Config.Server.BodyLimit, 10)+" bytes")
			return
		}
		count("malformed")
		writeError(w, http.StatusBadRequest, "could not read body")
		return
	}
	req := &connectors.Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header, Body: body, ReceivedAt: s.now().UTC()}
	if err := src.Verify(req, s.now()); err != nil {
		// Schemes that must read the body to authenticate it (Salesforce's
		// org id, Mailgun's signature block) report an unreadable body as
		// malformed: 400, as for any unparseable body.
		if errors.Is(err, connectors.ErrMalformed) {
			count("malformed")
			writeError(w, http.StatusBadRequest, "unparseable body")
			return
		}
		count("unauthorized")
		s.Logger.Warn("webhook rejected", "source", name, "reason", err.Error())
		writeError(w, http.StatusUnauthorized, "signature verification failed")
		return
	}
	batch, err := src.Parse(req)
	if err != nil {
		count("malformed")
		s.Logger.Warn("webhook unparseable", "source", name, "reason", err.Error())
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	dedup := batch.DedupKey
	switch {
	case dedup == "":
		sum := sha256.Sum256(body)
		dedup = "sha256:" + hex.EncodeToString(sum[:])
	case len(dedup) > 200 || !utf8.ValidString(dedup) || strings.IndexByte(dedup, 0) >= 0:
		// A sender-chosen id Postgres text cannot hold, or too long for the
		// unique index: its hash identifies the delivery just as well.
		sum := sha256.Sum256([]byte(dedup))
		dedup = "key-sha256:" + hex.EncodeToString(sum[:])
	}
	headers, _ := json.Marshal(keptHeaders(r.Header))
	id, dup, err := s.Inbox.InsertInbound(r.Context(), store.Inbound{
		Source: name, Kind: s.kinds[name], DedupKey: dedup, Method: r.Method, Path: r.URL.Path,
		Query: redactQuery(r.URL.RawQuery), Headers: headers, Body: body, TraceParent: tracing.TraceParent(r.Context()),
	})
	if err != nil {
		count("unavailable")
		s.Logger.Error("inbox write failed", "source", name, "err", err)
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusServiceUnavailable, "storage unavailable, retry later")
		return
	}
	span.SetAttributes(tracing.AttrInboundID.Int64(id), tracing.AttrDuplicate.Bool(dup))
	if dup {
		count("duplicate")
	} else {
		count("accepted")
		if err := s.Enqueuer.Inbound(r.Context(), id); err != nil {
			count("enqueue_failed")
			s.Logger.Warn("enqueue failed; the sweeper will pick the event up", "inbound", id, "err", err)
		}
	}
	if rs, ok := src.(connectors.Responder); ok {
		rs.Respond(w, strconv.FormatInt(id, 10), dup)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": strconv.FormatInt(id, 10), "duplicate": dup})
}

// handleProbe answers a sender's GET check of its webhook URL (Mailchimp),
// for sources that need one; others get 405.
func (s *Server) handleProbe(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("source")
	src, ok := s.Sources[name]
	if !ok {
		writeError(w, http.StatusNotFound, "unknown source")
		return
	}
	p, ok := src.(connectors.Prober)
	if !ok {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	p.Probe(w, &connectors.Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header})
}

// handleToken is POST /webhooks/{source}/oauth/token: the OAuth 2.0 token
// endpoint of sources whose sender authenticates with client credentials
// (connectors.TokenIssuer: Didomi). 404 for an unknown source or one that
// issues no tokens; 413 for a body over server.body_limit. Nothing is
// stored.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("source")
	src, ok := s.Sources[name]
	ti, issues := src.(connectors.TokenIssuer)
	if !ok || !issues {
		writeError(w, http.StatusNotFound, "no token endpoint for this source")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.Config.Server.BodyLimit))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	ti.IssueToken(w, &connectors.Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header, Body: body, ReceivedAt: s.now().UTC()}, s.now())
}

// droppedHeaders are never stored: credentials and hop-by-hop noise.
var droppedHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Connection": true,
	"X-Api-Key": true, "Api-Key": true, "X-Auth-Token": true,
}

// keptHeaders returns the headers stored with a request: everything a
// connector may need to parse it again (content type, sender ids and
// timestamps, signatures as proof of authenticity), minus credentials.
func keptHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if droppedHeaders[http.CanonicalHeaderKey(k)] {
			continue
		}
		out[k] = v
	}
	return out
}

// secretParams are query parameters that carry a shared secret (Mailchimp's
// key, Postmark's token): stored as "redacted".
var secretParams = []string{"key", "token", "secret", "api_key", "apikey", "access_token", "signature", "sig"}

func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return ""
	}
	for k := range q {
		for _, p := range secretParams {
			if strings.EqualFold(k, p) {
				q[k] = []string{"redacted"}
			}
		}
	}
	return q.Encode()
}
