// Package salesforcefake stands in for one Salesforce org's REST API in
// tests, the demo's sandbox and benchmarks: the OAuth 2.0 client
// credentials token endpoint, SOQL queries of the shape the destination
// emits, and sObject Collections updates. It serves Salesforce's paths at
// the root, so a destination's instance_url is the server's URL:
//
//	POST  /services/oauth2/token                     client credentials flow
//	GET   /services/data/{version}/query?q=SOQL      query (and /query/{cursor} pages)
//	PATCH /services/data/{version}/composite/sobjects update up to 200 records
//
// References:
//   - https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
//   - https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
//   - https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-update.html
//   - error bodies: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
//
// The token endpoint answers 400 {"error": "invalid_client",
// "error_description": "invalid client credentials"} for a wrong client
// id or secret. Every data path checks "Authorization: Bearer TOKEN" for a
// token it issued and not expired (ExpireTokens): else 401
// [{"message": "Session expired or invalid", "errorCode":
// "INVALID_SESSION_ID"}]. Errors use Salesforce's REST error body
// [{"message", "errorCode"}]. Script (from the embedded fakeapi.Recorder)
// queues answers given before any of this, e.g. LimitExceeded(). A Fake is
// safe for concurrent use.
package salesforcefake

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/consentsync/consentsync/internal/fakeapi"
)

// Default credentials New accepts unless WithClient says otherwise.
const (
	DefaultClientID     = "3MVG9demo.client.id"
	DefaultClientSecret = "demo-client-secret"
)

// MaxRecords is Salesforce's limit of records per collections call.
const MaxRecords = 200

// DefaultField is the checkbox the fake's records carry.
const DefaultField = "HasOptedOutOfEmail"

// Record is one Contact or Lead of the fake org.
type Record struct {
	Type      string
	ID        string
	Email     string
	OptedOut  bool
	Converted bool // Lead only: Salesforce refuses to update it
	// Refusal, when set, is the statusCode an update of the record
	// answers (Lock, Refuse), with RefusalMessage.
	Refusal        string
	RefusalMessage string
}

// Fake is one Salesforce org. Use New.
type Fake struct {
	fakeapi.Recorder

	mu       sync.Mutex
	id       string
	secret   string
	field    string
	pageSize int
	tokens   map[string]bool
	issued   int
	records  map[string]*Record // by Id
	order    []string           // Ids in creation order
	cursors  map[string][]*Record
	seq      int
}

// Option configures New.
type Option func(*Fake)

// WithClient sets the accepted client id and secret.
func WithClient(id, secret string) Option { return func(f *Fake) { f.id, f.secret = id, secret } }

// WithField sets the checkbox field name (default DefaultField).
func WithField(name string) Option { return func(f *Fake) { f.field = name } }

// WithPageSize sets how many records a query page holds (default 2000,
// Salesforce's default batch size); more come through nextRecordsUrl.
func WithPageSize(n int) Option { return func(f *Fake) { f.pageSize = n } }

// New returns an empty org accepting the default client.
func New(opts ...Option) *Fake {
	f := &Fake{id: DefaultClientID, secret: DefaultClientSecret, field: DefaultField, pageSize: 2000,
		tokens: map[string]bool{}, records: map[string]*Record{}, cursors: map[string][]*Record{}}
	f.ErrorBody = func(status int) string {
		code := map[int]string{400: "MALFORMED_QUERY", 401: "INVALID_SESSION_ID", 403: "FORBIDDEN", 404: "NOT_FOUND", 500: "UNKNOWN_EXCEPTION", 503: "SERVER_UNAVAILABLE"}[status]
		if code == "" {
			code = "UNKNOWN_EXCEPTION"
		}
		return ErrorBody(code, http.StatusText(status))
	}
	f.ContentType = "application/json"
	for _, o := range opts {
		o(f)
	}
	return f
}

// ErrorBody is Salesforce's REST error body [{"message", "errorCode"}].
func ErrorBody(code, msg string) string {
	b, _ := json.Marshal([]map[string]string{{"message": msg, "errorCode": code}})
	return string(b)
}

