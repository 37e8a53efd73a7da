#!/usr/bin/env bash
# Checks the Helm chart (deploy/helm/consentsync): `helm lint --strict` and
# `helm template` with the default values and with every option on
# (ci/all-on-values.yaml). Run by `make test`; the Go test
# deploy/helm/chart_test.go then checks what the rendered manifests say.
#
# helm is built from the Go module proxy at a pinned version, once, into
# a cache outside the repository (HELM_CACHE, default
# ~/.cache/consentsync/tools/helm-VERSION/helm), and reused. HELM names
# another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM_VERSION=${HELM_VERSION:-v3.21.4}
say() { echo "helm: $*" >&2; }

if [ -z "${HELM:-}" ]; then
  dir=${HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/consentsync/tools/helm-$HELM_VERSION}
  HELM=$dir/helm
  if [ ! -x "$HELM" ]; then
    say "building helm $HELM_VERSION from the Go module proxy into $dir (once; a few minutes)"
    mkdir -p "$dir"
    (cd / && GOBIN="$dir" GOFLAGS= CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  fi
fi
chart=deploy/helm/consentsync
"$HELM" lint --strict --quiet "$chart"
"$HELM" lint --strict --quiet "$chart" -f "$chart/ci/all-on-values.yaml"
"$HELM" template check "$chart" >/dev/null
"$HELM" template check "$chart" -f "$chart/ci/all-on-values.yaml" >/dev/null
echo "helm: chart lints and renders ($("$HELM" version --short))" >&2
