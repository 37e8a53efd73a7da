package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind this package serves.
const Kind = "salesforce"

// Defaults of DestinationOptions.
const (
	DefaultField      = "HasOptedOutOfEmail"
	DefaultAPIVersion = "v62.0"
)

// DefaultObjects are the sObjects searched by email when objects is not
// set.
var DefaultObjects = []string{"Contact", "Lead"}

// Paths, relative to instance_url.
//
// References:
//   - client credentials flow: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
//   - query: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
//   - sObject Collections update: https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-update.html
const (
	TokenPath = "/services/oauth2/token"
	// QueryPath and CollectionsPath follow "/services/data/{api_version}".
	QueryPath       = "/query"
	CollectionsPath = "/composite/sobjects"
)

// MaxRecords is how many records one sObject Collections call updates
// (Salesforce's limit: "the list can contain up to 200 objects"; a larger
// one is refused with EXCEEDED_ID_LIMIT).
const MaxRecords = 200

// MaxAddresses is how many distinct addresses one Push, Check or Lift
// handles (MaxBatch). Each address may match several records; their
// updates are sent in calls of at most MaxRecords.
const MaxAddresses = 200

// maxQueryURL bounds the length of one query's URL (path and encoded
// SOQL): Salesforce refuses request URIs over 16,384 bytes (HTTP 414), so
// the IN list is split to stay well below.
const maxQueryURL = 12_000

// LimitWait is the delay asked for after Salesforce's 403
// REQUEST_LIMIT_EXCEEDED: the org's API request allocation is counted over
// a rolling 24 hours and the answer names no reset time
// (https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm).
const LimitWait = time.Hour

// DestinationOptions are a Salesforce destination's own keys.
type DestinationOptions struct {
	// InstanceURL is the org's My Domain URL
	// ("https://acme.my.salesforce.com"; required, https; http only to a
	// loopback address, for tests and the demo sandbox). The token and
	// every API call go there.
	InstanceURL string `yaml:"instance_url"`
	// ClientID and ClientSecret are the connected (or external client)
	// app's consumer key and secret, with the client credentials flow
	// enabled and a run-as user allowed to edit Objects (required unless
	// the configuration is loaded read-only).
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// Objects are the sObjects with an Email field whose records are
	// opted out (default DefaultObjects; at most 10, Salesforce's limit
	// of object types per collections call). For Lead, converted leads
	// are skipped (Salesforce refuses to update them).
	Objects []string `yaml:"objects"`
	// Field is the checkbox set true (default DefaultField).
	Field string `yaml:"field"`
	// APIVersion is the REST API version ("v62.0", the default).
	APIVersion string `yaml:"api_version"`
}

// Defaults fills objects, field and api_version.
func (o *DestinationOptions) Defaults() {
	if len(o.Objects) == 0 {
		o.Objects = slices.Clone(DefaultObjects)
	}
	if o.Field == "" {
		o.Field = DefaultField
	}
	if o.APIVersion == "" {
		o.APIVersion = DefaultAPIVersion
	}
}

var (
	apiName    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)
	apiVersion = regexp.MustCompile(`^v[1-9][0-9]\.0$`)
)

// Validate checks the keys (after Defaults).
func (o *DestinationOptions) Validate(readOnly bool, bad func(key, format string, args ...any)) {
	switch {
	case o.InstanceURL == "":
		bad("instance_url", "is required (the org's My Domain URL, https://NAME.my.salesforce.com)")
	case !secureURL(o.InstanceURL):
		bad("instance_url", "must be an https:// URL with a host and no path, query or credentials")
	}
	if o.ClientID == "" && !readOnly {
		bad("client_id", "is required (the connected app's consumer key)")
	}
	if o.ClientSecret == "" && !readOnly {
		bad("client_secret", "is required (the connected app's consumer secret)")
	}
	if len(o.Objects) > 10 {
		bad("objects", "at most 10 objects")
	}
	seen := map[string]bool{}
	for i, ob := range o.Objects {
		if !apiName.MatchString(ob) || strings.Contains(ob, "__") && !strings.HasSuffix(ob, "__c") {
			bad(fmt.Sprintf("objects[%d]", i), "%q is not an sObject API name", ob)
		}
		if seen[strings.ToLower(ob)] {
			bad(fmt.Sprintf("objects[%d]", i), "%q is repeated", ob)
		}
		seen[strings.ToLower(ob)] = true
	}
	if !apiName.MatchString(o.Field) {
		bad("field", "%q is not a field API name", o.Field)
	}
	if !apiVersion.MatchString(o.APIVersion) {
		bad("api_version", "must look like %q", DefaultAPIVersion)
	}
}

