#!/usr/bin/env bash
# scripts/testenv.sh — provision the external services the test suite needs.
#
# Ensures, idempotently, that this project's own PostgreSQL clusters are
# running (Debian postgresql-common layout, no systemd needed):
#   * primary  "<ver> canary_primary" on 127.0.0.1:$CANARY_PG_PRIMARY_PORT (55432)
#   * replica  "<ver> canary_replica" on 127.0.0.1:$CANARY_PG_REPLICA_PORT (55433),
#     a real streaming replica (pg_basebackup -R, physical replication slot),
#     recreated automatically when it is missing or broken,
#   * database canary_test on the primary (replicated),
# that Redis answers PING on 127.0.0.1:$CANARY_REDIS_PORT (6379), and that
# this project's own etcd (Debian's etcd-server, installed when missing and
# run as root) answers on 127.0.0.1:$CANARY_ETCD_PORT (22379; peer port
# $CANARY_ETCD_PEER_PORT, 22380), started in the background with its own data
# dir (/var/lib/canary-etcd as root, else $TMPDIR/canary-etcd-$UID) and log
# (canary-etcd.log beside it), reused when it already runs; and that this
# project's own Prometheus (Debian's prometheus, likewise) answers on
# 127.0.0.1:$CANARY_PROMETHEUS_PORT (22390): scripts/testenv-prometheus.sh.
#
# Progress goes to stderr; stdout carries only `export NAME="value"` lines:
#   eval "$(scripts/testenv.sh)"
#
# Optional overrides (environment):
#   CANARY_PG_PRIMARY_PORT   (55432)          CANARY_PG_REPLICA_PORT  (55433)
#   CANARY_PG_PRIMARY_NAME   (canary_primary) CANARY_PG_REPLICA_NAME  (canary_replica)
#   CANARY_PG_VERSION        (auto: version of an existing canary cluster, else newest installed)
#   CANARY_PG_DATABASE       (canary_test)    CANARY_REDIS_PORT       (6379)
#   CANARY_ETCD_PORT         (22379)          CANARY_ETCD_PEER_PORT   (22380)
#   CANARY_ETCD              (on; "off" skips etcd and prints no CANARY_ETCD_ENDPOINTS)
#   CANARY_PROMETHEUS_PORT   (22390)          CANARY_PROMETHEUS (on; "off" skips it; see testenv-prometheus.sh)
#   CANARY_MARIADB           (on; "off" skips the MariaDB pair, see scripts/testenv-mariadb.sh)
#   CANARY_CHROMIUM, CANARY_BROWSER  see scripts/testenv-chromium.sh (headless
#                            Chromium for the console's tests, installed when missing)
#   CANARY_TESTENV_TIMEOUT   (60, seconds per wait)
#   CANARY_TESTENV_STREAM_TIMEOUT (20, seconds to wait for streaming before
#                            the replica is declared broken and recreated)
# Exits non-zero with a message if anything cannot be provided.
set -euo pipefail
export LC_ALL=C

# All ordinary output goes to stderr; the export lines are written to fd 3.
exec 3>&1 1>&2

# Ignore libpq settings of the caller; every connection below is explicit.
while read -r _v; do unset "$_v"; done < <(compgen -e | grep -E '^PG' || true)
export PGCONNECT_TIMEOUT=5

PRIMARY_PORT="${CANARY_PG_PRIMARY_PORT:-55432}"
REPLICA_PORT="${CANARY_PG_REPLICA_PORT:-55433}"
PRIMARY_NAME="${CANARY_PG_PRIMARY_NAME:-canary_primary}"
REPLICA_NAME="${CANARY_PG_REPLICA_NAME:-canary_replica}"
DB_NAME="${CANARY_PG_DATABASE:-canary_test}"
SLOT_NAME="${REPLICA_NAME}_slot"
REDIS_HOST=127.0.0.1
REDIS_PORT="${CANARY_REDIS_PORT:-6379}"
ETCD_PORT="${CANARY_ETCD_PORT:-22379}"
ETCD_PEER_PORT="${CANARY_ETCD_PEER_PORT:-22380}"
ETCD_WANTED=true; [[ "${CANARY_ETCD:-on}" == off ]] && ETCD_WANTED=false
TIMEOUT="${CANARY_TESTENV_TIMEOUT:-60}"
STREAM_TIMEOUT="${CANARY_TESTENV_STREAM_TIMEOUT:-20}"
HOST=127.0.0.1
CONF_FILE_NAME=canary-testenv.conf

T0=${EPOCHREALTIME/[.,]/}

