package brevo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// DefaultBaseURL is Brevo's API host.
const DefaultBaseURL = "https://api.brevo.com"

// MaxContacts is how many contacts one batch update carries. Brevo
// documents no count limit for POST /v3/contacts/batch
// (https://developers.brevo.com/reference/update-batch-contacts); the call
// is all or nothing (one unknown contact fails it whole), so a small batch
// keeps the cost of splitting one low. 100 is our choice, not Brevo's.
const MaxContacts = 100

// ResetHeader is the header of Brevo's 429 answers that says how long to
// wait: the seconds until the rate-limit window resets
// (https://developers.brevo.com/docs/limit-headers). Brevo sends no
// Retry-After.
const ResetHeader = "X-Sib-Ratelimit-Reset"

var (
	_ connectors.Destination = (*Destination)(nil)
	_ connectors.Checker     = (*Destination)(nil)
	_ connectors.Lifter      = (*Destination)(nil)
)

// Destination blocklists contacts of one Brevo account: emailBlacklisted
// for a suppression on the email channel, smsBlacklisted on the sms channel
// (the contact is then identified by its mobile number, Suppression.Phone in
// E.164). A blocklisted contact receives no campaign on that channel.
//
// Calls, with the "api-key" header:
//
//   - POST {base_url}/v3/contacts/batch {"contacts": [{"email": e,
//     "emailBlacklisted": true}, {"sms": p, "smsBlacklisted": true}]} (at
//     most MaxContacts): 204 means every contact is blocklisted (repeating
//     it changes nothing, so it is idempotent).
//   - When the batch fails because some contacts do not exist (404, code
//     "document_not_found"), it is split, never dropped: the contacts the
//     answer names (by index) are created blocklisted with POST
//     {base_url}/v3/contacts {"email": e, "emailBlacklisted": true,
//     "updateEnabled": true} ({"attributes": {"SMS": p}, "smsBlacklisted":
//     true, ...} for sms), which also updates a contact created meanwhile,
//     and the rest is sent again as a batch; when the answer names no usable
//     index the batch is halved until each unknown contact is alone. A 207
//     ({"successIds": [...], "failureIds": [...]}: some contacts not
//     updated, named by Brevo contact id, which cannot be matched with an
//     address without a read per contact) is halved the same way until
//     each failed contact is alone, and that contact is then set with a
//     call of its own: Push as for an unknown contact, Lift with PUT
//     {base_url}/v3/contacts/{email or number}?identifierType=email_id
//     (phone_id) {flag: false}. A 400 for a batch is halved too, so that
//     one refused contact gets its own permanent Result.
//
// Whole-call answers: 401/403 and other 4xx are permanent; 429 and 5xx are
// transient. Brevo's 429 carries x-sib-ratelimit-reset (seconds): the
// client reads it as a Retry-After, so a short wait is honoured in place
// and a longer one comes back as a *connectors.RetryAfterError with that
// delay. Errors and receipts never contain the API key, and addresses in
// Brevo's error bodies are masked.
type Destination struct {
	name string
	key  string
	base string
	http *retryablehttp.Client
}

// NewDestination builds a Brevo destination. cfg.APIKey is required;
// cfg.BaseURL defaults to DefaultBaseURL. Its client is
// deps.HTTPClient(cfg.Timeout), whose transport also turns Brevo's
// x-sib-ratelimit-reset into a Retry-After (see Destination). Brevo has no
// options of its own.
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("api_key: is required")
	}
	base, err := connectors.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, err
	}
	return &Destination{name: cfg.Name, key: cfg.APIKey, base: base, http: withResetHeader(deps.HTTPClient(cfg.Timeout))}, nil
}

// MaxBatch is MaxContacts.
func (d *Destination) MaxBatch() int { return MaxContacts }

// PushCalls bounds the requests of a Push or Lift of n contacts: the batch
// call, then, at worst, one creation per contact Brevo does not know
// (connectors.CallCounter).
func (d *Destination) PushCalls(n int) int { return n + 1 }

