// Package registry builds connectors from config by kind, the one place that
// knows every vendor package (like database/sql drivers, but explicit: no
// init-time registration, no global state).
package registry

import (
	"fmt"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
	"github.com/consentsync/consentsync/connectors/brevo"
	"github.com/consentsync/consentsync/connectors/form"
	"github.com/consentsync/consentsync/connectors/hubspot"
	"github.com/consentsync/consentsync/connectors/mailchimp"
	"github.com/consentsync/consentsync/connectors/mailgun"
	"github.com/consentsync/consentsync/connectors/postmark"
	"github.com/consentsync/consentsync/connectors/salesforce"
	"github.com/consentsync/consentsync/connectors/sendgrid"
	"github.com/consentsync/consentsync/connectors/shopify"
	"github.com/consentsync/consentsync/connectors/standard"
	"github.com/consentsync/consentsync/connectors/typeform"
	"github.com/consentsync/consentsync/connectors/webflow"
)

// Source builds the inbound connector for cfg. An unbuilt kind is an error
// naming it.
func Source(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
	switch cfg.Kind {
	case "hubspot":
		return hubspot.NewSource(cfg, deps)
	case "typeform":
		return typeform.NewSource(cfg, deps)
	case "mailchimp":
		return mailchimp.NewSource(cfg, deps)
	case "sendgrid":
		return sendgrid.NewSource(cfg, deps)
	case "shopify":
		return shopify.NewSource(cfg, deps)
	case "postmark":
		return postmark.NewSource(cfg, deps)
	case "mailgun":
		return mailgun.NewSource(cfg, deps)
	case "brevo":
		return brevo.NewSource(cfg, deps)
	case "salesforce":
		return salesforce.NewSource(cfg, deps)
	case "webflow":
		return webflow.NewSource(cfg, deps)
	case "standard":
		return standard.NewSource(cfg, deps)
	case "form":
		return form.NewSource(cfg, deps)
	}
	return nil, fmt.Errorf("kind %q is not supported as a source yet", cfg.Kind)
}

// Destination builds the outbound connector for cfg. An unbuilt kind is an
// error naming it.
func Destination(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
	switch cfg.Kind {
	case "sendgrid":
		return sendgrid.NewDestination(cfg, deps)
	case "mailchimp":
		return mailchimp.NewDestination(cfg, deps)
	}
	return nil, fmt.Errorf("kind %q is not supported as a destination yet (built: sendgrid, mailchimp)", cfg.Kind)
}

// Build builds every configured source and destination. Errors name the
// config path ("sources[2]: ..."). A configuration loaded read-only
// (config.LoadReadOnly: secrets may be empty) is refused with an error
// wrapping config.ErrReadOnly.
func Build(c *config.Config, deps connectors.Deps) (map[string]connectors.Source, map[string]connectors.Destination, error) {
	if c.ReadOnly {
		return nil, nil, fmt.Errorf("connectors: %w", config.ErrReadOnly)
	}
	srcs := make(map[string]connectors.Source, len(c.Sources))
	for i, sc := range c.Sources {
		s, err := Source(sc, deps)
		if err != nil {
			return nil, nil, fmt.Errorf("config: sources[%d] (%s): %w", i, sc.Name, err)
		}
		srcs[sc.Name] = s
	}
	dsts := make(map[string]connectors.Destination, len(c.Destinations))
	for i, dc := range c.Destinations {
		d, err := Destination(dc, deps)
		if err != nil {
			return nil, nil, fmt.Errorf("config: destinations[%d] (%s): %w", i, dc.Name, err)
		}
		dsts[dc.Name] = d
	}
	return srcs, dsts, nil
}
