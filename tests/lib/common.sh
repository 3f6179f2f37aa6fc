# shellcheck shell=bash
# tests/lib/common.sh — shared helpers for tessera's shell tests.
#
# Source it (tap.sh, pg.sh and slapd.sh source it themselves):
#     . "$TESSERA_SRCDIR/tests/lib/common.sh"
#
# Provides
#   TESSERA_SRCDIR, TESSERA_BUILDDIR   exported; derived when unset (see below)
#   TESSERAD, TESSERA                  $TESSERA_BUILDDIR/broker/tesserad, .../admin/tessera
#   on_exit CMD...                     push a cleanup command; all run in reverse order from
#                                      one EXIT trap (also on INT/TERM/HUP). Do not install your
#                                      own EXIT trap in a test, it would replace this one.
#   mktemp_dir [PREFIX]                prints a new private (0700) dir; removed at exit. Safe in
#                                      $(...).
#   free_port                          prints a free TCP port in 20000-60999 (never the same one
#                                      twice in one test script)
#   wait_http URL [SECS]               waits until URL gives any HTTP answer (default 20 s)
#   tesserad_conf FILE [EXTRA_INI]     writes a minimal tesserad config (see the function);
#                                      exports TESSERAD_PORT and TESSERAD_URL
#   die MSG                            prints "Bail out! MSG" and exits 1
#   pid_alive PID                      true while PID exists and is not a zombie (a daemon whose
#                                      parent is PID 1 can stay a zombie for a while here)
#
# Everything a test creates lives under one per-script dir $TESSERA_TEST_TMP
# (in ${TMPDIR:-/tmp}, mode 0711 so a cluster run as `postgres` can reach its own
# subdirectories), removed by the EXIT trap.

if [[ -n ${_TESSERA_COMMON_SH:-} ]]; then
	return 0
fi
_TESSERA_COMMON_SH=1

# --- locations --------------------------------------------------------------
if [[ -z ${TESSERA_SRCDIR:-} ]]; then
	TESSERA_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fi
if [[ -z ${TESSERA_BUILDDIR:-} ]]; then
	# An out-of-tree build dir when run from one, else the source tree.
	if [[ -f $PWD/config.status && -d $PWD/broker ]]; then
		TESSERA_BUILDDIR=$PWD
	else
		TESSERA_BUILDDIR=$TESSERA_SRCDIR
	fi
fi
export TESSERA_SRCDIR TESSERA_BUILDDIR
TESSERAD=$TESSERA_BUILDDIR/broker/tesserad
TESSERA=$TESSERA_BUILDDIR/admin/tessera
export TESSERAD TESSERA

die() {
	printf 'Bail out! %s\n' "$*"
	printf '%s\n' "$*" >&2
	exit 1
}

pid_alive() {
	local stat
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $stat ]] || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != [ZX] ]]
}

# --- cleanup stack ----------------------------------------------------------
_TESSERA_ON_EXIT=()

on_exit() {
	(($# > 0)) || return 0
	_TESSERA_ON_EXIT+=("$*")
}

_tessera_run_on_exit() {
	local status=$? i cmd
	set +e
	trap - EXIT
	trap "" INT TERM HUP # a second ^C must not cut the cleanup short
	for ((i = ${#_TESSERA_ON_EXIT[@]} - 1; i >= 0; i--)); do
		cmd=${_TESSERA_ON_EXIT[i]}
		unset '_TESSERA_ON_EXIT[i]'
		eval "$cmd"
	done
	return "$status"
}

trap _tessera_run_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- temp dirs ----------------------------------------------------------------
TESSERA_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tessera-test.XXXXXX") ||
	die "cannot create a temp dir under ${TMPDIR:-/tmp}"
chmod 0711 "$TESSERA_TEST_TMP"
export TESSERA_TEST_TMP
# First registered, so it runs last: after the servers living in it are stopped.
# shellcheck disable=SC2016 # expanded when the cleanup runs
on_exit 'rm -rf "$TESSERA_TEST_TMP"'

mktemp_dir() {
	mktemp -d "$TESSERA_TEST_TMP/${1:-tmp}.XXXXXX"
}

# --- ports ----------------------------------------------------------------------
_tessera_port_busy() {
	local p=$1
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
	fi
}

free_port() {
	local p tries=0 used=$TESSERA_TEST_TMP/.ports
	while ((tries++ < 200)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 41000))
		if [[ -f $used ]] && grep -qx "$p" "$used"; then
			continue
		fi
		if _tessera_port_busy "$p"; then
			continue
		fi
		echo "$p" >>"$used"
		echo "$p"
		return 0
	done
	echo "free_port: no free port found" >&2
	return 1
}

# --- HTTP -------------------------------------------------------------------------
# wait_http URL [SECS]: 0 once URL answers with any HTTP status, 1 after SECS.
wait_http() {
	local url=$1 secs=${2:-20} code deadline
	deadline=$((SECONDS + secs))
	while :; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null)
		if [[ -n $code && $code != 000 ]]; then
			return 0
		fi
		if ((SECONDS >= deadline)); then
			echo "wait_http: no HTTP answer from $url after ${secs}s" >&2
			return 1
		fi
		sleep 0.1
	done
}

# --- tesserad config ----------------------------------------------------------------
# tesserad_conf FILE [EXTRA_INI]
# Writes a minimal config for a test daemon:
#   [server]   listen = 127.0.0.1:$TESSERAD_PORT, state_dir = DIR(FILE)/state (created)
#   [database] url = $TEST_PG_URL (only when set), migrations_dir = $TESSERA_SRCDIR/migrations
# then EXTRA_INI verbatim (start it with a [section] header, else its keys land in [database]).
# TESSERAD_PORT is picked with free_port unless already set (unset it before writing a config
# for a second daemon); exports TESSERAD_PORT and TESSERAD_URL=http://127.0.0.1:$TESSERAD_PORT.
tesserad_conf() {
	local file=$1 extra=${2:-} state
	if [[ -z ${TESSERAD_PORT:-} ]]; then
		TESSERAD_PORT=$(free_port) || return 1
	fi
	export TESSERAD_PORT TESSERAD_URL=http://127.0.0.1:$TESSERAD_PORT
	state=$(dirname "$file")/state
	mkdir -p "$state"
	{
		printf '[server]\nlisten = 127.0.0.1:%s\nstate_dir = %s\n\n' "$TESSERAD_PORT" "$state"
		printf '[database]\n'
		if [[ -n ${TEST_PG_URL:-} ]]; then
			printf 'url = %s\n' "$TEST_PG_URL"
		fi
		printf 'migrations_dir = %s/migrations\n' "$TESSERA_SRCDIR"
		if [[ -n $extra ]]; then
			printf '\n%s\n' "$extra"
		fi
		# tests read audit_events right after an answer: by default the record is in Postgres before it
		printf '\n[audit]\ndurability = %s\n' "${TEST_AUDIT_DURABILITY:-postgres}"
	} >"$file"
}
