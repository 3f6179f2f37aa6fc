#!/usr/bin/env bash
# webhook_secret_github_push.sh — issue 8: the GitHub webhook secret rotates
# without a person. With [github] webhook_hook_id set, tesserad generates the
# new secret and sets it on the organisation webhook itself (PATCH
# /orgs/{org}/hooks/{id}/config on the fake GitHub, tests/fakes/github); the
# fake then signs its deliveries with that secret, as GitHub does:
#   * `tessera rotate webhook-secret github` pushes the secret, prints no
#     secret, and deliveries signed by the fake are accepted before, during
#     and after the switch; the old secret verifies inside the overlap and is
#     refused after it;
#   * a PATCH that fails (500, 403) leaves the old secret active and working,
#     is audited as a failure with the HTTP status, and a 403-refused secret is
#     retired at once;
#   * with webhook_secret_rotation_period set, the job webhook_secret.rotate
#     rotates on its own (twice here) while deliveries keep verifying, and a
#     failed scheduled PATCH is retried after a backoff and then succeeds;
#   * no pushed secret reaches tesserad's log, the CLI's output, Postgres in
#     the clear or an audit event.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"
. "$TESSERA_SRCDIR/tests/fakes/github/lib.sh"

command -v jq >/dev/null || die "jq not found (Debian package jq)"
pg_start
GH_DIR=$(mktemp_dir ghpush)
gh_fake_start "$TESSERA_SRCDIR/tests/fakes/github/acme.json"
dir=$GH_DIR
rnd() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
file_secret=ghfile-$(rnd)
printf '%s\n' "$file_secret" >"$dir/hook.secret"
rnd >"$dir/master.key"
rnd >>"$dir/master.key"
chmod 600 "$dir/hook.secret" "$dir/master.key"
HOOK=4711

start_tesserad() { # start_tesserad NAME EXTRA-GITHUB-KEYS
	gh_conf "$dir/$1.conf" "webhook_secret_file = $dir/hook.secret
webhook_hook_id = $HOOK
sync_interval = 1h
$2"
	sed -i "/^state_dir = /a master_key_file = $dir/master.key" "$dir/$1.conf"
	"$TESSERAD" -c "$dir/$1.conf" >>"$dir/d.out" 2>>"$dir/d.err" &
	dpid=$!
	on_exit "kill $dpid 2>/dev/null; wait $dpid 2>/dev/null"
	wait_http "$TESSERAD_URL/readyz" 30 || die "tesserad not ready: $(tail -20 "$dir/d.err")"
}
start_tesserad first "webhook_secret_overlap = 6s"
boot=$(sed -n 's/^bootstrap token: //p' "$dir/d.out")
[[ -n $boot ]] || die "no bootstrap token in $(cat "$dir/d.out")"
admin() { TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$boot "$TESSERA" "$@"; }
gh_ctl POST /_fake/org_hook "{\"org\":\"acme\",\"id\":$HOOK,\"url\":\"$TESSERAD_URL/hooks/github\",\"secret\":\"$file_secret\"}" >/dev/null