// LimitExceeded is Salesforce's answer once the org's API request
// allocation is spent: 403 [{"message": "TotalRequests Limit exceeded.",
// "errorCode": "REQUEST_LIMIT_EXCEEDED"}].
func LimitExceeded() fakeapi.Answer {
	return fakeapi.Answer{Status: http.StatusForbidden, Body: ErrorBody("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")}
}

func (f *Fake) add(typ, email string, converted bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	prefix := "003"
	if typ == "Lead" {
		prefix = "00Q"
	}
	id := fmt.Sprintf("%sFAKE%011d", prefix, f.seq) // 18 characters
	f.records[id] = &Record{Type: typ, ID: id, Email: email, Converted: converted}
	f.order = append(f.order, id)
	return id
}

// AddContact adds a Contact with email and returns its Id.
func (f *Fake) AddContact(email string) string { return f.add("Contact", email, false) }

// SetOptedOut sets the record's checkbox field (an opt-out made in the
// CRM before consentsync, for backfills); false for an unknown id.
func (f *Fake) SetOptedOut(id string, v bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.records[id]
	if ok {
		rec.OptedOut = v
	}
	return ok
}

// AddLead adds a Lead (converted or not) and returns its Id.
func (f *Fake) AddLead(email string, converted bool) string { return f.add("Lead", email, converted) }

// Lock makes updates of the record answer UNABLE_TO_LOCK_ROW (or, with
// false, succeed again).
func (f *Fake) Lock(id string, locked bool) {
	if locked {
		f.Refuse(id, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
	} else {
		f.Refuse(id, "", "")
	}
}

// Refuse makes updates of the record fail with statusCode and message
// (a validation rule: FIELD_CUSTOM_VALIDATION_EXCEPTION); "" lifts it.
func (f *Fake) Refuse(id, statusCode, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.records[id]; ok {
		r.Refusal, r.RefusalMessage = statusCode, message
	}
}

// Get returns a copy of a record.
func (f *Fake) Get(id string) (Record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.records[id]
	if !ok {
		return Record{}, false
	}
	return *r, true
}

// OptedOut returns the Ids of records with the field true, in creation
// order.
func (f *Fake) OptedOut() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range f.order {
		if f.records[id].OptedOut {
			out = append(out, id)
		}
	}
	return out
}

// Forget sets the field false on every record of email (any case) behind
// consentsync's back (a user unticking it), to test drift. It reports
// whether a record changed.
func (f *Fake) Forget(email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := false
	for _, r := range f.records {
		if fakeapi.Lower(r.Email) == fakeapi.Lower(email) && r.OptedOut {
			r.OptedOut, changed = false, true
		}
	}
	return changed
}

// ExpireTokens invalidates every issued token (a session timeout): the
// next data call answers 401 INVALID_SESSION_ID.
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]bool{}
}

// TokensIssued is how many tokens the token endpoint issued.
func (f *Fake) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// Handler serves the org's paths at the root, through Recorder.Wrap.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/oauth2/token", f.token)
	mux.HandleFunc("GET /services/data/{version}/query", f.query)
	mux.HandleFunc("GET /services/data/{version}/query/{cursor}", f.more)
	mux.HandleFunc("PATCH /services/data/{version}/composite/sobjects", f.update)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("NOT_FOUND", "The requested resource does not exist"))
	})
	return f.Wrap(mux)
}

