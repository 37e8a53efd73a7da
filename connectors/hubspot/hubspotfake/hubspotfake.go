// Package hubspotfake stands in for HubSpot's communication preferences v4
// batch API in tests, the demo's sandbox and benchmarks. It serves
// HubSpot's paths at the root, so a destination's base_url is the
// server's URL:
//
//	POST /communication-preferences/v4/statuses/batch/write?channel=EMAIL
//	POST /communication-preferences/v4/statuses/batch/read?channel=EMAIL
//	POST /communication-preferences/v4/statuses/batch/unsubscribe-all?channel=EMAIL
//	POST /communication-preferences/v4/statuses/batch/unsubscribe-all/read?channel=EMAIL
//	POST /crm/v3/objects/contacts/search                 CRM search (opted-out contacts)
//
// References: https://developers.hubspot.com/docs/guides/api/marketing/subscriptions
// and the batch endpoints under
// https://developers.hubspot.com/docs/api-reference/legacy/communication-preferences/status/batch/.
//
// Every path checks "Authorization: Bearer TOKEN" first: a wrong or
// missing token is HubSpot's 401 {"status": "error", "message":
// "Authentication credentials not found. ...", "category":
// "INVALID_AUTHENTICATION", "correlationId": "..."}. A missing or other
// channel, a body that is not {"inputs": [...]}, or more than MaxInputs
// inputs is a 400 VALIDATION_ERROR of the same shape. Per-input problems
// (an invalid address, an unknown subscription type, a resubscription
// HubSpot refuses) are answered 207 with an entry in "errors" whose
// context names the subscriberIdString. Script (from the embedded
// fakeapi.Recorder) queues answers given before any of this, e.g.
// fakeapi.TooMany(RateLimitHeader()) for HubSpot's own 429. A Fake is safe
// for concurrent use.
package hubspotfake

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

// DefaultKey is the private app token New accepts unless WithKey says
// otherwise.
const DefaultKey = "pat-na1-demo-token"

// MaxInputs is the fake's limit of inputs per batch call: 100, the limit
// of HubSpot's CRM batch endpoints (the v4 reference states none).
const MaxInputs = 100

// Statuses of a subscription type.
const (
	Subscribed    = "SUBSCRIBED"
	NotSubscribed = "NOT_SUBSCRIBED"
	NotSpecified  = "NOT_SPECIFIED"
)

// Contact is the fake's state for one address.
type Contact struct {
	// ID is the contact's hs_object_id (assigned in order of creation).
	ID int64
	// Email as first seen.
	Email string
	// Statuses by subscription type id.
	Statuses map[string]string
	// OptedOutOfAll is "unsubscribed from all email".
	OptedOutOfAll bool
	// BySelf: the contact unsubscribed themselves (an email's unsubscribe
	// link): HubSpot refuses to resubscribe them through the API.
	BySelf bool
}

// Fake is one HubSpot portal's email subscription statuses. Use New.
type Fake struct {
	fakeapi.Recorder

	mu       sync.Mutex
	key      string
	types    map[string]bool // subscription type ids defined in the portal
	contacts map[string]*Contact
	nextID   int64
}

// MaxSearchLimit is the largest limit of a CRM search page, and
// MaxSearchResults the most results one search query pages through
// (https://developers.hubspot.com/docs/guides/api/crm/search: "limit ...
// maximum of 200", "limited to 10,000 total results for any given
// query"); beyond either the fake answers 400.
const (
	MaxSearchLimit   = 200
	MaxSearchResults = 10000
)

// Option configures New.
type Option func(*Fake)

// WithKey sets the accepted token ("" accepts none).
func WithKey(k string) Option { return func(f *Fake) { f.key = k } }

// WithSubscriptionTypes defines the portal's subscription type ids (New
// defines none: writes to any id are then refused as unknown).
func WithSubscriptionTypes(ids ...string) Option {
	return func(f *Fake) {
		for _, id := range ids {
			f.types[id] = true
		}
	}
}

