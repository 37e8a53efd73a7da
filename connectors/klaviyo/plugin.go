package klaviyo

import (
	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

func init() {
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind:    Kind,
		Options: func() any { return new(Options) },
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
