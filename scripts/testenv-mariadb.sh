#!/usr/bin/env bash
# scripts/testenv-mariadb.sh — the project's own MariaDB primary and GTID
# replica, for the MySQL/MariaDB dialect of dbwrap.
#
# Sourced by scripts/testenv.sh (which provides log, die, priv, wait_for,
# apt_install, now_us, IS_ROOT and fd 3 for the export lines); it can also be
# run alone: `eval "$(bash scripts/testenv-mariadb.sh)"`.
#
# Two mariadbd processes of Debian's mariadb-server (installed when missing),
# never the system server on 3306:
#   * primary on 127.0.0.1:$CANARY_MYSQL_PRIMARY_PORT (33306), server_id 1,
#     log_bin, binlog_format ROW, gtid_strict_mode;
#   * replica on 127.0.0.1:$CANARY_MYSQL_REPLICA_PORT (33307), server_id 2,
#     read_only, replicating with CHANGE MASTER TO … MASTER_USE_GTID=slave_pos;
#   * database canary_test, user canary@127.0.0.1 (no password, all
#     privileges but READ_ONLY ADMIN, so the replica refuses its writes) and
#     canary_admin@127.0.0.1 (all privileges: STOP SLAVE, SET GLOBAL
#     read_only), made on the primary and replicated.
# Data dirs: $CANARY_MYSQL_DIR (root: /var/lib/canary-mariadb, else
# $TMPDIR/canary-mariadb-$UID)/{primary,replica}, logs beside them. Servers
# that already run and answer are reused; a stopped replica thread (a test's
# STOP SLAVE that did not clean up) is restarted; a replica that cannot
# replicate is recreated from an empty data dir (it replays the primary's
# whole binlog, which is never purged).
#
# Prints `export CANARY_MYSQL_PRIMARY=…` and `export CANARY_MYSQL_REPLICA=…`
# (go-sql-driver/mysql DSNs). CANARY_MARIADB=off skips it.

if [[ -z "${TESTENV_SOURCED:-}" ]]; then
	# Run alone: the few helpers testenv.sh would provide.
	set -euo pipefail
	export LC_ALL=C
	exec 3>&1 1>&2
	IS_ROOT=false; [[ $EUID -eq 0 ]] && IS_ROOT=true
	TIMEOUT="${CANARY_TESTENV_TIMEOUT:-60}"
	now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
	log() { printf 'testenv-mariadb: %s\n' "$*" >&2; }
	die() {
		printf 'testenv-mariadb: ERROR: %s\n' "$*" >&2
		[[ "${CI:-}" == true ]] && printf 'testenv-mariadb: CI=true: the MariaDB pair is required; failing.\n' >&2
		exit 1
	}
	wait_for() {
		local deadline=$(( $(now_us) + $1 * 1000000 )); shift
		until "$@"; do (( $(now_us) < deadline )) || return 1; sleep 0.1; done
	}
	apt_install() {
		$IS_ROOT && command -v apt-get >/dev/null || return 1
		DEBIAN_FRONTEND=noninteractive apt-get update -q 3>&- 8>&- 9>&- || return 1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" 3>&- 8>&- 9>&-
	}
fi

MY_PRIMARY_PORT="${CANARY_MYSQL_PRIMARY_PORT:-33306}"
MY_REPLICA_PORT="${CANARY_MYSQL_REPLICA_PORT:-33307}"
MY_HOST=127.0.0.1
MY_DB=canary_test
MY_USER=canary
MY_ADMIN=$(id -un) # the unix_socket account mariadb-install-db creates
if $IS_ROOT; then MY_DIR="${CANARY_MYSQL_DIR:-/var/lib/canary-mariadb}"; else MY_DIR="${CANARY_MYSQL_DIR:-${TMPDIR:-/tmp}/canary-mariadb-$EUID}"; fi

for _p in "$MY_PRIMARY_PORT" "$MY_REPLICA_PORT"; do
	[[ "$_p" =~ ^[0-9]+$ ]] || die "CANARY_MYSQL_PRIMARY_PORT and CANARY_MYSQL_REPLICA_PORT must be numbers, got '$_p'"
	[[ "$_p" != 3306 ]] || die "port 3306 is the system MariaDB's; choose another CANARY_MYSQL_*_PORT"
