#!/usr/bin/env bash
# chromium.sh prints the path of a Chromium or Chrome binary for the browser
# tests, installing Debian's chromium package with apt-get when none is found
# and we are root (as dev-postgres.sh does for PostgreSQL). CHROMIUM, when set,
# names the binary to use. It fails, saying what to install, when it can't.
set -euo pipefail

say() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

find_chromium() {
	if [[ -n "${CHROMIUM:-}" ]]; then
		[[ -x "$CHROMIUM" ]] || die "CHROMIUM=$CHROMIUM is not an executable file"
		echo "$CHROMIUM"
		return
	fi
	local name
	for name in chromium chromium-browser google-chrome-stable google-chrome headless_shell; do
		if command -v "$name" >/dev/null 2>&1; then
			command -v "$name"
			return
		fi
	done
	return 1
}

if find_chromium; then
	exit 0
fi
if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	die "Chromium not found. Install it (e.g. 'sudo apt-get install chromium' on Debian/Ubuntu) or set CHROMIUM to a Chrome or Chromium binary."
fi
say "Chromium not found: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends chromium; } >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	die "apt-get install chromium failed (full log: $log)"
fi
rm -f "$log"
find_chromium || die "chromium was installed but is not on PATH"
