#!/usr/bin/env bash
# gateway_rate_cluster.sh — issue 7: [gateway] rate_limit holds across
# replicas. Two tesserads on one PostgreSQL, rate_limit = 20 per minute:
# 15 requests of one user to each, interleaved, and exactly 20 get through
# in total (both replicas serve some), the other 10 are 429 in the route's
# dialect with Retry-After pointing at the end of the minute, and the
# upstream saw exactly 20. The refusals are audited.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

gw_setup "[gateway]
rate_limit = 20"

# the second replica: same database and upstreams, its own port, state and spool
B_PORT=$(free_port)
mkdir -p "$GW_DIR/b"
sed -e "s|^listen = .*|listen = 127.0.0.1:$B_PORT|" -e "s|^state_dir = .*|state_dir = $GW_DIR/b/state|" \
	-e "s|^spool_dir = .*|spool_dir = $GW_DIR/b/spool|" "$GW_DIR/tesserad.conf" >"$GW_DIR/b/tesserad.conf"
"$TESSERAD" -c "$GW_DIR/b/tesserad.conf" >"$GW_DIR/b/out" 2>"$GW_DIR/b/err" &
B_PID=$!
on_exit "kill $B_PID 2>/dev/null; wait $B_PID 2>/dev/null"
URL_A=$GW_URL URL_B=http://127.0.0.1:$B_PORT
wait_http "$URL_B/healthz" 30 || die "second tesserad did not start: $(tail -n 5 "$GW_DIR/b/err")"

# one minute window for the whole burst: start early in a minute
s=$((10#$(date -u +%S)))
((s > 35)) && sleep $((61 - s))

seen=$(gw_fake_count)
declare -A okc=([A]=0 [B]=0)
limited=0 retry_bad=0 dialect_bad=0
for ((i = 0; i < 15; i++)); do
	for r in A B; do
		url=URL_$r
		code=$(curl -s -o "$GW_DIR/rl.out" -D "$GW_DIR/rl.h" -w '%{http_code}' -H "Authorization: Bearer $GW_TOKEN" \
			-d '{"model":"gpt-4o-mini","messages":[]}' "${!url}/openai/v1/chat/completions")
		if [[ $code == 200 ]]; then
			okc[$r]=$((okc[$r] + 1))
		elif [[ $code == 429 ]]; then
			limited=$((limited + 1))
			ra=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$GW_DIR/rl.h")
			left=$((60 - 10#$(date -u +%S)))
			# Retry-After is the rest of the minute (a second either way for rounding)
			{ [[ -n $ra ]] && ((ra >= 1 && ra <= 60 && ra >= left - 1 && ra <= left + 1)); } || retry_bad=$((retry_bad + 1))
			grep -q '"code":"rate_limit_exceeded"\|"type":"rate_limit_error"' "$GW_DIR/rl.out" || dialect_bad=$((dialect_bad + 1))
		fi
	done
done
is "$((okc[A] + okc[B]))" 20 "exactly_the_limit_gets_through_across_two_replicas"
((okc[A] > 0 && okc[B] > 0)) && ok "both_replicas_served_part_of_the_allowance" ||
	fail "both_replicas_served_part_of_the_allowance" "A=${okc[A]} B=${okc[B]}"
is "$limited" 10 "the_rest_are_429"
is "$retry_bad" 0 "each_429_has_retry_after_to_the_end_of_the_minute"
is "$dialect_bad" 0 "each_429_is_in_the_route_dialect"
is "$(($(gw_fake_count) - seen))" 20 "the_upstream_saw_exactly_the_limit"
is "$(pg_psql "SELECT used FROM rate_windows WHERE window_start = date_trunc('minute', now())")" 20 \
	"the_window_in_postgres_holds_the_limit"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request' AND status = 429
	AND detail->>'reason' LIKE 'policy rate_limit:%'")" 10 "every_429_is_audited"

code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GW_TOKEN" \
	-d '{"model":"gpt-4o-mini","messages":[]}' "$URL_B/openai/v1/chat/completions")
is "$code" 429 "a_spent_window_stays_refused_on_the_other_replica"
tap_done
