#!/usr/bin/env bash
# credentials.sh — issue 6: sessions from a repo-host token, scoped access
# tokens, refusals with reasons, logout, throttling, offboarding on two
# replicas (also with the notification connection killed), and no token in
# the clear in the database or the logs.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

pg_start
dir=$(mktemp_dir)
export HOME=$dir/home
mkdir -p "$HOME"

# fake repo host: GET /user for three tokens
ghport=$(free_port)
node "$TESSERA_SRCDIR/tests/fakes/repohost-user/server.mjs" "$ghport" \
	"gh-alice=Alice-GH,gh-bob=bob-gh,gh-nobody=stranger" >"$dir/gh.log" 2>&1 &
ghpid=$!
on_exit "kill $ghpid 2>/dev/null"
wait_http "http://127.0.0.1:$ghport/user" 10 || fail "fake repo host started"

start_tesserad() { # start_tesserad NAME CONF: background, wait ready; sets PID_NAME
	local name=$1 conf=$2 pid
	"$TESSERAD" -c "$conf" >"$dir/$name.out" 2>"$dir/$name.err" &
	pid=$!
	printf -v "PID_$name" '%s' "$pid"
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	local url
	url=$(sed -n 's/^listen = /http:\/\//p' "$conf")
	wait_http "$url/readyz" 30 || { fail "$name ready" "$(tail -20 "$dir/$name.err")"; tap_done; }
}

tesserad_conf "$dir/a.conf" "[github]
api_url = http://127.0.0.1:$ghport"
A=$TESSERAD_URL
start_tesserad A "$dir/a.conf"
boot=$(sed -n 's/^bootstrap token: //p' "$dir/A.out")
like "$boot" '^tsr_' "first start printed the bootstrap token"

unset TESSERAD_PORT
mkdir -p "$dir/b"
tesserad_conf "$dir/b/b.conf" "[github]
api_url = http://127.0.0.1:$ghport"
B=$TESSERAD_URL
start_tesserad B "$dir/b/b.conf"

# fixtures until the GitHub sync provides them: two users, two repositories, one permission
pg_psql "INSERT INTO users (user_name, repo_login) VALUES ('alice', 'alice-gh'), ('bob', 'bob-gh');
INSERT INTO repositories (owner, name) VALUES ('acme', 'api'), ('acme', 'secret');
INSERT INTO repo_permissions (user_id, repo_id, permission)
  SELECT u.id, r.id, 'write' FROM users u, repositories r WHERE u.user_name = 'alice' AND r.name = 'api';
INSERT INTO repo_permissions (user_id, repo_id, permission)
  SELECT u.id, r.id, 'read' FROM users u, repositories r WHERE u.user_name = 'bob' AND r.name = 'api';" >/dev/null

export TESSERA_URL=$A
unset TESSERA_TOKEN

# --- login ---------------------------------------------------------------------
out=$(GITHUB_TOKEN=gh-alice "$TESSERA" login --github 2>&1)
is "$?" 0 "login_github_with_a_valid_token_succeeds"
like "$out" "logged in as alice" "login_maps_the_repo_host_login_to_the_user_case_insensitively"
sess_file=$HOME/.config/tessera/session
is "$(stat -c %a "$sess_file" 2>/dev/null)" 600 "session_file_is_mode_0600"
is "$(stat -c %a "$HOME/.config/tessera" 2>/dev/null)" 700 "config_dir_is_mode_0700"
out=$("$TESSERA" whoami 2>&1)
like "$out" "^alice" "whoami_with_the_session_names_the_user"

out=$(HOME=$dir/other GITHUB_TOKEN=gh-wrong "$TESSERA" login --github 2>&1)
is "$?" 3 "login_with_a_bad_repo_host_token_exits_3"
like "$out" "refused the token" "bad_repo_host_token_is_explained"
out=$(HOME=$dir/other GITHUB_TOKEN=gh-nobody "$TESSERA" login --github 2>&1)
is "$?" 3 "login_of_an_unmatched_repo_host_account_exits_3"
like "$out" "not matched" "unmatched_login_is_explained"

