package connectors

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/consentsync/consentsync/config"
)

// CheckSecrets checks a source's secrets: at least one, none empty. Errors
// name the config key: "secrets: at least one secret is required (what)"
// (the parenthesis only when what is not empty; what says which secret the
// vendor means, e.g. "the HTTP webhook signing key"), or
// "secrets[i]: is empty". They never contain a secret.
func CheckSecrets(secrets []string, what string) error {
	if len(secrets) == 0 {
		msg := "secrets: at least one secret is required"
		if what != "" {
			msg += " (" + what + ")"
		}
		return errors.New(msg)
	}
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("secrets[%d]: is empty", i)
		}
	}
	return nil
}

// CheckSource checks what every source of a fixed-meaning vendor needs:
// the secrets (see CheckSecrets; secretWhat describes them) and a brand
// ("brand: is required").
func CheckSource(cfg config.Source, secretWhat string) error {
	if err := CheckSecrets(cfg.Secrets, secretWhat); err != nil {
		return err
	}
	if cfg.Brand == "" {
		return errors.New("brand: is required")
	}
	return nil
}

// IsHTTPURL reports whether s parses as an absolute http:// or https:// URL
// with a host (base URLs of provider APIs).
func IsHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// BaseURL is a connector's API root: configured (destinations[].base_url
// or a source's API URL option) with trailing slashes trimmed, or def when
// configured is empty. The error names the key ("base_url: ...") when the
// result is not an http:// or https:// URL; an empty def with nothing
// configured gives "" (the connector's own default applies).
func BaseURL(configured, def string) (string, error) {
	base := strings.TrimRight(configured, "/")
	if base == "" {
		base = def
	}
	if base != "" && !IsHTTPURL(base) {
		return "", errors.New("base_url: must be an http:// or https:// URL")
	}
	return base, nil
}

// DestinationOptions returns the vendor options of type T that config
// decoded for a destination (config.OptionsOf: a new value with its
// Defaults when there are none), validated by T's own Validate when it is
// a config.OptionsValidator. The error lists every wrong key, sorted and
// joined by "; ", each relative to the destination ("domain: is
// required").
func DestinationOptions[T any](options any) (T, error) {
	o := *config.OptionsOf[T](options)
	if d, ok := any(&o).(config.Defaulter); ok {
		d.Defaults()
	}
	v, ok := any(&o).(config.OptionsValidator)
	if !ok {
		return o, nil
	}
	var problems []string
	v.Validate(false, func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	})
	if len(problems) > 0 {
		sort.Strings(problems)
		return o, errors.New(strings.Join(problems, "; "))
	}
	return o, nil
}
