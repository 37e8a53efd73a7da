// Package klaviyo pushes suppressions to Klaviyo (destination kind
// "klaviyo"): a withdrawal unsubscribes the profile from email marketing
// with a bulk unsubscribe job.
//
// API: https://developers.klaviyo.com/en/reference/bulk_unsubscribe_profiles
// (POST /api/profile-subscription-bulk-delete-jobs, ≤ 100 profiles, rate
// limits burst 75/s, steady 700/m), https://developers.klaviyo.com/en/reference/get_profiles
// (read-back), https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling
// (429 with Retry-After; JSON:API error bodies).
package klaviyo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind.
const Kind = "klaviyo"

// DefaultBaseURL is Klaviyo's API host.
const DefaultBaseURL = "https://a.klaviyo.com"

// Revision is the API revision sent in the "revision" header (Klaviyo
// requires one on every call and keeps a revision for two years,
// https://developers.klaviyo.com/en/docs/api_versioning_and_deprecation_policy).
const Revision = "2026-07-15"

// SettleTime is how long after a push a read-back that finds the profile
// not unsubscribed is Unknown ("not yet applied", asked again later)
// rather than a mismatch: the bulk unsubscribe job is asynchronous (202,
// and the job is not exposed to poll), and Klaviyo documents no bound on
// when it runs. 5 minutes is our choice, not Klaviyo's.
const SettleTime = 5 * time.Minute

// MaxProfiles is how many profiles one bulk unsubscribe job carries
// (Klaviyo's documented maximum).
const MaxProfiles = 100

// mediaType is JSON:API's media type, which Klaviyo uses both ways.
const mediaType = "application/vnd.api+json"

// ConsentUnsubscribed is the email marketing consent value of an
// unsubscribed profile.
const ConsentUnsubscribed = "UNSUBSCRIBED"

// Options are a Klaviyo destination's own keys.
type Options struct {
	// ListID, when set, is sent as the job's relationships.list: the
	// profiles are also removed from that list. Email marketing consent is
	// one fact per profile in Klaviyo, so the unsubscribe applies to all
	// email marketing either way.
	ListID string `yaml:"list_id"`
	// Revision is the API revision header (default Revision,
	// "YYYY-MM-DD" or "YYYY-MM-DD.suffix").
	Revision string `yaml:"revision"`
}

// Defaults sets Revision.
func (o *Options) Defaults() {
	if o.Revision == "" {
		o.Revision = Revision
	}
}

var revisionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$`)

// Validate checks the revision's format and that list_id has no slash or
// space.
func (o *Options) Validate(_ bool, bad func(key, format string, args ...any)) {
	if !revisionRE.MatchString(o.Revision) {
		bad("revision", "must be a Klaviyo API revision such as %s, not %q", Revision, o.Revision)
	}
	if strings.ContainsAny(o.ListID, "/?# \t") {
		bad("list_id", "must be a Klaviyo list id such as Y6nRLr, not %q", o.ListID)
	}
}

var (
	_ connectors.Destination = (*Destination)(nil)
	_ connectors.Checker     = (*Destination)(nil)
	_ connectors.Lifter      = (*Destination)(nil)
)

// Destination unsubscribes Klaviyo profiles from email marketing.
//
// Push: POST {base_url}/api/profile-subscription-bulk-delete-jobs with
//
//	{"data": {"type": "profile-subscription-bulk-delete-job",
//	  "attributes": {"profiles": {"data": [{"type": "profile",
//	    "attributes": {"email": e, "subscriptions": {"email":
//	      {"marketing": {"consent": "UNSUBSCRIBED"}}}}}]}},
//	  "relationships": {"list": {"data": {"type": "list", "id": L}}}}}
//
// (relationships only with list_id; at most MaxProfiles profiles),
// headers "Authorization: Klaviyo-API-Key KEY", "revision" and
// Accept/Content-Type application/vnd.api+json. Klaviyo creates unknown
// profiles and unsubscribes them, so the suppression holds for an address
// imported later; repeating the job changes nothing (idempotent). The job
// is asynchronous: a 202 (no body) means Klaviyo accepted it, and Push
// counts it sent then (receipt "job accepted"); Check confirms it later.
// Klaviyo refuses a whole job with 400 when one profile is bad: Push then
// halves the job's profiles until the bad one is alone
// (connectors.Bisect: about 2·log2(n) more calls per bad profile), so that
// only the bad one fails (permanently). When the Push's time runs out
// midway, the profiles already answered keep their Results and the others
// get transient ones (retried later).
//
// Check: GET {base_url}/api/profiles?filter=equals(email,"e")&additional-fields[profile]=subscriptions,
// one call per address: Suppressed when
// subscriptions.email.marketing.consent is "UNSUBSCRIBED"; Unknown when no
// profile is found (the job may not have run yet), or when another consent
// is read within SettleTime of the suppression's SentAt (the job may not
// have run yet: "not yet applied", asked again later); otherwise not
// suppressed.
//
// Lift: refused (connectors.ErrLiftRefused) without a call; see Lift.
//
// Answers: 4xx other than 408/409/429 are permanent; 429 (with
// Retry-After, seconds) and 5xx are transient, a
// *connectors.RetryAfterError when Klaviyo names a wait. Errors and
// receipts never contain the API key, and addresses an error body repeats
// are masked.
type Destination struct {
	name     string
	listID   string
	revision string
	key      string
	base     string
	http     *retryablehttp.Client
	now      func() time.Time
}

// NewDestination builds a Klaviyo destination. cfg.APIKey (a private key)
// is required; cfg.BaseURL defaults to DefaultBaseURL. Its client is
// deps.HTTPClient(cfg.Timeout); its clock deps.Clock. Errors name the
// config key and never contain the key's value.
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("api_key: is required (a Klaviyo private API key)")
	}
	o, err := connectors.DestinationOptions[Options](cfg.Options)
	if err != nil {
		return nil, err
	}
	base, err := connectors.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, err
	}
	return &Destination{name: cfg.Name, listID: o.ListID, revision: o.Revision, key: cfg.APIKey, base: base, http: deps.HTTPClient(cfg.Timeout), now: deps.Clock}, nil
}

// MaxBatch is MaxProfiles.
func (d *Destination) MaxBatch() int { return MaxProfiles }

type marketing struct {
	Consent string `json:"consent"`
}

type subscriptions struct {
	Email struct {
		Marketing marketing `json:"marketing"`
	} `json:"email"`
}

type profileObject struct {
	Type       string `json:"type"`
	Attributes struct {
		Email         string        `json:"email"`
		Subscriptions subscriptions `json:"subscriptions"`
	} `json:"attributes"`
}

type resourceID struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type jobRequest struct {
	Data struct {
		Type       string `json:"type"`
		Attributes struct {
			Profiles struct {
				Data []profileObject `json:"data"`
			} `json:"profiles"`
		} `json:"attributes"`
		Relationships *struct {
			List struct {
				Data resourceID `json:"data"`
			} `json:"list"`
		} `json:"relationships,omitempty"`
	} `json:"data"`
}

// acceptable refuses what consent.NormalizeEmail refuses, and addresses
// with a quote or backslash (they cannot be written in a Klaviyo filter
// string, so Check could never read them back).
func acceptable(s connectors.Suppression) error {
	if _, _, err := consent.NormalizeEmail(s.Email); err != nil || strings.ContainsAny(s.Email, `"\`) {
		return connectors.Permanent("klaviyo: not an email address Klaviyo accepts")
	}
	return nil
}

// Push unsubscribes batch's addresses from email marketing, in jobs of at
// most MaxProfiles distinct addresses. Suppressions without a usable email
// address, or on a channel other than email, get a permanent Result
// without a call. See Destination for how answers are classified.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := connectors.EmailOnly("klaviyo", batch, acceptable)
	res, err := connectors.PushByAddress(ctx, todo, MaxProfiles, d.push)
	if err != nil {
		return nil, err
	}
	return append(results, res...), nil
}

func (d *Destination) request(ctx context.Context, method, u string, body []byte) (*retryablehttp.Request, error) {
	var raw any
	if body != nil {
		raw = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u, raw)
	if err != nil {
		return nil, connectors.Permanent("klaviyo: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	if body != nil {
		req.Header.Set("Content-Type", mediaType)
	}
	req.Header.Set("Accept", mediaType)
	req.Header.Set("User-Agent", "consentsync")
	req.Header.Set("Authorization", "Klaviyo-API-Key "+d.key)
	req.Header.Set("revision", d.revision)
	return req, nil
}

// push sends at most MaxProfiles distinct addresses; when Klaviyo refuses
// the whole job (400) for several addresses, it halves them until each
// refused address is alone (connectors.Bisect).
func (d *Destination) push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	addrs, ids := connectors.GroupByAddress(batch)
	return connectors.Bisect(ctx, addrs, ids, func(ctx context.Context, addrs []string) ([]connectors.Result, bool, error) {
		return d.job(ctx, addrs, ids)
	})
}

