// Package sesfake stands in for the Amazon SES API v2 in tests, the demo's
// sandbox and the bench: the contact-list contact operations and the
// account-level suppression list, over the REST-JSON wire format the AWS
// SDK for Go v2 (service/sesv2) speaks.
//
// Paths, served at the root (base_url = the server's URL):
//
//	PUT  /v2/email/contact-lists/{ContactListName}/contacts/{EmailAddress}  UpdateContact
//	POST /v2/email/contact-lists/{ContactListName}/contacts                 CreateContact
//	GET  /v2/email/contact-lists/{ContactListName}/contacts/{EmailAddress}  GetContact
//	POST /v2/email/contact-lists/{ContactListName}/contacts/list            ListContacts
//	PUT  /v2/email/suppression/addresses                                    PutSuppressedDestination
//	GET  /v2/email/suppression/addresses/{EmailAddress}                     GetSuppressedDestination
//
// (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_UpdateContact.html,
// API_CreateContact.html, API_GetContact.html, API_PutSuppressedDestination.html,
// API_GetSuppressedDestination.html, API_ListContacts.html in the same
// directory.)
//
// Errors are SES's: the HTTP status of the modelled exception, the
// "x-amzn-ErrorType" header naming it and a {"message": "..."} body
// (https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html),
// so the SDK decodes them into its typed errors (types.NotFoundException,
// types.BadRequestException, types.TooManyRequestsException, ...).
//
// Authentication: every request must carry a SigV4 Authorization header,
// "AWS4-HMAC-SHA256 Credential=<access key id>/<date>/<region>/ses/aws4_request, ...",
// naming the fake's access key id (and its region, when set). The signature
// itself is not verified. A missing header is answered 403
// MissingAuthenticationTokenException, another key 403
// UnrecognizedClientException, as AWS does.
//
// SES v2 has no batch endpoint for contacts or suppressions, so there is no
// batch limit to enforce; its rate limit for API actions other than sending
// (1 request per second by default,
// https://docs.aws.amazon.com/ses/latest/dg/quotas.html) is not modelled:
// script it with Throttled.
package sesfake

