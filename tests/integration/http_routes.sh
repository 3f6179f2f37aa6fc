#!/bin/bash
# http_routes.sh — the Foundation HTTP surface of a serving tesserad against a
# real PostgreSQL: serving applies pending migrations; /healthz, /readyz and
# /metrics answer as documented; unknown paths get the JSON 404 envelope;
# every route that needs a role (from `tesserad --list-routes`, the route
# table itself) refuses a caller with no token or a bogus one with 401;
# /readyz turns 503 naming the database when PostgreSQL goes away while
# /healthz stays 200; SIGTERM stops the daemon with exit 0.
#
# Not tested here: "in-flight requests finish on SIGTERM". Foundation has no
# slow route to hold a request open across the signal; that belongs with the
# gateway tests (a streaming response from the fake upstream).

# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/common.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

T=$(mktemp_dir http-routes) || die "cannot create a temp dir"
cd "$T" || die "cannot cd to $T"
DPID=

alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n $st && $st != Z ]]
}

# wait_exit PID SECS: sets rc to PID's exit status, or kills it after SECS (rc=timeout, returns 1).
wait_exit() {
	local pid=$1 deadline=$((SECONDS + $2))
	while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rc=timeout
		return 1
	fi
	wait "$pid"
	rc=$?
	return 0
}

stop_daemon() {
	if [[ -n $DPID ]] && alive "$DPID"; then
		kill -TERM "$DPID" 2>/dev/null
		wait_exit "$DPID" 40
	fi
}

# req METHOD URL [HEADER...]: body to $T/body, headers to $T/headers; prints the status.
req() {
	local method=$1 url=$2 h args=()
	shift 2
	for h in "$@"; do args+=(-H "$h"); done
	case $method in
	POST | PUT | PATCH) args+=(-H 'Content-Type: application/json' --data-binary '{}') ;;
	esac
	curl -s -X "$method" -o "$T/body" -D "$T/headers" -w '%{http_code}' --max-time 10 \
		"${args[@]}" "$url" 2>/dev/null
}

# wait_status URL CODE SECS: until URL answers CODE; sets code to the last status seen.
wait_status() {
	local deadline=$(($3 + SECONDS))
	while :; do
		code=$(req GET "$1")
		[[ $code == "$2" ]] && return 0
		((SECONDS >= deadline)) && return 1
		if [[ -n $DPID ]] && ! alive "$DPID"; then return 1; fi
		sleep 0.2
	done
}

