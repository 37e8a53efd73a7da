package fakeprovider

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind names the provider a Provider fakes.
type Kind string

// Provider kinds.
const (
	SendGrid  Kind = "sendgrid"
	Mailchimp Kind = "mailchimp"
)

// Batch limits the fakes enforce (400 with the provider's error body above
// them).
const (
	// SendGridMaxRecipients is the fake's limit of recipient_emails per
	// suppression add. SendGrid documents no limit for POST
	// /v3/asm/suppressions/global or /v3/asm/groups/{id}/suppressions; this
	// is the limit consentsync's connector assumes (sendgrid.MaxRecipients),
	// enforced so that a connector exceeding its own limit is caught.
	// Options.MaxBatch changes it.
	SendGridMaxRecipients = 1000
	// MailchimpMaxMembers is Mailchimp's documented limit of members per
	// batch call (POST /3.0/lists/{list_id}).
	MailchimpMaxMembers = 500
	// MailchimpMaxConcurrent is Mailchimp's documented limit of simultaneous
	// connections per API key; more get 429.
	MailchimpMaxConcurrent = 10
)

// maxBody bounds the request body the fakes read, bytes.
const maxBody = 32 << 20

// FaultKind is how a Provider answers.
type FaultKind int

// Fault kinds: see the package documentation.
const (
	Normal FaultKind = iota
	Hang
	TooMany
	Unavailable
	Slow
)

var faultNames = map[FaultKind]string{Normal: "normal", Hang: "hang", TooMany: "too_many", Unavailable: "unavailable", Slow: "slow"}

