// Package sandbox is a local stand-in for the provider APIs consentsync
// calls: HubSpot contact lookups, SendGrid global suppressions and Mailchimp
// batch member updates. Each fake follows the provider's documented
// contract (paths, auth, body shape, batch limits, error bodies) closely
// enough that a connector passing against it speaks the real protocol.
//
// Integration tests and `consentsync demo` mount one Sandbox:
//
//	GET  /hubspot/crm/v3/objects/contacts/{id}          Bearer token
//	POST /hubspot/crm/v3/objects/contacts/batch/read    Bearer token
//	POST /sendgrid/v3/asm/suppressions/global           Bearer key
//	GET  /sendgrid/v3/asm/suppressions/global/{email}   Bearer key
//	DELETE /sendgrid/v3/asm/suppressions/global/{email} Bearer key
//	POST /mailchimp/3.0/lists/{list_id}                 basic auth, key as password
//
// so a destination's base_url is {sandbox URL}/sendgrid, .../mailchimp, and
// HubSpot's api_base_url is .../hubspot.
//
// Tests script the next answers per provider (Script), read every call
// (Calls) and the resulting provider state (SendGridSuppressed,
// MailchimpMembers, Snapshot). A Sandbox is safe for concurrent use.
package sandbox

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fixtures"
)

// Provider names one fake; it is also the first path segment it is mounted
// under.
type Provider string

// Providers.
const (
	HubSpot   Provider = "hubspot"
	SendGrid  Provider = "sendgrid"
	Mailchimp Provider = "mailchimp"
)

// Default credentials: the ones consentsync.example.yaml gives the sandbox.
const (
	DefaultHubSpotToken = "pat-demo-hubspot"
	DefaultSendGridKey  = "SG.demo-key"
	DefaultMailchimpKey = "demo-key-us21"
)

// MailchimpMaxMembers is Mailchimp's limit of members per batch call; more
// is refused with 400.
const MailchimpMaxMembers = 500

// maxBody bounds a request body the fakes read.
const maxBody = 10 << 20

// Keys are the credentials each fake accepts. An empty one accepts nothing.
type Keys struct {
	HubSpotToken string
	SendGridKey  string
	MailchimpKey string
}

// Answer is a scripted response. An empty Body is replaced by the
// provider's own error body for Status (HubSpot, SendGrid or Mailchimp
// shape).
type Answer struct {
	Status int
	Header http.Header
	Body   string
}

// TooManyRequestsSeconds is a 429 with "Retry-After: n" (delay-seconds).
func TooManyRequestsSeconds(n int) Answer {
	return Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {strconv.Itoa(n)}}}
}

// TooManyRequestsUntil is a 429 with Retry-After as an HTTP-date (RFC 9110
// §10.2.3; second resolution).
func TooManyRequestsUntil(t time.Time) Answer {
	return Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {t.UTC().Format(http.TimeFormat)}}}
}

// TooManyRequestsReset is SendGrid's 429: X-RateLimit-Limit, -Remaining 0
// and -Reset (epoch seconds), no Retry-After.
func TooManyRequestsReset(t time.Time) Answer {
	return Answer{Status: http.StatusTooManyRequests, Header: http.Header{
		"X-Ratelimit-Limit":     {"600"},
		"X-Ratelimit-Remaining": {"0"},
		"X-Ratelimit-Reset":     {strconv.FormatInt(t.Unix(), 10)},
	}}
}

// Unavailable is a 503 without Retry-After.
func Unavailable() Answer { return Answer{Status: http.StatusServiceUnavailable} }

// BadRequest is a 400 with the provider's error body (permanent).
func BadRequest() Answer { return Answer{Status: http.StatusBadRequest} }

// StatusOnly is an answer with status code and the provider's error body.
func StatusOnly(code int) Answer { return Answer{Status: code} }