// job makes one bulk unsubscribe job for addrs. A 400 for several
// addresses asks connectors.Bisect to split them; a 400 for one is that
// address's permanent Result.
func (d *Destination) job(ctx context.Context, addrs []string, ids map[string][]int64) ([]connectors.Result, bool, error) {
	var job jobRequest
	job.Data.Type = "profile-subscription-bulk-delete-job"
	for _, a := range addrs {
		var p profileObject
		p.Type = "profile"
		p.Attributes.Email = a
		p.Attributes.Subscriptions.Email.Marketing.Consent = ConsentUnsubscribed
		job.Data.Attributes.Profiles.Data = append(job.Data.Attributes.Profiles.Data, p)
	}
	if d.listID != "" {
		job.Data.Relationships = &struct {
			List struct {
				Data resourceID `json:"data"`
			} `json:"list"`
		}{}
		job.Data.Relationships.List.Data = resourceID{Type: "list", ID: d.listID}
	}
	body, err := json.Marshal(job)
	if err != nil {
		return nil, false, fmt.Errorf("klaviyo: encode request: %w", err)
	}
	req, err := d.request(ctx, http.MethodPost, d.base+"/api/profile-subscription-bulk-delete-jobs", body)
	if err != nil {
		return nil, false, err
	}
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		err = fmt.Errorf("klaviyo: %w%s", err, errorCodes(resp))
		if resp != nil && resp.Status == http.StatusBadRequest {
			if len(addrs) > 1 {
				return nil, true, nil
			}
			return results(ids[connectors.AddrKey(addrs[0])], err, connectors.Redact(err.Error(), d.key)), false, nil
		}
		return nil, false, err
	}
	scope := "all email marketing"
	if d.listID != "" {
		scope += ", removed from list " + d.listID
	}
	receipt := connectors.Redact(fmt.Sprintf("klaviyo: unsubscribe job accepted (HTTP %d; %s)", resp.Status, scope), d.key)
	var out []connectors.Result
	for _, a := range addrs {
		out = append(out, results(ids[connectors.AddrKey(a)], nil, receipt)...)
	}
	return out, false, nil
}

func results(ids []int64, err error, receipt string) []connectors.Result {
	out := make([]connectors.Result, 0, len(ids))
	for _, id := range ids {
		out = append(out, connectors.Result{ID: id, Err: err, Receipt: receipt})
	}
	return out
}

// Answer is the part of a Klaviyo JSON:API answer the destination reads:
// the profiles of GET /api/profiles and the errors of an error body.
type Answer struct {
	Data []struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Attributes struct {
			Email         string `json:"email"`
			Subscriptions *struct {
				Email *struct {
					Marketing *struct {
						Consent                  string `json:"consent"`
						CanReceiveEmailMarketing *bool  `json:"can_receive_email_marketing"`
					} `json:"marketing"`
				} `json:"email"`
			} `json:"subscriptions"`
		} `json:"attributes"`
	} `json:"data"`
	Errors []APIError `json:"errors"`
}

// APIError is one JSON:API error object of a Klaviyo error body.
type APIError struct {
	Status any    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// ParseAnswer reads a Klaviyo JSON:API answer. It never panics; a body that
// is not a JSON object of that shape is an error.
func ParseAnswer(body []byte) (Answer, error) {
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Answer{}, fmt.Errorf("klaviyo: unreadable answer: %w", err)
	}
	return a, nil
}

// errorCodes renders the JSON:API error codes of resp (" [throttled]"),
// or "" (callers branch on codes, never on wording).
func errorCodes(resp *connectors.Response) string {
	if resp == nil {
		return ""
	}
	a, err := ParseAnswer(resp.Body)
	if err != nil || len(a.Errors) == 0 {
		return ""
	}
	var codes []string
	for _, e := range a.Errors {
		if e.Code != "" && len(codes) < 5 {
			codes = append(codes, e.Code)
		}
	}
	if len(codes) == 0 {
		return ""
	}
	return " [" + strings.Join(codes, ",") + "]"
}

// consentOf returns the email marketing consent of the first profile whose
// email matches addr (by connectors.AddrKey), and whether one was found.
func consentOf(a Answer, addr string) (string, bool) {
	for _, p := range a.Data {
		if connectors.AddrKey(p.Attributes.Email) != connectors.AddrKey(addr) {
			continue
		}
		s := p.Attributes.Subscriptions
		if s == nil || s.Email == nil || s.Email.Marketing == nil {
			return "", true
		}
		return s.Email.Marketing.Consent, true
	}
	return "", false
}

