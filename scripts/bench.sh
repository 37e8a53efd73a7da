#!/usr/bin/env bash
# bench.sh — what `make bench` runs: the end-to-end load bench
# (cmd/consentsync-bench: real serve/work processes, fake providers, pgbench
# baseline in the same run, goals table), then the Go micro-benchmarks.
# Arguments go to consentsync-bench (-quick, -out FILE, -profile DIR, -strict,
# ...; `-h` lists them). With -quick the micro-benchmarks run once each.
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:consentsync@127.0.0.1:5432/postgres?sslmode=disable}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

benchtime=()
for a in "$@"; do
  case "$a" in -quick|--quick|-quick=true|--quick=true) benchtime=(-benchtime 1x) ;; esac
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/consentsync-bench-bin.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/consentsync-bench" ./cmd/consentsync-bench

status=0
# Not exec: the micro-benchmarks run afterwards whatever the outcome.
"$tmp/consentsync-bench" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "bench.sh: consentsync-bench exited $status" >&2
fi

echo
echo "## Go micro-benchmarks"
go test -run '^$' -bench . -benchmem "${benchtime[@]}" ./... || status=$?
exit "$status"