// token answers the client credentials flow: form grant_type
// client_credentials, client_id, client_secret → 200 {"access_token",
// "instance_url", "id", "token_type": "Bearer", "issued_at" (ms),
// "signature", "scope": "api"}.
func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	form, err := url.ParseQuery(string(body))
	oauthErr := func(code, desc string) {
		fakeapi.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
	}
	switch {
	case err != nil || form.Get("grant_type") == "":
		oauthErr("invalid_request", "grant type is missing")
		return
	case form.Get("grant_type") != "client_credentials":
		oauthErr("unsupported_grant_type", "grant type not supported")
		return
	}
	f.mu.Lock()
	ok := subtle.ConstantTimeCompare([]byte(form.Get("client_id")), []byte(f.id)) == 1 &&
		subtle.ConstantTimeCompare([]byte(form.Get("client_secret")), []byte(f.secret)) == 1 && f.secret != ""
	var tok string
	if ok {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok = "00DFAKE0000000001!AR" + hex.EncodeToString(b)
		f.tokens[tok] = true
		f.issued++
	}
	f.mu.Unlock()
	if !ok {
		oauthErr("invalid_client", "invalid client credentials")
		return
	}
	inst := "http://" + r.Host
	fakeapi.WriteJSON(w, http.StatusOK, map[string]string{
		"access_token": tok, "instance_url": inst, "id": "https://login.salesforce.com/id/00DFAKE0000000001/005FAKE0000000001",
		"token_type": "Bearer", "issued_at": strconv.FormatInt(time.Now().UnixMilli(), 10), "signature": "ZmFrZS1zaWduYXR1cmU=", "scope": "api",
	})
}

func (f *Fake) auth(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	ok = ok && f.tokens[strings.TrimSpace(tok)]
	f.mu.Unlock()
	if !ok {
		fakeapi.WriteRaw(w, http.StatusUnauthorized, "application/json", ErrorBody("INVALID_SESSION_ID", "Session expired or invalid"))
		return false
	}
	if !versionRE.MatchString(r.PathValue("version")) {
		fakeapi.WriteRaw(w, http.StatusNotFound, "application/json", ErrorBody("NOT_FOUND", "The requested resource does not exist"))
		return false
	}
	return true
}

var (
	versionRE = regexp.MustCompile(`^v[0-9]{2}\.0$`)
	soqlRE    = regexp.MustCompile(`^SELECT Id, Email, ([A-Za-z][A-Za-z0-9_]*) FROM ([A-Za-z][A-Za-z0-9_]*) WHERE Email IN \((.*)\)( AND IsConverted = false)?$`)
)

// ParseSOQL parses the one query shape the destination emits (SELECT Id,
// Email, FIELD FROM OBJECT WHERE Email IN ('a', ...) [AND IsConverted =
// false]) and unescapes its string literals. ok is false for any other
// text.
func ParseSOQL(q string) (field, object string, emails []string, activeLeads, ok bool) {
	m := soqlRE.FindStringSubmatch(q)
	if m == nil {
		return "", "", nil, false, false
	}
	list := m[3]
	for i := 0; i < len(list); {
		if list[i] != '\'' {
			return "", "", nil, false, false
		}
		var b strings.Builder
		i++
		closed := false
		for i < len(list) {
			c := list[i]
			if c == '\\' && i+1 < len(list) {
				b.WriteByte(unescape(list[i+1]))
				i += 2
				continue
			}
			if c == '\'' {
				closed = true
				i++
				break
			}
			b.WriteByte(c)
			i++
		}
		if !closed {
			return "", "", nil, false, false
		}
		emails = append(emails, b.String())
		if i < len(list) {
			if !strings.HasPrefix(list[i:], ", ") {
				return "", "", nil, false, false
			}
			i += 2
			if i == len(list) {
				return "", "", nil, false, false
			}
		}
	}
	return m[1], m[2], emails, m[4] != "", len(emails) > 0
}

// ListQuery is the listing query a backfill emits: SELECT Id, Email FROM
// Object WHERE Field = true AND Id > 'After' ORDER BY Id LIMIT Limit.
type ListQuery struct {
	Object, Field, After string
	Limit                int
}

var listRE = regexp.MustCompile(`^SELECT Id, Email FROM ([A-Za-z][A-Za-z0-9_]*) WHERE ([A-Za-z][A-Za-z0-9_]*) = true AND Id > '([A-Za-z0-9]*)' ORDER BY Id LIMIT ([0-9]{1,5})$`)