// secureURL: https with a host and no path beyond "/", or http to a
// loopback host (tests and the demo sandbox, which may mount the fake
// under a path); no query, fragment or user info.
func secureURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return strings.Trim(u.Path, "/") == ""
	case "http":
		h := u.Hostname()
		ip := net.ParseIP(h)
		return h == "localhost" || ip != nil && ip.IsLoopback()
	}
	return false
}

var (
	_ connectors.Destination = (*Destination)(nil)
	_ connectors.Checker     = (*Destination)(nil)
	_ connectors.Lifter      = (*Destination)(nil)
)

// Destination opts records out of email in one Salesforce org: it finds
// the records of Objects whose Email is a suppressed address (SOQL
// through GET {instance}/services/data/{v}/query) and sets Field true on
// them (PATCH {instance}/services/data/{v}/composite/sobjects, allOrNone
// false, at most MaxRecords per call).
//
// Authentication: the OAuth 2.0 client credentials flow (POST
// {instance}/services/oauth2/token, form grant_type=client_credentials,
// client_id, client_secret); the access token is cached, used as
// "Authorization: Bearer TOKEN", and fetched again when expires_in (when
// Salesforce sends one) has passed or, once per call, when Salesforce
// answers 401 (INVALID_SESSION_ID). A token endpoint refusal (400
// invalid_client, invalid_grant...) is permanent. The token answer's own
// instance_url is not followed: every call stays on the configured
// instance_url.
//
// Per address, the Result is nil when every record was updated or already
// had Field true (records already opted out are not written again, so a
// repeat writes nothing); it wraps connectors.ErrPermanent when a record
// was refused (errors[].statusCode, e.g. FIELD_CUSTOM_VALIDATION_EXCEPTION)
// and is transient for UNABLE_TO_LOCK_ROW and similar. An address with no
// record gets a nil Err and the receipt "no Contact or Lead with this
// email (nothing to suppress)": Salesforce keeps no address-level
// suppression list, and creating a record for the sake of opting it out
// would put personal data into the CRM that it did not hold; Check reports
// such an address Unknown, so it is never counted as verified. A record
// created later with that address (a new lead, an import) is NOT opted
// out by that push: it can receive email until a drift check (the
// worker's periodic one, worker.drift_every, or consentsync drift
// -repair) reads the address back as not suppressed and pushes the
// suppression again.
//
// Whole-call answers: 403 REQUEST_LIMIT_EXCEEDED (the org's daily API
// allocation) is a *connectors.RetryAfterError of LimitWait; 429, 5xx and
// transport errors are transient (Retry-After honoured); other 4xx are
// permanent. Errors and receipts never contain the client secret or the
// token, and addresses Salesforce echoes are masked.
type Destination struct {
	name   string
	inst   string
	data   string // inst + "/services/data/" + version
	opts   DestinationOptions
	http   *retryablehttp.Client
	clock  func() time.Time
	mu     sync.Mutex
	token  string
	expiry time.Time // zero: until refused
}

// NewDestination builds a Salesforce destination from its options (see
// DestinationOptions; errors name the key). cfg.APIKey is not used. Its
// client is deps.HTTPClient(cfg.Timeout).
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	o, err := connectors.DestinationOptions[DestinationOptions](cfg.Options)
	if err != nil {
		return nil, err
	}
	inst := strings.TrimRight(o.InstanceURL, "/")
	return &Destination{name: cfg.Name, inst: inst, data: inst + "/services/data/" + o.APIVersion, opts: o, http: deps.HTTPClient(cfg.Timeout), clock: time.Now}, nil
}

