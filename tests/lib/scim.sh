# shellcheck shell=bash
# tests/lib/scim.sh — helpers for the SCIM conformance tests (tests/integration/scim_*.sh).
#
#   scim_start [EXTRA_INI]   start a real PostgreSQL (pg.sh) and a tesserad with [scim] enabled and
#                            a token_file; exports SCIM (base URL .../scim/v2), SCIM_TOKEN, URL,
#                            BOOT (the bootstrap admin token), DPID, DCONF, DLOG (stderr log).
#                            EXTRA_INI is appended to the config (start it with a [section]).
#   scim_stop                SIGTERM tesserad and wait (registered with on_exit by scim_start)
#   scim_finish              scim_stop, asserting exit 0 and no sanitizer report in its logs
#   sreq METHOD PATH [BODY] [CURL_ARGS...]
#                            one request with the SCIM token; PATH is under $SCIM unless it starts
#                            with http. Sets code (HTTP status); the body is in $SB, headers in $SH.
#   sreq_as TOKEN METHOD PATH [BODY] [CURL_ARGS...]   the same with another bearer token ("" = none)
#   j FILTER                 jq -r FILTER over the last body
#   hdr NAME                 the last response's header NAME (value only)
#   patchop OPS_JSON         a PatchOp body around the Operations array OPS_JSON
#   mkuser NAME [EXTRA_JSON_MEMBERS]  POST a user, prints its id (fails the test on non-201)
#
# Requires curl and jq; a missing one bails out (never a skip).

if [[ -n ${_TESSERA_SCIM_SH:-} ]]; then
	return 0
fi
_TESSERA_SCIM_SH=1

# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"
# shellcheck source=tests/lib/pg.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"

command -v curl >/dev/null || die "curl is required"
command -v jq >/dev/null || die "jq is required"

SCIM_URN_USER=urn:ietf:params:scim:schemas:core:2.0:User
SCIM_URN_GROUP=urn:ietf:params:scim:schemas:core:2.0:Group
SCIM_URN_ENT=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
SCIM_URN_ERROR=urn:ietf:params:scim:api:messages:2.0:Error
SCIM_URN_LIST=urn:ietf:params:scim:api:messages:2.0:ListResponse
SCIM_URN_PATCH=urn:ietf:params:scim:api:messages:2.0:PatchOp

_scim_alive() {
	pid_alive "$1"
}

scim_stop() {
	if [[ -n ${DPID:-} ]] && _scim_alive "$DPID"; then
		kill -TERM "$DPID" 2>/dev/null
		local deadline=$((SECONDS + 30))
		while _scim_alive "$DPID" && ((SECONDS < deadline)); do sleep 0.1; done
		_scim_alive "$DPID" && kill -KILL "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	DPID=
}

# scim_finish: stop tesserad and assert it exited 0 without a sanitizer report (call before tap_done).
scim_finish() {
	local rc=none
	if [[ -n ${DPID:-} ]] && _scim_alive "$DPID"; then
		kill -TERM "$DPID" 2>/dev/null
		local deadline=$((SECONDS + 30))
		while _scim_alive "$DPID" && ((SECONDS < deadline)); do sleep 0.1; done
		wait "$DPID" 2>/dev/null
		rc=$?
	fi
	DPID=
	is "$rc" 0 "tesserad_stops_cleanly_on_sigterm"
	local logs
	logs=$(cat "$SCIM_DIR"/*.err 2>/dev/null)
	if grep -qE 'Sanitizer|runtime error:' <<<"$logs"; then
		fail "no_sanitizer_reports_in_the_daemon_log" "$(grep -E -A20 'Sanitizer|runtime error:' <<<"$logs" | head -40)"
	else
		ok "no_sanitizer_reports_in_the_daemon_log"
	fi
}

scim_start() {
	local extra=${1:-}
	[[ -n ${TEST_PG_URL:-} ]] || pg_start
	SCIM_DIR=$(mktemp_dir scim) || die "cannot create a temp dir"
	SB=$SCIM_DIR/body
	SH=$SCIM_DIR/headers
	SCIM_TOKEN=scim-test-token-$RANDOM$RANDOM-0123456789abcdef
	printf '%s\n' "$SCIM_TOKEN" >"$SCIM_DIR/scim.token"
	chmod 600 "$SCIM_DIR/scim.token"
	DCONF=$SCIM_DIR/tessera.conf
	unset TESSERAD_PORT
	tesserad_conf "$DCONF" "[scim]
enabled = true
token_file = $SCIM_DIR/scim.token
$extra" || die "cannot write the config"
	URL=$TESSERAD_URL
	SCIM=$URL/scim/v2
	DLOG=$SCIM_DIR/tesserad.err
	"$TESSERAD" -c "$DCONF" >"$SCIM_DIR/tesserad.out" 2>"$DLOG" &
	DPID=$!
	on_exit scim_stop
	local deadline=$((SECONDS + 40))
	while :; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/readyz" 2>/dev/null)
		[[ $code == 200 ]] && break
		if ! _scim_alive "$DPID" || ((SECONDS >= deadline)); then
			die "tesserad did not become ready: $(tail -n 30 "$DLOG")"
		fi
		sleep 0.1
	done
	BOOT=$(sed -n 's/^bootstrap token: //p' "$SCIM_DIR/tesserad.out" | head -n 1)
	export SCIM URL SCIM_TOKEN BOOT DPID DCONF DLOG SB SH
}

sreq_as() {
	local tok=$1 method=$2 path=$3 body=${4:-} args=()
	shift 4 2>/dev/null || shift $#
	[[ $path == http* ]] || path=$SCIM$path
	[[ -n $tok ]] && args+=(-H "Authorization: Bearer $tok")
	if [[ -n $body ]]; then
		args+=(-H 'Content-Type: application/scim+json' --data-binary "$body")
	fi
	code=$(curl -s -X "$method" -o "$SB" -D "$SH" -w '%{http_code}' --max-time 60 "${args[@]}" "$@" "$path")
}

sreq() {
	local method=$1 path=$2 body=${3:-}
	shift 3 2>/dev/null || shift $#
	sreq_as "$SCIM_TOKEN" "$method" "$path" "$body" "$@"
}

j() {
	jq -r "$1" "$SB" 2>/dev/null
}

hdr() {
	grep -i "^$1:" "$SH" | tail -n 1 | cut -d' ' -f2- | tr -d '\r'
}

patchop() {
	printf '{"schemas":["%s"],"Operations":%s}' "$SCIM_URN_PATCH" "$1"
}

mkuser() {
	local name=$1 extra=${2:-}
	sreq POST /Users "{\"schemas\":[\"$SCIM_URN_USER\"],\"userName\":\"$name\"${extra:+,$extra}}"
	if [[ $code != 201 ]]; then
		fail "create user $name" "status $code: $(cat "$SB")"
		return 1
	fi
	j .id
}
