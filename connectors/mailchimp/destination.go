package mailchimp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

// MaxMembers is how many members one batch call carries at most (Mailchimp's
// documented limit for POST /3.0/lists/{list_id}).
const MaxMembers = 500

// Errors a per-member Result wraps besides connectors.ErrPermanent, so that
// callers can tell a member only Mailchimp's hosted form can change; nothing
// flags the subject yet (docs/rules.md, "Withdrawal").
var (
	// ErrComplianceState: Mailchimp keeps the member in a compliance state
	// ("Member In Compliance State") and refuses API changes to it.
	ErrComplianceState = errors.New("mailchimp: member in compliance state")
	// ErrForgotten: the address was permanently deleted (GDPR "forget") and
	// cannot be re-added by API ("Forgotten Email Not Subscribed").
	ErrForgotten = errors.New("mailchimp: forgotten email")
)

var _ connectors.Destination = (*Destination)(nil)

// Destination unsubscribes members of one Mailchimp audience (list).
//
// Call: POST {base_url}/3.0/lists/{list_id} with
//
//	{"members": [{"email_address": e, "status": "unsubscribed",
//	  "status_if_new": "unsubscribed"}], "update_existing": true}
//
// (at most 500 members), basic auth with any user name and the API key as
// password (https://mailchimp.com/developer/marketing/api/list-members/
// "Batch subscribe or unsubscribe"). Unknown addresses are created as
// unsubscribed, so the suppression holds even if the address is imported
// later; repeating the call changes nothing (idempotent).
//
// Answers: 200 {new_members, updated_members, errors[{email_address, error,
// error_code}]}: each error is that member's Result, wrapping
// connectors.ErrPermanent (and ErrComplianceState or ErrForgotten where it
// applies): these are never retried. Every other member is sent. A whole-call
// 4xx other than 408/409/429 is permanent; 429 and 5xx are transient
// (connectors.Do, with Retry-After when given). Mailchimp sometimes throttles
// with 403: a 403 whose problem-detail title is "Too Many Requests" is
// transient, any other 403 permanent.
//
// Errors and receipts never contain the API key, and per-member errors do
// not repeat the address.
type Destination struct {
	name   string
	listID string
	key    string
	base   string
	http   *retryablehttp.Client
}

var dcRE = regexp.MustCompile(`^[a-z]{2,}[0-9]+$`)

// NewDestination builds a Mailchimp destination. cfg.APIKey and the list_id option
// are required. When cfg.BaseURL is empty it is https://<dc>.api.mailchimp.com
// where dc is the key's suffix after the last "-" ("…-us21" → us21); a key
// without one is refused then. Its client is
// deps.HTTPClient(cfg.Timeout): cfg.Timeout bounds each attempt, and a
// timed-out attempt is not retried in place (connectors.NewHTTPClient). Errors name the config key and
// never contain the key's value.
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("api_key: is required")
	}
	listID := config.OptionsOf[Options](cfg.Options).ListID
	if listID == "" {
		return nil, fmt.Errorf("list_id: is required (the audience to update)")
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		i := strings.LastIndexByte(cfg.APIKey, '-')
		dc := ""
		if i >= 0 {
			dc = cfg.APIKey[i+1:]
		}
		if !dcRE.MatchString(dc) {
			return nil, fmt.Errorf("api_key: has no datacenter suffix (a Mailchimp key ends in \"-us21\" or similar); fix the key or set base_url")
		}
		base = "https://" + dc + ".api.mailchimp.com"
	} else if !connectors.IsHTTPURL(base) {
		return nil, fmt.Errorf("base_url: must be an http:// or https:// URL")
	}
	client := deps.HTTPClient(cfg.Timeout)
	return &Destination{name: cfg.Name, listID: listID, key: cfg.APIKey, base: base, http: client}, nil
}

// MaxBatch is MaxMembers.
func (d *Destination) MaxBatch() int { return MaxMembers }

type member struct {
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
	StatusIfNew  string `json:"status_if_new"`
}

type batchRequest struct {
	Members        []member `json:"members"`
	UpdateExisting bool     `json:"update_existing"`
}

type batchAnswer struct {
	NewMembers     []answerMember `json:"new_members"`
	UpdatedMembers []answerMember `json:"updated_members"`
	Errors         []answerError  `json:"errors"`
}

type answerMember struct {
	EmailAddress string `json:"email_address"`
	Status       string `json:"status"`
}

type answerError struct {
	EmailAddress string `json:"email_address"`
	Error        string `json:"error"`
	ErrorCode    string `json:"error_code"`
}

// problem is Mailchimp's error body (RFC 7807 problem detail).
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// Push unsubscribes batch's addresses. Batches over MaxMembers are sent in
// several calls. A suppression without an email address, or on a channel
// other than email, gets a permanent Result without a call. See Destination
// for how answers are classified.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := connectors.EmailOnly("mailchimp", batch, nil)
	res, err := connectors.PushByAddress(ctx, todo, MaxMembers, d.push)
	if err != nil {
		return nil, err
	}
	return append(results, res...), nil
}

