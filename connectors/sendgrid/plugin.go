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
	// Groups maps an unsubscribe group id to the purpose a suppression in
	// that group withdraws, for `consentsync import provider` (group
	// suppressions of groups not named are not imported).
	Groups map[string]string `yaml:"groups"`
}

// SourceOptions are a SendGrid source's own keys.
type SourceOptions struct {
	// Groups maps an unsubscribe group id (an event's asm_group_id) to the
	// scope its group_unsubscribe and group_resubscribe events have; an
	// unmapped group has the default scope (marketing, the source brand,
	// email).
	Groups map[string]Group `yaml:"groups"`
}

// Group is the scope of a SendGrid unsubscribe group; an empty field keeps
// the default (purpose marketing, the source brand, channel email).
// NewSource refuses a purpose or channel consent does not know
// ("groups[ID].purpose: ...").
type Group struct {
	Purpose string `yaml:"purpose"`
	Brand   string `yaml:"brand"`
	Channel string `yaml:"channel"`
}

// Brands returns the groups' brands (config.Config.Brands).
func (o *SourceOptions) Brands() []string {
	var out []string
	for _, g := range o.Groups {
		if g.Brand != "" {
			out = append(out, g.Brand)
		}
	}
	return out
}

func init() {
	connectors.RegisterSource(connectors.SourcePlugin{
		Kind:    "sendgrid",
		Options: func() any { return new(SourceOptions) },
		New: func(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
			return NewSource(cfg, deps)
		},
	})
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
