// Package klaviyofake stands in for Klaviyo's profiles and subscriptions API
// in tests, the demo's sandbox and the bench. It serves Klaviyo's paths at
// the root (base_url = the server's URL), checks the private-key header and
// the revision header as Klaviyo does, enforces the per-job profile limit
// and answers with Klaviyo's JSON:API bodies and errors
// ({"errors": [{"id", "status", "code", "title", "detail", "source"}]}).
//
// References:
// https://developers.klaviyo.com/en/reference/bulk_unsubscribe_profiles,
// https://developers.klaviyo.com/en/reference/get_profiles,
// https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling.
package klaviyofake

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

// MaxProfiles is how many profiles one bulk unsubscribe job may carry
// ("Maximum number of profile can be submitted for unsubscription: 100",
// https://developers.klaviyo.com/en/reference/bulk_unsubscribe_profiles).
const MaxProfiles = 100

// Consent values of subscriptions.email.marketing.consent.
const (
	Subscribed      = "SUBSCRIBED"
	Unsubscribed    = "UNSUBSCRIBED"
	NeverSubscribed = "NEVER_SUBSCRIBED"
)

// Profile is the fake's state for one profile.
type Profile struct {
	ID    string
	Email string
	// Consent is the email marketing consent (Subscribed, Unsubscribed,
	// NeverSubscribed).
	Consent string
	// Lists are the ids of the lists the profile is a member of.
	Lists     []string
	UpdatedAt time.Time
	// Suppression is the reason Klaviyo suppressed the profile for email
	// (USER_SUPPRESSED, HARD_BOUNCE, SPAM_COMPLAINT, UNSUBSCRIBE, ...) since
	// SuppressedAt; an unsubscribed profile is listed as suppressed
	// UNSUBSCRIBE since UpdatedAt.
	Suppression  string
	SuppressedAt time.Time
}

// MaxPageSize is the largest page[size] of Get Profiles
// (https://developers.klaviyo.com/en/reference/get_profiles: 1-100); more
// is a 400.
const MaxPageSize = 100

// Job is one accepted bulk unsubscribe job.
type Job struct {
	ListID string
	Emails []string
	// Applied is true once the job ran (at once, unless Hold).
	Applied bool
}

// Fake is a Klaviyo account. It is safe for concurrent use. Set Recorder
// fields (Now) before serving.
type Fake struct {
	fakeapi.Recorder

	key string

	mu       sync.Mutex
	hold     bool
	profiles map[string]*Profile // lower(email) → profile
	jobs     []*Job
	nextID   int
	refused  map[string]bool // lower(email) Klaviyo judges invalid
}

// Refuse makes the fake judge emails invalid, as Klaviyo does for an
// address its own validation rejects though it looks like one to us: a
// job carrying one of them is refused whole (400 "invalid", pointing at
// the profile), nothing of it applied.
func (f *Fake) Refuse(emails ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused == nil {
		f.refused = map[string]bool{}
	}
	for _, e := range emails {
		f.refused[fakeapi.Lower(e)] = true
	}
}

func (f *Fake) isRefused(email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused[fakeapi.Lower(email)]
}

// New returns a fake whose private API key is key. Jobs are applied as
// soon as they are accepted; Hold(true) keeps them pending.
func New(key string) *Fake {
	f := &Fake{key: key, profiles: map[string]*Profile{}}
	f.ErrorBody = ErrorBody
	f.ContentType = "application/vnd.api+json"
	return f
}

// ErrorBody is Klaviyo's JSON:API error body for status (429: code
// "throttled"; 401: "not_authenticated"; ...).
func ErrorBody(status int) string {
	code, title, detail := "error", http.StatusText(status), http.StatusText(status)
	switch status {
	case http.StatusTooManyRequests:
		code, title, detail = "throttled", "Request was throttled.", "Request was throttled. Expected available in 1 second."
	case http.StatusUnauthorized:
		code, title, detail = "not_authenticated", "Authentication credentials were not provided.", "Missing or invalid private key."
	case http.StatusForbidden:
		code, title, detail = "permission_denied", "You do not have permission to perform this action.", "This API key is missing required scopes."
	case http.StatusBadRequest:
		code, title, detail = "invalid", "Invalid input.", "Invalid input."
	case http.StatusNotFound:
		code, title, detail = "not_found", "Not found.", "Not found."
	case http.StatusInternalServerError, http.StatusServiceUnavailable:
		code, title, detail = "error", "A server error occurred.", "A server error occurred."
	}
	return errorJSON(status, code, title, detail, "/data/")
}

