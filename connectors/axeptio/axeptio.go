// Package axeptio is the inbound connector for Axeptio consent webhooks
// (kind "axeptio"): a cookie banner's choices, kept in the ledger as cookie
// sub-purposes.
//
// Webhooks (https://developers.axeptio.eu/advanced-settings/webhooks): a
// webhook is created with POST https://api.axept.io/v1/webhooks {"method":
// "POST", "url", "event": "consent/<project id>"}; each consent saved for
// the project is then posted to url as its consent document (U: Axeptio
// documents the registration, not the body; the shape read here is the
// consent record of Axeptio's consent API):
//
//	{"_id", "projectId", "collection": "cookies", "identifier" (cookies version),
//	 "token", "accept", "createdAt" (ISO 8601),
//	 "preferences": {"config": {"identifier", "name", "language"},
//	                 "vendors": {"<vendor>": true | false}}}
//
// The same page's "Option 1", a site relaying the browser's choices from
// its own backend, is read too:
//
//	{"settings": {"token", "cookiesVersion"},
//	 "choices": {"$$token", "$$date", "$$cookiesVersion": {"name", "identifier"},
//	             "<vendor>": true | false, "$$completed": true}}
//
// Authentication: Axeptio signs nothing and sends no credentials of its
// own. The webhook URL carries the secret: the query parameter key
// (…/webhooks/<name>?key=<secret>) or basic auth credentials in the URL
// (https://consentsync:<secret>@…). There is no timestamp: the inbox's
// dedup on the consent id makes a replay a no-op.
//
// Person: Axeptio knows a browser, not a person. The token names the
// person only when the site sets it (the page's "Option 2b",
// axeptioSettings.token) to the signed-in user's address, or when the
// relayed body carries one at the email_field option's path; otherwise the
// choice is skipped (an anonymous browser's choice names no one).
//
// Consent meaning (docs/rules.md, "Cookies and browser signals"): each
// vendor choice is a signal on channel email (the channel the person is
// known by), granted (true) or withdrawn (false), for purpose
// "cookies:vendor.<vendor>" unless the vendors option maps the vendor to a
// scope ({"google_analytics": {purpose: "cookies:analytics"}}); only such
// a mapping can send a choice to a purpose a destination honours. Keys
// starting with "$$" are Axeptio's own. A collection other than "cookies"
// is skipped. Evidence: ConsentString is the token, WordingVersion the
// cookies version, EventID the consent id, Field "vendor:<name>".
package axeptio

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/mapping"
	"github.com/consentsync/consentsync/consent"
)

// Kind is the config kind this package serves.
const Kind = "axeptio"

// QueryKey is the URL query parameter that carries the secret.
const QueryKey = "key"

// SourceOptions are an Axeptio source's own keys.
type SourceOptions struct {
	// Vendors maps an Axeptio vendor (cookie service) name to the scope of
	// its choice; unmapped vendors go to "cookies:vendor.<name>".
	Vendors map[string]Scope `yaml:"vendors"`
	// EmailField is a dotted path in the body holding the person's address
	// (a relay that adds it); the token is used when it is an address.
	EmailField string `yaml:"email_field"`
}

// Scope is where a vendor's choice goes: Purpose is required (a
// consent.Purpose), Brand defaults to the source's, Channel to email.
type Scope = connectors.Scope

// Validate checks vendors (config.OptionsValidator).
func (o *SourceOptions) Validate(_ bool, bad func(key, format string, args ...any)) {
	connectors.ValidateScopes("vendors", o.Vendors, bad)
}

// Brands returns the brands vendors name (config.BrandLister).
func (o *SourceOptions) Brands() []string {
	return connectors.ScopeBrands(o.Vendors)
}

