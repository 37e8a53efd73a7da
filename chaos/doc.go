// Package chaos holds consentsync's fault tests (issue 7, "Faults"): real
// consentsync processes against a Postgres cluster and a Redis server each
// test owns, fake providers in the test process, one fault per test, and
// an audit at the end (internal/harness). The tests are behind the build
// tag chaos, so `go test ./...` does not run them: run `make chaos`
// (scripts/chaos.sh), or
//
//	go test -tags chaos -count=1 -timeout 15m -v ./chaos/ [-run TestName]
package chaos