// MailchimpThrottled is the 403 Mailchimp sometimes sends instead of 429:
// a problem detail titled "Too Many Requests".
func MailchimpThrottled() Answer {
	return Answer{Status: http.StatusForbidden, Header: http.Header{"Content-Type": {"application/problem+json; charset=utf-8"}},
		Body: mustJSON(mailchimpProblem(http.StatusForbidden, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."))}
}

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
	Provider Provider
	Method   string
	Path     string // as received, e.g. /sendgrid/v3/asm/suppressions/global
	RawQuery string
	// Header is the request's headers without Authorization.
	Header http.Header
	// AuthOK tells whether the credentials were good.
	AuthOK bool
	Body   []byte
	// Emails are the addresses the body names (SendGrid recipient_emails,
	// Mailchimp members[].email_address), in order.
	Emails []string
	// Members are a Mailchimp batch's members as sent.
	Members []MailchimpMember
	// ContactIDs are the HubSpot contact ids asked for.
	ContactIDs []string
	// Status is the status answered; Scripted tells it came from Script.
	Status   int
	Scripted bool
	At       time.Time
}

// MailchimpMember is one entry of a batch call's members.
type MailchimpMember struct {
	EmailAddress string `json:"email_address"`
	Status       string `json:"status,omitempty"`
	StatusIfNew  string `json:"status_if_new,omitempty"`
}

// Member is a Mailchimp list member as the fake stores it.
type Member struct {
	ListID       string `json:"list_id"`
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
}

// State is the providers' state, for assertions and the demo's table.
type State struct {
	// SendGridSuppressed are the globally suppressed addresses, sorted, as
	// first sent.
	SendGridSuppressed []string
	// MailchimpMembers are each list's members, sorted by address.
	MailchimpMembers map[string][]Member
}

// Sandbox holds the fakes' state. Use New.
type Sandbox struct {
	mu         sync.Mutex
	keys       Keys
	contacts   map[string]json.RawMessage
	mergedInto map[string]string // HubSpot id merged away → surviving contact id
	compliance map[string]bool
	forgotten  map[string]bool
	scripts    map[Provider][]Answer
	calls      []Call
	suppressed map[string]string            // lower address → as first sent
	members    map[string]map[string]Member // list id → lower address → member
	now        func() time.Time
}

// Option configures New.
type Option func(*Sandbox)

// WithKeys replaces the default credentials.
func WithKeys(k Keys) Option { return func(s *Sandbox) { s.keys = k } }

// WithHubSpotContacts loads contacts by id, each the JSON object HubSpot
// answers for GET /crm/v3/objects/contacts/{id} (a fixture's
// sandbox.hubspot_contacts). A contact whose properties.hs_merged_object_ids
// (";"-separated) names other ids answers for them too, as a merged
// contact does.
func WithHubSpotContacts(c map[string]json.RawMessage) Option {
	return func(s *Sandbox) {
		for id, v := range c {
			s.contacts[id] = append(json.RawMessage(nil), v...)
			var o struct {
				Properties map[string]any `json:"properties"`
			}
			_ = json.Unmarshal(v, &o)
			merged, _ := o.Properties["hs_merged_object_ids"].(string)
			for m := range strings.SplitSeq(merged, ";") {
				if m = strings.TrimSpace(m); m != "" && m != id {
					s.mergedInto[m] = id
				}
			}
		}
	}
}

// WithMailchimpCompliance marks addresses Mailchimp keeps in a compliance
// state: any batch change to them is refused per member ("… is in a
// compliance state …", error_code ERROR_GENERIC) inside a 200.
func WithMailchimpCompliance(emails ...string) Option {
	return func(s *Sandbox) {
		for _, e := range emails {
			s.compliance[lower(e)] = true
		}
	}
}

// WithMailchimpForgotten marks addresses that were permanently deleted
// ("Forgotten Email Not Subscribed"), refused per member like compliance.
func WithMailchimpForgotten(emails ...string) Option {
	return func(s *Sandbox) {
		for _, e := range emails {
			s.forgotten[lower(e)] = true
		}
	}
}

// WithMailchimpMember adds an existing member to a list (status
// "subscribed", "unsubscribed", "cleaned", "pending" or "transactional").
func WithMailchimpMember(listID, email, status string) Option {
	return func(s *Sandbox) {
		if s.members[listID] == nil {
			s.members[listID] = map[string]Member{}
		}
		s.members[listID][lower(email)] = Member{ListID: listID, EmailAddress: email, Status: status}
	}
}

// WithClock sets the clock used for Call.At (time.Now by default).
func WithClock(now func() time.Time) Option { return func(s *Sandbox) { s.now = now } }

// New returns a Sandbox accepting the Default* credentials, with no contacts,
// suppressions or members.
func New(opts ...Option) *Sandbox {
	s := &Sandbox{
		keys:       Keys{HubSpotToken: DefaultHubSpotToken, SendGridKey: DefaultSendGridKey, MailchimpKey: DefaultMailchimpKey},
		contacts:   map[string]json.RawMessage{},
		mergedInto: map[string]string{},
		compliance: map[string]bool{},
		forgotten:  map[string]bool{},
		scripts:    map[Provider][]Answer{},
		suppressed: map[string]string{},
		members:    map[string]map[string]Member{},
		now:        time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// FixtureContacts merges the hubspot_contacts of every bundled fixture, for
// WithHubSpotContacts.
func FixtureContacts() (map[string]json.RawMessage, error) {
	all, err := fixtures.All()
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for _, f := range all {
		for id, c := range f.Sandbox.HubSpotContacts {
			out[id] = c
		}
	}
	return out, nil
}

// Script queues answers for p's next calls, in order, after the auth check
// (a call with bad credentials still gets 401 and consumes nothing). Once
// they are used up the fake answers normally again. Scripted calls are
// recorded but change no state.
func (s *Sandbox) Script(p Provider, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[p] = append(s.scripts[p], answers...)
}

// Calls returns the calls received by p (every provider when p is ""), in
// arrival order.
func (s *Sandbox) Calls(p Provider) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if p == "" || c.Provider == p {
			out = append(out, c)
		}
	}
	return out
}

// CallCount is len(Calls(p)).
func (s *Sandbox) CallCount(p Provider) int { return len(s.Calls(p)) }

// ResetCalls forgets the recorded calls and pending scripts, keeping state.
func (s *Sandbox) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.scripts = map[Provider][]Answer{}
}

// SendGridSuppressed returns the globally suppressed addresses, sorted.
func (s *Sandbox) SendGridSuppressed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.suppressedLocked()
}

