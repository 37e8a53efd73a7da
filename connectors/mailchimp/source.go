// Package mailchimp connects consentsync to Mailchimp Marketing: audience
// webhooks in (Source) and member unsubscribes out (Destination).
//
// Webhooks: https://mailchimp.com/developer/marketing/guides/sync-audience-data-webhooks/
// List members API: https://mailchimp.com/developer/marketing/api/list-members/
package mailchimp

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind of both the source and the destination.
const Kind = "mailchimp"

// FiredAtLayout is the layout of a webhook's fired_at ("2025-11-20 10:05:00"):
// no zone, read in the source's Timezone.
const FiredAtLayout = "2006-01-02 15:04:05"

// OptInLevel is recorded as Evidence.OptInLevel on a subscribe: Mailchimp
// fires the subscribe webhook only once a double-opt-in confirmation is
// done when the list requires one, so the opt-in level is the list's setting.
const OptInLevel = "list_setting"

var _ connectors.Source = (*Source)(nil)
var _ connectors.Prober = (*Source)(nil)

// Source verifies and parses Mailchimp audience webhooks.
//
// Authentication: Mailchimp does not sign webhooks. The URL registered with
// Mailchimp carries a secret in its query (POST /webhooks/{name}?key=SECRET);
// Verify compares it in constant time with every configured secret
// (rotation). Mailchimp validates a new webhook URL with a GET on it, which
// Probe answers (200 with a good key, 401 otherwise).
//
// Body: application/x-www-form-urlencoded with bracketed keys: type
// (subscribe, unsubscribe, profile, upemail, cleaned, campaign), fired_at
// ("YYYY-MM-DD HH:MM:SS"), data[email], data[list_id], data[reason],
// data[action] (may be missing), data[ip_opt], data[ip_signup],
// data[merges][...], data[campaign_id].
//
// Time zone assumption: fired_at carries no zone. Mailchimp does not document
// it; it is read in the source's Timezone (IANA name, default UTC) and
// converted to UTC. Set timezone to the account's zone if its webhooks show
// local times. A time that falls in a daylight-saving gap or overlap is
// resolved as time.ParseInLocation does (the first of the two instants).
//
// Meaning:
//   - unsubscribe (action "unsub", "delete" or missing; reason "manual" or
//     "abuse" = spam complaint): withdrawal of marketing on email for the
//     list's brand (lists[list_id], SourceOptions.Lists, else the source
//     brand).
//   - subscribe: grant of marketing on email for the list's brand, with
//     Evidence.ListID, Evidence.IP = data[ip_opt] (the confirmation IP) and
//     Evidence.OptInLevel = OptInLevel.
//   - cleaned: Batch.Undeliverable (hard bounce). With reason "abuse" the
//     address was cleaned after a spam complaint, which is also a withdrawal
//     (docs/rules.md: a complaint withdraws the brand's marketing).
//   - upemail, profile, campaign and unknown types: Batch.Skipped.
//
// DedupKey is the sha256 hex of (type, data[list_id], data[email], fired_at)
// as sent; Evidence.EventID carries the same value (Mailchimp has no event
// id).
type Source struct {
	name    string
	brand   string
	secrets []string
	loc     *time.Location
	lists   map[string]string
}

// NewSource builds a Mailchimp source; cfg.Options holds its SourceOptions
// (lists; none when nil). Errors name the config key: at least one
// non-empty secret, a loadable timezone, and a brand for every list.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	opts := config.OptionsOf[SourceOptions](cfg.Options)
	if err := connectors.CheckSource(cfg, ""); err != nil {
		return nil, err
	}
	tz := cfg.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("timezone: %q is not an IANA time zone", tz)
	}
	lists := make(map[string]string, len(opts.Lists))
	for id, brand := range opts.Lists {
		if brand == "" {
			return nil, fmt.Errorf("lists[%s]: brand is empty", id)
		}
		lists[id] = brand
	}
	return &Source{
		name:    cfg.Name,
		brand:   cfg.Brand,
		secrets: append([]string(nil), cfg.Secrets...),
		loc:     loc,
		lists:   lists,
	}, nil
}

// Verify checks the URL query's key against every configured secret in
// constant time. It returns an error wrapping connectors.ErrUnauthorized when
// the key is missing or matches none. now is unused: the scheme has no
// timestamp.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	keys := r.Query()["key"]
	if len(keys) == 0 || keys[0] == "" {
		return connectors.Unauthorized("mailchimp: missing key in the URL query")
	}
	got := keys[0]
	if !connectors.AnySecret(s.secrets, func(secret string) bool { return connectors.EqualToken(got, secret) }) {
		return connectors.Unauthorized("mailchimp: key does not match")
	}
	return nil
}

