package mailchimp

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/consentsync/consentsync/connectors"
)

var (
	_ connectors.Checker = (*Destination)(nil)
	_ connectors.Lifter  = (*Destination)(nil)
)

// SubscriberHash is Mailchimp's member id in paths: the hex MD5 of the
// lower-cased address
// (https://mailchimp.com/developer/marketing/docs/methods-parameters/).
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(connectors.AddrKey(email)))
	return hex.EncodeToString(sum[:])
}

// Check reads back, for each distinct address of batch (at most MaxMembers
// suppressions), the member's status in the list:
//
//	GET {base_url}/3.0/lists/{list_id}/members/{subscriber_hash}?fields=status
//
// ("Get member info", https://mailchimp.com/developer/marketing/api/list-members/get-member-info/;
// subscriber_hash: SubscriberHash). 200 with status "unsubscribed" or
// "cleaned" means Suppressed (Mailchimp sends neither campaigns); any other
// status ("subscribed", "pending", "transactional", "archived") means not
// suppressed; 404 means not suppressed either (the member was deleted or
// never added: Push creates unknown addresses as unsubscribed, so that is
// drift); a 200 without a status is Unknown. One call per address, at
// most connectors.InFlight at once; the first whole-call failure (429, or the 403 Mailchimp throttles with, after
// connectors.Do's in-place retries; 5xx; 401 or another 4xx) ends Check and is returned
// as Push's errors are, with no Status. A suppression without an address,
// or on another channel than email, is Unknown without a call; a batch
// over MaxMembers is refused (ErrPermanent) without a call. Check changes
// nothing at Mailchimp.
func (d *Destination) Check(ctx context.Context, batch []connectors.Suppression) ([]connectors.Status, error) {
	if len(batch) > MaxMembers {
		return nil, connectors.Permanent("mailchimp: check of %d suppressions, at most %d per call", len(batch), MaxMembers)
	}
	todo, refused := connectors.EmailOnly("mailchimp", batch, nil)
	out := make([]connectors.Status, 0, len(batch))
	for _, r := range refused {
		out = append(out, connectors.Status{ID: r.ID, Unknown: true, Receipt: connectors.Redact(r.Err.Error(), d.key)})
	}
	read, err := connectors.CheckByAddress(ctx, todo, d.check)
	if err != nil {
		return nil, err
	}
	return append(out, read...), nil
}

func (d *Destination) check(ctx context.Context, email string) (connectors.Status, error) {
	endpoint := d.base + "/3.0/lists/" + url.PathEscape(d.listID) + "/members/" + SubscriberHash(email) + "?fields=status"
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return connectors.Status{}, connectors.Permanent("mailchimp: build request: %s", connectors.Redact(err.Error(), d.key))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "consentsync")
	req.SetBasicAuth("consentsync", d.key)
	resp, err := connectors.Do(d.http, req, d.key)
	switch {
	case err == nil:
	case resp != nil && resp.Status == http.StatusNotFound:
		return connectors.Status{Receipt: fmt.Sprintf("mailchimp list %s: not a member (HTTP 404)", d.listID)}, nil
	case resp != nil && resp.Status == http.StatusForbidden && throttled(resp.Body):
		return connectors.Status{}, fmt.Errorf("mailchimp: GET %s: HTTP 403 Too Many Requests (throttled): %s", connectors.Redact(req.URL.Path, d.key), resp.Snippet(d.key))
	default:
		return connectors.Status{}, fmt.Errorf("mailchimp: %w", err)
	}
	status, ok := ParseMemberStatus(resp.Body)
	if !ok {
		return connectors.Status{Unknown: true, Receipt: connectors.Redact(fmt.Sprintf("mailchimp list %s: HTTP %d without a member status: %s", d.listID, resp.Status, resp.Snippet(d.key)), d.key)}, nil
	}
	return connectors.Status{
		Suppressed: status == "unsubscribed" || status == "cleaned",
		Receipt:    connectors.Redact(fmt.Sprintf("mailchimp list %s: member status %q (HTTP %d)", d.listID, status, resp.Status), d.key),
	}, nil
}

// ParseMemberStatus reads the status of a "Get member info" answer
// ({"status": "unsubscribed", ...}): ok is false when the body is not a
// JSON object with a non-empty string status. The status is returned
// lower-cased and trimmed. It never panics.
func ParseMemberStatus(body []byte) (status string, ok bool) {
	var m struct {
		Status *string `json:"status"`
	}
	if json.Unmarshal(body, &m) != nil || m.Status == nil {
		return "", false
	}
	s := strings.ToLower(strings.TrimSpace(*m.Status))
	return s, s != ""
}

// Lift makes no call: Mailchimp does not let an API client resubscribe a
// member who unsubscribed. Setting such a member back to "subscribed" is
// refused with 400 "Member In Compliance State" ("… is in a compliance
// state due to unsubscribe, bounce, or compliance review and cannot be
// subscribed"), and a "pending" re-subscribe only sends a confirmation
// email the person must act on
// (https://mailchimp.com/developer/marketing/docs/errors/,
// https://mailchimp.com/help/resubscribe-a-contact/). The person has to
// opt in again through the audience's own signup form. So every Result
// wraps connectors.ErrLiftRefused (final; not ErrPermanent's "retry never"
// sense of a failed call, but just as final), for every suppression of
// batch, and Lift never returns an error.
func (d *Destination) Lift(_ context.Context, batch []connectors.Suppression) ([]connectors.Result, error) {
	out := make([]connectors.Result, 0, len(batch))
	for _, s := range batch {
		err := fmt.Errorf("mailchimp list %s: %w: an unsubscribed member must re-subscribe through the audience's signup form", d.listID, connectors.ErrLiftRefused)
		out = append(out, connectors.Result{ID: s.ID, Err: err, Receipt: connectors.Redact(err.Error(), d.key)})
	}
	return out, nil
}