func (s *Sandbox) suppressedLocked() []string {
	out := make([]string, 0, len(s.suppressed))
	for _, e := range s.suppressed {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// MailchimpMembers returns a list's members sorted by address.
func (s *Sandbox) MailchimpMembers(listID string) []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.membersLocked(listID)
}

func (s *Sandbox) membersLocked(listID string) []Member {
	var out []Member
	for _, m := range s.members[listID] {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EmailAddress < out[j].EmailAddress })
	return out
}

// MailchimpStatus returns a member's status ("unsubscribed", ...), or ""
// when the address is not in the list. The address matches in any case.
func (s *Sandbox) MailchimpStatus(listID, email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[listID][lower(email)].Status
}

// Snapshot returns every provider's state.
func (s *Sandbox) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{SendGridSuppressed: s.suppressedLocked(), MailchimpMembers: map[string][]Member{}}
	for id := range s.members {
		st.MailchimpMembers[id] = s.membersLocked(id)
	}
	return st
}

// Handler returns the fakes mounted under /hubspot, /sendgrid and
// /mailchimp. Other paths answer 404.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hubspot/crm/v3/objects/contacts/{id}", s.hubspotContact)
	mux.HandleFunc("POST /hubspot/crm/v3/objects/contacts/batch/read", s.hubspotBatchRead)
	mux.HandleFunc("/hubspot/", s.notFound(HubSpot))
	mux.HandleFunc("POST /sendgrid/v3/asm/suppressions/global", s.sendgridAdd)
	mux.HandleFunc("GET /sendgrid/v3/asm/suppressions/global/{email}", s.sendgridGet)
	mux.HandleFunc("DELETE /sendgrid/v3/asm/suppressions/global/{email}", s.sendgridDelete)
	mux.HandleFunc("/sendgrid/", s.notFound(SendGrid))
	mux.HandleFunc("POST /mailchimp/3.0/lists/{list_id}", s.mailchimpBatch)
	mux.HandleFunc("/mailchimp/", s.notFound(Mailchimp))
	return s.record(mux)
}

