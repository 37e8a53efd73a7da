package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvConfigFile names the variable that points at the YAML file.
const EnvConfigFile = "CONSENTSYNC_CONFIG"

// Load reads the file named by CONSENTSYNC_CONFIG (an empty config when the
// variable is unset), expands ${VAR}, applies defaults, validates, and reads
// the process settings from the environment. Every unset variable is an
// error (one error naming them all, see Parse): the configuration is fit to
// run the service with.
func Load() (*Config, error) { return LoadWith(Options{}) }

// LoadReadOnly is Load for commands that only read the database and the
// queues (subject, queues, expiring, verify-ledger, replay, repush): it
// needs no provider or sender secret in the environment. It is
// LoadWith(Options{AllowMissingSecrets: true}); see Options for what that
// relaxes. The Config it returns has ReadOnly set and must not be used to
// build connectors.
func LoadReadOnly() (*Config, error) { return LoadWith(Options{AllowMissingSecrets: true}) }

// ErrReadOnly is returned (wrapped) by code that refuses a configuration
// loaded with Options.AllowMissingSecrets, such as connectors/registry.Build:
// its secrets may be empty, so connectors built from it would fail to verify
// or push (fail closed).
var ErrReadOnly = errors.New("configuration loaded read-only (secrets may be missing)")

// Options changes how LoadWith and ParseWith read a configuration. The zero
// value is Load's behaviour.
type Options struct {
	// AllowMissingSecrets expands an unset ${VAR} to the empty string
	// instead of failing, and skips the validation that requires secrets
	// (sources[].secrets entries not empty, destinations[].api_key
	// required); everything else is validated as usual. The Config has
	// ReadOnly set and lists the unset variables in Unset.
	AllowMissingSecrets bool
}

// LoadWith is Load with options.
func LoadWith(o Options) (*Config, error) {
	var data []byte
	if path := os.Getenv(EnvConfigFile); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", EnvConfigFile, err)
		}
		data = b
	}
	c, err := ParseWith(data, os.LookupEnv, o)
	if err != nil {
		return nil, err
	}
	if c.Process, err = LoadProcess(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes YAML, expands ${VAR} in every scalar with lookup, rejects
// unknown keys, applies Defaults and runs Validate. Errors carry the key's
// path and its line in data ("config: sources[1].kind (line 9): ...").
// Variables that lookup does not know are reported together, in the order
// first referenced, with every path that references them:
// "config: unset environment variables: A, B (referenced at
// sources[0].secrets[0] (line 7), destinations[1].api_key (line 15))".
//
// A value read from the environment is never parsed as YAML: "a: b # c"
// stays one string. In an unquoted scalar that is exactly the expansion, it
// is typed like a literal would be (body_limit: ${LIMIT} with LIMIT=2048 is
// a number); a quoted scalar ("${VAR}") and an empty value stay strings.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return ParseWith(data, lookup, Options{})
}

// ParseWith is Parse with options (see Options).
func ParseWith(data []byte, lookup func(string) (string, bool), o Options) (*Config, error) {
	c := &Config{ReadOnly: o.AllowMissingSecrets}
	if len(bytes.TrimSpace(data)) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		var unset unsetVars
		if err := expand(&root, "", lookup, &unset); err != nil {
			return nil, err
		}
		if len(unset.names) > 0 {
			if !o.AllowMissingSecrets {
				return nil, unset.err()
			}
			c.Unset = unset.names
		}
		// yaml.v3 rejects unknown keys only in a Decoder reading text, and
		// its errors carry line numbers of that text, not paths. check walks
		// the tree against the Config type instead, so each error names the
		// exact path and the line as written, whatever the layout (flow
		// mappings, nested sequences).
		if errs := check(&root, "", reflect.TypeFor[Config]()); len(errs) > 0 {
			return nil, fmt.Errorf("config: %s", strings.Join(errs, "; "))
		}
		if err := root.Decode(c); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := decodeOptions(&root, c); err != nil {
			return nil, err
		}
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// unsetVars collects the variables lookup did not know: names in the order
// first referenced, and the paths referencing any of them.
type unsetVars struct {
	names []string
	paths []string
}

func (u *unsetVars) add(name, path string) {
	if !slices.Contains(u.names, name) {
		u.names = append(u.names, name)
	}
	if len(u.paths) == 0 || u.paths[len(u.paths)-1] != path {
		u.paths = append(u.paths, path)
	}
}

func (u *unsetVars) err() error {
	noun := "variables"
	if len(u.names) == 1 {
		noun = "variable"
	}
	return fmt.Errorf("config: unset environment %s: %s (referenced at %s)", noun, strings.Join(u.names, ", "), strings.Join(u.paths, ", "))
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// where renders a path and line for an error message.
func where(path string, line int) string {
	if path == "" {
		return fmt.Sprintf("line %d", line)
	}
	return fmt.Sprintf("%s (line %d)", path, line)
}

// expand replaces ${VAR} in scalar values with lookup and rejects aliases.
// An unset variable expands to "" and is added to unset.
func expand(n *yaml.Node, path string, lookup func(string) (string, bool), unset *unsetVars) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := expand(c, path, lookup, unset); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.AliasNode {
				return fmt.Errorf("config: %s: YAML aliases are not supported", where(path, k.Line))
			}
			if err := expand(v, join(path, k.Value), lookup, unset); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := expand(c, path+"["+strconv.Itoa(i)+"]", lookup, unset); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		v := varRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := lookup(name)
			if !ok {
				unset.add(name, where(path, n.Line))
			}
			return v
		})
		if v != n.Value {
			n.Value = v
			if n.Style == 0 {
				// A plain scalar: let the decoder type the new value as it
				// would a literal (the parser typed "${VAR}" as a string),
				// except that an empty value, "null" or "~" stays that text.
				n.Tag = ""
				if n.ShortTag() == "!!null" {
					n.Tag = "!!str"
				}
			}
		}
	case yaml.AliasNode:
		return fmt.Errorf("config: %s: YAML aliases are not supported", where(path, n.Line))
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var durationType = reflect.TypeFor[time.Duration]()

