package postmark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// DefaultBaseURL is Postmark's API host.
const DefaultBaseURL = "https://api.postmarkapp.com"

// DefaultMessageStream is the stream whose suppressions are managed when
// the message_stream option is not set: marketing mail goes through a
// Broadcast stream, and suppressions are per stream.
const DefaultMessageStream = "broadcast"

// SettleTime is how long after a push a read-back that does not find the
// address suppressed is Unknown ("not yet applied", asked again later)
// rather than a mismatch: Postmark processes suppression requests
// asynchronously and "can take a minute until they become active"
// (https://github.com/ActiveCampaign/postmark-php/wiki/Managing-Suppressions,
// https://postmarkapp.com/developer/api/suppressions-api); twice that
// here, for margin.
const SettleTime = 2 * time.Minute

// MaxSuppressions is how many addresses one create or delete call carries:
// Postmark takes "up to 50" per request
// (https://postmarkapp.com/developer/api/suppressions-api).
const MaxSuppressions = 50

// Postmark API error codes Destination branches on
// (https://postmarkapp.com/developer/api/overview#error-codes): never on
// the wording of Message.
const (
	codeBadToken   = 10
	codeMaint      = 100
	codeInvalidMS  = 1222 // Invalid Message Stream ID
	codeMSNotFound = 1226 // Message Stream not found
	codeMSFormat   = 1227 // Invalid Message Stream ID format
	codeMSOnServer = 1235 // Message Stream not found on this server
)

// Per-address statuses of the create and delete answers.
const (
	statusSuppressed = "Suppressed"
	statusDeleted    = "Deleted"
	statusFailed     = "Failed"
)

// DestinationOptions are a Postmark destination's own keys.
type DestinationOptions struct {
	// MessageStream is the ID of the stream whose suppressions are managed
	// (default "broadcast"): Postmark keeps one suppression list per stream.
	MessageStream string `yaml:"message_stream"`
}

// Defaults sets MessageStream to DefaultMessageStream when empty.
func (o *DestinationOptions) Defaults() {
	if o.MessageStream == "" {
		o.MessageStream = DefaultMessageStream
	}
}

