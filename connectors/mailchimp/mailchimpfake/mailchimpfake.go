// Package mailchimpfake stands in for Mailchimp's Marketing API list
// members in tests, the demo's sandbox and benchmarks. It serves
// Mailchimp's paths at the root, so a destination's base_url is the
// server's URL:
//
//	POST /3.0/lists/{list_id}                            batch subscribe or unsubscribe
//	GET  /3.0/lists/{list_id}/members/{subscriber_hash}  get member info
//	GET  /3.0/lists/{list_id}/members?status=&count=&offset=  list members info (paged)
//
// Reference: https://mailchimp.com/developer/marketing/api/list-members/
// and https://mailchimp.com/developer/marketing/api/lists/ ("Batch
// subscribe or unsubscribe", at most 500 members); errors:
// https://mailchimp.com/developer/marketing/docs/errors/.
//
// Every path checks basic auth first (any user name, the API key as
// password): a wrong or missing key is 401 "API Key Invalid" as an RFC 7807
// problem detail {type, title, status, detail, instance}. Unknown paths are
// 404 "Resource Not Found". Script (from the embedded fakeapi.Recorder)
// queues answers given before any of this: Throttled() is the 403
// Mailchimp sometimes sends instead of 429. A Fake is safe for concurrent
// use.
package mailchimpfake

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

// DefaultKey is the API key New accepts unless WithKey says otherwise.
const DefaultKey = "demo-key-us21"

// MaxMembers is Mailchimp's limit of members per batch call; more is
// refused with a 400 problem detail.
const MaxMembers = 500

// ProblemType is the "type" of Mailchimp's problem details.
const ProblemType = "https://mailchimp.com/developer/marketing/docs/errors/"

const problemJSON = "application/problem+json; charset=utf-8"

// BatchMember is one entry of a batch call's members.
type BatchMember struct {
	EmailAddress string `json:"email_address"`
	Status       string `json:"status,omitempty"`
	StatusIfNew  string `json:"status_if_new,omitempty"`
}

// Member is a list member as the fake stores it.
type Member struct {
	ListID       string `json:"list_id"`
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
	// LastChanged is when the member's status last changed (Mailchimp's
	// last_changed).
	LastChanged time.Time `json:"last_changed"`
}

// MaxCount is the largest count (page size) "List members info" accepts
// (https://mailchimp.com/developer/marketing/api/list-members/list-members-info/:
// "Maximum value is 1000"); more is a 400.
const MaxCount = 1000

// Fake is one Mailchimp account's audiences. Use New.
type Fake struct {
	fakeapi.Recorder

	mu         sync.Mutex
	key        string
	members    map[string]map[string]Member // list id → subscriber hash → member
	compliance map[string]bool              // subscriber hash
	forgotten  map[string]bool              // subscriber hash
}

// Option configures New.
type Option func(*Fake)

// WithKey sets the accepted API key ("" accepts none).
func WithKey(k string) Option { return func(f *Fake) { f.key = k } }

// WithCompliance: see SetCompliance.
func WithCompliance(emails ...string) Option { return func(f *Fake) { f.SetCompliance(emails...) } }

// WithForgotten: see SetForgotten.
func WithForgotten(emails ...string) Option { return func(f *Fake) { f.SetForgotten(emails...) } }

// WithMember: see AddMember.
func WithMember(listID, email, status string) Option {
	return func(f *Fake) { f.AddMember(listID, email, status) }
}

// WithMemberAt: see AddMemberAt.
func WithMemberAt(listID, email, status string, at time.Time) Option {
	return func(f *Fake) { f.AddMemberAt(listID, email, status, at) }
}

// New returns a fake accepting DefaultKey with empty lists.
func New(opts ...Option) *Fake {
	f := &Fake{key: DefaultKey, members: map[string]map[string]Member{}, compliance: map[string]bool{}, forgotten: map[string]bool{}}
	f.ErrorBody = ErrorBody
	f.ContentType = problemJSON
	for _, o := range opts {
		o(f)
	}
	return f
}

// SubscriberHash is Mailchimp's member id: the hex MD5 of the lower-cased
// address (https://mailchimp.com/developer/marketing/docs/methods-parameters/).
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(fakeapi.Lower(email)))
	return hex.EncodeToString(sum[:])
}