// Check reads each distinct address's profile back (one GET per address,
// at most connectors.InFlight at once) with its subscriptions.
// Suppressed: email marketing consent reads UNSUBSCRIBED. Unknown: no
// profile (yet), a suppression Push would refuse, or another consent
// within SettleTime of the suppression's SentAt (a job Klaviyo has not run
// yet; receipt "not yet applied"). Otherwise not suppressed (drift; a zero
// SentAt takes the answer as final). A batch over MaxProfiles is refused
// (ErrPermanent) without a call. Errors follow Push's conventions (the
// first whole-call failure ends Check, with no Status); Check changes
// nothing at Klaviyo.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	if len(batch) > MaxProfiles {
		return nil, connectors.Permanent("klaviyo: check of %d suppressions, at most %d per call", len(batch), MaxProfiles)
	}
	todo, refused := connectors.EmailOnly("klaviyo", batch, acceptable)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: connectors.Redact(r.Err.Error(), d.key)})
	}
	byID := make(map[int64]connectors.Suppression, len(todo))
	for _, s := range todo {
		byID[s.ID] = s
	}
	now := d.clock()
	read, err := connectors.CheckByAddress(ctx, todo, func(ctx context.Context, a string) (connectors.Status, error) {
		q := url.Values{}
		q.Set("filter", `equals(email,"`+a+`")`)
		q.Set("additional-fields[profile]", "subscriptions")
		req, err := d.request(ctx, http.MethodGet, d.base+"/api/profiles?"+q.Encode(), nil)
		if err != nil {
			return connectors.Status{}, err
		}
		resp, err := connectors.Do(d.http, req, d.key)
		if err != nil {
			return connectors.Status{}, fmt.Errorf("klaviyo: %w%s", err, errorCodes(resp))
		}
		var st connectors.Status
		ans, perr := ParseAnswer(resp.Body)
		c, found := consentOf(ans, a)
		switch {
		case perr != nil:
			st.Unknown, st.Receipt = true, "klaviyo: unreadable answer: "+resp.Snippet(d.key)
		case !found:
			st.Unknown, st.Receipt = true, "klaviyo: no profile found (yet)"
		case c == ConsentUnsubscribed:
			st.Suppressed, st.Receipt = true, "klaviyo: email marketing consent UNSUBSCRIBED"
		case c == "":
			st.Unknown, st.Receipt = true, "klaviyo: profile without email marketing consent in the answer"
		default:
			st.Receipt = "klaviyo: email marketing consent " + c
		}
		st.Receipt = connectors.Redact(st.Receipt, d.key)
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	for _, st := range read {
		// Another consent read within SettleTime of the push is a job
		// Klaviyo has not run yet, not drift.
		if !st.Suppressed && !st.Unknown && connectors.Settling(byID[st.ID], now, SettleTime) {
			st.Unknown = true
			st.Receipt = st.Receipt + ": not yet applied (the unsubscribe job is asynchronous)"
		}
		out = append(out, st)
	}
	return out, nil
}

func (d *Destination) clock() time.Time {
	if d.now != nil {
		return d.now()
	}
	return time.Now()
}

// Lift refuses every suppression without a call: each Result wraps
// connectors.ErrLiftRefused (final, like Mailchimp's), and Lift never
// returns an error.
//
// Klaviyo's bulk subscribe job (POST /api/profile-subscription-bulk-create-jobs,
// https://developers.klaviyo.com/en/reference/bulk_subscribe_profiles)
// would lift an UNSUBSCRIBE suppression, but it makes Klaviyo record that
// the person gave Klaviyo marketing consent by API, and on a double
// opt-in list it mails a confirmation instead: the new opt-in we hold was
// not given to Klaviyo. Fail closed: the person re-subscribes through
// Klaviyo's own signup form or preference page, which records Klaviyo's
// own consent evidence.
func (d *Destination) Lift(_ context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	out := make([]connectors.Result, 0, len(batch))
	for _, s := range batch {
		err := fmt.Errorf("klaviyo: %w: an unsubscribed profile must re-subscribe through Klaviyo's own signup form or preference page", connectors.ErrLiftRefused)
		out = append(out, connectors.Result{ID: s.ID, Err: err, Receipt: connectors.Redact(err.Error(), d.key)})
	}
	return out, nil
}