fake_secret() { gh_ctl GET /_fake/org_hooks | jq -r ".[] | select(.id == $HOOK) | .secret"; }
fake_patches() { gh_ctl GET /_fake/org_hooks | jq -r ".[] | select(.id == $HOOK) | .patches"; }
# delivery signed by the fake with its current secret -> tesserad's HTTP status
deliver() { gh_ctl POST /_fake/org_hook/deliver "{\"org\":\"acme\",\"id\":$HOOK,\"event\":\"ping\"}" | jq -r .status; }
# delivery signed with SECRET -> tesserad's HTTP status
deliver_with() {
	gh_ctl POST /_fake/deliver "{\"event\":\"ping\",\"payload\":{\"zen\":\"x\",\"hook_id\":$HOOK},\"secret\":\"$1\",\"url\":\"$TESSERAD_URL/hooks/github\"}" |
		jq -r .status
}
# background deliveries by the fake, one line per status, until $dir/stop exists
deliver_loop() {
	rm -f "$dir/stop"
	(while [[ ! -e $dir/stop ]]; do deliver; sleep 0.05; done) >"$dir/$1" 2>/dev/null &
	loop=$!
}
stop_loop() {
	touch "$dir/stop"
	wait "$loop" 2>/dev/null
}
wait_sql() { # wait_sql SQL WANT SECS
	local deadline=$((SECONDS + $3))
	while [[ $(pg_psql "$1" 2>/dev/null) != "$2" ]]; do
		((SECONDS >= deadline)) && return 1
		sleep 0.2
	done
}
sleep_until() {
	local wait
	wait=$(awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { d = t - now; printf "%.3f", (d > 0 ? d : 0) }')
	sleep "$wait"
}
not_after() { pg_psql "SELECT extract(epoch FROM not_after) FROM secrets WHERE name = 'webhook.github' AND version = $1"; }
active() { pg_psql "SELECT version FROM secrets WHERE name = 'webhook.github' AND state = 'active'"; }
secrets_seen=("$file_secret")

# --- before: GitHub signs with the configured file's secret
is "$(deliver)" 200 "delivery_signed_with_the_file_secret_is_accepted_before_rotation"
is "$(deliver_with "wrong-$(rnd)")" 401 "delivery_with_a_wrong_secret_is_refused"

# --- the CLI rotation pushes the new secret to GitHub, with deliveries flowing
deliver_loop during1
out=$(admin rotate webhook-secret github 2>"$dir/cli1.err")
rc=$?
sleep 0.5
stop_loop
is "$rc" 0 "rotate_webhook_secret_github_pushes_and_succeeds"
s1=$(fake_secret)
secrets_seen+=("$s1")
like "$s1" '^[0-9a-f]{64}$' "github_holds_a_generated_256_bit_secret"
ok_if() { if eval "$1"; then ok "$2"; else fail "$2" "${3:-}"; fi; }
ok_if '[[ $s1 != "$file_secret" ]]' "github_secret_changed"
is "$(fake_patches)" 1 "one_patch_of_the_hook_config"
like "$out" "version 2 is active and set on hook $HOOK of acme" "cli_reports_the_pushed_version"
ok_if '! grep -qF "$s1" <<<"$out$(cat "$dir/cli1.err")"' "cli_does_not_print_the_pushed_secret"
is "$(pg_psql "SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM secrets WHERE name = 'webhook.github'")" \
	"1:retiring,2:active" "file_secret_is_retiring_and_the_pushed_one_active"
n_during=$(wc -l <"$dir/during1")
n_bad=$(grep -vc '^200$' "$dir/during1")
ok_if '((n_during >= 5 && n_bad == 0))' "deliveries_during_the_switch_are_all_accepted" \
	"$n_during deliveries, $n_bad not 200: $(sort "$dir/during1" | uniq -c | tr '\n' ' ')"
is "$(deliver)" 200 "delivery_signed_with_the_new_secret_is_accepted"
is "$(deliver_with "$file_secret")" 200 "old_secret_verifies_inside_the_overlap"
is "$(gh_ctl GET '/_fake/calls' | jq -r '[.calls[] | select(.method == "PATCH")][0] | .path + " " + .auth')" \
	"/orgs/acme/hooks/$HOOK/config token" "the_patch_is_the_github_api_update_webhook_config_call"
sleep_until "$(awk -v t="$(not_after 1)" 'BEGIN { printf "%.3f", t + 1.0 }')"
is "$(deliver_with "$file_secret")" 401 "old_secret_is_refused_after_the_overlap"
is "$(deliver)" 200 "new_secret_still_verifies_after_the_overlap"
is "$(admin --json rotate webhook-secret github 2>/dev/null | jq -r '.last_ok, .last_version, .last_status' | tr '\n' ' ')" \
	"true 3 200 " "a_second_rotation_pushes_version_3"
s2=$(fake_secret)
secrets_seen+=("$s2")
is "$(deliver)" 200 "delivery_with_the_third_secret_is_accepted"
is "$(deliver_with "$s1")" 200 "second_secret_verifies_inside_its_overlap"

push_failures() { curl -s "$TESSERAD_URL/metrics" | sed -n 's/^tessera_webhook_secret_push_failures{name="github"} //p'; }
is "$(push_failures)" 0 "metrics_show_no_failed_push"

# --- a failed PATCH leaves the old secret working
gh_ctl POST /_fake/fail '{"method":"PATCH","status":500,"count":1}' >/dev/null
admin rotate webhook-secret github >"$dir/cli2.out" 2>"$dir/cli2.err"
is "$?" 1 "rotation_fails_when_github_answers_500"
like "$(cat "$dir/cli2.err")" 'HTTP status 500' "cli_reports_the_http_status"
is "$(fake_secret)" "$s2" "github_keeps_the_secret_it_had"
is "$(active)" 3 "the_active_version_is_unchanged_after_a_failed_push"
is "$(deliver)" 200 "deliveries_keep_verifying_after_a_failed_push"
is "$(pg_psql "SELECT detail->>'http_status' || ':' || (detail->>'version_discarded') FROM audit_events
  WHERE action = 'webhook_secret.rotated' AND outcome = 'failure' ORDER BY seq DESC LIMIT 1")" "500:false" \
	"failed_push_is_audited_with_its_http_status"
is "$(push_failures)" 1 "metrics_count_the_failed_push"
gh_ctl POST /_fake/fail '{"method":"PATCH","status":403,"count":1}' >/dev/null
admin rotate webhook-secret github >/dev/null 2>"$dir/cli3.err"
is "$?" 1 "rotation_fails_when_github_refuses_with_403"
is "$(pg_psql "SELECT state || ':' || (ciphertext IS NULL) FROM secrets WHERE name = 'webhook.github'
  ORDER BY version DESC LIMIT 1")" "retired:true" "a_refused_secret_is_retired_and_shredded_at_once"
is "$(deliver)" 200 "deliveries_keep_verifying_after_a_refused_push"
is "$(push_failures)" 2 "metrics_count_consecutive_failed_pushes"

# --- scheduled rotation: restart with a short period; it rotates on its own, twice, deliveries flowing
kill -TERM "$dpid" 2>/dev/null
wait "$dpid" 2>/dev/null
is "$?" 0 "first_tesserad_stops_cleanly"
patches0=$(fake_patches)
v0=$(active)
start_tesserad second "webhook_secret_overlap = 3s
webhook_secret_rotation_period = 6s"
deliver_loop during2
ok_if 'wait_sql "SELECT count(*) >= 2 FROM audit_events WHERE action = '\''webhook_secret.rotated'\''
  AND outcome = '\''success'\'' AND detail->>'\''trigger'\'' = '\''schedule'\''" t 40' \
	"scheduled_rotation_happens_twice_on_its_own"
ok_if '(($(fake_patches) >= patches0 + 2 && $(active) >= v0 + 2))' "each_scheduled_rotation_pushed_a_new_version" \
	"patches $(fake_patches) (was $patches0), active $(active) (was $v0)"
secrets_seen+=("$(fake_secret)")
# a scheduled push that fails is retried after the backoff, and succeeds
gh_ctl POST /_fake/fail '{"method":"PATCH","status":502,"count":1}' >/dev/null
ok_if 'wait_sql "SELECT count(*) FROM audit_events WHERE action = '\''webhook_secret.rotated'\'' AND outcome = '\''failure'\''
  AND detail->>'\''trigger'\'' = '\''schedule'\'' AND detail->>'\''http_status'\'' = '\''502'\''" 1 30' \
	"failed_scheduled_push_is_audited_with_its_http_status"
failed_at=$(pg_psql "SELECT max(seq) FROM audit_events WHERE outcome = 'failure' AND action = 'webhook_secret.rotated'")
ok_if 'wait_sql "SELECT count(*) > 0 FROM audit_events WHERE action = '\''webhook_secret.rotated'\''
  AND outcome = '\''success'\'' AND seq > $failed_at" t 30' "failed_scheduled_push_is_retried_and_succeeds"
like "$(cat "$dir/d.err")" 'webhook_secret_push_failed.*http_status=502.*next_attempt_at=' \
	"failed_push_is_logged_with_status_and_next_attempt"
stop_loop
secrets_seen+=("$(fake_secret)")
n_during=$(wc -l <"$dir/during2")
n_bad=$(grep -vc '^200$' "$dir/during2")
ok_if '((n_during >= 20 && n_bad == 0))' "deliveries_across_scheduled_rotations_are_all_accepted" \
	"$n_during deliveries, $n_bad not 200: $(sort "$dir/during2" | uniq -c | tr '\n' ' ')"
is "$(deliver)" 200 "delivery_with_the_latest_secret_is_accepted"
status=$(curl -s -H "Authorization: Bearer $boot" "$TESSERAD_URL/admin/v1/webhook-secrets/github")
is "$(jq -r '.push, .hook, .org, .rotation_period_s' <<<"$status" | tr '\n' ' ')" "true $HOOK acme 6 " \
	"status_route_shows_the_push_configuration"
is "$(curl -s -o /dev/null -w '%{http_code}' "$TESSERAD_URL/admin/v1/webhook-secrets/github")" 401 \
	"status_route_needs_a_credential"

# --- no pushed secret leaks
leaks=0
for s in "${secrets_seen[@]}"; do
	[[ -n $s ]] || continue
	grep -qF "$s" "$dir/d.err" "$dir/d.out" "$dir"/cli*.err "$dir"/cli*.out && leaks=$((leaks + 1))
	c=$(pg_psql "SELECT (SELECT count(*) FROM secrets WHERE secrets::text LIKE '%$s%')
	  + (SELECT count(*) FROM audit_events WHERE audit_events::text LIKE '%$s%')
	  + (SELECT count(*) FROM settings WHERE settings::text LIKE '%$s%')")
	[[ $c == 0 ]] || leaks=$((leaks + 1))
done
is "$leaks" 0 "no_pushed_secret_in_logs_cli_output_postgres_or_audit"

kill -TERM "$dpid" 2>/dev/null
wait "$dpid" 2>/dev/null
is "$?" 0 "tesserad_stops_cleanly_on_sigterm"
if grep -qE 'Sanitizer|runtime error:' "$dir/d.err"; then
	fail "no_sanitizer_reports_in_the_daemon_log" "$(grep -hE -A20 'Sanitizer|runtime error:' "$dir/d.err" | head -40)"
else
	ok "no_sanitizer_reports_in_the_daemon_log"
fi
tap_done
