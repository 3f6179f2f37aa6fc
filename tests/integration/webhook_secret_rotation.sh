#!/usr/bin/env bash
# webhook_secret_rotation.sh — issue 8: `tessera rotate webhook-secret NAME`
# for the HR and GitHub webhooks. Before any rotation the configured file is
# the secret; a rotation makes a new secret active (generated and printed
# once, or from --secret-file) while the previous one keeps verifying for
# the overlap window and is refused (401, like any bad signature) within a
# second of its end; after the first rotation the file is ignored (logged
# once); a second rotation demotes the stored active version the same way;
# the retire job shreds expired versions; every rotation and retirement is
# audited without the secret; no secret reaches tesserad's log or Postgres
# in the clear.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

command -v openssl >/dev/null || { fail "openssl CLI available (Debian package openssl)"; tap_done; }
pg_start
dir=$(mktemp_dir wsr)
rnd() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
hr_file_secret=hrfile-$(rnd)
gh_file_secret=ghfile-$(rnd)
gh_operator_secret=ghop-$(rnd)
printf '%s\n' "$hr_file_secret" >"$dir/hr.secret"
printf '%s\n' "$gh_file_secret" >"$dir/gh.secret"
printf '%s\n' "$gh_operator_secret" >"$dir/gh.new"
rnd >"$dir/master.key"
rnd >>"$dir/master.key"
chmod 600 "$dir/hr.secret" "$dir/gh.secret" "$dir/gh.new" "$dir/master.key"
tesserad_conf "$dir/t.conf" "[hr]
webhook_secret_file = $dir/hr.secret

[github]
webhook_secret_file = $dir/gh.secret
webhook_secret_overlap = 5s"
sed -i "/^state_dir = /a master_key_file = $dir/master.key" "$dir/t.conf"
"$TESSERAD" -c "$dir/t.conf" >"$dir/out" 2>"$dir/err" &
pid=$!
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || die "tesserad not ready: $(tail -20 "$dir/err")"
boot=$(sed -n 's/^bootstrap token: //p' "$dir/out")
[[ -n $boot ]] || die "no bootstrap token in $(cat "$dir/out")"
admin() { TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$boot "$TESSERA" "$@"; }

