#!/usr/bin/env bash
# gateway_rotate_master_key.sh — issue 8: `tessera rotate master-key
# --new-key-file F` re-wraps every data key row by row. Killed half-way
# (kill -9), every row is under exactly one of the two keys and a tesserad
# holding both ([server] previous_master_key_file) serves every upstream and
# finishes the re-wrap by itself; re-running is harmless; then tesserad with the new master key only
# serves every upstream, and with the old key only it cannot.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

NEW_KEY=sk-org-openai-final-$RANDOM$RANDOM
GW_EXTRA_KEYS=$NEW_KEY gw_setup
export TESSERA_URL=$GW_URL
unset TESSERA_TOKEN
admin() { TESSERA_TOKEN=$GW_BOOT "$TESSERA" "$@"; }
chat_openai() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $GW_TOKEN" \
		-d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' "$GW_URL/openai/v1/chat/completions"
}
chat_anthropic() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "x-api-key: $GW_TOKEN" \
		-d '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' \
		"$GW_URL/anthropic/v1/messages"
}
set_server_keys() { # set_server_keys MASTER [PREVIOUS]
	sed -i -e '/^previous_master_key_file = /d' -e "s|^master_key_file = .*|master_key_file = $1|" "$GW_DIR/tesserad.conf"
	if [[ -n ${2:-} ]]; then
		sed -i "s|^master_key_file = .*|&\nprevious_master_key_file = $2|" "$GW_DIR/tesserad.conf"
	fi
}
restart() {
	gw_stop_tesserad
	gw_start_tesserad
}

# several key versions for openai (the last one is the one the provider accepts): more rows to re-wrap
for i in 1 2 3 4 5 6; do
	k=sk-intermediate-$i-$RANDOM
	((i == 6)) && k=$NEW_KEY
	printf '%s\n' "$k" >"$GW_DIR/k$i"
	chmod 0600 "$GW_DIR/k$i"
	admin rotate upstream openai --key-file "$GW_DIR/k$i" >/dev/null 2>&1 || fail "setup_rotation_$i"
done
rows=$(pg_psql "SELECT count(*) FROM upstream_keys WHERE master_key_id IS NOT NULL")
OLD_ID=$(pg_psql "SELECT DISTINCT master_key_id FROM upstream_keys WHERE master_key_id IS NOT NULL")
is "$rows" 8 "eight_upstream_key_envelopes_under_the_old_master_key"
is "$(chat_openai) $(chat_anthropic)" "200 200" "both_upstreams_serve_before_the_rotation"

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$GW_DIR/new.master"
chmod 0600 "$GW_DIR/new.master"
cp "$GW_DIR/master.key" "$GW_DIR/old.master"

# the key travels as a path, never as key material; a file readable by others is refused
cp "$GW_DIR/new.master" "$GW_DIR/loose.master"
chmod 0644 "$GW_DIR/loose.master"
out=$(admin rotate master-key --new-key-file "$GW_DIR/loose.master" 2>&1)
like "$out" 'cannot load the new master key' "rotate_master_key_refuses_a_key_file_readable_by_others"

# --- start the rotation slowly and kill tesserad half-way
export TESSERA_TEST_REWRAP_DELAY_MS=400
restart
admin rotate master-key --new-key-file "$GW_DIR/new.master" >"$GW_DIR/rot1.out" 2>&1 &
cli=$!
for ((t = 0; t < 200; t++)); do
	moved=$(pg_psql "SELECT count(*) FROM upstream_keys WHERE master_key_id IS NOT NULL AND master_key_id <> '$OLD_ID'")
	((moved >= 3)) && break
	sleep 0.05
done
kill -9 "$TESSERAD_PID"
wait "$TESSERAD_PID" 2>/dev/null
wait "$cli"
cli_rc=$?
unset TESSERA_TEST_REWRAP_DELAY_MS
NEW_ID=$(pg_psql "SELECT DISTINCT master_key_id FROM upstream_keys WHERE master_key_id IS NOT NULL AND master_key_id <> '$OLD_ID'")
under_old=$(pg_psql "SELECT count(*) FROM upstream_keys WHERE master_key_id = '$OLD_ID'")
under_new=$(pg_psql "SELECT count(*) FROM upstream_keys WHERE master_key_id = '$NEW_ID'")
isnt "$cli_rc" 0 "the_cli_reports_the_interrupted_rotation"
if ((under_old > 0 && under_new > 0 && under_old + under_new == 8)); then
	ok "killed_half_way_every_row_is_under_exactly_one_of_the_two_keys"