func errorJSON(status int, code, title, detail, pointer string) string {
	b, _ := json.Marshal(map[string]any{"errors": []map[string]any{{
		"id": "5e2a0b7c-0000-4000-8000-" + fmt.Sprintf("%012d", status), "status": status, "code": code,
		"title": title, "detail": detail, "source": map[string]string{"pointer": pointer}, "links": map[string]any{}, "meta": map[string]any{},
	}}})
	return string(b)
}

func writeErr(w http.ResponseWriter, status int, code, title, detail, pointer string) {
	fakeapi.WriteRaw(w, status, "application/vnd.api+json", errorJSON(status, code, title, detail, pointer))
}

// Handler serves, through Recorder.Wrap:
//
//   - POST /api/profile-subscription-bulk-delete-jobs: a JSON:API
//     "profile-subscription-bulk-delete-job" with up to MaxProfiles
//     profiles ({type: "profile", attributes: {email, subscriptions:
//     {email: {marketing: {consent: "UNSUBSCRIBED"}}}}}) and an optional
//     relationships.list. 202 with no body; the job then sets each
//     profile's email marketing consent to UNSUBSCRIBED (creating unknown
//     profiles, as Klaviyo does) and removes it from the list. 400
//     "invalid" for a wrong body, more than MaxProfiles profiles or a bad
//     address (the whole job is refused).
//   - GET /api/profiles?filter=equals(email,"a@b.c")[&additional-fields[profile]=subscriptions]:
//     200 {"data": [profile...], "links": {...}}: one profile or none.
//
// Every call needs "Authorization: Klaviyo-API-Key <key>" (else 401
// "not_authenticated") and a "revision" header (else 400).
func (f *Fake) Handler() http.Handler {
	return f.Wrap(http.HandlerFunc(f.serve))
}

var revisionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$`)

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Klaviyo-API-Key "+f.key {
		fakeapi.WriteRaw(w, http.StatusUnauthorized, "application/vnd.api+json", ErrorBody(http.StatusUnauthorized))
		return
	}
	if rev := r.Header.Get("revision"); !revisionRE.MatchString(rev) {
		writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "A valid `revision` header is required (format: YYYY-MM-DD[.suffix]).", "/headers/revision")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/api/profile-subscription-bulk-delete-jobs" && r.Method == http.MethodPost:
		f.unsubscribe(w, r)
	case path == "/api/profiles" && r.Method == http.MethodGet:
		f.getProfiles(w, r)
	case path == "/api/profile-subscription-bulk-delete-jobs" || path == "/api/profiles":
		writeErr(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed.", "Method \""+r.Method+"\" not allowed.", "/")
	default:
		writeErr(w, http.StatusNotFound, "not_found", "Not found.", "Not found.", "/")
	}
}

type jobBody struct {
	Data struct {
		Type       string `json:"type"`
		Attributes struct {
			Profiles struct {
				Data []struct {
					Type       string `json:"type"`
					Attributes struct {
						Email         string `json:"email"`
						Subscriptions *struct {
							Email *struct {
								Marketing *struct {
									Consent string `json:"consent"`
								} `json:"marketing"`
							} `json:"email"`
						} `json:"subscriptions"`
					} `json:"attributes"`
				} `json:"data"`
			} `json:"profiles"`
		} `json:"attributes"`
		Relationships *struct {
			List *struct {
				Data *struct {
					Type string `json:"type"`
					ID   string `json:"id"`
				} `json:"data"`
			} `json:"list"`
		} `json:"relationships"`
	} `json:"data"`
}

func (f *Fake) unsubscribe(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/vnd.api+json" && ct != "application/json" {
		writeErr(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Unsupported media type.", "Unsupported media type \""+ct+"\" in request.", "/")
		return
	}
	var b jobBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "JSON parse error.", "/data")
		return
	}
	if b.Data.Type != "profile-subscription-bulk-delete-job" {
		writeErr(w, http.StatusConflict, "conflict", "Conflict.", "The type in the data does not match the endpoint's resource type.", "/data/type")
		return
	}
	profiles := b.Data.Attributes.Profiles.Data
	if len(profiles) == 0 {
		writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "At least one profile is required.", "/data/attributes/profiles/data")
		return
	}
	if len(profiles) > MaxProfiles {
		writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", fmt.Sprintf("Ensure this field has no more than %d elements.", MaxProfiles), "/data/attributes/profiles/data")
		return
	}
	job := &Job{}
	for i, p := range profiles {
		ptr := fmt.Sprintf("/data/attributes/profiles/data/%d", i)
		if p.Type != "profile" {
			writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "Expected type \"profile\".", ptr+"/type")
			return
		}
		if !fakeapi.LooksLikeEmail(p.Attributes.Email) || f.isRefused(p.Attributes.Email) {
			writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "Invalid email address: "+p.Attributes.Email, ptr+"/attributes/email")
			return
		}
		s := p.Attributes.Subscriptions
		if s == nil || s.Email == nil || s.Email.Marketing == nil || s.Email.Marketing.Consent != Unsubscribed {
			writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "subscriptions.email.marketing.consent must be \"UNSUBSCRIBED\".", ptr+"/attributes/subscriptions")
			return
		}
		job.Emails = append(job.Emails, p.Attributes.Email)
	}
	if rel := b.Data.Relationships; rel != nil && rel.List != nil {
		if rel.List.Data == nil || rel.List.Data.Type != "list" || rel.List.Data.ID == "" {
			writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "relationships.list.data must be {type: \"list\", id}.", "/data/relationships/list/data")
			return
		}
		job.ListID = rel.List.Data.ID
	}
	f.mu.Lock()
	f.jobs = append(f.jobs, job)
	if !f.hold {
		f.apply(job)
	}
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// apply runs job; f.mu is held.
func (f *Fake) apply(job *Job) {
	now := f.clock()
	for _, e := range job.Emails {
		p := f.profile(e)
		p.Consent = Unsubscribed
		p.UpdatedAt = now
		if job.ListID != "" {
			for i, l := range p.Lists {
				if l == job.ListID {
					p.Lists = append(p.Lists[:i], p.Lists[i+1:]...)
					break
				}
			}
		}
	}
	job.Applied = true
}

// profile returns email's profile, created NEVER_SUBSCRIBED when missing;
// f.mu is held.
func (f *Fake) profile(email string) *Profile {
	k := fakeapi.Lower(email)
	p := f.profiles[k]
	if p == nil {
		f.nextID++
		p = &Profile{ID: fmt.Sprintf("01KFAKE%019d", f.nextID), Email: email, Consent: NeverSubscribed, UpdatedAt: f.clock()}
		f.profiles[k] = p
	}
	return p
}

var filterRE = regexp.MustCompile(`^equals\(email,"([^"\\]*)"\)$`)

