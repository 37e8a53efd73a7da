// Package mapping turns one flat form submission into canonical consent
// signals, following a source's config.Fields mapping. It is shared by the
// connectors whose consent meaning is configured rather than fixed: form,
// typeform, webflow and standard.
//
// The connector decodes its body and hands the mapper a Lookup over dotted
// paths; the mapper reads the subject, the event time, the evidence and each
// mapped checkbox, and applies the checkbox rules of docs/wire-formats.md
// ("Checkbox values") and the quality criteria of docs/rules.md:
//
//   - ticked → granted, with the raw value as evidence; a box the mapping or
//     the payload says was pre-ticked carries the problem "express: box was
//     pre-ticked" (criterion 1); a box the mapping says is required (the
//     form cannot be sent without it) sets Evidence.Required on its grants
//     (criterion 2, free);
//   - ticked on a double_opt_in box → pending (a request, which grants
//     nothing), unless fields.confirmed_at yields a time: then granted, with
//     Evidence.ConfirmedAt and Evidence.OptInLevel "double_opt_in". The
//     grant keeps the submission time as occurred_at (the tick is the
//     consent, the click its confirmation): the confirmation email sent in
//     between is not a message before the opt-in ("prior" criterion), and
//     a withdrawal between the two still wins;
//   - unticked → nothing, unless the field is a withdrawal field
//     (preference centres) → withdrawn; absence is never withdrawal;
//   - absent (missing, null, "", []) → nothing;
//   - ambiguous ("maybe", 2, free text) → a granted signal carrying the
//     problem "unambiguous: value cannot be mapped": recorded, never applied
//     (criterion 6);
//   - one field mapped to several channels or purposes (brand marketing and
//     partners at once) makes each of its grants carry "specific: one
//     checkbox mapped to several channels/purposes" (criterion 4); several
//     brands, "specific: one checkbox mapped to several brands".
//
// Withdrawals never carry problems (GDPR art. 7(3)).
//
// Besides signals, every readable submission (one with a subject and a
// time) is a contact from the person: a consent.Activity of kind "form"
// (docs/rules.md, "Expiry": a form renews a prospect's consent). And a
// submission may say who the person is: fields.profile answered "customer"
// or "professional", or the source's default profile (config.Source.Profile)
// when it is customer or professional, gives a consent.ProfileFact.
package mapping

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/consent"
)

// Problems attached to grants that cannot be relied on (docs/rules.md,
// "What makes an opt-in valid").
const (
	ProblemPreTicked      = "express: box was pre-ticked"
	ProblemAmbiguous      = "unambiguous: value cannot be mapped"
	ProblemNotSpecific    = "specific: one checkbox mapped to several channels/purposes"
	ProblemSeveralBrands  = "specific: one checkbox mapped to several brands"
	preTickedSuffix       = "_pre_ticked"
	maxSubjectIdentifier  = 320
	maxPhoneIdentifierLen = 64
)

// OptInDouble is Evidence.OptInLevel of a grant confirmed by a double
// opt-in (fields.confirmed_at yields a time).
const OptInDouble = "double_opt_in"

// Mapper applies one source's field mapping. It is immutable and safe for
// concurrent use.
type Mapper struct {
	fields   config.Fields
	source   string
	brand    string
	profile  consent.Profile // the source's default profile if customer or professional, else ""
	loc      *time.Location
	consents []rule
}

type rule struct {
	field       string
	channel     consent.Channel
	purpose     consent.Purpose
	brand       string
	withdrawal  bool
	preTicked   bool
	required    bool
	doubleOptIn bool
	// partnerList is the partner list version the form shows beside the
	// box (config consents[].partner_list), "" when not configured.
	partnerList string
	problem     string // specific-criterion problem for grants, "" when specific
}