else
	fail "killed_half_way_every_row_is_under_exactly_one_of_the_two_keys" "old $under_old new $under_new"
fi
is "$(pg_psql "SELECT count(*) FROM master_keys WHERE id = '$NEW_ID'")" 1 "the_new_master_key_id_is_registered"

# --- restart holding both keys: every upstream serves from the mixed state while the
# re-wrap resumes by itself (slowly, so the requests meet the half-done state)
set_server_keys "$GW_DIR/new.master" "$GW_DIR/old.master"
TESSERA_TEST_REWRAP_DELAY_MS=300 gw_start_tesserad
is "$(chat_openai) $(chat_anthropic)" "200 200" "with_both_keys_every_upstream_serves_from_a_half_rewrapped_state"
for ((t = 0; t < 300; t++)); do
	left=$(pg_psql "SELECT (SELECT count(*) FROM upstream_keys WHERE master_key_id = '$OLD_ID')
 + (SELECT count(*) FROM secrets WHERE master_key_id = '$OLD_ID') + (SELECT count(*) FROM audit_keys WHERE master_key_id = '$OLD_ID')")
	[[ $left == 0 ]] && break
	sleep 0.1
done
is "$left" 0 "restarted_with_both_keys_the_rewrap_resumes_and_completes_by_itself"
rotated_events() { # rotated_events N: wait (10 s at most) until N completions are audited; print the count
	local n t
	for ((t = 0; t < 100; t++)); do
		n=$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'master_key.rotated' AND outcome = 'success'")
		((n >= $1)) && break
		sleep 0.1
	done
	echo "$n"
}
is "$(rotated_events 1)" 1 "the_rotation_completed_by_the_resumed_job_is_audited"

# --- re-running is harmless and reports it complete
out=$(TESSERA_TOKEN=$GW_BOOT timeout 120 "$TESSERA" rotate master-key --new-key-file "$GW_DIR/new.master" 2>&1)
is "$?" 0 "rerunning_the_rotation_succeeds"
like "$out" 'every data key is wrapped by master key' "rerunning_the_rotation_reports_it_complete"
is "$(pg_psql "SELECT count(*) FROM upstream_keys WHERE master_key_id = '$OLD_ID'")
$(pg_psql "SELECT count(*) FROM secrets WHERE master_key_id = '$OLD_ID'")
$(pg_psql "SELECT count(*) FROM audit_keys WHERE master_key_id = '$OLD_ID'")" $'0\n0\n0' \
	"no_envelope_is_left_under_the_old_master_key"
is "$(pg_psql "SELECT count(*) FROM upstream_keys WHERE master_key_id = '$NEW_ID'")" 8 \
	"every_upstream_key_envelope_is_under_the_new_master_key"
is "$(rotated_events 2)" 2 "the_explicit_rerun_is_audited_too"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'master_key.rotation_started' AND outcome = 'success'")" 2 \
	"each_start_of_the_rotation_is_audited"

# --- the new master key alone opens every upstream key
set_server_keys "$GW_DIR/new.master"
restart
curl -s -X POST "$GW_FAKE/__reset" >/dev/null
is "$(chat_openai) $(chat_anthropic)" "200 200" "with_the_new_master_key_only_every_upstream_serves"
rcv=$(curl -s "$GW_FAKE/__received")
like "$rcv" "Bearer $NEW_KEY\"" "openai_request_carried_the_decrypted_upstream_key"
like "$rcv" "\"x-api-key\":\"$GW_ORG_ANTHROPIC\"" "anthropic_request_carried_the_decrypted_upstream_key"
like "$(curl -s -H "Authorization: Bearer $GW_BOOT" "$GW_URL/admin/v1/rotate/master-key")" '"complete":true' \
	"rotation_status_is_complete"

# --- control: the old master key alone no longer opens them
set_server_keys "$GW_DIR/old.master"
restart
is "$(chat_openai)" 503 "with_the_old_master_key_only_the_upstream_key_does_not_open"
unlike "$(cat "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out")" "$(cat "$GW_DIR/new.master")" \
	"the_master_key_is_not_logged"

tap_done
