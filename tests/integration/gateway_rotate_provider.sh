#!/usr/bin/env bash
# gateway_rotate_provider.sh — issue 8: `tessera rotate upstream NAME --now`
# on an upstream with a provider admin API (provider = openai-admin): tesserad
# creates a new service-account key at the provider (the fake OpenAI Admin
# API), makes it active while gateway requests keep flowing (none fails),
# the provider sees only the new key afterwards, the old provider key is
# deleted at the provider after grace_period (a key from key_file is not: the
# provider never issued it), everything is audited, and no key or admin key
# reaches a log, the CLI's output or Postgres in the clear.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/rotation.sh"

rot_setup "grace_period = 6s"

is "$(rot_chat)" 200 "before_rotation_requests_succeed_with_the_configured_key"
is "$(rot_received_with "$GW_ORG_OPENAI")" 1 "before_rotation_the_provider_sees_the_configured_key"

# --- first --now, in the middle of a stream of requests
for w in 1 2 3 4; do
	(for ((i = 0; i < 40; i++)); do rot_chat; echo; done) >"$GW_DIR/load.$w" &
	eval "load$w=\$!"
done
sleep 0.3
t0=$(date +%s%N)
out=$(rot_admin rotate upstream openai --now 2>&1)
rc=$?
t1=$(date +%s%N)
# shellcheck disable=SC2154
wait "$load1" "$load2" "$load3" "$load4"
is "$rc" 0 "rotate_now_with_a_provider_succeeds"
like "$out" 'upstream openai: key version 2 \(fingerprint [0-9a-f]{32}\), created by the provider, is active' \
	"rotate_now_reports_the_new_version_and_fingerprint"
ms=$(((t1 - t0) / 1000000))
if ((ms < 5000)); then ok "rotate_now_returns_within_5_seconds"; else fail "rotate_now_returns_within_5_seconds" "took ${ms} ms"; fi
codes=$(cat "$GW_DIR"/load.* | sort | uniq -c | tr -s ' ' | tr '\n' ';')
is "$codes" " 160 200;" "all_160_requests_across_the_provider_rotation_succeed"

is "$(rot_keys '.creates')" 1 "the_provider_created_one_key"
is "$(rot_keys '.live[0].name')" "tessera-openai-v2" "the_provider_key_is_named_after_upstream_and_version"
K2=$(rot_keys '.live[0].key')
ID2=$(rot_keys '.live[0].id')
unlike "$out" "$K2" "rotate_now_never_prints_the_key"

curl -s -X POST "$GW_FAKE/__reset" >/dev/null
codes=""
for i in 1 2 3 4 5 6 7 8; do codes+="$(rot_chat) "; done
is "$codes" "200 200 200 200 200 200 200 200 " "requests_after_the_provider_rotation_succeed"
is "$(rot_received_with "$K2")" 8 "after_rotation_the_provider_sees_only_the_new_key"
is "$(rot_received_with "$GW_ORG_OPENAI")" 0 "after_rotation_the_old_key_is_not_used"

is "$(pg_psql "SELECT origin || ':' || provider_key_id || ':' || state FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
 WHERE u.name = 'openai' AND k.version = 2")" "provider:$ID2:active" "the_new_key_is_stored_with_its_provider_id"
is "$(pg_psql "SELECT count(*) FROM upstream_keys WHERE position('$K2'::bytea IN ciphertext) > 0")" 0 \
	"the_new_key_is_not_stored_in_the_clear"

# --- second --now: version 2 (a provider key) retires and is deleted at the provider
out=$(rot_admin rotate upstream openai --now 2>&1)
is "$?" 0 "a_second_rotate_now_succeeds"
like "$out" 'key version 3 ' "the_second_rotation_makes_version_3"
K3=$(rot_keys '.live[] | select(.name == "tessera-openai-v3") | .key')
is "$(rot_keys '[.live[].id] | index("'"$ID2"'") != null')" true "during_grace_the_old_provider_key_still_exists"
direct() { # a request straight to the fake with provider key $1
	curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" \
		-d '{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}' "$GW_FAKE/v1/chat/completions"
}
is "$(direct "$K2")" 200 "during_grace_the_old_key_works_for_requests_in_flight"

deleted_v2() { [[ $(rot_keys '[.deleted[].id] | index("'"$ID2"'") != null') == true ]]; }
rot_wait 30 deleted_v2
is "$(rot_keys '[.deleted[].id] | index("'"$ID2"'") != null')" true "after_grace_the_old_key_is_deleted_at_the_provider"
is "$(direct "$K2")" 401 "the_deleted_key_no_longer_works_at_the_provider"
is "$(rot_keys '.deletes')" 1 "only_the_provider_issued_key_is_deleted_not_the_configured_one"
is "$(rot_keys '[.live[].key] | join(",")')" "$K3" "the_provider_holds_only_the_current_key"
is "$(pg_psql "SELECT state || ':' || (provider_deleted_at IS NOT NULL) || ':' || (ciphertext IS NULL)
 FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id WHERE u.name = 'openai' AND k.version = 2")" \
	"retired:true:true" "the_old_key_is_retired_shredded_and_marked_deleted"