done
[[ "$MY_PRIMARY_PORT" != "$MY_REPLICA_PORT" ]] || die "the MariaDB primary and replica ports must differ"

# my_sql ROLE SQL — run SQL as root over the server's own socket; tab-separated, no headers.
my_sql() {
	mariadb --no-defaults -u "$MY_ADMIN" --socket="$MY_DIR/$1/mysqld.sock" -N -B -e "$2" 2>&1
}
# my_slave_status — SHOW SLAVE STATUS of the replica, one "Name: value" a line.
my_slave_status() {
	mariadb --no-defaults -u "$MY_ADMIN" --socket="$MY_DIR/replica/mysqld.sock" -e "SHOW SLAVE STATUS\G" 2>&1
}
my_alive() { mariadb-admin --no-defaults -u "$MY_ADMIN" --socket="$MY_DIR/$1/mysqld.sock" --connect-timeout=2 ping >/dev/null 2>&1; }

# my_start ROLE PORT SERVER_ID [EXTRA OPTIONS...] — start one mariadbd in the background.
my_start() {
	local role=$1 port=$2 id=$3; shift 3
	local dd="$MY_DIR/$role" user=()
	$IS_ROOT && user=(--user=mysql)
	# setsid + nohup: the server outlives this script and the caller's shell.
	setsid nohup mariadbd --no-defaults "${user[@]}" --datadir="$dd" --port="$port" --bind-address="$MY_HOST" \
		--socket="$dd/mysqld.sock" --pid-file="$dd/mysqld.pid" --log-error="$MY_DIR/$role.log" \
		--server-id="$id" --log-bin=binlog --binlog-format=ROW --gtid-strict-mode=1 --log-slave-updates=1 \
		--skip-name-resolve --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
		--innodb-flush-log-at-trx-commit=2 --innodb-flush-method=nosync --innodb-doublewrite=0 --sync-binlog=0 --max-connections=500 \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
		--slave-net-timeout=5 --expire-logs-days=0 "$@" \
		</dev/null >>"$MY_DIR/$role.log" 2>&1 3>&- 7>&- 8>&- 9>&- &
	disown || true
}

# my_init ROLE — a fresh data dir: a copy of $MY_DIR/template, which
# mariadb-install-db makes once (a copy takes milliseconds, an install seconds).
my_init() {
	local dd="$MY_DIR/$1" tpl="$MY_DIR/template" user=()
	if [[ ! -d "$tpl/mysql" ]]; then
		rm -rf -- "$tpl"
		mkdir -p "$tpl"
		if $IS_ROOT; then chown mysql:mysql "$tpl"; user=(--user=mysql); fi
		mariadb-install-db --no-defaults "${user[@]}" --datadir="$tpl" --auth-root-authentication-method=socket \
			--auth-root-socket-user="$MY_ADMIN" --skip-test-db \
			--innodb-log-file-size=16M --innodb-buffer-pool-size=32M --innodb-flush-method=nosync \
			>>"$MY_DIR/template.log" 2>&1 3>&- 8>&- 9>&- \
			|| { rm -rf -- "$tpl"; tail -n 15 "$MY_DIR/template.log" >&2; die "mariadb-install-db into $tpl failed"; }
	fi
	rm -rf -- "$dd"
	cp -a -- "$tpl" "$dd"
}

my_log_tail() { printf 'testenv-mariadb: --- last lines of %s ---\n' "$MY_DIR/$1.log" >&2; tail -n 15 "$MY_DIR/$1.log" >&2 || true; }

ensure_mariadb_binaries() {
	command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null && command -v mariadb >/dev/null && return 0
	if $IS_ROOT; then
		local t0; t0=$(now_us)
		# policy-rc.d keeps the package from starting (or restarting) the system server.
		local prc=/usr/sbin/policy-rc.d made_prc=false
		if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made_prc=true; fi
		apt_install --no-install-recommends mariadb-server mariadb-client || { $made_prc && rm -f "$prc"; die "could not install mariadb-server with apt-get"; }
		$made_prc && rm -f "$prc"
		log "mariadb-server installed in $(( ($(now_us) - t0) / 1000 )) ms"
	else
		die "mariadbd is not installed; install it as root ('apt-get install mariadb-server') or set CANARY_MARIADB=off"
	fi
}