// Probe answers Mailchimp's validation GET on the webhook URL: 200 when the
// query's key is good, 401 otherwise.
func (s *Source) Probe(w http.ResponseWriter, r *connectors.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Verify(r, time.Time{}); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("unauthorized\n"))
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok\n"))
}

// Parse reads one webhook. It returns an error wrapping
// connectors.ErrMalformed when the body has no type, or a consent or
// cleaned event has no readable fired_at.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	form, perr := url.ParseQuery(string(r.Body))
	typ := form.Get("type")
	if typ == "" {
		if perr != nil {
			return nil, connectors.Malformed("mailchimp: body is not form-encoded")
		}
		return nil, connectors.Malformed("mailchimp: no type")
	}
	// A bad escape elsewhere in the body does not lose what could be read.
	firedAt := form.Get("fired_at")
	listID := form.Get("data[list_id]")
	email := form.Get("data[email]")
	reason := form.Get("data[reason]")

	b := &connectors.Batch{DedupKey: connectors.HashParts(typ, listID, email, firedAt)}
	// Every address the event names, whatever it means (an upemail's old
	// and new address, a profile update's): its erasure finds the request.
	for _, k := range []string{"data[email]", "data[old_email]", "data[new_email]"} {
		if v := strings.TrimSpace(form.Get(k)); v != "" {
			b.Named = append(b.Named, consent.Subject{Email: v})
		}
	}

	switch typ {
	case "unsubscribe", "subscribe", "cleaned":
	case "upemail":
		b.Skipped = append(b.Skipped, "upemail: address change, not a consent change")
		return b, nil
	case "profile":
		b.Skipped = append(b.Skipped, "profile: profile update, not a consent change")
		return b, nil
	case "campaign":
		b.Skipped = append(b.Skipped, "campaign: campaign status, not a consent change")
		return b, nil
	default:
		b.Skipped = append(b.Skipped, fmt.Sprintf("type %s: not a consent event", connectors.Quote(typ, 32)))
		return b, nil
	}

	if email == "" {
		b.Skipped = append(b.Skipped, typ+": no email")
		return b, nil
	}
	if _, _, err := consent.NormalizeEmail(email); err != nil {
		b.Skipped = append(b.Skipped, typ+": invalid email")
		return b, nil
	}
	at, ok := s.firedAt(firedAt)
	if !ok {
		return nil, connectors.Malformed("mailchimp: fired_at missing or not %q", FiredAtLayout)
	}

	brand := s.brand
	if lb, ok := s.lists[listID]; ok {
		brand = lb
	}
	sig := consent.Signal{
		Subject:    consent.Subject{Email: email},
		Channel:    consent.ChannelEmail,
		Brand:      brand,
		Purpose:    consent.PurposeMarketing,
		OccurredAt: at,
		Source:     s.name,
		Evidence: consent.Evidence{
			EventID: b.DedupKey,
			Event:   typ,
			ListID:  listID,
		},
	}
	if reason != "" {
		sig.Evidence.Event = typ + ":" + reason
	}

	switch typ {
	case "unsubscribe":
		// Any action ("unsub", "delete", missing) and any reason ("manual",
		// "abuse" = complaint) withdraws.
		sig.Status = consent.StatusWithdrawn
		b.Signals = append(b.Signals, sig)
	case "subscribe":
		sig.Status = consent.StatusGranted
		sig.Evidence.IP = form.Get("data[ip_opt]")
		sig.Evidence.OptInLevel = OptInLevel
		b.Signals = append(b.Signals, sig)
	case "cleaned":
		b.Undeliverable = append(b.Undeliverable, email)
		if strings.EqualFold(reason, "abuse") {
			sig.Status = consent.StatusWithdrawn
			b.Signals = append(b.Signals, sig)
		}
	}
	return b, nil
}

// firedAt reads fired_at in the source's zone and returns it in UTC. An
// RFC 3339 time (with its own zone) is accepted too. A time outside the
// years consent.MinYear..MaxYear is not readable.
func (s *Source) firedAt(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(FiredAtLayout, v, s.loc)
	if err != nil {
		t, err = time.Parse(time.RFC3339, v)
	}
	if err != nil {
		return time.Time{}, false
	}
	t = t.UTC()
	return t, connectors.InYearRange(t)
}
