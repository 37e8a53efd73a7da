package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Paths of HubSpot's communication preferences v4 API used by the
// destination, relative to base_url (default DefaultAPIBaseURL). All take
// "?channel=EMAIL" and a JSON body {"inputs": [...]}.
//
// References (the guide lists all four; the reference pages give shapes):
//   - guide: https://developers.hubspot.com/docs/guides/api/marketing/subscriptions
//   - batch read: https://developers.hubspot.com/docs/api-reference/legacy/communication-preferences/status/batch/get-subscriptions
//   - batch unsubscribe from all: https://developers.hubspot.com/docs/api-reference/legacy/communication-preferences/status/batch/unsubscribe-contacts-batch
//   - one contact's "unsubscribed from all" (the shape of wide statuses): https://developers.hubspot.com/docs/api-reference/latest/communication-preferences/status/get-unsubscribed-status
//   - statusState, legalBasis values: https://developers.hubspot.com/docs/api-reference/latest/communication-preferences/status/update-subscription
const (
	StatusesWritePath      = "/communication-preferences/v4/statuses/batch/write"
	StatusesReadPath       = "/communication-preferences/v4/statuses/batch/read"
	UnsubscribeAllPath     = "/communication-preferences/v4/statuses/batch/unsubscribe-all"
	UnsubscribeAllReadPath = "/communication-preferences/v4/statuses/batch/unsubscribe-all/read"
)

const (
	channelQuery        = "?channel=EMAIL"
	statusSubscribed    = "SUBSCRIBED"
	statusNotSubscribed = "NOT_SUBSCRIBED"

	// Waits after a 429 without Retry-After (see RateLimitWait).
	defaultRateLimitWindow = 10 * time.Second
	defaultSecondlyWait    = time.Second
	defaultDailyLimitWait  = time.Hour

	intervalHeader       = "X-HubSpot-RateLimit-Interval-Milliseconds"
	remainingHeader      = "X-HubSpot-RateLimit-Remaining"
	secondlyRemainHeader = "X-HubSpot-RateLimit-Secondly-Remaining"
	dailyRemainHeader    = "X-HubSpot-RateLimit-Daily-Remaining"
)

// MaxInputs is how many inputs one batch call carries. HubSpot's CRM batch
// endpoints take at most 100 inputs; the v4 communication preferences
// reference states no number, so 100 is the safe choice rather than a
// documented one (hubspotfake refuses more with a 400 VALIDATION_ERROR).
const MaxInputs = 100

// LegalBases are the values HubSpot accepts for legalBasis
// (https://developers.hubspot.com/docs/api-reference/latest/communication-preferences/status/update-subscription).
var LegalBases = []string{
	"LEGITIMATE_INTEREST_PQL", "LEGITIMATE_INTEREST_CLIENT", "PERFORMANCE_OF_CONTRACT",
	"CONSENT_WITH_NOTICE", "NON_GDPR", "PROCESS_AND_STORE", "LEGITIMATE_INTEREST_OTHER",
}

// DestinationOptions are a HubSpot destination's own keys.
type DestinationOptions struct {
	// SubscriptionIDs maps a purpose ("marketing") to the HubSpot email
	// subscription type id ("12345") a withdrawal of that purpose
	// unsubscribes from. Empty: every withdrawal unsubscribes the address
	// from all email. A purpose missing from a non-empty map also
	// unsubscribes from all email (fail closed: a withdrawal never leaves
	// mail flowing).
	SubscriptionIDs map[string]string `yaml:"subscription_ids"`
	// LegalBasis is sent as legalBasis with each subscription-type write
	// (one of LegalBases). HubSpot requires one when the portal has GDPR
	// tools on; it is needed to resubscribe (Lift).
	LegalBasis string `yaml:"legal_basis"`
	// LegalBasisExplanation is sent as legalBasisExplanation.
	LegalBasisExplanation string `yaml:"legal_basis_explanation"`
}

