# shellcheck shell=bash
# tests/lib/pg.sh — throwaway PostgreSQL clusters for tessera's tests.
#
#   pg_start [NAME]   initdb a new cluster in a temp dir (trust auth), start it on 127.0.0.1 at a
#                     free port (Unix socket only in its own dir), create role `tessera`
#                     (superuser) and database `tessera` owned by it. Exports, for this cluster:
#                       TEST_PG_URL   postgresql://tessera@127.0.0.1:PORT/tessera
#                       TEST_PGHOST   127.0.0.1          TEST_PGPORT  PORT
#                       TEST_PG_DIR   the cluster's temp dir (data/, sock/, postgres.log)
#                       TEST_PG_PID   the postmaster's pid
#                       TEST_PG_BINDIR  where initdb/pg_ctl/postgres/psql were found
#                     With NAME (letters, digits, _) the same values are also exported as
#                     TEST_PG_URL_NAME, TEST_PGPORT_NAME, TEST_PG_DIR_NAME, TEST_PG_PID_NAME, so two
#                     clusters can run at once; the unsuffixed TEST_PG_* always describe the
#                     cluster started (or selected with pg_use) last. The default NAME is `main`.
#                     The stop is registered with on_exit, so it also happens when a test fails.
#                     If PostgreSQL is missing or does not start: prints "Bail out! ..." and
#                     EXITS the script with status 1 (never a skip).
#   pg_stop [NAME]    fast shutdown (SIGINT to the postmaster), waits for the postmaster to be gone, removes the dir.
#                     Idempotent.
#   pg_use NAME       make NAME's values the unsuffixed TEST_PG_*.
#   pg_psql SQL...    psql -XAtq -v ON_ERROR_STOP=1 "$TEST_PG_URL" -c SQL [-c SQL...]
#
# As root, the cluster runs as user `postgres` (runuser); otherwise as the current user.

if [[ -n ${_TESSERA_PG_SH:-} ]]; then
	return 0
fi
_TESSERA_PG_SH=1

# shellcheck source=tests/lib/common.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Prints the dir holding initdb, pg_ctl and postgres: the one of `postgres` on PATH, else the
# highest /usr/lib/postgresql/*/bin.
_pg_bindir() {
	local p d
	if p=$(command -v postgres 2>/dev/null); then
		d=$(dirname "$(readlink -f "$p")")
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return 0
		fi
	fi
	while IFS= read -r d; do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return 0
		fi
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
	return 1
}

