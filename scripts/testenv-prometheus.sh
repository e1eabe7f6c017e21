# scripts/testenv-prometheus.sh — sourced by scripts/testenv.sh (uses its
# log, die, wait_for, now_us, apt_install, HOST, IS_ROOT, TIMEOUT).
#
# This project's own Prometheus (Debian's prometheus, installed when missing
# and run as root) on $HOST:$CANARY_PROMETHEUS_PORT (22390), with its own
# data dir ($PROM_DIR: /var/lib/canary-prometheus as root, else
# $TMPDIR/canary-prometheus-$UID) and log ($PROM_DIR.log), reused when it
# already answers. It scrapes, every second, the targets that tests list in
# files under $PROM_DIR/targets/ (file_sd: a test writes <name>.json naming
# its own /metrics server and removes it when done), so tests find their
# series by the labels they give their targets. The ramp package's
# Prometheus gate tests use it (internal/testenv/prometheus.go).
#
#   CANARY_PROMETHEUS_PORT (22390)   CANARY_PROMETHEUS ("off" skips it)

PROM_PORT="${CANARY_PROMETHEUS_PORT:-22390}"
[[ "$PROM_PORT" =~ ^[0-9]+$ ]] || die "CANARY_PROMETHEUS_PORT must be a number, got '$PROM_PORT'"
PROM_WANTED=true; [[ "${CANARY_PROMETHEUS:-on}" == off ]] && PROM_WANTED=false
if $IS_ROOT; then PROM_DIR=/var/lib/canary-prometheus; else PROM_DIR="${TMPDIR:-/tmp}/canary-prometheus-$EUID"; fi
PROM_LOG="$PROM_DIR.log"
PROM_URL="http://$HOST:$PROM_PORT"

prom_ready() {
	if command -v curl >/dev/null; then
		curl -fsS -m 2 "$PROM_URL/-/ready" >/dev/null 2>&1
	else
		local out
		out=$(timeout 3 bash -c 'exec 5<>"/dev/tcp/$0/$1" && printf "GET /-/ready HTTP/1.0\r\n\r\n" >&5 && cat <&5' \
			"$HOST" "$PROM_PORT" 2>/dev/null) || return 1
		[[ "$out" == "HTTP/1."*" 200"* ]]
	fi
}
prom_ready_or_dead() { prom_ready || ! kill -0 "$PROM_PID" 2>/dev/null; }

ensure_prometheus() {
	mkdir -p "$PROM_DIR/targets" "$PROM_DIR/data"; chmod 755 "$PROM_DIR" "$PROM_DIR/targets"
	prom_ready && { log "Prometheus already answers on $HOST:$PROM_PORT"; return 0; }
	if ! command -v prometheus >/dev/null; then
		if $IS_ROOT; then
			local t0; t0=$(now_us)
			# policy-rc.d keeps the package from starting a system
			# Prometheus on 9090; only the server, no exporters.
			local prc=/usr/sbin/policy-rc.d made_prc=false
			if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made_prc=true; fi
			apt_install --no-install-recommends prometheus || { $made_prc && rm -f "$prc"; die "could not install prometheus with apt-get"; }
			$made_prc && rm -f "$prc"
			log "prometheus installed in $(( ($(now_us) - t0) / 1000 )) ms"
		else
			die "prometheus is not installed; install it as root ('apt-get install prometheus') or set CANARY_PROMETHEUS=off"
		fi
	fi
	if (exec 5<>"/dev/tcp/$HOST/$PROM_PORT") 2>/dev/null; then
		wait_for 5 prom_ready && return 0
		die "port $HOST:$PROM_PORT is in use but does not answer as Prometheus (override with CANARY_PROMETHEUS_PORT)"
	fi
	cat >"$PROM_DIR/prometheus.yml" <<-YAML
	# written by scripts/testenv-prometheus.sh
	global:
	  scrape_interval: 1s
	  scrape_timeout: 1s
	  evaluation_interval: 1s
	scrape_configs:
	  - job_name: canary-tests
	    file_sd_configs:
	      - files: ['$PROM_DIR/targets/*.json']
	        refresh_interval: 1s
	YAML
	local t1; t1=$(now_us)
	log "starting Prometheus on $HOST:$PROM_PORT (data $PROM_DIR/data, log $PROM_LOG)"
	setsid nohup prometheus --config.file "$PROM_DIR/prometheus.yml" \
		--storage.tsdb.path "$PROM_DIR/data" --storage.tsdb.retention.time 2h \
		--web.listen-address "$HOST:$PROM_PORT" \
		</dev/null >>"$PROM_LOG" 2>&1 3>&- 8>&- 9>&- &
	PROM_PID=$!
	disown || true
	if ! wait_for "$TIMEOUT" prom_ready_or_dead || ! prom_ready; then
		tail -n 15 "$PROM_LOG" >&2 || true
		die "Prometheus did not become ready on $HOST:$PROM_PORT within ${TIMEOUT}s (see $PROM_LOG)"
	fi
	log "Prometheus ready on $HOST:$PROM_PORT after $(( ($(now_us) - t1) / 1000 )) ms"
}