// Validate checks purposes and ids of subscription_ids and legal_basis.
func (o *DestinationOptions) Validate(_ bool, bad func(key, format string, args ...any)) {
	for p, id := range o.SubscriptionIDs {
		if _, err := consent.ParsePurpose(p); err != nil {
			bad("subscription_ids."+p, "%s", err.Error())
		}
		if !isDigits(id) {
			bad("subscription_ids."+p, "must be a HubSpot subscription type id (digits), got %q", id)
		}
	}
	if o.LegalBasis != "" && !slices.Contains(LegalBases, o.LegalBasis) {
		bad("legal_basis", "must be one of %s", strings.Join(LegalBases, ", "))
	}
	if o.LegalBasisExplanation != "" && o.LegalBasis == "" {
		bad("legal_basis_explanation", "needs legal_basis")
	}
}

func isDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

var (
	_ connectors.Destination = (*Destination)(nil)
	_ connectors.Checker     = (*Destination)(nil)
	_ connectors.Lifter      = (*Destination)(nil)
)

// Destination unsubscribes addresses in one HubSpot portal through the
// communication preferences v4 batch API, authenticated with
// "Authorization: Bearer TOKEN" (a private app token with
// communication_preferences.statuses.batch.write and .read; the batch
// endpoints need Marketing Hub Enterprise).
//
// A suppression whose purpose is mapped in subscription_ids is written as
// NOT_SUBSCRIBED for that subscription type (StatusesWritePath, inputs
// {subscriberIdString, channel, statusState, subscriptionId, legalBasis,
// legalBasisExplanation}); any other is unsubscribed from all email
// (UnsubscribeAllPath, inputs [email]). Both are idempotent: a repeat
// answers setStatusSuccessReason NO_STATUS_CHANGE.
//
// Answers: 200 or 207 (multi-status) carry results and per-input errors;
// an input named in an error's context gets that error as its Result
// (wrapping connectors.ErrPermanent, except HubSpot's RATE_LIMITS and
// internal categories, which are transient); an input in neither gets a
// transient Result (retried). A 429 comes back as *connectors.RetryAfterError:
// Retry-After when HubSpot sends one, else 1s when
// X-HubSpot-RateLimit-Secondly-Remaining is 0, else the
// X-HubSpot-RateLimit-Interval-Milliseconds window (10s) when
// X-HubSpot-RateLimit-Remaining is 0, else 1h for the daily limit
// (https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details).
// X-HubSpot-RateLimit-* names: https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details.
// Other 4xx are permanent for the call, 5xx transient. Errors and receipts
// never contain the token, and addresses HubSpot echoes are masked.
type Destination struct {
	name  string
	key   string
	base  string
	opts  DestinationOptions
	http  *retryablehttp.Client
	clock func() time.Time
}

// NewDestination builds a HubSpot destination. cfg.APIKey (the private
// app token) is required; cfg.BaseURL defaults to DefaultAPIBaseURL. Its
// client is deps.HTTPClient(cfg.Timeout).
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("api_key: is required")
	}
	base, err := connectors.BaseURL(cfg.BaseURL, DefaultAPIBaseURL)
	if err != nil {
		return nil, err
	}
	o, err := connectors.DestinationOptions[DestinationOptions](cfg.Options)
	if err != nil {
		return nil, err
	}
	return &Destination{name: cfg.Name, key: cfg.APIKey, base: base, opts: o, http: deps.HTTPClient(cfg.Timeout), clock: time.Now}, nil
}

// MaxBatch is MaxInputs.
func (d *Destination) MaxBatch() int { return MaxInputs }

// subscriptionID returns the subscription type id s's purpose maps to, or
// "" for all email.
func (d *Destination) subscriptionID(s connectors.Suppression) string {
	return d.opts.SubscriptionIDs[string(s.Purpose)]
}

func (d *Destination) usable(batch []connectors.Suppression) ([]connectors.Suppression, []connectors.Result) {
	return connectors.EmailOnly("hubspot", batch, func(s connectors.Suppression) error {
		if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
			return connectors.Permanent("hubspot: not an email address HubSpot accepts")
		}
		return nil
	})
}

