#!/usr/bin/env bash
# github_webhooks.sh — GitHub webhook deliveries to a serving tesserad,
# signed like GitHub's by the fake (tests/fakes/github), against a real
# PostgreSQL. The org here has no base permission, so a removal can take a
# repository away:
#   * tesserad's scheduled job syncs the org at start; `tessera sync run
#     github` (the admin API's request to the job sync.github) runs it again;
#   * a forged or missing X-Hub-Signature-256 is refused with 401, audited,
#     and nothing changes;
#   * a membership removal revokes the user's access token for the repository
#     they lost, at once (revoked_at set, /admin/v1/whoami answers 401);
#   * a team losing a repository, a collaborator removed, a member leaving the
#     org and a deleted repository revoke the affected tokens; tokens whose
#     permission survives through another source stay valid;
#   * team_add (an addition) is applied through the queue within seconds;
#   * archiving a repository is applied from the payload;
#   * a redelivery (same X-GitHub-Delivery) is not applied twice;
#   * a delivery that changed permissions is a sync_runs row of mode webhook;
#   * `tessera report access --unmatched` lists the logins that match no user.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"
. "$TESSERA_SRCDIR/tests/fakes/github/lib.sh"

command -v jq >/dev/null || die "jq not found (Debian package jq)"
pg_start
GH_DIR=$(mktemp_dir gh)
jq '.orgs[0].default_repository_permission = "none"' "$TESSERA_SRCDIR/tests/fakes/github/acme.json" >"$GH_DIR/seed.json"
gh_fake_start "$GH_DIR/seed.json"
secret=whsec-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$secret" >"$GH_DIR/hook.secret"
chmod 600 "$GH_DIR/hook.secret"
conf=$GH_DIR/t.conf
gh_conf "$conf" "webhook_secret_file = $GH_DIR/hook.secret
sync_interval = 1h"
"$TESSERAD" -c "$conf" migrate 2>"$GH_DIR/migrate.err" || die "migrate failed: $(cat "$GH_DIR/migrate.err")"
pg_psql "INSERT INTO users (user_name, repo_login) VALUES ('olivia', 'olivia'), ('alice', 'alice'),
  ('bob', 'bob'), ('carol', 'carol'), ('dave', 'dave'), ('frank', 'frank')" >/dev/null

"$TESSERAD" -c "$conf" >"$GH_DIR/d.out" 2>"$GH_DIR/d.err" &
dpid=$!
on_exit "kill $dpid 2>/dev/null; wait $dpid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || die "tesserad not ready: $(tail -20 "$GH_DIR/d.err")"
boot=$(sed -n 's/^bootstrap token: //p' "$GH_DIR/d.out")
gh_ctl POST /_fake/hook "{\"url\":\"$TESSERAD_URL/hooks/github\",\"secret\":\"$secret\"}" >/dev/null

# wait_sql SQL WANT SECS: poll until SQL prints WANT
wait_sql() {
	local deadline=$((SECONDS + $3)) got
	while :; do
		got=$(pg_psql "$1" 2>/dev/null)
		[[ $got == "$2" ]] && return 0
		((SECONDS >= deadline)) && return 1
		sleep 0.2
	done
}
if wait_sql "SELECT count(*) > 0 FROM sync_runs WHERE kind = 'github' AND status = 'ok'" t 40; then
	ok "scheduled_job_syncs_the_org_at_start"
else
	fail "scheduled_job_syncs_the_org_at_start" "$(pg_psql "SELECT * FROM sync_runs")" "$(tail -20 "$GH_DIR/d.err")"
fi
out=$(TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$boot timeout 60 "$TESSERA" sync run github 2>&1)
is "$?" 0 "tessera_sync_run_github_succeeds"
like "$out" 'github sync run [0-9]+ \(incremental, cli:admin\) ok' "tessera_sync_run_github_reports_the_run"
is "$(pg_psql "SELECT not_modified = api_calls FROM sync_runs WHERE started_by = 'cli:admin' ORDER BY id DESC LIMIT 1")" t \
	"requested_run_after_the_scheduled_one_is_all_304s"
