#!/usr/bin/env bash
# make chaos: the fault tests of issue 7 (chaos/, build tag chaos). Each test
# starts its own Postgres cluster (initdb + pg_ctl, as the unprivileged user
# consentsync-test when run as root) and its own redis-server, so this only
# makes sure their binaries are installed, then runs the tests.
#
#   ./scripts/chaos.sh                      # all seven faults
#   ./scripts/chaos.sh -run TestProviderStorm
#
# Extra arguments go to `go test`. CONSENTSYNC_NO_INSTALL=1 forbids
# installing packages (as for scripts/services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg() {
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && return 0
	done
	command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}
have_redis() { command -v redis-server >/dev/null 2>&1; }

missing=()
have_pg || missing+=(postgresql)
have_redis || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "${CONSENTSYNC_NO_INSTALL:-}" = 1 ]; then
		echo "chaos: missing ${missing[*]} (Postgres server binaries, redis-server) and CONSENTSYNC_NO_INSTALL=1 forbids installing them" >&2
		exit 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "chaos: missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root" >&2
		exit 1
	fi
	command -v apt-get >/dev/null 2>&1 || { echo "chaos: missing ${missing[*]} and no apt-get to install them" >&2; exit 1; }
	echo "chaos: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
	have_pg || { echo "chaos: postgresql installed but no initdb/pg_ctl found" >&2; exit 1; }
	have_redis || { echo "chaos: redis-server not found after installing it" >&2; exit 1; }
fi

# A test binary killed hard (timeout, ^C) cannot stop the Postgres clusters
# it started (pg_ctl detaches them): stop and remove those whose test
# process (owner.pid, written by internal/harness) is gone — never another
# run's that is still going.
ctl=$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1 || true)
ctl=${ctl:-pg_ctl}
for dir in /tmp/consentsync-chaos-pg-* /tmp/consentsync-chaos-bin-*; do
	[ -d "$dir" ] || continue
	owner_pid=$(cat "$dir/owner.pid" 2>/dev/null || true)
	if [ -n "$owner_pid" ] && kill -0 "$owner_pid" 2>/dev/null; then
		continue # its test run is still going
	fi
	if [ -z "$owner_pid" ] && [ -z "$(find "$dir" -maxdepth 0 -mmin +30)" ]; then
		continue # just created, owner not written yet
	fi
	if [ -f "$dir/data/postmaster.pid" ]; then
		user=$(stat -c %U "$dir")
		if [ "$(id -u)" -eq 0 ] && [ "$user" != root ]; then
			runuser -u "$user" -- "$ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
		else
			"$ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
		fi
	fi
	rm -rf "$dir"
done

start=$(date +%s)
status=0
go test -tags chaos -count=1 -timeout 15m -v ./chaos/ "$@" || status=$?
echo "chaos: $(( $(date +%s) - start )) s, exit $status"
exit $status
