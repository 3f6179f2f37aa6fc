#!/usr/bin/env bash
# github_ratelimit.sh — the GitHub sync honours rate limits by waiting and
# completing, never by failing or hammering; and authenticates as a GitHub
# App (RS256 JWT -> installation token, renewed before it expires):
#   * X-RateLimit-Remaining reaching 0 makes the client wait for
#     X-RateLimit-Reset before its next request: no request is refused;
#   * a 403 "rate limit exceeded" (remaining 0) is waited out once, then the
#     same request is repeated;
#   * secondary limits (429 and 403 with Retry-After) are waited out for
#     Retry-After seconds before the one retry;
#   * the run reports the time it waited;
#   * App auth: one JWT-authenticated installation lookup and token request,
#     then every API call with the installation token; a token about to
#     expire is renewed before use; a wrong App key fails the run cleanly.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"
. "$TESSERA_SRCDIR/tests/fakes/github/lib.sh"

command -v jq >/dev/null || die "jq not found (Debian package jq)"
command -v openssl >/dev/null || die "openssl not found (Debian package openssl)"
pg_start
GH_DIR=$(mktemp_dir gh)

# a seed with the App: its public key and an installation on acme
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$GH_DIR/app.pem" 2>/dev/null || die "openssl genpkey"
openssl pkey -in "$GH_DIR/app.pem" -pubout -out "$GH_DIR/app.pub" 2>/dev/null || die "openssl pkey"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$GH_DIR/other.pem" 2>/dev/null
chmod 600 "$GH_DIR/app.pem" "$GH_DIR/other.pem"
jq --arg pub "$GH_DIR/app.pub" '. + {app: {id: 4242, public_key_file: $pub, installations: {acme: 77}, token_ttl_s: 303}}' \
	"$TESSERA_SRCDIR/tests/fakes/github/acme.json" >"$GH_DIR/seed.json"
gh_fake_start "$GH_DIR/seed.json"
conf=$GH_DIR/t.conf
gh_conf "$conf"
"$TESSERAD" -c "$conf" migrate 2>"$GH_DIR/migrate.err" || die "migrate failed: $(cat "$GH_DIR/migrate.err")"
pg_psql "INSERT INTO users (user_name, repo_login) VALUES ('alice', 'alice'), ('bob', 'bob')" >/dev/null

calls() { gh_ctl GET /_fake/calls | jq -c '.calls'; }
# largest gap between two consecutive requests, in ms
max_gap() { calls | jq '[. as $c | range(1; length) | $c[.].t - $c[. - 1].t] | max // 0'; }

# ---- primary limit exhausted mid-run: wait for the reset, refuse nothing
gh_ctl POST /_fake/ratelimit '{"limit":1000,"remaining":4,"reset_in_s":3,"window_s":3600}' >/dev/null
gh_calls_reset
if gh_sync "$conf" full; then ok "run_with_an_exhausted_rate_limit_completes"; else fail "run_with_an_exhausted_rate_limit_completes" "$GH_RUN" "$(tail "$GH_DIR/sync.err")"; fi
is "$(gh_count limited)" 0 "client_waits_before_the_limit_instead_of_being_refused"
gap=$(max_gap)
if ((gap >= 1500)); then ok "no_request_is_sent_while_the_limit_is_exhausted (gap ${gap} ms)"; else fail "no_request_is_sent_while_the_limit_is_exhausted" "largest gap ${gap} ms"; fi
w=$(gh_field wait_ms)
if ((w >= 1500)); then ok "run_reports_its_wait_time (${w} ms)"; else fail "run_reports_its_wait_time" "$GH_RUN"; fi
is "$(pg_psql "SELECT wait_ms >= 1500 AND status = 'ok' FROM sync_runs WHERE id = $(gh_field run_id)")" t "sync_runs_records_the_wait"
if grep -q 'event=github_rate_limit_wait reason=exhausted' "$GH_DIR/sync.err"; then ok "the_wait_is_logged"; else fail "the_wait_is_logged" "$(cat "$GH_DIR/sync.err")"; fi
perms=$(gh_perms)
like "$perms" 'alice\|api\|write' "run_after_waiting_stored_the_permissions"

# ---- refused with 403 and Remaining 0 (the client could not know): wait, then retry once
gh_ctl POST /_fake/ratelimit '{"limit":1000,"remaining":0,"reset_in_s":2,"window_s":3600}' >/dev/null
gh_calls_reset
if gh_sync "$conf" full; then ok "run_refused_by_an_exhausted_limit_completes"; else fail "run_refused_by_an_exhausted_limit_completes" "$(tail "$GH_DIR/sync.err")"; fi
is "$(gh_count limited)" 1 "exactly_one_request_is_refused_before_the_reset"
first_ok=$(calls | jq '[.[] | select(.status == 200)][0].t - .[0].t')
if ((first_ok >= 1000)); then ok "the_refused_request_is_repeated_only_after_the_reset (${first_ok} ms)"; else fail "the_refused_request_is_repeated_only_after_the_reset" "${first_ok} ms"; fi