// Push unsubscribes batch's addresses (see Destination), in calls of at
// most MaxInputs inputs. Suppressions without a usable address, or on a
// channel other than email, get a permanent Result without a call.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, out := d.usable(batch)
	res, err := connectors.PushByAddress(ctx, todo, MaxInputs, func(ctx context.Context, b []connectors.Suppression) ([]connectors.Result, error) {
		return d.apply(ctx, b, statusNotSubscribed)
	})
	if err != nil {
		return nil, err
	}
	return append(out, res...), nil
}

// Lift resubscribes batch's addresses to the subscription types their
// purposes map to (statusState SUBSCRIBED, with legal_basis and
// legal_basis_explanation). HubSpot refuses to resubscribe a contact who
// unsubscribed themselves (through an email's unsubscribe link or the
// preferences page): that input's error comes back as a Result wrapping
// connectors.ErrLiftRefused; the person must resubscribe through HubSpot's
// resubscription email
// (https://knowledge.hubspot.com/email/resubscribe-contacts-to-your-marketing-emails).
// A suppression whose purpose is not mapped (an "unsubscribe from all
// email") is refused without a call: the v4 API has no call that undoes
// it. Lift is safe to repeat (NO_STATUS_CHANGE). Whole-call errors are
// Push's.
func (d *Destination) Lift(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	if len(batch) > MaxInputs {
		return nil, connectors.Permanent("hubspot: lift of %d suppressions, at most %d per call", len(batch), MaxInputs)
	}
	todo, out := d.usable(batch)
	var mapped []connectors.Suppression
	for _, s := range todo {
		if d.subscriptionID(s) == "" {
			out = append(out, connectors.Result{ID: s.ID, Err: fmt.Errorf("%w: hubspot: %w: the address was unsubscribed from all email; HubSpot resubscribes it only through its own resubscription email", connectors.ErrPermanent, connectors.ErrLiftRefused),
				Receipt: "hubspot: unsubscribe from all email cannot be lifted through the API"})
			continue
		}
		mapped = append(mapped, s)
	}
	if len(mapped) == 0 {
		return out, nil
	}
	res, err := d.apply(ctx, mapped, statusSubscribed)
	if err != nil {
		return nil, err
	}
	return append(out, res...), nil
}

// inputKey identifies one input of a call: the address (AddrKey) and the
// subscription type id ("" for all email).
type inputKey struct{ addr, sub string }

