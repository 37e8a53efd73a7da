// Package postmarkfake stands in for Postmark's Suppressions API in tests,
// the demo's sandbox and benchmarks. It serves Postmark's paths at the
// root, so a destination's base_url is the server's URL:
//
//	POST /message-streams/{stream}/suppressions         suppress (200, per-address Status)
//	GET  /message-streams/{stream}/suppressions/dump    list, filtered by EmailAddress (200)
//	POST /message-streams/{stream}/suppressions/delete  reactivate (200, per-address Status)
//
// Reference: https://postmarkapp.com/developer/api/suppressions-api and
// the error codes of https://postmarkapp.com/developer/api/overview#error-codes.
//
// Every path checks "X-Postmark-Server-Token" first: a wrong or missing
// token is Postmark's 401 {"ErrorCode": 10, "Message": ...}. A stream the
// server does not have is 422 ErrorCode 1226; a POST without a JSON
// Content-Type is 422 ErrorCode 409, a body that is not JSON ErrorCode 402;
// more than MaxPerRequest addresses is 422 ErrorCode 403 (Postmark
// documents the limit of 50, not the code of its refusal: the fake picks
// "Incompatible JSON"). Suppressions take effect at once here unless
// WithDelay models Postmark's asynchronous processing (Postmark applies
// them within about a minute). Script (from the embedded
// fakeapi.Recorder) queues answers given before any of this. A Fake is
// safe for concurrent use.
package postmarkfake

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

// DefaultToken is the server token New accepts unless WithToken says
// otherwise.
const DefaultToken = "postmark-demo-server-token"

// MaxPerRequest is how many addresses one create or delete call may carry
// (https://postmarkapp.com/developer/api/suppressions-api: "up to 50").
const MaxPerRequest = 50

// Postmark's suppression reasons and per-address statuses.
const (
	ReasonManual        = "ManualSuppression"
	ReasonHardBounce    = "HardBounce"
	ReasonSpamComplaint = "SpamComplaint"

	StatusSuppressed = "Suppressed"
	StatusDeleted    = "Deleted"
	StatusFailed     = "Failed"
)

// Postmark API error codes the fake answers
// (https://postmarkapp.com/developer/api/overview#error-codes).
const (
	CodeBadToken          = 10
	CodeInvalidJSON       = 402
	CodeIncompatibleJSON  = 403
	CodeJSONRequired      = 409
	CodeRateLimit         = 429
	CodeStreamNotFound    = 1226
	CodeMaintenance       = 100
	msgNoAuthority        = "You do not have the required authority to change this suppression."
	msgInvalidAddress     = "An invalid email address was provided."
	msgBadToken           = "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token."
	msgStreamNotFound     = "The message stream for the provided 'ID' was not found."
	msgTooManySuppression = "Too many suppressions in one request: at most 50."
)

type entry struct {
	email, reason, origin string
	at                    time.Time
}

// Fake is one Postmark server's message streams and their suppressions.
// Use New.
type Fake struct {
	fakeapi.Recorder

	mu      sync.Mutex
	token   string
	streams map[string]map[string]entry // stream → lower-cased address → entry
	refuse  map[string]bool             // lower-cased addresses a create answers Failed for
	delay   time.Duration               // how long a created suppression stays out of the dump
}

// WithDelay models Postmark's asynchronous processing: a suppression
// created through the API (Origin "Customer") shows in the dump only delay
// after the create call, by the fake's clock (Recorder.Now), as Postmark
// says requests "can take a minute until they become active"
// (https://github.com/ActiveCampaign/postmark-php/wiki/Managing-Suppressions).
// A delete still removes it at once. Default 0: at once.
func WithDelay(delay time.Duration) Option { return func(f *Fake) { f.delay = delay } }

// Option configures New.
type Option func(*Fake)

// WithToken sets the accepted server token ("" accepts none).
func WithToken(t string) Option { return func(f *Fake) { f.token = t } }