# _pg_as DIR CMD...: run CMD in DIR, as `postgres` when we are root.
_pg_as() {
	local dir=$1
	shift
	if ((EUID == 0)); then
		(cd "$dir" && runuser -u postgres -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

_pg_get() { # _pg_get FIELD NAME -> value of _PG_FIELD_NAME
	local v="_PG_${1}_$2"
	printf '%s' "${!v:-}"
}

_pg_fail() { # _pg_fail DIR MSG: show the logs, then bail out
	local dir=$1 f
	shift
	for f in "$dir/initdb.log" "$dir/postgres.log" "$dir/pg_ctl.log"; do
		if [[ -s $f ]]; then
			printf '# --- %s (last 30 lines)\n' "$f"
			tail -n 30 "$f" | sed 's/^/# /'
		fi
	done
	die "pg_start: $*"
}

pg_start() {
	local name=${1:-main} bindir dir port try pid user
	[[ $name =~ ^[A-Za-z0-9_]+$ ]] || die "pg_start: bad cluster name '$name'"
	if [[ -n $(_pg_get PID "$name") ]]; then
		die "pg_start: cluster '$name' is already running"
	fi
	bindir=$(_pg_bindir) ||
		die "pg_start: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; install the Debian package 'postgresql'"
	command -v runuser >/dev/null || ((EUID != 0)) ||
		die "pg_start: runuser not found (Debian package util-linux)"
	if ((EUID == 0)); then
		user=postgres
		id -u postgres >/dev/null 2>&1 ||
			die "pg_start: running as root but there is no user 'postgres' to run the cluster (Debian package 'postgresql' creates it)"
	else
		user=$(id -un)
	fi

	dir=$(mktemp_dir "pg-$name") || die "pg_start: cannot create a temp dir"
	chmod 0711 "$dir"
	mkdir "$dir/data" "$dir/sock"
	touch "$dir/postgres.log" "$dir/initdb.log" "$dir/pg_ctl.log"
	if ((EUID == 0)); then
		chown postgres: "$dir/data" "$dir/sock" "$dir/postgres.log" "$dir/initdb.log" "$dir/pg_ctl.log"
		_pg_as "$dir" test -w "$dir/data" ||
			die "pg_start: user postgres cannot reach $dir (is ${TMPDIR:-/tmp} traversable by others?)"
	fi
	chmod 0700 "$dir/data"
	printf -v "_PG_DIR_$name" '%s' "$dir"
	printf -v "_PG_BINDIR_$name" '%s' "$bindir"
	# Registered before anything runs, so a half-started cluster is cleaned up too.
	on_exit "pg_stop $name"

	_pg_as "$dir" "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
		-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		_pg_fail "$dir" "initdb failed (as $user)"

	# Tests trade durability for speed; benchmarks set TEST_PG_DURABLE=1 to measure real commits.
	local speed="-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
	[[ ${TEST_PG_DURABLE:-} == 1 ]] && speed="-c max_connections=200"
	for try in 1 2 3; do
		port=$(free_port) || die "pg_start: no free port"
		if _pg_as "$dir" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k '$dir/sock' $speed" \
			start >>"$dir/pg_ctl.log" 2>&1; then
			break
		fi
		port=
		# A lost race for the port is worth another try; anything else is not.
		grep -q 'could not bind\|Address already in use' "$dir/postgres.log" ||
			_pg_fail "$dir" "postgres did not start (pg_ctl start failed)"
	done
	[[ -n $port ]] || _pg_fail "$dir" "postgres did not start: no usable port after 3 tries"

	pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
	[[ $pid =~ ^[0-9]+$ ]] || _pg_fail "$dir" "no postmaster.pid after start"
	printf -v "_PG_PID_$name" '%s' "$pid"
	printf -v "_PG_PORT_$name" '%s' "$port"

	for try in $(seq 1 300); do
		"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U postgres && break
		((try == 300)) && _pg_fail "$dir" "pg_isready still failing after 30s"
		sleep 0.1
	done

	"$bindir/psql" -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
		-c 'CREATE ROLE tessera LOGIN SUPERUSER' \
		-c 'CREATE DATABASE tessera OWNER tessera' >>"$dir/pg_ctl.log" 2>&1 ||
		_pg_fail "$dir" "cannot create role/database tessera"

	export "TEST_PG_URL_$name=postgresql://tessera@127.0.0.1:$port/tessera"
	export "TEST_PGPORT_$name=$port" "TEST_PG_DIR_$name=$dir" "TEST_PG_PID_$name=$pid"
	pg_use "$name"
}

pg_use() {
	local name=${1:-main} port
	port=$(_pg_get PORT "$name")
	[[ -n $port ]] || die "pg_use: no running cluster '$name'"
	export TEST_PG_URL="postgresql://tessera@127.0.0.1:$port/tessera"
	export TEST_PGHOST=127.0.0.1 TEST_PGPORT=$port
	TEST_PG_DIR=$(_pg_get DIR "$name")
	TEST_PG_PID=$(_pg_get PID "$name")
	TEST_PG_BINDIR=$(_pg_get BINDIR "$name")
	export TEST_PG_DIR TEST_PG_PID TEST_PG_BINDIR
	_PG_CURRENT=$name
}

pg_stop() {
	local name=${1:-main} dir bindir pid i
	dir=$(_pg_get DIR "$name")
	[[ -n $dir ]] || return 0
	bindir=$(_pg_get BINDIR "$name")
	pid=$(_pg_get PID "$name")
	if [[ -z $pid && -f $dir/data/postmaster.pid ]]; then
		pid=$(head -n 1 "$dir/data/postmaster.pid")
	fi
	if pid_alive "$pid"; then
		# SIGINT is PostgreSQL's "fast" shutdown (what pg_ctl -m fast sends); polling here
		# ourselves is quicker than pg_ctl -w.
		kill -INT "$pid" 2>/dev/null
		for ((i = 0; i < 600; i++)); do
			pid_alive "$pid" || break
			((i == 300)) && kill -QUIT "$pid" 2>/dev/null # 15 s: immediate shutdown
			sleep 0.05
		done
		if pid_alive "$pid"; then
			echo "pg_stop: postmaster $pid did not stop; killing it" >&2
			pkill -KILL -P "$pid" 2>/dev/null
			kill -KILL "$pid" 2>/dev/null
			sleep 0.2
		fi
	fi
	rm -rf "$dir"
	unset "_PG_DIR_$name" "_PG_PID_$name" "_PG_PORT_$name" "_PG_BINDIR_$name"
	unset "TEST_PG_URL_$name" "TEST_PGPORT_$name" "TEST_PG_DIR_$name" "TEST_PG_PID_$name"
	if [[ ${_PG_CURRENT:-} == "$name" ]]; then
		unset TEST_PG_URL TEST_PGHOST TEST_PGPORT TEST_PG_DIR TEST_PG_PID _PG_CURRENT
	fi
	return 0
}

pg_psql() {
	local psql=psql args=() sql
	[[ -n ${TEST_PG_URL:-} ]] || {
		echo "pg_psql: no cluster started (TEST_PG_URL unset)" >&2
		return 1
	}
	if [[ -n ${TEST_PG_BINDIR:-} && -x $TEST_PG_BINDIR/psql ]]; then
		psql=$TEST_PG_BINDIR/psql
	fi
	for sql in "$@"; do
		args+=(-c "$sql")
	done
	"$psql" -XAtq -v ON_ERROR_STOP=1 "$TEST_PG_URL" "${args[@]}"
}