// apply sends batch as writes of state (mapped purposes) and, for
// NOT_SUBSCRIBED, unsubscribe-all calls (the others), and maps answers to
// Results.
func (d *Destination) apply(ctx context.Context, batch []connectors.Suppression, state string) ([]connectors.Result, error) {
	var writes []writeInput
	var all []string
	keys := map[int64]inputKey{}
	seen := map[inputKey]bool{}
	for _, s := range batch {
		k := inputKey{addr: connectors.AddrKey(s.Email), sub: d.subscriptionID(s)}
		keys[s.ID] = k
		if seen[k] {
			continue
		}
		seen[k] = true
		if k.sub == "" {
			all = append(all, strings.TrimSpace(s.Email))
			continue
		}
		writes = append(writes, writeInput{
			SubscriberIDString: strings.TrimSpace(s.Email), StatusState: state, Channel: "EMAIL",
			SubscriptionID: k.sub, LegalBasis: d.opts.LegalBasis, LegalBasisExplanation: d.opts.LegalBasisExplanation,
		})
	}
	outcome := map[inputKey]itemOutcome{}
	for len(writes) > 0 {
		n := min(len(writes), MaxInputs)
		if err := d.call(ctx, StatusesWritePath, writeBody{Inputs: writes[:n]}, outcome, false); err != nil {
			return nil, err
		}
		writes = writes[n:]
	}
	for len(all) > 0 {
		n := min(len(all), MaxInputs)
		if err := d.call(ctx, UnsubscribeAllPath, stringsBody{Inputs: all[:n]}, outcome, true); err != nil {
			return nil, err
		}
		all = all[n:]
	}
	// A lift HubSpot refused: a refusal to resubscribe only when the
	// contact is opted out of all email (what HubSpot lets only its own
	// resubscription email undo); any other error (a bad legal_basis, an
	// unknown subscription type) is a permanent error of the lift.
	var optedOut map[string]bool
	if state == statusSubscribed {
		var failed []string
		for _, s := range batch {
			if o, ok := outcome[keys[s.ID]]; ok && o.err != "" && !o.transient {
				failed = append(failed, strings.TrimSpace(s.Email))
			}
		}
		var err error
		if optedOut, err = d.optedOutOfAll(ctx, failed); err != nil {
			return nil, err
		}
	}
	out := make([]connectors.Result, 0, len(batch))
	for _, s := range batch {
		k := keys[s.ID]
		o, ok := outcome[k]
		what := "unsubscribed from all email"
		if k.sub != "" {
			what = "subscription " + k.sub + " " + state
		}
		r := connectors.Result{ID: s.ID}
		switch {
		case !ok:
			r.Err = fmt.Errorf("hubspot: %s: the address is missing from HubSpot's answer", what)
			r.Receipt = r.Err.Error()
		case o.err != "":
			if o.transient {
				r.Err = fmt.Errorf("hubspot: %s: %s", what, o.err)
			} else if state == statusSubscribed && optedOut[k.addr] {
				r.Err = fmt.Errorf("%w: hubspot: %w: the contact is opted out of all email; HubSpot resubscribes it only through its own resubscription email: %s", connectors.ErrPermanent, connectors.ErrLiftRefused, o.err)
			} else if state == statusSubscribed {
				r.Err = connectors.Permanent("hubspot: %s: HubSpot refused the lift (not a refusal to resubscribe: check legal_basis and subscription_ids): %s", what, o.err)
			} else {
				r.Err = connectors.Permanent("hubspot: %s: %s", what, o.err)
			}
			r.Receipt = r.Err.Error()
		default:
			r.Receipt = fmt.Sprintf("hubspot: %s (HTTP %d%s)", what, o.status, o.reason)
		}
		r.Receipt = connectors.Redact(r.Receipt, d.key)
		if r.Err != nil {
			r.Err = redactErr(r.Err, d.key)
		}
		out = append(out, r)
	}
	return out, nil
}

// optedOutOfAll reads (POST UnsubscribeAllReadPath, at most MaxInputs
// addresses a call) which of addrs are opted out of all email: a wide
// status NOT_SUBSCRIBED on EMAIL. An address HubSpot does not answer for
// is not. Errors are whole-call errors (Push's conventions).
func (d *Destination) optedOutOfAll(ctx context.Context, addrs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(addrs) > 0 {
		n := min(len(addrs), MaxInputs)
		resp, err := d.post(ctx, UnsubscribeAllReadPath, stringsBody{Inputs: addrs[:n]})
		if err != nil {
			return nil, err
		}
		ans, err := ParseBatchAnswer(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("hubspot: POST %s: HTTP %d: unreadable answer: %s", UnsubscribeAllReadPath, resp.Status, resp.Snippet(d.key))
		}
		for _, r := range ans.Results {
			for _, x := range r.WideStatuses {
				if x.Status == statusNotSubscribed && (x.Channel == "" || x.Channel == "EMAIL") {
					out[connectors.AddrKey(r.SubscriberIDString)] = true
				}
			}
		}
		addrs = addrs[n:]
	}
	return out, nil
}

