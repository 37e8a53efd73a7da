// Package didomi is the inbound connector for Didomi consent webhooks (kind
// "didomi"): the consent banner's and preference centre's choices, kept in
// the ledger as cookie sub-purposes.
//
// Body (https://developers.didomi.io/integrations/generic-integrations/webhooks,
// "Payload" and "Events"): one JSON object {"type", "parameters"}:
//
//	event.created  {"parameters": {"entity": Event}}
//	user.updated   {"parameters": {"source": Event?, "old_entity": User, "new_entity": User}}
//
// An Event or a User (https://developers.didomi.io/api/consents/events,
// https://developers.didomi.io/api/consents/users) carries
//
//	{"id", "organization_id", "created_at" | "updated_at" (ISO 8601),
//	 "user": {"id", "organization_user_id"} (Event) | "organization_user_id" (User),
//	 "consents": {"purposes": [{"id", "enabled": true | false | null}],
//	              "vendors": {"enabled": ["<id>"], "disabled": ["<id>"]},
//	              "tcfcs": "<IAB TCF consent string>"},
//	 "source": {"type", "domain", "deployment_id"} (U), "regulation" (U)}
//
// The other event types (event.updated, event.deleted, user.created,
// user.deleted) are skipped, as are events of a regulation other than
// "gdpr" (Didomi warns that a non-GDPR event can overwrite GDPR consent
// when the two are not told apart) and the flattened payload option
// ("__"-joined keys: turn it off).
//
// Authentication: Didomi signs nothing. It authenticates with an OAuth 2.0
// client credentials grant against the receiver's token endpoint and sends
// "Authorization: Bearer <access token>" (same page, "Authentication"; IP
// 35.159.1.63). consentsync is that token endpoint
// (POST /webhooks/<name>/oauth/token, see IssueToken): give Didomi the
// token URL, the client_id option and a secret. Tokens are stateless HMACs
// valid TokenLifetime; Verify refuses an expired one (ErrStale).
//
// Consent meaning (docs/rules.md, "Cookies and browser signals"): each
// purpose choice of a person named by an email address
// (organization_user_id) is a signal on channel email (the channel the
// person is known by), status granted (enabled true) or withdrawn (false),
// for purpose "cookies:<purpose id>" (lower-cased; characters outside
// a-z 0-9 _ . - become '-'), unless the purposes option maps the id to
// another scope ({"newsletter": {purpose: marketing}}): only such a mapping
// can make a Didomi choice drive email suppression, and destinations
// honour only the purposes they list. Vendor choices are signals of
// purpose "cookies:vendor.<vendor id>" (option vendors, default true). A
// null choice gives no signal; a user.updated gives signals only for the
// purposes and vendors whose choice changed. Evidence: ConsentString is the
// IAB TCF consent string (tcfcs), WordingVersion the banner version
// (source.deployment_id, else the event's notice_id), Event the webhook
// type, EventID the Didomi event or user id, PageURL the domain, Field
// "purpose:<id>" or "vendor:<id>", Checkbox "true" or "false".
package didomi

import (
	"fmt"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind this package serves.
const Kind = "didomi"

// Webhook types with a consent meaning.
const (
	TypeEventCreated = "event.created"
	TypeUserUpdated  = "user.updated"
)

// SourceOptions are a Didomi source's own keys.
type SourceOptions struct {
	// ClientID is the OAuth client id given to Didomi with one of the
	// secrets (required).
	ClientID string `yaml:"client_id"`
	// Purposes maps a Didomi purpose id to another scope than
	// "cookies:<id>" (a newsletter purpose to marketing, say).
	Purposes map[string]Scope `yaml:"purposes"`
	// Vendors records vendor choices as "cookies:vendor.<id>" (default true).
	Vendors *bool `yaml:"vendors"`
}

// Scope is where a Didomi purpose's choice goes (connectors.Scope).
type Scope = connectors.Scope

// Defaults sets vendors to true when unset.
func (o *SourceOptions) Defaults() {
	if o.Vendors == nil {
		t := true
		o.Vendors = &t
	}
}

// Validate checks client_id and purposes (config.OptionsValidator).
func (o *SourceOptions) Validate(_ bool, bad func(key, format string, args ...any)) {
	if strings.TrimSpace(o.ClientID) == "" {
		bad("client_id", "is required (the OAuth client id given to Didomi)")
	}
	connectors.ValidateScopes("purposes", o.Purposes, bad)
}

// Brands returns the brands purposes name (config.BrandLister).
func (o *SourceOptions) Brands() []string {
	return connectors.ScopeBrands(o.Purposes)
}

// Source verifies and parses one Didomi organization's webhooks.
type Source struct {
	cfg       config.Source
	secrets   []string
	clientID  string
	tolerance time.Duration
	purposes  map[string]consent.Key
	vendors   bool
}

var (
	_ connectors.Source      = (*Source)(nil)
	_ connectors.TokenIssuer = (*Source)(nil)
)

// NewSource builds a Didomi source: secrets are the OAuth client secrets
// given to Didomi (several allow rotation), cfg.Options its SourceOptions.
// Errors name the config key.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSource(cfg, "the OAuth client secret given to Didomi"); err != nil {
		return nil, err
	}
	o := config.OptionsOf[SourceOptions](cfg.Options)
	var verr error
	o.Validate(false, func(key, format string, args ...any) {
		if verr == nil {
			verr = fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
		}
	})
	if verr != nil {
		return nil, verr
	}
	s := &Source{cfg: cfg, secrets: cfg.Secrets, clientID: o.ClientID, tolerance: connectors.Tolerance(cfg.Tolerance),
		purposes: map[string]consent.Key{}, vendors: o.Vendors == nil || *o.Vendors}
	s.purposes = connectors.ResolveScopes(o.Purposes, cfg.Brand)
	return s, nil
}

