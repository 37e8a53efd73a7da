// Package sandbox is a local stand-in for the provider APIs consentsync
// calls: HubSpot contact lookups, SendGrid global suppressions and Mailchimp
// list members. Each fake follows the provider's documented contract
// (paths, auth, body shape, batch limits, error bodies) closely enough that
// a connector passing against it speaks the real protocol.
//
// The SendGrid and Mailchimp fakes live with their connectors
// (connectors/sendgrid/sendgridfake, connectors/mailchimp/mailchimpfake);
// the sandbox mounts each under its prefix (http.StripPrefix) and keeps
// HubSpot's contacts fake itself. Integration tests and `consentsync demo`
// mount one Sandbox:
//
//	GET    /hubspot/crm/v3/objects/contacts/{id}                  Bearer token
//	POST   /hubspot/crm/v3/objects/contacts/batch/read            Bearer token
//	POST   /sendgrid/v3/asm/suppressions/global                   Bearer key
//	GET    /sendgrid/v3/asm/suppressions/global/{email}           Bearer key
//	DELETE /sendgrid/v3/asm/suppressions/global/{email}           Bearer key
//	POST   /mailchimp/3.0/lists/{list_id}                         basic auth, key as password
//	GET    /mailchimp/3.0/lists/{list_id}/members/{subscriber_hash} basic auth, key as password
//
// so a destination's base_url is {sandbox URL}/sendgrid, .../mailchimp, and
// HubSpot's api_base_url is .../hubspot.
//
// Tests script the next answers per provider (Script), read every call
// (Calls) and the resulting provider state (SendGridSuppressed,
// MailchimpMembers, Snapshot, or the fakes themselves: SendGrid(),
// Mailchimp()). A Sandbox is safe for concurrent use.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/connectors/mailchimp/mailchimpfake"
	"github.com/consentsync/consentsync/connectors/sendgrid/sendgridfake"
	"github.com/consentsync/consentsync/internal/fakeapi"
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
	DefaultSendGridKey  = sendgridfake.DefaultKey
	DefaultMailchimpKey = mailchimpfake.DefaultKey
)

// MailchimpMaxMembers is Mailchimp's limit of members per batch call; more
// is refused with 400.
const MailchimpMaxMembers = mailchimpfake.MaxMembers

// maxBody bounds a request body the fakes read.
const maxBody = fakeapi.MaxBody

// Keys are the credentials each fake accepts. An empty one accepts nothing.
type Keys struct {
	HubSpotToken string
	SendGridKey  string
	MailchimpKey string
}

// Answer is a scripted response. An empty Body with Status >= 400 is
// replaced by the provider's own error body for Status (HubSpot, SendGrid
// or Mailchimp shape).
type Answer = fakeapi.Answer

// TooManyRequestsSeconds is a 429 with "Retry-After: n" (delay-seconds).
func TooManyRequestsSeconds(n int) Answer { return fakeapi.RetryAfter(n) }

// TooManyRequestsUntil is a 429 with Retry-After as an HTTP-date (RFC 9110
// §10.2.3; second resolution).
func TooManyRequestsUntil(t time.Time) Answer {
	return Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {t.UTC().Format(http.TimeFormat)}}}
}

// TooManyRequestsReset is SendGrid's 429: X-RateLimit-Limit, -Remaining 0
// and -Reset (epoch seconds), no Retry-After.
func TooManyRequestsReset(t time.Time) Answer { return fakeapi.TooMany(sendgridfake.ResetHeader(t)) }

// Unavailable is a 503 without Retry-After.
func Unavailable() Answer { return Answer{Status: http.StatusServiceUnavailable} }

// BadRequest is a 400 with the provider's error body (permanent).
func BadRequest() Answer { return Answer{Status: http.StatusBadRequest} }

// StatusOnly is an answer with status code and the provider's error body.
func StatusOnly(code int) Answer { return Answer{Status: code} }

// MailchimpThrottled is the 403 Mailchimp sometimes sends instead of 429:
// a problem detail titled "Too Many Requests".
func MailchimpThrottled() Answer { return mailchimpfake.Throttled() }

// Repeat returns n copies of a.
func Repeat(a Answer, n int) []Answer { return fakeapi.Repeat(a, n) }

// Call is one request the sandbox received.
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
	// Emails are the addresses the call names (SendGrid recipient_emails
	// or the {email} of a GET/DELETE, Mailchimp members[].email_address),
	// in order.
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
type MailchimpMember = mailchimpfake.BatchMember

// Member is a Mailchimp list member as the fake stores it.
type Member = mailchimpfake.Member

