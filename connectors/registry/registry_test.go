package registry

import (
	"errors"
	"testing"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/connectors"
)

func TestBuildRefusesReadOnly(t *testing.T) {
	c, err := config.ParseWith([]byte("destinations:\n  - {name: d1, kind: sendgrid, brand: acme, api_key: \"${KEY}\"}\n"),
		func(string) (string, bool) { return "", false }, config.Options{AllowMissingSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Build(c, connectors.Deps{}); !errors.Is(err, config.ErrReadOnly) {
		t.Errorf("Build(read-only) = %v, want config.ErrReadOnly", err)
	}
}