perm() { pg_psql "SELECT coalesce((SELECT p.permission::text FROM repo_permissions p JOIN users u ON u.id = p.user_id
                    JOIN repositories r ON r.id = p.repo_id WHERE u.user_name = '$1' AND r.name = '$2'), 'none')"; }
is "$(perm frank api)" write "frank_writes_api_through_team_platform"

# access tokens: NAME REPO -> plaintext in TOK_NAME_REPO
mint() {
	local t
	t=tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | head -c 43)
	pg_psql "WITH c AS (INSERT INTO credentials (kind, token_hash, user_id, expires_at)
	           SELECT 'access', sha256('$t'::bytea), id, now() + interval '15 minutes' FROM users WHERE user_name = '$1'
	           RETURNING id)
	         INSERT INTO credential_repos (credential_id, repo_id) SELECT c.id, r.id FROM c, repositories r WHERE r.name = '$2'" >/dev/null
	printf -v "TOK_${1}_$2" '%s' "$t"
}
for pair in frank:api bob:api alice:api dave:api carol:web bob:infra; do mint "${pair%%:*}" "${pair##*:}"; done
whoami() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$TESSERAD_URL/admin/v1/whoami"; }
revoked() { pg_psql "SELECT coalesce(revoked_reason, 'live') || '/' || coalesce(revoked_by, '-') FROM credentials WHERE token_hash = sha256('$1'::bytea)"; }
is "$(whoami "$TOK_frank_api")" 200 "access_token_works_before_any_webhook"
queue_idle() { wait_sql "SELECT count(*) FROM github_sync_queue" 0 20; }
hist=$(gh_history_count)
audits() { pg_psql "SELECT count(*) FROM audit_events WHERE action = 'hook.github' AND outcome = '$1'"; }

# ---- forged and missing signatures
payload='{"action":"removed","scope":"team","member":{"login":"frank","id":1},"team":{"id":1,"slug":"platform"},"organization":{"login":"acme","id":9001}}'
out=$(gh_ctl POST /_fake/deliver "{\"event\":\"membership\",\"payload\":$payload,\"secret\":\"not-the-secret\"}")
is "$(jq -r .status <<<"$out")" 401 "forged_signature_is_refused_with_401"
is "$(jq -r .body.error.code <<<"$out")" unauthenticated "forged_signature_answer_says_unauthenticated"
out=$(gh_ctl POST /_fake/deliver "{\"event\":\"membership\",\"payload\":$payload,\"signature\":null}")
is "$(jq -r .status <<<"$out")" 401 "missing_signature_is_refused_with_401"
out=$(gh_ctl POST /_fake/deliver "{\"event\":\"membership\",\"payload\":$payload,\"signature\":\"sha256=$(printf '%064d' 0)\"}")
is "$(jq -r .status <<<"$out")" 401 "wrong_signature_of_the_right_shape_is_refused"
is "$(audits denied)" 3 "refused_deliveries_are_audited"
like "$(pg_psql "SELECT string_agg(detail->>'reason', ',') FROM audit_events WHERE action = 'hook.github' AND outcome = 'denied'")" \
	'bad signature.*missing X-Hub-Signature-256|missing X-Hub-Signature-256.*bad signature' "refusal_audit_says_why"
is "$(gh_history_count)" "$hist" "forged_delivery_changes_no_permission"
is "$(revoked "$TOK_frank_api")" "live/-" "forged_delivery_revokes_nothing"
is "$(pg_psql "SELECT count(*) FROM webhook_deliveries WHERE source = 'github'")" 0 "forged_delivery_is_not_recorded_as_delivered"
if grep -q "$secret" "$GH_DIR/d.err"; then fail "webhook_secret_is_never_logged"; else ok "webhook_secret_is_never_logged"; fi

