// Package consent is consentsync's domain: the canonical consent signal, the
// subject it is about, identifier normalization, and the pure rules that decide
// how a signal changes the consent record. It does no I/O and imports nothing
// of ours.
//
// The rules follow CNIL guidance on commercial prospecting
// (https://www.cnil.fr/fr/la-prospection-commerciale-par-courrier-electronique)
// and GDPR art. 4(11) and 7 (https://gdpr-info.eu/art-7-gdpr/).
package consent

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Channel is the medium a message travels on.
type Channel string

// Channels. Email and SMS are opt-in channels for prospects; phone calls by a
// human and post are opt-out channels; calls by a human to consumers need an
// opt-in from PhoneOptInFrom (docs/rules.md, "Who needs an opt-in").
const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
	ChannelPhone Channel = "phone"
	ChannelPost  Channel = "post"
)

// Purpose is what the consent covers.
type Purpose string

// Purposes. Partners (sharing with partners) always needs its own opt-in,
// apart from the brand's own marketing.
const (
	PurposeMarketing   Purpose = "marketing"
	PurposePartners    Purpose = "partners"
	PurposeCookies     Purpose = "cookies"
	PurposeSaleSharing Purpose = "sale_sharing"
)

// Status is what a signal says about the person's will.
type Status string

// Statuses. Pending is a double-opt-in request not yet confirmed: it grants
// nothing.
const (
	StatusGranted   Status = "granted"
	StatusWithdrawn Status = "withdrawn"
	StatusPending   Status = "pending"
)

// ParseChannel validates a channel name.
func ParseChannel(s string) (Channel, error) {
	switch c := Channel(s); c {
	case ChannelEmail, ChannelSMS, ChannelPhone, ChannelPost:
		return c, nil
	}
	return "", fmt.Errorf("unknown channel %q (want email, sms, phone or post)", s)
}

// CookiePrefix starts a cookie sub-purpose: "cookies:<name>" is the
// consent to one purpose of a site's consent banner ("cookies:analytics",
// "cookies:advertising_personalization", "cookies:vendor.google"). The
// CNIL wants consent given purpose by purpose (a global "accept all" is
// allowed only beside per-purpose choices), the list of the companies
// relying on it shown, refusal as easy as acceptance, and the choice
// provable (CNIL délibérations n° 2020-091, lignes directrices, and
// n° 2020-092, recommandation, of 17 September 2020,
// https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000042388197; loi
// Informatique et Libertés art. 82, ePrivacy directive art. 5(3)).
// docs/rules.md, "Cookies and browser signals".
const CookiePrefix = "cookies:"

// MaxCookiePurposeName bounds the <name> of "cookies:<name>", in bytes.
const MaxCookiePurposeName = 64

// ErrBadPurpose is wrapped by ParsePurpose and CookiePurpose errors.
var ErrBadPurpose = errors.New("invalid purpose")

// ParsePurpose validates a purpose name: marketing, partners, cookies,
// sale_sharing, or a cookie sub-purpose "cookies:<name>" whose name is 1 to
// MaxCookiePurposeName bytes of a-z, 0-9, '_', '-' and '.' (see
// CookiePurpose). Errors wrap ErrBadPurpose.
func ParsePurpose(s string) (Purpose, error) {
	switch p := Purpose(s); p {
	case PurposeMarketing, PurposePartners, PurposeCookies, PurposeSaleSharing:
		return p, nil
	}
	if name, ok := strings.CutPrefix(s, CookiePrefix); ok {
		return CookiePurpose(name)
	}
	return "", fmt.Errorf("%w: unknown purpose %q (want marketing, partners, cookies, cookies:<name> or sale_sharing)", ErrBadPurpose, s)
}

// CookiePurpose returns the cookie sub-purpose "cookies:" + name. name must
// be 1 to MaxCookiePurposeName bytes of a-z, 0-9, '_', '-' and '.' (a
// consent platform's purpose id, lower-cased by the caller). Errors wrap
// ErrBadPurpose.
func CookiePurpose(name string) (Purpose, error) {
	if name == "" || len(name) > MaxCookiePurposeName {
		return "", fmt.Errorf("%w: cookie purpose name must be 1 to %d characters", ErrBadPurpose, MaxCookiePurposeName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "", fmt.Errorf("%w: cookie purpose %q: only a-z, 0-9, '_', '-' and '.'", ErrBadPurpose, name)
		}
	}
	return Purpose(CookiePrefix + name), nil
}