log() { printf 'testenv: %s\n' "$*" >&2; }

die() {
	printf 'testenv: ERROR: %s\n' "$*" >&2
	if [[ "${CI:-}" == true ]]; then
		printf 'testenv: CI=true: a PostgreSQL primary with a streaming replica, Redis, etcd and Prometheus are required; failing.\n' >&2
	else
		printf 'testenv: the tests need a PostgreSQL primary+streaming replica, Redis, etcd and Prometheus (CANARY_ETCD=off skips etcd, CANARY_PROMETHEUS=off Prometheus); fix the problem above and rerun (scripts/testenv.sh).\n' >&2
	fi
	exit 1
}

for _p in PRIMARY_PORT:CANARY_PG_PRIMARY_PORT REPLICA_PORT:CANARY_PG_REPLICA_PORT REDIS_PORT:CANARY_REDIS_PORT \
	ETCD_PORT:CANARY_ETCD_PORT ETCD_PEER_PORT:CANARY_ETCD_PEER_PORT \
	TIMEOUT:CANARY_TESTENV_TIMEOUT STREAM_TIMEOUT:CANARY_TESTENV_STREAM_TIMEOUT; do
	_var=${_p%%:*}
	[[ "${!_var}" =~ ^[0-9]+$ ]] || die "${_p#*:} must be a number, got '${!_var}'"
done
for _n in PRIMARY_NAME:CANARY_PG_PRIMARY_NAME REPLICA_NAME:CANARY_PG_REPLICA_NAME DB_NAME:CANARY_PG_DATABASE; do
	_var=${_n%%:*}
	[[ "${!_var}" =~ ^[a-z_][a-z0-9_]*$ ]] || die "${_n#*:} must match [a-z_][a-z0-9_]*, got '${!_var}'"
done
[[ "$PRIMARY_PORT" != "$REPLICA_PORT" ]] || die "primary and replica ports must differ"

IS_ROOT=false; [[ $EUID -eq 0 ]] && IS_ROOT=true
ME=$(id -un)

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
elapsed() { local d=$(( $(now_us) - T0 )); printf '%d.%02ds' $((d / 1000000)) $((d % 1000000 / 10000)); }

# Commands run through priv/as_pg may start daemons (postgres, redis); they
# must not inherit fd 3 (our stdout, often a $(...) pipe), fd 8 (the replica
# lock) or fd 9 (the lock).
# Run a command with root privileges (directly, or via passwordless sudo).
priv() {
	if $IS_ROOT; then "$@" 3>&- 8>&- 9>&-
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n -- "$@" 3>&- 8>&- 9>&-
	else die "need root (or passwordless sudo) to run: $*"
	fi
}

# Run a command as the postgres OS user.
as_pg() {
	if $IS_ROOT; then runuser -u postgres -- "$@" 3>&- 8>&- 9>&-
	elif [[ "$ME" == postgres ]]; then "$@" 3>&- 8>&- 9>&-
	elif command -v sudo >/dev/null && sudo -n -u postgres true 2>/dev/null; then sudo -n -u postgres -- "$@" 3>&- 8>&- 9>&-
	else die "need to run as root, as postgres, or with passwordless sudo to manage the clusters"
	fi
}

# wait_for TIMEOUT_SECONDS CMD... — poll CMD every 0.1s until it succeeds.
wait_for() {
	local deadline=$(( $(now_us) + $1 * 1000000 )); shift
	until "$@"; do
		(( $(now_us) < deadline )) || return 1
		sleep 0.1
	done
}

APT_UPDATED=false
apt_install() {
	$IS_ROOT || return 1
	command -v apt-get >/dev/null || return 1
	if ! $APT_UPDATED; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -q 3>&- 8>&- 9>&- || return 1
		APT_UPDATED=true
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" 3>&- 8>&- 9>&-
}

# ---------------------------------------------------------------- serialise
# Concurrent runs (parallel make targets, several shells) must not race.
if command -v flock >/dev/null; then
	if $IS_ROOT; then LOCK=/run/lock/canary-testenv.lock; else LOCK="${TMPDIR:-/tmp}/canary-testenv-$EUID.lock"; fi
	if { exec 9>>"$LOCK"; } 2>/dev/null; then
		flock -w $((TIMEOUT * 5)) 9 || die "another scripts/testenv.sh run holds $LOCK for too long"
	fi
fi

