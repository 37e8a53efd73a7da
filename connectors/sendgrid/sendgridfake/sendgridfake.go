// Package sendgridfake stands in for SendGrid's global suppressions API
// (the "Unsubscribe From All Emails" list) in tests, the demo's sandbox and
// benchmarks. It serves SendGrid's paths at the root, so a destination's
// base_url is the server's URL:
//
//	POST   /v3/asm/suppressions/global          add addresses (201)
//	GET    /v3/asm/suppressions/global/{email}  read one back (200)
//	DELETE /v3/asm/suppressions/global/{email}  lift one (204)
//	GET    /v3/suppression/unsubscribes?limit=&offset=  list global suppressions (200, paged)
//	GET    /v3/asm/suppressions                 list group suppressions (200, not paged)
//
// Reference: https://www.twilio.com/docs/sendgrid/api-reference/suppressions-global-suppressions
// (add-recipient-addresses-to-the-global-suppression-group,
// retrieve-a-global-suppression, delete-a-global-suppression,
// retrieve-all-global-suppressions) and
// https://www.twilio.com/docs/sendgrid/api-reference/suppressions-suppressions/retrieve-all-suppressions.
//
// Every path checks "Authorization: Bearer KEY" first: a wrong or missing
// key is SendGrid's 401 {"errors": [{"field": null, "message":
// "authorization required"}]}. Unknown paths are 404 with the same error
// shape. Script (from the embedded fakeapi.Recorder) queues answers given
// before any of this, e.g. fakeapi.TooMany(ResetHeader(t)) for SendGrid's
// own 429. A Fake is safe for concurrent use.
package sendgridfake

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

// DefaultKey is the API key New accepts unless WithKey says otherwise.
const DefaultKey = "SG.demo-key"

// Fake is SendGrid's global suppression list for one account. Use New.
type Fake struct {
	fakeapi.Recorder

	mu         sync.Mutex
	key        string
	suppressed map[string]string // lower-cased address → as first sent
	// order is the lower-cased addresses in the order first suppressed,
	// created their time (Unix seconds): the listing's order and dates.
	order   []string
	created map[string]int64
	groups  []GroupSuppression
	clock   func() time.Time
}

// GroupSuppression is one address suppressed in one unsubscribe group.
type GroupSuppression struct {
	Email     string
	GroupID   int64
	GroupName string
	CreatedAt time.Time
}

// MaxListLimit is the largest limit the global suppressions listing
// accepts (a larger one is SendGrid's 400).
const MaxListLimit = 500

// Option configures New.
type Option func(*Fake)

// WithKey sets the accepted API key ("" accepts none).
func WithKey(k string) Option { return func(f *Fake) { f.key = k } }

// WithSuppressed starts the fake with these addresses globally suppressed.
func WithSuppressed(emails ...string) Option { return func(f *Fake) { f.Suppress(emails...) } }

// WithSuppressedAt starts the fake with email globally suppressed since at
// (a suppression older than consentsync, for backfills).
func WithSuppressedAt(email string, at time.Time) Option {
	return func(f *Fake) { f.SuppressAt(email, at) }
}

// WithGroupSuppressed starts the fake with g.
func WithGroupSuppressed(g ...GroupSuppression) Option {
	return func(f *Fake) { f.groups = append(f.groups, g...) }
}

// New returns a fake accepting DefaultKey with no suppression.
func New(opts ...Option) *Fake {
	f := &Fake{key: DefaultKey, suppressed: map[string]string{}, created: map[string]int64{}, clock: time.Now}
	f.ErrorBody = func(status int) string { return ErrorBody(strings.ToLower(http.StatusText(status))) }
	f.ContentType = "application/json"
	for _, o := range opts {
		o(f)
	}
	return f
}

// ErrorBody is SendGrid's error body: {"errors": [{"field": null,
// "message": msg}]}.
func ErrorBody(msg string) string {
	return mustJSON(map[string]any{"errors": []any{map[string]any{"field": nil, "message": msg}}})
}

// ResetHeader is SendGrid's 429 headers: X-RateLimit-Limit,
// X-RateLimit-Remaining 0 and X-RateLimit-Reset (epoch seconds), no
// Retry-After (https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits).
// Use with fakeapi.TooMany.
func ResetHeader(at time.Time) http.Header {
	return http.Header{
		"X-Ratelimit-Limit":     {"600"},
		"X-Ratelimit-Remaining": {"0"},
		"X-Ratelimit-Reset":     {strconv.FormatInt(at.Unix(), 10)},
	}
}

// SetKey replaces the accepted API key ("" accepts none).
func (f *Fake) SetKey(k string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = k
}

// Authorized reports whether r carries "Authorization: Bearer KEY" with
// the accepted key.
func (f *Fake) Authorized(r *http.Request) bool {
	f.mu.Lock()
	want := f.key
	f.mu.Unlock()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

// Suppress adds addresses to the global suppressions, as a POST would (no
// call recorded).
func (f *Fake) Suppress(emails ...string) {
	for _, e := range emails {
		f.SuppressAt(e, f.clock())
	}
}

// SuppressAt adds email to the global suppressions, created at (no call
// recorded); an address already there keeps its first date.
func (f *Fake) SuppressAt(email string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeapi.Lower(email)
	if _, ok := f.suppressed[k]; !ok {
		f.suppressed[k] = email
		f.order = append(f.order, k)
		f.created[k] = at.Unix()
	}
}

// Forget removes an address from the global suppressions behind
// consentsync's back (an operator deleting it in SendGrid's UI), to test
// drift detection. It reports whether the address was suppressed. The
// address matches in any case.
func (f *Fake) Forget(email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeapi.Lower(email)
	_, ok := f.suppressed[k]
	delete(f.suppressed, k)
	delete(f.created, k)
	if ok {
		for i, o := range f.order {
			if o == k {
				f.order = append(f.order[:i], f.order[i+1:]...)
				break
			}
		}
	}
	return ok
}

// Suppressed returns the globally suppressed addresses as first sent,
// sorted.
func (f *Fake) Suppressed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.suppressed))
	for _, e := range f.suppressed {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// IsSuppressed reports whether email (any case) is globally suppressed.
func (f *Fake) IsSuppressed(email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.suppressed[fakeapi.Lower(email)]
	return ok
}

// Handler serves SendGrid's paths at the root, through Recorder.Wrap
// (every call recorded; scripted answers first).
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/asm/suppressions/global", f.add)
	mux.HandleFunc("GET /v3/asm/suppressions/global/{email}", f.get)
	mux.HandleFunc("DELETE /v3/asm/suppressions/global/{email}", f.remove)
	mux.HandleFunc("GET /v3/suppression/unsubscribes", f.list)
	mux.HandleFunc("GET /v3/asm/suppressions", f.listGroups)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("resource not found"))
	})
	return f.Wrap(mux)
}

