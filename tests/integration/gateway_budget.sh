#!/usr/bin/env bash
# gateway_budget.sh — issue 7: [gateway] daily_token_budget. Each request
# reserves an estimate (its max_tokens plus about a token per 4 bytes) before
# it is forwarded and settles to what the upstream's usage says; once the
# day's budget cannot cover a request it is refused before anything is sent:
# 429 in the route's dialect, naming the policy, with Retry-After (seconds to
# midnight UTC), audited. Concurrent requests cannot overspend (reservations
# are atomic: tests/dbtest/test_gateway_policy.c races them).
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

# not across midnight UTC, where the budget's day changes
sec=$(($(date -u +%s) % 86400))
((sec > 86370)) && sleep $((86401 - sec))

gw_setup "[gateway]
daily_token_budget = 120"
H=$GW_DIR/h
chat='{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"hello"}]}'
post() { curl -s -D "$H" -w ' %{http_code}' --max-time 20 -H "Authorization: Bearer $GW_TOKEN" -d "$chat" "$GW_URL/openai/v1/chat/completions"; }
usage() { pg_psql "SELECT tokens_used || ' ' || tokens_reserved || ' ' || requests FROM usage_counters c
	JOIN users u ON u.id = c.user_id WHERE u.user_name = 'alice' AND day = (now() AT TIME ZONE 'UTC')::date"; }
settled() { # settled: wait (at most 2 s) until nothing is reserved; the counters
	local u t
	for ((t = 0; t < 20; t++)); do
		u=$(usage)
		[[ $(awk '{ print $2 }' <<<"$u") == 0 ]] && break
		sleep 0.1
	done
	echo "$u"
}
# the fake answers with usage prompt_tokens = ceil(len(JSON(messages)) / 4) = 9, completion_tokens = 5
like "$(post)" ' 200$' "a_request_within_the_budget_is_served"
is "$(settled)" "14 0 1" "the_reservation_settles_to_the_upstreams_usage"
like "$(post)" ' 200$' "a_second_request_is_served"
is "$(settled)" "28 0 2" "usage_adds_up"
# each request reserves 20 + 81/4 + 1 = 41 first (an 81-byte body): the 6th still fits (70 + 41 <= 120), the 7th not (84 + 41)
seen=0
for i in 3 4 5 6 7 8; do
	seen=$(gw_fake_count)
	out=$(post)
	[[ $out == *" 200" ]] || break
done
is "$i" 7 "requests_are_served_while_the_estimate_fits"
like "$out" ' 429$' "then_the_next_is_refused_with_429"
like "$out" '"message":"policy daily_token_budget: 84 of 120 tokens used or reserved today \(UTC\); this request needs about 41 more"' \
	"the_refusal_names_the_policy_and_the_figures"
like "$out" '"type":"rate_limit_error"|"code":"rate_limit' "the_refusal_is_in_the_openai_dialect"
ra=$(tr -d '\r' <"$H" | sed -n 's/^Retry-After: //Ip')
to_midnight=$((86400 - $(date -u +%s) % 86400))
((ra > 0 && ra <= to_midnight + 2 && ra >= to_midnight - 5)) && ok "retry_after_is_the_time_to_midnight_utc" ||
	fail "retry_after_is_the_time_to_midnight_utc" "Retry-After '$ra', to midnight $to_midnight"
is "$(gw_fake_count)" "$seen" "a_refused_request_is_not_forwarded"
is "$(pg_psql "SELECT status || ' ' || decision || ' ' || outcome FROM audit_events WHERE action = 'gateway.request'
	ORDER BY seq DESC LIMIT 1")" "429 deny denied" "the_refusal_is_audited"
is "$(settled)" "84 0 6" "refusals_reserve_nothing"
# settlements are applied off the request path; a stop right after an answer still applies them
pg_psql "UPDATE usage_counters SET tokens_used = 0 WHERE user_id = (SELECT id FROM users WHERE user_name = 'alice')" >/dev/null
like "$(post)" ' 200$' "a_request_after_the_budget_was_reset_is_served"
gw_stop_tesserad
is "$(usage)" "14 0 7" "a_stop_right_after_the_answer_still_settles_it"
tap_done
