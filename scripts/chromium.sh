#!/usr/bin/env bash
# Makes headless Chromium available for the browser tests (`make test`,
# e2e TestQueueUIInBrowser), the way services.sh makes Postgres and Redis
# available: use what is installed ($CHROMIUM, chromium, chromium-browser,
# google-chrome); else install Debian's `chromium` package when allowed
# (root or passwordless sudo, apt-get, and CONSENTSYNC_NO_INSTALL unset);
# else say that the browser tests will skip. It never fails `make test`.
set -uo pipefail
say() { echo "chromium: $*" >&2; }

if [ -n "${CHROMIUM:-}" ] && [ -x "${CHROMIUM}" ]; then exit 0; fi
for b in chromium chromium-browser google-chrome; do
  command -v "$b" >/dev/null 2>&1 && exit 0
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if [ -n "${CONSENTSYNC_NO_INSTALL:-}" ] || [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
  say "no Chromium, and installing OS packages is not allowed here: the browser tests will skip (install Debian's chromium package, or set CHROMIUM to a Chromium binary)."
  exit 0
fi
say "installing chromium from the OS packages (for the queue UI browser test)"
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  exit 0
fi
say "apt-get install chromium failed: the browser tests will skip."
exit 0