// withResetHeader returns a copy of c (c itself is shared and not changed)
// whose transport adds "Retry-After: n" to a 429 that carries
// x-sib-ratelimit-reset n and no Retry-After, so that connectors'
// retry policy and connectors.Do honour Brevo's own wait.
func withResetHeader(c *retryablehttp.Client) *retryablehttp.Client {
	hc := &http.Client{}
	if c.HTTPClient != nil {
		*hc = *c.HTTPClient
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = resetTransport{next: next}
	// Field by field: retryablehttp.Client holds values that must not be
	// copied (see connectors.Deps.HTTPClient).
	return &retryablehttp.Client{
		HTTPClient: hc, Logger: c.Logger, RetryWaitMin: c.RetryWaitMin, RetryWaitMax: c.RetryWaitMax,
		RetryMax: c.RetryMax, RequestLogHook: c.RequestLogHook, ResponseLogHook: c.ResponseLogHook,
		CheckRetry: c.CheckRetry, Backoff: c.Backoff, ErrorHandler: c.ErrorHandler, PrepareRetry: c.PrepareRetry,
	}
}

type resetTransport struct{ next http.RoundTripper }

func (t resetTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
		if s, ok := resetSeconds(resp.Header.Get(ResetHeader)); ok {
			resp.Header.Set("Retry-After", strconv.FormatInt(s, 10))
		}
	}
	return resp, err
}

// resetSeconds reads x-sib-ratelimit-reset: seconds, possibly fractional
// (rounded up), at most a week.
func resetSeconds(v string) (int64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return int64(math.Min(math.Ceil(f), 7*86400)), true
}

// target is one contact to change: an email address or a mobile number,
// and the suppressions that carry it.
type target struct {
	channel consent.Channel
	ident   string
	ids     []int64
}

func (t target) flag() string {
	if t.channel == consent.ChannelSMS {
		return "smsBlacklisted"
	}
	return "emailBlacklisted"
}

// e164 is the SMS number Push accepts: E.164 (ITU-T Recommendation E.164:
// "+", then up to 15 digits), 6 digits at least.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{5,14}$`)

// targets groups batch by contact (email by connectors.AddrKey, sms by
// number), in first-seen order, and returns a permanent Result for each
// suppression Brevo cannot take: another channel, no usable address or
// number.
func targets(batch []connectors.Suppression) ([]target, []connectors.Result) {
	var out []target
	var refused []connectors.Result
	at := map[string]int{}
	for _, s := range batch {
		var t target
		switch s.Channel {
		case consent.ChannelEmail, "":
			if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
				refused = append(refused, connectors.Result{ID: s.ID, Err: connectors.Permanent("brevo: suppression has no email address Brevo accepts")})
				continue
			}
			t = target{channel: consent.ChannelEmail, ident: strings.TrimSpace(s.Email)}
		case consent.ChannelSMS:
			p := strings.TrimSpace(s.Phone)
			if !e164.MatchString(p) {
				refused = append(refused, connectors.Result{ID: s.ID, Err: connectors.Permanent("brevo: sms suppression has no E.164 mobile number")})
				continue
			}
			t = target{channel: consent.ChannelSMS, ident: p}
		default:
			refused = append(refused, connectors.Result{ID: s.ID, Err: connectors.Permanent("brevo: channel %q is not supported (email and sms only)", s.Channel)})
			continue
		}
		k := string(t.channel) + ":" + connectors.AddrKey(t.ident)
		if i, ok := at[k]; ok {
			out[i].ids = append(out[i].ids, s.ID)
			continue
		}
		at[k] = len(out)
		t.ids = []int64{s.ID}
		out = append(out, t)
	}
	return out, refused
}

// Push blocklists batch's contacts, in batch updates of at most
// MaxContacts contacts, creating the contacts Brevo does not know. See
// Destination.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	return d.each(ctx, batch, true)
}

// Lift un-blocklists batch's contacts after a new opt-in: the same batch
// update with the flag false. A contact Brevo does not know has nothing to
// lift: a success, without creating it. Brevo never refuses a lift, so no
// Result wraps connectors.ErrLiftRefused. Errors follow Push's rules; Lift
// is safe to repeat.
func (d *Destination) Lift(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	return d.each(ctx, batch, false)
}

func (d *Destination) each(ctx context.Context, batch []connectors.Suppression, on bool) ([]connectors.Result, error) {
	ts, results := targets(batch)
	for len(ts) > 0 {
		n := min(len(ts), MaxContacts)
		res, err := d.set(ctx, ts[:n], on)
		if err != nil {
			return nil, err
		}
		results = append(results, res...)
		ts = ts[n:]
	}
	return results, nil
}

func results(t target, receipt string, err error, key string) []connectors.Result {
	receipt = connectors.Redact(receipt, key) // addresses and numbers masked
	out := make([]connectors.Result, 0, len(t.ids))
	for _, id := range t.ids {
		out = append(out, connectors.Result{ID: id, Receipt: receipt, Err: err})
	}
	return out
}

