#!/usr/bin/env bash
# scripts/pg-replica-ctl.sh stop|start|restart|status
#
# Stops/starts the streaming-replica cluster created by scripts/testenv.sh, for
# tests that exercise replica outages. Wraps pg_ctlcluster (as the postgres
# user, without systemd redirection).
#   stop     fast shutdown; no-op if already stopped.
#   start    start if stopped, then wait until the replica accepts connections,
#            is in recovery and its WAL receiver is streaming (timeout
#            $CANARY_PG_REPLICA_TIMEOUT, default 30 s); exit 1 on timeout.
#   restart  stop + start.
#   status   prints "online recovery=t receiver=streaming replay_paused=f" or
#            "down"; exit 0 when running, 3 when stopped.
# The cluster is taken from CANARY_PG_REPLICA_CLUSTER ("<version> <name>", as
# exported by testenv.sh); otherwise the newest version having a cluster named
# $CANARY_PG_REPLICA_NAME (default canary_replica) is used.
set -euo pipefail
export LC_ALL=C
while read -r _v; do unset "$_v"; done < <(compgen -e | grep -E '^PG' || true)
export PGCONNECT_TIMEOUT=5

HOST=127.0.0.1
TIMEOUT="${CANARY_PG_REPLICA_TIMEOUT:-30}"

die() { printf 'pg-replica-ctl: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { printf 'usage: %s stop|start|restart|status\n' "${0##*/}" >&2; exit 2; }

[[ $# -eq 1 ]] || usage
ACTION=$1
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "CANARY_PG_REPLICA_TIMEOUT must be a number"

if [[ -n "${CANARY_PG_REPLICA_CLUSTER:-}" ]]; then
	read -r V NAME _ <<<"$CANARY_PG_REPLICA_CLUSTER"
else
	NAME="${CANARY_PG_REPLICA_NAME:-canary_replica}"
	V=$(for d in /etc/postgresql/*/"$NAME"/postgresql.conf; do
		[[ -f "$d" ]] || continue
		d=${d%/"$NAME"/postgresql.conf}; echo "${d##*/}"
	done | sort -V | tail -n1)
fi
[[ -n "${V:-}" && -n "${NAME:-}" ]] || die "replica cluster not found; run scripts/testenv.sh first"
CONF="/etc/postgresql/$V/$NAME/postgresql.conf"
[[ -f "$CONF" ]] || die "cluster $V/$NAME does not exist ($CONF missing); run scripts/testenv.sh"
PGBIN="/usr/lib/postgresql/$V/bin"

conf_value() { # KEY — last plain setting in postgresql.conf or our conf.d file
	sed -n -E "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*'?([^' #]*)'?.*/\1/p" \
		"$CONF" "/etc/postgresql/$V/$NAME/conf.d/canary-testenv.conf" 2>/dev/null | tail -n1
}
PORT=$(conf_value port)
DATA=$(conf_value data_directory)
PORT=${PORT:-5432}
DATA=${DATA:-/var/lib/postgresql/$V/$NAME}

as_pg() {
	if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"
	elif [[ "$(id -un)" == postgres ]]; then "$@"
	else sudo -n -u postgres -- "$@"
	fi
}
now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
running() { as_pg "$PGBIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }
q() { "$PGBIN/psql" -X -q -A -t -h "$HOST" -p "$PORT" -U postgres -d postgres -c "$1" 2>/dev/null; }
state() {
	q "select pg_is_in_recovery(),
		coalesce((select status from pg_stat_wal_receiver), 'none'),
		case when pg_is_in_recovery() then pg_is_wal_replay_paused() else false end"
}
log_tail() {
	local f="/var/log/postgresql/postgresql-$V-$NAME.log"
	[[ -r "$f" ]] && { printf -- '--- last lines of %s ---\n' "$f" >&2; tail -n 15 "$f" >&2; }
	return 0
}

do_stop() {
	running || return 0
	as_pg pg_ctlcluster --skip-systemctl-redirect "$V" "$NAME" stop -m fast \
		|| { running && die "could not stop $V/$NAME"; }
	! running || die "$V/$NAME still running after stop"
}

do_start() {
	if ! running; then
		as_pg pg_ctlcluster --skip-systemctl-redirect "$V" "$NAME" start \
			|| { log_tail; die "could not start $V/$NAME"; }
	fi
	local deadline=$(( $(now_us) + TIMEOUT * 1000000 )) st=""
	while :; do
		if "$PGBIN/pg_isready" -q -h "$HOST" -p "$PORT" -t 2 >/dev/null 2>&1; then
			st=$(state) || st=""
			[[ "$st" == "t|streaming|"* ]] && return 0
		fi
		if (( $(now_us) >= deadline )); then
			log_tail
			die "replica $V/$NAME on $HOST:$PORT not accepting connections and streaming after ${TIMEOUT}s (state: ${st:-no connection}); run scripts/testenv.sh to repair it"
		fi
		sleep 0.1
	done
}

do_status() {
	if ! running; then echo down; return 3; fi
	local rec recv paused
	IFS='|' read -r rec recv paused <<<"$(state || true)"
	if [[ -z "$rec" ]]; then echo "online (not accepting connections yet)"; return 0; fi
	echo "online recovery=$rec receiver=$recv replay_paused=$paused"
}

case "$ACTION" in
stop) do_stop ;;
start) do_start ;;
restart) do_stop; do_start ;;
status) do_status ;;
*) usage ;;
esac