// New builds the mapper of cfg (a form, typeform, webflow or standard
// source). Errors name the config key: "fields: required", "fields.email:
// an email or phone mapping is required", "fields.consents: at least one
// consent field is required", "fields.consents[1].channel: ...",
// "timezone: ...", "brand: required".
func New(cfg config.Source) (*Mapper, error) {
	f := cfg.Fields
	if f == nil {
		return nil, errors.New("fields: required (map the submission's email and consent fields)")
	}
	if f.Email == "" && f.Phone == "" {
		return nil, errors.New("fields.email: an email or phone mapping is required")
	}
	if len(f.Consents) == 0 {
		return nil, errors.New("fields.consents: at least one consent field is required")
	}
	if cfg.Brand == "" {
		return nil, errors.New("brand: required")
	}
	loc := time.UTC
	if cfg.Timezone != "" {
		l, err := time.LoadLocation(cfg.Timezone)
		if err != nil {
			return nil, fmt.Errorf("timezone: %q is not an IANA time zone", cfg.Timezone)
		}
		loc = l
	}
	m := &Mapper{fields: *f, source: cfg.Name, brand: cfg.Brand, loc: loc}
	// The default profile is checked by config.Parse (prospect, customer or
	// professional); here anything but customer and professional means none.
	m.profile, _ = parseProfile(cfg.Profile)
	type scope struct {
		channels, purposes, brands map[string]bool
	}
	scopes := map[string]*scope{}
	seen := map[rule]bool{}
	for i, cf := range f.Consents {
		key := fmt.Sprintf("fields.consents[%d]", i)
		if cf.Field == "" {
			return nil, fmt.Errorf("%s.field: required", key)
		}
		ch, err := consent.ParseChannel(cf.Channel)
		if err != nil {
			return nil, fmt.Errorf("%s.channel: %w", key, err)
		}
		pu, err := consent.ParsePurpose(cf.Purpose)
		if err != nil {
			return nil, fmt.Errorf("%s.purpose: %w", key, err)
		}
		brand := cf.Brand
		if brand == "" {
			brand = cfg.Brand
		}
		r := rule{field: cf.Field, channel: ch, purpose: pu, brand: brand, withdrawal: cf.Withdrawal, preTicked: cf.PreTicked,
			required: cf.Required, doubleOptIn: cf.DoubleOptIn, partnerList: connectors.ClipUTF8(cf.PartnerList, evidenceMax)}
		if seen[r] {
			continue // the same mapping twice would yield the same signal twice
		}
		seen[r] = true
		m.consents = append(m.consents, r)
		s := scopes[cf.Field]
		if s == nil {
			s = &scope{map[string]bool{}, map[string]bool{}, map[string]bool{}}
			scopes[cf.Field] = s
		}
		s.channels[string(ch)], s.purposes[string(pu)], s.brands[brand] = true, true, true
	}
	for i := range m.consents {
		s := scopes[m.consents[i].field]
		switch {
		case len(s.channels) > 1 || len(s.purposes) > 1:
			m.consents[i].problem = ProblemNotSpecific
		case len(s.brands) > 1:
			m.consents[i].problem = ProblemSeveralBrands
		}
	}
	return m, nil
}

// Location is the zone times without an offset are read in.
func (m *Mapper) Location() *time.Location { return m.loc }

// Submission is one submission to map.
type Submission struct {
	// Get reads the submission's fields by dotted path.
	Get Lookup
	// OccurredAt is the fallback event time, used when fields.occurred_at is
	// not mapped or its value is missing or unreadable (Typeform's
	// submitted_at, Webflow's submittedAt). Zero: no fallback.
	OccurredAt time.Time
	// EventID, Event and FormID are evidence defaults used when the mapping
	// names no field for them (or the field is missing).
	EventID string
	Event   string
	FormID  string
	// Brand is the brand the submission's activity and profile facts are
	// about; "" means the source's brand (config.Source.Brand). Consent
	// fields keep their own brand (fields.consents[].brand, else the
	// source's).
	Brand string
	// GPC is set when the request relayed the browser's Global Privacy
	// Control signal, "Sec-GPC: 1" (see GPC): the submission then also
	// carries an objection to sale_sharing.
	GPC bool
}

// GPCHeader is the Global Privacy Control request header; its only
// defined value is "1" (https://privacycg.github.io/gpc-spec/, "The
// Sec-GPC header field for HTTP requests").
const GPCHeader = "Sec-GPC"

// GPC reports whether h carries "Sec-GPC: 1" (surrounding white space
// allowed, as HTTP field values are trimmed). Any other value, or several
// values, is no preference: the spec defines only "1", and absence of the
// signal expresses none.
func GPC(h http.Header) bool {
	if h == nil {
		return false
	}
	v := h.Values(GPCHeader)
	return len(v) == 1 && strings.TrimSpace(v[0]) == "1"
}

// Result is what one submission says.
type Result struct {
	// Signals in the order of fields.consents.
	Signals []consent.Signal
	// Skip says why the submission produced no signal ("no email", "no
	// consent field answered"); "" when it produced some. It never contains
	// personal data.
	Skip string
	// EventID is the mapped event id (fields.event_id) or the default.
	EventID string
	// Profile is the mapped profile value as sent (fields.profile), "" when
	// unmapped or missing. Profiles holds what it means.
	Profile string
	// Activities holds the submission itself, a contact of kind "form" at
	// the submission time, when it has a subject and a time (even when no
	// consent field was answered). Its channel is email when the subject
	// has an email, else sms.
	Activities []consent.Activity
	// Profiles holds a customer or professional fact for the submission's
	// brand when fields.profile says so (case-insensitive), and one for the
	// source's default profile when that is customer or professional; at
	// most one per profile.
	Profiles []consent.ProfileFact
}

