package klaviyo

import (
	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

func init() {
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind: Kind,
		// Klaviyo steady limits of the profile and bulk job endpoints: 700/min (https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling).
		RateLimit: 10,
		Options:   func() any { return new(Options) },
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