type batchItem struct {
	Email            string `json:"email,omitempty"`
	SMS              string `json:"sms,omitempty"`
	EmailBlacklisted *bool  `json:"emailBlacklisted,omitempty"`
	SMSBlacklisted   *bool  `json:"smsBlacklisted,omitempty"`
}

func item(t target, on bool) batchItem {
	if t.channel == consent.ChannelSMS {
		return batchItem{SMS: t.ident, SMSBlacklisted: &on}
	}
	return batchItem{Email: t.ident, EmailBlacklisted: &on}
}

// set sets the flag of ts (at most MaxContacts) to on with one batch
// update, splitting it as Destination says when Brevo refuses it.
func (d *Destination) set(ctx context.Context, ts []target, on bool) ([]connectors.Result, error) {
	body := struct {
		Contacts []batchItem `json:"contacts"`
	}{}
	for _, t := range ts {
		body.Contacts = append(body.Contacts, item(t, on))
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("brevo: encode request: %w", err)
	}
	resp, err := d.call(ctx, http.MethodPost, "/v3/contacts/batch", payload)
	code := ""
	if resp != nil {
		code, _, _ = ParseError(resp.Body)
	}
	switch {
	case err == nil && resp.Status == http.StatusMultiStatus:
		return d.partial(ctx, ts, on, resp)
	case err == nil:
		var out []connectors.Result
		for _, t := range ts {
			out = append(out, results(t, fmt.Sprintf("brevo: %s=%v (batch update, HTTP %d)", t.flag(), on, resp.Status), nil, d.key)...)
		}
		return out, nil
	case resp != nil && resp.Status == http.StatusNotFound && code == "document_not_found":
		if missing, ok := MissingIndexes(resp.Body, len(ts)); ok {
			var out, rest = []connectors.Result{}, []target{}
			for i, t := range ts {
				if !missing[i] {
					rest = append(rest, t)
					continue
				}
				r, err := d.one(ctx, t, on)
				if err != nil {
					return nil, err
				}
				out = append(out, r...)
			}
			if len(rest) > 0 {
				r, err := d.set(ctx, rest, on)
				if err != nil {
					return nil, err
				}
				out = append(out, r...)
			}
			return out, nil
		}
		return d.split(ctx, ts, on, resp.Status, err)
	case resp != nil && resp.Status == http.StatusBadRequest:
		return d.split(ctx, ts, on, resp.Status, err)
	}
	return nil, err
}