// Problem is Mailchimp's error body for status, as a map to extend.
func Problem(status int, title, detail string) map[string]any {
	return map[string]any{"type": ProblemType, "title": title, "status": status, "detail": detail, "instance": correlationID()}
}

// ErrorBody is the problem detail for status, titled with its status text
// (429: "You have exceeded the limit of 10 simultaneous connections.").
func ErrorBody(status int) string {
	detail := http.StatusText(status)
	if status == http.StatusTooManyRequests {
		detail = "You have exceeded the limit of 10 simultaneous connections."
	}
	return mustJSON(Problem(status, http.StatusText(status), detail))
}

// Throttled is the 403 Mailchimp sometimes sends instead of 429: a problem
// detail titled "Too Many Requests".
func Throttled() fakeapi.Answer {
	return fakeapi.Answer{Status: http.StatusForbidden, Header: http.Header{"Content-Type": {problemJSON}},
		Body: mustJSON(Problem(http.StatusForbidden, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."))}
}

// SetKey replaces the accepted API key ("" accepts none).
func (f *Fake) SetKey(k string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = k
}

// Authorized reports whether r carries basic auth with the accepted key as
// password (any user name).
func (f *Fake) Authorized(r *http.Request) bool {
	f.mu.Lock()
	want := f.key
	f.mu.Unlock()
	_, pass, ok := r.BasicAuth()
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1
}

// SetCompliance marks addresses Mailchimp keeps in a compliance state: any
// batch change to them is refused per member ("… is in a compliance state
// …", error_code ERROR_GENERIC) inside a 200.
func (f *Fake) SetCompliance(emails ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range emails {
		f.compliance[SubscriberHash(e)] = true
	}
}

// SetForgotten marks addresses that were permanently deleted ("Forgotten
// Email Not Subscribed"), refused per member like compliance.
func (f *Fake) SetForgotten(emails ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range emails {
		f.forgotten[SubscriberHash(e)] = true
	}
}

// AddMember adds or replaces a list member (status "subscribed",
// "unsubscribed", "cleaned", "pending" or "transactional"), no call
// recorded.
func (f *Fake) AddMember(listID, email, status string) {
	f.AddMemberAt(listID, email, status, time.Now())
}

// AddMemberAt is AddMember with the member's last_changed (a member
// unsubscribed before consentsync existed, for backfills).
func (f *Fake) AddMemberAt(listID, email, status string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listLocked(listID)[SubscriberHash(email)] = Member{ListID: listID, EmailAddress: email, Status: status, LastChanged: at.UTC()}
}

// Forget deletes a member from a list behind consentsync's back (an
// operator archiving or deleting the contact), to test drift detection:
// the member's GET answers 404 afterwards. It reports whether the address
// was a member. The address matches in any case.
func (f *Fake) Forget(listID, email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := SubscriberHash(email)
	_, ok := f.members[listID][h]
	delete(f.members[listID], h)
	return ok
}

// Members returns a list's members sorted by address.
func (f *Fake) Members(listID string) []Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.membersLocked(listID)
}

// Status returns a member's status ("unsubscribed", ...), or "" when the
// address is not in the list. The address matches in any case.
func (f *Fake) Status(listID, email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[listID][SubscriberHash(email)].Status
}

// Lists returns every list's members, sorted by address.
func (f *Fake) Lists() map[string][]Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]Member{}
	for id := range f.members {
		out[id] = f.membersLocked(id)
	}
	return out
}

func (f *Fake) membersLocked(listID string) []Member {
	var out []Member
	for _, m := range f.members[listID] {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EmailAddress < out[j].EmailAddress })
	return out
}

func (f *Fake) listLocked(listID string) map[string]Member {
	l := f.members[listID]
	if l == nil {
		l = map[string]Member{}
		f.members[listID] = l
	}
	return l
}

// Handler serves Mailchimp's paths at the root, through Recorder.Wrap
// (every call recorded; scripted answers first).
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3.0/lists/{list_id}", f.batch)
	mux.HandleFunc("GET /3.0/lists/{list_id}/members/{subscriber_hash}", f.member)
	mux.HandleFunc("GET /3.0/lists/{list_id}/members", f.list)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fakeapi.WriteRaw(w, http.StatusNotFound, problemJSON, notFound())
	})
	return f.Wrap(mux)
}