is "$(rot_chat)" 200 "requests_succeed_after_the_old_key_is_deleted"

# --- audit
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_rotated' AND outcome = 'success'
 AND upstream = 'openai' AND detail->>'origin' = 'provider' AND detail->>'trigger' = 'request'
 AND actor = (SELECT actor FROM audit_events WHERE action = 'upstream.rotation_requested' LIMIT 1) AND actor <> 'rotation'")" 2 \
	"each_provider_rotation_is_audited_once_with_the_requesting_admin"
is "$(pg_psql "SELECT detail->>'provider_key_id' FROM audit_events WHERE action = 'upstream.key_rotated'
 AND outcome = 'success' AND detail->>'version' = '2'")" "$ID2" "the_rotation_event_names_the_provider_key_id"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.rotation_requested' AND upstream = 'openai'")" 2 \
	"each_request_is_audited"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_deleted_at_provider' AND outcome = 'success'
 AND detail->>'provider_key_id' = '$ID2' AND detail->>'version' = '2'")" 1 "the_provider_deletion_is_audited"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE detail::text LIKE '%sk-svcacct-%' OR detail::text LIKE '%$ROT_ADMIN_KEY%'")" 0 \
	"no_key_is_in_the_audit_log"
logs=$(cat "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out")
unlike "$logs" "sk-svcacct-" "no_provider_key_is_logged"
unlike "$logs" "$ROT_ADMIN_KEY" "the_admin_key_is_not_logged"
like "$logs" 'upstream_key_deleted_at_provider.*provider_key_id='"$ID2" "the_deletion_is_logged_by_id"

# --- metrics
is "$(rot_metric "$GW_URL" 'tessera_rotation_overdue{upstream="openai"}')" 0 "metrics_show_the_upstream_not_overdue"
ts=$(rot_metric "$GW_URL" 'tessera_rotation_last_success_timestamp_seconds{upstream="openai"}')
now=$(date +%s)
if [[ $ts =~ ^[0-9]+$ ]] && ((ts > now - 120 && ts <= now + 1)); then
	ok "metrics_show_the_last_successful_rotation"
else
	fail "metrics_show_the_last_successful_rotation" "got '$ts'"
fi
is "$(rot_metric "$GW_URL" 'tessera_rotation_failures_total{upstream="openai"}')" 0 "metrics_count_no_failures"

# --- an upstream without a provider: --now is refused, naming --key-file
out=$(rot_admin rotate upstream anthropic --now 2>&1)
rc=$?
is "$rc" 1 "rotate_now_without_a_provider_fails"
like "$out" 'no provider admin API configured.*--key-file' "rotate_now_without_a_provider_names_key_file"
out=$(curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer $GW_TOKEN" -d '{"now":true}' \
	"$GW_URL/admin/v1/upstreams/openai/rotate")
like "$out" ' 403$' "rotate_now_needs_the_admin_role"
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $GW_TOKEN" "$GW_URL/admin/v1/upstreams/openai/rotate")
like "$out" ' 403$' "rotation_status_needs_the_admin_role"
is "$(rot_keys '.creates')" 2 "refused_requests_create_nothing_at_the_provider"

# --- an overdue operator-supplied key: a reminder (log, metric), no rotation
pg_psql "UPDATE upstreams SET rotation_period = '1 hour' WHERE name = 'anthropic';
UPDATE upstream_keys SET activated_at = now() - interval '3 hours'
 WHERE upstream_id = (SELECT id FROM upstreams WHERE name = 'anthropic')" >/dev/null
reminded() { grep -q 'upstream_key_rotation_overdue.*upstream=anthropic' "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out"; }
rot_wait 10 reminded
is "$?" 0 "an_overdue_operator_supplied_key_is_logged_as_a_reminder"
is "$(rot_metric "$GW_URL" 'tessera_rotation_overdue{upstream="anthropic"}')" 1 "metrics_show_the_operator_supplied_key_overdue"
sleep 3
is "$(cat "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out" | grep -c 'upstream_key_rotation_overdue.*upstream=anthropic')" 1 \
	"the_reminder_is_not_repeated_within_the_hour"
is "$(pg_psql "SELECT max(version) FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id WHERE u.name = 'anthropic'")" 1 \
	"an_operator_supplied_key_is_never_rotated_automatically"

# --- config: a provider needs its admin key file, its project and kind openai
printf '[upstream.x]\nkind = anthropic\nbase_url = http://127.0.0.1:1/v1\nprovider = openai-admin\n' >"$GW_DIR/bad.conf"
out=$("$TESSERAD" --check-config -c "$GW_DIR/bad.conf" 2>&1)
isnt "$?" 0 "check_config_refuses_an_incomplete_provider"
like "$out" 'provider = openai-admin needs kind = openai, admin_key_file and project_id' "check_config_says_what_the_provider_needs"

tap_done
