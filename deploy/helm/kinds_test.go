package helm_test

// The vendor kinds' own settings are known to config.Parse once their
// plug-ins are registered.
import _ "github.com/consentsync/consentsync/connectors/registry"