// ParseListSOQL parses a ListQuery; ok is false for any other text.
func ParseListSOQL(q string) (ListQuery, bool) {
	m := listRE.FindStringSubmatch(q)
	if m == nil {
		return ListQuery{}, false
	}
	n, _ := strconv.Atoi(m[4])
	return ListQuery{Object: m[1], Field: m[2], After: m[3], Limit: n}, true
}

// list answers a ListQuery: the records of the object whose field is true
// and whose Id sorts after After, in Id order, at most Limit (SOQL's
// LIMIT; at most 2000 here, more is MALFORMED_QUERY), in one page.
func (f *Fake) list(w http.ResponseWriter, r *http.Request, l ListQuery) {
	switch {
	case l.Object != "Contact" && l.Object != "Lead":
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("INVALID_TYPE", "sObject type '"+l.Object+"' is not supported."))
		return
	case l.Field != f.field:
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("INVALID_FIELD", "No such column '"+l.Field+"' on entity '"+l.Object+"'."))
		return
	case l.Limit < 1 || l.Limit > 2000:
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("MALFORMED_QUERY", "LIMIT must be 1 to 2000 in this fake"))
		return
	}
	f.mu.Lock()
	var recs []*Record
	for _, rec := range f.records {
		if rec.Type == l.Object && rec.OptedOut && rec.ID > l.After {
			cp := *rec
			recs = append(recs, &cp)
		}
	}
	f.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	if len(recs) > l.Limit {
		recs = recs[:l.Limit]
	}
	f.page(w, r.PathValue("version"), recs, len(recs))
}

// unescape is the character a SOQL escape sequence stands for.
func unescape(e byte) byte {
	switch e {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	}
	return e // \\ \' \"
}

// query answers GET /services/data/{v}/query?q=SOQL: 200 {"totalSize",
// "done", "records": [{"attributes": {"type", "url"}, "Id", "Email",
// FIELD}], "nextRecordsUrl" while not done}. Email matches ignore case
// (SOQL text comparisons do). 400 MALFORMED_QUERY for another shape,
// INVALID_TYPE for an object other than Contact and Lead, INVALID_FIELD
// for another field.
func (f *Fake) query(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	if l, ok := ParseListSOQL(r.URL.Query().Get("q")); ok {
		f.list(w, r, l)
		return
	}
	field, object, emails, active, ok := ParseSOQL(r.URL.Query().Get("q"))
	switch {
	case !ok:
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("MALFORMED_QUERY", "unexpected token"))
		return
	case object != "Contact" && object != "Lead":
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("INVALID_TYPE", "sObject type '"+object+"' is not supported."))
		return
	case field != f.field:
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("INVALID_FIELD", "No such column '"+field+"' on entity '"+object+"'."))
		return
	}
	want := map[string]bool{}
	for _, e := range emails {
		want[fakeapi.Lower(e)] = true
	}
	f.mu.Lock()
	var recs []*Record
	for _, id := range f.order {
		rec := f.records[id]
		if rec.Type == object && want[fakeapi.Lower(rec.Email)] && !(active && rec.Converted) {
			cp := *rec
			recs = append(recs, &cp)
		}
	}
	f.mu.Unlock()
	f.page(w, r.PathValue("version"), recs, len(recs))
}

// more answers GET /services/data/{v}/query/{cursor} (nextRecordsUrl).
func (f *Fake) more(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	f.mu.Lock()
	recs, ok := f.cursors[r.PathValue("cursor")]
	delete(f.cursors, r.PathValue("cursor"))
	f.mu.Unlock()
	if !ok {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("INVALID_QUERY_LOCATOR", "invalid query locator"))
		return
	}
	f.page(w, r.PathValue("version"), recs, -1)
}