// MaxBatch is MaxAddresses.
func (d *Destination) MaxBatch() int { return MaxAddresses }

// redact removes the client secret and the current token from s and masks
// addresses (connectors.Redact).
func (d *Destination) redact(s string) string {
	d.mu.Lock()
	tok := d.token
	d.mu.Unlock()
	if tok != "" {
		s = strings.ReplaceAll(s, tok, "[redacted]")
	}
	return connectors.Redact(s, d.opts.ClientSecret)
}

// tokenAnswer is the token endpoint's answer: {"access_token",
// "instance_url", "id", "token_type": "Bearer", "issued_at" (ms),
// "signature", "scope"} and, for some org policies, "expires_in" (s).
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// accessToken returns the cached token, or fetches one when there is none,
// it has expired, or it equals stale (refused by Salesforce).
func (d *Destination) accessToken(ctx context.Context, stale string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.token != "" && d.token != stale && (d.expiry.IsZero() || d.clock().Before(d.expiry)) {
		return d.token, nil
	}
	d.token = ""
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {d.opts.ClientID}, "client_secret": {d.opts.ClientSecret}}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, d.inst+TokenPath, []byte(form.Encode()))
	if err != nil {
		return "", connectors.Permanent("salesforce: build token request: %s", connectors.Redact(err.Error(), d.opts.ClientSecret))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	resp, err := connectors.Do(d.http, req, d.opts.ClientSecret)
	if err != nil {
		return "", fmt.Errorf("salesforce: token: %w", err)
	}
	var a tokenAnswer
	if json.Unmarshal(resp.Body, &a) != nil || a.AccessToken == "" {
		return "", fmt.Errorf("salesforce: token: HTTP %d without access_token", resp.Status)
	}
	d.token = a.AccessToken
	d.expiry = time.Time{}
	if a.ExpiresIn > 0 {
		d.expiry = d.clock().Add(time.Duration(a.ExpiresIn)*time.Second - 30*time.Second)
	}
	return d.token, nil
}

// api makes one authenticated REST call (GET of a query path, PATCH of
// collections), fetching a new token once on a 401.
func (d *Destination) api(ctx context.Context, method, rawURL string, body []byte) (*connectors.Response, error) {
	stale := ""
	for attempt := 0; ; attempt++ {
		tok, err := d.accessToken(ctx, stale)
		if err != nil {
			return nil, err
		}
		req, err := retryablehttp.NewRequestWithContext(ctx, method, rawURL, body)
		if err != nil {
			return nil, connectors.Permanent("salesforce: build request: %s", d.redact(err.Error()))
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "consentsync")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := connectors.Do(d.http, req, tok)
		switch {
		case err == nil:
			return resp, nil
		case resp != nil && resp.Status == http.StatusUnauthorized && attempt == 0:
			stale = tok // expired or revoked session: one new token
			continue
		case resp != nil && resp.Status == http.StatusForbidden && slices.Contains(ErrorCodes(resp.Body), "REQUEST_LIMIT_EXCEEDED"):
			// Not permanent: the org's allocation frees up within 24 h.
			return nil, &connectors.RetryAfterError{Delay: LimitWait, Err: fmt.Errorf("salesforce: API request limit exceeded: %s", d.redact(err.Error()))}
		}
		return nil, fmt.Errorf("salesforce: %w", err)
	}
}

