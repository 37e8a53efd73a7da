package mailgun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind of Mailgun sources and destinations.
const Kind = "mailgun"

// DefaultBaseURL is Mailgun's US API host. Domains in Mailgun's EU region
// are served by EUBaseURL only: set base_url to it.
// (https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/unsubscribe, "Servers").
const (
	DefaultBaseURL = "https://api.mailgun.net"
	EUBaseURL      = "https://api.eu.mailgun.net"
)

// MaxRecords is how many unsubscribe records one call carries: Mailgun's
// documented limit for a JSON POST /v3/{domain}/unsubscribes
// (https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/unsubscribe/post-v3--domainid--unsubscribes).
const MaxRecords = 1000

// AllTags is the tag that unsubscribes an address from all mail of the
// domain.
const AllTags = "*"

// DestinationOptions are a Mailgun destination's own keys.
type DestinationOptions struct {
	// Domain is the sending domain whose unsubscribes table is written
	// ("mg.example.com"; required). Mailgun keeps one table per domain.
	Domain string `yaml:"domain"`
	// Tag is the tag the address is unsubscribed from (default "*": all
	// mail of the domain).
	Tag string `yaml:"tag"`
}

// Defaults sets Tag to "*".
func (o *DestinationOptions) Defaults() {
	if o.Tag == "" {
		o.Tag = AllTags
	}
}

// Validate requires a domain (a host name: no scheme, slash or space) and a
// tag without a slash.
func (o *DestinationOptions) Validate(_ bool, bad func(key, format string, args ...any)) {
	switch {
	case o.Domain == "":
		bad("domain", "is required (the Mailgun sending domain, e.g. mg.example.com)")
	case strings.ContainsAny(o.Domain, "/:?#@ \t") || strings.Trim(o.Domain, ".") != o.Domain:
		bad("domain", "must be a bare domain name such as mg.example.com, not %q", o.Domain)
	}
	if strings.ContainsAny(o.Tag, "/?#") || strings.TrimSpace(o.Tag) != o.Tag {
		bad("tag", "must be a Mailgun tag or \"*\", not %q", o.Tag)
	}
}

var (
	_ connectors.Destination = (*Destination)(nil)
	_ connectors.Checker     = (*Destination)(nil)
	_ connectors.Lifter      = (*Destination)(nil)
)

// Destination writes one Mailgun sending domain's unsubscribes table.
//
// Push: POST {base_url}/v3/{domain}/unsubscribes with
// Content-Type application/json and the body
//
//	[{"address": "a@example.com", "tags": ["*"]}, ...]
//
// (at most MaxRecords), basic auth "api":KEY. 200 {"message": "..."} means
// every address is in the table; adding an address already there is
// accepted, so the call is idempotent. Mailgun refuses the whole call
// with 400 when one record is bad: Push then halves the call's records
// until the bad one is alone (connectors.Bisect: about 2·log2(n) more
// calls per bad record), so that only the bad one fails (permanently).
// When the Push's time runs out midway, the records already answered keep
// their Results and the others get transient ones (retried later).
//
// Check: GET {base_url}/v3/{domain}/unsubscribes/{address}: 200 with the
// record → suppressed when its tags hold the configured tag or "*"; 404 →
// not suppressed.
//
// Lift: DELETE {base_url}/v3/{domain}/unsubscribes/{address} (with
// ?tag=T when the tag is not "*"); 200, or 404 (nothing to lift), is a
// success. Mailgun refuses no lift.
//
// Answers: 4xx other than 408/409/429 are permanent; 429 and 5xx are
// transient, a *connectors.RetryAfterError when Mailgun names a wait
// (Retry-After; https://documentation.mailgun.com/docs/mailgun/quickstart-guide/responses
// documents the 429 without naming its headers: (U)). Errors and receipts
// never contain the API key, and addresses an error body repeats are
// masked.
type Destination struct {
	name   string
	domain string
	tag    string
	key    string
	base   string
	http   *retryablehttp.Client
}

// NewDestination builds a Mailgun destination. cfg.APIKey and the domain
// option are required; the tag option defaults to "*"; cfg.BaseURL
// defaults to DefaultBaseURL (EU domains: EUBaseURL). Its client is
// deps.HTTPClient(cfg.Timeout). Errors name the config key and never
// contain the key's value.
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("api_key: is required")
	}
	o, err := connectors.DestinationOptions[DestinationOptions](cfg.Options)
	if err != nil {
		return nil, err
	}
	base, err := connectors.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, err
	}
	return &Destination{name: cfg.Name, domain: o.Domain, tag: o.Tag, key: cfg.APIKey, base: base, http: deps.HTTPClient(cfg.Timeout)}, nil
}