n=0
hr() { # hr SECRET -> HTTP code of a fresh, signed HR delivery (404: accepted, names no known user)
	local body ts sig
	n=$((n + 1))
	body="{\"user\":\"nobody-$n\",\"reason\":\"rotation test\"}"
	ts=$(date +%s)
	sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)
	curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Tessera-Timestamp: $ts" \
		-H "X-Tessera-Signature: sha256=$sig" -d "$body" "$TESSERAD_URL/hooks/hr"
}
gh() { # gh SECRET -> HTTP code of a signed GitHub ping (200: accepted)
	local body sig
	n=$((n + 1))
	body="{\"zen\":\"rotation $n\",\"hook_id\":1}"
	sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)
	curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-GitHub-Event: ping" -H "X-GitHub-Delivery: d-$n" \
		-H "X-Hub-Signature-256: sha256=$sig" -H 'Content-Type: application/json' -d "$body" \
		"$TESSERAD_URL/hooks/github"
}
# sleep_until EPOCH: sleep until the wall clock passes EPOCH (fractional)
sleep_until() {
	local wait
	wait=$(awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { d = t - now; printf "%.3f", (d > 0 ? d : 0) }')
	sleep "$wait"
}
not_after() { pg_psql "SELECT extract(epoch FROM not_after) FROM secrets WHERE name = '$1' AND version = $2"; }
wait_sql() { # wait_sql SQL WANT SECS
	local deadline=$((SECONDS + $3))
	while [[ $(pg_psql "$1" 2>/dev/null) != "$2" ]]; do
		((SECONDS >= deadline)) && return 1
		sleep 0.2
	done
}

# --- before any rotation: the configured files are the secrets
is "$(hr "$hr_file_secret")" 404 "hr_file_secret_verifies_before_any_rotation"
is "$(gh "$gh_file_secret")" 200 "github_file_secret_verifies_before_any_rotation"
is "$(hr "wrong-$(rnd)")" 401 "hr_wrong_secret_is_refused"

# --- refusals of the admin route
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$TESSERAD_URL/admin/v1/webhook-secrets/hr/rotate")
is "$code" 401 "rotation_without_a_credential_is_refused"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $boot" \
	"$TESSERAD_URL/admin/v1/webhook-secrets/scim/rotate")
is "$code" 404 "rotation_of_an_unknown_webhook_is_404"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $boot" \
	-d '{"secret":"short"}' "$TESSERAD_URL/admin/v1/webhook-secrets/github/rotate")
is "$code" 400 "a_too_short_operator_secret_is_refused"
admin rotate webhook-secret scim >/dev/null 2>&1
is "$?" 2 "cli_refuses_an_unknown_webhook_name"

# --- HR: generated secret, --overlap 5s
hr_new=$(admin rotate webhook-secret hr --overlap 5s 2>"$dir/rot1.err")
is "$?" 0 "rotate_webhook_secret_hr_succeeds"
like "$hr_new" '^[0-9a-f]{64}$' "generated_secret_is_256_bits_printed_alone_on_stdout"
like "$(cat "$dir/rot1.err")" 'previous secret \(version 1\) keeps verifying until 20' \
	"rotation_reports_the_end_of_the_overlap"
hr_v1_end=$(not_after webhook.hr 1)
is "$(hr "$hr_new")" 404 "hr_new_secret_verifies"
is "$(hr "$hr_file_secret")" 404 "hr_old_secret_verifies_inside_the_overlap"

# --- GitHub: operator-supplied secret, overlap from [github] webhook_secret_overlap
out=$(admin rotate webhook-secret github --secret-file "$dir/gh.new" 2>"$dir/rot2.err")
is "$?" 0 "rotate_webhook_secret_github_from_a_file_succeeds"
is "$out" "" "an_operator_supplied_secret_is_not_printed"
gh_v1_end=$(not_after webhook.github 1)
is "$(gh "$gh_operator_secret")" 200 "github_new_secret_verifies"
is "$(gh "$gh_file_secret")" 200 "github_old_secret_verifies_inside_the_overlap"

# --- the file is superseded once rotated
superseding=other-$(rnd)
printf '%s\n' "$superseding" >"$dir/hr.secret"
is "$(hr "$superseding")" 401 "hr_file_is_ignored_after_rotation"
like "$(cat "$dir/err")" 'webhook_secret_file_superseded.*name=hr' "superseded_file_is_logged"
is "$(grep -c 'webhook_secret_file_superseded.*name=hr' "$dir/err")" 1 "superseded_file_is_logged_once"

# --- the end of the window
sleep_until "$(awk -v t="$hr_v1_end" 'BEGIN { printf "%.3f", t + 1.0 }')"
is "$(hr "$hr_file_secret")" 401 "hr_old_secret_is_refused_within_a_second_after_the_window"
is "$(hr "$hr_new")" 404 "hr_new_secret_still_verifies_after_the_window"
sleep_until "$(awk -v t="$gh_v1_end" 'BEGIN { printf "%.3f", t + 1.0 }')"
is "$(gh "$gh_file_secret")" 401 "github_old_secret_is_refused_after_the_window"
is "$(gh "$gh_operator_secret")" 200 "github_new_secret_still_verifies_after_the_window"

# --- a second rotation demotes the stored active version
hr_newer=$(admin rotate webhook-secret hr --overlap 4s 2>/dev/null)
like "$hr_newer" '^[0-9a-f]{64}$' "second_hr_rotation_prints_a_new_secret"
is "$(pg_psql "SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM secrets WHERE name = 'webhook.hr'
  AND version >= 2")" "2:retiring,3:active" "second_rotation_demotes_the_active_version"
is "$(hr "$hr_new")" 404 "previous_stored_secret_verifies_inside_its_overlap"
is "$(hr "$hr_newer")" 404 "newest_secret_verifies"
sleep_until "$(awk -v t="$(not_after webhook.hr 2)" 'BEGIN { printf "%.3f", t + 1.0 }')"
is "$(hr "$hr_new")" 401 "previous_stored_secret_is_refused_after_its_overlap"

# --- the retire job shreds what expired
if wait_sql "SELECT count(*) FROM secrets WHERE state = 'retired' AND ciphertext IS NULL AND wrapped_dek IS NULL" 3 20; then
	ok "retire_job_shreds_the_envelopes_of_expired_versions"
else
	fail "retire_job_shreds_the_envelopes_of_expired_versions" \
		"$(pg_psql "SELECT name, version, state, ciphertext IS NULL FROM secrets")"
fi
is "$(pg_psql "SELECT count(*) FROM secrets WHERE state = 'active'")" 2 "one_active_version_per_webhook"

# --- audit
is "$(pg_psql "SELECT string_agg(target || ':' || (detail->>'version') || ':' || (detail->>'source'), ',' ORDER BY seq)
  FROM audit_events WHERE action = 'webhook_secret.rotated' AND outcome = 'success'")" \
	"hr:2:generated,github:2:operator,hr:3:generated" "each_rotation_is_audited_with_its_version"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'webhook_secret.retired'")" 3 \
	"each_retirement_is_audited"

# --- stored secrets need the master key: a replica without one fails closed, never back to the file
mkdir -p "$dir/nokey"
unset TESSERAD_PORT
tesserad_conf "$dir/nokey/t.conf" "[hr]
webhook_secret_file = $dir/hr.secret"
"$TESSERAD" -c "$dir/nokey/t.conf" >"$dir/nokey/out" 2>"$dir/nokey/err" &
pid2=$!
on_exit "kill $pid2 2>/dev/null; wait $pid2 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || die "second tesserad not ready: $(tail -20 "$dir/nokey/err")"
is "$(hr "$superseding")" 503 "replica_without_master_key_refuses_rather_than_use_the_superseded_file"
is "$(hr "$hr_newer")" 503 "replica_without_master_key_cannot_verify_stored_secrets"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $boot" \
	"$TESSERAD_URL/admin/v1/webhook-secrets/hr/rotate")
is "$code" 503 "rotation_without_a_master_key_is_refused"

leaks=0
for s in "$hr_file_secret" "$gh_file_secret" "$gh_operator_secret" "$hr_new" "$hr_newer"; do
	grep -qF "$s" "$dir/err" "$dir/out" "$dir/nokey/err" "$dir/nokey/out" && leaks=$((leaks + 1))
	hex=$(printf '%s' "$s" | od -An -tx1 | tr -d ' \n')
	c=$(pg_psql "SELECT count(*) FROM secrets WHERE position(convert_to('$s', 'UTF8') IN ciphertext) > 0
	  OR secrets::text LIKE '%$s%' OR secrets::text LIKE '%$hex%'")
	[[ $c == 0 ]] || leaks=$((leaks + 1))
	c=$(pg_psql "SELECT count(*) FROM audit_events WHERE audit_events::text LIKE '%$s%'")
	[[ $c == 0 ]] || leaks=$((leaks + 1))
done
is "$leaks" 0 "no_secret_in_the_log_in_secrets_rows_or_in_audit_events"
is "$(pg_psql "SELECT count(*) FROM secrets WHERE state <> 'retired' AND octet_length(ciphertext) > 16
  AND master_key_id IS NOT NULL")" 2 "live_versions_are_sealed_envelopes"

# --- both daemons stop cleanly (in the --enable-sanitizers build: no leak of the cached secrets)
for p in "$pid" "$pid2"; do
	kill -TERM "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	echo "$?"
done >"$dir/exits"
is "$(tr '\n' ' ' <"$dir/exits")" "0 0 " "tesserad_stops_cleanly_on_sigterm"
if grep -qE 'Sanitizer|runtime error:' "$dir/err" "$dir/nokey/err"; then
	fail "no_sanitizer_reports_in_the_daemon_logs" "$(grep -hE -A20 'Sanitizer|runtime error:' "$dir/err" "$dir/nokey/err" | head -40)"
else
	ok "no_sanitizer_reports_in_the_daemon_logs"
fi
tap_done
