# consentsync — the two set-up commands are `make demo` and `make test`.
# Both first make Postgres and Redis reachable (scripts/services.sh).

# DATABASE_URL is the binary's default (config.Process, README
# "Configuration"); tests create their databases through the server's
# maintenance database, so TEST_DATABASE_URL names that one.
export DATABASE_URL ?= postgres://postgres:consentsync@127.0.0.1:5432/consentsync?sslmode=disable
export REDIS_URL ?= redis://127.0.0.1:6379/0
export TEST_DATABASE_URL ?= postgres://postgres:consentsync@127.0.0.1:5432/postgres?sslmode=disable
export TEST_REDIS_URL ?= redis://127.0.0.1:6379
FUZZTIME ?= 10000x

.PHONY: demo test services chromium build vet unit fuzz bench chaos scale clean deploy-check rules chart

## demo: run the whole pipeline on the bundled real-format webhooks and print the result
demo:
	@SERVICES_FOR=demo ./scripts/services.sh
	go run ./cmd/consentsync demo

## test: vet, the deployment files (alert rules, Helm chart), the whole test suite with the race detector (real Postgres, Redis and headless Chromium), bounded fuzzing
test: services chromium vet deploy-check
	go test -race -count=1 -timeout 8m ./...
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

services:
	@./scripts/services.sh

## deploy-check: the files under deploy/ — alert rules checked and unit-tested by promtool; the Helm chart linted and rendered (helm built once, pinned, into ~/.cache)
deploy-check: rules chart

rules:
	@./scripts/promtool.sh

chart:
	@./scripts/helm.sh

## chromium: headless Chromium for the browser tests (installed from the OS packages when allowed; else they skip)
chromium:
	@./scripts/chromium.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...

build:
	go build -o bin/consentsync ./cmd/consentsync

## bench: load the real processes (fake providers, pgbench baseline in the same run) and print the goals table; then the Go micro-benchmarks
bench: services
	./scripts/bench.sh

## chaos: the fault tests (kill processes, restart Postgres and Redis they own, provider storms), each ending with an audit
chaos: services
	./scripts/chaos.sh

## scale: 10,000 withdrawals across every destination kind, end to end (pushed once per destination in full batches, all verified); about 3 minutes
scale: services
	CONSENTSYNC_E2E_WITHDRAWALS=10000 go test -count=1 -timeout 20m -run 'TestManyWithdrawalsEveryKind' -v ./e2e/

clean:
	rm -rf bin