func notFound() string {
	return mustJSON(Problem(http.StatusNotFound, "Resource Not Found", "The requested resource could not be found."))
}

func (f *Fake) auth(w http.ResponseWriter, r *http.Request) bool {
	if f.Authorized(r) {
		return true
	}
	fakeapi.WriteRaw(w, http.StatusUnauthorized, problemJSON, mustJSON(Problem(http.StatusUnauthorized, "API Key Invalid",
		"Your API key may be invalid, or you've attempted to access the wrong datacenter.")))
	return false
}

// BatchMembers returns a batch body's members as sent (nil for a body that
// is not such an object).
func BatchMembers(body []byte) []BatchMember {
	var req struct {
		Members []BatchMember `json:"members"`
	}
	_ = json.Unmarshal(body, &req)
	return req.Members
}

type memberError struct {
	EmailAddress string `json:"email_address"`
	Error        string `json:"error"`
	ErrorCode    string `json:"error_code"`
}

// memberAnswer is a member as Mailchimp answers it (a subset of the
// documented fields).
type memberAnswer struct {
	ID            string `json:"id"`
	EmailAddress  string `json:"email_address"`
	UniqueEmailID string `json:"unique_email_id"`
	Status        string `json:"status"`
	ListID        string `json:"list_id"`
}

func answerOf(m Member) memberAnswer {
	h := SubscriberHash(m.EmailAddress)
	return memberAnswer{ID: h, EmailAddress: m.EmailAddress, UniqueEmailID: h[:10], Status: m.Status, ListID: m.ListID}
}

var statuses = map[string]bool{"subscribed": true, "unsubscribed": true, "cleaned": true, "pending": true, "transactional": true}

// batch answers POST /3.0/lists/{list_id} ("Batch subscribe or
// unsubscribe"): {"members": [{email_address, status, status_if_new}],
// "update_existing": bool}, at most MaxMembers members. The answer is 200
// {new_members, updated_members, errors[{email_address, error,
// error_code}], total_created, total_updated, error_count}; a body that is
// not JSON, without members or with too many is a 400 problem detail.
func (f *Fake) batch(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	listID := r.PathValue("list_id")
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	var req struct {
		Members        []BatchMember `json:"members"`
		UpdateExisting bool          `json:"update_existing"`
	}
	jerr := json.Unmarshal(body, &req)
	problem := func(title, detail string, errs ...map[string]string) {
		p := Problem(http.StatusBadRequest, title, detail)
		if len(errs) > 0 {
			p["errors"] = errs
		}
		fakeapi.WriteRaw(w, http.StatusBadRequest, problemJSON, mustJSON(p))
	}
	const invalid = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
	switch {
	case jerr != nil:
		problem("JSON Parse Error", "We encountered an unspecified JSON parsing error.")
		return
	case req.Members == nil:
		problem("Invalid Resource", invalid, map[string]string{"field": "members", "message": "Required fields were not provided: members"})
		return
	case len(req.Members) > MaxMembers:
		problem("Invalid Resource", invalid, map[string]string{"field": "members",
			"message": fmt.Sprintf("Array has too many items (%d), the maximum is %d", len(req.Members), MaxMembers)})
		return
	}
	newM, updM, errs := []memberAnswer{}, []memberAnswer{}, []memberError{}
	f.mu.Lock()
	list := f.listLocked(listID)
	for _, m := range req.Members {
		h := SubscriberHash(m.EmailAddress)
		fail := func(code, msg string) {
			errs = append(errs, memberError{EmailAddress: m.EmailAddress, Error: msg, ErrorCode: code})
		}
		cur, exists := list[h]
		switch {
		case !fakeapi.LooksLikeEmail(m.EmailAddress):
			fail("ERROR_GENERIC", fmt.Sprintf("%s looks fake or invalid, please enter a real email address.", m.EmailAddress))
		case f.compliance[h]:
			fail("ERROR_GENERIC", fmt.Sprintf("%s is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.", m.EmailAddress))
		case f.forgotten[h]:
			fail("ERROR_GENERIC", fmt.Sprintf("Forgotten Email Not Subscribed: %s was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.", m.EmailAddress))
		case exists && !req.UpdateExisting:
			fail("ERROR_CONTACT_EXISTS", fmt.Sprintf("%s is already a list member. Use PUT to insert or update list members.", m.EmailAddress))
		case exists:
			if m.Status != "" && !statuses[m.Status] {
				fail("ERROR_GENERIC", "Invalid status: "+m.Status)
				continue
			}
			if m.Status != "" && m.Status != cur.Status {
				cur.Status, cur.LastChanged = m.Status, time.Now().UTC()
			}
			list[h] = cur
			updM = append(updM, answerOf(cur))
		default:
			st := m.StatusIfNew
			if st == "" {
				st = m.Status
			}
			if !statuses[st] {
				fail("ERROR_GENERIC", "Invalid status: "+st)
				continue
			}
			nm := Member{ListID: listID, EmailAddress: m.EmailAddress, Status: st, LastChanged: time.Now().UTC()}
			list[h] = nm
			newM = append(newM, answerOf(nm))
		}
	}
	f.mu.Unlock()
	fakeapi.WriteRaw(w, http.StatusOK, "application/json; charset=utf-8", mustJSON(map[string]any{
		"new_members":     newM,
		"updated_members": updM,
		"errors":          errs,
		"total_created":   len(newM),
		"total_updated":   len(updM),
		"error_count":     len(errs),
	}))
}