// Verify checks "Authorization: Bearer <token>" against the tokens
// IssueToken mints (every secret tried, constant-time compare). Errors
// wrap connectors.ErrUnauthorized; an expired token also wraps
// connectors.ErrStale.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil || r.Header == nil {
		return connectors.Unauthorized("no Authorization header")
	}
	auth := strings.TrimSpace(r.Header.Get("Authorization"))
	tok, ok := cutPrefixFold(auth, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return connectors.Unauthorized("no bearer token (configure the webhook's OAuth credentials in Didomi)")
	}
	return s.checkToken(strings.TrimSpace(tok), now)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// choice is one purpose or vendor choice.
type choice struct {
	key     string // "purpose:<id>" or "vendor:<id>", for change detection
	id      string
	vendor  bool
	enabled bool
}

// Parse reads one webhook: event.created gives a signal per choice of the
// event, user.updated one per choice that changed between old_entity and
// new_entity. occurred_at is the event's created_at (the user's
// updated_at), else the arrival time. DedupKey is "event:<id>" or
// "user:<id>:<updated_at>" ("" when missing: the caller hashes the body).
// A body that is not a JSON object wraps connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	root, err := mapping.DecodeObject(r.Body)
	if err != nil {
		return nil, err
	}
	typ, _ := root["type"].(string)
	b := &connectors.Batch{}
	params, ok := root["parameters"].(map[string]any)
	if !ok {
		if hasFlatKeys(root) {
			b.Skipped = append(b.Skipped, "flattened payload: turn the webhook's flatten option off")
		} else {
			b.Skipped = append(b.Skipped, "no parameters object")
		}
		return b, nil
	}
	var entity, old map[string]any
	switch typ {
	case TypeEventCreated:
		entity, _ = params["entity"].(map[string]any)
	case TypeUserUpdated:
		entity, _ = params["new_entity"].(map[string]any)
		old, _ = params["old_entity"].(map[string]any)
	default:
		b.Skipped = append(b.Skipped, fmt.Sprintf("type %s: no consent meaning", connectors.Quote(typ, connectors.MaxQuoted)))
		return b, nil
	}
	if entity == nil {
		b.Skipped = append(b.Skipped, typ+": no entity")
		return b, nil
	}
	id := text(entity["id"])
	var at time.Time
	if typ == TypeEventCreated {
		at, _ = mapping.ParseTime(entity["created_at"], time.UTC)
		if id != "" {
			b.DedupKey = "event:" + connectors.ClipUTF8(id, 100)
		}
	} else {
		at, _ = mapping.ParseTime(entity["updated_at"], time.UTC)
		if id != "" && text(entity["updated_at"]) != "" {
			b.DedupKey = "user:" + connectors.ClipUTF8(id, 80) + ":" + connectors.ClipUTF8(text(entity["updated_at"]), 40)
		}
	}
	email := userEmail(typ, entity)
	if email != "" {
		b.Named = append(b.Named, consent.Subject{Email: email}) // whatever the event means
	}
	if reg := regulation(root, entity); reg != "" && reg != "gdpr" {
		b.Skipped = append(b.Skipped, fmt.Sprintf("regulation %s: only GDPR events are read", connectors.Quote(reg, connectors.MaxQuoted)))
		return b, nil
	}
	if email == "" {
		b.Skipped = append(b.Skipped, typ+": no organization_user_id email: a choice of an anonymous browser names no person")
		return b, nil
	}
	choices := s.choices(entity)
	if old != nil {
		before := map[string]bool{}
		for _, c := range s.choices(old) {
			before[c.key] = c.enabled
		}
		changed := choices[:0]
		for _, c := range choices {
			if was, ok := before[c.key]; !ok || was != c.enabled {
				changed = append(changed, c)
			}
		}
		choices = changed
	}
	if len(choices) == 0 {
		b.Skipped = append(b.Skipped, typ+": no choice (or no changed choice)")
		return b, nil
	}
	if at.IsZero() {
		if r.ReceivedAt.IsZero() {
			b.Skipped = append(b.Skipped, typ+": no readable date")
			return b, nil
		}
		at = r.ReceivedAt.UTC()
		b.Skipped = append(b.Skipped, typ+": no readable date, dated at arrival")
	}
	ev := s.evidence(typ, id, root, entity)
	for _, c := range choices {
		sc, ok := s.scopeOf(c)
		if !ok {
			b.Skipped = append(b.Skipped, fmt.Sprintf("%s %s: id cannot name a purpose", kindOf(c), connectors.Quote(c.id, connectors.MaxQuoted)))
			continue
		}
		st := consent.StatusWithdrawn
		if c.enabled {
			st = consent.StatusGranted
		}
		e := ev
		e.Field = connectors.ClipUTF8(kindOf(c)+":"+c.id, 128)
		e.Checkbox = fmt.Sprint(c.enabled)
		b.Signals = append(b.Signals, consent.Signal{
			Subject: consent.Subject{Email: email}, Channel: sc.Channel, Brand: sc.Brand, Purpose: sc.Purpose,
			Status: st, OccurredAt: at, Source: s.cfg.Name, Evidence: e,
		})
	}
	return b, nil
}