// push makes one call for at most MaxMembers distinct addresses.
func (d *Destination) push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	req := batchRequest{UpdateExisting: true}
	addrs, index := connectors.GroupByAddress(batch) // index: address key → outbox ids
	for _, a := range addrs {
		req.Members = append(req.Members, member{EmailAddress: a, Status: "unsubscribed", StatusIfNew: "unsubscribed"})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("mailchimp: encode request: %w", err)
	}
	endpoint := d.base + "/3.0/lists/" + url.PathEscape(d.listID)
	hreq, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, endpoint, body)
	if err != nil {
		return nil, connectors.Permanent("mailchimp: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "consentsync")
	hreq.SetBasicAuth("consentsync", d.key)

	resp, err := connectors.Do(d.http, hreq, d.key)
	if err != nil {
		if resp != nil && resp.Status == http.StatusForbidden && throttled(resp.Body) {
			// Transient: no ErrPermanent in the chain.
			return nil, fmt.Errorf("mailchimp: POST %s: HTTP 403 Too Many Requests (throttled): %s", hreq.URL.Path, resp.Snippet(d.key))
		}
		return nil, fmt.Errorf("mailchimp: %w", err)
	}
	var ans batchAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		// The call may have worked; repeating it is harmless.
		return nil, fmt.Errorf("mailchimp: POST %s: HTTP %d with an unreadable answer: %s", hreq.URL.Path, resp.Status, resp.Snippet(d.key))
	}

	failed := map[string]error{}
	for _, e := range ans.Errors {
		k := connectors.AddrKey(e.EmailAddress)
		if _, ok := index[k]; !ok && len(index) == 1 && e.EmailAddress == "" {
			for only := range index {
				k = only
			}
		}
		if _, ok := index[k]; ok {
			if _, dup := failed[k]; !dup {
				failed[k] = memberError(e, d.key)
			}
		}
	}
	kind := map[string]string{}
	for _, m := range ans.NewMembers {
		kind[connectors.AddrKey(m.EmailAddress)] = "new member"
	}
	for _, m := range ans.UpdatedMembers {
		kind[connectors.AddrKey(m.EmailAddress)] = "updated"
	}

	var out []connectors.Result
	for _, m := range req.Members {
		k := connectors.AddrKey(m.EmailAddress)
		for _, id := range index[k] {
			if err := failed[k]; err != nil {
				out = append(out, connectors.Result{ID: id, Err: err, Receipt: connectors.Redact(err.Error(), d.key)})
				continue
			}
			how := kind[k]
			if how == "" {
				how = "already unsubscribed"
			}
			out = append(out, connectors.Result{ID: id, Receipt: connectors.Redact(fmt.Sprintf("mailchimp list %s: unsubscribed (%s)", d.listID, how), d.key)})
		}
	}
	return out, nil
}

// memberError turns one entry of the answer's errors into a permanent
// error, without the address and without the key.
func memberError(e answerError, key string) error {
	msg := e.Error
	if e.EmailAddress != "" {
		msg = replaceFold(msg, e.EmailAddress, "<address>")
	}
	code := e.ErrorCode
	if code == "" {
		code = "ERROR"
	}
	what := fmt.Sprintf("mailchimp: member refused: %s: %s", code, msg)
	what = connectors.Redact(what, key)
	low := strings.ToLower(e.ErrorCode + " " + e.Error)
	switch {
	case strings.Contains(low, "compliance state") || strings.Contains(low, "compliance_state"):
		return fmt.Errorf("%w: %w: %s", connectors.ErrPermanent, ErrComplianceState, what)
	case strings.Contains(low, "forgotten email") || strings.Contains(low, "forgotten_email"):
		return fmt.Errorf("%w: %w: %s", connectors.ErrPermanent, ErrForgotten, what)
	}
	return fmt.Errorf("%w: %s", connectors.ErrPermanent, what)
}

// throttled reports whether a 403 body is Mailchimp's throttling problem
// ("title": "Too Many Requests").
func throttled(body []byte) bool {
	var p problem
	if json.Unmarshal(body, &p) != nil {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(p.Title), "Too Many Requests")
}

// replaceFold replaces every case-insensitive occurrence of old in s.
func replaceFold(s, old, repl string) string {
	if old == "" {
		return s
	}
	ls, lo := strings.ToLower(s), strings.ToLower(old)
	if len(ls) != len(s) || len(lo) != len(old) {
		return strings.ReplaceAll(s, old, repl)
	}
	var b strings.Builder
	for {
		i := strings.Index(ls, lo)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, ls = s[i+len(old):], ls[i+len(old):]
	}
}
