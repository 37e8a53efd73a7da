package connectors

import (
	"fmt"
	"strings"
	"sync"

	"github.com/consentsync/consentsync/config"
)

// SourcePlugin is what a vendor package registers, from its init function,
// for one source kind (the database/sql driver pattern): importing the
// package is all it takes to make the kind configurable and buildable.
type SourcePlugin struct {
	// Kind is the config kind ("pipedrive").
	Kind string
	// Options returns a new value of the vendor's own options (see
	// config.Kind.Options), or is nil.
	Options func() any
	// New builds the connector; cfg.Options holds the decoded options.
	// Errors name the key relative to the source ("secrets: ...").
	New func(cfg config.Source, deps Deps) (Source, error)
}

// DestinationPlugin is what a vendor package registers for one destination
// kind.
type DestinationPlugin struct {
	Kind    string
	Options func() any
	// NoAPIKey: the kind authenticates without destinations[].api_key.
	NoAPIKey bool
	// Channels are the channels the kind pushes (config.Kind.Channels);
	// nil: email only.
	Channels []string
	// RateLimit is the provider's published request rate for the calls
	// the destination makes, in requests per second (0: none published);
	// destinations[].rate_limit overrides it.
	RateLimit float64
	// New builds the connector. The Destination may also implement Checker
	// (read-back verification and drift) and Lifter (lift policy).
	New func(cfg config.Destination, deps Deps) (Destination, error)
}

var plugins struct {
	sync.RWMutex
	sources      map[string]SourcePlugin
	destinations map[string]DestinationPlugin
}

// RegisterSource registers p. It panics on an empty or repeated kind, or a
// nil New (programming errors, found when the program starts).
func RegisterSource(p SourcePlugin) {
	if p.New == nil {
		panic("connectors: source plugin " + p.Kind + " without New")
	}
	config.RegisterSourceKind(config.Kind{Name: p.Kind, Options: p.Options})
	plugins.Lock()
	defer plugins.Unlock()
	if plugins.sources == nil {
		plugins.sources = map[string]SourcePlugin{}
	}
	plugins.sources[p.Kind] = p
}

// RegisterDestination registers p, like RegisterSource.
func RegisterDestination(p DestinationPlugin) {
	if p.New == nil {
		panic("connectors: destination plugin " + p.Kind + " without New")
	}
	config.RegisterDestinationKind(config.Kind{Name: p.Kind, Options: p.Options, NoAPIKey: p.NoAPIKey, Channels: p.Channels})
	plugins.Lock()
	defer plugins.Unlock()
	if plugins.destinations == nil {
		plugins.destinations = map[string]DestinationPlugin{}
	}
	plugins.destinations[p.Kind] = p
}

// NewSource builds the source cfg configures. An unregistered kind is an
// error naming the registered ones.
func NewSource(cfg config.Source, deps Deps) (Source, error) {
	plugins.RLock()
	p, ok := plugins.sources[cfg.Kind]
	plugins.RUnlock()
	if !ok {
		return nil, fmt.Errorf("kind %q is not a source kind (built: %s)", cfg.Kind, strings.Join(config.SourceKinds(), ", "))
	}
	return p.New(cfg, deps)
}

// NewDestination builds the destination cfg configures, its HTTP
// requests paced by cfg.RateLimit or the kind's RateLimit (Deps.WithRateLimit).
// An unregistered kind is an error naming the registered ones.
func NewDestination(cfg config.Destination, deps Deps) (Destination, error) {
	plugins.RLock()
	p, ok := plugins.destinations[cfg.Kind]
	plugins.RUnlock()
	if !ok {
		return nil, fmt.Errorf("kind %q is not a destination kind (built: %s)", cfg.Kind, strings.Join(config.DestinationKinds(), ", "))
	}
	perSecond := RateLimitOf(cfg)
	return p.New(cfg, deps.WithRateLimit(cfg.Name, perSecond, int(perSecond)))
}

// RateLimitOf is the request rate cfg's HTTP requests are paced at, in
// requests per second: cfg.RateLimit, else its kind's published RateLimit;
// 0 means unpaced (or an unregistered kind).
func RateLimitOf(cfg config.Destination) float64 {
	if cfg.RateLimit > 0 {
		return cfg.RateLimit
	}
	plugins.RLock()
	defer plugins.RUnlock()
	return plugins.destinations[cfg.Kind].RateLimit
}