// New returns a fake accepting DefaultKey, with no contact.
func New(opts ...Option) *Fake {
	f := &Fake{key: DefaultKey, types: map[string]bool{}, contacts: map[string]*Contact{}}
	f.ErrorBody = func(status int) string {
		switch status {
		case http.StatusTooManyRequests:
			return RateLimitBody("TEN_SECONDLY_ROLLING")
		case http.StatusUnauthorized:
			return ErrorBody("INVALID_AUTHENTICATION", authMessage)
		}
		return ErrorBody("ERROR", strings.ToLower(http.StatusText(status)))
	}
	f.ContentType = "application/json"
	for _, o := range opts {
		o(f)
	}
	return f
}

const authMessage = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"

// ErrorBody is HubSpot's error body: {"status": "error", "message": msg,
// "correlationId": "...", "category": category}.
func ErrorBody(category, msg string) string {
	return mustJSON(map[string]any{"status": "error", "message": msg, "correlationId": "0f5c2a61-6b1e-4a4e-9a3e-fake", "category": category})
}

// RateLimitBody is HubSpot's 429 body for a policy (SECONDLY,
// TEN_SECONDLY_ROLLING, DAILY).
func RateLimitBody(policy string) string {
	return mustJSON(map[string]any{"status": "error", "message": "You have reached your " + strings.ToLower(policy) + " limit.", "errorType": "RATE_LIMIT", "correlationId": "0f5c2a61-fake", "policyName": policy})
}

// RateLimitHeader is HubSpot's headers on a 429 of the ten-secondly
// rolling limit (no Retry-After):
// X-HubSpot-RateLimit-Interval-Milliseconds 10000,
// X-HubSpot-RateLimit-Max 190, X-HubSpot-RateLimit-Remaining 0
// (https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details#rate-limits).
// Use with fakeapi.TooMany.
func RateLimitHeader() http.Header {
	return http.Header{
		"X-Hubspot-Ratelimit-Interval-Milliseconds": {"10000"},
		"X-Hubspot-Ratelimit-Max":                   {"190"},
		"X-Hubspot-Ratelimit-Remaining":             {"0"},
		"X-Hubspot-Ratelimit-Secondly":              {"19"},
		"X-Hubspot-Ratelimit-Secondly-Remaining":    {"5"},
	}
}

// SetKey replaces the accepted token.
func (f *Fake) SetKey(k string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = k
}