# ---------------------------------------------------------------- Redis
redis_ping() {
	local out
	if command -v redis-cli >/dev/null; then
		out=$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>&1) || true
	else
		out=$(timeout 3 bash -c 'exec 5<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&5 && IFS= read -r l <&5 && printf "%s" "$l"' \
			"$REDIS_HOST" "$REDIS_PORT" 2>/dev/null) || true
		out=${out#+}; out=${out%$'\r'}
	fi
	REDIS_LAST="$out"
	[[ "$out" == PONG ]]
}

ensure_redis() {
	redis_ping && return 0
	log "Redis at $REDIS_HOST:$REDIS_PORT does not answer PING (${REDIS_LAST:-no answer}); starting it"
	if [[ "$REDIS_LAST" == *NOAUTH* || "$REDIS_LAST" == *DENIED* ]]; then
		die "Redis at $REDIS_HOST:$REDIS_PORT requires authentication/denies access ($REDIS_LAST); the tests need an open local Redis"
	fi
	if ! command -v redis-server >/dev/null; then
		if $IS_ROOT; then
			apt_install redis-server || die "could not install redis-server with apt-get"
			# The package may have started a server already.
			wait_for 3 redis_ping && return 0
		else
			die "redis-server is not installed; install it (e.g. 'sudo apt-get install redis-server') or start Redis on $REDIS_HOST:$REDIS_PORT"
		fi
	fi
	if $IS_ROOT; then
		mkdir -p /var/lib/redis /var/log/redis
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log 3>&- 8>&- 9>&- \
			|| die "redis-server failed to start (see /var/log/redis/ci.log)"
	else
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
			--dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/canary-redis.log" 3>&- 8>&- 9>&- \
			|| die "redis-server failed to start (see ${TMPDIR:-/tmp}/canary-redis.log)"
	fi
	wait_for 10 redis_ping || die "Redis at $REDIS_HOST:$REDIS_PORT still does not answer PING (${REDIS_LAST:-no answer})"
	log "Redis started on $REDIS_HOST:$REDIS_PORT"
}

# ---------------------------------------------------------------- PostgreSQL binaries / version
installed_versions() {
	local b
	for b in /usr/lib/postgresql/*/bin/postgres; do
		[[ -x "$b" ]] || continue
		b=${b%/bin/postgres}; echo "${b##*/}"
	done | sort -V
}

pg_tools_ok() {
	command -v pg_createcluster >/dev/null && command -v pg_ctlcluster >/dev/null &&
		command -v pg_dropcluster >/dev/null && [[ -n "$(installed_versions)" ]]
}

if ! pg_tools_ok; then
	if $IS_ROOT && command -v apt-get >/dev/null; then
		log "PostgreSQL server binaries not found; installing Debian package 'postgresql'"
		apt_install postgresql || die "apt-get install postgresql failed"
		pg_tools_ok || die "PostgreSQL still not usable after installing 'postgresql' (need pg_createcluster and /usr/lib/postgresql/<ver>/bin/postgres)"
	else
		die "PostgreSQL server binaries not found (need pg_createcluster/pg_ctlcluster and /usr/lib/postgresql/<ver>/bin/postgres). Install them as root: apt-get update && apt-get install postgresql"
	fi
fi

if [[ -n "${CANARY_PG_VERSION:-}" ]]; then
	V="$CANARY_PG_VERSION"
else
	# Prefer the version our primary already uses, so a newer install does not orphan it.
	V=$(for _d in /etc/postgresql/*/"$PRIMARY_NAME"/postgresql.conf; do
		_v=${_d%/"$PRIMARY_NAME"/postgresql.conf}; _v=${_v##*/}
		if [[ -f "$_d" && -x "/usr/lib/postgresql/$_v/bin/postgres" ]]; then echo "$_v"; fi
	done | sort -V | tail -n1)
	[[ -n "$V" ]] || V=$(installed_versions | tail -n1)
fi
PGBIN="/usr/lib/postgresql/$V/bin"
for _b in postgres psql pg_isready pg_basebackup pg_ctl; do
	[[ -x "$PGBIN/$_b" ]] || die "$PGBIN/$_b is missing (install postgresql-$V / postgresql-client-$V)"
done

if [[ ! -d /var/run/postgresql ]]; then
	priv install -d -o postgres -g postgres -m 2775 /var/run/postgresql
fi

# ---------------------------------------------------------------- helpers
conf_dir() { echo "/etc/postgresql/$V/$1"; }
cluster_exists() { [[ -f "$(conf_dir "$1")/postgresql.conf" ]]; }
data_dir() {
	local d
	d=$(sed -n "s/^[[:space:]]*data_directory[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$(conf_dir "$1")/postgresql.conf" 2>/dev/null | tail -n1)
	echo "${d:-/var/lib/postgresql/$V/$1}"
}
logfile() { echo "/var/log/postgresql/postgresql-$V-$1.log"; }
log_tail() {
	local f; f=$(logfile "$1")
	if [[ -r "$f" ]]; then
		printf 'testenv: --- last lines of %s ---\n' "$f" >&2
		tail -n 15 "$f" >&2 || true
	fi
}