func kindOf(c choice) string {
	if c.vendor {
		return "vendor"
	}
	return "purpose"
}

// scopeOf maps a choice to its scope: the purposes option, else
// cookies:<id> (vendors: cookies:vendor.<id>).
func (s *Source) scopeOf(c choice) (consent.Key, bool) {
	if !c.vendor {
		if m, ok := s.purposes[c.id]; ok {
			return m, true
		}
	}
	p, ok := connectors.CookiePurposeOf(c.id, c.vendor)
	if !ok {
		return consent.Key{}, false
	}
	return consent.Key{Brand: s.cfg.Brand, Purpose: p, Channel: consent.ChannelEmail}, true
}

// choices reads consents.purposes (enabled true/false; null skipped) and,
// with vendors on, consents.vendors.enabled/disabled, in order.
func (s *Source) choices(entity map[string]any) []choice {
	cons, _ := entity["consents"].(map[string]any)
	var out []choice
	seen := map[string]bool{}
	add := func(c choice) {
		if c.id == "" || seen[c.key] {
			return
		}
		seen[c.key] = true
		out = append(out, c)
	}
	purposes, _ := cons["purposes"].([]any)
	for _, item := range purposes {
		p, ok := item.(map[string]any)
		if !ok {
			continue
		}
		en, ok := p["enabled"].(bool)
		if !ok {
			continue
		}
		id := text(p["id"])
		add(choice{key: "purpose:" + id, id: id, enabled: en})
	}
	if !s.vendors {
		return out
	}
	vendors, _ := cons["vendors"].(map[string]any)
	for _, list := range []struct {
		key     string
		enabled bool
	}{{"enabled", true}, {"disabled", false}} {
		ids, _ := vendors[list.key].([]any)
		for _, v := range ids {
			id := text(v)
			add(choice{key: "vendor:" + id, id: id, vendor: true, enabled: list.enabled})
		}
	}
	return out
}

// evidence is what every signal of the webhook carries.
func (s *Source) evidence(typ, id string, root, entity map[string]any) consent.Evidence {
	ev := consent.Evidence{EventID: connectors.ClipUTF8(id, 200), Event: typ}
	cons, _ := entity["consents"].(map[string]any)
	ev.ConsentString = text(cons["tcfcs"])
	src, _ := entity["source"].(map[string]any)
	if v := text(src["deployment_id"]); v != "" {
		ev.WordingVersion = connectors.ClipUTF8(v, 200)
	} else if v := text(entity["notice_id"]); v != "" {
		ev.WordingVersion = connectors.ClipUTF8(v, 200)
	}
	if d := text(src["domain"]); d != "" {
		ev.PageURL = connectors.ClipUTF8(d, 500)
	}
	return ev
}

// userEmail is the person's address: an Event's user.organization_user_id,
// a User's organization_user_id; "" unless it looks like an address.
func userEmail(typ string, entity map[string]any) string {
	var v string
	if typ == TypeEventCreated {
		u, _ := entity["user"].(map[string]any)
		v = text(u["organization_user_id"])
	} else {
		v = text(entity["organization_user_id"])
	}
	v = strings.TrimSpace(v)
	if at := strings.LastIndexByte(v, '@'); at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " \t\r\n") {
		return ""
	}
	return v
}

// regulation is the payload's or the entity's regulation, lower-cased.
func regulation(root, entity map[string]any) string {
	for _, m := range []map[string]any{root, entity} {
		if r := strings.ToLower(strings.TrimSpace(text(m["regulation"]))); r != "" {
			return r
		}
	}
	return ""
}

func hasFlatKeys(m map[string]any) bool {
	for k := range m {
		if strings.Contains(k, "__") {
			return true
		}
	}
	return false
}

// text is a string or number as text, "" otherwise.
func text(v any) string {
	switch v.(type) {
	case string, interface{ String() string }:
		t, _ := mapping.Text(v)
		return t
	}
	return ""
}
