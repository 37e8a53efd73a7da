package salesforce

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
		Kind:     Kind,
		Options:  func() any { return new(DestinationOptions) },
		NoAPIKey: true, // OAuth client credentials (client_id, client_secret)
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
