// Package mailgunfake stands in for Mailgun's suppressions API
// (unsubscribes) in tests, the demo's sandbox and the bench. It serves
// Mailgun's paths at the root (base_url = the server's URL), checks basic
// auth as Mailgun does, enforces Mailgun's batch limit and answers with
// Mailgun's documented bodies ({"message": ...}).
//
// Reference: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/unsubscribe
package mailgunfake

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

// MaxRecords is how many unsubscribe records one JSON POST may carry
// ("up to 1000 unsubscribe records",
// https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/unsubscribe/post-v3--domainid--unsubscribes).
const MaxRecords = 1000

// User is the basic-auth user name Mailgun expects; the password is the
// API key (https://documentation.mailgun.com/docs/mailgun/api-reference/authentication).
const User = "api"

// Record is one entry of a domain's unsubscribes table.
type Record struct {
	Address string
	// Tags are the tags the address is unsubscribed from; "*" means all
	// mail of the domain.
	Tags      []string
	CreatedAt time.Time
}

// Fake is a Mailgun account with its sending domains. It is safe for
// concurrent use. Set Recorder fields (Now) before serving.
type Fake struct {
	fakeapi.Recorder

	key string

	mu      sync.Mutex
	domains map[string]map[string]*Record // domain → lower(address) → record
	refused map[string]bool               // lower(address) Mailgun judges invalid
}

// Refuse makes the fake judge addrs invalid, as Mailgun does for an
// address its own validation rejects though it looks like one to us: a
// POST carrying one of them is refused whole (400 "'address' parameter is
// not a valid email address: ..."), nothing of it stored.
func (f *Fake) Refuse(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused == nil {
		f.refused = map[string]bool{}
	}
	for _, a := range addrs {
		f.refused[fakeapi.Lower(a)] = true
	}
}

// New returns a fake whose account key is key and whose sending domains are
// domains (a request for another domain answers 404 "Domain not found").
func New(key string, domains ...string) *Fake {
	f := &Fake{key: key, domains: map[string]map[string]*Record{}}
	for _, d := range domains {
		f.domains[strings.ToLower(d)] = map[string]*Record{}
	}
	f.ErrorBody = func(status int) string { return errorBody(status) }
	return f
}

// errorBody is Mailgun's {"message": ...} for a scripted status.
func errorBody(status int) string {
	msg := http.StatusText(status)
	if status == http.StatusTooManyRequests {
		msg = "Too many requests"
	}
	b, _ := json.Marshal(map[string]string{"message": msg})
	return string(b)
}

// Handler serves Mailgun's unsubscribes API at the root, through
// Recorder.Wrap.
//
//   - POST /v3/{domain}/unsubscribes: a JSON array of up to MaxRecords
//     {"address", "tags", "created_at"} (Content-Type application/json),
//     or one record as form data (address, tag). 200 {"message": "..."};
//     400 {"message": ...} for a body over the limit, an invalid address
//     (see Refuse) or an unreadable body (the whole call is refused, nothing is stored).
//   - GET /v3/{domain}/unsubscribes?limit=N[&page=next&address=A]: 200
//     {"items": [{"address", "tags", "created_at"}], "paging": {"first",
//     "next", "previous", "last"}}, at most limit (default 100, at most
//     MaxRecords, else 400) records in address order, after address A
//     when page=next; "next" is the URL of the following page
//     (https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/unsubscribe/get-v3--domainid--unsubscribes).
//   - GET /v3/{domain}/unsubscribes/{address}: 200 {"address", "tags",
//     "created_at"} or 404 {"message": "Address not found in unsubscribers table"}.
//   - DELETE /v3/{domain}/unsubscribes/{address}[?tag=T]: removes the
//     record (or only tag T from it); 200 {"message": "Unsubscribe event
//     has been removed", "address"} or 404 as above.
//
// Every call needs basic auth "api":key, else 401 with the text body
// "Forbidden" (what Mailgun answers a wrong key).
func (f *Fake) Handler() http.Handler {
	return f.Wrap(http.HandlerFunc(f.serve))
}

