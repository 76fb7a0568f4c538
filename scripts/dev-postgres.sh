#!/usr/bin/env bash
# dev-postgres.sh start|stop|status|url
#
# A private PostgreSQL cluster for `make run` and `make test`, so neither needs
# a database set up by hand. It lives in .dev/postgres in the checkout
# (git-ignored), listens on 127.0.0.1:${DEV_PG_PORT:-25432} and on a Unix
# socket in that folder, trusts local connections, and runs with fsync=off:
# its data is disposable. The port is below Linux's ephemeral range
# (32768-60999): while the server is down, clients reconnecting to a port in
# that range can be given it as their own local port (a TCP self-connect), and
# the server then cannot start again ("address already in use").
#
# PostgreSQL is taken from the system (pg_config --bindir, else the newest
# /usr/lib/postgresql/*/bin); as root on Debian/Ubuntu it is installed with
# apt-get when missing. PostgreSQL refuses to run as root, so as root the
# server runs as the `postgres` user (or a `dynconn` system user made for it);
# if that user cannot reach the checkout (e.g. under /root, mode 700), the
# cluster goes to /tmp/dynconn-pg-<hash of the checkout path> instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PORT=${DEV_PG_PORT:-25432}
DB=dynconn
IN_CHECKOUT="$ROOT/.dev/postgres"
FALLBACK="/tmp/dynconn-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"