// ErrorCodes returns the errorCode values of Salesforce's REST error body
// [{"message": "...", "errorCode": "..."}] (nil for another body). It never
// panics.
func ErrorCodes(body []byte) []string {
	var errs []struct {
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(body, &errs) != nil {
		return nil
	}
	var out []string
	for _, e := range errs {
		if e.ErrorCode != "" {
			out = append(out, e.ErrorCode)
		}
	}
	return out
}

// QuoteSOQL returns s as a SOQL string literal: in single quotes, with
// backslash, quotes and the control characters SOQL names escaped
// (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm).
func QuoteSOQL(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Query returns the SOQL that finds object's records with one of emails:
// SELECT Id, Email, {field} FROM {object} WHERE Email IN ('a', 'b')
// (and, for Lead, AND IsConverted = false).
func Query(object, field string, emails []string) string {
	q := make([]string, len(emails))
	for i, e := range emails {
		q[i] = QuoteSOQL(e)
	}
	s := "SELECT Id, Email, " + field + " FROM " + object + " WHERE Email IN (" + strings.Join(q, ", ") + ")"
	if strings.EqualFold(object, "Lead") {
		s += " AND IsConverted = false"
	}
	return s
}

// Record is one record a query found.
type Record struct {
	Type  string
	ID    string
	Email string
	// Set is the field's value (false when null).
	Set bool
}

// QueryAnswer is a query's answer: {"totalSize", "done", "records":
// [{"attributes": {"type", "url"}, "Id", "Email", FIELD}], and
// "nextRecordsUrl" when done is false}.
type QueryAnswer struct {
	TotalSize      int                          `json:"totalSize"`
	Done           bool                         `json:"done"`
	NextRecordsURL string                       `json:"nextRecordsUrl"`
	Records        []map[string]json.RawMessage `json:"records"`
}

// ParseQuery decodes a query answer and returns its records (type from
// attributes, else object), reading field as a checkbox. It never panics.
func ParseQuery(body []byte, object, field string) (recs []Record, next string, err error) {
	var a QueryAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, "", err
	}
	for _, r := range a.Records {
		var rec Record
		var attrs struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(r["attributes"], &attrs)
		rec.Type = attrs.Type
		if rec.Type == "" {
			rec.Type = object
		}
		_ = json.Unmarshal(r["Id"], &rec.ID)
		_ = json.Unmarshal(r["Email"], &rec.Email)
		_ = json.Unmarshal(r[field], &rec.Set)
		if rec.ID == "" {
			return nil, "", fmt.Errorf("record without Id")
		}
		recs = append(recs, rec)
	}
	if !a.Done {
		next = a.NextRecordsURL
	}
	return recs, next, nil
}

// find returns, by AddrKey, the records of every object whose Email is one
// of addrs.
func (d *Destination) find(ctx context.Context, addrs []string) (map[string][]Record, error) {
	out := map[string][]Record{}
	for _, ob := range d.opts.Objects {
		for _, chunk := range d.queryChunks(ob, addrs) {
			u := d.data + QueryPath + "?q=" + url.QueryEscape(Query(ob, d.opts.Field, chunk))
			for pages := 0; u != ""; pages++ {
				if pages > 100 {
					return nil, fmt.Errorf("salesforce: query of %s: more than 100 pages", ob)
				}
				resp, err := d.api(ctx, http.MethodGet, u, nil)
				if err != nil {
					return nil, err
				}
				recs, next, err := ParseQuery(resp.Body, ob, d.opts.Field)
				if err != nil {
					return nil, fmt.Errorf("salesforce: query of %s: HTTP %d: unreadable answer: %s", ob, resp.Status, d.redact(string(resp.Body)))
				}
				for _, r := range recs {
					k := connectors.AddrKey(r.Email)
					out[k] = append(out[k], r)
				}
				u = ""
				if next != "" {
					if !strings.HasPrefix(next, "/services/data/") {
						return nil, fmt.Errorf("salesforce: query of %s: unexpected nextRecordsUrl", ob)
					}
					u = d.inst + next
				}
			}
		}
	}
	return out, nil
}

// queryChunks splits addrs so that each query URL stays under maxQueryURL.
func (d *Destination) queryChunks(object string, addrs []string) [][]string {
	base := len(d.data+QueryPath+"?q=") + len(url.QueryEscape(Query(object, d.opts.Field, nil)))
	var out [][]string
	var cur []string
	n := base
	for _, a := range addrs {
		l := len(url.QueryEscape(QuoteSOQL(a) + ", "))
		if len(cur) > 0 && n+l > maxQueryURL {
			out = append(out, cur)
			cur, n = nil, base
		}
		cur = append(cur, a)
		n += l
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// SaveResult is one entry of a collections answer: {"id", "success",
// "errors": [{"statusCode", "message", "fields"}]}.
type SaveResult struct {
	ID      string `json:"id"`
	Success bool   `json:"success"`
	Errors  []struct {
		StatusCode string   `json:"statusCode"`
		Message    string   `json:"message"`
		Fields     []string `json:"fields"`
	} `json:"errors"`
}

// ParseSaveResults decodes a collections answer (a JSON array, in the
// order of the records sent). It never panics.
func ParseSaveResults(body []byte) ([]SaveResult, error) {
	var out []SaveResult
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// transientCodes are per-record statusCodes worth retrying.
var transientCodes = []string{"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"}

type recordOutcome struct {
	err       string
	transient bool
}

// update sets the field to value on recs, in calls of at most MaxRecords
// (grouped by type), and returns the outcome of each record by Id.
func (d *Destination) update(ctx context.Context, recs []Record, value bool) (map[string]recordOutcome, error) {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Type < recs[j].Type })
	out := map[string]recordOutcome{}
	for len(recs) > 0 {
		n := min(len(recs), MaxRecords)
		chunk := recs[:n]
		recs = recs[n:]
		body := map[string]any{"allOrNone": false}
		list := make([]map[string]any, len(chunk))
		for i, r := range chunk {
			list[i] = map[string]any{"attributes": map[string]string{"type": r.Type}, "id": r.ID, d.opts.Field: value}
		}
		body["records"] = list
		payload, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("salesforce: encode request: %w", err)
		}
		resp, err := d.api(ctx, http.MethodPatch, d.data+CollectionsPath, payload)
		if err != nil {
			return nil, err
		}
		res, err := ParseSaveResults(resp.Body)
		if err != nil || len(res) != len(chunk) {
			return nil, fmt.Errorf("salesforce: PATCH %s: HTTP %d: unreadable answer: %s", CollectionsPath, resp.Status, d.redact(string(resp.Body)))
		}
		for i, r := range res {
			id := chunk[i].ID // in request order
			if r.Success {
				out[id] = recordOutcome{}
				continue
			}
			o := recordOutcome{err: "refused"}
			if len(r.Errors) > 0 {
				o.err = r.Errors[0].StatusCode + ": " + r.Errors[0].Message
				o.transient = slices.Contains(transientCodes, r.Errors[0].StatusCode)
			}
			out[id] = o
		}
	}
	return out, nil
}

func (d *Destination) usable(batch []connectors.Suppression) ([]connectors.Suppression, []connectors.Result) {
	return connectors.EmailOnly("salesforce", batch, func(s connectors.Suppression) error {
		if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
			return connectors.Permanent("salesforce: not an email address")
		}
		return nil
	})
}