pgctl() { as_pg pg_ctlcluster --skip-systemctl-redirect "$V" "$@"; }
pg_running() { as_pg "$PGBIN/pg_ctl" status -D "$(data_dir "$1")" >/dev/null 2>&1; }
ready() { "$PGBIN/pg_isready" -q -h "$HOST" -p "$1" -t 2 >/dev/null 2>&1; }

# q PORT SQL — run SQL as superuser postgres over TCP; tuples-only, '|'-separated.
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$HOST" -p "$1" -U postgres -d postgres -c "$2"; }

# pg_file_exists PATH — file test that works whatever user we run as.
pg_file_exists() {
	if $IS_ROOT || [[ "$ME" == postgres ]]; then [[ -f "$1" ]]; else as_pg test -f "$1"; fi
}

# write_pg_file PATH CONTENT — write (as postgres) only if changed; returns 0 when it changed.
write_pg_file() {
	local path=$1 content=$2 cur=""
	if [[ -r "$path" ]]; then cur=$(<"$path")
	elif [[ -e "$path" ]]; then cur=$(as_pg cat "$path" 2>/dev/null || true)
	fi
	[[ "$cur" == "$content" ]] && return 1
	printf '%s\n' "$content" | as_pg tee "$path" >/dev/null
	return 0
}

server_conf() { # PORT
	cat <<-EOF
	# Managed by scripts/testenv.sh (github.com/reqcanary/canary); rewritten on every run.
	port = $1
	listen_addresses = '$HOST'
	wal_level = replica
	max_wal_senders = 10
	max_replication_slots = 10
	wal_keep_size = '128MB'
	max_slot_wal_keep_size = '2GB'
	hot_standby = on
	hot_standby_feedback = on
	wal_receiver_status_interval = '1s'
	wal_retrieve_retry_interval = '1s'
	EOF
}

hba_conf() {
	cat <<-EOF
	# Managed by scripts/testenv.sh (github.com/reqcanary/canary); rewritten on every run.
	# TYPE  DATABASE     USER  ADDRESS        METHOD
	local   all          all                  trust
	local   replication  all                  trust
	host    all          all   127.0.0.1/32   trust
	host    replication  all   127.0.0.1/32   trust
	host    all          all   ::1/128        trust
	host    replication  all   ::1/128        trust
	EOF
}

# configure NAME PORT — (re)write our config; sets CONF_CHANGED / HBA_CHANGED.
configure() {
	local name=$1 port=$2 cd
	cd=$(conf_dir "$name")
	CONF_CHANGED=false; HBA_CHANGED=false
	[[ -d "$cd/conf.d" ]] || as_pg mkdir -p "$cd/conf.d"
	if ! grep -Eq "^[[:space:]]*include_dir[[:space:]]*=[[:space:]]*'?conf\.d'?" "$cd/postgresql.conf"; then
		printf "include_dir = 'conf.d'\n" | as_pg tee -a "$cd/postgresql.conf" >/dev/null
		CONF_CHANGED=true
	fi
	# Keep postgresql.conf's own port in line too (pg_lsclusters shows it).
	if ! grep -Eq "^[[:space:]]*port[[:space:]]*=[[:space:]]*$port([^0-9]|$)" "$cd/postgresql.conf"; then
		as_pg sed -i -E "s/^[[:space:]]*port[[:space:]]*=.*/port = $port/" "$cd/postgresql.conf"
		CONF_CHANGED=true
	fi
	if write_pg_file "$cd/conf.d/$CONF_FILE_NAME" "$(server_conf "$port")"; then CONF_CHANGED=true; fi
	if write_pg_file "$cd/pg_hba.conf" "$(hba_conf)"; then HBA_CHANGED=true; fi
	return 0
}

create_cluster() { # NAME PORT [-- INITDB-OPTIONS...]
	local name=$1 port=$2 loc=(--locale C -e UTF8)
	shift 2
	if locale -a 2>/dev/null | grep -Eqix 'c\.utf-?8'; then loc=(--locale C.UTF-8); fi
	log "creating cluster $V/$name on port $port"
	local out
	if ! out=$(priv pg_createcluster --start-conf=manual "${loc[@]}" -p "$port" "$V" "$name" "$@" 2>&1); then
		printf '%s\n' "$out" >&2
		die "pg_createcluster $V $name failed"
	fi
}

