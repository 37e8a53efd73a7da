// Package config loads and validates consentsync's configuration: a YAML file
// named by CONSENTSYNC_CONFIG (sources, destinations, policy, worker and
// server settings) plus process settings from the environment (DATABASE_URL,
// REDIS_URL, HTTP_ADDR, CONSENTSYNC_ADMIN_TOKEN). Every default lives in
// Defaults. Errors name the path of the bad key ("sources[2].kind: ...").
package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/nyaruka/phonenumbers"

	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/links"
)

// Config is the whole configuration.
type Config struct {
	Policy       Policy        `yaml:"policy"`
	Server       Server        `yaml:"server"`
	Worker       Worker        `yaml:"worker"`
	Sources      []Source      `yaml:"sources"`
	Destinations []Destination `yaml:"destinations"`
	// Pages are the public unsubscribe, preference-centre and
	// confirmation pages (config/pages.go).
	Pages Pages `yaml:"pages"`

	Process Process `yaml:"-"`

	// ReadOnly is set by LoadReadOnly (Options.AllowMissingSecrets): secrets
	// may be empty, so the configuration is fit for commands that read the
	// database and the queues, never for building connectors.
	ReadOnly bool `yaml:"-"`
	// Unset lists the environment variables the file references but the
	// environment lacks, when ReadOnly (they expanded to "").
	Unset []string `yaml:"-"`
}

// Process holds the settings that come from the environment only.
type Process struct {
	// DatabaseURL is a libpq URL. The default is the database the Makefile,
	// docker-compose.yml and README use: user postgres with compose's
	// password (ignored under trust auth), database consentsync (created
	// when missing), never the postgres maintenance database.
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres:consentsync@127.0.0.1:5432/consentsync?sslmode=disable"`
	// RedisURL is a redis:// URL; its path selects the DB index.
	RedisURL string `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	// HTTPAddr is the listen address of serve and all: the public
	// listener, with the webhook receiver (POST /webhooks/{source}) and
	// the probes (/healthz, /readyz) only.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8080"`
	// AdminToken is the full-access token of the ops listener (OPS_ADDR):
	// the admin API (/v1/...), the queue UI (/ops/queues/), /metrics and
	// /debug/pprof/. Sent as "Authorization: Bearer <token>" or as the
	// password of HTTP Basic auth (any user name). With neither token set
	// the ops listener answers 403 on everything but the probes.
	AdminToken string `env:"CONSENTSYNC_ADMIN_TOKEN"`
	// ViewerToken is the read-only token of the ops listener: GET and HEAD
	// on the admin API (other methods 403), the queue UI in read-only
	// mode, /metrics; never /debug/pprof/. It must differ from AdminToken.
	ViewerToken string `env:"CONSENTSYNC_VIEWER_TOKEN"`
	// OpsAddr is the ops listener of serve, work and all (default
	// 127.0.0.1:9090, loopback only): /healthz, /readyz, /metrics, the
	// admin API, the queue UI and /debug/pprof/, behind the tokens. "off"
	// disables it (then there is no admin API). In a container set
	// ":9090" so that it can be reached from outside.
	OpsAddr string `env:"OPS_ADDR" envDefault:"127.0.0.1:9090"`
}

// Policy is how consent is judged.
type Policy struct {
	// ConsentTTL is how long a prospect's consent lasts without a qualifying
	// contact from the person (default 26280h = 3 years).
	ConsentTTL time.Duration `yaml:"consent_ttl"`
	// StrictQuality makes an "unknown" quality criterion block eligibility.
	StrictQuality bool `yaml:"strict_quality"`
	// PhoneRegion is the ISO 3166-1 region national phone numbers are read in
	// (default FR).
	PhoneRegion string `yaml:"phone_region"`
	// ProfessionalDomains are email domains whose addresses are professional.
	ProfessionalDomains []string `yaml:"professional_domains"`
	// WithdrawalDeadline is how long a withdrawal may take to be honoured
	// (sent and, where the destination can be read back, verified) at
	// every destination before `consentsync overdue` lists it (default
	// 48h: Gmail and Yahoo require unsubscribes honoured within two days;
	// https://support.google.com/a/answer/81126).
	WithdrawalDeadline time.Duration `yaml:"withdrawal_deadline"`
}