// Fill sets b's signals, activities and profile facts to r's, and r.Skip,
// when set, as b's only skip reason.
func (r Result) Fill(b *connectors.Batch) {
	b.Signals, b.Activities, b.Profiles = r.Signals, r.Activities, r.Profiles
	if r.Skip != "" {
		b.Skipped = []string{r.Skip}
	}
}

// Map reads one submission. It never fails: a submission that cannot give
// signals comes back with Skip set.
func (m *Mapper) Map(s Submission) Result {
	get := s.Get
	if get == nil {
		get = func(string) (any, bool) { return nil, false }
	}
	text := func(path string) string {
		if path == "" {
			return ""
		}
		v, ok := get(path)
		if !ok {
			return ""
		}
		t, _ := Text(v)
		return connectors.ClipUTF8(strings.TrimSpace(t), evidenceMax)
	}
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return connectors.ClipUTF8(b, evidenceMax)
	}
	res := Result{
		EventID: or(text(m.fields.EventID), s.EventID),
		Profile: text(m.fields.Profile),
	}

	subject, reason := m.subject(get)
	if reason != "" {
		res.Skip = reason
		return res
	}
	occurred, reason := m.occurredAt(get, s.OccurredAt)
	if reason != "" {
		res.Skip = reason
		return res
	}
	m.contact(&res, subject, occurred, s.Brand)
	ev := consent.Evidence{
		EventID:        res.EventID,
		Event:          connectors.ClipUTF8(s.Event, evidenceMax),
		FormID:         or(text(m.fields.FormID), s.FormID),
		WordingVersion: text(m.fields.WordingVersion),
		WordingHash:    text(m.fields.WordingHash),
		PageURL:        text(m.fields.PageURL),
		IP:             text(m.fields.IP),
		UserAgent:      text(m.fields.UserAgent),
	}

	answered := false
	for _, r := range m.consents {
		v, ok := get(r.field)
		if !ok {
			continue
		}
		box, raw := consent.ParseCheckbox(v)
		sig := consent.Signal{
			Subject:    subject,
			Channel:    r.channel,
			Brand:      r.brand,
			Purpose:    r.purpose,
			OccurredAt: occurred,
			Source:     m.source,
			Evidence:   ev,
		}
		sig.Evidence.Field = connectors.ClipUTF8(r.field, evidenceMax)
		sig.Evidence.Checkbox = strings.ToValidUTF8(raw, "")
		if r.purpose == consent.PurposePartners {
			// The partner list the person saw: the submission's own field
			// (fields.partner_list), else the list the mapping says the form
			// shows. Without one a partners opt-in is not informed
			// (docs/rules.md, "Partners").
			sig.Evidence.PartnerList = or(text(m.fields.PartnerList), r.partnerList)
		}
		switch box {
		case consent.CheckboxAbsent:
			continue
		case consent.CheckboxUnticked:
			answered = true
			if !r.withdrawal {
				continue
			}
			sig.Status = consent.StatusWithdrawn
		case consent.CheckboxTicked:
			answered = true
			sig.Status = consent.StatusGranted
			if r.doubleOptIn {
				if confirmedAt, ok := m.confirmedAt(get); ok {
					sig.Evidence.ConfirmedAt = &confirmedAt
					sig.Evidence.OptInLevel = OptInDouble
				} else {
					sig.Status = consent.StatusPending
				}
			}
			if pre := m.preTicked(get, r); pre != nil {
				sig.Evidence.PreTicked = pre
				if *pre {
					sig.Problems = append(sig.Problems, ProblemPreTicked)
				}
			}
			sig.Evidence.Required = r.required
			if r.problem != "" {
				sig.Problems = append(sig.Problems, r.problem)
			}
		default: // ambiguous: recorded, never applied
			answered = true
			sig.Status = consent.StatusGranted
			sig.Evidence.Required = r.required
			sig.Problems = append(sig.Problems, ProblemAmbiguous)
			if r.problem != "" {
				sig.Problems = append(sig.Problems, r.problem)
			}
		}
		res.Signals = append(res.Signals, sig)
	}
	if s.GPC {
		// Global Privacy Control: the person objects to the sale or sharing
		// of their personal data (https://privacycg.github.io/gpc-spec/; a
		// valid "do not sell or share" request under CCPA/CPRA §1798.135,
		// an objection under GDPR art. 21). It is a withdrawal of
		// sale_sharing for the source's brand, on the channel the person is
		// known by; it never reaches destinations that do not honour
		// sale_sharing.
		ch := consent.ChannelEmail
		if subject.Email == "" {
			ch = consent.ChannelSMS
		}
		sig := consent.Signal{Subject: subject, Channel: ch, Brand: m.brand, Purpose: consent.PurposeSaleSharing,
			Status: consent.StatusWithdrawn, OccurredAt: occurred, Source: m.source, Evidence: ev}
		sig.Evidence.Field, sig.Evidence.Checkbox, sig.Evidence.GPC = GPCHeader, "1", true
		res.Signals = append(res.Signals, sig)
	}
	if len(res.Signals) == 0 {
		if answered {
			res.Skip = "no consent given or withdrawn (boxes unticked)"
		} else {
			res.Skip = "no consent field answered"
		}
	}
	return res
}

