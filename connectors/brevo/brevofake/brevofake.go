// Package brevofake stands in for Brevo's contacts API in tests, the demo's
// sandbox and benchmarks. It serves Brevo's paths at the root, so a
// destination's base_url is the server's URL:
//
//	POST /v3/contacts/batch         update existing contacts (204; 207 when some are not updated)
//	POST /v3/contacts               create a contact, or update it with updateEnabled (201 / 204)
//	GET  /v3/contacts/{identifier}  read one back (200 / 404), ?identifierType=email_id|phone_id|contact_id
//	PUT  /v3/contacts/{identifier}  update one contact (204 / 404), same identifierType
//
// References: https://developers.brevo.com/reference/update-batch-contacts,
// https://developers.brevo.com/reference/create-contact,
// https://developers.brevo.com/reference/update-contact,
// https://developers.brevo.com/reference/get-contact-info.
//
// Every path checks the "api-key" header first: a wrong or missing key is
// Brevo's 401 {"code": "unauthorized", "message": "Key not found"}. The
// batch update is all or nothing, as Brevo's is: one unknown contact makes
// it answer 404 {"code": "document_not_found", "message": "No contact found
// for indexes 3,4"} (0-based positions in contacts) and change nothing
// (https://github.com/getbrevo/brevo-php/issues/7). A batch of more than
// MaxBatch contacts is refused with 400 {"code": "invalid_parameter"}:
// Brevo documents no count limit for this call, so that limit is the one
// consentsync keeps to, not one Brevo is known to enforce. Script (from the
// embedded fakeapi.Recorder) queues answers given before any of this, e.g.
// fakeapi.TooMany(ResetHeader(60)). A Fake is safe for concurrent use.
package brevofake

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
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
const DefaultKey = "xkeysib-demo-key"

// DefaultMaxBatch is how many contacts one batch update may carry unless
// WithMaxBatch says otherwise (see the package comment).
const DefaultMaxBatch = 100

// Contact is one Brevo contact as the fake holds it.
type Contact struct {
	ID               int64
	Email            string
	SMS              string
	EmailBlacklisted bool
	SMSBlacklisted   bool
	CreatedAt        time.Time
	ModifiedAt       time.Time
}

// Fake is one Brevo account's contacts. Use New.
type Fake struct {
	fakeapi.Recorder

	mu       sync.Mutex
	key      string
	maxBatch int
	nextID   int64
	contacts map[int64]*Contact
	byEmail  map[string]int64 // lower-cased
	bySMS    map[string]int64 // digits only
	stuck    map[int64]bool   // contacts a batch update does not change (207)
}

// FailInBatch makes the batch update leave the contacts of these email
// addresses unchanged, as Brevo does for contacts it cannot update in a
// batch: the others are updated and the answer is 207 {"successIds":
// [...], "failureIds": [...]} with Brevo contact ids ("few contacts
// updated", https://developers.brevo.com/reference/update-batch-contacts).
// A call of their own (POST or PUT /v3/contacts) still updates them. The
// contacts must exist (AddContact, WithContacts).
func (f *Fake) FailInBatch(emails ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stuck == nil {
		f.stuck = map[int64]bool{}
	}
	for _, e := range emails {
		if c := f.lookup(e, ""); c != nil {
			f.stuck[c.ID] = true
		}
	}
}

// Option configures New.
type Option func(*Fake)

// WithKey sets the accepted API key ("" accepts none).
func WithKey(k string) Option { return func(f *Fake) { f.key = k } }

// WithMaxBatch sets how many contacts one batch update may carry.
func WithMaxBatch(n int) Option { return func(f *Fake) { f.maxBatch = n } }

// WithContacts starts the fake with contacts for these addresses, not
// blocklisted.
func WithContacts(emails ...string) Option {
	return func(f *Fake) {
		for _, e := range emails {
			f.AddContact(e, "")
		}
	}
}