func (f *Fake) auth(w http.ResponseWriter, r *http.Request) bool {
	if f.Authorized(r) {
		return true
	}
	fakeapi.WriteRaw(w, http.StatusUnauthorized, "application/json", ErrorBody("authorization required"))
	return false
}

// RecipientEmails returns the string entries of a POST body's
// recipient_emails, in order (nil for a body that is not such an object).
func RecipientEmails(body []byte) []string {
	emails, _, _ := parseAdd(body)
	return emails
}

func parseAdd(body []byte) (emails []string, n int, err error) {
	var req struct {
		RecipientEmails []json.RawMessage `json:"recipient_emails"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, 0, err
	}
	for _, raw := range req.RecipientEmails {
		var e string
		if json.Unmarshal(raw, &e) == nil {
			emails = append(emails, e)
		}
	}
	return emails, len(req.RecipientEmails), nil
}

// add answers POST /v3/asm/suppressions/global {"recipient_emails":
// [...]}: 201 echoing the addresses, which are now globally suppressed
// (adding one twice is fine); 400 {"errors": [{"field", "message"}]} for a
// body that is not JSON, without addresses, with a non-string entry or an
// invalid address. SendGrid documents no limit on the number of addresses,
// so the fake sets none.
func (f *Fake) add(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	emails, n, err := parseAdd(body)
	field := func(name, msg string) {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json",
			mustJSON(map[string]any{"errors": []any{map[string]any{"field": name, "message": msg}}}))
	}
	switch {
	case err != nil:
		field("", "invalid JSON")
		return
	case n == 0:
		field("recipient_emails", "recipient_emails is required and must contain at least one address")
		return
	case len(emails) != n:
		field("recipient_emails", "recipient_emails must be an array of strings")
		return
	}
	for _, e := range emails {
		if !fakeapi.LooksLikeEmail(e) {
			field("recipient_emails", "one or more email addresses are invalid")
			return
		}
	}
	f.Suppress(emails...)
	fakeapi.WriteRaw(w, http.StatusCreated, "application/json", mustJSON(map[string]any{"recipient_emails": emails}))
}

// get answers GET /v3/asm/suppressions/global/{email}: 200
// {"recipient_email": e} (as first sent) when suppressed, else 200 {}.
func (f *Fake) get(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	f.mu.Lock()
	got, ok := f.suppressed[fakeapi.Lower(r.PathValue("email"))]
	f.mu.Unlock()
	body := "{}"
	if ok {
		body = mustJSON(map[string]string{"recipient_email": got})
	}
	fakeapi.WriteRaw(w, http.StatusOK, "application/json", body)
}

// remove answers DELETE /v3/asm/suppressions/global/{email}: 204, whether
// or not the address was suppressed.
func (f *Fake) remove(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	f.Forget(r.PathValue("email"))
	w.WriteHeader(http.StatusNoContent)
}

// list answers GET /v3/suppression/unsubscribes?limit=N&offset=M: 200
// with the array [{"created": epoch seconds, "email"}] of at most limit
// global suppressions from offset, oldest first (limit defaults to
// MaxListLimit); 400 for a limit or offset that is not a non-negative
// integer, or a limit over MaxListLimit.
func (f *Fake) list(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	q := r.URL.Query()
	num := func(name string, def int) (int, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= 0
	}
	limit, ok1 := num("limit", MaxListLimit)
	offset, ok2 := num("offset", 0)
	if !ok1 || !ok2 || limit > MaxListLimit {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json",
			mustJSON(map[string]any{"errors": []any{map[string]any{"field": "limit", "message": "limit must be an integer between 0 and 500"}}}))
		return
	}
	f.mu.Lock()
	out := []map[string]any{}
	for i := offset; i < len(f.order) && len(out) < limit; i++ {
		k := f.order[i]
		out = append(out, map[string]any{"created": f.created[k], "email": f.suppressed[k]})
	}
	f.mu.Unlock()
	fakeapi.WriteRaw(w, http.StatusOK, "application/json", mustJSON(out))
}

// listGroups answers GET /v3/asm/suppressions: 200 with every group
// suppression, [{"email", "group_id", "group_name", "created_at"}].
func (f *Fake) listGroups(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	f.mu.Lock()
	out := []map[string]any{}
	for _, g := range f.groups {
		out = append(out, map[string]any{"email": g.Email, "group_id": g.GroupID, "group_name": g.GroupName, "created_at": g.CreatedAt.Unix()})
	}
	f.mu.Unlock()
	fakeapi.WriteRaw(w, http.StatusOK, "application/json", mustJSON(out))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"errors":[{"field":null,"message":"sendgridfake: cannot encode answer"}]}`
	}
	return string(b)
}