# ---- membership removal: frank leaves platform and with it api
out=$(gh_ctl POST /_fake/mutate '{"op":"team_remove_member","org":"acme","team":"platform","login":"frank"}')
is "$(jq -r .delivery.status <<<"$out")" 202 "membership_removal_is_accepted"
is "$(jq -r .delivery.body.tokens_revoked <<<"$out")" 1 "membership_removal_reports_one_revoked_token"
is "$(revoked "$TOK_frank_api")" "permission lost/github-sync" "membership_removal_revokes_the_access_token_at_once"
is "$(whoami "$TOK_frank_api")" 401 "revoked_token_is_refused_by_whoami"
is "$(perm frank api)" none "membership_removal_removes_the_permission"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'token.revoke' AND credential_id =
                (SELECT id FROM credentials WHERE token_hash = sha256('$TOK_frank_api'::bytea))")" 1 "revocation_is_audited"
is "$(pg_psql "SELECT s.mode || '/' || s.status || '/' || s.started_by FROM sync_runs s
                JOIN repo_permission_history h ON h.sync_run_id = s.id JOIN users u ON u.id = h.user_id
               WHERE u.user_name = 'frank' AND h.change = 'removed' ORDER BY s.id DESC LIMIT 1")" "webhook/ok/webhook:membership" \
	"webhook_change_is_a_sync_run_of_mode_webhook"
queue_idle || fail "queue_drains_after_membership_removal"
is "$(perm frank api)" none "queued_re_read_confirms_the_removal"

# ---- a redelivery of the same delivery is not applied again
delivery=$(jq -r .delivery.delivery <<<"$out")
hist=$(gh_history_count)
runs=$(pg_psql "SELECT count(*) FROM sync_runs")
out=$(gh_ctl POST /_fake/deliver "{\"event\":\"membership\",\"delivery\":\"$delivery\",\"payload\":$payload}")
is "$(jq -r .status <<<"$out")" 200 "redelivery_is_answered_200"
is "$(jq -r .body.status <<<"$out")" duplicate "redelivery_is_recognised_as_duplicate"
is "$(gh_history_count)/$(pg_psql "SELECT count(*) FROM sync_runs")" "$hist/$runs" "redelivery_applies_nothing"

# ---- a team loses a repository: bob (api only through platform) loses it, alice keeps it through frontend
out=$(gh_ctl POST /_fake/mutate '{"op":"team_remove_repo","org":"acme","team":"platform","repo":"api"}')
is "$(jq -r .delivery.status <<<"$out")" 202 "team_removed_from_repository_is_accepted"
is "$(revoked "$TOK_bob_api")" "permission lost/github-sync" "team_losing_the_repo_revokes_the_members_token"
is "$(whoami "$TOK_bob_api")" 401 "bob_api_token_is_refused"
is "$(revoked "$TOK_alice_api")" "live/-" "token_kept_when_another_team_still_grants_the_repo"
is "$(whoami "$TOK_alice_api")" 200 "alice_api_token_still_works"
is "$(perm alice api)" read "alice_keeps_read_through_frontend"
queue_idle || fail "queue_drains_after_team_change"

# ---- team_add (an addition) reaches tessera through the queue within seconds
t0=$SECONDS
gh_ctl POST /_fake/mutate '{"op":"team_add_repo","org":"acme","team":"frontend","repo":"legacy","permission":"write"}' >/dev/null
if wait_sql "SELECT coalesce((SELECT p.permission::text FROM repo_permissions p JOIN users u ON u.id = p.user_id
               JOIN repositories r ON r.id = p.repo_id WHERE u.user_name = 'alice' AND r.name = 'legacy'), 'none')" write 15; then
	ok "team_add_grants_the_repository_within_seconds ($((SECONDS - t0)) s)"
else
	fail "team_add_grants_the_repository_within_seconds" "$(tail -20 "$GH_DIR/d.err")"
fi
like "$(pg_psql "SELECT string_agg(mode || ':' || started_by, ',') FROM sync_runs WHERE mode = 'incremental'")" 'webhook:team_add' \
	"queued_re_read_is_a_recorded_run"

