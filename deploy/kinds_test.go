package deploy_test

// The vendor packages register the kinds the compose configurations use.
import _ "github.com/consentsync/consentsync/connectors/registry"
