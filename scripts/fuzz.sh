#!/usr/bin/env bash
# Runs every fuzz target for a bounded number of inputs (FUZZTIME, default
# 20000x each), so `make test` exercises the fuzzers without running for
# ever. Each target is announced as it starts ("fuzz: [12/45] connectors/
# hubspot FuzzVerify ... ok (4s)"), so a long run shows where it is. A count, not a duration: with a duration, go1.26's fuzz coordinator
# can stop on "context deadline exceeded" without a failing input
# (golang/go#75804); such a run is retried once. Inputs found failing are
# written under the package's testdata/fuzz/ and make the run fail.
set -euo pipefail
FUZZTIME=${FUZZTIME:-20000x}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# List the targets first, so each can be announced with its rank.
targets=()
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    targets+=("$pkg $target")
  done
done
total=${#targets[@]}
echo "fuzz: $total targets, $FUZZTIME inputs each"
n=0
for entry in "${targets[@]}"; do
  pkg=${entry% *}
  target=${entry#* }
  n=$((n+1))
  start=$SECONDS
  printf 'fuzz: [%d/%d] %s %s ... ' "$n" "$total" "${pkg#github.com/consentsync/consentsync/}" "$target"
  for try in 1 2; do
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
      break
    fi
    if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
      printf 'coordinator deadline without a failing input (golang/go#75804), retrying ... '
      continue
    fi
    echo "FAILED"
    cat "$log"
    echo "fuzz: $pkg $target failed"
    exit 1
  done
  echo "ok ($((SECONDS-start))s)"
done
echo "fuzz: $n targets ran $FUZZTIME inputs each without a failure"
