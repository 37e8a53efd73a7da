package config

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
)

// Kind is what a vendor package registers for one source or destination
// kind (connectors.RegisterSource, connectors.RegisterDestination): the
// config package then accepts the kind and the vendor's own keys, without
// knowing the vendor.
type Kind struct {
	// Name is the value of the kind key ("postmark").
	Name string
	// Options returns a new options value for the kind: a pointer to a
	// struct whose yaml-tagged fields are the kind's own keys, beside the
	// common ones (name, kind, brand, ...). Nil: the kind has none.
	//
	// The value may implement Defaulter and OptionsValidator. After
	// Parse, Source.Options or Destination.Options holds it.
	Options func() any
	// NoAPIKey: a destination of this kind authenticates otherwise (the
	// AWS credential chain, an OAuth client), so destinations[].api_key is
	// not required.
	NoAPIKey bool
	// Channels are the channels a destination of this kind can push
	// (destinations[].channels must be among them); nil: email only.
	Channels []string
}

// Defaulter is options that fill their own unset values.
type Defaulter interface{ Defaults() }

// OptionsValidator is options that check their own values after Defaults.
// Validate calls bad once per wrong key, key relative to the source or
// destination ("message_stream", "subscription_ids.marketing"); the error
// then names the whole path ("destinations[2].message_stream: ..."). When
// readOnly, the configuration was loaded without its secrets
// (LoadReadOnly): a missing secret is not an error.
type OptionsValidator interface {
	Validate(readOnly bool, bad func(key, format string, args ...any))
}

var kinds struct {
	sync.RWMutex
	sources, destinations map[string]Kind
}

// RegisterSourceKind makes k a source kind. It panics when the name is
// empty or already registered (a programming error, found at start).
func RegisterSourceKind(k Kind) { register(&kinds.sources, "source", k) }

// RegisterDestinationKind makes k a destination kind. It panics when the
// name is empty or already registered.
func RegisterDestinationKind(k Kind) { register(&kinds.destinations, "destination", k) }

func register(m *map[string]Kind, what string, k Kind) {
	kinds.Lock()
	defer kinds.Unlock()
	if k.Name == "" {
		panic("config: " + what + " kind without a name")
	}
	if *m == nil {
		*m = map[string]Kind{}
	}
	if _, dup := (*m)[k.Name]; dup {
		panic(fmt.Sprintf("config: %s kind %q registered twice", what, k.Name))
	}
	if k.Options != nil {
		if t := reflect.TypeOf(k.Options()); t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			panic(fmt.Sprintf("config: %s kind %q: Options must return a pointer to a struct", what, k.Name))
		}
	}
	(*m)[k.Name] = k
}

// SourceKinds returns the registered source kinds, sorted.
func SourceKinds() []string { return kindNames(kinds.sources) }

// DestinationKinds returns the registered destination kinds, sorted.
func DestinationKinds() []string { return kindNames(kinds.destinations) }

func kindNames(m map[string]Kind) []string {
	kinds.RLock()
	defer kinds.RUnlock()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func lookupKind(m map[string]Kind, name string) (Kind, bool) {
	kinds.RLock()
	defer kinds.RUnlock()
	k, ok := m[name]
	return k, ok
}

// SourceKind returns the registered source kind name.
func SourceKind(name string) (Kind, bool) { return lookupKind(kinds.sources, name) }

// DestinationKind returns the registered destination kind name.
func DestinationKind(name string) (Kind, bool) { return lookupKind(kinds.destinations, name) }

// optionsType is the struct type of kind's options, or nil.
func (k Kind) optionsType() reflect.Type {
	if k.Options == nil {
		return nil
	}
	return reflect.TypeOf(k.Options()).Elem()
}

// OptionsOf returns v (a Source's or Destination's Options) as *T, or a new
// T with its defaults when v holds none (a config built in code).
func OptionsOf[T any](v any) *T {
	if o, ok := v.(*T); ok && o != nil {
		return o
	}
	o := new(T)
	if d, ok := any(o).(Defaulter); ok {
		d.Defaults()
	}
	return o
}
