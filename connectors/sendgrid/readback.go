package sendgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

var (
	_ connectors.Checker = (*Destination)(nil)
	_ connectors.Lifter  = (*Destination)(nil)
)

// Check reads back, for each distinct address of batch (at most
// MaxRecipients suppressions), whether it is globally suppressed:
//
//	GET {base_url}/v3/asm/suppressions/global/{email}
//
// (https://www.twilio.com/docs/sendgrid/api-reference/suppressions-global-suppressions/retrieve-a-global-suppression).
// 200 {"recipient_email": e} naming the address means Suppressed; 200 {}
// or 404 means not suppressed (drifted, if it was pushed); a 200 that is
// not such an object, or a 400 for that address, is Unknown. One call per
// address, at most connectors.InFlight at once; the first whole-call failure
// (429 after connectors.Do's in-place retries, 5xx, 401/403) ends Check
// and is returned as is (*connectors.RetryAfterError with SendGrid's
// X-RateLimit-Reset, transient, or wrapping connectors.ErrPermanent), with
// no Status. A suppression without a usable address, or on another channel
// than email, is Unknown without a call. A batch over MaxRecipients is
// refused (ErrPermanent) without a call. Check changes nothing at SendGrid.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	if len(batch) > MaxRecipients {
		return nil, connectors.Permanent("sendgrid: check of %d suppressions, at most %d per call", len(batch), MaxRecipients)
	}
	todo, refused := d.usable(batch)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: connectors.Redact(r.Err.Error(), d.key)})
	}
	read, err := connectors.CheckByAddress(ctx, todo, func(ctx context.Context, a string) (connectors.Status, error) {
		resp, err := d.call(ctx, http.MethodGet, a)
		st := connectors.Status{}
		switch {
		case err == nil:
			suppressed, ok := ParseSuppression(resp.Body, a)
			st.Suppressed, st.Unknown = suppressed, !ok
			what := "not suppressed"
			switch {
			case !ok:
				what = "unreadable answer: " + resp.Snippet(d.key)
			case suppressed:
				what = "suppressed"
			}
			st.Receipt = fmt.Sprintf("sendgrid: global suppression: %s (HTTP %d)", what, resp.Status)
		case resp != nil && resp.Status == http.StatusNotFound:
			st.Receipt = "sendgrid: global suppression: not suppressed (HTTP 404)"
		case itemStatus(resp):
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
	return append(out, read...), nil
}

// Lift removes each distinct address of batch (at most MaxRecipients
// suppressions) from the global suppressions, after a new opt-in:
//
//	DELETE {base_url}/v3/asm/suppressions/global/{email}
//
// (https://www.twilio.com/docs/sendgrid/api-reference/suppressions-global-suppressions/delete-a-global-suppression).
// SendGrid answers 204 whether or not the address was suppressed, so Lift
// is safe to repeat; a 404 counts as lifted too. A 400 for one address is
// that address's Result (wrapping connectors.ErrPermanent). One call per
// address, at most connectors.InFlight at once; the first whole-call
// failure ends Lift and is returned as Push's are, with no Result. SendGrid never refuses a lift:
// no Result wraps connectors.ErrLiftRefused. A suppression without a usable
// address, or on another channel than email, gets a permanent Result
// without a call.
func (d *Destination) Lift(ctx context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	if len(batch) > MaxRecipients {
		return nil, connectors.Permanent("sendgrid: lift of %d suppressions, at most %d per call", len(batch), MaxRecipients)
	}
	todo, out := d.usable(batch)
	lifted, err := connectors.LiftByAddress(ctx, todo, func(ctx context.Context, a string) (connectors.Result, error) {
		resp, err := d.call(ctx, http.MethodDelete, a)
		r := connectors.Result{}
		switch {
		case err == nil:
			r.Receipt = fmt.Sprintf("sendgrid: global suppression lifted (HTTP %d)", resp.Status)
		case resp != nil && resp.Status == http.StatusNotFound:
			r.Receipt = "sendgrid: global suppression lifted (HTTP 404: not suppressed)"
		case itemStatus(resp):
			r.Err, r.Receipt = err, err.Error()
		default:
			return r, err
		}
		r.Receipt = connectors.Redact(r.Receipt, d.key)
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return append(out, lifted...), nil
}

// usable splits batch as Push does: the suppressions with an address
// SendGrid accepts, and a permanent Result for each of the others.
func (d *Destination) usable(batch []connectors.Suppression) ([]connectors.Suppression, []connectors.Result) {
	return connectors.EmailOnly("sendgrid", batch, func(s connectors.Suppression) error {
		if _, _, err := consent.NormalizeEmail(s.Email); err != nil {
			return connectors.Permanent("sendgrid: not an email address SendGrid accepts")
		}
		return nil
	})
}

// itemStatus reports whether a failed answer concerns the one address
// asked about (400, 422) rather than the whole account.
func itemStatus(resp *connectors.Response) bool {
	return resp != nil && (resp.Status == http.StatusBadRequest || resp.Status == http.StatusUnprocessableEntity)
}

// call makes one GET or DELETE of /v3/asm/suppressions/global/{email}.
// Its error names the method, the path with the address masked
// (connectors.Redact) and the status, never the key.
func (d *Destination) call(ctx context.Context, method, email string) (*connectors.Response, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, method, d.base+"/v3/asm/suppressions/global/"+url.PathEscape(email), nil)
	if err != nil {
		return nil, connectors.Permanent("sendgrid: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	req.Header.Set("Authorization", "Bearer "+d.key)
	if d.onBehalfOf != "" {
		req.Header.Set("on-behalf-of", d.onBehalfOf)
	}
	resp, err := connectors.Do(d.http, req, d.key)
	if err != nil {
		return resp, fmt.Errorf("sendgrid: %w", err)
	}
	return resp, nil
}

// ParseSuppression reads a 200 answer of GET
// /v3/asm/suppressions/global/{email}: suppressed is true when the body is
// {"recipient_email": e} with e the asked address (any case); ok is false
// when the body is not a JSON object, or names another address. It never
// panics.
func ParseSuppression(body []byte, email string) (suppressed, ok bool) {
	var ans map[string]json.RawMessage
	if err := json.Unmarshal(body, &ans); err != nil || ans == nil {
		return false, false
	}
	raw, has := ans["recipient_email"]
	if !has {
		return false, true
	}
	var got string
	if err := json.Unmarshal(raw, &got); err != nil {
		return false, false
	}
	if got == "" {
		return false, true
	}
	if connectors.AddrKey(got) != connectors.AddrKey(email) {
		return false, false
	}
	return true, true
}
