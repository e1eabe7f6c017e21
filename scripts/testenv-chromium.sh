# scripts/testenv-chromium.sh: sourced by scripts/testenv.sh (uses its log,
# die, apt_install, now_us and IS_ROOT). Makes sure a headless Chromium is
# available for the console's browser tests (console/, chromedp) and prints
#   export CANARY_CHROMIUM="/usr/bin/chromium"
# on fd 3. Debian's `chromium` package is installed with apt-get when no
# browser is found (as root; --no-install-recommends keeps it to the browser).
# Nothing is started here: each test package starts one browser and reuses it.
#
# Optional overrides (environment):
#   CANARY_CHROMIUM   a browser binary to use instead of looking for one
#   CANARY_BROWSER    (on; "off" skips the browser and prints no CANARY_CHROMIUM:
#                     the browser tests then skip, or fail with CI=true)

find_chromium() {
	local c
	for c in "${CANARY_CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome headless-shell; do
		[[ -n "$c" ]] || continue
		if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
	done
	return 1
}

ensure_chromium() {
	[[ "${CANARY_BROWSER:-on}" == off ]] && { log "CANARY_BROWSER=off: no browser"; return 0; }
	local bin
	if [[ -n "${CANARY_CHROMIUM:-}" ]] && ! command -v "$CANARY_CHROMIUM" >/dev/null 2>&1; then
		die "CANARY_CHROMIUM=$CANARY_CHROMIUM is not an executable browser"
	fi
	if ! bin=$(find_chromium); then
		if $IS_ROOT; then
			local t0; t0=$(now_us)
			apt_install --no-install-recommends chromium || die "could not install chromium with apt-get"
			log "chromium installed in $(( ($(now_us) - t0) / 1000 )) ms"
			bin=$(find_chromium) || die "chromium installed but no chromium binary on PATH"
		else
			die "no Chromium found; install it as root ('apt-get install chromium'), set CANARY_CHROMIUM=/path/to/chrome, or CANARY_BROWSER=off"
		fi
	fi
	log "browser: $bin ($("$bin" --version 2>/dev/null | head -1))"
	printf 'export CANARY_CHROMIUM="%s"\n' "$bin" >&3
}