// partial finishes a batch update Brevo answered 207 ("few contacts
// updated", {"successIds": [...], "failureIds": [...]}). Brevo names the
// contacts by its own contact ids, which ts (identified by email or
// number) cannot be matched with without a read per contact, so: a lone
// contact that failed is set with its own call (single); when the answer
// says every contact failed, each is set alone; otherwise ts is halved and
// each half sent again as a batch (repeating an update is harmless), so
// that only the failed contacts end up with a call of their own.
func (d *Destination) partial(ctx context.Context, ts []target, on bool, resp *connectors.Response) ([]connectors.Result, error) {
	m, ok := ParseMultiStatus(resp.Body)
	if ok && len(m.FailureIDs) == 0 && len(m.SuccessIDs) >= len(ts) {
		// Every contact updated after all.
		var out []connectors.Result
		for _, t := range ts {
			out = append(out, results(t, fmt.Sprintf("brevo: %s=%v (batch update, HTTP %d)", t.flag(), on, resp.Status), nil, d.key)...)
		}
		return out, nil
	}
	if len(ts) > 1 && (!ok || len(m.FailureIDs) < len(ts)) {
		a, err := d.set(ctx, ts[:len(ts)/2], on)
		if err != nil {
			return nil, err
		}
		b, err := d.set(ctx, ts[len(ts)/2:], on)
		if err != nil {
			return nil, err
		}
		return append(a, b...), nil
	}
	var out []connectors.Result
	for _, t := range ts {
		r, err := d.single(ctx, t, on)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}

// single sets the flag of one contact with a call of its own, after a
// batch update that did not apply to it: Push creates or updates it (one);
// Lift updates it with PUT {base_url}/v3/contacts/{email or number}
// ?identifierType=email_id|phone_id {flag: false}
// (https://developers.brevo.com/reference/update-contact): 204 lifted, 404
// no such contact (nothing to lift), 400 that contact's permanent Result.
func (d *Destination) single(ctx context.Context, t target, on bool) ([]connectors.Result, error) {
	if on {
		return d.one(ctx, t, on)
	}
	kind := "email_id"
	if t.channel == consent.ChannelSMS {
		kind = "phone_id"
	}
	payload, err := json.Marshal(map[string]bool{t.flag(): false})
	if err != nil {
		return nil, fmt.Errorf("brevo: encode request: %w", err)
	}
	resp, err := d.call(ctx, http.MethodPut, "/v3/contacts/"+url.PathEscape(t.ident)+"?identifierType="+kind, payload)
	switch {
	case err == nil:
		return results(t, fmt.Sprintf("brevo: %s=false (contact updated, HTTP %d)", t.flag(), resp.Status), nil, d.key), nil
	case resp != nil && resp.Status == http.StatusNotFound:
		return results(t, "brevo: no such contact, nothing to lift", nil, d.key), nil
	case resp != nil && resp.Status == http.StatusBadRequest:
		return results(t, err.Error(), err, d.key), nil
	}
	return nil, err
}

// MultiStatus is Brevo's 207 answer to a batch update: the contact ids
// updated and those not updated
// (https://developers.brevo.com/reference/update-batch-contacts).
type MultiStatus struct {
	SuccessIDs []int64 `json:"successIds"`
	FailureIDs []int64 `json:"failureIds"`
}

// ParseMultiStatus reads a 207 body; ok is false for a body that is not a
// JSON object with at least one of the two lists. It never panics.
func ParseMultiStatus(body []byte) (MultiStatus, bool) {
	var raw struct {
		SuccessIDs *[]int64 `json:"successIds"`
		FailureIDs *[]int64 `json:"failureIds"`
	}
	if json.Unmarshal(body, &raw) != nil || (raw.SuccessIDs == nil && raw.FailureIDs == nil) {
		return MultiStatus{}, false
	}
	var m MultiStatus
	if raw.SuccessIDs != nil {
		m.SuccessIDs = *raw.SuccessIDs
	}
	if raw.FailureIDs != nil {
		m.FailureIDs = *raw.FailureIDs
	}
	return m, true
}

// split halves ts after a batch update refused with status (err); a lone contact goes
// alone: created (404) or given its permanent Result (400).
func (d *Destination) split(ctx context.Context, ts []target, on bool, status int, err error) ([]connectors.Result, error) {
	if len(ts) > 1 {
		a, e := d.set(ctx, ts[:len(ts)/2], on)
		if e != nil {
			return nil, e
		}
		b, e := d.set(ctx, ts[len(ts)/2:], on)
		if e != nil {
			return nil, e
		}
		return append(a, b...), nil
	}
	if status == http.StatusBadRequest {
		return results(ts[0], err.Error(), err, d.key), nil
	}
	return d.one(ctx, ts[0], on)
}

// one sets the flag of a contact Brevo does not know (a 404
// document_not_found named it): Push creates it blocklisted (POST
// /v3/contacts with updateEnabled, so a contact created meanwhile is
// updated instead); Lift has nothing to lift and makes no call.
// A 400 is that contact's permanent Result.
func (d *Destination) one(ctx context.Context, t target, on bool) ([]connectors.Result, error) {
	if !on {
		return results(t, "brevo: no such contact, nothing to lift", nil, d.key), nil
	}
	req := map[string]any{t.flag(): true, "updateEnabled": true}
	if t.channel == consent.ChannelSMS {
		req["attributes"] = map[string]string{"SMS": t.ident}
	} else {
		req["email"] = t.ident
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("brevo: encode request: %w", err)
	}
	resp, err := d.call(ctx, http.MethodPost, "/v3/contacts", payload)
	switch {
	case err == nil:
		how := "contact updated"
		if resp.Status == http.StatusCreated {
			how = "contact created"
		}
		return results(t, fmt.Sprintf("brevo: %s=true (%s, HTTP %d)", t.flag(), how, resp.Status), nil, d.key), nil
	case resp != nil && resp.Status == http.StatusBadRequest:
		return results(t, err.Error(), err, d.key), nil
	}
	return nil, err
}

// Check reads back, for each contact of batch, whether its flag is set:
//
//	GET {base_url}/v3/contacts/{email}?identifierType=email_id
//	GET {base_url}/v3/contacts/{number}?identifierType=phone_id  (sms)
//
// (https://developers.brevo.com/reference/get-contact-info). 200 with
// emailBlacklisted (smsBlacklisted) true means Suppressed, false not
// suppressed (drifted, if it was pushed); 404 (no such contact) is not
// suppressed either (Push creates unknown contacts blocklisted, so a
// contact missing after a push was deleted at Brevo: drift, pushed again);
// 400 is Unknown, like an answer that is not a contact object. One call
// per contact, at most connectors.InFlight at once; the first whole-call
// failure ends Check and is returned as Push's are, with no Status. A
// suppression Push would refuse is Unknown without a call. Check changes
// nothing at Brevo.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	ts, refused := targets(batch)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: connectors.Redact(r.Err.Error(), d.key)})
	}
	read, err := connectors.Each(ctx, len(ts), func(ctx context.Context, i int) (connectors.Status, error) {
		t := ts[i]
		kind := "email_id"
		if t.channel == consent.ChannelSMS {
			kind = "phone_id"
		}
		resp, err := d.call(ctx, http.MethodGet, "/v3/contacts/"+url.PathEscape(t.ident)+"?identifierType="+kind, nil)
		st := connectors.Status{}
		switch {
		case err == nil:
			email, sms, ok := ParseContact(resp.Body)
			flag := email
			if t.channel == consent.ChannelSMS {
				flag = sms
			}
			st.Suppressed, st.Unknown = flag && ok, !ok
			st.Receipt = fmt.Sprintf("brevo: %s=%v (HTTP %d)", t.flag(), flag, resp.Status)
			if !ok {
				st.Receipt = "brevo: unreadable contact: " + resp.Snippet(d.key)
			}
		case resp != nil && resp.Status == http.StatusNotFound:
			// Push creates unknown contacts blocklisted: a contact gone
			// after a push was deleted at Brevo, and with it the
			// blocklisting (drift: pushed again, which recreates it).
			st.Receipt = "brevo: no such contact (HTTP 404): not blocklisted"
		case resp != nil && resp.Status == http.StatusBadRequest:
			st.Unknown, st.Receipt = true, err.Error()
		default:
			return st, err
		}
		st.Receipt = connectors.Redact(st.Receipt, d.key)
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	for i, t := range ts {
		for _, id := range t.ids {
			st := read[i]
			st.ID = id
			out = append(out, st)
		}
	}
	return out, nil
}

// call makes one request. Its error names the method and the path (the
// address or number masked, the query left out), never the key.
func (d *Destination) call(ctx context.Context, method, pathQuery string, body []byte) (*connectors.Response, error) {
	var b any
	if body != nil {
		b = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, d.base+pathQuery, b)
	if err != nil {
		return nil, connectors.Permanent("brevo: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "consentsync")
	req.Header.Set("api-key", d.key)
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		return resp, fmt.Errorf("brevo: %w", err) // Do masks the number in the path
	}
	return resp, nil
}

// ParseError reads Brevo's error body {"code": c, "message": m}; ok is
// false for another body. It never panics.
func ParseError(body []byte) (code, message string, ok bool) {
	var e struct {
		Code    *string `json:"code"`
		Message string  `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code == nil {
		return "", "", false
	}
	return *e.Code, e.Message, true
}

var indexes = regexp.MustCompile(`(?i)indexes?\s*:?\s*([0-9][0-9,\s]*)`)

// MissingIndexes reads which contacts of an n-contact batch update a 404
// document_not_found names ("No contact found for indexes 3,4", 0-based).
// ok is false unless it names at least one index, each below n: the caller
// then splits the batch instead. It never panics.
func MissingIndexes(body []byte, n int) (missing map[int]bool, ok bool) {
	_, msg, has := ParseError(body)
	m := indexes.FindStringSubmatch(msg)
	if !has || m == nil {
		return nil, false
	}
	missing = map[int]bool{}
	for _, part := range strings.Split(m[1], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i, err := strconv.Atoi(part)
		if err != nil || i < 0 || i >= n {
			return nil, false
		}
		missing[i] = true
	}
	return missing, len(missing) > 0
}

// ParseContact reads a 200 answer of GET /v3/contacts/{identifier}: the
// emailBlacklisted and smsBlacklisted flags (false when absent); ok is
// false for a body that is not a JSON object or whose flags are not
// booleans. It never panics.
func ParseContact(body []byte) (emailBlacklisted, smsBlacklisted, ok bool) {
	var c map[string]json.RawMessage
	if json.Unmarshal(body, &c) != nil || c == nil {
		return false, false, false
	}
	read := func(k string) (bool, bool) {
		raw, has := c[k]
		if !has {
			return false, true
		}
		var v bool
		return v, json.Unmarshal(raw, &v) == nil
	}
	e, ok1 := read("emailBlacklisted")
	s, ok2 := read("smsBlacklisted")
	return e, s, ok1 && ok2
}