# ---------------------------------------------------------------- primary
ensure_primary() {
	local name=$PRIMARY_NAME port=$PRIMARY_PORT
	cluster_exists "$name" || create_cluster "$name" "$port"
	configure "$name" "$port"
	if ! pg_file_exists "$(data_dir "$name")/PG_VERSION"; then
		die "primary cluster $V/$name has no valid data directory ($(data_dir "$name")). Remove it with 'pg_dropcluster --stop $V $name' and rerun"
	fi
	if pg_running "$name"; then
		if $CONF_CHANGED; then
			log "configuration of $V/$name changed; restarting it"
			pgctl "$name" restart || { log_tail "$name"; die "could not restart primary $V/$name"; }
		elif $HBA_CHANGED; then
			pgctl "$name" reload || true
		fi
	else
		log "starting primary $V/$name (port $port)"
		pgctl "$name" start || { log_tail "$name"; die "could not start primary $V/$name on port $port (port in use? override with CANARY_PG_PRIMARY_PORT)"; }
	fi
	wait_for "$TIMEOUT" ready "$port" || { log_tail "$name"; die "primary $V/$name does not accept connections on $HOST:$port"; }

	local out
	out=$(q "$port" "select pg_is_in_recovery(),
			(select system_identifier from pg_control_system()),
			exists(select 1 from pg_database where datname = '$DB_NAME'),
			current_setting('wal_level')") || die "cannot query primary on $HOST:$port"
	IFS='|' read -r P_RECOVERY P_SYSID P_HASDB P_WAL_LEVEL <<<"$out"
	[[ "$P_RECOVERY" == f ]] || die "primary $V/$name is in recovery (standby.signal in its data dir?)"
	if [[ "$P_WAL_LEVEL" == minimal ]]; then
		log "wal_level is minimal on the primary; restarting to apply settings"
		pgctl "$name" restart || { log_tail "$name"; die "could not restart primary $V/$name"; }
		wait_for "$TIMEOUT" ready "$port" || die "primary $V/$name does not come back after restart"
	fi
	if [[ "$P_HASDB" != t ]]; then
		log "creating database $DB_NAME on the primary"
		q "$port" "create database $DB_NAME" >/dev/null || die "could not create database $DB_NAME"
	fi
}

# ---------------------------------------------------------------- replica
slot_status() { # prints wal_status / 'missing' / 'active:<pid>' prefix info
	q "$PRIMARY_PORT" "select coalesce((select wal_status || '|' || active || '|' || coalesce(active_pid::text, '')
		from pg_replication_slots where slot_name = '$SLOT_NAME'), 'missing||')"
}

drop_slot() {
	local st active pid i
	for i in $(seq 1 50); do
		IFS='|' read -r st active pid <<<"$(slot_status)"
		[[ "$st" == missing ]] && return 0
		if [[ "$active" != t ]]; then
			q "$PRIMARY_PORT" "select pg_drop_replication_slot('$SLOT_NAME')" >/dev/null 2>&1 && return 0
		elif (( i > 20 )) && [[ -n "$pid" ]]; then
			q "$PRIMARY_PORT" "select pg_terminate_backend($pid)" >/dev/null 2>&1 || true
		fi
		sleep 0.1
	done
	die "could not drop replication slot $SLOT_NAME on the primary"
}

drop_replica() {
	local name=$REPLICA_NAME cd dd
	cd=$(conf_dir "$name")
	dd=$(data_dir "$name")
	if cluster_exists "$name"; then
		if ! priv pg_dropcluster --stop "$V" "$name" >&2; then
			log "pg_dropcluster failed; removing $V/$name by hand"
			if pg_running "$name"; then as_pg "$PGBIN/pg_ctl" stop -D "$dd" -m immediate >&2 || true; fi
			priv rm -rf -- "$cd"
			if [[ "$dd" == /var/lib/postgresql/"$V"/"$name" ]]; then priv rm -rf -- "$dd"; fi
		fi
	fi
	# Leftovers: our conf.d file (pg_dropcluster keeps unknown files) and a data
	# directory without a config (pg_createcluster would refuse to reuse it).
	if [[ -d "$cd" ]]; then priv rm -rf -- "$cd"; fi
	if [[ -e "/var/lib/postgresql/$V/$name" ]]; then priv rm -rf -- "/var/lib/postgresql/$V/$name"; fi
	priv rm -f -- "$(logfile "$name")" || true
	drop_slot
}