// WithStreams replaces the server's streams (default "outbound" and
// "broadcast").
func WithStreams(ids ...string) Option {
	return func(f *Fake) {
		f.streams = map[string]map[string]entry{}
		for _, id := range ids {
			f.streams[id] = map[string]entry{}
		}
	}
}

// WithSuppressed starts the fake with emails suppressed on stream for
// reason (ReasonManual, ReasonHardBounce, ReasonSpamComplaint).
func WithSuppressed(stream, reason string, emails ...string) Option {
	return func(f *Fake) { f.Suppress(stream, reason, emails...) }
}

// WithSuppressedAt starts the fake with email suppressed on stream for
// reason since at (its CreatedAt): a suppression older than consentsync.
func WithSuppressedAt(stream, reason, email string, at time.Time) Option {
	return func(f *Fake) { f.SuppressAt(stream, reason, email, at) }
}

// SuppressAt suppresses email on stream for reason since at, no call
// recorded (see WithSuppressedAt).
func (f *Fake) SuppressAt(stream, reason, email string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suppress(stream, reason, "Recipient", email)
	e := f.streams[stream][fakeapi.Lower(email)]
	e.at = at.UTC()
	f.streams[stream][fakeapi.Lower(email)] = e
}

// New returns a fake accepting DefaultToken, with the streams "outbound"
// and "broadcast" and no suppression.
func New(opts ...Option) *Fake {
	f := &Fake{token: DefaultToken, refuse: map[string]bool{}}
	WithStreams("outbound", "broadcast")(f)
	f.ErrorBody = func(status int) string {
		switch status {
		case http.StatusUnauthorized:
			return ErrorBody(CodeBadToken, msgBadToken)
		case http.StatusTooManyRequests:
			return ErrorBody(CodeRateLimit, "Rate limit exceeded.")
		case http.StatusUnprocessableEntity:
			return ErrorBody(CodeIncompatibleJSON, "Incompatible JSON.")
		case http.StatusServiceUnavailable:
			return ErrorBody(CodeMaintenance, "Postmark is offline for maintenance.")
		}
		return ErrorBody(0, http.StatusText(status))
	}
	f.ContentType = "application/json"
	f.SecretHeaders = []string{"X-Postmark-Server-Token"}
	for _, o := range opts {
		o(f)
	}
	return f
}

// ErrorBody is Postmark's error body: {"ErrorCode": code, "Message": msg}.
func ErrorBody(code int, msg string) string {
	return mustJSON(map[string]any{"ErrorCode": code, "Message": msg})
}

// SetToken replaces the accepted server token ("" accepts none).
func (f *Fake) SetToken(t string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = t
}

// Suppress adds emails to stream's suppressions with reason, as Postmark
// itself would after a bounce or a complaint (no call recorded). The
// stream is created when missing. An address already suppressed keeps its
// first reason.
func (f *Fake) Suppress(stream, reason string, emails ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suppress(stream, reason, "Recipient", emails...)
}

func (f *Fake) suppress(stream, reason, origin string, emails ...string) {
	m := f.streams[stream]
	if m == nil {
		m = map[string]entry{}
		f.streams[stream] = m
	}
	for _, e := range emails {
		k := fakeapi.Lower(e)
		if _, ok := m[k]; !ok {
			m[k] = entry{email: strings.TrimSpace(e), reason: reason, origin: origin, at: f.clock()}
		}
	}
}

func (f *Fake) clock() time.Time {
	if f.Recorder.Now != nil {
		return f.Recorder.Now().UTC()
	}
	return time.Now().UTC()
}

// Refuse makes create calls answer Status "Failed" (with Postmark's "You do
// not have the required authority" message) for these addresses, to test
// per-address failures.
func (f *Fake) Refuse(emails ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range emails {
		f.refuse[fakeapi.Lower(e)] = true
	}
}

// Forget removes email's suppression from stream behind consentsync's back
// (an operator reactivating it in Postmark's UI), to test drift detection.
// It reports whether the address was suppressed.
func (f *Fake) Forget(stream, email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.streams[stream][fakeapi.Lower(email)]
	delete(f.streams[stream], fakeapi.Lower(email))
	return ok
}