func (k FaultKind) String() string {
	if s, ok := faultNames[k]; ok {
		return s
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is a mode of answering. The zero Fault is Normal.
type Fault struct {
	Kind FaultKind
	// Reset (TooMany): how long after a request's arrival the rate-limit
	// window resets; SendGrid's X-RateLimit-Reset is that instant in epoch
	// seconds (rounded up). 0 means 1 s.
	Reset time.Duration
	// RetryAfter (TooMany, Unavailable): when > 0, a Retry-After header in
	// whole seconds (rounded up).
	RetryAfter time.Duration
	// Delay (Slow): how long before the normal answer.
	Delay time.Duration
}

// Phase is one step of a Storm: Fault for For.
type Phase struct {
	Fault Fault
	For   time.Duration
}

// Call is one API request a Provider received.
type Call struct {
	Method string
	Path   string
	// Status is the status answered; 0 when the client gave up first
	// (Hang).
	Status int
	// Addresses are the addresses the body names, in order, as spelled.
	Addresses []string
	// Fault is the fault kind that decided the answer.
	Fault FaultKind
	// At is the arrival time; Done when the answer was written (or the
	// client left).
	At, Done time.Time
}

// Options configures Listen.
type Options struct {
	Kind Kind
	// APIKey is the key the fake accepts (SendGrid: Authorization: Bearer;
	// Mailchimp: basic auth password). Empty accepts nothing.
	APIKey string
	// ListID is the Mailchimp audience; other list ids get 404.
	ListID string
	// MaxBatch overrides the batch limit (SendGridMaxRecipients,
	// MailchimpMaxMembers) when > 0.
	MaxBatch int
	// MaxConcurrent overrides the in-flight limit (Mailchimp default
	// MailchimpMaxConcurrent, SendGrid none) when > 0; -1 means none.
	MaxConcurrent int
}

// Provider is one fake provider account. It is safe for concurrent use.
type Provider struct {
	// URL is the base URL, "http://127.0.0.1:PORT", without a trailing
	// slash: a destination's base_url.
	URL string

	opt    Options
	srv    *http.Server
	closed chan struct{}
	once   sync.Once

	mu         sync.Mutex
	fault      Fault
	storm      []Phase
	stormStart time.Time
	changed    chan struct{} // closed and replaced whenever the fault changes
	maxConc    int
	inflight   int
	calls      []Call
	accepted   int
	received   map[string][]time.Time
	members    map[string]bool // Mailchimp: lower-case addresses in the list
}

// NewSendGrid returns a SendGrid fake accepting apiKey, serving on a free
// loopback port. It panics if it cannot listen (like httptest.NewServer).
func NewSendGrid(apiKey string) *Provider {
	return mustListen(Options{Kind: SendGrid, APIKey: apiKey})
}

// NewMailchimp returns a Mailchimp fake for the audience listID accepting
// apiKey, serving on a free loopback port. It panics if it cannot listen.
func NewMailchimp(apiKey, listID string) *Provider {
	return mustListen(Options{Kind: Mailchimp, APIKey: apiKey, ListID: listID})
}

func mustListen(o Options) *Provider {
	p, err := Listen("127.0.0.1:0", o)
	if err != nil {
		panic(err)
	}
	return p
}

// New returns a Provider that does not listen: serve p.Handler() yourself.
// p.URL is empty.
func New(o Options) (*Provider, error) {
	if o.Kind != SendGrid && o.Kind != Mailchimp {
		return nil, fmt.Errorf("fakeprovider: unknown kind %q", o.Kind)
	}
	p := &Provider{
		opt:      o,
		closed:   make(chan struct{}),
		changed:  make(chan struct{}),
		received: map[string][]time.Time{},
		members:  map[string]bool{},
	}
	switch {
	case o.MaxConcurrent > 0:
		p.maxConc = o.MaxConcurrent
	case o.MaxConcurrent == 0 && o.Kind == Mailchimp:
		p.maxConc = MailchimpMaxConcurrent
	}
	return p, nil
}

// Listen returns a Provider serving on addr ("127.0.0.1:0" picks a free
// port) until Close.
func Listen(addr string, o Options) (*Provider, error) {
	p, err := New(o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakeprovider: listen %s: %w", addr, err)
	}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close releases hung requests and stops the server. It is safe to call
// more than once.
func (p *Provider) Close() {
	p.once.Do(func() {
		close(p.closed)
		if p.srv != nil {
			_ = p.srv.Close()
		}
	})
}

// Kind reports what the Provider fakes.
func (p *Provider) Kind() Kind { return p.opt.Kind }

// MaxBatch is the batch limit the fake enforces.
func (p *Provider) MaxBatch() int {
	if p.opt.MaxBatch > 0 {
		return p.opt.MaxBatch
	}
	if p.opt.Kind == Mailchimp {
		return MailchimpMaxMembers
	}
	return SendGridMaxRecipients
}

// SetFault sets how the Provider answers from now on, cancelling any
// storm; requests hanging under Hang are re-evaluated at once.
func (p *Provider) SetFault(f Fault) {
	p.mu.Lock()
	p.fault = f
	p.storm = nil
	p.notifyLocked()
	p.mu.Unlock()
}

// Storm answers under each phase's fault in turn, starting now, then
// Normal.
func (p *Provider) Storm(phases ...Phase) {
	p.mu.Lock()
	p.fault = Fault{}
	p.storm = append([]Phase(nil), phases...)
	p.stormStart = time.Now()
	p.notifyLocked()
	p.mu.Unlock()
}

// Fault returns the fault in force now.
func (p *Provider) Fault() Fault {
	f, _, _ := p.current(time.Now())
	return f
}

// SetMaxConcurrent sets the in-flight limit (0 = none): a request arriving
// while n are in progress gets 429.
func (p *Provider) SetMaxConcurrent(n int) {
	p.mu.Lock()
	p.maxConc = n
	p.mu.Unlock()
}

func (p *Provider) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// current returns the fault in force at now, when it ends (zero: not
// before a change) and the channel closed on the next change.
func (p *Provider) current(now time.Time) (Fault, time.Time, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.storm) == 0 {
		return p.fault, time.Time{}, p.changed
	}
	end := p.stormStart
	for _, ph := range p.storm {
		end = end.Add(ph.For)
		if now.Before(end) {
			return ph.Fault, end, p.changed
		}
	}
	return Fault{}, time.Time{}, p.changed
}

// Calls is how many API requests were received, whatever the answer.
func (p *Provider) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// Accepted is how many API requests were answered 2xx.
func (p *Provider) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// CallLog returns every API request received, in arrival order of
// completion.
func (p *Provider) CallLog() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Call, len(p.calls))
	for i, c := range p.calls {
		c.Addresses = append([]string(nil), c.Addresses...)
		out[i] = c
	}
	return out
}