create_replica() { # REASON
	local name=$REPLICA_NAME port=$REPLICA_PORT dd
	log "recreating replica $V/$name on port $port (reason: $1)"
	drop_replica
	# The initdb'ed files are replaced by the base backup, so skip their fsync.
	create_cluster "$name" "$port" -- --no-sync
	configure "$name" "$port"
	dd=$(data_dir "$name")
	if pg_running "$name"; then pgctl "$name" stop -m immediate >&2 || true; fi
	as_pg find "$dd" -mindepth 1 -delete
	log "pg_basebackup from $HOST:$PRIMARY_PORT into $dd"
	as_pg "$PGBIN/pg_basebackup" -h "$HOST" -p "$PRIMARY_PORT" -U postgres -D "$dd" \
		-X stream -R -C -S "$SLOT_NAME" -c fast >&2 \
		|| die "pg_basebackup from the primary ($HOST:$PRIMARY_PORT) failed"
	pgctl "$name" start || { log_tail "$name"; die "could not start the new replica $V/$name on port $port (port in use? override with CANARY_PG_REPLICA_PORT)"; }
}

# replica_streaming — true once the WAL receiver streams; also "true" (with
# WAL_GONE=true) as soon as the replica logs that the WAL it needs is gone, so
# that we recreate it without waiting for the timeout.
replica_streaming() {
	[[ "$(q "$REPLICA_PORT" "select coalesce((select status from pg_stat_wal_receiver), 'none')" 2>/dev/null)" == streaming ]] && return 0
	local f; f=$(logfile "$REPLICA_NAME")
	if [[ -r "$f" ]] && tail -c +$((LOG_MARK + 1)) "$f" 2>/dev/null | grep -q 'has already been removed'; then
		WAL_GONE=true
		return 0
	fi
	return 1
}

log_size() { local s; s=$(stat -c %s "$(logfile "$1")" 2>/dev/null) || s=0; echo "$s"; }

replica_caught_up() { # LSN
	[[ "$(q "$REPLICA_PORT" "select coalesce(pg_last_wal_replay_lsn() >= '$1'::pg_lsn, false)" 2>/dev/null)" == t ]]
}

# check_replica — returns 0 when healthy; otherwise sets BROKEN to the reason.
check_replica() {
	local name=$REPLICA_NAME port=$REPLICA_PORT dd out st
	BROKEN=""; WAL_GONE=false
	if ! cluster_exists "$name"; then BROKEN="cluster does not exist"; return 1; fi
	LOG_MARK=$(log_size "$name")
	dd=$(data_dir "$name")
	if ! pg_file_exists "$dd/PG_VERSION"; then BROKEN="data directory $dd is invalid"; return 1; fi
	if ! pg_file_exists "$dd/standby.signal"; then BROKEN="no standby.signal (promoted?)"; return 1; fi

	IFS='|' read -r st _ _ <<<"$(slot_status)" || true
	case "$st" in
	lost) BROKEN="replication slot $SLOT_NAME lost its WAL"; return 1 ;;
	missing)
		log "replication slot $SLOT_NAME missing on the primary; creating it"
		q "$PRIMARY_PORT" "select pg_create_physical_replication_slot('$SLOT_NAME', true)" >/dev/null \
			|| { BROKEN="could not create slot $SLOT_NAME"; return 1; } ;;
	esac

	configure "$name" "$port"
	if pg_running "$name"; then
		if $CONF_CHANGED; then
			log "configuration of $V/$name changed; restarting it"
			pgctl "$name" restart || { BROKEN="restart failed"; return 1; }
		elif $HBA_CHANGED; then
			pgctl "$name" reload || true
		fi
	else
		log "starting replica $V/$name (port $port)"
		pgctl "$name" start || { log_tail "$name"; BROKEN="pg_ctlcluster start failed"; return 1; }
	fi
	if ! wait_for "$TIMEOUT" ready "$port"; then
		log_tail "$name"; BROKEN="does not accept connections on $HOST:$port"; return 1
	fi

	out=$(q "$port" "select pg_is_in_recovery(),
			(select system_identifier from pg_control_system()),
			position('port=$PRIMARY_PORT ' in current_setting('primary_conninfo') || ' ') > 0
			  and position('host=$HOST ' in current_setting('primary_conninfo') || ' ') > 0,
			current_setting('primary_slot_name'),
			case when pg_is_in_recovery() then pg_is_wal_replay_paused() else false end") \
		|| { BROKEN="cannot query it"; return 1; }
	local rec sysid conn slot paused
	IFS='|' read -r rec sysid conn slot paused <<<"$out"
	[[ "$rec" == t ]] || { BROKEN="not in recovery (promoted?)"; return 1; }
	[[ "$sysid" == "$P_SYSID" ]] || { BROKEN="it is a copy of a different primary (system identifier $sysid != $P_SYSID)"; return 1; }
	[[ "$conn" == t ]] || { BROKEN="primary_conninfo does not point to $HOST:$PRIMARY_PORT"; return 1; }
	[[ "$slot" == "$SLOT_NAME" ]] || { BROKEN="primary_slot_name is '$slot', want '$SLOT_NAME'"; return 1; }
	if [[ "$paused" == t ]]; then
		log "WAL replay on the replica was paused; resuming"
		q "$port" "select pg_wal_replay_resume()" >/dev/null || { BROKEN="pg_wal_replay_resume() failed"; return 1; }
	fi
	if ! wait_for "$STREAM_TIMEOUT" replica_streaming; then
		log_tail "$name"; BROKEN="WAL receiver not streaming after ${STREAM_TIMEOUT}s"; return 1
	fi
	if $WAL_GONE; then BROKEN="the WAL it needs was already removed on the primary"; return 1; fi
	return 0
}