func (d *Destination) objectsText() string {
	if len(d.opts.Objects) == 2 {
		return d.opts.Objects[0] + " or " + d.opts.Objects[1]
	}
	return strings.Join(d.opts.Objects, ", ")
}

// Push sets Field true on the records of batch's addresses (see
// Destination), MaxAddresses addresses at a time.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, out := d.usable(batch)
	res, err := connectors.PushByAddress(ctx, todo, MaxAddresses, func(ctx context.Context, b []connectors.Suppression) ([]connectors.Result, error) {
		return d.set(ctx, b, true)
	})
	if err != nil {
		return nil, err
	}
	return append(out, res...), nil
}

// Lift sets Field false on the records of batch's addresses (at most
// MaxAddresses), after a new opt-in. Salesforce never refuses it as such:
// no Result wraps connectors.ErrLiftRefused; a record refused (a
// validation rule) is a permanent Result. An address without a record has
// nothing to lift. Safe to repeat.
func (d *Destination) Lift(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	if len(batch) > MaxAddresses {
		return nil, connectors.Permanent("salesforce: lift of %d suppressions, at most %d per call", len(batch), MaxAddresses)
	}
	todo, out := d.usable(batch)
	if len(todo) == 0 {
		return out, nil
	}
	res, err := d.set(ctx, todo, false)
	if err != nil {
		return nil, err
	}
	return append(out, res...), nil
}