func (f *Fake) page(w http.ResponseWriter, version string, recs []*Record, total int) {
	f.mu.Lock()
	n := min(len(recs), f.pageSize)
	ans := map[string]any{"done": n == len(recs)}
	if n < len(recs) {
		f.seq++
		cur := fmt.Sprintf("01gFAKE%08d-%d", f.seq, n)
		f.cursors[cur] = recs[n:]
		ans["nextRecordsUrl"] = "/services/data/" + version + "/query/" + cur
	}
	field := f.field
	f.mu.Unlock()
	if total < 0 {
		total = len(recs)
	}
	list := make([]map[string]any, 0, n)
	for _, rec := range recs[:n] {
		list = append(list, map[string]any{
			"attributes": map[string]string{"type": rec.Type, "url": "/services/data/" + version + "/sobjects/" + rec.Type + "/" + rec.ID},
			"Id":         rec.ID, "Email": rec.Email, field: rec.OptedOut,
		})
	}
	ans["totalSize"], ans["records"] = total, list
	fakeapi.WriteJSON(w, http.StatusOK, ans)
}

// update answers PATCH /services/data/{v}/composite/sobjects {"allOrNone":
// false, "records": [{"attributes": {"type"}, "id", FIELD: bool}]}: 200
// [{"id", "success", "errors": [{"statusCode", "message", "fields"}]}] in
// request order. More than MaxRecords records: 400 EXCEEDED_ID_LIMIT.
// Per record: INVALID_CROSS_REFERENCE_KEY for an unknown id or a type that
// does not match, CANNOT_UPDATE_CONVERTED_LEAD, UNABLE_TO_LOCK_ROW for a
// locked one, INVALID_FIELD for another field. allOrNone true is not
// supported (400).
func (f *Fake) update(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, fakeapi.MaxBody))
	var req struct {
		AllOrNone bool                         `json:"allOrNone"`
		Records   []map[string]json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Records) == 0 {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("JSON_PARSER_ERROR", "Cannot deserialize the request body"))
		return
	}
	if len(req.Records) > MaxRecords {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"))
		return
	}
	if req.AllOrNone {
		fakeapi.WriteRaw(w, http.StatusBadRequest, "application/json", ErrorBody("INVALID_INPUT", "salesforcefake: allOrNone true is not supported"))
		return
	}
	type saveErr struct {
		StatusCode string   `json:"statusCode"`
		Message    string   `json:"message"`
		Fields     []string `json:"fields"`
	}
	type save struct {
		ID      string    `json:"id,omitempty"`
		Success bool      `json:"success"`
		Errors  []saveErr `json:"errors"`
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]save, 0, len(req.Records))
	for _, raw := range req.Records {
		var attrs struct {
			Type string `json:"type"`
		}
		var id string
		var value *bool
		_ = json.Unmarshal(raw["attributes"], &attrs)
		_ = json.Unmarshal(raw["id"], &id)
		other := ""
		for k, v := range raw {
			switch k {
			case "attributes", "id":
			case f.field:
				var b bool
				if json.Unmarshal(v, &b) == nil {
					value = &b
				}
			default:
				other = k
			}
		}
		fail := func(code, msg string, fields ...string) {
			out = append(out, save{ID: id, Errors: []saveErr{{StatusCode: code, Message: msg, Fields: append([]string{}, fields...)}}})
		}
		rec, ok := f.records[id]
		switch {
		case attrs.Type == "":
			fail("INVALID_TYPE", "No type was specified for the record")
		case !ok || rec.Type != attrs.Type:
			fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
		case other != "":
			fail("INVALID_FIELD", "No such column '"+other+"' on sobject of type "+rec.Type, other)
		case value == nil:
			fail("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: "+f.field, f.field)
		case rec.Converted:
			fail("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
		case rec.Refusal != "":
			fail(rec.Refusal, rec.RefusalMessage)
		default:
			rec.OptedOut = *value
			out = append(out, save{ID: id, Success: true, Errors: []saveErr{}})
		}
	}
	fakeapi.WriteJSON(w, http.StatusOK, out)
}

// Emails returns the addresses of the fake's records, sorted (for
// sandbox listings).
func (f *Fake) Emails() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, r := range f.records {
		if !seen[fakeapi.Lower(r.Email)] {
			seen[fakeapi.Lower(r.Email)] = true
			out = append(out, r.Email)
		}
	}
	sort.Strings(out)
	return out
}