// Suppressed returns stream's suppressed addresses as first sent, sorted.
func (f *Fake) Suppressed(stream string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for _, e := range f.streams[stream] {
		out = append(out, e.email)
	}
	sort.Strings(out)
	return out
}

// Reason returns email's suppression reason on stream, "" when it is not
// suppressed.
func (f *Fake) Reason(stream, email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams[stream][fakeapi.Lower(email)].reason
}

// IsSuppressed reports whether email (any case) is suppressed on stream.
func (f *Fake) IsSuppressed(stream, email string) bool { return f.Reason(stream, email) != "" }

// Authorized reports whether r carries the accepted server token.
func (f *Fake) Authorized(r *http.Request) bool {
	f.mu.Lock()
	want := f.token
	f.mu.Unlock()
	got := strings.TrimSpace(r.Header.Get("X-Postmark-Server-Token"))
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Handler serves Postmark's paths at the root, through Recorder.Wrap
// (every call recorded; scripted answers first).
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /message-streams/{stream}/suppressions", f.create)
	mux.HandleFunc("GET /message-streams/{stream}/suppressions/dump", f.dump)
	mux.HandleFunc("POST /message-streams/{stream}/suppressions/delete", f.remove)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody(0, "Not found."))
	})
	return f.Wrap(mux)
}

func unprocessable(w http.ResponseWriter, code int, msg string) {
	fakeapi.WriteRaw(w, http.StatusUnprocessableEntity, "application/json", ErrorBody(code, msg))
}