// member answers GET /3.0/lists/{list_id}/members/{subscriber_hash} ("Get
// member info"): 200 {id, email_address, unique_email_id, status,
// list_id}, or 404 "Resource Not Found" when the hash is not a member of
// the list (never added, deleted, or forgotten). The hash is matched as
// given (Mailchimp also accepts the address itself; the fake does not).
func (f *Fake) member(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	f.mu.Lock()
	m, ok := f.members[r.PathValue("list_id")][r.PathValue("subscriber_hash")]
	f.mu.Unlock()
	if !ok {
		fakeapi.WriteRaw(w, http.StatusNotFound, problemJSON, notFound())
		return
	}
	fakeapi.WriteRaw(w, http.StatusOK, "application/json; charset=utf-8", mustJSON(answerOf(m)))
}

// list answers GET /3.0/lists/{list_id}/members?status=S&count=N&offset=M
// ("List members info"): 200 {"members": [{id, email_address,
// unique_email_id, status, list_id, last_changed, unsubscribe_reason}],
// "list_id", "total_items"} with at most count members of status S (any
// status when absent) from offset, sorted by address; count defaults to
// 10, as Mailchimp's. A count over MaxCount, a negative or non-numeric
// count or offset, or an unknown status is a 400 problem detail; an
// unknown list is 404.
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
	count, ok1 := num("count", 10)
	offset, ok2 := num("offset", 0)
	status := q.Get("status")
	if !ok1 || !ok2 || count > MaxCount || status != "" && !statuses[status] && status != "archived" {
		fakeapi.WriteRaw(w, http.StatusBadRequest, problemJSON, mustJSON(Problem(http.StatusBadRequest, "Invalid Resource",
			"The resource submitted could not be validated: count must be 0 to 1000, offset non-negative, status a member status.")))
		return
	}
	listID := r.PathValue("list_id")
	f.mu.Lock()
	_, known := f.members[listID]
	all := f.membersLocked(listID)
	f.mu.Unlock()
	if !known {
		fakeapi.WriteRaw(w, http.StatusNotFound, problemJSON, notFound())
		return
	}
	var match []Member
	for _, m := range all {
		if status == "" || m.Status == status {
			match = append(match, m)
		}
	}
	type listed struct {
		memberAnswer
		LastChanged       string `json:"last_changed"`
		UnsubscribeReason string `json:"unsubscribe_reason,omitempty"`
	}
	out := []listed{}
	for i := offset; i < len(match) && len(out) < count; i++ {
		m := match[i]
		l := listed{memberAnswer: answerOf(m), LastChanged: m.LastChanged.Format("2006-01-02T15:04:05-07:00")}
		if m.Status == "unsubscribed" {
			l.UnsubscribeReason = "N/A (Unsubscribed by an admin)"
		}
		out = append(out, l)
	}
	fakeapi.WriteRaw(w, http.StatusOK, "application/json; charset=utf-8", mustJSON(map[string]any{
		"members": out, "list_id": listID, "total_items": len(match),
	}))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"title":"mailchimpfake: cannot encode answer"}`
	}
	return string(b)
}

func correlationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
