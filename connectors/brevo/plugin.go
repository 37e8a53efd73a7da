package brevo

import (
	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

func init() {
	connectors.RegisterSource(connectors.SourcePlugin{Kind: "brevo", New: func(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
		return NewSource(cfg, deps)
	}})
	// Brevo destinations have no options of their own (Options nil: any
	// key beyond the common ones is refused by config).
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind: "brevo",
		// Brevo's general limit for /v3/contacts: 36,000 requests/hour,
		// 10/s (https://developers.brevo.com/docs/api-limits).
		RateLimit: 10,
		Channels:  []string{"email", "sms"},
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
