package service_test

// The vendor packages register the kinds the tests configure.
import _ "github.com/consentsync/consentsync/connectors/registry"
