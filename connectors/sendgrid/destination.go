package sendgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// DefaultBaseURL is SendGrid's global API host (EU regional subusers use
// https://api.eu.sendgrid.com: set base_url).
const DefaultBaseURL = "https://api.sendgrid.com"

// MaxRecipients is how many addresses one call carries. SendGrid documents
// no limit for POST /v3/asm/suppressions/global; 1000 keeps a request body
// well under 100 KB and matches the largest page size of SendGrid's own
// suppression listings, so it is a safe choice rather than a documented one.
const MaxRecipients = 1000

var _ connectors.Destination = (*Destination)(nil)

// Destination adds addresses to an account's global suppressions (the
// "Unsubscribe From All Emails" list).
//
// Call: POST {base_url}/v3/asm/suppressions/global with
// {"recipient_emails": [...]}, "Authorization: Bearer KEY" and, when
// the on_behalf_of option is set, "on-behalf-of" (subuser name or "account-id N").
// A 201 {"recipient_emails": [...]} means every address is suppressed;
// adding an address that is already suppressed is accepted too, so the call
// is idempotent.
//
// Answers: 4xx other than 408/409/429 are permanent for the whole call; 429
// (with X-RateLimit-Reset, epoch seconds) and 5xx are transient and come
// back as *connectors.RetryAfterError when SendGrid names a wait
// (connectors.Do). Addresses consent.NormalizeEmail refuses are not sent:
// they get a permanent Result, so that one bad address cannot make SendGrid
// refuse the whole call.
//
// Errors and receipts never contain the API key.
type Destination struct {
	name       string
	key        string
	onBehalfOf string
	base       string
	http       *retryablehttp.Client
	// groups maps an unsubscribe group id to a purpose (List).
	groups map[string]string
}

// NewDestination builds a SendGrid destination. cfg.APIKey is required;
// cfg.BaseURL defaults to DefaultBaseURL. Its client is
// deps.HTTPClient(cfg.Timeout): cfg.Timeout bounds each attempt, and a
// timed-out attempt is not retried in place (connectors.NewHTTPClient).
func NewDestination(cfg config.Destination, deps connectors.Deps) (*Destination, error) {
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("api_key: is required")
	}
	base, err := connectors.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, err
	}
	client := deps.HTTPClient(cfg.Timeout)
	o := config.OptionsOf[Options](cfg.Options)
	for id, p := range o.Groups {
		if _, err := consent.ParsePurpose(p); err != nil {
			return nil, fmt.Errorf("groups[%s]: %w", id, err)
		}
	}
	return &Destination{name: cfg.Name, key: cfg.APIKey, onBehalfOf: o.OnBehalfOf, base: base, http: client, groups: o.Groups}, nil
}

// MaxBatch is MaxRecipients.
func (d *Destination) MaxBatch() int { return MaxRecipients }

type suppressionBody struct {
	RecipientEmails []string `json:"recipient_emails"`
}

// Push suppresses batch's addresses globally, in calls of at most
// MaxRecipients distinct addresses. Suppressions without a usable email
// address, or on a channel other than email, get a permanent Result without
// a call. See Destination for how answers are classified.
func (d *Destination) Push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	todo, results := connectors.EmailOnly("sendgrid", batch, func(s connectors.Suppression) error {
		if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
			return connectors.Permanent("sendgrid: not an email address SendGrid accepts")
		}
		return nil
	})
	res, err := connectors.PushByAddress(ctx, todo, MaxRecipients, d.push)
	if err != nil {
		return nil, err
	}
	return append(results, res...), nil
}

func (d *Destination) push(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	var body suppressionBody
	body.RecipientEmails, _ = connectors.GroupByAddress(batch)
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: encode request: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, d.base+"/v3/asm/suppressions/global", payload)
	if err != nil {
		return nil, connectors.Permanent("sendgrid: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	req.Header.Set("Authorization", "Bearer "+d.key)
	if d.onBehalfOf != "" {
		req.Header.Set("on-behalf-of", d.onBehalfOf)
	}
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: %w", err)
	}
	var ans suppressionBody
	echoed := map[string]bool{}
	if json.Unmarshal(resp.Body, &ans) == nil {
		for _, e := range ans.RecipientEmails {
			echoed[connectors.AddrKey(e)] = true
		}
	}
	out := make([]connectors.Result, 0, len(batch))
	for _, s := range batch {
		how := "accepted"
		if echoed[connectors.AddrKey(s.Email)] {
			how = "listed in the answer"
		}
		out = append(out, connectors.Result{
			ID:      s.ID,
			Receipt: connectors.Redact(fmt.Sprintf("sendgrid: global suppression, HTTP %d, %s", resp.Status, how), d.key),
		})
	}
	return out, nil
}
