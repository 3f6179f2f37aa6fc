#!/usr/bin/env bash
# hooks_hr.sh — the HR offboarding webhook: a correctly signed request
# offboards the user through the one path; a forged, stale, unsigned or
# replayed request is refused, audited, and changes nothing.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

command -v openssl >/dev/null || { fail "openssl CLI available (Debian package openssl)"; tap_done; }
pg_start
dir=$(mktemp_dir)
secret=hr-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$secret" >"$dir/hr.secret"
chmod 600 "$dir/hr.secret"
tesserad_conf "$dir/t.conf" "[hr]
webhook_secret_file = $dir/hr.secret"
"$TESSERAD" -c "$dir/t.conf" >"$dir/out" 2>"$dir/err" &
pid=$!
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || fail "tesserad ready" "$(tail "$dir/err")"

pg_psql "INSERT INTO users (user_name) VALUES ('dave'), ('erin');
INSERT INTO user_emails (user_id, source, value) SELECT id, 'local', 'erin@example.com' FROM users WHERE user_name = 'erin';
INSERT INTO credentials (kind, token_hash, user_id, expires_at)
  SELECT 'session', sha256(('s-' || user_name)::bytea), id, now() + interval '1 hour' FROM users
   WHERE user_name IN ('dave', 'erin');" >/dev/null

post() { # post BODY TIMESTAMP SECRET -> "body status"
	local body=$1 ts=$2 key=$3 sig
	sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$key" -r | cut -d' ' -f1)
	curl -s -w ' %{http_code}' -X POST -H "X-Tessera-Timestamp: $ts" -H "X-Tessera-Signature: sha256=$sig" \
		-d "$body" "$TESSERAD_URL/hooks/hr"
}
active() { pg_psql "SELECT active FROM users WHERE user_name = '$1'"; }
now=$(date +%s)

out=$(post '{"user":"dave","reason":"terminated"}' "$now" "wrong-secret")
like "$out" '401$' "forged_signature_is_refused_with_401"
is "$(active dave)" t "forged_request_changes_nothing"
out=$(post '{"user":"dave","reason":"terminated"}' "$((now - 600))" "$secret")
like "$out" '401$' "stale_timestamp_is_refused"
like "$out" 'replay window' "stale_refusal_names_the_replay_window"
out=$(curl -s -w ' %{http_code}' -X POST -d '{"user":"dave"}' "$TESSERAD_URL/hooks/hr")
like "$out" '401$' "unsigned_request_is_refused"
is "$(active dave)" t "refused_requests_change_nothing"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'hook.hr' AND outcome = 'denied'")" 3 \
	"each_refusal_is_audited"

body='{"user":"dave","reason":"terminated by HR"}'
out=$(post "$body" "$now" "$secret")
like "$out" '200$' "signed_request_is_accepted"
is "$(active dave)" f "signed_request_offboards_the_user"
is "$(pg_psql "SELECT deactivated_by FROM users WHERE user_name = 'dave'")" hr "deactivation_names_the_hr_trigger"
is "$(pg_psql "SELECT count(*) FROM credentials c JOIN users u ON u.id = c.user_id
  WHERE u.user_name = 'dave' AND c.revoked_at IS NULL")" 0 "hr_offboarding_revokes_the_credentials"
is "$(pg_psql "SELECT actor FROM audit_events WHERE action = 'user.offboard' AND target = 'dave'")" hr-webhook \
	"receipt_names_the_hr_webhook_as_actor"
out=$(post "$body" "$now" "$secret")
like "$out" '409$' "replayed_delivery_is_refused"

out=$(post '{"email":"ERIN@example.com","reason":"contract ended"}' "$now" "$secret")
like "$out" '200$' "user_can_be_named_by_email"
is "$(active erin)" f "offboarding_by_email_reaches_the_right_user"
out=$(post '{"user":"nobody"}' "$((now + 1))" "$secret")
like "$out" '404$' "unknown_user_is_404"
if grep -qF "$secret" "$dir/err"; then fail "secret_never_logged"; else ok "secret_never_logged"; fi
tap_done