// streamID is the shape Postmark allows for a stream ID: a letter first,
// then letters, digits, "-" and "_" (error code 1227 otherwise); at most
// 100 characters here.
var streamID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,99}$`)

// Validate checks message_stream's shape.
func (o *DestinationOptions) Validate(_ bool, bad func(key, format string, args ...any)) {
	if !streamID.MatchString(o.MessageStream) {
		bad("message_stream", "%q is not a Postmark message stream ID (a letter, then letters, digits, - or _)", o.MessageStream)
	}
}

var (
	_ connectors.Destination = (*Destination)(nil)
	_ connectors.Checker     = (*Destination)(nil)
	_ connectors.Lifter      = (*Destination)(nil)
)

// Destination suppresses addresses on one message stream of one Postmark
// server.
//
// Call: POST {base_url}/message-streams/{stream}/suppressions with
// {"Suppressions": [{"EmailAddress": e}, ...]} (at most MaxSuppressions)
// and "X-Postmark-Server-Token: TOKEN". The 200 answer carries one
// {"EmailAddress", "Status", "Message"} per address: "Suppressed" is a
// success (also for an address already suppressed, so the call is
// idempotent); "Failed" is that address's permanent Result, with Postmark's
// Message (addresses masked). An address the answer does not mention gets
// a transient Result (retried later). Postmark applies suppressions
// asynchronously, within about a minute.
//
// Whole-call answers: 401 (ErrorCode 10) and 422 are permanent, branched on
// ErrorCode: 1222/1226/1227/1235 name a stream the server does not have,
// 100 (maintenance) is transient; 429 and 5xx are transient, a
// *connectors.RetryAfterError when Postmark names a wait (connectors.Do).
// Addresses consent.NormalizeEmail refuses, and channels other than email,
// get a permanent Result without a call. Errors and receipts never contain
// the server token.
type Destination struct {
	name   string
	key    string
	stream string
	base   string
	http   *retryablehttp.Client
	now    func() time.Time
}

// NewDestination builds a Postmark destination. cfg.APIKey (the server
// token) is required; cfg.BaseURL defaults to DefaultBaseURL; the stream is
// DestinationOptions.MessageStream (connectors.DestinationOptions: its
// default and Validate). Its client is deps.HTTPClient(cfg.Timeout); its
// clock deps.Clock.
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("api_key: is required (the Postmark server token)")
	}
	base, err := connectors.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, err
	}
	o, err := connectors.DestinationOptions[DestinationOptions](cfg.Options)
	if err != nil {
		return nil, err
	}
	return &Destination{name: cfg.Name, key: cfg.APIKey, stream: o.MessageStream, base: base, http: deps.HTTPClient(cfg.Timeout), now: deps.Clock}, nil
}

// MaxBatch is MaxSuppressions.
func (d *Destination) MaxBatch() int { return MaxSuppressions }

// Stream is the message stream ID the destination manages.
func (d *Destination) Stream() string { return d.stream }

// usable splits batch: suppressions with an address Postmark accepts, and a
// permanent Result for each of the others.
func (d *Destination) usable(batch []connectors.Suppression) ([]connectors.Suppression, []connectors.Result) {
	return connectors.EmailOnly("postmark", batch, func(s connectors.Suppression) error {
		if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
			return connectors.Permanent("postmark: not an email address Postmark accepts")
		}
		return nil
	})
}

// Push suppresses batch's addresses on the stream, in calls of at most
// MaxSuppressions distinct addresses. See Destination.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := d.usable(batch)
	res, err := connectors.PushByAddress(ctx, todo, MaxSuppressions, func(ctx context.Context, b []connectors.Suppression) ([]connectors.Result, error) {
		return d.change(ctx, b, "/suppressions", false)
	})
	if err != nil {
		return nil, err
	}
	return append(results, res...), nil
}

// Lift reactivates batch's addresses on the stream after a new opt-in:
// POST {base_url}/message-streams/{stream}/suppressions/delete, same body
// and limit as Push. "Deleted" is a success (Postmark answers it for an
// address that was not suppressed too, so Lift is safe to repeat);
// "Failed" is refused: Postmark does not let a customer delete a
// SpamComplaint suppression, so the Result wraps connectors.ErrLiftRefused
// and connectors.ErrPermanent (the person must opt in again through a
// form, and Postmark support reactivate the address). Whole-call errors
// are Push's.
func (d *Destination) Lift(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := d.usable(batch)
	res, err := connectors.PushByAddress(ctx, todo, MaxSuppressions, func(ctx context.Context, b []connectors.Suppression) ([]connectors.Result, error) {
		return d.change(ctx, b, "/suppressions/delete", true)
	})
	if err != nil {
		return nil, err
	}
	return append(results, res...), nil
}

type changeBody struct {
	Suppressions []changeItem `json:"Suppressions"`
}

type changeItem struct {
	EmailAddress string `json:"EmailAddress"`
}

// change makes one create (lift false) or delete (lift true) call for
// batch (at most MaxSuppressions distinct addresses).
func (d *Destination) change(ctx context.Context, batch []connectors.Suppression, path string, lift bool) ([]connectors.Result, error) {
	addrs, ids := connectors.GroupByAddress(batch)
	var body changeBody
	for _, a := range addrs {
		body.Suppressions = append(body.Suppressions, changeItem{EmailAddress: a})
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("postmark: encode request: %w", err)
	}
	resp, err := d.call(ctx, http.MethodPost, d.streamPath()+path, payload)
	if err != nil {
		return nil, err
	}
	statuses, err := ParseStatuses(resp.Body)
	if err != nil {
		// A 200 we cannot read: nothing is known, and the call is safe to
		// repeat.
		return nil, fmt.Errorf("postmark: unreadable answer (HTTP %d): %s", resp.Status, resp.Snippet(d.key))
	}
	ok, what := statusSuppressed, "suppressed"
	if lift {
		ok, what = statusDeleted, "suppression deleted"
	}
	out := make([]connectors.Result, 0, len(batch))
	for _, a := range addrs {
		r := connectors.Result{}
		st, found := statuses[connectors.AddrKey(a)]
		msg := connectors.Redact(st.Message, d.key)
		switch {
		case !found:
			r.Err = fmt.Errorf("postmark: stream %s: the answer does not mention the address; retried later", d.stream)
			r.Receipt = r.Err.Error()
		case st.Status == ok:
			r.Receipt = fmt.Sprintf("postmark: stream %s: %s (Status %s, HTTP %d)", d.stream, what, st.Status, resp.Status)
		case st.Status == statusFailed && lift:
			r.Err = fmt.Errorf("postmark: stream %s: %w: %w: Postmark refused to delete the suppression (a spam complaint is reactivated only by Postmark after a new opt-in): %s", d.stream, connectors.ErrPermanent, connectors.ErrLiftRefused, msg)
			r.Receipt = connectors.Redact(fmt.Sprintf("postmark: stream %s: Status Failed: %s", d.stream, msg), d.key)
		case st.Status == statusFailed:
			r.Err = connectors.Permanent("postmark: stream %s: suppression failed: %s", d.stream, msg)
			r.Receipt = connectors.Redact(fmt.Sprintf("postmark: stream %s: Status Failed: %s", d.stream, msg), d.key)
		default:
			r.Err = fmt.Errorf("postmark: stream %s: unexpected Status %q; retried later", d.stream, connectors.Redact(st.Status, d.key))
			r.Receipt = connectors.Redact(r.Err.Error(), d.key)
		}
		for _, id := range ids[connectors.AddrKey(a)] {
			r.ID = id
			out = append(out, r)
		}
	}
	return out, nil
}

// Check reads back, for each distinct address of batch, whether it is
// suppressed on the stream:
//
//	GET {base_url}/message-streams/{stream}/suppressions/dump?EmailAddress=e
//
// (https://postmarkapp.com/developer/api/suppressions-api#suppression-dump).
// Listed (any reason: ManualSuppression, HardBounce, SpamComplaint) means
// Suppressed, the reason in the receipt; an empty list means not
// suppressed (drifted), except within SettleTime of the suppression's
// SentAt (Postmark applies suppressions asynchronously): then Unknown,
// with a receipt saying it is not yet applied, so it is asked again later
// instead of pushed again. A zero SentAt (unknown) takes the answer as
// final. An answer that is not such a list is Unknown. One call per
// address, at most connectors.InFlight at once; the first whole-call failure ends Check and is returned
// as Push's are, with no Status. A suppression without a usable address,
// or on another channel, is Unknown without a call. Check changes nothing
// at Postmark.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	todo, refused := d.usable(batch)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: connectors.Redact(r.Err.Error(), d.key)})
	}
	byID := make(map[int64]connectors.Suppression, len(todo))
	for _, s := range todo {
		byID[s.ID] = s
	}
	now := d.clock()
	type dump struct {
		st       connectors.Status
		unlisted bool // the dump was read and does not list the address
	}
	addrs, ids := connectors.GroupByAddress(todo)
	read, err := connectors.Each(ctx, len(addrs), func(ctx context.Context, i int) (dump, error) {
		a := addrs[i]
		resp, err := d.call(ctx, http.MethodGet, d.streamPath()+"/suppressions/dump?EmailAddress="+url.QueryEscape(a), nil)
		if err != nil {
			return dump{}, err
		}
		st := connectors.Status{}
		listed, reason, ok := ParseDump(resp.Body, a)
		switch {
		case !ok:
			st.Unknown = true
			st.Receipt = fmt.Sprintf("postmark: stream %s: unreadable dump (HTTP %d): %s", d.stream, resp.Status, resp.Snippet(d.key))
		case listed:
			st.Suppressed = true
			st.Receipt = fmt.Sprintf("postmark: stream %s: suppressed (%s)", d.stream, reason)
		default:
			st.Receipt = fmt.Sprintf("postmark: stream %s: not suppressed", d.stream)
		}
		st.Receipt = connectors.Redact(st.Receipt, d.key)
		return dump{st: st, unlisted: ok && !listed}, nil
	})
	if err != nil {
		return nil, err
	}
	for i, a := range addrs {
		for _, id := range ids[connectors.AddrKey(a)] {
			s := read[i].st
			s.ID = id
			if read[i].unlisted && connectors.Settling(byID[id], now, SettleTime) {
				s.Unknown = true
				s.Receipt = fmt.Sprintf("postmark: stream %s: not suppressed yet: not yet applied (Postmark applies suppressions asynchronously, within about a minute of the push)", d.stream)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func (d *Destination) clock() time.Time {
	if d.now != nil {
		return d.now()
	}
	return time.Now()
}

func (d *Destination) streamPath() string {
	return "/message-streams/" + url.PathEscape(d.stream)
}

// call makes one request and classifies a failed answer by Postmark's
// ErrorCode (see classify). Its error names the method and path (the
// query left out), never the token.
func (d *Destination) call(ctx context.Context, method, pathQuery string, body []byte) (*connectors.Response, error) {
	var b any
	if body != nil {
		b = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, d.base+pathQuery, b)
	if err != nil {
		return nil, connectors.Permanent("postmark: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "consentsync")
	req.Header.Set("X-Postmark-Server-Token", d.key)
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		return nil, d.classify(resp, err)
	}
	return resp, nil
}

// classify turns a failed call's error into Push's conventions, reading
// the ErrorCode of Postmark's {"ErrorCode": n, "Message": m} body: 100
// (maintenance) is transient whatever the status; 10 is a bad token and
// 1222/1226/1227/1235 a stream the server lacks (permanent, said so); other
// permanent answers stay permanent with their code. Transient statuses
// (429, 5xx) keep connectors.Do's classification.
func (d *Destination) classify(resp *connectors.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("postmark: %w", err)
	}
	code, has := ParseErrorCode(resp.Body)
	switch {
	case !errors.Is(err, connectors.ErrPermanent):
		return fmt.Errorf("postmark: %w", err)
	case has && code == codeMaint:
		return fmt.Errorf("postmark: maintenance (ErrorCode 100), HTTP %d: %s", resp.Status, resp.Snippet(d.key))
	case has && code == codeBadToken:
		return fmt.Errorf("postmark: bad or missing server token (ErrorCode 10): %w", err)
	case has && (code == codeInvalidMS || code == codeMSNotFound || code == codeMSFormat || code == codeMSOnServer):
		return fmt.Errorf("postmark: message stream %q is not a stream of this server (ErrorCode %d; check message_stream): %w", d.stream, code, err)
	case has:
		return fmt.Errorf("postmark: ErrorCode %d: %w", code, err)
	}
	return fmt.Errorf("postmark: %w", err)
}

// ItemStatus is one entry of a create or delete answer.
type ItemStatus struct {
	Status  string
	Message string
}

// ParseStatuses reads a 200 answer of the create or delete call,
// {"Suppressions": [{"EmailAddress", "Status", "Message"}]}, into a map by
// connectors.AddrKey (the first entry of an address wins). It fails on a
// body that is not such an object. It never panics.
func ParseStatuses(body []byte) (map[string]ItemStatus, error) {
	var ans struct {
		Suppressions *[]struct {
			EmailAddress string  `json:"EmailAddress"`
			Status       string  `json:"Status"`
			Message      *string `json:"Message"`
		} `json:"Suppressions"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, err
	}
	if ans.Suppressions == nil {
		return nil, errors.New("no Suppressions list")
	}
	out := make(map[string]ItemStatus, len(*ans.Suppressions))
	for _, s := range *ans.Suppressions {
		k := connectors.AddrKey(s.EmailAddress)
		if _, dup := out[k]; dup || k == "" {
			continue
		}
		st := ItemStatus{Status: s.Status}
		if s.Message != nil {
			st.Message = *s.Message
		}
		out[k] = st
	}
	return out, nil
}

