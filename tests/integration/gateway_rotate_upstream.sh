#!/usr/bin/env bash
# gateway_rotate_upstream.sh — issue 8: `tessera rotate upstream NAME
# --key-file F` makes an operator-supplied key the active key of an upstream
# while gateway requests keep flowing (none fails); afterwards the provider
# sees only the new key; the old one retires after grace_period (envelope
# shredded); every rotation is audited without the key; `tessera upstream
# list` shows key age, state and next rotation, and reminds when a key is
# older than its rotation_period.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

NEW_KEY=sk-org-openai-rotated-$RANDOM$RANDOM
GW_EXTRA_KEYS=$NEW_KEY gw_setup
export TESSERA_URL=$GW_URL
unset TESSERA_TOKEN
admin() { TESSERA_TOKEN=$GW_BOOT "$TESSERA" "$@"; }
chat() { # chat CONTENT -> HTTP code
	curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $GW_TOKEN" \
		-d "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"$1\"}]}" \
		"$GW_URL/openai/v1/chat/completions"
}
received_with() { # how many recorded requests carried provider key $1
	curl -s "$GW_FAKE/__received" | grep -o "Bearer $1\"" | wc -l | tr -d ' '
}

# --- upstream list: age, state, next rotation; a reminder for an overdue key
pg_psql "UPDATE upstreams SET rotation_period = '1 hour' WHERE name = 'anthropic';
UPDATE upstream_keys SET activated_at = now() - interval '3 hours'
 WHERE upstream_id = (SELECT id FROM upstreams WHERE name = 'anthropic')" >/dev/null
out=$(admin upstream list 2>"$GW_DIR/list.err")
like "$out" 'NAME +KIND .* KEY +MODELS +AGE +STATE +NEXT_ROTATION' "upstream_list_has_age_state_and_next_rotation_columns"
like "$out" $'\nopenai +openai +us +no +no +v1 +gpt-4o[^ ]* +[0-9]+s +active +20[0-9-]+T' "upstream_list_shows_active_key_age_and_next_rotation"
like "$(cat "$GW_DIR/list.err")" 'reminder: the key of upstream anthropic is 3h old, older than its rotation period' \
	"upstream_list_reminds_when_a_key_is_older_than_its_rotation_period"
unlike "$(cat "$GW_DIR/list.err")" 'upstream openai' "no_reminder_for_a_key_within_its_period"

# --- rotation in the middle of a stream of requests
pg_psql "UPDATE upstreams SET grace_period = '6 seconds' WHERE name = 'openai'" >/dev/null
printf '%s\n' "$NEW_KEY" >"$GW_DIR/new.key"
chmod 0644 "$GW_DIR/new.key"
out=$(admin rotate upstream openai --key-file "$GW_DIR/new.key" 2>&1)
like "$out" 'readable by group or others' "rotate_refuses_a_key_file_readable_by_others"
chmod 0600 "$GW_DIR/new.key"

for w in 1 2 3 4; do
	(for ((i = 0; i < 60; i++)); do chat "w$w-$i"; echo; done) >"$GW_DIR/load.$w" &
	eval "load$w=\$!"
done
sleep 0.5
out=$(admin rotate upstream openai --key-file "$GW_DIR/new.key" 2>&1)
rot_rc=$?
# shellcheck disable=SC2154
wait "$load1" "$load2" "$load3" "$load4"
is "$rot_rc" 0 "rotate_upstream_with_key_file_succeeds"
like "$out" 'upstream openai: key version 2 \(fingerprint [0-9a-f]{32}\) is active for new requests' \
	"rotate_upstream_reports_the_new_version"
like "$out" 'previous version 1 keeps serving requests in flight until 20' "rotate_upstream_reports_the_grace_deadline"
codes=$(cat "$GW_DIR"/load.* | sort | uniq -c | tr -s ' ' | tr '\n' ';')
is "$codes" " 240 200;" "all_240_requests_across_the_rotation_succeed"
old_n=$(received_with "$GW_ORG_OPENAI")
new_n=$(received_with "$NEW_KEY")
if ((old_n > 0 && new_n > 0 && old_n + new_n == 240)); then
	ok "the_load_straddled_the_rotation_old_then_new_key"
else
	fail "the_load_straddled_the_rotation_old_then_new_key" "old key $old_n, new key $new_n requests"
fi

curl -s -X POST "$GW_FAKE/__reset" >/dev/null
codes=""
for i in 1 2 3 4 5 6 7 8 9 10; do codes+="$(chat "after $i") "; done
is "$codes" "200 200 200 200 200 200 200 200 200 200 " "requests_after_the_rotation_succeed"
is "$(received_with "$NEW_KEY")" 10 "after_the_rotation_the_provider_sees_the_new_key"
is "$(received_with "$GW_ORG_OPENAI")" 0 "after_the_rotation_the_provider_never_sees_the_old_key"

out=$(admin upstream list 2>/dev/null)
like "$out" $'\nopenai +openai +us +no +no +v2 +gpt-4o[^ ]* +[0-9]+s +active\\+1 retiring ' "upstream_list_shows_the_retiring_version"

# --- the old key retires after its grace period; its envelope is shredded
for ((t = 0; t < 200; t++)); do
	st=$(pg_psql "SELECT state || ':' || (ciphertext IS NULL) FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
 WHERE u.name = 'openai' AND k.version = 1")
	[[ $st == retired:* ]] && break
	sleep 0.2
done
is "$st" "retired:true" "old_key_is_retired_and_shredded_after_the_grace_period"
is "$(pg_psql "SELECT count(*) FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
 WHERE u.name = 'openai' AND k.version = 1 AND k.retired_at >= k.retire_after")" 1 "retired_no_earlier_than_retire_after"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_retired' AND upstream = 'openai'
 AND detail->>'version' = '1'")" 1 "retirement_is_audited"

# --- refusals and audit
out=$(admin rotate upstream openai --now 2>&1)
rc=$?
isnt "$rc" 0 "rotate_now_without_a_provider_api_fails"
like "$out" 'no provider admin API configured' "rotate_now_says_why"
out=$(admin rotate upstream nosuch --key-file "$GW_DIR/new.key" 2>&1)
like "$out" 'no upstream nosuch' "rotate_unknown_upstream_is_not_found"
out=$(curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer $GW_TOKEN" -d '{"key":"sk-x"}' \
	"$GW_URL/admin/v1/upstreams/openai/rotate")
like "$out" ' 403$' "rotate_needs_the_admin_role"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_rotated' AND outcome = 'success'
 AND upstream = 'openai' AND detail->>'version' = '2' AND detail->>'previous_version' = '1'")" 1 \
	"rotation_is_audited_with_versions"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_rotated' AND outcome = 'failure'")" 2 \
	"failed_rotations_are_audited"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE detail::text LIKE '%$NEW_KEY%'")" 0 "the_key_is_not_in_the_audit_log"
is "$(pg_psql "SELECT count(*) FROM upstream_keys WHERE position('$NEW_KEY'::bytea IN ciphertext) > 0")" 0 \
	"the_key_is_not_stored_in_the_clear"
unlike "$(cat "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out")" "$NEW_KEY" "the_key_is_not_logged"

# --- after a restart (key_file still holds the old key) the rotated key keeps serving
gw_stop_tesserad
gw_start_tesserad
curl -s -X POST "$GW_FAKE/__reset" >/dev/null
is "$(chat restarted)" 200 "after_restart_requests_succeed"
is "$(received_with "$NEW_KEY")" 1 "after_restart_the_rotated_key_serves_not_the_key_file"

tap_done