// Received returns, for every address accepted, the times each push of it
// was applied, oldest first: an address pushed twice has two entries.
// Addresses are keyed as spelled in the request.
func (p *Provider) Received() map[string][]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]time.Time, len(p.received))
	for a, ts := range p.received {
		out[a] = append([]time.Time(nil), ts...)
	}
	return out
}

// Addresses returns the distinct addresses accepted at least once, sorted.
func (p *Provider) Addresses() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.received))
	for a := range p.received {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Reset forgets the call log and the receive log (not the fault, nor
// Mailchimp's list members).
func (p *Provider) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
	p.accepted = 0
	p.received = map[string][]time.Time{}
}

// Handler returns the fake's HTTP handler: the provider's API paths and the
// /_fake/ control API.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_fake/stats", p.ctlStats)
	mux.HandleFunc("GET /_fake/received", p.ctlReceived)
	mux.HandleFunc("PUT /_fake/fault", p.ctlFault)
	api := http.HandlerFunc(p.serveAPI)
	mux.Handle("/", api)
	return mux
}

// request is one API request being answered.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	body []byte
	call Call
}

func (p *Provider) serveAPI(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	q := &request{w: w, r: r, body: body, call: Call{Method: r.Method, Path: r.URL.Path, At: time.Now()}}
	defer p.finish(q)

	route := p.route(r)
	if route == nil {
		p.errorAnswer(q, http.StatusNotFound, "resource not found")
		return
	}
	if !p.authOK(r) {
		p.unauthorized(q)
		return
	}
	q.call.Addresses = route.addresses(body)

	p.mu.Lock()
	if p.maxConc > 0 && p.inflight >= p.maxConc {
		p.mu.Unlock()
		p.tooMany(q, Fault{Kind: TooMany}, true)
		return
	}
	p.inflight++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()

	for {
		f, until, changed := p.current(time.Now())
		q.call.Fault = f.Kind
		switch f.Kind {
		case Hang:
			var timer <-chan time.Time
			if !until.IsZero() {
				t := time.NewTimer(time.Until(until))
				defer t.Stop()
				timer = t.C
			}
			select {
			case <-r.Context().Done():
				return // client gave up: nothing applied, status 0
			case <-p.closed:
				return
			case <-changed:
			case <-timer:
			}
			continue
		case TooMany:
			p.tooMany(q, f, false)
			return
		case Unavailable:
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", ceilSeconds(f.RetryAfter))
			}
			p.errorAnswer(q, http.StatusServiceUnavailable, "service unavailable")
			return
		case Slow:
			select {
			case <-time.After(f.Delay):
			case <-p.closed:
				return
			}
		}
		route.handle(p, q)
		return
	}
}

// finish records the call.
func (p *Provider) finish(q *request) {
	q.call.Done = time.Now()
	p.mu.Lock()
	p.calls = append(p.calls, q.call)
	if q.call.Status >= 200 && q.call.Status < 300 {
		p.accepted++
	}
	p.mu.Unlock()
}

// logReceived records addrs as applied now.
func (p *Provider) logReceived(addrs []string) {
	now := time.Now()
	p.mu.Lock()
	for _, a := range addrs {
		p.received[a] = append(p.received[a], now)
	}
	p.mu.Unlock()
}

func (q *request) write(status int, ctype string, body string) {
	q.w.Header().Set("Content-Type", ctype)
	q.w.WriteHeader(status)
	_, _ = io.WriteString(q.w, body)
	q.call.Status = status
}

type route struct {
	addresses func(body []byte) []string
	handle    func(p *Provider, q *request)
}