// Server is a Sandbox listening on a TCP address (for the demo).
type Server struct {
	// URL is the base URL, "http://127.0.0.1:PORT", without a trailing slash.
	URL string
	srv *http.Server
}

// Start serves the sandbox on addr ("127.0.0.1:0" picks a free port) until
// Close.
func (s *Sandbox) Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &Server{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

// Close stops the server.
func (v *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return v.srv.Shutdown(ctx)
}

// ---- recording ----

type callKey struct{}

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

// record captures every request as a Call; handlers fill in what they
// parse through the *Call in the context.
func (s *Sandbox) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
		r.Body = io.NopCloser(bytes.NewReader(body))
		h := r.Header.Clone()
		h.Del("Authorization")
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		c := &Call{Provider: Provider(seg), Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: h, Body: body, At: s.now()}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
		c.Status = sw.status
		if c.Status == 0 {
			c.Status = http.StatusOK
		}
		s.mu.Lock()
		s.calls = append(s.calls, *c)
		s.mu.Unlock()
	})
}

func callOf(r *http.Request) *Call {
	if c, ok := r.Context().Value(callKey{}).(*Call); ok {
		return c
	}
	return &Call{}
}

// scripted writes p's next scripted answer, if any.
func (s *Sandbox) scripted(p Provider, w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	q := s.scripts[p]
	if len(q) == 0 {
		s.mu.Unlock()
		return false
	}
	a := q[0]
	s.scripts[p] = q[1:]
	s.mu.Unlock()
	callOf(r).Scripted = true
	for k, vs := range a.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := a.Body
	if body == "" && a.Status >= 400 {
		body = errorBody(p, a.Status, strings.ToLower(http.StatusText(a.Status)))
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", contentType(p, a.Status))
	}
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return true
}

func (s *Sandbox) notFound(p Provider) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeRaw(w, http.StatusNotFound, contentType(p, 404), errorBody(p, http.StatusNotFound, "resource not found"))
	}
}

// ---- HubSpot ----