// Server is the HTTP receiver's settings.
type Server struct {
	// BodyLimit is the largest webhook body accepted, in bytes (default
	// 1 MiB); larger ones get 413.
	BodyLimit int64 `yaml:"body_limit"`
	// DrainGrace is how long serve keeps answering after SIGTERM, with
	// /readyz already 503, so a load balancer stops sending before the
	// listener closes (default 5s); in-flight requests then get up to 10 s
	// more.
	DrainGrace time.Duration `yaml:"drain_grace"`
	// CommitWait is how long the receiver gathers concurrent webhooks into
	// one multi-row inbox insert (group commit) before committing (default
	// 2ms). Each request is answered only once its own row is durable.
	CommitWait time.Duration `yaml:"commit_wait"`
	// CommitRows is the most requests one group commit carries (default 256).
	CommitRows int `yaml:"commit_rows"`
	// MetricsOpen serves /metrics on the ops listener without a token
	// (default false: the admin or the viewer token is required). Set it
	// only where the ops listener is on a private network that only the
	// scraper reaches.
	MetricsOpen bool `yaml:"metrics_open"`
}

// Worker is the asynq worker's settings.
type Worker struct {
	// Concurrency is how many inbound tasks (each a batch of up to
	// InboundBatch webhooks) one worker process reconciles at once (default 4).
	Concurrency int `yaml:"concurrency"`
	// InboundBatch is how many webhooks one inbound task reconciles in one
	// Postgres transaction at most (default 100).
	InboundBatch int `yaml:"inbound_batch"`
	// PushConcurrency is how many push tasks one worker process runs at
	// once, apart from inbound tasks so that a provider storm never slows
	// reconciliation (default 4).
	PushConcurrency int `yaml:"push_concurrency"`
	// PushLinger is how long suppressions wait for others to fill a
	// provider call (default 200ms).
	PushLinger time.Duration `yaml:"push_linger"`
	// CircuitFailures is how many failed calls in a row open a
	// destination's circuit (default 3): no call until the retry time, then
	// one probe call whose success closes it.
	CircuitFailures int `yaml:"circuit_failures"`
	// SweepAfter is how old an unfinished inbox or outbox row must be before
	// the sweeper re-enqueues it (default 30s).
	SweepAfter time.Duration `yaml:"sweep_after"`
	// SweepEvery is how often the sweeper runs (default SweepAfter/2).
	SweepEvery time.Duration `yaml:"sweep_every"`
	// MaxRetry is how many times asynq retries a failing task (default 12).
	MaxRetry int `yaml:"max_retry"`
	// PushWaitCap is the longest Retry-After a destination call waits inside
	// one attempt (default 30s); longer waits reschedule the task.
	PushWaitCap time.Duration `yaml:"push_wait_cap"`
	// PushBatch is how many outbox rows one push call carries at most
	// (default 500, and never more than the provider's own limit).
	PushBatch int `yaml:"push_batch"`
	// VerifyAfter is how long after a push the destination is read back
	// to check it holds the suppression (default 30s; destinations that
	// cannot be read back are not asked). Each unanswered read-back waits
	// twice as long as the one before.
	VerifyAfter time.Duration `yaml:"verify_after"`
	// VerifyAttempts is how many read-backs a suppression gets before it
	// is left unverified (default 6).
	VerifyAttempts int `yaml:"verify_attempts"`
	// DriftEvery is how often the worker compares what each destination
	// holds with what it should hold, and re-pushes what is missing
	// (default 24h; one worker process at a time).
	DriftEvery time.Duration `yaml:"drift_every"`
	// DriftSample is how many suppressions per destination one periodic
	// drift check reads back, oldest first (default 0: all of them).
	DriftSample int `yaml:"drift_sample"`
}