// Authorized reports whether r carries the accepted Bearer token.
func (f *Fake) Authorized(r *http.Request) bool {
	f.mu.Lock()
	want := f.key
	f.mu.Unlock()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

func (f *Fake) contact(email string) *Contact {
	k := fakeapi.Lower(email)
	c, ok := f.contacts[k]
	if !ok {
		f.nextID++
		c = &Contact{ID: f.nextID, Email: strings.TrimSpace(email), Statuses: map[string]string{}}
		f.contacts[k] = c
	}
	return c
}

// SetStatus sets an address's status for a subscription type (no call
// recorded); the type becomes defined.
func (f *Fake) SetStatus(email, subscriptionID, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.types[subscriptionID] = true
	f.contact(email).Statuses[subscriptionID] = status
}

// UnsubscribedBySelf records that the address unsubscribed itself from
// all email (an email's unsubscribe link): HubSpot then refuses to
// resubscribe it through the API.
func (f *Fake) UnsubscribedBySelf(email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optOutAll(f.contact(email), true)
}

func (f *Fake) optOutAll(c *Contact, self bool) {
	c.OptedOutOfAll = true
	c.BySelf = c.BySelf || self
	for id := range f.types {
		c.Statuses[id] = NotSubscribed
	}
}

// Forget undoes the address's suppressions behind consentsync's back (an
// operator editing the contact), to test drift: the "unsubscribed from all"
// status is cleared and NOT_SUBSCRIBED statuses become NOT_SPECIFIED. It
// reports whether anything changed.
func (f *Fake) Forget(email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.contacts[fakeapi.Lower(email)]
	if !ok {
		return false
	}
	changed := c.OptedOutOfAll
	c.OptedOutOfAll, c.BySelf = false, false
	for id, s := range c.Statuses {
		if s == NotSubscribed {
			c.Statuses[id] = NotSpecified
			changed = true
		}
	}
	return changed
}

// Lookup returns a copy of the address's state (any case).
func (f *Fake) Lookup(email string) (Contact, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.contacts[fakeapi.Lower(email)]
	if !ok {
		return Contact{}, false
	}
	cp := *c
	cp.Statuses = map[string]string{}
	for k, v := range c.Statuses {
		cp.Statuses[k] = v
	}
	return cp, true
}

// Status returns the address's status for a subscription type
// (NOT_SPECIFIED when never set).
func (f *Fake) Status(email, subscriptionID string) string {
	c, ok := f.Lookup(email)
	if !ok || c.Statuses[subscriptionID] == "" {
		return NotSpecified
	}
	return c.Statuses[subscriptionID]
}

// OptedOutOfAll returns the addresses unsubscribed from all email, as
// first seen, sorted.
func (f *Fake) OptedOutOfAll() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.contacts {
		if c.OptedOutOfAll {
			out = append(out, c.Email)
		}
	}
	sort.Strings(out)
	return out
}

// Handler serves HubSpot's paths at the root, through Recorder.Wrap.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /communication-preferences/v4/statuses/batch/write", f.write)
	mux.HandleFunc("POST /communication-preferences/v4/statuses/batch/read", f.read)
	mux.HandleFunc("POST /communication-preferences/v4/statuses/batch/unsubscribe-all", f.unsubscribeAll)
	mux.HandleFunc("POST /communication-preferences/v4/statuses/batch/unsubscribe-all/read", f.readAll)
	mux.HandleFunc("POST /crm/v3/objects/contacts/search", f.search)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("OBJECT_NOT_FOUND", "resource not found"))
	})
	return f.Wrap(mux)
}

// batchErr is one entry of a batch answer's errors.
type batchErr struct {
	Status   string              `json:"status"`
	Category string              `json:"category"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context"`
}

func itemErr(category, msg, email string) batchErr {
	return batchErr{Status: "error", Category: category, Message: msg, Context: map[string][]string{"subscriberIdString": {email}}}
}

// begin checks auth, the channel and the body; it decodes "inputs" into in.
func (f *Fake) begin(w http.ResponseWriter, r *http.Request, in any) bool {
	if !f.Authorized(r) {
		fakeapi.WriteRaw(w, http.StatusUnauthorized, "application/json", ErrorBody("INVALID_AUTHENTICATION", authMessage))
		return false
	}
	if r.URL.Query().Get("channel") != "EMAIL" {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("VALIDATION_ERROR", "channel: must be EMAIL"))
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	var req struct {
		Inputs json.RawMessage `json:"inputs"`
	}
	var raws []json.RawMessage
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(req.Inputs, &raws) != nil || len(raws) == 0 {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("VALIDATION_ERROR", "inputs: must be a non-empty array"))
		return false
	}
	if len(raws) > MaxInputs {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("VALIDATION_ERROR", fmt.Sprintf("Batch size %d exceeds the limit of %d inputs", len(raws), MaxInputs)))
		return false
	}
	if json.Unmarshal(req.Inputs, in) != nil {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("VALIDATION_ERROR", "inputs: invalid input"))
		return false
	}
	return true
}