func (d *Destination) set(ctx context.Context, batch []connectors.Suppression, value bool) ([]connectors.Result, error) {
	addrs, ids := connectors.GroupByAddress(batch)
	found, err := d.find(ctx, addrs)
	if err != nil {
		return nil, err
	}
	var writes []Record
	for _, a := range addrs {
		for _, r := range found[connectors.AddrKey(a)] {
			if r.Set != value {
				writes = append(writes, r)
			}
		}
	}
	outcome := map[string]recordOutcome{}
	if len(writes) > 0 {
		if outcome, err = d.update(ctx, writes, value); err != nil {
			return nil, err
		}
	}
	out := make([]connectors.Result, 0, len(batch))
	for _, a := range addrs {
		recs := found[connectors.AddrKey(a)]
		var r connectors.Result
		if len(recs) == 0 {
			r.Receipt = "salesforce: no " + d.objectsText() + " with this email (nothing to suppress)"
			if !value {
				r.Receipt = "salesforce: no " + d.objectsText() + " with this email (nothing to lift)"
			}
		} else {
			updated, already := 0, 0
			var failed []string
			transient := true
			for _, rec := range recs {
				if rec.Set == value {
					already++
					continue
				}
				o, ok := outcome[rec.ID]
				switch {
				case !ok:
					failed = append(failed, rec.Type+" "+rec.ID+": missing from the answer")
				case o.err != "":
					failed = append(failed, rec.Type+" "+rec.ID+": "+o.err)
					transient = transient && o.transient
				default:
					updated++
				}
			}
			msg := fmt.Sprintf("salesforce: %s=%v: %d records updated, %d already set", d.opts.Field, value, updated, already)
			if len(failed) > 0 {
				msg += "; " + strings.Join(failed, "; ")
				if transient {
					r.Err = errors.New(d.redact(msg))
				} else {
					r.Err = connectors.Permanent("%s", d.redact(msg))
				}
			}
			r.Receipt = msg
		}
		r.Receipt = d.redact(r.Receipt)
		for _, id := range ids[connectors.AddrKey(a)] {
			r.ID = id
			out = append(out, r)
		}
	}
	return out, nil
}

// Check reads back, for at most MaxAddresses suppressions, whether each
// address's records have Field true: every record set ⇒ Suppressed; a
// record not set ⇒ not suppressed (drift); no record ⇒ Unknown. It makes
// only queries (and a token request); whole-call errors follow Push's.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	if len(batch) > MaxAddresses {
		return nil, connectors.Permanent("salesforce: check of %d suppressions, at most %d per call", len(batch), MaxAddresses)
	}
	todo, refused := d.usable(batch)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: d.redact(r.Err.Error())})
	}
	if len(todo) == 0 {
		return out, nil
	}
	addrs, ids := connectors.GroupByAddress(todo)
	found, err := d.find(ctx, addrs)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		recs := found[connectors.AddrKey(a)]
		st := connectors.Status{}
		if len(recs) == 0 {
			st.Unknown = true
			st.Receipt = "salesforce: no " + d.objectsText() + " with this email"
		} else {
			set := 0
			for _, r := range recs {
				if r.Set {
					set++
				}
			}
			st.Suppressed = set == len(recs)
			st.Receipt = fmt.Sprintf("salesforce: %s true on %d of %d records", d.opts.Field, set, len(recs))
		}
		st.Receipt = d.redact(st.Receipt)
		for _, id := range ids[connectors.AddrKey(a)] {
			st.ID = id
			out = append(out, st)
		}
	}
	return out, nil
}
