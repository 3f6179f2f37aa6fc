#!/usr/bin/env bash
# gateway_rotate_provider_failure.sh — issue 8: when the provider admin API
# fails, a rotation changes nothing but its backoff: the CLI reports the
# failure, the upstream keeps serving with its current key, /metrics counts
# the failure, every failed attempt is audited and logged, and tesserad
# retries with exponential backoff (5 s, then 10 s) until it succeeds. A
# failed deletion of a retired key at the provider is retried the same way.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/rotation.sh"

rot_setup "grace_period = 5s"

curl -s -X POST -d '{"count":2,"status":500}' "$GW_FAKE/__admin_fail" >/dev/null
t0=$(date +%s)
out=$(rot_admin rotate upstream openai --now 2>&1)
rc=$?
is "$rc" 1 "rotate_now_fails_when_the_provider_fails"
like "$out" 'rotating openai through its provider failed: creating a service account key: HTTP 500 server_error' \
	"the_failure_names_the_provider_error"
like "$out" 'the current key stays active; tesserad retries \(attempt 1, next at 20' "the_failure_says_the_key_stays_and_when_it_retries"

is "$(rot_chat)" 200 "after_a_failed_rotation_the_upstream_still_serves"
is "$(rot_received_with "$GW_ORG_OPENAI")" 1 "after_a_failed_rotation_the_old_key_serves"
is "$(pg_psql "SELECT version || ':' || origin FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
 WHERE u.name = 'openai' AND k.state = 'active'")" "1:config" "after_a_failed_rotation_the_old_key_stays_active"
is "$(rot_metric "$GW_URL" 'tessera_rotation_failures_total{upstream="openai"}')" 1 "metrics_count_the_failure"
like "$(cat "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out")" \
	'upstream_key_rotation_failed.*upstream=openai trigger=request attempt=1 ' "the_failure_is_logged"

# the retries: 5 s after the first failure (fails again), 10 s after that (succeeds)
v2_active() {
	[[ $(pg_psql "SELECT count(*) FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
 WHERE u.name = 'openai' AND k.state = 'active' AND k.version = 2") == 1 ]]
}
rot_wait 40 v2_active
is "$?" 0 "tesserad_retries_until_the_provider_rotation_succeeds"
t1=$(date +%s)
if ((t1 - t0 >= 14)); then
	ok "retries_back_off_exponentially"
else
	fail "retries_back_off_exponentially" "succeeded after $((t1 - t0)) s, expected at least 5 + 10 s"
fi
is "$(rot_keys '[.admin_calls[] | select(.method == "POST") | .status] | map(tostring) | join(",")')" "500,500,200" \
	"the_provider_saw_two_failed_calls_then_one_success"
is "$(rot_keys '.creates')" 1 "exactly_one_key_was_created"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_rotated' AND outcome = 'failure'
 AND upstream = 'openai' AND detail->>'origin' = 'provider'")" 2 "each_failed_attempt_is_audited"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_rotated' AND outcome = 'success'
 AND upstream = 'openai'")" 1 "the_success_is_audited_once"
is "$(rot_metric "$GW_URL" 'tessera_rotation_failures_total{upstream="openai"}')" 2 "metrics_count_both_failures"
status=$(curl -s -H "Authorization: Bearer $GW_BOOT" "$GW_URL/admin/v1/upstreams/openai/rotate")
is "$(jq -r '[.last_outcome, .version, .failures, .requested_at] | map(tostring) | join(",")' <<<"$status")" \
	"success,2,0,null" "the_status_shows_the_success_and_no_pending_request"
K2=$(rot_keys '.live[0].key')
ID2=$(rot_keys '.live[0].id')
curl -s -X POST "$GW_FAKE/__reset" >/dev/null
sleep 0.3
is "$(rot_chat)" 200 "after_the_retry_requests_succeed"
is "$(rot_received_with "$K2")" 1 "after_the_retry_the_new_key_serves"

# --- a failed deletion at the provider is retried
out=$(rot_admin rotate upstream openai --now 2>&1)
is "$?" 0 "the_next_rotation_succeeds"
curl -s -X POST -d '{"count":1,"status":503}' "$GW_FAKE/__admin_fail" >/dev/null
deleted_v2() { [[ $(rot_keys '[.deleted[].id] | index("'"$ID2"'") != null') == true ]]; }
rot_wait 40 deleted_v2
is "$?" 0 "a_failed_deletion_is_retried_until_the_old_key_is_deleted"
is "$(pg_psql "SELECT string_agg(outcome, ',' ORDER BY at) FROM audit_events
 WHERE action = 'upstream.key_deleted_at_provider' AND detail->>'provider_key_id' = '$ID2'")" "failure,success" \
	"the_failed_and_the_successful_deletion_are_audited"
like "$(cat "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out")" \
	"upstream_key_provider_delete_failed.*provider_key_id=$ID2 attempt=1 " "the_failed_deletion_is_logged"
is "$(rot_metric "$GW_URL" 'tessera_rotation_failures_total{upstream="openai"}')" 3 "metrics_count_the_failed_deletion"

# --- a wrong admin key: denied, audited, nothing changes
printf 'sk-admin-wrong\n' >"$GW_DIR/admin.key"
out=$(rot_admin rotate upstream openai --now 2>&1)
is "$?" 1 "a_rejected_admin_key_fails_the_rotation"
like "$out" 'HTTP 401 invalid_api_key' "the_rejection_is_reported_without_the_key"
unlike "$(cat "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out")" "sk-admin-wrong|$ROT_ADMIN_KEY|sk-svcacct-" "no_key_is_logged"
is "$(rot_chat)" 200 "with_a_rejected_admin_key_the_upstream_still_serves"

tap_done
