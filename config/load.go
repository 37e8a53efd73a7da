package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvConfigFile names the variable that points at the YAML file.
const EnvConfigFile = "CONSENTSYNC_CONFIG"

// Load reads the file named by CONSENTSYNC_CONFIG (an empty config when the
// variable is unset), expands ${VAR}, applies defaults, validates, and reads
// the process settings from the environment.
func Load() (*Config, error) {
	var data []byte
	if path := os.Getenv(EnvConfigFile); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", EnvConfigFile, err)
		}
		data = b
	}
	c, err := Parse(data, os.LookupEnv)
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
// path ("config: sources[1].kind: ...").
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	c := &Config{}
	if len(bytes.TrimSpace(data)) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := walk(&root, "", map[int]string{}, lookup); err != nil {
			return nil, err
		}
		// yaml.v3 rejects unknown keys only in a Decoder reading text, so the
		// expanded tree is written out again; the paths are taken from that
		// text, so each error names the key however the input was laid out.
		expanded, err := yaml.Marshal(&root)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		var again yaml.Node
		if err := yaml.Unmarshal(expanded, &again); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		paths := map[int]string{}
		keep := func(name string) (string, bool) { return "${" + name + "}", true }
		if err := walk(&again, "", paths, keep); err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(expanded))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, withPaths(err, paths)
		}
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// walk expands ${VAR} in scalars and records, for each line holding a
// mapping key, the dotted path of that key.
func walk(n *yaml.Node, path string, paths map[int]string, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := walk(c, path, paths, lookup); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if _, ok := paths[k.Line]; !ok {
				paths[k.Line] = p
			}
			if err := walk(v, p, paths, lookup); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			if _, ok := paths[c.Line]; !ok {
				paths[c.Line] = p
			}
			if err := walk(c, p, paths, lookup); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing []string
		n.Value = varRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := lookup(name)
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			return fmt.Errorf("config: %s (line %d): environment variable %s is not set", path, n.Line, strings.Join(missing, ", "))
		}
	case yaml.AliasNode:
		return fmt.Errorf("config: %s (line %d): YAML aliases are not supported", path, n.Line)
	}
	return nil
}

var lineRE = regexp.MustCompile(`line (\d+): `)

// withPaths rewrites "line N: msg" in a yaml error into "path (line N): msg".
func withPaths(err error, paths map[int]string) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if m := lineRE.FindStringSubmatchIndex(l); m != nil {
			n, _ := strconv.Atoi(l[m[2]:m[3]])
			if p, ok := paths[n]; ok {
				l = l[:m[0]] + p + ": " + l[m[1]:]
			}
		}
		lines[i] = l
	}
	return fmt.Errorf("config: %s", strings.Join(lines, "; "))
}