# --- access tokens -------------------------------------------------------------
tok=$("$TESSERA" token --repo acme/api 2>"$dir/tok.err")
is "$?" 0 "token_for_a_permitted_repo_is_minted"
like "$tok" '^tsr_[A-Za-z0-9_-]{43}$' "access_token_has_the_tsr_shape"
tok2=$("$TESSERA" token --repo acme/api)
is "$tok2" "$tok" "second_token_call_reuses_the_cached_token"
is "$(stat -c %a "$HOME/.config/tessera/tokens/acme__api" 2>/dev/null)" 600 "token_cache_file_is_mode_0600"
mkdir -p "$dir/checkout" && git -C "$dir/checkout" init -q && git -C "$dir/checkout" remote add origin git@github.com:acme/api.git
tok3=$(cd "$dir/checkout" && "$TESSERA" token)
is "$tok3" "$tok" "token_without_repo_takes_the_repo_from_the_git_remote"
git -C "$dir/checkout" remote set-url origin https://github.com/acme/secret.git
out=$(cd "$dir/checkout" && "$TESSERA" token 2>&1)
like "$out" "no permission on acme/secret" "an_https_remote_is_understood_too"
envout=$("$TESSERA" token --repo acme/api --format env)
like "$envout" "OPENAI_BASE_URL=$A/openai/v1" "format_env_names_the_openai_base_url"
like "$envout" "ANTHROPIC_AUTH_TOKEN=$tok" "format_env_gives_the_anthropic_token"

out=$("$TESSERA" token --repo acme/secret 2>&1)
is "$?" 3 "token_for_a_repo_without_permission_exits_3"
like "$out" "no permission on acme/secret" "refusal_names_the_missing_permission"
out=$("$TESSERA" token --repo acme/nope 2>&1)
is "$?" 3 "token_for_an_unknown_repo_exits_3"
out=$("$TESSERA" token --repo acme/api --ttl 9h 2>&1)
is "$?" 2 "ttl_over_max_ttl_is_a_usage_error"
like "$out" "max_ttl" "ttl_refusal_names_max_ttl"

who=$(TESSERA_TOKEN=$tok "$TESSERA" --json whoami)
like "$who" '"kind": "access"' "access_token_authenticates_as_its_user"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" \
	-d '{"repo":"acme/api"}' "$A/auth/v1/token")
is "$code" 403 "an_access_token_cannot_mint_tokens"

# expired: mint a one-minute token and age it in the database before first use
short=$(curl -s -X POST -H "Authorization: Bearer $(cat "$sess_file")" -d '{"repo":"acme/api","ttl":60}' \
	"$A/auth/v1/token" | sed -n 's/.*"token":"\(tsr_[^"]*\)".*/\1/p')
pg_psql "UPDATE credentials SET created_at = now() - interval '2 minutes', expires_at = now() - interval '1 second'
  WHERE token_hash = sha256('$short'::bytea)" >/dev/null
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $short" "$A/admin/v1/whoami")
like "$out" '401$' "expired_token_is_refused"
like "$out" 'credential expired' "expired_refusal_says_expired"

# the token exists in the database only as its SHA-256
is "$(pg_psql "SELECT count(*) FROM credentials WHERE token_hash = sha256('$tok'::bytea)")" 1 \
	"database_holds_the_token_hash"
pg_psql "CHECKPOINT" >/dev/null
if grep -rqsF "${tok#tsr_}" "$TEST_PG_DIR" "$dir"/*.err "$dir"/*.out; then
	fail "token_never_stored_or_logged_in_the_clear" "$(grep -rlsF "${tok#tsr_}" "$TEST_PG_DIR" "$dir" | head)"
else
	ok "token_never_stored_or_logged_in_the_clear"
fi

# --- roles: a developer session may not use admin routes -----------------------
sess=$(cat "$sess_file")
while read -r method path role; do
	[[ $role == - || $role == any || $role == own || $role == *developer* ]] && continue
	url=$A${path//\*/x}
	out=$(curl -s -w ' %{http_code}' -X "$method" -H "Authorization: Bearer $sess" "$url")
	if [[ $out =~ 403$ && $out == *"needs role"* ]]; then
		ok "route $method $path refuses a developer with 403 naming the role"
	else
		fail "route $method $path refuses a developer with 403 naming the role" "got: $out"
	fi
done < <("$TESSERAD" --list-routes)
is "$(pg_psql "SELECT count(*) > 0 FROM audit_events WHERE action = 'authz.denied' AND actor = 'alice'")" t \
	"role_denials_are_audited"