ensure_replica() {
	if check_replica; then return 0; fi
	create_replica "$BROKEN"
	check_replica || { log_tail "$REPLICA_NAME"; die "freshly created replica $V/$REPLICA_NAME is not healthy: $BROKEN"; }
}

# ---------------------------------------------------------------- etcd
# The project's own single-member etcd, on its own ports and data dir, so it
# never meets a system etcd (2379/2380) or another project's. The ports sit
# below Linux's ephemeral range (32768-60999): a port in that range can be
# taken by any outgoing connection at the moment etcd binds it.
if $IS_ROOT; then ETCD_DIR=/var/lib/canary-etcd; else ETCD_DIR="${TMPDIR:-/tmp}/canary-etcd-$EUID"; fi
ETCD_LOG="$ETCD_DIR.log"
ETCD_URL="http://$HOST:$ETCD_PORT"

# etcd_healthy asks etcd's /health (with curl, or HTTP/1.0 over bash's
# /dev/tcp on machines without curl).
etcd_healthy() {
	local out
	if command -v curl >/dev/null; then
		out=$(curl -fsS -m 2 "$ETCD_URL/health" 2>/dev/null) || return 1
	else
		out=$(timeout 3 bash -c 'exec 5<>"/dev/tcp/$0/$1" && printf "GET /health HTTP/1.0\r\n\r\n" >&5 && cat <&5' \
			"$HOST" "$ETCD_PORT" 2>/dev/null) || return 1
	fi
	[[ "$out" == *'"health":"true"'* ]]
}

# etcd_healthy_or_dead ends the wait early when the server we started exited.
etcd_healthy_or_dead() { etcd_healthy || ! kill -0 "$ETCD_PID" 2>/dev/null; }

ensure_etcd() {
	etcd_healthy && { log "etcd already answers on $HOST:$ETCD_PORT"; return 0; }
	if ! command -v etcd >/dev/null; then
		if $IS_ROOT; then
			local t0; t0=$(now_us)
			# --no-install-recommends: the server alone; policy-rc.d keeps the
			# package from starting a system etcd on 2379.
			local prc=/usr/sbin/policy-rc.d made_prc=false
			if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made_prc=true; fi
			apt_install --no-install-recommends etcd-server || { $made_prc && rm -f "$prc"; die "could not install etcd-server with apt-get"; }
			$made_prc && rm -f "$prc"
			log "etcd-server installed in $(( ($(now_us) - t0) / 1000 )) ms"
		else
			die "etcd is not installed; install it as root ('apt-get install etcd-server') or set CANARY_ETCD=off"
		fi
	fi
	# Something else on our port that is not a healthy etcd: say so.
	if (exec 5<>"/dev/tcp/$HOST/$ETCD_PORT") 2>/dev/null; then
		wait_for 5 etcd_healthy && return 0
		die "port $HOST:$ETCD_PORT is in use but does not answer as a healthy etcd (override with CANARY_ETCD_PORT)"
	fi
	mkdir -p "$ETCD_DIR"; chmod 700 "$ETCD_DIR"
	local t1; t1=$(now_us)
	log "starting etcd on $HOST:$ETCD_PORT (peer $ETCD_PEER_PORT, data $ETCD_DIR, log $ETCD_LOG)"
	# setsid + nohup: the server outlives this script and the caller's shell.
	ETCD_UNSUPPORTED_ARCH="$(uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')" \
	setsid nohup etcd --name canary-test --data-dir "$ETCD_DIR" \
		--listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
		--listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
		--initial-cluster "canary-test=http://$HOST:$ETCD_PEER_PORT" --initial-cluster-state new \
		--initial-cluster-token canary-test \
		--quota-backend-bytes $((512 * 1024 * 1024)) \
		--auto-compaction-mode periodic --auto-compaction-retention 1h \
		</dev/null >>"$ETCD_LOG" 2>&1 3>&- 8>&- 9>&- &
	ETCD_PID=$!
	disown || true
	if ! wait_for "$TIMEOUT" etcd_healthy_or_dead || ! etcd_healthy; then
		tail -n 15 "$ETCD_LOG" >&2 || true
		die "etcd did not become healthy on $HOST:$ETCD_PORT within ${TIMEOUT}s (see $ETCD_LOG)"
	fi
	log "etcd healthy on $HOST:$ETCD_PORT after $(( ($(now_us) - t1) / 1000 )) ms"
}

