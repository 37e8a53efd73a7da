package harness

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Names and secrets of the configuration Config.YAML writes. They are
// test-only values.
const (
	// Brand is the one configured brand.
	Brand = "acme"
	// FormSource is the form source's name: webhooks go to
	// POST /webhooks/form-acme.
	FormSource = "form-acme"
	// FormSecret is its HMAC-SHA256 key; the hex signature goes in
	// SignatureHeader.
	FormSecret      = "chaos-form-secret"
	SignatureHeader = "X-Signature"
	// SendGridDest and MailchimpDest are the destinations' names; both
	// cover acme's email marketing, so every withdrawal must reach both.
	SendGridDest  = "sendgrid-acme"
	MailchimpDest = "mailchimp-acme"
	// SendGridKey, MailchimpKey and MailchimpList are what the fakes must
	// accept.
	SendGridKey   = "SG.chaos-key"
	MailchimpKey  = "chaos-key-us21"
	MailchimpList = "chaoslist01"
	// AdminToken is CONSENTSYNC_ADMIN_TOKEN of every process.
	AdminToken = "chaos-admin-token"
)

// Config is what a test chooses of consentsync's YAML configuration; zero
// fields get the defaults below (small, so that recovery bounds are
// seconds).
type Config struct {
	// SendGridURL and MailchimpURL are the destinations' base_url (the
	// fakes' URLs). Required.
	SendGridURL, MailchimpURL string
	// SweepAfter is worker.sweep_after (default 3s).
	SweepAfter time.Duration
	// SweepEvery is worker.sweep_every (unset by default: sweep_after/2).
	SweepEvery time.Duration
	// Concurrency is worker.concurrency (unset by default: 10).
	Concurrency int
	// MaxRetry is worker.max_retry (unset by default).
	MaxRetry int
	// PushWaitCap is worker.push_wait_cap (unset by default: 30s).
	PushWaitCap time.Duration
	// DestTimeout is destinations[].timeout of both destinations (default 3s).
	DestTimeout time.Duration
	// DrainGrace is server.drain_grace (written only when set: a
	// configuration without the key must still load while the core lacks it).
	DrainGrace time.Duration
	// ExtraServer and ExtraWorker are further keys of server: and worker:,
	// written verbatim (values as YAML scalars).
	ExtraServer, ExtraWorker map[string]string
}

func (c Config) withDefaults() Config {
	if c.SweepAfter == 0 {
		c.SweepAfter = 3 * time.Second
	}
	if c.DestTimeout == 0 {
		c.DestTimeout = 3 * time.Second
	}
	return c
}

// YAML renders the configuration file: one form source (FormSource, whose
// newsletter box is a withdrawal field: "on" grants, "off" withdraws,
// acme's email marketing), and the SendGrid and Mailchimp destinations.
func (c Config) YAML() string {
	c = c.withDefaults()
	var b strings.Builder
	b.WriteString("server:\n  body_limit: 1048576\n")
	if c.DrainGrace > 0 {
		fmt.Fprintf(&b, "  drain_grace: %s\n", c.DrainGrace)
	}
	writeExtra(&b, c.ExtraServer)
	b.WriteString("worker:\n")
	fmt.Fprintf(&b, "  sweep_after: %s\n", c.SweepAfter)
	if c.SweepEvery > 0 {
		fmt.Fprintf(&b, "  sweep_every: %s\n", c.SweepEvery)
	}
	if c.Concurrency > 0 {
		fmt.Fprintf(&b, "  concurrency: %d\n", c.Concurrency)
	}
	if c.MaxRetry > 0 {
		fmt.Fprintf(&b, "  max_retry: %d\n", c.MaxRetry)
	}
	if c.PushWaitCap > 0 {
		fmt.Fprintf(&b, "  push_wait_cap: %s\n", c.PushWaitCap)
	}
	writeExtra(&b, c.ExtraWorker)
	fmt.Fprintf(&b, `sources:
  - name: %s
    kind: form
    brand: %s
    secrets: [%q]
    signature: {header: %s, algorithm: sha256, encoding: hex}
    fields:
      email: email
      occurred_at: submitted_at
      event_id: event_id
      wording_version: consent_version
      consents:
        - {field: newsletter, channel: email, purpose: marketing, withdrawal: true}
destinations:
  - name: %s
    kind: sendgrid
    brand: %s
    channels: [email]
    base_url: %q
    api_key: %q
    timeout: %s
  - name: %s
    kind: mailchimp
    brand: %s
    channels: [email]
    base_url: %q
    api_key: %q
    list_id: %q
    timeout: %s
`, FormSource, Brand, FormSecret, SignatureHeader,
		SendGridDest, Brand, c.SendGridURL, SendGridKey, c.DestTimeout,
		MailchimpDest, Brand, c.MailchimpURL, MailchimpKey, MailchimpList, c.DestTimeout)
	return b.String()
}

func writeExtra(b *strings.Builder, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "  %s: %s\n", k, m[k])
	}
}

// write writes the YAML to path.
func (c Config) write(path string) error {
	return os.WriteFile(path, []byte(c.YAML()), 0o600)
}