// redactErr returns err with its text redacted, keeping its sentinels.
func redactErr(err error, key string) error {
	return &redacted{msg: connectors.Redact(err.Error(), key), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

type writeInput struct {
	SubscriberIDString    string `json:"subscriberIdString"`
	StatusState           string `json:"statusState"`
	Channel               string `json:"channel"`
	SubscriptionID        string `json:"subscriptionId"`
	LegalBasis            string `json:"legalBasis,omitempty"`
	LegalBasisExplanation string `json:"legalBasisExplanation,omitempty"`
}

type writeBody struct {
	Inputs []writeInput `json:"inputs"`
}

type stringsBody struct {
	Inputs []string `json:"inputs"`
}

type itemOutcome struct {
	status    int
	reason    string // ", NO_STATUS_CHANGE"
	err       string
	transient bool
}

// call posts body to path and records, by inputKey, the outcome of each
// input. wide: the call is an unsubscribe-all (keys without subscription).
func (d *Destination) call(ctx context.Context, path string, body any, outcome map[inputKey]itemOutcome, wide bool) error {
	resp, err := d.post(ctx, path, body)
	if err != nil {
		return err
	}
	ans, err := ParseBatchAnswer(resp.Body)
	if err != nil {
		return fmt.Errorf("hubspot: POST %s: HTTP %d: unreadable answer: %s", path, resp.Status, resp.Snippet(d.key))
	}
	for _, r := range ans.Results {
		if wide {
			outcome[inputKey{addr: connectors.AddrKey(r.SubscriberIDString)}] = itemOutcome{status: resp.Status, reason: reasonOf(r.Statuses)}
			continue
		}
		sub := string(r.SubscriptionID)
		reason := ""
		if r.SetStatusSuccessReason != "" {
			reason = ", " + r.SetStatusSuccessReason
		}
		outcome[inputKey{addr: connectors.AddrKey(r.SubscriberIDString), sub: sub}] = itemOutcome{status: resp.Status, reason: reason}
	}
	var sent []inputKey
	switch b := body.(type) {
	case writeBody:
		for _, in := range b.Inputs {
			sent = append(sent, inputKey{connectors.AddrKey(in.SubscriberIDString), in.SubscriptionID})
		}
	case stringsBody:
		for _, in := range b.Inputs {
			sent = append(sent, inputKey{addr: connectors.AddrKey(in)})
		}
	}
	for _, e := range ans.Errors {
		msg := e.Message
		if msg == "" && len(e.Errors) > 0 {
			msg = e.Errors[0].Message
		}
		msg = connectors.Redact(fmt.Sprintf("HTTP %d: %s %s", resp.Status, e.Category, msg), d.key)
		transient := e.Category == "RATE_LIMITS" || e.Category == "INTERNAL_ERROR"
		named := e.Subscribers()
		for _, k := range sent {
			if _, done := outcome[k]; done && outcome[k].err == "" {
				continue
			}
			if len(named) == 0 || named[k.addr] {
				outcome[k] = itemOutcome{status: resp.Status, err: msg, transient: transient}
			}
		}
	}
	return nil
}

func reasonOf(sts []StatusResult) string {
	for _, s := range sts {
		if s.SetStatusSuccessReason != "" {
			return ", " + s.SetStatusSuccessReason
		}
	}
	return ""
}

// post sends one JSON POST and classifies its answer (connectors.Do),
// turning HubSpot's 429 without Retry-After into a *RetryAfterError whose
// delay follows the X-HubSpot-RateLimit-* headers (see Destination).
func (d *Destination) post(ctx context.Context, path string, body any) (*connectors.Response, error) {
	return d.postTo(ctx, path+channelQuery, body)
}

// postTo is post to pathQuery as given (no channel query).
func (d *Destination) postTo(ctx context.Context, pathQuery string, body any) (*connectors.Response, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("hubspot: encode request: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, d.base+pathQuery, payload)
	if err != nil {
		return nil, connectors.Permanent("hubspot: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	req.Header.Set("Authorization", "Bearer "+d.key)
	resp, err := connectors.Do(d.http, req, d.key)
	if err == nil {
		return resp, nil
	}
	if _, ok := connectors.RetryDelay(err); !ok && resp != nil && resp.Status == http.StatusTooManyRequests {
		return nil, &connectors.RetryAfterError{Delay: RateLimitWait(resp.Header, resp.Body), Err: fmt.Errorf("hubspot: %w", err)}
	}
	return nil, fmt.Errorf("hubspot: %w", err)
}

// RateLimitWait is how long to wait after a HubSpot 429 that names no
// Retry-After: 1s when the secondly limit is spent
// (X-HubSpot-RateLimit-Secondly-Remaining 0, or policyName SECONDLY),
// the rolling window X-HubSpot-RateLimit-Interval-Milliseconds (default
// 10s) when X-HubSpot-RateLimit-Remaining is 0 (policyName
// TEN_SECONDLY_ROLLING), 1h when the daily limit is spent
// (X-HubSpot-RateLimit-Daily-Remaining 0 or policyName DAILY; HubSpot
// resets it at midnight in the portal's time zone, which the answer does
// not give), else the 10s window.
func RateLimitWait(h http.Header, body []byte) time.Duration {
	var b struct {
		PolicyName string `json:"policyName"`
	}
	_ = json.Unmarshal(body, &b)
	window := defaultRateLimitWindow
	if ms, err := strconv.ParseInt(strings.TrimSpace(h.Get(intervalHeader)), 10, 64); err == nil && ms > 0 && ms <= 86_400_000 {
		window = time.Duration(ms) * time.Millisecond
	}
	switch {
	case h.Get(secondlyRemainHeader) == "0" || b.PolicyName == "SECONDLY":
		return defaultSecondlyWait
	case h.Get(remainingHeader) == "0" || b.PolicyName == "TEN_SECONDLY_ROLLING":
		return window
	case h.Get(dailyRemainHeader) == "0" || b.PolicyName == "DAILY":
		return defaultDailyLimitWait
	}
	return window
}

// Check reads back, for at most MaxInputs suppressions, whether HubSpot
// holds each address unsubscribed: for a mapped purpose, the status of its
// subscription type (StatusesReadPath: NOT_SUBSCRIBED ⇒ Suppressed,
// SUBSCRIBED or NOT_SPECIFIED ⇒ not, the type missing ⇒ Unknown); for the
// others, the "unsubscribed from all email" status (UnsubscribeAllReadPath:
// a wide status NOT_SUBSCRIBED ⇒ Suppressed, none ⇒ not). An address
// HubSpot names in an error (no such contact, invalid) is Unknown.
// Whole-call errors follow Push's conventions. Check changes nothing.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	if len(batch) > MaxInputs {
		return nil, connectors.Permanent("hubspot: check of %d suppressions, at most %d per call", len(batch), MaxInputs)
	}
	todo, refused := d.usable(batch)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: connectors.Redact(r.Err.Error(), d.key)})
	}
	var mapped, wide []connectors.Suppression
	for _, s := range todo {
		if d.subscriptionID(s) == "" {
			wide = append(wide, s)
		} else {
			mapped = append(mapped, s)
		}
	}
	read := func(path string, b []connectors.Suppression) (*BatchAnswer, int, error) {
		if len(b) == 0 {
			return &BatchAnswer{}, 0, nil
		}
		addrs, _ := connectors.GroupByAddress(b)
		resp, err := d.post(ctx, path, stringsBody{Inputs: addrs})
		if err != nil {
			return nil, 0, err
		}
		ans, err := ParseBatchAnswer(resp.Body)
		if err != nil {
			return nil, 0, fmt.Errorf("hubspot: POST %s: HTTP %d: unreadable answer: %s", path, resp.Status, resp.Snippet(d.key))
		}
		return ans, resp.Status, nil
	}
	ans, status, err := read(StatusesReadPath, mapped)
	if err != nil {
		return nil, err
	}
	for _, s := range mapped {
		sub := d.subscriptionID(s)
		st := connectors.Status{ID: s.ID, Unknown: true, Receipt: fmt.Sprintf("hubspot: subscription %s: address not in HubSpot's answer (HTTP %d)", sub, status)}
		if r, ok := ans.result(s.Email); ok {
			st.Receipt = fmt.Sprintf("hubspot: subscription %s: not in the contact's statuses (HTTP %d)", sub, status)
			for _, x := range r.Statuses {
				if string(x.SubscriptionID) == sub && (x.Channel == "" || x.Channel == "EMAIL") {
					st.Unknown = false
					st.Suppressed = x.Status == statusNotSubscribed
					st.Receipt = fmt.Sprintf("hubspot: subscription %s: %s (HTTP %d)", sub, x.Status, status)
				}
			}
		} else if msg, ok := ans.errorFor(s.Email); ok {
			st.Receipt = "hubspot: subscription " + sub + ": " + msg
		}
		st.Receipt = connectors.Redact(st.Receipt, d.key)
		out = append(out, st)
	}
	ans, status, err = read(UnsubscribeAllReadPath, wide)
	if err != nil {
		return nil, err
	}
	for _, s := range wide {
		// An address in neither results nor errors is Unknown: HubSpot
		// said nothing about it.
		st := connectors.Status{ID: s.ID, Unknown: true, Receipt: fmt.Sprintf("hubspot: all email: address not in HubSpot's answer (HTTP %d)", status)}
		if r, ok := ans.result(s.Email); ok {
			st.Unknown, st.Receipt = false, fmt.Sprintf("hubspot: not unsubscribed from all email (HTTP %d)", status)
			for _, x := range r.WideStatuses {
				if x.Status == statusNotSubscribed && (x.Channel == "" || x.Channel == "EMAIL") {
					st.Suppressed = true
					st.Receipt = fmt.Sprintf("hubspot: unsubscribed from all email, %s (HTTP %d)", x.WideStatusType, status)
				}
			}
		} else if msg, ok := ans.errorFor(s.Email); ok {
			st.Unknown, st.Receipt = true, "hubspot: unsubscribed from all email: "+msg
		}
		st.Receipt = connectors.Redact(st.Receipt, d.key)
		out = append(out, st)
	}
	return out, nil
}

