#!/usr/bin/env bash
# Checks the Prometheus alerting rules (deploy/prometheus/alerts.yml) with
# promtool: `check rules` (syntax, PromQL, templates) and `test rules`
# (deploy/prometheus/alerts_test.yml: each alert fires on the series it is
# for, and not on the others). Run by `make test`.
#
# promtool comes from Debian's `prometheus` package: installed when missing
# and allowed (root or passwordless sudo, CONSENTSYNC_NO_INSTALL unset), as
# scripts/services.sh installs Postgres; else this stops with a one-line
# explanation. PROMTOOL names another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "promtool: $*" >&2; }

PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
if [ -z "$PROMTOOL" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  fi
  if [ -n "${CONSENTSYNC_NO_INSTALL:-}" ] || [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
    say "promtool is not installed and cannot be installed here: install Debian's 'prometheus' package (or set PROMTOOL)."
    exit 1
  fi
  say "installing promtool (Debian package prometheus)"
  $SUDO apt-get update -qq
  # policy-rc.d-less containers: the package's service is not started by
  # the install (no systemd); only its promtool binary is used here.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  PROMTOOL=$(command -v promtool)
fi
"$PROMTOOL" check rules deploy/prometheus/alerts.yml
"$PROMTOOL" test rules deploy/prometheus/alerts_test.yml