// Source is one webhook sender; it is served at POST /webhooks/{name}.
type Source struct {
	Name  string `yaml:"name"`
	Kind  string `yaml:"kind"`
	Brand string `yaml:"brand"`
	// Secrets verify requests; several allow rotation. Their meaning depends
	// on the kind (HMAC key, ECDSA public key, URL token, organization id).
	Secrets []string `yaml:"secrets"`
	// Profile is the default profile of the subjects this source reports
	// (prospect, customer, professional).
	Profile string `yaml:"profile"`
	// WithdrawalScope is how far this source's withdrawals reach: "brand"
	// (default: the brand the signal names) or "all_brands" (every
	// configured brand, and every brand's destinations: an unsubscribe page
	// offering "all our brands"; CNIL sanction against CALOGA, 2025).
	WithdrawalScope string `yaml:"withdrawal_scope"`
	// Tolerance is how old a signed timestamp may be (default 5m).
	Tolerance time.Duration `yaml:"tolerance"`

	// Timezone is the zone of sender times that carry none (Mailchimp
	// fired_at, form fields mapped by fields.occurred_at), an IANA name
	// (default UTC). Several kinds read it, so it is common.
	Timezone string `yaml:"timezone"`

	// Signature configures the generic form source's HMAC.
	Signature *Signature `yaml:"signature"`
	// Fields maps a form's fields to signals (form, typeform, webflow, standard).
	Fields *Fields `yaml:"fields"`

	// Options holds the kind's own keys beyond the ones above: a pointer
	// to the vendor's options struct (Kind.Options), or nil; read it with
	// OptionsOf. Each vendor package documents its own keys (its
	// SourceOptions: hubspot's public_url and api_token, mailchimp's
	// lists, sendgrid's groups, salesforce's organization_id, ...).
	Options any `yaml:"-"`
}

// Signature is a generic HMAC scheme: Header carries
// Prefix + encode(HMAC-<Algorithm>(secret, raw body)).
type Signature struct {
	Header    string `yaml:"header"`
	Algorithm string `yaml:"algorithm"` // sha256 | sha512
	Encoding  string `yaml:"encoding"`  // hex | base64
	Prefix    string `yaml:"prefix"`    // e.g. "sha256="
}

// Fields maps a submission's fields to a signal. Paths are dotted
// ("hidden.consent_version").
type Fields struct {
	Email          string `yaml:"email"`
	Phone          string `yaml:"phone"`
	OccurredAt     string `yaml:"occurred_at"`
	EventID        string `yaml:"event_id"`
	FormID         string `yaml:"form_id"`
	WordingVersion string `yaml:"wording_version"`
	WordingHash    string `yaml:"wording_hash"`
	// PartnerList names the field carrying the partner list (or its
	// version) shown with a partners box: without one, a partners opt-in
	// is not informed (docs/rules.md, "Partners").
	PartnerList string `yaml:"partner_list"`
	IP          string `yaml:"ip"`
	UserAgent   string `yaml:"user_agent"`
	PageURL     string `yaml:"page_url"`
	// Profile names a field saying who the person is: "customer" or
	// "professional" (anything else: no profile fact).
	Profile string `yaml:"profile"`
	// ConfirmedAt names the field carrying a double-opt-in confirmation
	// time; with it a double_opt_in box grants, without it it is pending.
	ConfirmedAt string         `yaml:"confirmed_at"`
	Consents    []ConsentField `yaml:"consents"`
}

// ConsentField maps one checkbox to one (channel, purpose[, brand]).
type ConsentField struct {
	Field   string `yaml:"field"`
	Channel string `yaml:"channel"`
	Purpose string `yaml:"purpose"`
	Brand   string `yaml:"brand"`
	// Withdrawal: an explicitly unticked box is a withdrawal (preference
	// centres). Otherwise unticked grants and withdraws nothing.
	Withdrawal bool `yaml:"withdrawal"`
	// PartnerList is the partner list (or its version) the form shows next
	// to this box, when the submission does not carry it (fields.partner_list).
	PartnerList string `yaml:"partner_list"`
	// PreTicked: the form shows this box ticked before the person acts, so a
	// ticked value is not an express opt-in.
	PreTicked bool `yaml:"pre_ticked"`
	// Required: the form cannot be sent without ticking this box, so the
	// consent is not free (a condition of the service).
	Required bool `yaml:"required"`
	// DoubleOptIn: a ticked box only requests consent; it grants once
	// confirmed (fields.confirmed_at), and is pending until then.
	DoubleOptIn bool `yaml:"double_opt_in"`
}