// BatchAnswer is the body of a v4 batch call (200 or 207):
//
//	{"status": "COMPLETE", "results": [...], "errors": [...], "numErrors": n,
//	 "startedAt": "...", "completedAt": "..."}
type BatchAnswer struct {
	Status    string         `json:"status"`
	Results   []StatusResult `json:"results"`
	Errors    []BatchError   `json:"errors"`
	NumErrors int            `json:"numErrors"`
}

// StatusResult is one entry of results: a status of a batch write
// (subscriberIdString, subscriptionId, status, setStatusSuccessReason), a
// contact's statuses (batch read, unsubscribe-all: subscriberIdString,
// statuses) or its wide statuses (unsubscribe-all read: wideStatuses).
type StatusResult struct {
	SubscriberIDString     string         `json:"subscriberIdString"`
	SubscriptionID         flexID         `json:"subscriptionId"`
	Channel                string         `json:"channel"`
	Status                 string         `json:"status"`
	SetStatusSuccessReason string         `json:"setStatusSuccessReason"`
	WideStatusType         string         `json:"wideStatusType"`
	Statuses               []StatusResult `json:"statuses"`
	WideStatuses           []StatusResult `json:"wideStatuses"`
}

// BatchError is one entry of errors: {"category", "message", "context":
// {"subscriberIdString": [...]}, "errors": [{"message", "code"}]}.
type BatchError struct {
	Category string                     `json:"category"`
	Message  string                     `json:"message"`
	Context  map[string]json.RawMessage `json:"context"`
	Errors   []struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	} `json:"errors"`
}