// WithBlocklisted starts the fake with a contact for email whose email
// is blocklisted since at (its modifiedAt): an unsubscribe older than
// consentsync, for backfills.
func WithBlocklisted(email string, at time.Time) Option {
	return func(f *Fake) { f.Blocklist(email, at) }
}

// Blocklist blocklists email's contact (created when missing) since at,
// no call recorded (see WithBlocklisted).
func (f *Fake) Blocklist(email string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.lookup(email, "")
	if c == nil {
		c = f.create(email, "")
	}
	c.EmailBlacklisted, c.ModifiedAt = true, at.UTC()
}

// MaxListLimit is the largest limit "Get all the contacts" accepts
// (https://developers.brevo.com/reference/get-contacts: "maximum 1000");
// more is a 400.
const MaxListLimit = 1000

// New returns a fake accepting DefaultKey with no contact.
func New(opts ...Option) *Fake {
	f := &Fake{key: DefaultKey, maxBatch: DefaultMaxBatch, nextID: 1, contacts: map[int64]*Contact{}, byEmail: map[string]int64{}, bySMS: map[string]int64{}}
	f.ErrorBody = func(status int) string {
		switch status {
		case http.StatusUnauthorized:
			return ErrorBody("unauthorized", "Key not found")
		case http.StatusTooManyRequests:
			return ErrorBody("too_many_requests", "The expected rate limit is exceeded.")
		case http.StatusNotFound:
			return ErrorBody("document_not_found", "Contact does not exist")
		case http.StatusBadRequest:
			return ErrorBody("bad_request", "Bad request")
		}
		return ErrorBody("internal_error", strings.ToLower(http.StatusText(status)))
	}
	f.ContentType = "application/json"
	f.SecretHeaders = []string{"api-key"}
	for _, o := range opts {
		o(f)
	}
	return f
}

// ErrorBody is Brevo's error body: {"code": code, "message": msg}
// (https://developers.brevo.com/docs/how-it-works#error-codes).
func ErrorBody(code, msg string) string {
	b, _ := json.Marshal(map[string]string{"code": code, "message": msg})
	return string(b)
}

// ResetHeader is Brevo's rate-limit headers on a 429: x-sib-ratelimit-limit,
// x-sib-ratelimit-remaining 0 and x-sib-ratelimit-reset, the seconds until
// the window resets; no Retry-After
// (https://developers.brevo.com/docs/limit-headers). Use with
// fakeapi.TooMany.
func ResetHeader(seconds int) http.Header {
	return http.Header{
		"X-Sib-Ratelimit-Limit":     {"10"},
		"X-Sib-Ratelimit-Remaining": {"0"},
		"X-Sib-Ratelimit-Reset":     {strconv.Itoa(seconds)},
	}
}

// SetKey replaces the accepted API key.
func (f *Fake) SetKey(k string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = k
}

func phoneKey(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	s := b.String()
	return strings.TrimPrefix(s, "00")
}

func (f *Fake) now() time.Time {
	if f.Recorder.Now != nil {
		return f.Recorder.Now().UTC()
	}
	return time.Now().UTC()
}

// AddContact creates a contact with email and/or sms (E.164), not
// blocklisted, as an import would (no call recorded), and returns its id.
// An existing contact (by either identifier) is returned as is.
func (f *Fake) AddContact(email, sms string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.lookup(email, sms); c != nil {
		return c.ID
	}
	return f.create(email, sms).ID
}

func (f *Fake) lookup(email, sms string) *Contact {
	if email != "" {
		if id, ok := f.byEmail[fakeapi.Lower(email)]; ok {
			return f.contacts[id]
		}
	}
	if sms != "" {
		if id, ok := f.bySMS[phoneKey(sms)]; ok {
			return f.contacts[id]
		}
	}
	return nil
}

func (f *Fake) create(email, sms string) *Contact {
	c := &Contact{ID: f.nextID, Email: strings.TrimSpace(email), SMS: strings.TrimSpace(sms), CreatedAt: f.now(), ModifiedAt: f.now()}
	f.nextID++
	f.contacts[c.ID] = c
	if email != "" {
		f.byEmail[fakeapi.Lower(email)] = c.ID
	}
	if sms != "" {
		f.bySMS[phoneKey(sms)] = c.ID
	}
	return c
}