func (p *Provider) route(r *http.Request) *route {
	path := r.URL.Path
	switch p.opt.Kind {
	case SendGrid:
		switch {
		case r.Method == http.MethodPost && path == "/v3/asm/suppressions/global":
			return &route{sendgridAddresses, (*Provider).sendgridAdd}
		case r.Method == http.MethodPost && strings.HasPrefix(path, "/v3/asm/groups/") && strings.HasSuffix(path, "/suppressions"):
			id := strings.TrimSuffix(strings.TrimPrefix(path, "/v3/asm/groups/"), "/suppressions")
			if id == "" || strings.Contains(id, "/") {
				return nil
			}
			return &route{sendgridAddresses, (*Provider).sendgridAdd}
		case (r.Method == http.MethodDelete || r.Method == http.MethodGet) && strings.HasPrefix(path, "/v3/asm/suppressions/global/"):
			e := strings.TrimPrefix(path, "/v3/asm/suppressions/global/")
			return &route{func([]byte) []string { return []string{e} }, func(p *Provider, q *request) { p.sendgridOne(q, e) }}
		}
	case Mailchimp:
		rest, ok := strings.CutPrefix(path, "/3.0/lists/")
		if !ok || rest == "" {
			return nil
		}
		list, member, hasMember := strings.Cut(rest, "/members/")
		switch {
		case r.Method == http.MethodPost && !strings.Contains(rest, "/"):
			return &route{mailchimpBatchAddresses, func(p *Provider, q *request) { p.mailchimpBatch(q, rest) }}
		case r.Method == http.MethodPut && hasMember && member != "" && !strings.Contains(member, "/"):
			return &route{mailchimpMemberAddresses, func(p *Provider, q *request) { p.mailchimpPut(q, list, member) }}
		}
	}
	return nil
}

func (p *Provider) authOK(r *http.Request) bool {
	want := p.opt.APIKey
	if want == "" {
		return false
	}
	var got string
	switch p.opt.Kind {
	case SendGrid:
		v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return false
		}
		got = strings.TrimSpace(v)
	case Mailchimp:
		_, pass, ok := r.BasicAuth()
		if !ok {
			return false
		}
		got = pass
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// ---- answers common to every route ----

func (p *Provider) unauthorized(q *request) {
	switch p.opt.Kind {
	case SendGrid:
		q.write(http.StatusUnauthorized, "application/json", sendgridErrors("", "authorization required"))
	default:
		q.write(http.StatusUnauthorized, problemType, mailchimpProblem(http.StatusUnauthorized, "API Key Invalid",
			"Your API key may be invalid, or you've attempted to access the wrong datacenter."))
	}
}

// tooMany answers 429 in the provider's shape; conc tells the cause is
// Mailchimp's connection limit.
func (p *Provider) tooMany(q *request, f Fault, conc bool) {
	h := q.w.Header()
	if f.RetryAfter > 0 {
		h.Set("Retry-After", ceilSeconds(f.RetryAfter))
	}
	switch p.opt.Kind {
	case SendGrid:
		reset := f.Reset
		if reset <= 0 {
			reset = time.Second
		}
		at := q.call.At.Add(reset)
		h.Set("X-RateLimit-Limit", "600")
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(int64(math.Ceil(float64(at.UnixNano())/1e9)), 10))
		q.write(http.StatusTooManyRequests, "application/json", sendgridErrors("", "too many requests"))
	default:
		detail := "You have exceeded the limit of 10 simultaneous connections."
		if !conc {
			detail = "You have made too many requests. Please try again later."
		}
		q.write(http.StatusTooManyRequests, problemType, mailchimpProblem(http.StatusTooManyRequests, "Too Many Requests", detail))
	}
}

func (p *Provider) errorAnswer(q *request, status int, msg string) {
	switch p.opt.Kind {
	case SendGrid:
		q.write(status, "application/json", sendgridErrors("", msg))
	default:
		title := http.StatusText(status)
		detail := msg
		if status == http.StatusNotFound {
			title, detail = "Resource Not Found", "The requested resource could not be found."
		}
		q.write(status, problemType, mailchimpProblem(status, title, detail))
	}
}

// ---- SendGrid ----

func sendgridErrors(field, msg string) string {
	e := map[string]any{"field": nil, "message": msg}
	if field != "" {
		e["field"] = field
	}
	return mustJSON(map[string]any{"errors": []any{e}})
}

