#!/usr/bin/env bash
# Makes Postgres and Redis reachable for `make demo` and `make test`
# (see README "Set up"): use what already runs; else `docker compose up -d`; else
# install and start them from the OS packages when allowed (root or
# passwordless sudo, and CONSENTSYNC_NO_INSTALL unset); else stop with a
# one-line explanation.
set -euo pipefail

# hostport URL DEFAULT_PORT prints "host port" of a postgres:// or
# redis:// URL (user, password, path and query ignored; a missing port is
# DEFAULT_PORT; an IPv6 literal, "[::1]" as RFC 3986 §3.2.2 writes it, is
# printed without its brackets, as /dev/tcp takes it).
hostport() {
  local u=${1#*://} h p=$2
  u=${u##*@}; u=${u%%/*}; u=${u%%\?*}
  if [[ $u == \[* ]]; then
    h=${u%%]*}; h=${h#[}
    if [[ $u == *]:* ]]; then p=${u##*]:}; fi
  elif [[ $u == *:* ]]; then
    h=${u%:*}; p=${u##*:}
  else
    h=$u
  fi
  echo "${h:-127.0.0.1} $p"
}
# Where to look: the *_CHECK variables, else the URLs the command uses
# (SERVICES_FOR=demo, as make demo runs it: DATABASE_URL and REDIS_URL;
# otherwise TEST_DATABASE_URL and TEST_REDIS_URL first, as the tests use
# them), else the local defaults.
if [ "${SERVICES_FOR:-}" = demo ]; then
  pgurl=${DATABASE_URL:-}
  rdurl=${REDIS_URL:-}
else
  pgurl=${TEST_DATABASE_URL:-${DATABASE_URL:-}}
  rdurl=${TEST_REDIS_URL:-${REDIS_URL:-}}
fi
read -r pgh pgp <<<"$(hostport "${pgurl:-postgres://127.0.0.1:5432}" 5432)"
read -r rdh rdp <<<"$(hostport "${rdurl:-redis://127.0.0.1:6379}" 6379)"
PGHOST=${PGHOST_CHECK:-$pgh}; PGPORT=${PGPORT_CHECK:-$pgp}
RDHOST=${REDIS_HOST_CHECK:-$rdh}; RDPORT=${REDIS_PORT_CHECK:-$rdp}
PGPASS=${CONSENTSYNC_PG_PASSWORD:-consentsync}
local_host() { case "$1" in 127.0.0.1|localhost|::1|"[::1]") return 0;; *) return 1;; esac; }

up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
both_up() { up "$PGHOST" "$PGPORT" && up "$RDHOST" "$RDPORT"; }
wait_up() {
  for _ in $(seq 1 60); do both_up && return 0; sleep 1; done
  return 1
}
say() { echo "services: $*" >&2; }

if both_up; then exit 0; fi

# A service configured elsewhere is not ours to start.
for hp in "$PGHOST:$PGPORT" "$RDHOST:$RDPORT"; do
  h=${hp%:*}; p=${hp##*:}
  if ! up "$h" "$p" && ! local_host "$h"; then
    say "$h:$p (from DATABASE_URL/REDIS_URL or TEST_DATABASE_URL/TEST_REDIS_URL) does not answer; it is not on this machine, so nothing is started for it."
    exit 1
  fi
done

# Docker Compose, when an engine answers.
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  say "starting postgres and redis with docker compose"
  docker compose -f docker-compose.yml -f deploy/compose/services-ports.yml up -d postgres redis
  if wait_up; then exit 0; fi
  say "docker compose started but postgres/redis did not answer on $PGHOST:$PGPORT / $RDHOST:$RDPORT"; exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi
if [ -n "${CONSENTSYNC_NO_INSTALL:-}" ] || [ "$SUDO" = "none" ]; then
  say "Postgres ($PGHOST:$PGPORT) or Redis ($RDHOST:$RDPORT) is not reachable, Docker is not available, and installing OS packages is not allowed here: start them, or set DATABASE_URL/REDIS_URL and TEST_DATABASE_URL/TEST_REDIS_URL."
  exit 1
fi

# OS packages (Debian/Ubuntu).
if ! up "$PGHOST" "$PGPORT"; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { say "no Postgres, no Docker, no apt-get: install PostgreSQL and Redis yourself."; exit 1; }
    say "installing postgresql from the OS packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  say "starting postgresql $ver"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do up "$PGHOST" "$PGPORT" && break; sleep 1; done
  # Give the postgres role the password the default URLs carry (no-op under trust auth).
  $SUDO su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD '$PGPASS'\"" >/dev/null 2>&1 || true
fi
if ! up "$RDHOST" "$RDPORT"; then
  if ! command -v redis-server >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { say "no Redis, no Docker, no apt-get: install Redis yourself."; exit 1; }
    say "installing redis-server from the OS packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
  say "starting redis-server"
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port "$RDPORT" --save "" --appendonly no >/dev/null
fi
if wait_up; then exit 0; fi
say "started Postgres/Redis from OS packages but they do not answer on $PGHOST:$PGPORT / $RDHOST:$RDPORT."
exit 1