// State is the providers' state, for assertions and the demo's table.
type State struct {
	// SendGridSuppressed are the globally suppressed addresses, sorted, as
	// first sent.
	SendGridSuppressed []string
	// MailchimpMembers are each list's members, sorted by address.
	MailchimpMembers map[string][]Member
}

// Sandbox holds the fakes. Use New.
type Sandbox struct {
	sendgrid  *sendgridfake.Fake
	mailchimp *mailchimpfake.Fake
	others    *Others

	mu         sync.Mutex
	keys       Keys
	contacts   map[string]json.RawMessage
	mergedInto map[string]string // HubSpot id merged away → surviving contact id
	scripts    map[Provider][]Answer
	calls      []Call
	now        func() time.Time
}

// Option configures New.
type Option func(*Sandbox)

// WithKeys replaces the default credentials.
func WithKeys(k Keys) Option {
	return func(s *Sandbox) {
		s.keys = k
		s.sendgrid.SetKey(k.SendGridKey)
		s.mailchimp.SetKey(k.MailchimpKey)
	}
}

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
	return func(s *Sandbox) { s.mailchimp.SetCompliance(emails...) }
}

// WithMailchimpForgotten marks addresses that were permanently deleted
// ("Forgotten Email Not Subscribed"), refused per member like compliance.
func WithMailchimpForgotten(emails ...string) Option {
	return func(s *Sandbox) { s.mailchimp.SetForgotten(emails...) }
}

// WithMailchimpMember adds an existing member to a list (status
// "subscribed", "unsubscribed", "cleaned", "pending" or "transactional").
func WithMailchimpMember(listID, email, status string) Option {
	return func(s *Sandbox) { s.mailchimp.AddMember(listID, email, status) }
}

// WithMailchimpMemberAt adds an existing member whose status last changed
// at (a member unsubscribed before consentsync existed, for backfills).
func WithMailchimpMemberAt(listID, email, status string, at time.Time) Option {
	return func(s *Sandbox) { s.mailchimp.AddMemberAt(listID, email, status, at) }
}

// WithSendGridSuppressedAt starts the sandbox with email globally
// suppressed at SendGrid since at.
func WithSendGridSuppressedAt(email string, at time.Time) Option {
	return func(s *Sandbox) { s.sendgrid.SuppressAt(email, at) }
}

// WithSendGridSuppressed starts the sandbox with these addresses globally
// suppressed at SendGrid.
func WithSendGridSuppressed(emails ...string) Option {
	return func(s *Sandbox) { s.sendgrid.Suppress(emails...) }
}

// WithClock sets the clock used for Call.At (time.Now by default), in the
// sandbox and in its fakes.
func WithClock(now func() time.Time) Option {
	return func(s *Sandbox) {
		s.now = now
		s.sendgrid.Now = now
		s.mailchimp.Now = now
	}
}

