package axeptio

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
}