// suppressedRE is the listing filter: profiles suppressed after a time.
var suppressedRE = regexp.MustCompile(`^greater-than\(subscriptions\.email\.marketing\.suppression\.timestamp,([0-9TZ:.+-]+)\)$`)

func (f *Fake) getProfiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if sm := suppressedRE.FindStringSubmatch(q.Get("filter")); sm != nil {
		f.listSuppressed(w, r, sm[1])
		return
	}
	m := filterRE.FindStringSubmatch(q.Get("filter"))
	if m == nil {
		writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "Invalid filter provided.", "/filter")
		return
	}
	withSubs := false
	for _, v := range strings.Split(q.Get("additional-fields[profile]"), ",") {
		withSubs = withSubs || v == "subscriptions"
	}
	f.mu.Lock()
	p := f.profiles[fakeapi.Lower(m[1])]
	var data []any
	if p != nil {
		attrs := map[string]any{"email": p.Email, "updated": p.UpdatedAt.UTC().Format(time.RFC3339)}
		if withSubs {
			attrs["subscriptions"] = map[string]any{"email": map[string]any{"marketing": map[string]any{
				"can_receive_email_marketing": p.Consent == Subscribed,
				"consent":                     p.Consent,
				"consent_timestamp":           p.UpdatedAt.UTC().Format(time.RFC3339),
				"method":                      "API",
				"suppression":                 []any{},
				"list_suppressions":           []any{},
			}}}
		}
		data = append(data, map[string]any{"type": "profile", "id": p.ID, "attributes": attrs,
			"links": map[string]string{"self": "https://a.klaviyo.com/api/profiles/" + p.ID + "/"}})
	}
	f.mu.Unlock()
	if data == nil {
		data = []any{}
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "links": map[string]any{"self": "https://a.klaviyo.com/api/profiles/", "next": nil, "prev": nil}})
}

func (f *Fake) clock() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Hold makes accepted jobs wait (true) until RunJobs, like Klaviyo's
// asynchronous processing; false applies them at once again.
func (f *Fake) Hold(hold bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = hold
}

// RunJobs applies every pending job and returns how many ran.
func (f *Fake) RunJobs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, j := range f.jobs {
		if !j.Applied {
			f.apply(j)
			n++
		}
	}
	return n
}

// Jobs returns copies of the accepted jobs, in order.
func (f *Fake) Jobs() []Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Job, 0, len(f.jobs))
	for _, j := range f.jobs {
		c := *j
		c.Emails = append([]string(nil), j.Emails...)
		out = append(out, c)
	}
	return out
}

// SetProfile creates or updates email's profile with consent and list
// memberships (seeding the account).
func (f *Fake) SetProfile(email, consent string, lists ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.profile(email)
	p.Consent = consent
	p.Lists = append([]string(nil), lists...)
	p.UpdatedAt = f.clock()
}