ensure_mariadb_primary() {
	if ! my_alive primary; then
		if [[ ! -d "$MY_DIR/primary/mysql" ]]; then
			log "creating the MariaDB primary in $MY_DIR/primary"
			my_init primary
		fi
		if (exec 5<>"/dev/tcp/$MY_HOST/$MY_PRIMARY_PORT") 2>/dev/null; then
			die "port $MY_HOST:$MY_PRIMARY_PORT is in use by something that is not our MariaDB primary (override with CANARY_MYSQL_PRIMARY_PORT)"
		fi
		log "starting the MariaDB primary on $MY_HOST:$MY_PRIMARY_PORT"
		my_start primary "$MY_PRIMARY_PORT" 1
		wait_for "$TIMEOUT" my_alive primary || { my_log_tail primary; die "the MariaDB primary did not start on $MY_HOST:$MY_PRIMARY_PORT"; }
	fi
	local out
	out=$(my_sql primary "SELECT @@server_id, @@read_only, @@log_bin, @@port") || die "cannot query the MariaDB primary: $out"
	[[ "$out" == $'1\t0\t1\t'"$MY_PRIMARY_PORT" ]] || die "the MariaDB primary answers '$out', want server_id 1, read_only 0, log_bin 1, port $MY_PRIMARY_PORT"
	# Idempotent; replicated to the replica through the binlog.
	my_sql primary "CREATE DATABASE IF NOT EXISTS $MY_DB;
		CREATE USER IF NOT EXISTS '$MY_USER'@'127.0.0.1';
		GRANT ALL PRIVILEGES ON *.* TO '$MY_USER'@'127.0.0.1' WITH GRANT OPTION;
		REVOKE READ_ONLY ADMIN ON *.* FROM '$MY_USER'@'127.0.0.1';
		CREATE USER IF NOT EXISTS 'canary_admin'@'127.0.0.1';
		GRANT ALL PRIVILEGES ON *.* TO 'canary_admin'@'127.0.0.1' WITH GRANT OPTION;
		CREATE USER IF NOT EXISTS 'canary_repl'@'127.0.0.1' IDENTIFIED BY 'canary_repl';
		GRANT REPLICATION SLAVE ON *.* TO 'canary_repl'@'127.0.0.1'" >/dev/null \
		|| die "cannot create $MY_DB and the users on the MariaDB primary"
}

# my_replica_state — "<IO>\t<SQL>\t<read_only>\t<server_id>" of the replica.
my_replica_state() {
	my_sql replica "SELECT @@read_only, @@server_id" | tr '\n' '\t'
	my_slave_status | sed -n 's/^ *Slave_\(IO\|SQL\)_Running: //p' | tr '\n' '\t'
}

my_replica_streaming() {
	local st; st=$(my_replica_state 2>/dev/null) || return 1
	[[ "$st" == $'1\t2\tYes\tYes\t' ]]
}

my_replica_caught_up() { # GTID
	[[ "$(my_sql replica "SELECT MASTER_GTID_WAIT('$1', 0)" 2>/dev/null)" == 0 ]]
}

my_create_replica() { # REASON
	log "creating the MariaDB replica in $MY_DIR/replica (reason: $1)"
	if my_alive replica; then
		mariadb-admin --no-defaults -u "$MY_ADMIN" --socket="$MY_DIR/replica/mysqld.sock" shutdown >/dev/null 2>&1 || true
		wait_for "$TIMEOUT" bash -c '! kill -0 "$(cat "$0" 2>/dev/null)" 2>/dev/null' "$MY_DIR/replica/mysqld.pid" || true
	fi
	my_init replica
	my_start replica "$MY_REPLICA_PORT" 2 --read-only=1
	wait_for "$TIMEOUT" my_alive replica || { my_log_tail replica; die "the MariaDB replica did not start on $MY_HOST:$MY_REPLICA_PORT"; }
	my_sql replica "SET GLOBAL gtid_slave_pos = '';
		CHANGE MASTER TO MASTER_HOST='$MY_HOST', MASTER_PORT=$MY_PRIMARY_PORT, MASTER_USER='canary_repl',
			MASTER_PASSWORD='canary_repl', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos;
		START SLAVE" >/dev/null || die "cannot set up replication on the MariaDB replica"
}

