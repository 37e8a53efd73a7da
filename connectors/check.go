package connectors

import (
	"errors"
	"fmt"
	"net/url"

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