func (f *Fake) answer(w http.ResponseWriter, results any, errs []batchErr) {
	now := time.Now().UTC().Format(time.RFC3339)
	status := http.StatusOK
	ans := map[string]any{"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now, "requestedAt": now}
	if len(errs) > 0 {
		status = 207
		ans["errors"], ans["numErrors"] = errs, len(errs)
	}
	fakeapi.WriteJSON(w, status, ans)
}

type statusOut struct {
	SubscriberIDString     string `json:"subscriberIdString"`
	Channel                string `json:"channel"`
	SubscriptionID         int64  `json:"subscriptionId"`
	Status                 string `json:"status"`
	Source                 string `json:"source"`
	LegalBasis             string `json:"legalBasis,omitempty"`
	LegalBasisExplanation  string `json:"legalBasisExplanation,omitempty"`
	SetStatusSuccessReason string `json:"setStatusSuccessReason,omitempty"`
	Timestamp              string `json:"timestamp"`
}

func subID(id string) int64 {
	var n int64
	_, _ = fmt.Sscan(id, &n)
	return n
}

// write answers batch/write: inputs [{subscriberIdString, statusState
// (SUBSCRIBED, NOT_SUBSCRIBED, NOT_SPECIFIED), channel, subscriptionId,
// legalBasis, legalBasisExplanation}]. setStatusSuccessReason is
// NO_STATUS_CHANGE when the status was already so. SUBSCRIBED for an
// address that unsubscribed itself is an error entry (HubSpot does not let
// an integration resubscribe it); SUBSCRIBED for one opted out of all by an
// integration clears that opt-out.
func (f *Fake) write(w http.ResponseWriter, r *http.Request) {
	var inputs []struct {
		SubscriberIDString string          `json:"subscriberIdString"`
		StatusState        string          `json:"statusState"`
		Channel            string          `json:"channel"`
		SubscriptionID     json.RawMessage `json:"subscriptionId"`
		LegalBasis         string          `json:"legalBasis"`
		LegalBasisExpl     string          `json:"legalBasisExplanation"`
	}
	if !f.begin(w, r, &inputs) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var results []statusOut
	var errs []batchErr
	now := time.Now().UTC().Format(time.RFC3339)
	for _, in := range inputs {
		id := strings.Trim(string(in.SubscriptionID), `"`)
		switch {
		case !fakeapi.LooksLikeEmail(in.SubscriberIDString):
			errs = append(errs, itemErr("VALIDATION_ERROR", "Invalid subscriber identifier.", in.SubscriberIDString))
			continue
		case !f.types[id]:
			errs = append(errs, itemErr("VALIDATION_ERROR", "Subscription "+id+" does not exist", in.SubscriberIDString))
			continue
		case in.StatusState != Subscribed && in.StatusState != NotSubscribed && in.StatusState != NotSpecified:
			errs = append(errs, itemErr("VALIDATION_ERROR", "Invalid statusState", in.SubscriberIDString))
			continue
		}
		c := f.contact(in.SubscriberIDString)
		if in.StatusState == Subscribed && c.BySelf {
			errs = append(errs, itemErr("VALIDATION_ERROR", "Cannot resubscribe a contact who unsubscribed from all email", in.SubscriberIDString))
			continue
		}
		reason := "REQUESTED_CHANGE"
		if c.Statuses[id] == in.StatusState {
			reason = "NO_STATUS_CHANGE"
		}
		c.Statuses[id] = in.StatusState
		if in.StatusState == Subscribed {
			c.OptedOutOfAll = false
		}
		results = append(results, statusOut{SubscriberIDString: c.Email, Channel: "EMAIL", SubscriptionID: subID(id), Status: in.StatusState, Source: "Public API",
			LegalBasis: in.LegalBasis, LegalBasisExplanation: in.LegalBasisExpl, SetStatusSuccessReason: reason, Timestamp: now})
	}
	f.answer(w, results, errs)
}

// read answers batch/read: inputs [email]; results [{subscriberIdString,
// statuses: [...]}], one per known address (unknown ones are error
// entries).
func (f *Fake) read(w http.ResponseWriter, r *http.Request) {
	var inputs []string
	if !f.begin(w, r, &inputs) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	type out struct {
		SubscriberIDString string      `json:"subscriberIdString"`
		Statuses           []statusOut `json:"statuses"`
	}
	results := []out{}
	var errs []batchErr
	for _, e := range inputs {
		c, ok := f.contacts[fakeapi.Lower(e)]
		if !ok {
			errs = append(errs, itemErr("OBJECT_NOT_FOUND", "No contact with this subscriberIdString", e))
			continue
		}
		o := out{SubscriberIDString: c.Email, Statuses: []statusOut{}}
		ids := make([]string, 0, len(f.types))
		for id := range f.types {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			st := c.Statuses[id]
			if st == "" {
				st = NotSpecified
			}
			o.Statuses = append(o.Statuses, statusOut{SubscriberIDString: c.Email, Channel: "EMAIL", SubscriptionID: subID(id), Status: st, Source: "Public API"})
		}
		results = append(results, o)
	}
	f.answer(w, results, errs)
}

// unsubscribeAll answers batch/unsubscribe-all: inputs [email]; every
// address becomes unsubscribed from all email (and NOT_SUBSCRIBED for
// every subscription type); results [{subscriberIdString, statuses}].
func (f *Fake) unsubscribeAll(w http.ResponseWriter, r *http.Request) {
	var inputs []string
	if !f.begin(w, r, &inputs) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	type out struct {
		SubscriberIDString string      `json:"subscriberIdString"`
		Statuses           []statusOut `json:"statuses"`
	}
	results := []out{}
	var errs []batchErr
	for _, e := range inputs {
		if !fakeapi.LooksLikeEmail(e) {
			errs = append(errs, itemErr("VALIDATION_ERROR", "Invalid subscriber identifier.", e))
			continue
		}
		c := f.contact(e)
		reason := "REQUESTED_CHANGE"
		if c.OptedOutOfAll {
			reason = "NO_STATUS_CHANGE"
		}
		f.optOutAll(c, false)
		o := out{SubscriberIDString: c.Email, Statuses: []statusOut{}}
		for id := range f.types {
			o.Statuses = append(o.Statuses, statusOut{SubscriberIDString: c.Email, Channel: "EMAIL", SubscriptionID: subID(id), Status: NotSubscribed, SetStatusSuccessReason: reason})
		}
		results = append(results, o)
	}
	f.answer(w, results, errs)
}

// readAll answers batch/unsubscribe-all/read: inputs [email]; results
// [{subscriberIdString, wideStatuses: [{channel, status, wideStatusType
// PORTAL_WIDE, subscriberIdString}]}] with an empty wideStatuses when the
// address is not unsubscribed from all.
func (f *Fake) readAll(w http.ResponseWriter, r *http.Request) {
	var inputs []string
	if !f.begin(w, r, &inputs) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	type wide struct {
		SubscriberIDString string `json:"subscriberIdString"`
		Channel            string `json:"channel"`
		Status             string `json:"status"`
		WideStatusType     string `json:"wideStatusType"`
	}
	type out struct {
		SubscriberIDString string `json:"subscriberIdString"`
		WideStatuses       []wide `json:"wideStatuses"`
	}
	results := []out{}
	for _, e := range inputs {
		o := out{SubscriberIDString: strings.TrimSpace(e), WideStatuses: []wide{}}
		if c, ok := f.contacts[fakeapi.Lower(e)]; ok && c.OptedOutOfAll {
			o.WideStatuses = append(o.WideStatuses, wide{SubscriberIDString: c.Email, Channel: "EMAIL", Status: NotSubscribed, WideStatusType: "PORTAL_WIDE"})
		}
		results = append(results, o)
	}
	f.answer(w, results, nil)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"status":"error","message":"hubspotfake: cannot encode answer","category":"ERROR"}`
	}
	return string(b)
}

// search answers POST /crm/v3/objects/contacts/search: {"filterGroups":
// [{"filters": [{"propertyName", "operator", "value"}]}], "sorts",
// "properties", "limit", "after"}. The fake understands the filters
// hs_email_optout EQ "true"|"false" and hs_object_id GT n (ANDed within a
// group), and sorts by hs_object_id ascending whatever is asked. The answer
// is 200 {"total", "results": [{"id", "properties": {"email",
// "hs_email_optout", "hs_object_id"}}], "paging": {"next": {"after"}}}
// (paging only when more results follow). A limit over MaxSearchLimit,
// paging past MaxSearchResults, an unknown filter or a bad body is a 400.
func (f *Fake) search(w http.ResponseWriter, r *http.Request) {
	if !f.Authorized(r) {
		fakeapi.WriteRaw(w, http.StatusUnauthorized, "application/json", ErrorBody("INVALID_AUTHENTICATION", authMessage))
		return
	}
	var req struct {
		FilterGroups []struct {
			Filters []struct {
				PropertyName string `json:"propertyName"`
				Operator     string `json:"operator"`
				Value        string `json:"value"`
			} `json:"filters"`
		} `json:"filterGroups"`
		Limit int    `json:"limit"`
		After string `json:"after"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	invalid := func(msg string) {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("VALIDATION_ERROR", msg))
	}
	if json.Unmarshal(body, &req) != nil {
		invalid("Invalid input JSON")
		return
	}
	if req.Limit == 0 {
		req.Limit = 10
	}
	after := 0
	if req.After != "" {
		if _, err := fmt.Sscan(req.After, &after); err != nil || after < 0 {
			invalid("after: must be a number")
			return
		}
	}
	if req.Limit < 0 || req.Limit > MaxSearchLimit || after+req.Limit > MaxSearchResults {
		invalid(fmt.Sprintf("limit must be 1..%d and results are limited to %d per query", MaxSearchLimit, MaxSearchResults))
		return
	}
	type pred func(*Contact) bool
	var groups [][]pred
	for _, g := range req.FilterGroups {
		var ps []pred
		for _, fl := range g.Filters {
			switch {
			case fl.PropertyName == "hs_email_optout" && fl.Operator == "EQ":
				want := fl.Value == "true"
				ps = append(ps, func(c *Contact) bool { return c.OptedOutOfAll == want })
			case fl.PropertyName == "hs_object_id" && fl.Operator == "GT":
				var n int64
				if _, err := fmt.Sscan(fl.Value, &n); err != nil {
					invalid("hs_object_id: not a number")
					return
				}
				ps = append(ps, func(c *Contact) bool { return c.ID > n })
			default:
				invalid("this fake does not support filter " + fl.PropertyName + " " + fl.Operator)
				return
			}
		}
		groups = append(groups, ps)
	}
	f.mu.Lock()
	var match []*Contact
	for _, c := range f.contacts {
		ok := len(groups) == 0
		for _, g := range groups {
			all := true
			for _, p := range g {
				all = all && p(c)
			}
			ok = ok || all
		}
		if ok {
			cc := *c
			match = append(match, &cc)
		}
	}
	f.mu.Unlock()
	sort.Slice(match, func(i, j int) bool { return match[i].ID < match[j].ID })
	results := []map[string]any{}
	for i := after; i < len(match) && len(results) < req.Limit; i++ {
		c := match[i]
		id := fmt.Sprint(c.ID)
		results = append(results, map[string]any{"id": id, "properties": map[string]any{
			"email": c.Email, "hs_email_optout": fmt.Sprint(c.OptedOutOfAll), "hs_object_id": id}})
	}
	out := map[string]any{"total": len(match), "results": results}
	if after+len(results) < len(match) {
		out["paging"] = map[string]any{"next": map[string]any{"after": fmt.Sprint(after + len(results))}}
	}
	fakeapi.WriteRaw(w, http.StatusOK, "application/json", mustJSON(out))
}