// Destination is an email or SMS provider that receives suppressions.
type Destination struct {
	Name  string `yaml:"name"`
	Kind  string `yaml:"kind"`
	Brand string `yaml:"brand"`
	// Channels it sends on (default [email]).
	Channels []string `yaml:"channels"`
	// Purposes whose withdrawal it must honour (default [marketing]).
	Purposes []string `yaml:"purposes"`
	// BaseURL is the API root, always overridable (sandbox, EU hosts).
	BaseURL string `yaml:"base_url"`
	APIKey  string `yaml:"api_key"`
	// Timeout is one HTTP call's limit (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// Lift is what a valid express opt-in that occurred after a withdrawal
	// does here: "never" (default: the suppression stays) or
	// "on_new_opt_in" (the suppression is lifted where the provider allows
	// it; where it refuses, the subject view says the person must opt in
	// again through the provider's own form).
	Lift string `yaml:"lift"`
	// RateLimit caps the HTTP requests per second this worker process
	// makes to the destination (0: the kind's published limit, or none;
	// connectors.DestinationPlugin.RateLimit). Several worker processes each
	// have their own limiter.
	RateLimit float64 `yaml:"rate_limit"`

	// Options holds the kind's own keys (list_id, message_stream, ...): a
	// pointer to the vendor's options struct (Kind.Options), or nil.
	Options any `yaml:"-"`
}

// DefaultMemoryLimit is the Go runtime's soft memory limit (bytes) of
// serve, work and all when GOMEMLIMIT is not set: the garbage collector
// works harder as the heap nears it instead of letting a burst (a
// 10,000-event import) double the process's memory.
const DefaultMemoryLimit = 128 << 20

// Defaults fills every unset value with its default. All defaults live here.
func (c *Config) Defaults() {
	if c.Policy.ConsentTTL == 0 {
		c.Policy.ConsentTTL = 26280 * time.Hour
	}
	if c.Policy.PhoneRegion == "" {
		c.Policy.PhoneRegion = "FR"
	}
	if c.Server.BodyLimit == 0 {
		c.Server.BodyLimit = 1 << 20
	}
	if c.Server.DrainGrace == 0 {
		c.Server.DrainGrace = 5 * time.Second
	}
	if c.Server.CommitWait == 0 {
		c.Server.CommitWait = 2 * time.Millisecond
	}
	if c.Server.CommitRows == 0 {
		c.Server.CommitRows = 256
	}
	if c.Worker.Concurrency == 0 {
		c.Worker.Concurrency = 4
	}
	if c.Worker.InboundBatch == 0 {
		c.Worker.InboundBatch = 100
	}
	if c.Worker.PushConcurrency == 0 {
		c.Worker.PushConcurrency = 4
	}
	if c.Worker.PushLinger == 0 {
		c.Worker.PushLinger = 200 * time.Millisecond
	}
	if c.Worker.CircuitFailures == 0 {
		c.Worker.CircuitFailures = 3
	}
	if c.Worker.SweepAfter == 0 {
		c.Worker.SweepAfter = 30 * time.Second
	}
	if c.Worker.SweepEvery == 0 {
		c.Worker.SweepEvery = max(c.Worker.SweepAfter/2, time.Second)
	}
	if c.Worker.MaxRetry == 0 {
		c.Worker.MaxRetry = 12
	}
	if c.Worker.PushWaitCap == 0 {
		c.Worker.PushWaitCap = 30 * time.Second
	}
	if c.Worker.PushBatch == 0 {
		c.Worker.PushBatch = 500
	}
	if c.Worker.VerifyAfter == 0 {
		c.Worker.VerifyAfter = 30 * time.Second
	}
	if c.Worker.VerifyAttempts == 0 {
		c.Worker.VerifyAttempts = 6
	}
	if c.Worker.DriftEvery == 0 {
		c.Worker.DriftEvery = 24 * time.Hour
	}
	if c.Policy.WithdrawalDeadline == 0 {
		c.Policy.WithdrawalDeadline = 48 * time.Hour
	}
	c.Pages.defaults()
	for i := range c.Sources {
		s := &c.Sources[i]
		if k, ok := SourceKind(s.Kind); ok {
			s.Options = defaultOptions(k, s.Options)
		}
		if s.Tolerance == 0 {
			s.Tolerance = 5 * time.Minute
		}
		if s.Timezone == "" {
			s.Timezone = "UTC"
		}
		if s.Profile == "" {
			s.Profile = "prospect"
		}
		if s.WithdrawalScope == "" {
			s.WithdrawalScope = "brand"
		}
	}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		if k, ok := DestinationKind(d.Kind); ok {
			d.Options = defaultOptions(k, d.Options)
		}
		if len(d.Channels) == 0 {
			d.Channels = []string{"email"}
		}
		if len(d.Purposes) == 0 {
			d.Purposes = []string{"marketing"}
		}
		if d.Timeout == 0 {
			d.Timeout = 10 * time.Second
		}
		if d.Lift == "" {
			d.Lift = "never"
		}
	}
}