ensure_mariadb_replica() {
	local why=""
	if ! my_alive replica; then
		if [[ ! -d "$MY_DIR/replica/mysql" ]]; then
			why="no data dir"
		elif (exec 5<>"/dev/tcp/$MY_HOST/$MY_REPLICA_PORT") 2>/dev/null; then
			die "port $MY_HOST:$MY_REPLICA_PORT is in use by something that is not our MariaDB replica (override with CANARY_MYSQL_REPLICA_PORT)"
		else
			log "starting the MariaDB replica on $MY_HOST:$MY_REPLICA_PORT"
			my_start replica "$MY_REPLICA_PORT" 2 --read-only=1
			wait_for "$TIMEOUT" my_alive replica || why="does not start"
		fi
	fi
	if [[ -z "$why" ]]; then
		local st; st=$(my_replica_state 2>/dev/null) || st=""
		case "$st" in
		$'1\t2\tYes\tYes\t') ;;
		$'1\t2\t'*)
			# A test left a replica thread stopped (or read_only off): restart what is off.
			log "the MariaDB replica's threads are not both running ($st); starting them"
			my_sql replica "SET GLOBAL read_only = 1; START SLAVE" >/dev/null || true
			wait_for 10 my_replica_streaming || why="replication does not run: $(my_slave_status | grep -E 'Last_(IO|SQL)_Error:' | tr -s ' ' | tr '\n' ' ')" ;;
		$'0\t2\t'*)
			log "read_only is off on the MariaDB replica (a test promoted it?); turning it on"
			my_sql replica "SET GLOBAL read_only = 1; START SLAVE" >/dev/null || true
			wait_for 10 my_replica_streaming || why="replication does not run" ;;
		*) why="unexpected state '$st'" ;;
		esac
	fi
	if [[ -n "$why" ]]; then
		my_create_replica "$why"
		wait_for "$TIMEOUT" my_replica_streaming || { my_log_tail replica; die "the new MariaDB replica does not replicate: $(my_replica_state 2>&1)"; }
	fi
	local gtid
	gtid=$(my_sql primary "SELECT @@gtid_binlog_pos") || die "cannot read the primary's GTID position"
	wait_for "$TIMEOUT" my_replica_caught_up "$gtid" || die "the MariaDB replica did not reach $gtid within ${TIMEOUT}s"
}

ensure_mariadb() {
	local t0; t0=$(now_us)
	ensure_mariadb_binaries
	mkdir -p "$MY_DIR"
	$IS_ROOT && chown mysql:mysql "$MY_DIR"
	ensure_mariadb_primary
	# Tests that stop the replica's threads hold this lock exclusively
	# (internal/testenv MariaDBReplicaLockFile): repairing the replica under it
	# never restarts a thread such a test stopped.
	local lock="${TMPDIR:-/tmp}/canary-mariadb-replica.lock"
	if command -v flock >/dev/null && { exec 7>>"$lock"; } 2>/dev/null; then
		flock -w $((TIMEOUT * 5)) 7 || die "tests elsewhere hold the MariaDB replica lock $lock for too long"
	fi
	ensure_mariadb_replica
	exec 7>&-
	log "MariaDB primary $MY_HOST:$MY_PRIMARY_PORT and GTID replica $MY_HOST:$MY_REPLICA_PORT ready in $(( ($(now_us) - t0) / 1000 )) ms"
	{
		printf 'export CANARY_MYSQL_PRIMARY="%s@tcp(%s:%s)/%s"\n' "$MY_USER" "$MY_HOST" "$MY_PRIMARY_PORT" "$MY_DB"
		printf 'export CANARY_MYSQL_REPLICA="%s@tcp(%s:%s)/%s"\n' "$MY_USER" "$MY_HOST" "$MY_REPLICA_PORT" "$MY_DB"
	} >&3
}

if [[ -z "${TESTENV_SOURCED:-}" ]]; then
	[[ "${CANARY_MARIADB:-on}" == off ]] || ensure_mariadb
fi