// check reports every node of n that cannot be decoded into a value of type
// t: unknown or repeated keys, a list where a mapping belongs, a value of the
// wrong type. A null fits anything (the zero value).
func check(n *yaml.Node, path string, t reflect.Type) []string {
	bad := func(format string, args ...any) []string {
		return []string{where(path, n.Line) + ": " + fmt.Sprintf(format, args...)}
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return check(n.Content[0], path, t)
	}
	if n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []string
	switch t.Kind() {
	case reflect.Interface:
		return nil
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return bad("want a mapping, got %s", describe(n))
		}
		fields := yamlFields(t)
		if k, ok := kindOf(n, t); ok {
			if ot := k.optionsType(); ot != nil {
				for name, ft := range yamlFields(ot) {
					if _, common := fields[name]; !common {
						fields[name] = ft
					}
				}
			}
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				errs = append(errs, where(path, k.Line)+": keys must be names")
				continue
			}
			if line, dup := seen[k.Value]; dup {
				errs = append(errs, fmt.Sprintf("%s: key repeated (first at line %d)", where(p, k.Line), line))
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, where(p, k.Line)+": unknown key")
				continue
			}
			errs = append(errs, check(v, p, ft)...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return bad("want a mapping, got %s", describe(n))
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if k.Kind != yaml.ScalarNode || k.Decode(reflect.New(t.Key()).Interface()) != nil {
				errs = append(errs, where(path, k.Line)+": keys must be names")
				continue
			}
			if line, dup := seen[k.Value]; dup {
				errs = append(errs, fmt.Sprintf("%s: key repeated (first at line %d)", where(p, k.Line), line))
				continue
			}
			seen[k.Value] = k.Line
			errs = append(errs, check(v, p, t.Elem())...)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return bad("want a list, got %s", describe(n))
		}
		for i, c := range n.Content {
			errs = append(errs, check(c, path+"["+strconv.Itoa(i)+"]", t.Elem())...)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return bad("want a single value, got %s", describe(n))
		}
		if n.Decode(reflect.New(t).Interface()) != nil {
			return bad("%q is not %s", clip(n.Value), kindName(t))
		}
	}
	return errs
}

var (
	sourceType      = reflect.TypeFor[Source]()
	destinationType = reflect.TypeFor[Destination]()
)

// kindOf returns the registered kind a source or destination node names.
func kindOf(n *yaml.Node, t reflect.Type) (Kind, bool) {
	if t != sourceType && t != destinationType {
		return Kind{}, false
	}
	name := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			name = n.Content[i+1].Value
		}
	}
	if t == sourceType {
		return SourceKind(name)
	}
	return DestinationKind(name)
}

// decodeOptions decodes each source's and destination's own keys into its
// kind's options value (check has already vetted them).
func decodeOptions(root *yaml.Node, c *Config) error {
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		key, list := doc.Content[i].Value, doc.Content[i+1]
		if list.Kind != yaml.SequenceNode || (key != "sources" && key != "destinations") {
			continue
		}
		for j, item := range list.Content {
			var (
				k  Kind
				ok bool
			)
			if key == "sources" {
				k, ok = kindOf(item, sourceType)
			} else {
				k, ok = kindOf(item, destinationType)
			}
			if !ok || k.Options == nil {
				continue
			}
			o := k.Options()
			if err := item.Decode(o); err != nil {
				return fmt.Errorf("config: %s[%d]: %w", key, j, err)
			}
			if key == "sources" && j < len(c.Sources) {
				c.Sources[j].Options = o
			} else if key == "destinations" && j < len(c.Destinations) {
				c.Destinations[j].Options = o
			}
		}
	}
	return nil
}

// yamlFields maps the YAML keys of struct type t to their field types, the
// way yaml.v3 names them (the yaml tag, else the lower-cased field name).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
			continue
		case strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct:
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		case name == "":
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", clip(n.Value))
}

func kindName(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration ("30s", "5m", "26280h")`
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}