// New returns a Sandbox accepting the Default* credentials, with no contacts,
// suppressions or members.
func New(opts ...Option) *Sandbox {
	s := &Sandbox{
		sendgrid:   sendgridfake.New(),
		mailchimp:  mailchimpfake.New(),
		others:     newOthers(),
		keys:       Keys{HubSpotToken: DefaultHubSpotToken, SendGridKey: DefaultSendGridKey, MailchimpKey: DefaultMailchimpKey},
		contacts:   map[string]json.RawMessage{},
		mergedInto: map[string]string{},
		scripts:    map[Provider][]Answer{},
		now:        time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SendGrid returns the SendGrid fake the sandbox mounts under /sendgrid
// (its state, its Forget for drift tests). Its own Calls list the calls
// that reached it: not those the sandbox answered from Script.
func (s *Sandbox) SendGrid() *sendgridfake.Fake { return s.sendgrid }

// Mailchimp returns the Mailchimp fake the sandbox mounts under
// /mailchimp (its state, its Forget for drift tests). Its own Calls list
// the calls that reached it: not those the sandbox answered from Script.
func (s *Sandbox) Mailchimp() *mailchimpfake.Fake { return s.mailchimp }

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
// recorded but change no state; they do not reach the provider's fake
// (whose own Script, by contrast, answers before its auth check).
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

// ResetCalls forgets the recorded calls and pending scripts (the sandbox's
// and its fakes'), keeping state.
func (s *Sandbox) ResetCalls() {
	s.mu.Lock()
	s.calls = nil
	s.scripts = map[Provider][]Answer{}
	s.mu.Unlock()
	s.sendgrid.ResetCalls()
	s.mailchimp.ResetCalls()
}

// SendGridSuppressed returns the globally suppressed addresses, sorted.
func (s *Sandbox) SendGridSuppressed() []string { return s.sendgrid.Suppressed() }

// MailchimpMembers returns a list's members sorted by address.
func (s *Sandbox) MailchimpMembers(listID string) []Member { return s.mailchimp.Members(listID) }

// MailchimpStatus returns a member's status ("unsubscribed", ...), or ""
// when the address is not in the list. The address matches in any case.
func (s *Sandbox) MailchimpStatus(listID, email string) string {
	return s.mailchimp.Status(listID, email)
}

// Snapshot returns every provider's state.
func (s *Sandbox) Snapshot() State {
	return State{SendGridSuppressed: s.sendgrid.Suppressed(), MailchimpMembers: s.mailchimp.Lists()}
}

// Handler returns the fakes mounted under /hubspot, /sendgrid and
// /mailchimp. Other paths answer 404.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hubspot/crm/v3/objects/contacts/{id}", s.hubspotContact)
	mux.HandleFunc("POST /hubspot/crm/v3/objects/contacts/batch/read", s.hubspotBatchRead)
	mux.HandleFunc("/hubspot/", s.notFound(HubSpot))

	sg := http.StripPrefix("/"+string(SendGrid), s.sendgrid.Handler())
	sgCall := s.mount(SendGrid, s.sendgrid.Authorized, sg)
	mux.Handle("POST /sendgrid/v3/asm/suppressions/global", sgCall(func(r *http.Request, c *Call) {
		c.Emails = sendgridfake.RecipientEmails(c.Body)
	}))
	pathEmail := func(r *http.Request, c *Call) { c.Emails = []string{r.PathValue("email")} }
	mux.Handle("GET /sendgrid/v3/asm/suppressions/global/{email}", sgCall(pathEmail))
	mux.Handle("DELETE /sendgrid/v3/asm/suppressions/global/{email}", sgCall(pathEmail))
	mux.Handle("/sendgrid/", sg) // the fake's 404 (or 401/405)

	mc := http.StripPrefix("/"+string(Mailchimp), s.mailchimp.Handler())
	mcCall := s.mount(Mailchimp, s.mailchimp.Authorized, mc)
	mux.Handle("POST /mailchimp/3.0/lists/{list_id}", mcCall(func(r *http.Request, c *Call) {
		c.Members = mailchimpfake.BatchMembers(c.Body)
		for _, m := range c.Members {
			c.Emails = append(c.Emails, m.EmailAddress)
		}
	}))
	mux.Handle("GET /mailchimp/3.0/lists/{list_id}/members/{subscriber_hash}", mcCall(nil))
	mux.Handle("/mailchimp/", mc)
	s.others.mount(mux)
	return s.record(mux)
}

// mount returns, for one of p's routes, a handler that fills in the
// recorded Call (fill), checks the credentials (authorized), answers from
// p's Script once they are good, and otherwise hands the request to the
// fake (whose 401 a bad key gets).
func (s *Sandbox) mount(p Provider, authorized func(*http.Request) bool, fake http.Handler) func(fill func(*http.Request, *Call)) http.Handler {
	return func(fill func(*http.Request, *Call)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := callOf(r)
			if fill != nil {
				fill(r, c)
			}
			c.AuthOK = authorized(r)
			if c.AuthOK && s.scripted(p, w, r) {
				return
			}
			fake.ServeHTTP(w, r)
		})
	}
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
		body = s.errorBody(p, a.Status)
	}
	if w.Header().Get("Content-Type") == "" && body != "" {
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
		writeRaw(w, http.StatusNotFound, contentType(p, 404), hubspotError(http.StatusNotFound, "resource not found"))
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
		writeRaw(w, http.StatusNotFound, "application/json;charset=utf-8", hubspotError(http.StatusNotFound, "resource not found"))
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
		writeRaw(w, http.StatusBadRequest, "application/json;charset=utf-8", hubspotError(http.StatusBadRequest, msg))
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

// ---- helpers ----

func (s *Sandbox) keyOf(p Provider) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == HubSpot {
		return s.keys.HubSpotToken
	}
	return ""
}

// errorBody renders p's error body for status.
func (s *Sandbox) errorBody(p Provider, status int) string {
	switch p {
	case SendGrid:
		return s.sendgrid.Error(status)
	case Mailchimp:
		return s.mailchimp.Error(status)
	}
	return hubspotError(status, strings.ToLower(http.StatusText(status)))
}

// hubspotError is HubSpot's error body {status, message, correlationId,
// category}.
func hubspotError(status int, msg string) string {
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