// MaxBatch is MaxRecords.
func (d *Destination) MaxBatch() int { return MaxRecords }

type unsubscribeRecord struct {
	Address string   `json:"address"`
	Tags    []string `json:"tags"`
}

// acceptable reports whether an address is worth sending: what
// consent.NormalizeEmail accepts.
func acceptable(s connectors.Suppression) error {
	if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
		return connectors.Permanent("mailgun: not an email address Mailgun accepts")
	}
	return nil
}

// Push adds batch's addresses to the domain's unsubscribes table, in calls
// of at most MaxRecords distinct addresses. Suppressions without a usable
// email address, or on a channel other than email, get a permanent Result
// without a call. See Destination for how answers are classified.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := connectors.EmailOnly("mailgun", batch, acceptable)
	res, err := connectors.PushByAddress(ctx, todo, MaxRecords, d.push)
	if err != nil {
		return nil, err
	}
	return append(results, res...), nil
}

func (d *Destination) endpoint(addr string) string {
	u := d.base + "/v3/" + url.PathEscape(d.domain) + "/unsubscribes"
	if addr != "" {
		u += "/" + url.PathEscape(addr)
	}
	return u
}

func (d *Destination) request(ctx context.Context, method, u string, body []byte) (*retryablehttp.Request, error) {
	var raw any
	if body != nil {
		raw = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u, raw)
	if err != nil {
		return nil, connectors.Permanent("mailgun: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	req.SetBasicAuth("api", d.key)
	return req, nil
}

// push sends at most MaxRecords distinct addresses; when Mailgun refuses
// the whole call (400) for several addresses, it halves them until each
// refused address is alone (connectors.Bisect).
func (d *Destination) push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	addrs, ids := connectors.GroupByAddress(batch)
	return connectors.Bisect(ctx, addrs, ids, func(ctx context.Context, addrs []string) ([]connectors.Result, bool, error) {
		return d.post(ctx, addrs, ids)
	})
}

// post makes one call for addrs. A 400 for several addresses asks
// connectors.Bisect to split them; a 400 for one is that address's
// permanent Result.
func (d *Destination) post(ctx context.Context, addrs []string, ids map[string][]int64) ([]connectors.Result, bool, error) {
	recs := make([]unsubscribeRecord, 0, len(addrs))
	for _, a := range addrs {
		recs = append(recs, unsubscribeRecord{Address: a, Tags: []string{d.tag}})
	}
	body, err := json.Marshal(recs)
	if err != nil {
		return nil, false, fmt.Errorf("mailgun: encode request: %w", err)
	}
	req, err := d.request(ctx, http.MethodPost, d.endpoint(""), body)
	if err != nil {
		return nil, false, err
	}
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		if resp != nil && resp.Status == http.StatusBadRequest {
			if len(addrs) > 1 {
				return nil, true, nil
			}
			// One record refused: that item fails, not the call.
			e := fmt.Errorf("mailgun: %w", err)
			return results(ids[connectors.AddrKey(addrs[0])], e, connectors.Redact(e.Error(), d.key)), false, nil
		}
		return nil, false, fmt.Errorf("mailgun: %w", err)
	}
	receipt := connectors.Redact(fmt.Sprintf("mailgun domain %s: unsubscribed (tag %s), HTTP %d: %s", d.domain, d.tag, resp.Status, message(resp.Body)), d.key)
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

// Answer is the part of a Mailgun answer the destination reads: the
// message of a POST, DELETE or error body, and the record of a GET
// /v3/{domain}/unsubscribes/{address}.
type Answer struct {
	Message   string   `json:"message"`
	Address   string   `json:"address"`
	Tags      []string `json:"tags"`
	Tag       string   `json:"tag"`
	CreatedAt string   `json:"created_at"`
}

// ParseAnswer reads a Mailgun JSON answer. It never panics; a body that is
// not a JSON object is an error.
func ParseAnswer(body []byte) (Answer, error) {
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Answer{}, fmt.Errorf("mailgun: unreadable answer: %w", err)
	}
	return a, nil
}

// message returns the answer's message, or "" when it has none.
func message(body []byte) string {
	a, _ := ParseAnswer(body)
	return a.Message
}

