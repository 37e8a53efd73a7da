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

// SourceOptions are a Mailchimp source's own keys (sources[].timezone,
// which the form kinds read too, stays in config.Source).
type SourceOptions struct {
	// Lists maps an audience (list) id, data[list_id] of a webhook, to the
	// brand its events speak for; a list not named here is the source
	// brand's. NewSource refuses an empty brand ("lists[ID]: ...").
	Lists map[string]string `yaml:"lists"`
}

// Brands returns the lists' brands (config.Config.Brands).
func (o *SourceOptions) Brands() []string {
	out := make([]string, 0, len(o.Lists))
	for _, b := range o.Lists {
		out = append(out, b)
	}
	return out
}

func init() {
	connectors.RegisterSource(connectors.SourcePlugin{
		Kind:    "mailchimp",
		Options: func() any { return new(SourceOptions) },
		New: func(cfg config.Source, deps connectors.Deps) (connectors.Source, error) {
			return NewSource(cfg, deps)
		},
	})
	connectors.RegisterDestination(connectors.DestinationPlugin{
		Kind:    "mailchimp",
		Options: func() any { return new(Options) },
		New: func(cfg config.Destination, deps connectors.Deps) (connectors.Destination, error) {
			return NewDestination(cfg, deps)
		},
	})
}
