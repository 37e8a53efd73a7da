package postmark

import (
	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

func init() {
	connectors.RegisterSource(connectors.SourcePlugin{Kind: "postmark", New: func(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
		return NewSource(cfg, deps)
	}})
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind:    "postmark",
		Options: func() any { return new(DestinationOptions) },
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