import (
	"bytes"
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

// Subscription statuses of a topic preference (types.SubscriptionStatus).
const (
	OptIn  = "OPT_IN"
	OptOut = "OPT_OUT"
)

// Account-level suppression reasons (types.SuppressionListReason).
const (
	ReasonBounce    = "BOUNCE"
	ReasonComplaint = "COMPLAINT"
)

// Topic is a contact list's topic and its default subscription status
// (OptIn or OptOut), which applies to contacts without a preference for it.
type Topic struct {
	Name    string
	Default string
}

// Contact is a contact of a list as the fake holds it.
type Contact struct {
	EmailAddress string
	// TopicPreferences maps a topic name to OptIn or OptOut.
	TopicPreferences map[string]string
	UnsubscribeAll   bool
	AttributesData   string
	Created, Updated time.Time
}

// Suppressed is an entry of the account-level suppression list.
type Suppressed struct {
	EmailAddress string
	Reason       string
	LastUpdate   time.Time
}

type list struct {
	topics   map[string]string // name → default status
	contacts map[string]*Contact
}

// Server is a fake SES v2 endpoint. Create it with New; it is safe for
// concurrent use.
type Server struct {
	fakeapi.Recorder

	accessKeyID string
	// Region, when set, is the only region a request's credential scope may
	// name (403 InvalidSignatureException otherwise).
	Region string

	mu         sync.Mutex
	lists      map[string]*list
	suppressed map[string]Suppressed
}

// New returns a fake that accepts requests signed with accessKeyID, with no
// contact list (add them with AddContactList).
func New(accessKeyID string) *Server {
	s := &Server{accessKeyID: accessKeyID, lists: map[string]*list{}, suppressed: map[string]Suppressed{}}
	s.Recorder.ErrorBody = func(status int) string { return errorJSON(http.StatusText(status)) }
	s.Recorder.ContentType = "application/json"
	return s
}

func errorJSON(msg string) string {
	b, _ := json.Marshal(map[string]string{"message": msg})
	return string(b)
}

// Error is a scripted SES error answer: status, the "x-amzn-ErrorType"
// header set to typ ("TooManyRequestsException") and {"message": msg}.
func Error(status int, typ, msg string) fakeapi.Answer {
	return fakeapi.Answer{Status: status, Header: http.Header{"X-Amzn-Errortype": {typ}}, Body: errorJSON(msg)}
}

// Throttled is SES's throttling answer: 429 TooManyRequestsException
// "Too many requests." (SES sends no Retry-After).
func Throttled() fakeapi.Answer {
	return Error(http.StatusTooManyRequests, "TooManyRequestsException", "Too many requests.")
}

// InternalError is SES's 500 InternalServiceErrorException.
func InternalError() fakeapi.Answer {
	return Error(http.StatusInternalServerError, "InternalServiceErrorException", "Internal service error.")
}

// AddContactList creates (or replaces) the contact list name with topics.
func (s *Server) AddContactList(name string, topics ...Topic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &list{topics: map[string]string{}, contacts: map[string]*Contact{}}
	for _, t := range topics {
		d := t.Default
		if d == "" {
			d = OptIn
		}
		l.topics[t.Name] = d
	}
	s.lists[name] = l
}

// AddContact puts a contact in list (which must exist): subscribed unless
// unsubscribeAll, with prefs (topic → OptIn/OptOut; nil: none).
func (s *Server) AddContact(listName, email string, unsubscribeAll bool, prefs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[listName]
	if l == nil {
		panic("sesfake: AddContact: no contact list " + listName)
	}
	now := s.now()
	c := &Contact{EmailAddress: email, TopicPreferences: map[string]string{}, UnsubscribeAll: unsubscribeAll, Created: now, Updated: now}
	for k, v := range prefs {
		c.TopicPreferences[k] = v
	}
	l.contacts[fakeapi.Lower(email)] = c
}

// SetUpdated sets the LastUpdatedTimestamp of list's contact for email
// (an unsubscribe older than consentsync, for backfills); false when there
// is no such contact.
func (s *Server) SetUpdated(listName, email string, at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lists[listName].contactOf(email)
	if c != nil {
		c.Updated = at.UTC()
	}
	return c != nil
}

func (l *list) contactOf(email string) *Contact {
	if l == nil {
		return nil
	}
	return l.contacts[fakeapi.Lower(email)]
}

// MaxPageSize is the largest PageSize ListContacts accepts
// (API_ListContacts.html: "Valid Range: Maximum value of 1000"); more is
// a 400 BadRequestException.
const MaxPageSize = 1000

// listContacts: API_ListContacts.html. The body {"PageSize",
// "NextToken", "Filter"} (every member optional; the fake ignores Filter)
// pages the list's contacts in address order: at most PageSize (default
// 1000) {"EmailAddress", "TopicPreferences", "TopicDefaultPreferences",
// "UnsubscribeAll", "LastUpdatedTimestamp"} and a "NextToken" while more
// follow. An unknown token is a 400 BadRequestException.
func (s *Server) listContacts(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PageSize  *int   `json:"PageSize"`
		NextToken string `json:"NextToken"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &req) != nil {
		writeError(w, http.StatusBadRequest, "BadRequestException", "Invalid request body.")
		return
	}
	size := MaxPageSize
	if req.PageSize != nil {
		if *req.PageSize < 1 || *req.PageSize > MaxPageSize {
			writeError(w, http.StatusBadRequest, "BadRequestException", "PageSize must be between 1 and 1000.")
			return
		}
		size = *req.PageSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("list")
	l := s.lookupList(w, name)
	if l == nil {
		return
	}
	keys := make([]string, 0, len(l.contacts))
	for k := range l.contacts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	start := 0
	if req.NextToken != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.NextToken, "tok-"))
		if err != nil || n < 0 || !strings.HasPrefix(req.NextToken, "tok-") {
			writeError(w, http.StatusBadRequest, "BadRequestException", "Invalid NextToken.")
			return
		}
		start = n
	}
	var out []map[string]any
	for i := start; i < len(keys) && len(out) < size; i++ {
		c := l.contacts[keys[i]]
		prefs, defaults := []topicPreference{}, []topicPreference{}
		for t, v := range c.TopicPreferences {
			prefs = append(prefs, topicPreference{t, v})
		}
		for t, v := range l.topics {
			defaults = append(defaults, topicPreference{t, v})
		}
		sort.Slice(prefs, func(i, j int) bool { return prefs[i].TopicName < prefs[j].TopicName })
		sort.Slice(defaults, func(i, j int) bool { return defaults[i].TopicName < defaults[j].TopicName })
		out = append(out, map[string]any{"EmailAddress": c.EmailAddress, "TopicPreferences": prefs, "TopicDefaultPreferences": defaults,
			"UnsubscribeAll": c.UnsubscribeAll, "LastUpdatedTimestamp": epoch(c.Updated)})
	}
	ans := map[string]any{"Contacts": out}
	if end := start + len(out); end < len(keys) && len(out) > 0 {
		ans["NextToken"] = "tok-" + strconv.Itoa(end)
	}
	if out == nil {
		ans["Contacts"] = []any{}
	}
	fakeapi.WriteJSON(w, http.StatusOK, ans)
}

// Contact returns a copy of list's contact for email (matched
// case-insensitively), and whether there is one.
func (s *Server) Contact(listName, email string) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[listName]
	if l == nil {
		return Contact{}, false
	}
	c := l.contacts[fakeapi.Lower(email)]
	if c == nil {
		return Contact{}, false
	}
	cp := *c
	cp.TopicPreferences = map[string]string{}
	for k, v := range c.TopicPreferences {
		cp.TopicPreferences[k] = v
	}
	return cp, true
}

// Unsubscribed reports whether list holds email with UnsubscribeAll set.
func (s *Server) Unsubscribed(listName, email string) bool {
	c, ok := s.Contact(listName, email)
	return ok && c.UnsubscribeAll
}

// Forget re-subscribes list's contact for email (UnsubscribeAll false, its
// topic preferences removed), as if someone changed it in the console: the
// drift Check must find.
func (s *Server) Forget(listName, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lists[listName]; l != nil {
		if c := l.contacts[fakeapi.Lower(email)]; c != nil {
			c.UnsubscribeAll = false
			c.TopicPreferences = map[string]string{}
			c.Updated = s.now()
		}
	}
}

// AddSuppressed puts email on the account-level suppression list for
// reason (ReasonBounce or ReasonComplaint).
func (s *Server) AddSuppressed(email, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.suppressed[fakeapi.Lower(email)] = Suppressed{EmailAddress: email, Reason: reason, LastUpdate: s.now()}
}

// AccountSuppression returns email's entry on the account-level suppression
// list, and whether there is one.
func (s *Server) AccountSuppression(email string) (Suppressed, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.suppressed[fakeapi.Lower(email)]
	return e, ok
}

// ForgetSuppressed removes email from the account-level suppression list
// (DeleteSuppressedDestination, done behind the connector's back).
func (s *Server) ForgetSuppressed(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.suppressed, fakeapi.Lower(email))
}

// Snapshot describes the state: one line per contact ("list email
// unsubscribe_all=true topics=a:OPT_OUT,b:OPT_IN") and per account
// suppression ("suppressed email COMPLAINT"), sorted.
func (s *Server) Snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, l := range s.lists {
		for k, c := range l.contacts {
			var tp []string
			for t, v := range c.TopicPreferences {
				tp = append(tp, t+":"+v)
			}
			sort.Strings(tp)
			out = append(out, fmt.Sprintf("%s %s unsubscribe_all=%t topics=%s", name, k, c.UnsubscribeAll, strings.Join(tp, ",")))
		}
	}
	for k, e := range s.suppressed {
		out = append(out, fmt.Sprintf("suppressed %s %s", k, e.Reason))
	}
	sort.Strings(out)
	return out
}

func (s *Server) now() time.Time {
	if s.Recorder.Now != nil {
		return s.Recorder.Now()
	}
	return time.Now()
}

// Handler serves the fake's paths (see the package documentation).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v2/email/contact-lists/{list}/contacts/{email}", s.updateContact)
	mux.HandleFunc("POST /v2/email/contact-lists/{list}/contacts", s.createContact)
	mux.HandleFunc("GET /v2/email/contact-lists/{list}/contacts/{email}", s.getContact)
	mux.HandleFunc("POST /v2/email/contact-lists/{list}/contacts/list", s.listContacts)
	mux.HandleFunc("PUT /v2/email/suppression/addresses", s.putSuppressed)
	mux.HandleFunc("GET /v2/email/suppression/addresses/{email}", s.getSuppressed)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "UnknownOperationException", "")
	})
	return s.Recorder.Wrap(s.auth(mux))
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-Errortype", typ)
	fakeapi.WriteRaw(w, status, "application/json", errorJSON(msg))
}

// auth checks the SigV4 Authorization header's credential scope.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			writeError(w, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
			return
		}
		const algo = "AWS4-HMAC-SHA256 "
		if !strings.HasPrefix(h, algo) || r.Header.Get("X-Amz-Date") == "" {
			writeError(w, http.StatusForbidden, "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
			return
		}
		var cred string
		for _, part := range strings.Split(h[len(algo):], ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "Credential="); ok {
				cred = v
			}
		}
		scope := strings.Split(cred, "/") // akid/date/region/service/aws4_request
		if len(scope) != 5 || scope[4] != "aws4_request" {
			writeError(w, http.StatusForbidden, "IncompleteSignatureException", "Authorization header requires a valid 'Credential' parameter.")
			return
		}
		if scope[0] != s.accessKeyID {
			writeError(w, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
			return
		}
		if scope[3] != "ses" || (s.Region != "" && scope[2] != s.Region) {
			writeError(w, http.StatusForbidden, "InvalidSignatureException", fmt.Sprintf("Credential should be scoped to a valid region and service 'ses', not '%s/%s'.", scope[2], scope[3]))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type topicPreference struct {
	TopicName          string `json:"TopicName"`
	SubscriptionStatus string `json:"SubscriptionStatus"`
}

type contactBody struct {
	EmailAddress     string            `json:"EmailAddress,omitempty"`
	TopicPreferences []topicPreference `json:"TopicPreferences"`
	UnsubscribeAll   bool              `json:"UnsubscribeAll"`
	AttributesData   *string           `json:"AttributesData"`
}

// decode reads r's JSON body into v; an empty body is {}.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	if len(bytes.TrimSpace(b)) == 0 {
		return true
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "Could not parse the request body.")
		return false
	}
	return true
}

// checkPrefs validates topic preferences against l (lock held).
func checkPrefs(w http.ResponseWriter, l *list, prefs []topicPreference) bool {
	for _, p := range prefs {
		if _, ok := l.topics[p.TopicName]; !ok {
			writeError(w, http.StatusNotFound, "NotFoundException", fmt.Sprintf("List doesn't contain topic: %s", p.TopicName))
			return false
		}
		if p.SubscriptionStatus != OptIn && p.SubscriptionStatus != OptOut {
			writeError(w, http.StatusBadRequest, "BadRequestException", fmt.Sprintf("Invalid subscription status: %s", p.SubscriptionStatus))
			return false
		}
	}
	return true
}

func (s *Server) lookupList(w http.ResponseWriter, name string) *list {
	l := s.lists[name]
	if l == nil {
		writeError(w, http.StatusNotFound, "NotFoundException", fmt.Sprintf("List with name %s does not exist.", name))
	}
	return l
}

// updateContact: API_UpdateContact.html. The topic preferences sent
// replace the contact's (unmentioned ones are removed, as documented);
// UnsubscribeAll absent means false.
func (s *Server) updateContact(w http.ResponseWriter, r *http.Request) {
	var body contactBody
	if !decode(w, r, &body) {
		return
	}
	email := r.PathValue("email")
	if !fakeapi.LooksLikeEmail(email) {
		writeError(w, http.StatusBadRequest, "BadRequestException", "Invalid email address.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lookupList(w, r.PathValue("list"))
	if l == nil {
		return
	}
	c := l.contacts[fakeapi.Lower(email)]
	if c == nil {
		writeError(w, http.StatusNotFound, "NotFoundException", "Contact does not exist.")
		return
	}
	if !checkPrefs(w, l, body.TopicPreferences) {
		return
	}
	c.TopicPreferences = map[string]string{}
	for _, p := range body.TopicPreferences {
		c.TopicPreferences[p.TopicName] = p.SubscriptionStatus
	}
	c.UnsubscribeAll = body.UnsubscribeAll
	if body.AttributesData != nil {
		c.AttributesData = *body.AttributesData
	}
	c.Updated = s.now()
	fakeapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// createContact: API_CreateContact.html. An existing contact is 400
// AlreadyExistsException.
func (s *Server) createContact(w http.ResponseWriter, r *http.Request) {
	var body contactBody
	if !decode(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lookupList(w, r.PathValue("list"))
	if l == nil {
		return
	}
	if !fakeapi.LooksLikeEmail(body.EmailAddress) {
		writeError(w, http.StatusBadRequest, "BadRequestException", "Invalid email address.")
		return
	}
	k := fakeapi.Lower(body.EmailAddress)
	if l.contacts[k] != nil {
		writeError(w, http.StatusBadRequest, "AlreadyExistsException", "Contact already exists.")
		return
	}
	if !checkPrefs(w, l, body.TopicPreferences) {
		return
	}
	now := s.now()
	c := &Contact{EmailAddress: body.EmailAddress, TopicPreferences: map[string]string{}, UnsubscribeAll: body.UnsubscribeAll, Created: now, Updated: now}
	for _, p := range body.TopicPreferences {
		c.TopicPreferences[p.TopicName] = p.SubscriptionStatus
	}
	if body.AttributesData != nil {
		c.AttributesData = *body.AttributesData
	}
	l.contacts[k] = c
	fakeapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// getContact: API_GetContact.html. Timestamps are epoch seconds (the
// REST-JSON default).
func (s *Server) getContact(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("list")
	l := s.lookupList(w, name)
	if l == nil {
		return
	}
	c := l.contacts[fakeapi.Lower(r.PathValue("email"))]
	if c == nil {
		writeError(w, http.StatusNotFound, "NotFoundException", "Contact does not exist.")
		return
	}
	prefs, defaults := []topicPreference{}, []topicPreference{}
	for t, v := range c.TopicPreferences {
		prefs = append(prefs, topicPreference{t, v})
	}
	for t, v := range l.topics {
		defaults = append(defaults, topicPreference{t, v})
	}
	sort.Slice(prefs, func(i, j int) bool { return prefs[i].TopicName < prefs[j].TopicName })
	sort.Slice(defaults, func(i, j int) bool { return defaults[i].TopicName < defaults[j].TopicName })
	ans := map[string]any{
		"ContactListName":         name,
		"EmailAddress":            c.EmailAddress,
		"TopicPreferences":        prefs,
		"TopicDefaultPreferences": defaults,
		"UnsubscribeAll":          c.UnsubscribeAll,
		"CreatedTimestamp":        epoch(c.Created),
		"LastUpdatedTimestamp":    epoch(c.Updated),
	}
	if c.AttributesData != "" {
		ans["AttributesData"] = c.AttributesData
	}
	fakeapi.WriteJSON(w, http.StatusOK, ans)
}

// putSuppressed: API_PutSuppressedDestination.html. Reason must be BOUNCE
// or COMPLAINT (400 BadRequestException otherwise); repeating it updates
// the entry.
func (s *Server) putSuppressed(w http.ResponseWriter, r *http.Request) {
	var body struct {
		EmailAddress string `json:"EmailAddress"`
		Reason       string `json:"Reason"`
	}
	if !decode(w, r, &body) {
		return
	}
	if !fakeapi.LooksLikeEmail(body.EmailAddress) {
		writeError(w, http.StatusBadRequest, "BadRequestException", "Invalid email address.")
		return
	}
	if body.Reason != ReasonBounce && body.Reason != ReasonComplaint {
		writeError(w, http.StatusBadRequest, "BadRequestException", fmt.Sprintf("Invalid reason: %s", body.Reason))
		return
	}
	s.mu.Lock()
	s.suppressed[fakeapi.Lower(body.EmailAddress)] = Suppressed{EmailAddress: body.EmailAddress, Reason: body.Reason, LastUpdate: s.now()}
	s.mu.Unlock()
	fakeapi.WriteJSON(w, http.StatusOK, struct{}{})
}

// getSuppressed: API_GetSuppressedDestination.html; an address not on the
// list is 404 NotFoundException.
func (s *Server) getSuppressed(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	s.mu.Lock()
	e, ok := s.suppressed[fakeapi.Lower(email)]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "NotFoundException", "Email address is not on the suppression list for your account.")
		return
	}
	fakeapi.WriteJSON(w, http.StatusOK, map[string]any{"SuppressedDestination": map[string]any{
		"EmailAddress": e.EmailAddress, "Reason": e.Reason, "LastUpdateTime": epoch(e.LastUpdate), "Attributes": map[string]any{},
	}})
}