// Contact returns the contact with email (any case), if any.
func (f *Fake) Contact(email string) (Contact, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.lookup(email, ""); c != nil {
		return *c, true
	}
	return Contact{}, false
}

// ContactBySMS returns the contact with this mobile number, if any.
func (f *Fake) ContactBySMS(sms string) (Contact, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.lookup("", sms); c != nil {
		return *c, true
	}
	return Contact{}, false
}

// EmailBlocklisted reports whether email's contact has emailBlacklisted.
func (f *Fake) EmailBlocklisted(email string) bool {
	c, ok := f.Contact(email)
	return ok && c.EmailBlacklisted
}

// SMSBlocklisted reports whether the contact of sms has smsBlacklisted.
func (f *Fake) SMSBlocklisted(sms string) bool {
	c, ok := f.ContactBySMS(sms)
	return ok && c.SMSBlacklisted
}

// Blocklisted returns the emails of the contacts blocklisted for email,
// sorted.
func (f *Fake) Blocklisted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for _, c := range f.contacts {
		if c.EmailBlacklisted && c.Email != "" {
			out = append(out, c.Email)
		}
	}
	sort.Strings(out)
	return out
}

// Len is the number of contacts.
func (f *Fake) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.contacts)
}

// Forget clears the email blocklist flag of email's contact behind
// consentsync's back (an operator unblocking it in Brevo's UI), to test
// drift detection. It reports whether the contact was blocklisted.
func (f *Fake) Forget(email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.lookup(email, "")
	if c == nil || !c.EmailBlacklisted {
		return false
	}
	c.EmailBlacklisted = false
	return true
}

// ForgetSMS clears the SMS blocklist flag of the contact of sms, like
// Forget.
func (f *Fake) ForgetSMS(sms string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.lookup("", sms)
	if c == nil || !c.SMSBlacklisted {
		return false
	}
	c.SMSBlacklisted = false
	return true
}

// Authorized reports whether r carries the accepted "api-key".
func (f *Fake) Authorized(r *http.Request) bool {
	f.mu.Lock()
	want := f.key
	f.mu.Unlock()
	got := strings.TrimSpace(r.Header.Get("api-key"))
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Handler serves Brevo's paths at the root, through Recorder.Wrap.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/contacts/batch", f.batch)
	mux.HandleFunc("POST /v3/contacts", f.createContact)
	mux.HandleFunc("GET /v3/contacts/{identifier}", f.get)
	mux.HandleFunc("PUT /v3/contacts/{identifier}", f.update)
	mux.HandleFunc("GET /v3/contacts", f.list)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("not_found", "Invalid route"))
	})
	return f.Wrap(mux)
}

func (f *Fake) auth(w http.ResponseWriter, r *http.Request) bool {
	if f.Authorized(r) {
		return true
	}
	fakeapi.WriteRaw(w, http.StatusUnauthorized, "application/json", ErrorBody("unauthorized", "Key not found"))
	return false
}

func bad(w http.ResponseWriter, code, msg string) {
	fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody(code, msg))
}

// BatchItem is one entry of a batch update's contacts.
type BatchItem struct {
	Email            string `json:"email,omitempty"`
	SMS              string `json:"sms,omitempty"`
	ID               int64  `json:"id,omitempty"`
	EmailBlacklisted *bool  `json:"emailBlacklisted,omitempty"`
	SMSBlacklisted   *bool  `json:"smsBlacklisted,omitempty"`
}