# --- two replicas: offboarding on A is honoured by B at once ------------------
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "$B/admin/v1/whoami")
is "$code" 200 "replica_b_accepts_the_token_and_caches_it"
TESSERA_TOKEN=$boot "$TESSERA" user offboard alice --reason "left the company" >"$dir/off.out" 2>&1
is "$?" 0 "user_offboard_succeeds"
like "$(cat "$dir/off.out")" "offboarded alice: [0-9]+ credentials revoked" "offboard_reports_the_revocations"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "$B/admin/v1/whoami")
is "$code" 401 "offboarding_via_a_makes_the_token_fail_on_b_on_the_next_request"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $sess" "$B/admin/v1/whoami")
is "$code" 401 "offboarding_revokes_the_session_too"
out=$(TESSERA_TOKEN=$boot "$TESSERA" user offboard alice --reason "again" 2>&1)
is "$?" 0 "offboarding_twice_is_not_an_error"
like "$out" "already offboarded" "second_offboard_says_nothing_was_left"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'user.offboard' AND target = 'alice'")" 1 \
	"offboarding_twice_produces_one_receipt"
receipt=$(pg_psql "SELECT detail FROM audit_events WHERE action = 'user.offboard' AND target = 'alice'")
like "$receipt" '"kind": "access"' "receipt_lists_the_access_token"
like "$receipt" '"last_used_at": "20' "receipt_says_when_the_token_was_last_used"
out=$(GITHUB_TOKEN=gh-alice HOME=$dir/other "$TESSERA" login --github 2>&1)
is "$?" 3 "an_offboarded_user_cannot_log_in"
TESSERA_TOKEN=$boot "$TESSERA" user reinstate alice >/dev/null 2>&1
out=$(GITHUB_TOKEN=gh-alice HOME=$dir/other "$TESSERA" login --github 2>&1)
is "$?" 0 "a_reinstated_user_can_log_in_again"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "$A/admin/v1/whoami")
is "$code" 401 "reinstatement_never_revives_old_tokens"

# --- kill B's notification connection: a revocation still applies within 1 s --
bsess=$(curl -s -X POST -d '{"token":"gh-bob"}' "$A/auth/v1/login/github" | sed -n 's/.*"token":"\(tsr_[^"]*\)".*/\1/p')
btok=$(curl -s -X POST -H "Authorization: Bearer $bsess" -d '{"repo":"acme/api"}' "$A/auth/v1/token")
bid=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$btok")
btok=$(sed -n 's/.*"token":"\(tsr_[^"]*\)".*/\1/p' <<<"$btok")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $btok" "$B/admin/v1/whoami")
is "$code" 200 "replica_b_caches_bobs_token"
lpid=$(curl -s "$B/metrics" | sed -n 's/^tessera_notify_backend_pid \([0-9]*\)$/\1/p')
like "$lpid" '^[1-9][0-9]*$' "replica_b_exposes_its_listener_backend_pid"
pg_psql "SELECT pg_terminate_backend($lpid)" >/dev/null
TESSERA_TOKEN=$boot "$TESSERA" tokens revoke "$bid" >/dev/null 2>&1
is "$?" 0 "tokens_revoke_by_id_succeeds"
t0=$(date +%s%N)
refused=no
while (( $(date +%s%N) - t0 < 1000000000 )); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $btok" "$B/admin/v1/whoami")
	if [[ $code == 401 ]]; then refused=yes; break; fi
	sleep 0.05
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
is "$refused" yes "with_the_notification_connection_killed_revocation_applies_on_b_within_1s"
diag "refused after ${ms} ms"

# --- logout ----------------------------------------------------------------------
btok2=$(curl -s -X POST -H "Authorization: Bearer $bsess" -d '{"repo":"acme/api"}' "$A/auth/v1/token" |
	sed -n 's/.*"token":"\(tsr_[^"]*\)".*/\1/p')
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $bsess" "$A/auth/v1/logout")
is "$code" 200 "logout_succeeds"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $btok2" "$B/admin/v1/whoami")
is "$code" 401 "logout_revokes_the_tokens_minted_from_the_session"

# --- throttling: failed logins from one address answer 429 -----------------------
for _ in $(seq 1 20); do
	curl -s -o /dev/null -X POST -d '{"token":"gh-wrong"}' "$A/auth/v1/login/github"
done
hdr=$(curl -s -D - -o /dev/null -X POST -d '{"token":"gh-alice"}' "$A/auth/v1/login/github")
like "$hdr" "HTTP/1.1 429" "too_many_failed_logins_from_one_address_answer_429"
like "$hdr" "Retry-After: [0-9]+" "throttled_login_says_when_to_retry"
is "$(pg_psql "SELECT count(*) >= 20 FROM audit_events WHERE action = 'auth.login' AND outcome = 'failure'")" t \
	"failed_logins_are_audited"

tap_done