// contact adds the submission's activity and profile facts to res.
func (m *Mapper) contact(res *Result, subject consent.Subject, at time.Time, brand string) {
	if brand == "" {
		brand = m.brand
	}
	brand = connectors.ClipUTF8(brand, evidenceMax)
	channel := consent.ChannelEmail
	if subject.Email == "" {
		channel = consent.ChannelSMS
	}
	res.Activities = append(res.Activities, consent.Activity{
		Subject:    subject,
		Brand:      brand,
		Channel:    channel,
		Kind:       consent.ActivityForm,
		OccurredAt: at,
		Source:     m.source,
	})
	said, _ := parseProfile(res.Profile)
	for _, p := range []consent.Profile{said, m.profile} {
		if p == "" || (len(res.Profiles) > 0 && res.Profiles[0].Profile == p) {
			continue
		}
		res.Profiles = append(res.Profiles, consent.ProfileFact{
			Subject:    subject,
			Brand:      brand,
			Profile:    p,
			OccurredAt: at,
			Source:     m.source,
		})
	}
}

// parseProfile reads "customer" or "professional" (case-insensitive,
// trimmed); anything else ("prospect", "", free text) is no profile fact.
func parseProfile(v string) (consent.Profile, bool) {
	switch p := consent.Profile(strings.ToLower(strings.TrimSpace(v))); p {
	case consent.ProfileCustomer, consent.ProfileProfessional:
		return p, true
	}
	return "", false
}

// confirmedAt reads fields.confirmed_at as a time (in the source's zone
// when it carries none).
func (m *Mapper) confirmedAt(get Lookup) (time.Time, bool) {
	if m.fields.ConfirmedAt == "" {
		return time.Time{}, false
	}
	v, ok := get(m.fields.ConfirmedAt)
	if !ok || v == nil {
		return time.Time{}, false
	}
	return ParseTime(v, m.loc)
}

// subject reads the email and phone. An email that is not an address is
// dropped (with a phone left, the phone carries the signal). The email is
// kept as sent: the worker normalizes it.
func (m *Mapper) subject(get Lookup) (consent.Subject, string) {
	var sub consent.Subject
	emailSeen := false
	if m.fields.Email != "" {
		if v, ok := get(m.fields.Email); ok {
			if t, ok := Text(v); ok && strings.TrimSpace(t) != "" {
				emailSeen = true
				// U+FFFD stands for bytes that were not UTF-8: the address is
				// corrupt, never push it to a provider.
				if len(t) <= maxSubjectIdentifier && !strings.ContainsRune(t, utf8.RuneError) {
					if _, _, err := consent.NormalizeEmail(t); err == nil {
						sub.Email = t
					}
				}
			}
		}
	}
	if m.fields.Phone != "" {
		if v, ok := get(m.fields.Phone); ok {
			if t, ok := Text(v); ok {
				t = strings.TrimSpace(t)
				if t != "" && len(t) <= maxPhoneIdentifierLen {
					sub.Phone = t
				}
			}
		}
	}
	switch {
	case sub.Email != "" || sub.Phone != "":
		return sub, ""
	case emailSeen:
		return sub, "email is not an address"
	}
	if m.fields.Email == "" {
		return sub, "no phone"
	}
	return sub, "no email"
}

func (m *Mapper) occurredAt(get Lookup, fallback time.Time) (time.Time, string) {
	reason := "no occurred_at"
	if m.fields.OccurredAt != "" {
		if v, ok := get(m.fields.OccurredAt); ok && v != nil {
			if t, ok := ParseTime(v, m.loc); ok {
				return t, ""
			}
			reason = "occurred_at is not a readable time"
		}
	}
	if !fallback.IsZero() {
		if t, ok := inRange(fallback.UTC()); ok {
			return t, ""
		}
	}
	return time.Time{}, reason
}

// preTicked reports what is known about a box being pre-ticked: true when
// the mapping says so (pre_ticked: true) or the payload carries a ticked
// "<field>_pre_ticked" value, false when the payload says explicitly it was
// not, nil when nothing is known.
func (m *Mapper) preTicked(get Lookup, r rule) *bool {
	yes, no := true, false
	if r.preTicked {
		return &yes
	}
	v, ok := get(r.field + preTickedSuffix)
	if !ok {
		return nil
	}
	switch box, _ := consent.ParseCheckbox(v); box {
	case consent.CheckboxTicked:
		return &yes
	case consent.CheckboxUnticked:
		return &no
	}
	return nil
}