// begin checks the token and the stream; for a POST, the JSON content type
// and the body, returning its addresses.
func (f *Fake) begin(w http.ResponseWriter, r *http.Request) (stream string, emails []string, ok bool) {
	if !f.Authorized(r) {
		fakeapi.WriteRaw(w, http.StatusUnauthorized, "application/json", ErrorBody(CodeBadToken, msgBadToken))
		return "", nil, false
	}
	stream = r.PathValue("stream")
	f.mu.Lock()
	_, known := f.streams[stream]
	f.mu.Unlock()
	if !known {
		unprocessable(w, CodeStreamNotFound, msgStreamNotFound)
		return "", nil, false
	}
	if r.Method != http.MethodPost {
		return stream, nil, true
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		unprocessable(w, CodeJSONRequired, "JSON required: set the Content-Type and Accept headers to application/json.")
		return "", nil, false
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	emails, err := ParseRequest(body)
	if err != nil {
		unprocessable(w, CodeInvalidJSON, "Invalid JSON.")
		return "", nil, false
	}
	if len(emails) > MaxPerRequest {
		unprocessable(w, CodeIncompatibleJSON, msgTooManySuppression)
		return "", nil, false
	}
	return stream, emails, true
}

// ParseRequest reads a create or delete body {"Suppressions":
// [{"EmailAddress": e}, ...]} and returns the addresses in order.
func ParseRequest(body []byte) ([]string, error) {
	var req struct {
		Suppressions []struct{ EmailAddress string } `json:"Suppressions"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(req.Suppressions))
	for _, s := range req.Suppressions {
		out = append(out, s.EmailAddress)
	}
	return out, nil
}

type itemStatus struct {
	EmailAddress string  `json:"EmailAddress"`
	Status       string  `json:"Status"`
	Message      *string `json:"Message"`
}

func failed(e, msg string) itemStatus {
	return itemStatus{EmailAddress: e, Status: StatusFailed, Message: &msg}
}

// create answers POST .../suppressions: 200 {"Suppressions": [{EmailAddress,
// Status, Message}]} in request order: "Suppressed" (also for an address
// already suppressed, whatever its reason), or "Failed" with a message for
// an invalid address or one Refuse names. New suppressions are
// ManualSuppression with Origin "Customer".
func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	stream, emails, ok := f.begin(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	out := make([]itemStatus, 0, len(emails))
	for _, e := range emails {
		switch {
		case !fakeapi.LooksLikeEmail(strings.TrimSpace(e)):
			out = append(out, failed(e, msgInvalidAddress))
		case f.refuse[fakeapi.Lower(e)]:
			out = append(out, failed(e, msgNoAuthority))
		default:
			f.suppress(stream, ReasonManual, "Customer", e)
			out = append(out, itemStatus{EmailAddress: e, Status: StatusSuppressed})
		}
	}
	f.mu.Unlock()
	fakeapi.WriteJSON(w, http.StatusOK, map[string]any{"Suppressions": out})
}

// remove answers POST .../suppressions/delete: "Deleted" for each address
// (also one that was not suppressed), "Failed" for a SpamComplaint
// suppression (Postmark does not let a customer reactivate those) or an
// invalid address.
func (f *Fake) remove(w http.ResponseWriter, r *http.Request) {
	stream, emails, ok := f.begin(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	out := make([]itemStatus, 0, len(emails))
	for _, e := range emails {
		k := fakeapi.Lower(e)
		switch {
		case !fakeapi.LooksLikeEmail(strings.TrimSpace(e)):
			out = append(out, failed(e, msgInvalidAddress))
		case f.streams[stream][k].reason == ReasonSpamComplaint:
			out = append(out, failed(e, msgNoAuthority))
		default:
			delete(f.streams[stream], k)
			out = append(out, itemStatus{EmailAddress: e, Status: StatusDeleted})
		}
	}
	f.mu.Unlock()
	fakeapi.WriteJSON(w, http.StatusOK, map[string]any{"Suppressions": out})
}

// dump answers GET .../suppressions/dump: 200 {"Suppressions":
// [{EmailAddress, SuppressionReason, Origin, CreatedAt}]}, filtered by the
// EmailAddress, SuppressionReason and Origin query parameters (any case;
// the date filters are ignored), sorted by address.
func (f *Fake) dump(w http.ResponseWriter, r *http.Request) {
	stream, _, ok := f.begin(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	email, reason, origin := fakeapi.Lower(get(q, "EmailAddress")), get(q, "SuppressionReason"), get(q, "Origin")
	var from, to time.Time
	for _, d := range []struct {
		name string
		t    *time.Time
	}{{"fromdate", &from}, {"todate", &to}} {
		if v := get(q, d.name); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				fakeapi.WriteRaw(w, http.StatusUnprocessableEntity, "application/json", ErrorBody(CodeIncompatibleJSON, "Invalid "+d.name+": use YYYY-MM-DD."))
				return
			}
			*d.t = t
		}
	}
	inRange := func(at time.Time) bool {
		day := at.UTC().Truncate(24 * time.Hour)
		return (from.IsZero() || !day.Before(from)) && (to.IsZero() || !day.After(to))
	}
	f.mu.Lock()
	var list []entry
	now := f.clock()
	for k, e := range f.streams[stream] {
		if e.origin == "Customer" && now.Sub(e.at) < f.delay {
			continue // not yet applied
		}
		if (email == "" || k == email) && (reason == "" || strings.EqualFold(reason, e.reason)) && (origin == "" || strings.EqualFold(origin, e.origin)) && inRange(e.at) {
			list = append(list, e)
		}
	}
	f.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].email < list[j].email })
	out := make([]map[string]string, 0, len(list))
	for _, e := range list {
		out = append(out, map[string]string{"EmailAddress": e.email, "SuppressionReason": e.reason, "Origin": e.origin, "CreatedAt": e.at.Format(time.RFC3339)})
	}
	fakeapi.WriteJSON(w, http.StatusOK, map[string]any{"Suppressions": out})
}

// get reads a query parameter whatever the case of its name (Postmark's
// own examples write "fromdate" and "EmailAddress").
func get(q map[string][]string, name string) string {
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"ErrorCode":0,"Message":"postmarkfake: cannot encode answer"}`
	}
	return string(b)
}