// Subscribers returns the addresses (AddrKey) the error's context names
// under subscriberIdString (a list or a single string).
func (e BatchError) Subscribers() map[string]bool {
	out := map[string]bool{}
	raw, ok := e.Context["subscriberIdString"]
	if !ok {
		return out
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		var one string
		if json.Unmarshal(raw, &one) != nil {
			return out
		}
		list = []string{one}
	}
	for _, a := range list {
		out[connectors.AddrKey(a)] = true
	}
	return out
}

func (a *BatchAnswer) result(email string) (StatusResult, bool) {
	for _, r := range a.Results {
		if connectors.AddrKey(r.SubscriberIDString) == connectors.AddrKey(email) {
			return r, true
		}
	}
	return StatusResult{}, false
}

func (a *BatchAnswer) errorFor(email string) (string, bool) {
	for _, e := range a.Errors {
		if e.Subscribers()[connectors.AddrKey(email)] {
			return e.Category + " " + e.Message, true
		}
	}
	return "", false
}

// flexID is a subscription id HubSpot spells as a number or a string.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexID(n.String())
	return nil
}

// ParseBatchAnswer decodes a v4 batch answer. An error means the body is
// not such a JSON object. It never panics.
func ParseBatchAnswer(body []byte) (*BatchAnswer, error) {
	var a BatchAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	return &a, nil
}
