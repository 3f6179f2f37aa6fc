#!/usr/bin/env bash
# gateway_rate_lease_fails.sh — issue 7: [gateway] rate_limit when the
# cluster-wide window cannot be leased. The replica then falls back to its
# own token bucket of the same rate (tessera.conf(5)) instead of refusing
# everyone or letting everything through. PostgreSQL itself cannot be
# stopped for this: after 1 s without it the credential check fails closed
# (503) before the rate limit is looked at. So the lease is made to fail
# the way an unreachable database makes it fail, by an error from its
# statement: the table is renamed away. With rate_limit = 10, 4 requests
# served from leases and then a burst of 25 requests of one user, the
# bucket lets 6 through (7 at most: it refills at 10 a minute while the
# burst runs), because what the leases served in this minute counts; the
# rest are 429 with Retry-After in the route's dialect, the upstream sees
# only what was let through, the fallback is logged and every refusal is
# audited.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

gw_setup "[gateway]
rate_limit = 10"

# the windows are UTC minutes: start early in one so that the whole test stays in it
sec=$((10#$(date -u +%S)))
((sec > 40)) && sleep $((61 - sec))
# 4 requests first, each on a lease of one slice (a tenth of the limit)
codes=""
for ((i = 0; i < 4; i++)); do
	codes+=$(curl -s -o /dev/null -w '%{http_code} ' -H "Authorization: Bearer $GW_TOKEN" \
		-d '{"model":"gpt-4o-mini","messages":[]}' "$GW_URL/openai/v1/chat/completions")
done
is "$codes" "200 200 200 200 " "requests_before_the_outage_are_served"

pg_psql "ALTER TABLE rate_windows RENAME TO rate_windows_away" >/dev/null
seen=$(gw_fake_count)
okn=0 limited=0 retry_bad=0 dialect_bad=0 other=0
for ((i = 0; i < 25; i++)); do
	code=$(curl -s -o "$GW_DIR/rl.out" -D "$GW_DIR/rl.h" -w '%{http_code}' --max-time 20 \
		-H "Authorization: Bearer $GW_TOKEN" -d '{"model":"gpt-4o-mini","messages":[]}' \
		"$GW_URL/openai/v1/chat/completions")
	case $code in
	200) okn=$((okn + 1)) ;;
	429)
		limited=$((limited + 1))
		ra=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$GW_DIR/rl.h")
		{ [[ -n $ra ]] && ((ra >= 1 && ra <= 60)); } || retry_bad=$((retry_bad + 1))
		grep -q '"code":"rate_limit_exceeded"' "$GW_DIR/rl.out" || dialect_bad=$((dialect_bad + 1))
		;;
	*)
		other=$((other + 1))
		diag "request $i: $code $(head -c 300 "$GW_DIR/rl.out")"
		;;
	esac
done
((okn >= 6 && okn <= 7)) && ok "the_local_bucket_lets_through_what_the_leases_left_of_the_limit" ||
	fail "the_local_bucket_lets_through_what_the_leases_left_of_the_limit" "$okn of 25 served"
is "$limited" "$((25 - okn))" "the_rest_are_429"
is "$other" 0 "no_other_status_while_the_lease_fails"
is "$retry_bad" 0 "each_429_has_retry_after"
is "$dialect_bad" 0 "each_429_is_in_the_route_dialect"
is "$(($(gw_fake_count) - seen))" "$okn" "the_upstream_saw_only_what_was_let_through"
like "$(cat "$GW_DIR/tesserad.err")" 'rate_lease_unavailable.*fallback=local_bucket' "the_fallback_is_logged"

pg_psql "ALTER TABLE rate_windows_away RENAME TO rate_windows" >/dev/null
gw_audit_shipped && ok "the_records_reach_postgres" ||
	fail "the_records_reach_postgres" "$(tail -n 20 "$GW_DIR/tesserad.err")"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request' AND status = 429
	AND detail->>'reason' LIKE 'policy rate_limit:%'")" "$limited" "every_429_is_audited"
tap_done
