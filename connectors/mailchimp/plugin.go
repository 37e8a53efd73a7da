package mailchimp

import (
	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

// Options are a Mailchimp destination's own keys.
type Options struct {
	// ListID is the audience whose members are unsubscribed (required).
	ListID string `yaml:"list_id"`
}

// Validate requires list_id.
func (o *Options) Validate(_ bool, bad func(key, format string, args ...any)) {
	if o.ListID == "" {
		bad("list_id", "is required (the audience to update)")
	}
}

func init() {
	connectors.RegisterSource(connectors.SourcePlugin{Kind: "mailchimp", New: func(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
		return NewSource(cfg, deps)
	}})
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind:    "mailchimp",
		Options: func() any { return new(Options) },
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