type sendgridBody struct {
	RecipientEmails []json.RawMessage `json:"recipient_emails"`
}

func sendgridAddresses(body []byte) []string {
	var b sendgridBody
	_ = json.Unmarshal(body, &b)
	var out []string
	for _, raw := range b.RecipientEmails {
		var e string
		if json.Unmarshal(raw, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// sendgridAdd answers POST /v3/asm/suppressions/global and POST
// /v3/asm/groups/{id}/suppressions {"recipient_emails": [...]}: 201
// echoing the addresses (adding an address already suppressed is
// accepted); 400 {"errors": [{"field", "message"}]} for a bad body or
// more than MaxBatch addresses.
func (p *Provider) sendgridAdd(q *request) {
	var b sendgridBody
	if err := json.Unmarshal(q.body, &b); err != nil {
		q.write(http.StatusBadRequest, "application/json", sendgridErrors("", "invalid JSON"))
		return
	}
	emails := q.call.Addresses
	switch {
	case len(b.RecipientEmails) == 0:
		q.write(http.StatusBadRequest, "application/json", sendgridErrors("recipient_emails", "recipient_emails is required and must contain at least one address"))
		return
	case len(emails) != len(b.RecipientEmails):
		q.write(http.StatusBadRequest, "application/json", sendgridErrors("recipient_emails", "recipient_emails must be an array of strings"))
		return
	case len(emails) > p.MaxBatch():
		q.write(http.StatusBadRequest, "application/json", sendgridErrors("recipient_emails", fmt.Sprintf("recipient_emails may contain at most %d addresses", p.MaxBatch())))
		return
	}
	for _, e := range emails {
		if !looksLikeEmail(e) {
			q.write(http.StatusBadRequest, "application/json", sendgridErrors("recipient_emails", "one or more email addresses are invalid"))
			return
		}
	}
	p.logReceived(emails)
	q.write(http.StatusCreated, "application/json", mustJSON(map[string]any{"recipient_emails": emails}))
}

// sendgridOne answers GET (200 {} or {"recipient_email"}) and DELETE (204,
// present or not) of /v3/asm/suppressions/global/{email}. They are not
// pushes: nothing is logged as received.
func (p *Provider) sendgridOne(q *request, email string) {
	if q.r.Method == http.MethodDelete {
		q.w.WriteHeader(http.StatusNoContent)
		q.call.Status = http.StatusNoContent
		return
	}
	p.mu.Lock()
	_, ok := p.received[email]
	p.mu.Unlock()
	body := "{}"
	if ok {
		body = mustJSON(map[string]string{"recipient_email": email})
	}
	q.write(http.StatusOK, "application/json", body)
}

// ---- Mailchimp ----

const problemType = "application/problem+json; charset=utf-8"

func mailchimpProblem(status int, title, detail string, errs ...map[string]string) string {
	m := map[string]any{
		"type":     "https://mailchimp.com/developer/marketing/docs/errors/",
		"title":    title,
		"status":   status,
		"detail":   detail,
		"instance": instanceID(),
	}
	if len(errs) > 0 {
		m["errors"] = errs
	}
	return mustJSON(m)
}

type mailchimpMember struct {
	EmailAddress string `json:"email_address"`
	Status       string `json:"status,omitempty"`
	StatusIfNew  string `json:"status_if_new,omitempty"`
}

type mailchimpBatchBody struct {
	Members        []mailchimpMember `json:"members"`
	UpdateExisting bool              `json:"update_existing"`
}

func mailchimpBatchAddresses(body []byte) []string {
	var b mailchimpBatchBody
	_ = json.Unmarshal(body, &b)
	out := make([]string, 0, len(b.Members))
	for _, m := range b.Members {
		out = append(out, m.EmailAddress)
	}
	return out
}

func mailchimpMemberAddresses(body []byte) []string {
	var m mailchimpMember
	if json.Unmarshal(body, &m) != nil || m.EmailAddress == "" {
		return nil
	}
	return []string{m.EmailAddress}
}

var mailchimpStatuses = map[string]bool{"subscribed": true, "unsubscribed": true, "cleaned": true, "pending": true, "transactional": true}

type mailchimpAnswerMember struct {
	ID           string `json:"id"`
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
	ListID       string `json:"list_id"`
}

type mailchimpMemberError struct {
	EmailAddress string `json:"email_address"`
	Error        string `json:"error"`
	ErrorCode    string `json:"error_code"`
}

const invalidResource = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."

// mailchimpBatch answers POST /3.0/lists/{list_id} ("Batch subscribe or
// unsubscribe"): 200 {new_members, updated_members, errors, total_created,
// total_updated, error_count}; 400 problem detail for a bad body or more
// than MaxBatch members; 404 for another list.
func (p *Provider) mailchimpBatch(q *request, list string) {
	if list != p.opt.ListID {
		p.errorAnswer(q, http.StatusNotFound, "")
		return
	}
	var b mailchimpBatchBody
	if err := json.Unmarshal(q.body, &b); err != nil {
		q.write(http.StatusBadRequest, problemType, mailchimpProblem(http.StatusBadRequest, "JSON Parse Error", "We encountered an unspecified JSON parsing error."))
		return
	}
	switch {
	case b.Members == nil:
		q.write(http.StatusBadRequest, problemType, mailchimpProblem(http.StatusBadRequest, "Invalid Resource", invalidResource,
			map[string]string{"field": "members", "message": "Required fields were not provided: members"}))
		return
	case len(b.Members) > p.MaxBatch():
		q.write(http.StatusBadRequest, problemType, mailchimpProblem(http.StatusBadRequest, "Invalid Resource", invalidResource,
			map[string]string{"field": "members", "message": fmt.Sprintf("Array has too many items (%d), the maximum is %d", len(b.Members), p.MaxBatch())}))
		return
	}
	newM, updM, errs := []mailchimpAnswerMember{}, []mailchimpAnswerMember{}, []mailchimpMemberError{}
	var applied []string
	p.mu.Lock()
	for _, m := range b.Members {
		k := strings.ToLower(strings.TrimSpace(m.EmailAddress))
		st := m.Status
		if !p.members[k] && m.StatusIfNew != "" {
			st = m.StatusIfNew
		}
		switch {
		case !looksLikeEmail(m.EmailAddress):
			errs = append(errs, mailchimpMemberError{m.EmailAddress, m.EmailAddress + " looks fake or invalid, please enter a real email address.", "ERROR_GENERIC"})
		case !mailchimpStatuses[st]:
			errs = append(errs, mailchimpMemberError{m.EmailAddress, "Invalid status: " + st, "ERROR_GENERIC"})
		case p.members[k] && !b.UpdateExisting:
			errs = append(errs, mailchimpMemberError{m.EmailAddress, m.EmailAddress + " is already a list member. Use PUT to insert or update list members.", "ERROR_CONTACT_EXISTS"})
		case p.members[k]:
			updM = append(updM, answerMember(list, m.EmailAddress, st))
			applied = append(applied, m.EmailAddress)
		default:
			p.members[k] = true
			newM = append(newM, answerMember(list, m.EmailAddress, st))
			applied = append(applied, m.EmailAddress)
		}
	}
	p.mu.Unlock()
	p.logReceived(applied)
	q.write(http.StatusOK, "application/json; charset=utf-8", mustJSON(map[string]any{
		"new_members": newM, "updated_members": updM, "errors": errs,
		"total_created": len(newM), "total_updated": len(updM), "error_count": len(errs),
	}))
}

// mailchimpPut answers PUT /3.0/lists/{list_id}/members/{subscriber_hash}
// {email_address, status_if_new, status}: 200 with the member; 400 when the
// hash is not the MD5 of the lower-case address.
func (p *Provider) mailchimpPut(q *request, list, hash string) {
	if list != p.opt.ListID {
		p.errorAnswer(q, http.StatusNotFound, "")
		return
	}
	var m mailchimpMember
	if err := json.Unmarshal(q.body, &m); err != nil {
		q.write(http.StatusBadRequest, problemType, mailchimpProblem(http.StatusBadRequest, "JSON Parse Error", "We encountered an unspecified JSON parsing error."))
		return
	}
	k := strings.ToLower(strings.TrimSpace(m.EmailAddress))
	sum := md5.Sum([]byte(k))
	if m.EmailAddress == "" || !strings.EqualFold(hex.EncodeToString(sum[:]), hash) {
		q.write(http.StatusBadRequest, problemType, mailchimpProblem(http.StatusBadRequest, "Invalid Resource", "The subscriber hash does not match the email address."))
		return
	}
	st := m.Status
	p.mu.Lock()
	if !p.members[k] && m.StatusIfNew != "" {
		st = m.StatusIfNew
	}
	ok := mailchimpStatuses[st] && looksLikeEmail(m.EmailAddress)
	if ok {
		p.members[k] = true
	}
	p.mu.Unlock()
	if !ok {
		q.write(http.StatusBadRequest, problemType, mailchimpProblem(http.StatusBadRequest, "Invalid Resource", invalidResource))
		return
	}
	p.logReceived([]string{m.EmailAddress})
	q.write(http.StatusOK, "application/json; charset=utf-8", mustJSON(answerMember(list, m.EmailAddress, st)))
}

func answerMember(list, email, status string) mailchimpAnswerMember {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return mailchimpAnswerMember{ID: hex.EncodeToString(sum[:]), EmailAddress: email, Status: status, ListID: list}
}

// ---- control API ----

// FaultJSON is a Fault as the control API reads it (PUT /_fake/fault).
type FaultJSON struct {
	Kind         string `json:"kind"`
	ResetMS      int64  `json:"reset_ms,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
	DelayMS      int64  `json:"delay_ms,omitempty"`
}

// Fault converts j; an unknown kind is an error.
func (j FaultJSON) Fault() (Fault, error) {
	for k, n := range faultNames {
		if n == j.Kind || (j.Kind == "" && k == Normal) {
			return Fault{Kind: k, Reset: time.Duration(j.ResetMS) * time.Millisecond,
				RetryAfter: time.Duration(j.RetryAfterMS) * time.Millisecond, Delay: time.Duration(j.DelayMS) * time.Millisecond}, nil
		}
	}
	return Fault{}, fmt.Errorf("unknown fault kind %q", j.Kind)
}

func (p *Provider) ctlStats(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	n := 0
	for _, ts := range p.received {
		n += len(ts)
	}
	body := mustJSON(map[string]int{"calls": len(p.calls), "accepted": p.accepted, "addresses": len(p.received), "received": n})
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

func (p *Provider) ctlReceived(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p.Received())
}

func (p *Provider) ctlFault(w http.ResponseWriter, r *http.Request) {
	var j FaultJSON
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		http.Error(w, "bad fault JSON", http.StatusBadRequest)
		return
	}
	f, err := j.Fault()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.SetFault(f)
	w.WriteHeader(http.StatusNoContent)
}

// SetRemoteFault sets the fault of a Provider served at baseURL (another
// process) through its control API.
func SetRemoteFault(ctx context.Context, baseURL string, f Fault) error {
	j := FaultJSON{Kind: f.Kind.String(), ResetMS: f.Reset.Milliseconds(), RetryAfterMS: f.RetryAfter.Milliseconds(), DelayMS: f.Delay.Milliseconds()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(baseURL, "/")+"/_fake/fault", bytes.NewReader([]byte(mustJSON(j))))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("fakeprovider: set fault: HTTP %d", resp.StatusCode)
	}
	return nil
}

// ---- helpers ----

func ceilSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

func looksLikeEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	return at > 0 && at < len(e)-1 && !strings.ContainsAny(e, " \t\r\n<>")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"error":"fakeprovider: cannot encode answer"}`
	}
	return string(b)
}

var instanceSeq struct {
	sync.Mutex
	n uint64
}

func instanceID() string {
	instanceSeq.Lock()
	instanceSeq.n++
	n := instanceSeq.n
	instanceSeq.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", n)
}