// absent reports whether resp is Mailgun's 404 for an address missing
// from the unsubscribes table: a 404 with a JSON message that is not about
// the domain ("Domain not found: ..." is a configuration error, and a 404
// without a JSON body a wrong path; both stay errors).
func absent(resp *connectors.Response) bool {
	if resp == nil || resp.Status != http.StatusNotFound {
		return false
	}
	m := strings.ToLower(message(resp.Body))
	return m != "" && !strings.Contains(m, "domain")
}

// covers reports whether a record's tags suppress tag: the record holds it
// or "*".
func covers(a Answer, tag string) bool {
	tags := a.Tags
	if a.Tag != "" {
		tags = append(slices.Clone(tags), a.Tag)
	}
	return slices.Contains(tags, AllTags) || slices.Contains(tags, tag)
}

// Check reads each distinct address's record back (one GET per address,
// at most connectors.InFlight at once; the first whole-call failure ends
// Check, with no Status).
// A suppression is Suppressed when the record's tags hold the configured
// tag or "*"; a 404 reads as not suppressed. Suppressions Push would refuse
// are Unknown. A batch over MaxRecords is refused (ErrPermanent) without
// a call. Errors follow Push's conventions; Check changes nothing at
// Mailgun.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	if len(batch) > MaxRecords {
		return nil, connectors.Permanent("mailgun: check of %d suppressions, at most %d per call", len(batch), MaxRecords)
	}
	todo, refused := connectors.EmailOnly("mailgun", batch, acceptable)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: connectors.Redact(r.Err.Error(), d.key)})
	}
	read, err := connectors.CheckByAddress(ctx, todo, func(ctx context.Context, a string) (connectors.Status, error) {
		req, err := d.request(ctx, http.MethodGet, d.endpoint(a), nil)
		if err != nil {
			return connectors.Status{}, err
		}
		st := connectors.Status{}
		resp, err := connectors.Do(d.http, req, d.key)
		switch {
		case err == nil:
			ans, perr := ParseAnswer(resp.Body)
			switch {
			case perr != nil:
				st.Unknown, st.Receipt = true, "mailgun: unreadable answer: "+resp.Snippet(d.key)
			case covers(ans, d.tag):
				st.Suppressed, st.Receipt = true, fmt.Sprintf("mailgun domain %s: unsubscribed (tags %s)", d.domain, strings.Join(ans.Tags, ","))
			default:
				st.Receipt = fmt.Sprintf("mailgun domain %s: unsubscribed from other tags only (%s), not %s", d.domain, strings.Join(ans.Tags, ","), d.tag)
			}
		case absent(resp):
			st.Receipt = fmt.Sprintf("mailgun domain %s: not in the unsubscribes table", d.domain)
		default:
			return st, fmt.Errorf("mailgun: %w", err)
		}
		st.Receipt = connectors.Redact(st.Receipt, d.key)
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return append(out, read...), nil
}

// Lift removes each distinct address from the unsubscribes table (only the
// configured tag when it is not "*"): one DELETE per address. A 404 means
// there was nothing to lift and is a success; at most connectors.InFlight
// DELETEs at once. Mailgun refuses no lift, so
// no Result wraps connectors.ErrLiftRefused. Errors follow Push's
// conventions.
func (d *Destination) Lift(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, out := connectors.EmailOnly("mailgun", batch, acceptable)
	lifted, err := connectors.LiftByAddress(ctx, todo, func(ctx context.Context, a string) (connectors.Result, error) {
		u := d.endpoint(a)
		if d.tag != AllTags {
			u += "?tag=" + url.QueryEscape(d.tag)
		}
		req, err := d.request(ctx, http.MethodDelete, u, nil)
		if err != nil {
			return connectors.Result{}, err
		}
		resp, err := connectors.Do(d.http, req, d.key)
		var receipt string
		switch {
		case err == nil:
			receipt = fmt.Sprintf("mailgun domain %s: unsubscribe removed (tag %s), HTTP %d", d.domain, d.tag, resp.Status)
		case absent(resp):
			receipt = fmt.Sprintf("mailgun domain %s: not in the unsubscribes table (nothing to lift)", d.domain)
		default:
			return connectors.Result{}, fmt.Errorf("mailgun: %w", err)
		}
		return connectors.Result{Receipt: connectors.Redact(receipt, d.key)}, nil
	})
	if err != nil {
		return nil, err
	}
	return append(out, lifted...), nil
}