# ---------------------------------------------------------------- Prometheus
# shellcheck source=scripts/testenv-prometheus.sh
. "$(dirname "${BASH_SOURCE[0]}")/testenv-prometheus.sh"

# ---------------------------------------------------------------- main
ensure_redis
if $ETCD_WANTED; then ensure_etcd; fi
if $PROM_WANTED; then ensure_prometheus; fi
# The MariaDB primary + GTID replica (scripts/testenv-mariadb.sh; CANARY_MARIADB=off skips it).
TESTENV_SOURCED=1 source "$(dirname "${BASH_SOURCE[0]}")/testenv-mariadb.sh"
if [[ "${CANARY_MARIADB:-on}" != off ]]; then ensure_mariadb; fi
# The console's browser tests: headless Chromium (installed when missing).
source "$(dirname "${BASH_SOURCE[0]}")/testenv-chromium.sh"
ensure_chromium
ensure_primary

# Tests running elsewhere (another shell's `make test`) hold the replica lock
# of internal/testenv (ReplicaLockFile): shared while they read from the
# replica, exclusively while they pause its replay or stop it. Checking and
# repairing the replica (resuming a paused replay, recreating it) under the
# exclusive lock never undoes such a test's pause or stops a replica under it.
REPLICA_LOCK="${TMPDIR:-/tmp}/canary-pg-replica.lock"
if command -v flock >/dev/null && { exec 8>>"$REPLICA_LOCK"; } 2>/dev/null; then
	flock -w $((TIMEOUT * 5)) 8 || die "tests elsewhere hold the replica lock $REPLICA_LOCK for too long"
fi
ensure_replica

# Make sure everything done on the primary so far (e.g. CREATE DATABASE) is visible on the replica.
LSN=$(q "$PRIMARY_PORT" "select pg_current_wal_lsn()") || die "cannot query primary"
wait_for "$TIMEOUT" replica_caught_up "$LSN" || die "replica did not replay the primary's WAL up to $LSN within ${TIMEOUT}s"
exec 8>&- # release the replica lock

log "ready in $(elapsed): PostgreSQL $V primary $HOST:$PRIMARY_PORT ($V $PRIMARY_NAME), streaming replica $HOST:$REPLICA_PORT ($V $REPLICA_NAME), Redis $REDIS_HOST:$REDIS_PORT$($ETCD_WANTED && echo ", etcd $HOST:$ETCD_PORT")$($PROM_WANTED && echo ", Prometheus $HOST:$PROM_PORT")"

{
	printf 'export CANARY_PG_PRIMARY="postgres://postgres@%s:%s/%s?sslmode=disable"\n' "$HOST" "$PRIMARY_PORT" "$DB_NAME"
	printf 'export CANARY_PG_REPLICA="postgres://postgres@%s:%s/%s?sslmode=disable"\n' "$HOST" "$REPLICA_PORT" "$DB_NAME"
	printf 'export CANARY_PG_REPLICA_CLUSTER="%s %s"\n' "$V" "$REPLICA_NAME"
	printf 'export CANARY_REDIS_ADDR="%s:%s"\n' "$REDIS_HOST" "$REDIS_PORT"
	if $ETCD_WANTED; then printf 'export CANARY_ETCD_ENDPOINTS="%s:%s"\n' "$HOST" "$ETCD_PORT"; fi
	if $PROM_WANTED; then
		printf 'export CANARY_PROMETHEUS_URL="%s"\n' "$PROM_URL"
		printf 'export CANARY_PROMETHEUS_TARGETS="%s"\n' "$PROM_DIR/targets"
	fi
} >&3
