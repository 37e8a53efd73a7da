package sendgrid

import (
	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

// Options are a SendGrid destination's own keys.
type Options struct {
	// OnBehalfOf is sent as the "on-behalf-of" header: a subuser name or
	// "account-id N" (parent accounts acting for a subuser).
	OnBehalfOf string `yaml:"on_behalf_of"`
}

func init() {
	connectors.RegisterSource(connectors.SourcePlugin{Kind: "sendgrid", New: func(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
		return NewSource(cfg, deps)
	}})
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind: "sendgrid",
		// SendGrid: 600 requests/min per endpoint (https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits).
		RateLimit: 10,
		Options:   func() any { return new(Options) },
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
