// Package registry builds connectors from config by kind. Each vendor
// package registers its own kinds when imported (connectors.RegisterSource,
// connectors.RegisterDestination); the import list below is the one place
// that names them all: adding a vendor is one line here.
package registry

import (
	"fmt"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"

	// Vendors, one line each.
	_ "github.com/consentsync/consentsync/connectors/axeptio"
	_ "github.com/consentsync/consentsync/connectors/brevo"
	_ "github.com/consentsync/consentsync/connectors/didomi"
	_ "github.com/consentsync/consentsync/connectors/form"
	_ "github.com/consentsync/consentsync/connectors/hubspot"
	_ "github.com/consentsync/consentsync/connectors/klaviyo"
	_ "github.com/consentsync/consentsync/connectors/mailchimp"
	_ "github.com/consentsync/consentsync/connectors/mailgun"
	_ "github.com/consentsync/consentsync/connectors/pipedrive"
	_ "github.com/consentsync/consentsync/connectors/postmark"
	_ "github.com/consentsync/consentsync/connectors/salesforce"
	_ "github.com/consentsync/consentsync/connectors/sendgrid"
	_ "github.com/consentsync/consentsync/connectors/ses"
	_ "github.com/consentsync/consentsync/connectors/shopify"
	_ "github.com/consentsync/consentsync/connectors/standard"
	_ "github.com/consentsync/consentsync/connectors/typeform"
	_ "github.com/consentsync/consentsync/connectors/webflow"
)

// Source builds the inbound connector for cfg. An unbuilt kind is an error
// naming it.
func Source(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
	return connectors.NewSource(cfg, deps)
}

// Destination builds the outbound connector for cfg. An unbuilt kind is an
// error naming it.
func Destination(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
	return connectors.NewDestination(cfg, deps)
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
