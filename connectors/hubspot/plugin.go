package hubspot

import (
	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

func init() {
	connectors.RegisterSource(connectors.SourcePlugin{
		Kind:    Kind,
		Options: func() any { return new(SourceOptions) },
		New: func(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
			return NewSource(cfg, deps)
		},
	})
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind: Kind,
		// HubSpot private apps: 100 requests per 10 s (https://developers.hubspot.com/docs/api/usage-details).
		RateLimit: 10,
		Options:   func() any { return new(DestinationOptions) },
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