// IsCookies reports whether p is "cookies" or a "cookies:<name>" sub-purpose.
func (p Purpose) IsCookies() bool {
	return p == PurposeCookies || strings.HasPrefix(string(p), CookiePrefix)
}

// Subject names the person a signal is about. Email is the normalized address
// used for matching (see NormalizeEmail); EmailOriginal is the spelling the
// sender used, kept for provider calls. ExternalID is a sender-side id
// ("hubspot:contact:501") that a connector resolves to an email before the
// signal is reconciled.
type Subject struct {
	Email         string `json:"email,omitempty"`
	EmailOriginal string `json:"email_original,omitempty"`
	Phone         string `json:"phone,omitempty"`
	ExternalID    string `json:"external_id,omitempty"`
}

// Key is the identifier the subject is matched on: the normalized email, else
// the E.164 phone, else the external id.
func (s Subject) Key() string {
	switch {
	case s.Email != "":
		return s.Email
	case s.Phone != "":
		return s.Phone
	}
	return s.ExternalID
}

// Evidence is how a signal came to be: what a controller needs to prove a
// consent (GDPR art. 7(1)). Every field is optional.
type Evidence struct {
	// EventID is the sender's id for the event (HubSpot portal:event:object,
	// SendGrid sg_event_id, Typeform event_id ...).
	EventID string `json:"event_id,omitempty"`
	// Event is the sender's event or reason name ("unsubscribe", "spamreport").
	Event          string `json:"event,omitempty"`
	FormID         string `json:"form_id,omitempty"`
	ListID         string `json:"list_id,omitempty"`
	Field          string `json:"field,omitempty"`
	WordingVersion string `json:"wording_version,omitempty"`
	WordingHash    string `json:"wording_hash,omitempty"`
	// PartnerList names the list of partners (or its version, "partners-v7")
	// the person was shown when consenting to purpose partners. Without it a
	// partners grant fails criterion "informed" (see Assess). omitempty: the
	// evidence hash of evidence without it is unchanged.
	PartnerList string `json:"partner_list,omitempty"`
	PageURL     string `json:"page_url,omitempty"`
	IP          string `json:"ip,omitempty"`
	UserAgent   string `json:"user_agent,omitempty"`
	// Checkbox is the raw answer as the sender sent it ("on", "true", ...).
	Checkbox string `json:"checkbox,omitempty"`
	// PreTicked is set when the sender or the mapping says the box was ticked
	// before the person acted.
	PreTicked *bool `json:"pre_ticked,omitempty"`
	// Required is set when the mapping says the form could not be sent
	// without ticking the box: consent made a condition of the service is
	// not free (GDPR art. 7(4); criterion "free", see Assess).
	Required bool `json:"required,omitempty"`
	// OptInLevel is the sender's double-opt-in wording ("confirmed_opt_in").
	OptInLevel string `json:"opt_in_level,omitempty"`
	// ConfirmedAt is the double-opt-in confirmation time.
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	// ConsentString is a consent platform's record of the choice: the IAB
	// TCF consent string (Didomi's tcfcs) or the platform's consent token
	// (Axeptio's token), as sent. omitempty: the evidence hash of evidence
	// without it is unchanged.
	ConsentString string `json:"consent_string,omitempty"`
	// GPC is set when the request carried the Global Privacy Control
	// header "Sec-GPC: 1" (https://privacycg.github.io/gpc-spec/).
	GPC bool `json:"gpc,omitempty"`
	// Imported says the signal came from a backfill (`consentsync
	// import`), not from a live event: "imported from <destination or
	// source> at <RFC 3339 time>". A grant imported without a tick or a
	// confirmation has criterion express unknown with ReasonImported, and
	// eligibility answers resting on it carry Answer.Quality "unknown".
	// omitempty: the evidence hash of evidence without it is unchanged.
	Imported string `json:"imported,omitempty"`
}

// Scope is how far a withdrawal reaches: the signal's own brand, or every
// brand of the company (see ExpandScope).
type Scope string

// Scopes. The empty Scope means ScopeBrand.
const (
	ScopeBrand     Scope = "brand"
	ScopeAllBrands Scope = "all_brands"
)