func writeMsg(w http.ResponseWriter, status int, msg string) {
	fakeapi.WriteJSON(w, status, map[string]string{"message": msg})
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != User || pass != f.key {
		fakeapi.WriteRaw(w, http.StatusUnauthorized, "text/plain; charset=utf-8", "Forbidden")
		return
	}
	// /v3/{domain}/unsubscribes[/{address}]; the address may be
	// percent-encoded.
	parts := strings.SplitN(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/", 4)
	if len(parts) < 3 || parts[0] != "v3" || parts[2] != "unsubscribes" {
		fakeapi.WriteRaw(w, http.StatusNotFound, "text/plain; charset=utf-8", "404 page not found")
		return
	}
	domain, err := url.PathUnescape(parts[1])
	if err != nil {
		writeMsg(w, http.StatusBadRequest, "invalid domain")
		return
	}
	f.mu.Lock()
	table, known := f.domains[strings.ToLower(domain)]
	f.mu.Unlock()
	if !known {
		writeMsg(w, http.StatusNotFound, "Domain not found: "+domain)
		return
	}
	if len(parts) == 3 {
		switch r.Method {
		case http.MethodPost:
			f.add(w, r, table)
		case http.MethodGet:
			f.list(w, r, domain)
		default:
			writeMsg(w, http.StatusMethodNotAllowed, "method not allowed")
		}
		return
	}
	addr, err := url.PathUnescape(parts[3])
	if err != nil || addr == "" || strings.Contains(addr, "/") {
		writeMsg(w, http.StatusBadRequest, "invalid address")
		return
	}
	switch r.Method {
	case http.MethodGet:
		f.get(w, table, addr)
	case http.MethodDelete:
		f.remove(w, r, table, addr)
	default:
		writeMsg(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

type record struct {
	Address   string   `json:"address"`
	Tags      []string `json:"tags"`
	Tag       string   `json:"tag,omitempty"`
	CreatedAt string   `json:"created_at,omitempty"`
}

func (f *Fake) isRefused(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused[fakeapi.Lower(addr)]
}

func (f *Fake) add(w http.ResponseWriter, r *http.Request, table map[string]*Record) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var recs []record
	switch ct {
	case "application/json":
		if err := json.NewDecoder(r.Body).Decode(&recs); err != nil {
			writeMsg(w, http.StatusBadRequest, "Invalid JSON: expected an array of unsubscribe records")
			return
		}
		if len(recs) == 0 {
			writeMsg(w, http.StatusBadRequest, "No unsubscribe records given")
			return
		}
		if len(recs) > MaxRecords {
			writeMsg(w, http.StatusBadRequest, fmt.Sprintf("Too many records: %d (at most %d per request)", len(recs), MaxRecords))
			return
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
			writeMsg(w, http.StatusBadRequest, "invalid form")
			return
		}
		recs = []record{{Address: r.FormValue("address"), Tag: r.FormValue("tag")}}
	default:
		writeMsg(w, http.StatusBadRequest, "Content-Type must be application/json")
		return
	}
	for _, rec := range recs {
		if !fakeapi.LooksLikeEmail(rec.Address) || f.isRefused(rec.Address) {
			writeMsg(w, http.StatusBadRequest, fmt.Sprintf("'address' parameter is not a valid email address: %s", rec.Address))
			return
		}
	}
	now := f.clock()
	f.mu.Lock()
	for _, rec := range recs {
		tags := rec.Tags
		if rec.Tag != "" {
			tags = append(tags, rec.Tag)
		}
		if len(tags) == 0 {
			tags = []string{"*"}
		}
		k := fakeapi.Lower(rec.Address)
		cur := table[k]
		if cur == nil {
			cur = &Record{Address: rec.Address, CreatedAt: now}
			table[k] = cur
		}
		for _, t := range tags {
			if !slices.Contains(cur.Tags, t) {
				cur.Tags = append(cur.Tags, t)
			}
		}
	}
	f.mu.Unlock()
	if len(recs) == 1 {
		writeMsg(w, http.StatusOK, "Address has been added to the unsubscribes table")
		return
	}
	writeMsg(w, http.StatusOK, fmt.Sprintf("%d addresses have been added to the unsubscribes table", len(recs)))
}

func (f *Fake) get(w http.ResponseWriter, table map[string]*Record, addr string) {
	f.mu.Lock()
	cur := table[fakeapi.Lower(addr)]
	var rec record
	if cur != nil {
		rec = record{Address: cur.Address, Tags: slices.Clone(cur.Tags), CreatedAt: cur.CreatedAt.UTC().Format(http.TimeFormat)}
	}
	f.mu.Unlock()
	if cur == nil {
		writeMsg(w, http.StatusNotFound, "Address not found in unsubscribers table")
		return
	}
	fakeapi.WriteJSON(w, http.StatusOK, rec)
}

func (f *Fake) remove(w http.ResponseWriter, r *http.Request, table map[string]*Record, addr string) {
	tag := r.URL.Query().Get("tag")
	k := fakeapi.Lower(addr)
	f.mu.Lock()
	cur := table[k]
	if cur != nil {
		if tag == "" {
			delete(table, k)
		} else {
			cur.Tags = slices.DeleteFunc(cur.Tags, func(t string) bool { return t == tag })
			if len(cur.Tags) == 0 {
				delete(table, k)
			}
		}
	}
	f.mu.Unlock()
	if cur == nil {
		writeMsg(w, http.StatusNotFound, "Address not found in unsubscribers table")
		return
	}
	fakeapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Unsubscribe event has been removed", "address": addr})
}

func (f *Fake) clock() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Unsubscribe adds address to domain's unsubscribes table with tags
// (default "*"), as a click on Mailgun's unsubscribe link would. It
// reports false when domain is not one of the fake's.
func (f *Fake) Unsubscribe(domain, address string, tags ...string) bool {
	if len(tags) == 0 {
		tags = []string{"*"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	table, ok := f.domains[strings.ToLower(domain)]
	if !ok {
		return false
	}
	k := fakeapi.Lower(address)
	cur := table[k]
	if cur == nil {
		cur = &Record{Address: address, CreatedAt: f.clock()}
		table[k] = cur
	}
	for _, t := range tags {
		if !slices.Contains(cur.Tags, t) {
			cur.Tags = append(cur.Tags, t)
		}
	}
	return true
}

// UnsubscribeAt is Unsubscribe (all tags) of an address unsubscribed
// since at: an unsubscribe older than consentsync, for backfills.
func (f *Fake) UnsubscribeAt(domain, address string, at time.Time) bool {
	if !f.Unsubscribe(domain, address) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.domains[strings.ToLower(domain)][fakeapi.Lower(address)].CreatedAt = at.UTC()
	return true
}

// list answers GET /v3/{domain}/unsubscribes (see Handler).
func (f *Fake) list(w http.ResponseWriter, r *http.Request, domain string) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxRecords {
			writeMsg(w, http.StatusBadRequest, "limit: must be between 1 and 1000")
			return
		}
		limit = n
	}
	after := ""
	switch q.Get("page") {
	case "":
	case "next":
		after = fakeapi.Lower(q.Get("address"))
	default:
		writeMsg(w, http.StatusBadRequest, "page: only next is supported by this fake")
		return
	}
	f.mu.Lock()
	table := f.domains[strings.ToLower(domain)]
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	items := []record{}
	for _, k := range keys {
		if k <= after || len(items) >= limit {
			continue
		}
		cur := table[k]
		items = append(items, record{Address: cur.Address, Tags: slices.Clone(cur.Tags), CreatedAt: cur.CreatedAt.UTC().Format(http.TimeFormat)})
	}
	f.mu.Unlock()
	base := "https://api.mailgun.net/v3/" + url.PathEscape(domain) + "/unsubscribes"
	last := after
	if len(items) > 0 {
		last = items[len(items)-1].Address
	}
	page := func(v url.Values) string { return base + "?" + v.Encode() }
	lim := strconv.Itoa(limit)
	fakeapi.WriteJSON(w, http.StatusOK, map[string]any{"items": items, "paging": map[string]string{
		"first":    page(url.Values{"limit": {lim}}),
		"next":     page(url.Values{"page": {"next"}, "address": {last}, "limit": {lim}}),
		"previous": page(url.Values{"page": {"previous"}, "address": {after}, "limit": {lim}}),
		"last":     page(url.Values{"page": {"last"}, "limit": {lim}}),
	}})
}

// Forget removes address from domain's unsubscribes table without a call
// (someone cleared it in Mailgun's control panel: drift).
func (f *Fake) Forget(domain, address string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if table, ok := f.domains[strings.ToLower(domain)]; ok {
		delete(table, fakeapi.Lower(address))
	}
}

// Lookup returns a copy of address's record in domain's table.
func (f *Fake) Lookup(domain, address string) (Record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.domains[strings.ToLower(domain)][fakeapi.Lower(address)]
	if cur == nil {
		return Record{}, false
	}
	r := *cur
	r.Tags = slices.Clone(cur.Tags)
	return r, true
}

// Unsubscribed returns the addresses of domain's table, as first spelled,
// sorted.
func (f *Fake) Unsubscribed(domain string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.domains[strings.ToLower(domain)] {
		out = append(out, r.Address)
	}
	sort.Strings(out)
	return out
}