say() { printf 'dev-postgres: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# find_bindir prints the directory holding initdb and pg_ctl, or fails.
find_bindir() {
	local d
	# pg_config comes with libpq-dev too, so check that the server is there.
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
			echo "$d"
			return
		fi
	fi
	d=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
		echo "$d"
		return
	fi
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return
	fi
	return 1
}

install_postgres() {
	command -v apt-get >/dev/null 2>&1 ||
		die "PostgreSQL server binaries not found and apt-get is not available: install PostgreSQL (initdb, pg_ctl, postgres), or set DATABASE_URL to a server of yours"
	say "PostgreSQL server not found: installing Debian's postgresql package"
	# Only this script's cluster is wanted, not the package's default one on
	# port 5432 (which may be taken, and would run for nothing).
	if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
		mkdir -p /etc/postgresql-common
		echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
	fi
	export DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1
	local log
	log=$(mktemp)
	if ! { apt-get update -q && apt-get install -y -q -o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold postgresql; } >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "apt-get install postgresql failed (full log: $log)"
	fi
	rm -f "$log"
}

bindir() {
	local d
	if d=$(find_bindir); then
		echo "$d"
		return
	fi
	if [[ $EUID -ne 0 ]]; then
		die "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them, e.g. 'sudo apt-get install postgresql' on Debian/Ubuntu or 'brew install postgresql' on macOS, or set DATABASE_URL to a server of yours."
	fi
	install_postgres
	d=$(find_bindir) || die "installed postgresql but still cannot find initdb and pg_ctl"
	echo "$d"
}

# pg_user prints the user the server runs as: the caller, or when root an
# unprivileged user (created if needed; only when create=1).
pg_user() {
	local create=${1:-0}
	if [[ $EUID -ne 0 ]]; then
		id -un
		return
	fi
	if id postgres >/dev/null 2>&1; then
		echo postgres
		return
	fi
	if ! id dynconn >/dev/null 2>&1; then
		[[ $create == 1 ]] || return 1
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dynconn
	fi
	echo dynconn
}

# as_pg runs a command as the server's user, from a directory it can enter.
as_pg() {
	local user=$1
	shift
	if [[ $EUID -ne 0 ]]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		(cd / && runuser -u "$user" -- "$@")
	else
		(cd / && setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@")
	fi
}

# cluster_dir prints where the cluster lives, creating the folder for user.
cluster_dir() {
	local user=$1
	if [[ $EUID -ne 0 ]]; then
		mkdir -p "$IN_CHECKOUT"
		echo "$IN_CHECKOUT"
		return
	fi
	mkdir -p "$ROOT/.dev"
	if as_pg "$user" test -x "$ROOT/.dev"; then
		mkdir -p "$IN_CHECKOUT"
		chown "$user:" "$IN_CHECKOUT"
		chmod 700 "$IN_CHECKOUT"
		echo "$IN_CHECKOUT"
		return
	fi
	say "user $user cannot reach $ROOT (a parent folder is private), so the cluster lives in $FALLBACK"
	mkdir -p "$FALLBACK"
	chown "$user:" "$FALLBACK"
	chmod 700 "$FALLBACK"
	echo "$FALLBACK"
}

# existing_dir prints the folder of an existing cluster without creating
# anything, preferring the checkout.
existing_dir() {
	local d
	for d in "$IN_CHECKOUT" "$FALLBACK"; do
		if [[ -f "$d/data/PG_VERSION" ]]; then
			echo "$d"
			return
		fi
	done
	return 1
}

# running_port prints the port of the cluster in dir if its postmaster is
# alive. A postmaster.pid whose process is gone, or is not this cluster's
# postgres (PIDs are reused after a reboot or in a new container), is stale.
running_port() {
	local dir=$1 pidfile="$1/data/postmaster.pid" pid
	[[ -f "$pidfile" ]] || return 1
	pid=$(head -n 1 "$pidfile")
	if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/data"; then
		sed -n 4p "$pidfile"
		return
	fi
	return 1
}

db_url() {
	local port=$1
	echo "postgres://postgres@127.0.0.1:$port/$DB?sslmode=disable"
}

cmd_start() {
	local bin user dir port sockdir
	bin=$(bindir)
	user=$(pg_user 1)
	dir=$(cluster_dir "$user")

	if port=$(running_port "$dir"); then
		say "already running on 127.0.0.1:$port ($dir)"
		return
	fi
	if [[ -f "$dir/data/postmaster.pid" ]]; then
		say "removing stale postmaster.pid"
		rm -f "$dir/data/postmaster.pid" "$dir"/.s.PGSQL.*
	fi

	if [[ ! -f "$dir/data/PG_VERSION" ]]; then
		say "creating a cluster in $dir/data with $bin/initdb"
		rm -rf "$dir/data"
		as_pg "$user" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
			--encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
		echo "include_if_exists = 'dynconn.conf'" >>"$dir/data/postgresql.conf"
	fi
	local have want
	have=$(cat "$dir/data/PG_VERSION")
	want=$("$bin/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
	if [[ "$have" != "$want" ]]; then
		die "the cluster in $dir/data is from PostgreSQL $have but the binaries are $want: run '$0 stop', delete $dir and start again"
	fi

	# A Unix socket path must fit in 107 bytes; a deep checkout gets TCP only.
	sockdir=$dir
	if (( ${#sockdir} + 20 > 107 )); then
		say "path too long for a Unix socket: TCP only"
		sockdir=
	fi
	# Written at every start so that DEV_PG_PORT takes effect.
	as_pg "$user" tee "$dir/data/dynconn.conf" >/dev/null <<EOF
# Written by scripts/dev-postgres.sh at every start. Disposable data: speed over safety.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$sockdir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

	if ! as_pg "$user" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null; then
		tail -n 20 "$dir/postgres.log" >&2 || true
		die "could not start PostgreSQL on 127.0.0.1:$PORT (port taken? set DEV_PG_PORT)"
	fi
	if [[ -z "$("$bin/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
		"$bin/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
	fi
	say "running on 127.0.0.1:$PORT ($dir); log: $dir/postgres.log"
}

cmd_stop() {
	local dir user
	if ! dir=$(existing_dir) || ! running_port "$dir" >/dev/null; then
		say "not running"
		return
	fi
	user=$(pg_user) || die "cannot find the user the cluster runs as"
	as_pg "$user" "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
	say "stopped ($dir)"
}

cmd_status() {
	local dir port
	if dir=$(existing_dir) && port=$(running_port "$dir"); then
		echo "running: $(db_url "$port") ($dir)"
		return 0
	fi
	echo "not running"
	return 3
}

cmd_url() {
	local dir port
	if dir=$(existing_dir) && port=$(running_port "$dir"); then
		db_url "$port"
	else
		db_url "$PORT"
	fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url ;;
*)
	echo "usage: $0 start|stop|status|url" >&2
	exit 2
	;;
esac