# ---- an outside collaborator removed
gh_ctl POST /_fake/mutate '{"op":"collaborator_remove","org":"acme","repo":"api","login":"dave"}' >/dev/null
is "$(revoked "$TOK_dave_api")" "permission lost/github-sync" "collaborator_removal_revokes_the_token"
is "$(whoami "$TOK_dave_api")" 401 "dave_token_is_refused"

# ---- a member leaves the organisation
gh_ctl POST /_fake/mutate '{"op":"org_remove_member","org":"acme","login":"carol"}' >/dev/null
is "$(revoked "$TOK_carol_web")" "permission lost/github-sync" "member_leaving_the_org_loses_their_tokens"
is "$(pg_psql "SELECT count(*) FROM repo_permissions p JOIN users u ON u.id = p.user_id WHERE u.user_name = 'carol'")" 0 \
	"member_leaving_the_org_keeps_no_permission"

# ---- archiving a repository is applied from the payload
gh_ctl POST /_fake/mutate '{"op":"repo_archive","org":"acme","repo":"web","archived":true}' >/dev/null
is "$(pg_psql "SELECT archived FROM repositories WHERE name = 'web'")" t "archived_event_marks_the_repository_archived"

# ---- a deleted repository takes its permissions and tokens with it
gh_ctl POST /_fake/mutate '{"op":"repo_delete","org":"acme","repo":"infra"}' >/dev/null
is "$(revoked "$TOK_bob_infra")" "permission lost/github-sync" "repository_deletion_revokes_its_tokens"
is "$(pg_psql "SELECT removed_at IS NOT NULL FROM repositories WHERE name = 'infra'")" t "deleted_repository_is_kept_with_removed_at"
is "$(pg_psql "SELECT count(*) FROM repo_permissions WHERE repo_id = (SELECT id FROM repositories WHERE name = 'infra')")" 0 \
	"deleted_repository_has_no_permissions"

# ---- a well-signed but malformed delivery is refused and changes nothing
hist=$(gh_history_count)
out=$(gh_ctl POST /_fake/deliver '{"event":"member","payload":{"action":"removed","member":{"id":"x"},"repository":7}}')
is "$(jq -r .status <<<"$out")" 400 "malformed_payload_is_refused_with_400"
is "$(gh_history_count)" "$hist" "malformed_payload_changes_nothing"
queue_idle || fail "queue_drains_at_the_end"
is "$(pg_psql "SELECT count(*) FROM sync_runs WHERE kind = 'github' AND status <> 'ok'")" 0 "every_run_and_delivery_succeeded"
is "$(pg_psql "SELECT count(*) FROM (SELECT user_id, repo_id, max(permission) AS m FROM repo_permission_sources
                GROUP BY 1, 2) s FULL JOIN repo_permissions p USING (user_id, repo_id)
                WHERE s.m IS DISTINCT FROM p.permission")" 0 "repo_permissions_stay_equal_to_the_max_over_sources"

# ---- the unmatched report
out=$(TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$boot "$TESSERA" report access --unmatched 2>&1)
is "$?" 0 "report_access_unmatched_exits_0"
like "$out" 'erin' "unmatched_report_lists_a_member_without_a_user"
like "$out" 'xavier.*\(outside\)' "unmatched_report_lists_an_outside_collaborator"
unlike "$out" 'alice' "unmatched_report_leaves_out_matched_users"
json=$(TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$boot "$TESSERA" --json report access --unmatched 2>&1)
is "$(jq -r '[.unmatched[].login] | join(",")' <<<"$json")" "erin,xavier" "unmatched_report_json_lists_exactly_the_unmatched"
is "$(jq -r '.unmatched[] | select(.login == "erin") | .orgs[0].org + ":" + .orgs[0].role' <<<"$json")" "acme:member" \
	"unmatched_report_says_the_org_role"
TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$boot "$TESSERA" report access >/dev/null 2>&1
is "$?" 2 "report_access_without_unmatched_is_a_usage_error"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOK_alice_api" "$TESSERAD_URL/admin/v1/report/access/unmatched")
is "$code" 403 "unmatched_report_needs_admin_or_security"

tap_done