# counter ROUTE STATUS: sum of tessera_http_requests_total samples with those labels.
counter() {
	curl -s --max-time 10 "$URL/metrics" | awk -v r="route=\"$1\"" -v s="status=\"$2\"" '
		/^tessera_http_requests_total\{/ && index($0, r) && index($0, s) { n += $NF }
		END { print n + 0 }'
}

shopt -s nullglob
files=("$TESSERA_SRCDIR"/migrations/*.sql)
shopt -u nullglob

pg_start
conf="$T/tessera.conf"
tesserad_conf "$conf"
URL=$TESSERAD_URL
"$TESSERAD" -c "$conf" >"$T/d.out" 2>"$T/d.err" &
DPID=$!
on_exit stop_daemon

if wait_status "$URL/readyz" 200 30; then
	ok "serving_tesserad_becomes_ready"
else
	fail "serving_tesserad_becomes_ready" "last /readyz status: $code; stderr:" "$(tail -n 40 "$T/d.err")"
fi
if grep -q "event=listening.*addr=127.0.0.1:$TESSERAD_PORT" "$T/d.err"; then
	ok "serve_logs_listening_address"
else
	fail "serve_logs_listening_address" "$(tail -n 20 "$T/d.err")"
fi
is "$(pg_psql 'select count(*) from schema_migrations' 2>&1)" "${#files[@]}" "serve_applies_pending_migrations_at_start"

# ---- health, readiness
code=$(req GET "$URL/healthz")
is "$code" 200 "healthz_is_200"
is "$(jq -r .status "$T/body" 2>&1)" ok "healthz_body_is_status_ok"
like "$(grep -i '^content-type:' "$T/headers")" 'application/json' "healthz_is_json"

code=$(req GET "$URL/readyz")
is "$code" 200 "readyz_is_200_with_database_up"
is "$(jq -r .status "$T/body" 2>&1)" ready "readyz_body_is_status_ready"

# ---- metrics
code=$(req GET "$URL/metrics")
is "$code" 200 "metrics_is_200"
like "$(grep -i '^content-type:' "$T/headers")" 'text/plain' "metrics_is_prometheus_text"
if grep -qxF '# TYPE tessera_http_requests_total counter' "$T/body"; then
	ok "metrics_declares_http_requests_counter"
else
	fail "metrics_declares_http_requests_counter" "$(head -c 3000 "$T/body")"
fi
before=$(counter /healthz 200)
for _ in 1 2 3; do req GET "$URL/healthz" >/dev/null; done
after=$(counter /healthz 200)
if ((after >= before + 3)); then
	ok "healthz_requests_are_counted_by_route_and_status"
else
	fail "healthz_requests_are_counted_by_route_and_status" "before=$before after=$after;" \
		"$(curl -s "$URL/metrics" | grep tessera_http_requests_total)"
fi

# ---- unknown path
junk="no-such-path-$RANDOM$RANDOM"
code=$(req GET "$URL/$junk")
is "$code" 404 "unknown_path_is_404"
is "$(jq -r .error.code "$T/body" 2>&1)" not_found "unknown_path_error_code_is_not_found"
is "$(jq -r .error.status "$T/body" 2>&1)" 404 "unknown_path_error_status_is_404"
if curl -s --max-time 10 "$URL/metrics" | grep -qF "$junk"; then
	fail "unknown_paths_do_not_become_metric_labels" "raw path '$junk' found in /metrics"
else
	ok "unknown_paths_do_not_become_metric_labels"
fi

# ---- every route that needs a role refuses callers without a valid token
routes=$(timeout 30 "$TESSERAD" --list-routes 2>"$T/routes.err")
rc=$?
is "$rc" 0 "list_routes_exits_0"
for want in 'GET /healthz -' 'GET /readyz -' 'GET /metrics -' 'GET /admin/v1/whoami any'; do
	if grep -qxF "$want" <<<"$routes"; then
		ok "list_routes_has '$want'"
	else
		fail "list_routes_has '$want'" "$routes"
	fi
done
unknown_tok=tsr_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB
nprotected=0
while read -r method path role _; do
	[[ -n $method && $role != - ]] || continue
	nprotected=$((nprotected + 1))
	# Fill path parameters ({id}, :id, *) with something plausible.
	p=$(sed -E 's/\{[^}]*\}/1/g; s#/:[A-Za-z_][A-Za-z0-9_]*#/1#g; s/\*/x/g' <<<"$path")
	code=$(req "$method" "$URL$p")
	is "$code" 401 "$method $path ($role) without token is 401"
	if [[ $path == /admin/* ]]; then
		is "$(jq -r .error.code "$T/body" 2>&1)" unauthenticated "$method $path without token says unauthenticated"
	fi
	code=$(req "$method" "$URL$p" 'Authorization: Bearer tsr_bogus')
	is "$code" 401 "$method $path ($role) with bogus token is 401"
	code=$(req "$method" "$URL$p" "Authorization: Bearer $unknown_tok")
	is "$code" 401 "$method $path ($role) with unknown well-formed token is 401"
done <<<"$routes"
if ((nprotected >= 1)); then
	ok "route_table_has_protected_routes"
else
	fail "route_table_has_protected_routes" "$routes"
fi
if grep -qF "${unknown_tok#tsr_}" "$T/d.err"; then
	fail "rejected_tokens_are_not_logged" "found in stderr log"
else
	ok "rejected_tokens_are_not_logged"
fi

# ---- the database goes away
pg_stop
if wait_status "$URL/readyz" 503 10; then
	ok "readyz_turns_503_when_database_stops"
else
	fail "readyz_turns_503_when_database_stops" "last status: $code"
fi
is "$(jq -r .status "$T/body" 2>&1)" "not ready" "readyz_body_says_not_ready"
like "$(jq -r .reason "$T/body" 2>&1)" '[Dd]atabase|[Pp]ostgre' "readyz_reason_names_the_database"
code=$(req GET "$URL/healthz")
is "$code" 200 "healthz_stays_200_without_database"

# ---- SIGTERM
if ! alive "$DPID"; then
	wait "$DPID"
	rc=$?
	fail "sigterm_stops_serving_tesserad" "tesserad had already exited ($rc) before the signal;" "$(tail -n 20 "$T/d.err")"
elif kill -TERM "$DPID" && wait_exit "$DPID" 40; then
	ok "sigterm_stops_serving_tesserad"
else
	fail "sigterm_stops_serving_tesserad" "$(tail -n 20 "$T/d.err")"
fi
is "$rc" 0 "sigterm_exit_status_is_0"
DPID=

# Logs are logfmt on stderr, one event per line, nothing else mixed in.
bad=$(grep -Ev '^ts=[0-9T:.Z-]+ level=(debug|info|warn|error) event=[a-z_]+( |$)' "$T/d.err")
is "$bad" "" "serve_stderr_is_all_logfmt"

tap_done