// ParseBatch reads a batch update body {"contacts": [...]}.
func ParseBatch(body []byte) ([]BatchItem, error) {
	var req struct {
		Contacts []BatchItem `json:"contacts"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	return req.Contacts, nil
}

// batch answers POST /v3/contacts/batch: 204 when every contact (by email,
// sms or id, exactly one each) exists, its flags set (207 with the
// contact ids updated and not updated when some are FailInBatch); else 404
// document_not_found naming the 0-based indexes of the unknown ones, and
// nothing changed; 400 for a body that is not JSON, no contacts, more than
// the limit, or an item without exactly one identifier.
func (f *Fake) batch(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	items, err := ParseBatch(body)
	switch {
	case err != nil:
		bad(w, "bad_request", "Input must be a valid JSON object")
		return
	case len(items) == 0:
		bad(w, "missing_parameter", "contacts is missing")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(items) > f.maxBatch {
		bad(w, "invalid_parameter", fmt.Sprintf("contacts: at most %d contacts per request", f.maxBatch))
		return
	}
	found := make([]*Contact, len(items))
	var missing []string
	for i, it := range items {
		n := 0
		for _, set := range []bool{it.Email != "", it.SMS != "", it.ID != 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			bad(w, "invalid_parameter", fmt.Sprintf("contacts[%d]: pass exactly one of email, id or sms", i))
			return
		}
		var c *Contact
		switch {
		case it.ID != 0:
			c = f.contacts[it.ID]
		default:
			c = f.lookup(it.Email, it.SMS)
		}
		if c == nil {
			missing = append(missing, strconv.Itoa(i))
		}
		found[i] = c
	}
	if len(missing) > 0 {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("document_not_found", "No contact found for indexes "+strings.Join(missing, ",")))
		return
	}
	success, failure := []int64{}, []int64{}
	for i, it := range items {
		if f.stuck[found[i].ID] {
			failure = append(failure, found[i].ID)
			continue
		}
		f.apply(found[i], it.EmailBlacklisted, it.SMSBlacklisted)
		success = append(success, found[i].ID)
	}
	if len(failure) > 0 {
		fakeapi.WriteJSON(w, http.StatusMultiStatus, map[string][]int64{"successIds": success, "failureIds": failure})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// update answers PUT /v3/contacts/{identifier} {emailBlacklisted,
// smsBlacklisted}: 204 with the flags set; 404 document_not_found;
// identifierType as for get; 400 for a body that is not JSON.
func (f *Fake) update(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	var req struct {
		EmailBlacklisted *bool `json:"emailBlacklisted"`
		SMSBlacklisted   *bool `json:"smsBlacklisted"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		bad(w, "bad_request", "Input must be a valid JSON object")
		return
	}
	f.mu.Lock()
	c, ok := f.find(r)
	if ok && c != nil {
		f.apply(c, req.EmailBlacklisted, req.SMSBlacklisted)
	}
	f.mu.Unlock()
	switch {
	case !ok:
		bad(w, "invalid_parameter", "identifierType is not valid")
	case c == nil:
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("document_not_found", "Contact does not exist"))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// find returns the contact r's {identifier} and identifierType name (nil
// when none); ok is false for an unknown identifierType. f.mu is held.
func (f *Fake) find(r *http.Request) (c *Contact, ok bool) {
	ident := r.PathValue("identifier")
	switch t := r.URL.Query().Get("identifierType"); {
	case t == "phone_id":
		return f.lookup("", ident), true
	case t == "contact_id" || (t == "" && strings.Trim(ident, "0123456789") == ""):
		id, _ := strconv.ParseInt(ident, 10, 64)
		return f.contacts[id], true
	case t == "email_id" || t == "":
		return f.lookup(ident, ""), true
	}
	return nil, false
}

func (f *Fake) apply(c *Contact, email, sms *bool) {
	if email != nil {
		c.EmailBlacklisted = *email
	}
	if sms != nil {
		c.SMSBlacklisted = *sms
	}
	c.ModifiedAt = f.now()
}

// createContact answers POST /v3/contacts {email | attributes.SMS,
// emailBlacklisted, smsBlacklisted, updateEnabled}: 201 {"id": n} for a new
// contact; for an existing one, 204 with its flags updated when
// updateEnabled, else 400 duplicate_parameter; 400 invalid_parameter for an
// invalid email, missing_parameter without an identifier.
func (f *Fake) createContact(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	var req struct {
		Email            string         `json:"email"`
		Attributes       map[string]any `json:"attributes"`
		EmailBlacklisted *bool          `json:"emailBlacklisted"`
		SMSBlacklisted   *bool          `json:"smsBlacklisted"`
		UpdateEnabled    bool           `json:"updateEnabled"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		bad(w, "bad_request", "Input must be a valid JSON object")
		return
	}
	sms, _ := req.Attributes["SMS"].(string)
	switch {
	case req.Email == "" && sms == "":
		bad(w, "missing_parameter", "email is missing")
		return
	case req.Email != "" && !fakeapi.LooksLikeEmail(strings.TrimSpace(req.Email)):
		bad(w, "invalid_parameter", "Invalid email address")
		return
	case sms != "" && len(phoneKey(sms)) < 6:
		bad(w, "invalid_parameter", "Invalid phone number")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.lookup(req.Email, sms); c != nil {
		if !req.UpdateEnabled {
			bad(w, "duplicate_parameter", "Unable to create contact, email is already associated with another Contact")
			return
		}
		f.apply(c, req.EmailBlacklisted, req.SMSBlacklisted)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c := f.create(req.Email, sms)
	f.apply(c, req.EmailBlacklisted, req.SMSBlacklisted)
	fakeapi.WriteJSON(w, http.StatusCreated, map[string]int64{"id": c.ID})
}

// get answers GET /v3/contacts/{identifier}: 200 with the contact's email,
// id, emailBlacklisted, smsBlacklisted, createdAt, modifiedAt, attributes
// (SMS) and listIds; 404 document_not_found. identifierType email_id,
// phone_id or contact_id says what the identifier is (without it: an id
// when numeric, else an email).
func (f *Fake) get(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	f.mu.Lock()
	c, ok := f.find(r)
	if !ok {
		f.mu.Unlock()
		bad(w, "invalid_parameter", "identifierType is not valid")
		return
	}
	var out map[string]any
	if c != nil {
		out = contactJSON(c)
	}
	f.mu.Unlock()
	if out == nil {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("document_not_found", "Contact does not exist"))
		return
	}
	fakeapi.WriteJSON(w, http.StatusOK, out)
}

// contactJSON is a contact as Brevo answers it.
func contactJSON(c *Contact) map[string]any {
	attrs := map[string]any{}
	if c.SMS != "" {
		attrs["SMS"] = phoneKey(c.SMS)
	}
	return map[string]any{"email": c.Email, "id": c.ID, "emailBlacklisted": c.EmailBlacklisted, "smsBlacklisted": c.SMSBlacklisted,
		"createdAt": c.CreatedAt.Format(time.RFC3339), "modifiedAt": c.ModifiedAt.Format(time.RFC3339), "attributes": attrs, "listIds": []int{}}
}

// list answers GET /v3/contacts?limit=N&offset=M&sort=asc|desc ("Get all
// the contacts"): 200 {"contacts": [...], "count": total}, at most limit
// contacts (default 50) from offset, in order of creation (descending
// unless sort=asc, as Brevo's). A limit over MaxListLimit or a bad number
// or sort is a 400.
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
	limit, ok1 := num("limit", 50)
	offset, ok2 := num("offset", 0)
	sortDir := q.Get("sort")
	if !ok1 || !ok2 || limit > MaxListLimit || sortDir != "" && sortDir != "asc" && sortDir != "desc" {
		bad(w, "out_of_range", "limit must be 0 to 1000, offset non-negative, sort asc or desc")
		return
	}
	f.mu.Lock()
	ids := make([]int64, 0, len(f.contacts))
	for id := range f.contacts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if sortDir == "asc" {
			return ids[i] < ids[j]
		}
		return ids[i] > ids[j]
	})
	out := []map[string]any{}
	for i := offset; i < len(ids) && len(out) < limit; i++ {
		out = append(out, contactJSON(f.contacts[ids[i]]))
	}
	total := len(ids)
	f.mu.Unlock()
	fakeapi.WriteJSON(w, http.StatusOK, map[string]any{"contacts": out, "count": total})
}