// bearer reports whether r carries "Authorization: Bearer want".
func bearer(r *http.Request, want string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

func (s *Sandbox) hubspotAuth(w http.ResponseWriter, r *http.Request) bool {
	ok := bearer(r, s.keyOf(HubSpot))
	callOf(r).AuthOK = ok
	if !ok {
		writeRaw(w, http.StatusUnauthorized, "application/json;charset=utf-8", mustJSON(map[string]any{
			"status":        "error",
			"message":       "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
			"correlationId": correlationID(),
			"category":      "INVALID_AUTHENTICATION",
		}))
	}
	return ok
}

// hubspotContact answers GET /crm/v3/objects/contacts/{id}
// (https://developers.hubspot.com/docs/api/crm/contacts): the stored
// object, or 404 OBJECT_NOT_FOUND.
func (s *Sandbox) hubspotContact(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	callOf(r).ContactIDs = []string{id}
	if !s.hubspotAuth(w, r) || s.scripted(HubSpot, w, r) {
		return
	}
	s.mu.Lock()
	c, ok := s.contacts[id]
	s.mu.Unlock()
	if !ok {
		writeRaw(w, http.StatusNotFound, "application/json;charset=utf-8", errorBody(HubSpot, http.StatusNotFound, "resource not found"))
		return
	}
	writeRaw(w, http.StatusOK, "application/json;charset=utf-8", string(c))
}

// HubSpotMaxBatchRead is HubSpot's limit of inputs per batch read call;
// more is refused with 400 VALIDATION_ERROR.
const HubSpotMaxBatchRead = 100

// hubspotDefaultProperties are the properties HubSpot returns for a contact
// read without "properties"; hubspotAlwaysProperties are returned whatever
// was asked for.
var (
	hubspotDefaultProperties = []string{"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}
	hubspotAlwaysProperties  = []string{"createdate", "hs_object_id", "lastmodifieddate"}
)

// hubspotBatchRead answers POST /crm/v3/objects/contacts/batch/read
// (https://developers.hubspot.com/docs/api/crm/contacts)
//
//	{"properties": ["email"], "inputs": [{"id": "501"}, ...]}
//
// after the Bearer check (401 INVALID_AUTHENTICATION): 400
// VALIDATION_ERROR for a body that is not such an object, for more than
// HubSpotMaxBatchRead inputs ("The maximum number of inputs supported in a
// batch is 100. ...") and for an idProperty (the fake reads by record id
// only); else 200 {"status": "COMPLETE", "results": [...]} with each
// contact found once, its properties cut to those asked for (null when the
// contact has none) plus hs_object_id, createdate and lastmodifieddate, or
// 207 with one OBJECT_NOT_FOUND error whose context.ids lists the ids not
// found. An id merged away (listed in a stored contact's
// hs_merged_object_ids) is answered with the surviving contact, as HubSpot
// does.
func (s *Sandbox) hubspotBatchRead(w http.ResponseWriter, r *http.Request) {
	c := callOf(r)
	var req struct {
		Properties []string `json:"properties"`
		IDProperty string   `json:"idProperty"`
		Inputs     []struct {
			ID string `json:"id"`
		} `json:"inputs"`
	}
	jerr := json.Unmarshal(c.Body, &req)
	for _, in := range req.Inputs {
		c.ContactIDs = append(c.ContactIDs, in.ID)
	}
	if !s.hubspotAuth(w, r) || s.scripted(HubSpot, w, r) {
		return
	}
	bad := func(msg string) {
		writeRaw(w, http.StatusBadRequest, "application/json;charset=utf-8", errorBody(HubSpot, http.StatusBadRequest, msg))
	}
	switch {
	case jerr != nil || req.Inputs == nil:
		bad("Invalid input JSON on line 1: inputs are required")
		return
	case len(req.Inputs) > HubSpotMaxBatchRead:
		bad(fmt.Sprintf("The maximum number of inputs supported in a batch is %d. Please reduce the number of items and try again", HubSpotMaxBatchRead))
		return
	case req.IDProperty != "" && req.IDProperty != "hs_object_id":
		bad("idProperty " + strconv.Quote(req.IDProperty) + " is not supported by the sandbox")
		return
	}
	props := req.Properties
	if props == nil {
		props = hubspotDefaultProperties
	}
	results := []json.RawMessage{}
	seen := map[string]bool{}
	var missing []string
	s.mu.Lock()
	for _, id := range c.ContactIDs {
		key, obj, ok := s.hubspotFindLocked(id)
		if !ok {
			missing = append(missing, id)
			continue
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		results = append(results, hubspotProject(obj, props))
	}
	s.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	out := map[string]any{"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
	status := http.StatusOK
	if len(missing) > 0 {
		status = http.StatusMultiStatus
		out["numErrors"] = 1
		out["errors"] = []any{map[string]any{
			"status":   "error",
			"category": "OBJECT_NOT_FOUND",
			"message":  "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
			"context":  map[string]any{"ids": missing},
		}}
	}
	writeRaw(w, status, "application/json;charset=utf-8", mustJSON(out))
}

// hubspotFindLocked returns the stored contact id answers for: its own, or
// the one it was merged into.
func (s *Sandbox) hubspotFindLocked(id string) (string, json.RawMessage, bool) {
	if obj, ok := s.contacts[id]; ok {
		return id, obj, true
	}
	if into, ok := s.mergedInto[id]; ok {
		if obj, ok := s.contacts[into]; ok {
			return into, obj, true
		}
	}
	return "", nil, false
}

// hubspotProject returns obj with its properties cut to props (null when
// obj has none) and hubspotAlwaysProperties (when obj has them).
func hubspotProject(obj json.RawMessage, props []string) json.RawMessage {
	var o map[string]any
	if json.Unmarshal(obj, &o) != nil {
		return obj
	}
	have, _ := o["properties"].(map[string]any)
	cut := map[string]any{}
	for _, p := range props {
		cut[p] = have[p] // nil when absent: HubSpot answers null
	}
	for _, p := range hubspotAlwaysProperties {
		if v, ok := have[p]; ok {
			cut[p] = v
		}
	}
	o["properties"] = cut
	if _, ok := o["archived"]; !ok {
		o["archived"] = false
	}
	return json.RawMessage(mustJSON(o))
}

// ---- SendGrid ----

func (s *Sandbox) sendgridAuth(w http.ResponseWriter, r *http.Request) bool {
	ok := bearer(r, s.keyOf(SendGrid))
	callOf(r).AuthOK = ok
	if !ok {
		writeRaw(w, http.StatusUnauthorized, "application/json", errorBody(SendGrid, http.StatusUnauthorized, "authorization required"))
	}
	return ok
}

// sendgridAdd answers POST /v3/asm/suppressions/global
// {"recipient_emails": [...]}: 201 echoing the addresses, which are now
// globally suppressed (adding one twice is fine); 400 with SendGrid's
// {"errors": [{"field", "message"}]} for a bad body.
func (s *Sandbox) sendgridAdd(w http.ResponseWriter, r *http.Request) {
	c := callOf(r)
	var req struct {
		RecipientEmails []json.RawMessage `json:"recipient_emails"`
	}
	jerr := json.Unmarshal(c.Body, &req)
	var emails []string
	badItem := false
	for _, raw := range req.RecipientEmails {
		var e string
		if json.Unmarshal(raw, &e) != nil {
			badItem = true
			continue
		}
		emails = append(emails, e)
	}
	c.Emails = emails
	if !s.sendgridAuth(w, r) || s.scripted(SendGrid, w, r) {
		return
	}
	field := func(f, msg string) {
		writeRaw(w, http.StatusBadRequest, "application/json", mustJSON(map[string]any{"errors": []any{map[string]any{"field": f, "message": msg}}}))
	}
	switch {
	case jerr != nil:
		field("", "invalid JSON")
		return
	case len(req.RecipientEmails) == 0:
		field("recipient_emails", "recipient_emails is required and must contain at least one address")
		return
	case badItem:
		field("recipient_emails", "recipient_emails must be an array of strings")
		return
	}
	for _, e := range emails {
		if !looksLikeEmail(e) {
			field("recipient_emails", "one or more email addresses are invalid")
			return
		}
	}
	s.mu.Lock()
	for _, e := range emails {
		if _, ok := s.suppressed[lower(e)]; !ok {
			s.suppressed[lower(e)] = e
		}
	}
	s.mu.Unlock()
	writeRaw(w, http.StatusCreated, "application/json", mustJSON(map[string]any{"recipient_emails": emails}))
}

// sendgridGet answers GET /v3/asm/suppressions/global/{email}:
// {"recipient_email": e} when suppressed, else {}.
func (s *Sandbox) sendgridGet(w http.ResponseWriter, r *http.Request) {
	e := r.PathValue("email")
	callOf(r).Emails = []string{e}
	if !s.sendgridAuth(w, r) || s.scripted(SendGrid, w, r) {
		return
	}
	s.mu.Lock()
	got, ok := s.suppressed[lower(e)]
	s.mu.Unlock()
	body := "{}"
	if ok {
		body = mustJSON(map[string]string{"recipient_email": got})
	}
	writeRaw(w, http.StatusOK, "application/json", body)
}

// sendgridDelete answers DELETE /v3/asm/suppressions/global/{email}: 204,
// whether or not the address was suppressed.
func (s *Sandbox) sendgridDelete(w http.ResponseWriter, r *http.Request) {
	e := r.PathValue("email")
	callOf(r).Emails = []string{e}
	if !s.sendgridAuth(w, r) || s.scripted(SendGrid, w, r) {
		return
	}
	s.mu.Lock()
	delete(s.suppressed, lower(e))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// ---- Mailchimp ----

func (s *Sandbox) mailchimpAuth(w http.ResponseWriter, r *http.Request) bool {
	_, pass, ok := r.BasicAuth()
	want := s.keyOf(Mailchimp)
	ok = ok && want != "" && subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1
	callOf(r).AuthOK = ok
	if !ok {
		writeRaw(w, http.StatusUnauthorized, "application/problem+json; charset=utf-8", mustJSON(mailchimpProblem(http.StatusUnauthorized, "API Key Invalid",
			"Your API key may be invalid, or you've attempted to access the wrong datacenter.")))
	}
	return ok
}

type mailchimpError struct {
	EmailAddress string `json:"email_address"`
	Error        string `json:"error"`
	ErrorCode    string `json:"error_code"`
}

type mailchimpAnswerMember struct {
	ID           string `json:"id"`
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
	ListID       string `json:"list_id"`
}

var mailchimpStatuses = map[string]bool{"subscribed": true, "unsubscribed": true, "cleaned": true, "pending": true, "transactional": true}

// mailchimpBatch answers POST /3.0/lists/{list_id} ("Batch subscribe or
// unsubscribe"): {"members": [{email_address, status, status_if_new}],
// "update_existing": bool}, at most 500 members. The answer is 200
// {new_members, updated_members, errors[{email_address, error,
// error_code}], total_created, total_updated, error_count}; a bad body is a
// 400 problem detail {type, title, status, detail, instance}.
func (s *Sandbox) mailchimpBatch(w http.ResponseWriter, r *http.Request) {
	c := callOf(r)
	listID := r.PathValue("list_id")
	var req struct {
		Members        []MailchimpMember `json:"members"`
		UpdateExisting bool              `json:"update_existing"`
	}
	jerr := json.Unmarshal(c.Body, &req)
	c.Members = req.Members
	for _, m := range req.Members {
		c.Emails = append(c.Emails, m.EmailAddress)
	}
	if !s.mailchimpAuth(w, r) || s.scripted(Mailchimp, w, r) {
		return
	}
	problem := func(title, detail string, errs ...map[string]string) {
		p := mailchimpProblem(http.StatusBadRequest, title, detail)
		if len(errs) > 0 {
			p["errors"] = errs
		}
		writeRaw(w, http.StatusBadRequest, "application/problem+json; charset=utf-8", mustJSON(p))
	}
	switch {
	case jerr != nil:
		problem("JSON Parse Error", "We encountered an unspecified JSON parsing error.")
		return
	case req.Members == nil:
		problem("Invalid Resource", "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
			map[string]string{"field": "members", "message": "Required fields were not provided: members"})
		return
	case len(req.Members) > MailchimpMaxMembers:
		problem("Invalid Resource", "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
			map[string]string{"field": "members", "message": fmt.Sprintf("Array has too many items (%d), the maximum is %d", len(req.Members), MailchimpMaxMembers)})
		return
	}
	newM, updM, errs := []mailchimpAnswerMember{}, []mailchimpAnswerMember{}, []mailchimpError{}
	s.mu.Lock()
	list := s.members[listID]
	if list == nil {
		list = map[string]Member{}
		s.members[listID] = list
	}
	for _, m := range req.Members {
		k := lower(m.EmailAddress)
		fail := func(code, msg string) {
			errs = append(errs, mailchimpError{EmailAddress: m.EmailAddress, Error: msg, ErrorCode: code})
		}
		cur, exists := list[k]
		switch {
		case !looksLikeEmail(m.EmailAddress):
			fail("ERROR_GENERIC", fmt.Sprintf("%s looks fake or invalid, please enter a real email address.", m.EmailAddress))
		case s.compliance[k]:
			fail("ERROR_GENERIC", fmt.Sprintf("%s is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.", m.EmailAddress))
		case s.forgotten[k]:
			fail("ERROR_GENERIC", fmt.Sprintf("Forgotten Email Not Subscribed: %s was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.", m.EmailAddress))
		case exists && !req.UpdateExisting:
			fail("ERROR_CONTACT_EXISTS", fmt.Sprintf("%s is already a list member. Use PUT to insert or update list members.", m.EmailAddress))
		case exists:
			if m.Status != "" && !mailchimpStatuses[m.Status] {
				fail("ERROR_GENERIC", "Invalid status: "+m.Status)
				continue
			}
			if m.Status != "" {
				cur.Status = m.Status
			}
			list[k] = cur
			updM = append(updM, answerMember(cur))
		default:
			st := m.StatusIfNew
			if st == "" {
				st = m.Status
			}
			if !mailchimpStatuses[st] {
				fail("ERROR_GENERIC", "Invalid status: "+st)
				continue
			}
			nm := Member{ListID: listID, EmailAddress: m.EmailAddress, Status: st}
			list[k] = nm
			newM = append(newM, answerMember(nm))
		}
	}
	s.mu.Unlock()
	writeRaw(w, http.StatusOK, "application/json; charset=utf-8", mustJSON(map[string]any{
		"new_members":     newM,
		"updated_members": updM,
		"errors":          errs,
		"total_created":   len(newM),
		"total_updated":   len(updM),
		"error_count":     len(errs),
	}))
}

func answerMember(m Member) mailchimpAnswerMember {
	sum := md5.Sum([]byte(lower(m.EmailAddress)))
	return mailchimpAnswerMember{ID: hex.EncodeToString(sum[:]), EmailAddress: m.EmailAddress, Status: m.Status, ListID: m.ListID}
}

func mailchimpProblem(status int, title, detail string) map[string]any {
	return map[string]any{
		"type":     "https://mailchimp.com/developer/marketing/docs/errors/",
		"title":    title,
		"status":   status,
		"detail":   detail,
		"instance": correlationID(),
	}
}

// ---- helpers ----

func (s *Sandbox) keyOf(p Provider) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch p {
	case HubSpot:
		return s.keys.HubSpotToken
	case SendGrid:
		return s.keys.SendGridKey
	case Mailchimp:
		return s.keys.MailchimpKey
	}
	return ""
}

// errorBody renders p's error body for status.
func errorBody(p Provider, status int, msg string) string {
	switch p {
	case SendGrid:
		return mustJSON(map[string]any{"errors": []any{map[string]any{"field": nil, "message": msg}}})
	case Mailchimp:
		title := http.StatusText(status)
		detail := msg
		if status == http.StatusTooManyRequests {
			detail = "You have exceeded the limit of 10 simultaneous connections."
		}
		return mustJSON(mailchimpProblem(status, title, detail))
	default:
		category := "INTERNAL_ERROR"
		switch {
		case status == http.StatusNotFound:
			category = "OBJECT_NOT_FOUND"
		case status == http.StatusTooManyRequests:
			category = "RATE_LIMITS"
		case status == http.StatusUnauthorized:
			category = "INVALID_AUTHENTICATION"
		case status < 500:
			category = "VALIDATION_ERROR"
		}
		return mustJSON(map[string]any{"status": "error", "message": msg, "correlationId": correlationID(), "category": category})
	}
}

func contentType(p Provider, status int) string {
	if p == Mailchimp && status >= 400 {
		return "application/problem+json; charset=utf-8"
	}
	return "application/json"
}

func writeRaw(w http.ResponseWriter, status int, ctype, body string) {
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"error":"sandbox: cannot encode answer"}`
	}
	return string(b)
}

func correlationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func lower(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// looksLikeEmail is the providers' coarse address check: one "@" with text
// on both sides, a dot in the domain, no spaces.
func looksLikeEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	return at > 0 && at < len(e)-1 && strings.Contains(e[at+1:], ".") && !strings.ContainsAny(e, " \t\r\n")
}
