package config_test

// The vendor packages register the kinds the tests configure; in the test
// binary they register with this package's test build.
import _ "github.com/consentsync/consentsync/connectors/registry"