// SetSuppressed suppresses email's profile for reason since at (no call
// recorded): a suppression older than consentsync, for backfills.
func (f *Fake) SetSuppressed(email, reason string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.profile(email)
	p.Suppression, p.SuppressedAt = reason, at.UTC()
}

// Forget resubscribes email's profile without a call (someone changed it in
// Klaviyo's UI: drift). A missing profile is left missing.
func (f *Fake) Forget(email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.profiles[fakeapi.Lower(email)]; p != nil {
		p.Consent = Subscribed
		p.UpdatedAt = f.clock()
	}
}

// Lookup returns a copy of email's profile.
func (f *Fake) Lookup(email string) (Profile, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.profiles[fakeapi.Lower(email)]
	if p == nil {
		return Profile{}, false
	}
	c := *p
	c.Lists = append([]string(nil), p.Lists...)
	return c, true
}

// Unsubscribed returns the emails (as first spelled) whose consent is
// UNSUBSCRIBED, sorted.
func (f *Fake) Unsubscribed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.profiles {
		if p.Consent == Unsubscribed {
			out = append(out, p.Email)
		}
	}
	sort.Strings(out)
	return out
}

// Throttled is Klaviyo's 429 with "Retry-After: seconds" and its
// "throttled" error body.
func Throttled(seconds int) fakeapi.Answer {
	return fakeapi.Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {strconv.Itoa(seconds)}}}
}

// suppressionOf is p's listed suppression: its own, else UNSUBSCRIBE when
// unsubscribed; ok false when neither.
func suppressionOf(p *Profile) (reason string, at time.Time, ok bool) {
	switch {
	case p.Suppression != "":
		return p.Suppression, p.SuppressedAt, true
	case p.Consent == Unsubscribed:
		return "UNSUBSCRIBE", p.UpdatedAt, true
	}
	return "", time.Time{}, false
}

// listSuppressed answers GET /api/profiles?filter=greater-than(
// subscriptions.email.marketing.suppression.timestamp,T)&page[size]=N
// [&page[cursor]=C]: the suppressed profiles after T, oldest suppression
// first (then by id), at most N (default 20, at most MaxPageSize, else
// 400), with "links": {"next": URL carrying page[cursor]} while more
// follow. Each profile carries subscriptions.email.marketing.suppression
// [{"reason", "timestamp"}].
func (f *Fake) listSuppressed(w http.ResponseWriter, r *http.Request, after string) {
	q := r.URL.Query()
	since, err := time.Parse(time.RFC3339, after)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "Invalid filter provided.", "/filter")
		return
	}
	size := 20
	if v := q.Get("page[size]"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "page[size] must be between 1 and 100.", "/page[size]")
			return
		}
		size = n
	}
	offset := 0
	if v := q.Get("page[cursor]"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "bz"))
		if err != nil || !strings.HasPrefix(v, "bz") || n < 0 {
			writeErr(w, http.StatusBadRequest, "invalid", "Invalid input.", "Invalid page cursor.", "/page[cursor]")
			return
		}
		offset = n
	}
	type row struct {
		p      Profile
		reason string
		at     time.Time
	}
	f.mu.Lock()
	var rows []row
	for _, p := range f.profiles {
		if reason, at, ok := suppressionOf(p); ok && at.After(since) {
			rows = append(rows, row{*p, reason, at})
		}
	}
	f.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].at.Equal(rows[j].at) {
			return rows[i].at.Before(rows[j].at)
		}
		return rows[i].p.ID < rows[j].p.ID
	})
	data := []any{}
	for i := offset; i < len(rows) && len(data) < size; i++ {
		rw := rows[i]
		data = append(data, map[string]any{"type": "profile", "id": rw.p.ID, "attributes": map[string]any{
			"email": rw.p.Email, "updated": rw.p.UpdatedAt.UTC().Format(time.RFC3339),
			"subscriptions": map[string]any{"email": map[string]any{"marketing": map[string]any{
				"can_receive_email_marketing": false, "consent": rw.p.Consent,
				"suppression":       []any{map[string]any{"reason": rw.reason, "timestamp": rw.at.UTC().Format(time.RFC3339)}},
				"list_suppressions": []any{},
			}}},
		}})
	}
	links := map[string]any{"self": "https://a.klaviyo.com/api/profiles/", "next": nil, "prev": nil}
	if offset+len(data) < len(rows) {
		nq := r.URL.Query()
		nq.Set("page[cursor]", "bz"+strconv.Itoa(offset+len(data)))
		links["next"] = "https://a.klaviyo.com/api/profiles/?" + nq.Encode()
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "links": links})
}