// Source verifies and parses one Axeptio project's webhooks.
type Source struct {
	cfg        config.Source
	vendors    map[string]consent.Key
	emailField string
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds an Axeptio source: secrets are the URL keys (or
// basic-auth passwords) of the webhook URL, cfg.Options its SourceOptions.
// Errors name the config key.
func NewSource(cfg config.Source, deps connectors.Deps) (*Source, error) {
	if err := connectors.CheckSource(cfg, "the ?key= of the webhook URL, or its basic-auth password"); err != nil {
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
	s := &Source{cfg: cfg, vendors: map[string]consent.Key{}, emailField: strings.TrimSpace(o.EmailField)}
	s.vendors = connectors.ResolveScopes(o.Vendors, cfg.Brand)
	return s, nil
}

// Verify accepts the request when its query parameter key, or the password
// of its HTTP basic auth, equals one of the secrets (constant-time compare,
// every secret tried). now is unused: nothing is timestamped. Errors wrap
// connectors.ErrUnauthorized.
func (s *Source) Verify(r *connectors.Request, now time.Time) error {
	if r == nil {
		return connectors.Unauthorized("no request")
	}
	key := r.Query().Get(QueryKey)
	var pass string
	var basic bool
	if r.Header != nil {
		_, pass, basic = (&http.Request{Header: r.Header}).BasicAuth()
	}
	if key == "" && !basic {
		return connectors.Unauthorized("no ?%s= query parameter and no basic auth", QueryKey)
	}
	ok := connectors.AnySecret(s.cfg.Secrets, func(sec string) bool {
		return key != "" && connectors.EqualToken(key, sec) || basic && connectors.EqualToken(pass, sec)
	})
	if !ok {
		return connectors.Unauthorized("key or basic-auth password does not match")
	}
	return nil
}

// Parse reads one consent document (or relayed choices): a signal per
// vendor choice, as the package comment says. occurred_at is createdAt
// (the relay's $$date), else the arrival time. DedupKey is the consent
// _id, else a hash of token and date ("" when both are missing). A body
// that is not a JSON object wraps connectors.ErrMalformed.
func (s *Source) Parse(r *connectors.Request) (*connectors.Batch, error) {
	root, err := mapping.DecodeObject(r.Body)
	if err != nil {
		return nil, err
	}
	b := &connectors.Batch{}
	var (
		token, version, id string
		when               any
		vendors            map[string]any
	)
	if choices, ok := root["choices"].(map[string]any); ok {
		settings, _ := root["settings"].(map[string]any)
		token = first(str(choices["$$token"]), str(settings["token"]))
		cv, _ := choices["$$cookiesVersion"].(map[string]any)
		version = first(str(cv["identifier"]), str(cv["name"]), str(settings["cookiesVersion"]))
		when = choices["$$date"]
		vendors = choices
	} else {
		if c := str(root["collection"]); c != "" && c != "cookies" {
			b.Skipped = append(b.Skipped, fmt.Sprintf("collection %s: not a cookie consent", connectors.Quote(c, connectors.MaxQuoted)))
			return b, nil
		}
		prefs, ok := root["preferences"].(map[string]any)
		if !ok {
			return nil, connectors.Malformed("neither preferences nor choices")
		}
		cfg, _ := prefs["config"].(map[string]any)
		token, id = str(root["token"]), str(root["_id"])
		version = first(str(cfg["identifier"]), str(root["identifier"]), str(cfg["name"]))
		when = root["createdAt"]
		vendors, _ = prefs["vendors"].(map[string]any)
	}
	at, ok := mapping.ParseTime(when, time.UTC)
	switch {
	case id != "":
		b.DedupKey = "consent:" + connectors.ClipUTF8(id, 100)
	case token != "" && str(when) != "":
		b.DedupKey = connectors.HashParts("axeptio", token, str(when))
	}
	email := s.email(root, token)
	if email == "" {
		b.Skipped = append(b.Skipped, "no address names the person (token is not an address): an anonymous browser's choice names no one")
		return b, nil
	}
	names := make([]string, 0, len(vendors))
	for k := range vendors {
		if !strings.HasPrefix(k, "$$") {
			names = append(names, k)
		}
	}
	slices.Sort(names) // JSON objects have no order: a stable one
	if len(names) == 0 {
		b.Skipped = append(b.Skipped, "no vendor choice")
		return b, nil
	}
	if !ok {
		if r.ReceivedAt.IsZero() {
			b.Skipped = append(b.Skipped, "no readable date")
			return b, nil
		}
		at = r.ReceivedAt.UTC()
		b.Skipped = append(b.Skipped, "no readable date, dated at arrival")
	}
	for _, name := range names {
		en, isBool := vendors[name].(bool)
		if !isBool {
			b.Skipped = append(b.Skipped, fmt.Sprintf("vendor %s: choice is not a boolean", connectors.Quote(name, connectors.MaxQuoted)))
			continue
		}
		sc, ok := s.scopeOf(name)
		if !ok {
			b.Skipped = append(b.Skipped, fmt.Sprintf("vendor %s: name cannot name a purpose", connectors.Quote(name, connectors.MaxQuoted)))
			continue
		}
		st := consent.StatusWithdrawn
		if en {
			st = consent.StatusGranted
		}
		b.Signals = append(b.Signals, consent.Signal{
			Subject: consent.Subject{Email: email}, Channel: sc.Channel, Brand: sc.Brand, Purpose: sc.Purpose,
			Status: st, OccurredAt: at, Source: s.cfg.Name,
			Evidence: consent.Evidence{
				EventID: connectors.ClipUTF8(id, 200), Event: "consent", Field: connectors.ClipUTF8("vendor:"+name, 128),
				Checkbox: fmt.Sprint(en), WordingVersion: connectors.ClipUTF8(version, 200), ConsentString: token,
			},
		})
	}
	return b, nil
}

func (s *Source) scopeOf(vendor string) (consent.Key, bool) {
	if m, ok := s.vendors[vendor]; ok {
		return m, true
	}
	p, ok := connectors.CookiePurposeOf(vendor, true)
	if !ok {
		return consent.Key{}, false
	}
	return consent.Key{Brand: s.cfg.Brand, Purpose: p, Channel: consent.ChannelEmail}, true
}

// email is the address at email_field, else the token when it is one.
func (s *Source) email(root map[string]any, token string) string {
	if s.emailField != "" {
		if v, ok := mapping.JSON(root)(s.emailField); ok {
			if e := address(str(v)); e != "" {
				return e
			}
		}
	}
	return address(token)
}

// address returns v when it looks like an email address, else "".
func address(v string) string {
	v = strings.TrimSpace(v)
	at := strings.LastIndexByte(v, '@')
	if at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " \t\r\n") {
		return ""
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