# ---- secondary limits with Retry-After: 429 and 403
for st in 429 403; do
	gh_ctl POST /_fake/ratelimit "{\"limit\":5000,\"remaining\":5000,\"secondary\":{\"every\":6,\"status\":$st,\"retry_after\":1}}" >/dev/null
	gh_calls_reset
	if gh_sync "$conf" full; then ok "run_under_secondary_limit_${st}_completes"; else fail "run_under_secondary_limit_${st}_completes" "$(tail "$GH_DIR/sync.err")"; fi
	lim=$(gh_count limited)
	if ((lim >= 2)); then ok "secondary_limit_${st}_was_hit ($lim times)"; else fail "secondary_limit_${st}_was_hit" "$lim"; fi
	# after each refusal the next request comes no sooner than Retry-After
	early=$(calls | jq "[. as \$c | range(1; length) | select(\$c[. - 1].status == $st) | \$c[.].t - \$c[. - 1].t | select(. < 900)] | length")
	is "$early" 0 "secondary_limit_${st}_retry_waits_for_retry_after"
	is "$(gh_field retries)" "$lim" "secondary_limit_${st}_each_refusal_is_retried_once"
done
gh_ctl POST /_fake/ratelimit '{"limit":5000,"remaining":5000}' >/dev/null
is "$(gh_perms)" "$perms" "rate_limited_runs_end_with_the_same_permissions"

# ---- GitHub App authentication
appconf=$GH_DIR/app.conf
unset TESSERAD_PORT
tesserad_conf "$appconf" "[github]
api_url = $GH_URL
orgs = acme
app_id = 4242
app_key_file = $GH_DIR/app.pem
topic_classifications = hipaa:phi,pci:pci"
gh_calls_reset
if gh_sync "$appconf" full; then ok "run_as_a_github_app_succeeds"; else fail "run_as_a_github_app_succeeds" "$GH_RUN" "$(tail "$GH_DIR/sync.err")"; fi
c=$(calls)
is "$(jq -r '[.[] | select(.auth == "app-jwt") | .method + " " + .path] | join(", ")' <<<"$c")" \
	"GET /orgs/acme/installation, POST /app/installations/77/access_tokens" "app_uses_its_jwt_only_to_get_an_installation_token"
is "$(jq '[.[] | select(.auth != "app-jwt" and .auth != "installation")] | length' <<<"$c")" 0 \
	"every_api_call_uses_the_installation_token"
is "$(gh_field tokens_minted)" 1 "one_installation_token_per_run"
is "$(gh_perms)" "$perms" "app_run_sees_the_same_permissions"
if grep -q 'ghs_' "$GH_DIR/sync.err"; then fail "installation_token_is_never_logged"; else ok "installation_token_is_never_logged"; fi

# tokens live 303 s here and are renewed when under 300 s remain: a run that
# waits 4 s on the rate limit must renew before its next call, and no call
# may be refused for an expired token
gh_ctl POST /_fake/ratelimit '{"limit":1000,"remaining":5,"reset_in_s":4,"window_s":3600}' >/dev/null
gh_calls_reset
if gh_sync "$appconf" full; then ok "long_app_run_succeeds"; else fail "long_app_run_succeeds" "$(tail "$GH_DIR/sync.err")"; fi
is "$(gh_field tokens_minted)" 2 "installation_token_is_renewed_before_it_expires"
is "$(calls | jq '[.[] | select(.status == 401)] | length')" 0 "no_call_is_refused_for_an_expired_token"
gh_ctl POST /_fake/ratelimit '{"limit":5000,"remaining":5000}' >/dev/null

# a key the App does not have: refused by GitHub, the run fails cleanly
sed -i "s#^app_key_file = .*#app_key_file = $GH_DIR/other.pem#" "$appconf"
if gh_sync "$appconf"; then fail "wrong_app_key_fails_the_run" "$GH_RUN"; else ok "wrong_app_key_fails_the_run"; fi
is "$(pg_psql "SELECT status FROM sync_runs WHERE id = (SELECT max(id) FROM sync_runs)")" failed "wrong_app_key_run_is_recorded_failed"
is "$(gh_perms)" "$perms" "wrong_app_key_run_leaves_permissions_alone"
if grep -q 'BEGIN\|PRIVATE' "$GH_DIR/sync.err"; then fail "app_key_is_never_logged"; else ok "app_key_is_never_logged"; fi

tap_done