// Signal is one canonical consent fact: subject S gave, withdrew or requested
// consent for purpose P of brand B on channel C at OccurredAt (the sender's
// clock, UTC).
//
// Problems lists why a grant cannot be relied on (an ambiguous checkbox
// value, ...). A signal with problems is kept in the ledger as proof of what
// was received but changes no state. Withdrawals never carry problems: they
// are always applied (GDPR art. 7(3)).
type Signal struct {
	Subject    Subject   `json:"subject"`
	Channel    Channel   `json:"channel"`
	Brand      string    `json:"brand"`
	Purpose    Purpose   `json:"purpose"`
	Status     Status    `json:"status"`
	OccurredAt time.Time `json:"occurred_at"`
	// Source is the configured source name the signal came from.
	Source   string   `json:"source"`
	Evidence Evidence `json:"evidence"`
	Problems []string `json:"problems,omitempty"`
	// Scope is ScopeAllBrands when a withdrawal covers every brand (the
	// source or page declared it); empty or ScopeBrand otherwise. It is not
	// part of FactKey nor of the ledger record: ExpandScope turns it into one
	// brand-scoped fact per brand before anything is stored.
	Scope Scope `json:"scope,omitempty"`
}

// Valid reports whether the signal may change consent state.
func (s Signal) Valid() bool { return s.Status == StatusWithdrawn || len(s.Problems) == 0 }

// MinYear and MaxYear bound the times consentsync accepts: nothing
// consent-related predates 1970, and JSON (RFC 3339) cannot write past 9999.
const (
	MinYear = 1970
	MaxYear = 9999
)

// Errors returned by Validate.
var (
	ErrNoSubject  = errors.New("signal has no subject identifier")
	ErrNoTime     = errors.New("signal has no occurred_at")
	ErrBadSignal  = errors.New("invalid signal")
	ErrBadChannel = errors.New("invalid channel")
)

// Validate checks that a signal is complete enough to be stored. It returns
// an error wrapping ErrBadSignal, ErrNoSubject or ErrNoTime.
func (s Signal) Validate() error {
	if s.Subject.Key() == "" {
		return ErrNoSubject
	}
	if s.OccurredAt.IsZero() {
		return ErrNoTime
	}
	if y := s.OccurredAt.UTC().Year(); y < MinYear || y > MaxYear {
		return fmt.Errorf("%w: occurred_at year %d outside %d..%d", ErrBadSignal, y, MinYear, MaxYear)
	}
	if _, err := ParseChannel(string(s.Channel)); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignal, err)
	}
	if _, err := ParsePurpose(string(s.Purpose)); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignal, err)
	}
	switch s.Status {
	case StatusGranted, StatusWithdrawn, StatusPending:
	default:
		return fmt.Errorf("%w: unknown status %q", ErrBadSignal, s.Status)
	}
	if s.Brand == "" {
		return fmt.Errorf("%w: no brand", ErrBadSignal)
	}
	switch s.Scope {
	case "", ScopeBrand, ScopeAllBrands:
	default:
		return fmt.Errorf("%w: unknown scope %q (want brand or all_brands)", ErrBadSignal, s.Scope)
	}
	return nil
}

// maxEvidenceText bounds each evidence string, in bytes.
const maxEvidenceText = 2048

// CleanText makes s storable as Postgres text and jsonb: invalid UTF-8
// becomes U+FFFD, NUL characters (which neither type can hold) are removed,
// and the result is cut to max bytes on a rune boundary.
func CleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// Clean returns the evidence with every string made storable (CleanText).
// Senders control these strings: a NUL in a user agent must not stop a
// withdrawal from being recorded.
func (e Evidence) Clean() Evidence {
	for _, p := range []*string{&e.EventID, &e.Event, &e.FormID, &e.ListID, &e.Field, &e.WordingVersion,
		&e.WordingHash, &e.PartnerList, &e.PageURL, &e.IP, &e.UserAgent, &e.Checkbox, &e.OptInLevel, &e.ConsentString, &e.Imported} {
		*p = CleanText(*p, maxEvidenceText)
	}
	return e
}

// Clean returns the signal with its evidence, problems, source and brand
// made storable (CleanText).
func (s Signal) Clean() Signal {
	s.Evidence = s.Evidence.Clean()
	s.Brand = CleanText(s.Brand, 200)
	s.Source = CleanText(s.Source, 200)
	if len(s.Problems) > 0 {
		ps := make([]string, len(s.Problems))
		for i, p := range s.Problems {
			ps[i] = CleanText(p, 500)
		}
		s.Problems = ps
	}
	return s
}