// defaultOptions returns o, or a new options value of k when o is nil,
// with its defaults applied.
func defaultOptions(k Kind, o any) any {
	if k.Options == nil {
		return o
	}
	if o == nil {
		o = k.Options()
	}
	if d, ok := o.(Defaulter); ok {
		d.Defaults()
	}
	return o
}

// validateOptions runs the kind's own checks on o, naming paths under p.
func validateOptions(k Kind, o any, p string, readOnly bool, bad func(path, format string, args ...any)) {
	if v, ok := o.(OptionsValidator); ok && k.Options != nil {
		v.Validate(readOnly, func(key, format string, args ...any) { bad(p+"."+key, format, args...) })
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Validate checks values after Defaults. Each error names the key's path.
// When c.ReadOnly, the checks that require secrets (sources[].secrets
// entries not empty, destinations[].api_key required) are skipped.
func (c *Config) Validate() error {
	var errs []string
	bad := func(path, format string, args ...any) {
		errs = append(errs, path+": "+fmt.Sprintf(format, args...))
	}
	if c.Policy.ConsentTTL < 0 {
		bad("policy.consent_ttl", "must be positive")
	}
	if !phonenumbers.GetSupportedRegions()[strings.ToUpper(c.Policy.PhoneRegion)] {
		bad("policy.phone_region", "%q is not a region phone numbers can be read in (ISO 3166-1 alpha-2, e.g. FR)", c.Policy.PhoneRegion)
	}
	if c.Server.BodyLimit < 1024 {
		bad("server.body_limit", "must be at least 1024 bytes")
	}
	if c.Server.DrainGrace < 0 {
		bad("server.drain_grace", "must not be negative")
	}
	if c.Server.CommitWait < 0 || c.Server.CommitWait > time.Second {
		bad("server.commit_wait", "must be between 0 and 1s")
	}
	if c.Server.CommitRows < 1 || c.Server.CommitRows > 10000 {
		bad("server.commit_rows", "must be between 1 and 10000")
	}
	if c.Worker.Concurrency < 1 {
		bad("worker.concurrency", "must be at least 1")
	}
	if c.Worker.InboundBatch < 1 || c.Worker.InboundBatch > 1000 {
		bad("worker.inbound_batch", "must be between 1 and 1000")
	}
	if c.Worker.PushConcurrency < 1 {
		bad("worker.push_concurrency", "must be at least 1")
	}
	if c.Worker.PushLinger < time.Millisecond || c.Worker.PushLinger > 10*time.Second {
		bad("worker.push_linger", "must be between 1ms and 10s")
	}
	if c.Worker.CircuitFailures < 1 {
		bad("worker.circuit_failures", "must be at least 1")
	}
	if c.Worker.SweepAfter < time.Second {
		bad("worker.sweep_after", "must be at least 1s")
	}
	if c.Worker.SweepEvery < 100*time.Millisecond {
		bad("worker.sweep_every", "must be at least 100ms")
	}
	if c.Worker.MaxRetry < 0 {
		bad("worker.max_retry", "must not be negative")
	}
	if c.Worker.PushBatch < 1 {
		bad("worker.push_batch", "must be at least 1")
	}
	if c.Worker.VerifyAfter < 100*time.Millisecond {
		bad("worker.verify_after", "must be at least 100ms")
	}
	if c.Worker.VerifyAttempts < 1 {
		bad("worker.verify_attempts", "must be at least 1")
	}
	if c.Worker.DriftEvery < time.Minute {
		bad("worker.drift_every", "must be at least 1m")
	}
	if c.Worker.DriftSample < 0 {
		bad("worker.drift_sample", "must not be negative")
	}
	if c.Policy.WithdrawalDeadline < time.Minute {
		bad("policy.withdrawal_deadline", "must be at least 1m")
	}
	c.Pages.validate(c.ReadOnly, bad)
	seen := map[string]bool{}
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		switch {
		case !nameRE.MatchString(s.Name):
			bad(p+".name", "%q must be lower-case letters, digits, '.', '_' or '-' (it is a URL path segment)", s.Name)
		case seen[s.Name]:
			bad(p+".name", "%q is used twice", s.Name)
		}
		seen[s.Name] = true
		if k, ok := SourceKind(s.Kind); !ok {
			bad(p+".kind", "%q is not a source kind (want one of %s)", s.Kind, strings.Join(SourceKinds(), ", "))
		} else {
			validateOptions(k, s.Options, p, c.ReadOnly, bad)
		}
		if s.Brand == "" {
			bad(p+".brand", "is required")
		} else if c.Pages.Enabled() && len(s.Brand) > links.MaxBrand {
			bad(p+".brand", "must be at most %d bytes with pages.keys set (a link's token carries it)", links.MaxBrand)
		}
		for j, sec := range s.Secrets {
			if sec == "" && !c.ReadOnly {
				bad(fmt.Sprintf("%s.secrets[%d]", p, j), "is empty")
			}
		}
		switch s.Profile {
		case "prospect", "customer", "professional":
		default:
			bad(p+".profile", "%q is not a profile (want prospect, customer or professional)", s.Profile)
		}
		switch s.WithdrawalScope {
		case "brand", "all_brands":
		default:
			bad(p+".withdrawal_scope", "%q is not a scope (want brand or all_brands)", s.WithdrawalScope)
		}
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			bad(p+".timezone", "%q is not an IANA time zone", s.Timezone)
		}
		if s.Tolerance < 0 {
			bad(p+".tolerance", "must be positive")
		}
		if f := s.Fields; f != nil {
			for j, cf := range f.Consents {
				cp := fmt.Sprintf("%s.fields.consents[%d]", p, j)
				if cf.Field == "" {
					bad(cp+".field", "is required")
				}
				if !slices.Contains([]string{"email", "sms", "phone", "post"}, cf.Channel) {
					bad(cp+".channel", "%q is not a channel (want email, sms, phone or post)", cf.Channel)
				}
				if _, err := consent.ParsePurpose(cf.Purpose); err != nil {
					bad(cp+".purpose", "%q is not a purpose (want marketing, partners, cookies, cookies:<name> or sale_sharing)", cf.Purpose)
				}
			}
		}
		if sg := s.Signature; sg != nil {
			if sg.Header == "" {
				bad(p+".signature.header", "is required")
			}
			if sg.Algorithm != "sha256" && sg.Algorithm != "sha512" {
				bad(p+".signature.algorithm", "%q: want sha256 or sha512", sg.Algorithm)
			}
			if sg.Encoding != "hex" && sg.Encoding != "base64" {
				bad(p+".signature.encoding", "%q: want hex or base64", sg.Encoding)
			}
		}
	}
	seenD := map[string]bool{}
	for i, d := range c.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		switch {
		case !nameRE.MatchString(d.Name):
			bad(p+".name", "%q must be lower-case letters, digits, '.', '_' or '-'", d.Name)
		case seenD[d.Name]:
			bad(p+".name", "%q is used twice", d.Name)
		}
		seenD[d.Name] = true
		k, known := DestinationKind(d.Kind)
		if !known {
			bad(p+".kind", "%q is not a destination kind (want one of %s)", d.Kind, strings.Join(DestinationKinds(), ", "))
		} else {
			validateOptions(k, d.Options, p, c.ReadOnly, bad)
		}
		if d.Brand == "" {
			bad(p+".brand", "is required")
		} else if c.Pages.Enabled() && len(d.Brand) > links.MaxBrand {
			bad(p+".brand", "must be at most %d bytes with pages.keys set (a link's token carries it)", links.MaxBrand)
		}
		pushes := k.Channels
		if len(pushes) == 0 {
			pushes = []string{"email"}
		}
		for j, ch := range d.Channels {
			switch {
			case !slices.Contains([]string{"email", "sms", "phone", "post"}, ch):
				bad(fmt.Sprintf("%s.channels[%d]", p, j), "%q is not a channel", ch)
			case known && !slices.Contains(pushes, ch):
				bad(fmt.Sprintf("%s.channels[%d]", p, j), "a %s destination cannot push %q (it pushes %s)", d.Kind, ch, strings.Join(pushes, ", "))
			}
		}
		for j, pu := range d.Purposes {
			if _, err := consent.ParsePurpose(pu); err != nil {
				bad(fmt.Sprintf("%s.purposes[%d]", p, j), "%q is not a purpose", pu)
			}
		}
		if d.BaseURL != "" && !strings.HasPrefix(d.BaseURL, "http://") && !strings.HasPrefix(d.BaseURL, "https://") {
			bad(p+".base_url", "must start with http:// or https://")
		}
		if d.APIKey == "" && !c.ReadOnly && !k.NoAPIKey {
			bad(p+".api_key", "is required")
		}
		if d.Timeout < 0 {
			bad(p+".timeout", "must be positive")
		}
		if d.RateLimit < 0 {
			bad(p+".rate_limit", "must not be negative (requests per second; 0: the kind's default)")
		}
		if d.Lift != "never" && d.Lift != "on_new_opt_in" {
			bad(p+".lift", "%q: want never or on_new_opt_in", d.Lift)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// LoadProcess reads the process settings from the environment
// (ParseProcess of os.Environ).
func LoadProcess() (Process, error) { return ParseProcess(nil) }

// ParseProcess reads the process settings from environ (variable name →
// value; nil: the process environment), applies their defaults and checks
// them: the two tokens must differ (a viewer token equal to the admin token
// would grant full access).
func ParseProcess(environ map[string]string) (Process, error) {
	var p Process
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	if err := env.ParseWithOptions(&p, opts); err != nil {
		return p, fmt.Errorf("config: environment: %w", err)
	}
	if p.ViewerToken != "" && p.ViewerToken == p.AdminToken {
		return p, fmt.Errorf("config: environment: CONSENTSYNC_VIEWER_TOKEN equals CONSENTSYNC_ADMIN_TOKEN (the viewer would have full access): give it its own value")
	}
	if p.OpsAddr == OpsOff {
		p.OpsAddr = ""
	}
	return p, nil
}

// OpsOff is the OPS_ADDR value that disables the ops listener.
const OpsOff = "off"

// Source returns the source named name.
func (c *Config) Source(name string) (Source, bool) {
	for _, s := range c.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// Destination returns the destination named name.
func (c *Config) Destination(name string) (Destination, bool) {
	for _, d := range c.Destinations {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}