// ParseDump reads a 200 answer of the dump call: listed is true when an
// entry's EmailAddress is email (any case), reason its SuppressionReason;
// ok is false for a body that is not {"Suppressions": [...]}. It never
// panics.
func ParseDump(body []byte, email string) (listed bool, reason string, ok bool) {
	var ans struct {
		Suppressions *[]struct {
			EmailAddress      string `json:"EmailAddress"`
			SuppressionReason string `json:"SuppressionReason"`
		} `json:"Suppressions"`
	}
	if json.Unmarshal(body, &ans) != nil || ans.Suppressions == nil {
		return false, "", false
	}
	k := connectors.AddrKey(email)
	for _, s := range *ans.Suppressions {
		if connectors.AddrKey(s.EmailAddress) == k && k != "" {
			r := s.SuppressionReason
			if r == "" {
				r = "unknown reason"
			}
			return true, r, true
		}
	}
	return false, "", true
}

// ParseErrorCode reads the numeric ErrorCode of a Postmark error body
// {"ErrorCode": n, "Message": m}. It never panics.
func ParseErrorCode(body []byte) (int, bool) {
	var e struct {
		ErrorCode *json.Number `json:"ErrorCode"`
	}
	if json.Unmarshal(body, &e) != nil || e.ErrorCode == nil {
		return 0, false
	}
	n, err := e.ErrorCode.Int64()
	if err != nil || n < 0 || n > 1<<31 {
		return 0, false
	}
	return int(n), true
}
