#!/usr/bin/env bash
# github_sync.sh — repository permissions synced from the fake GitHub into a
# real PostgreSQL (tests/fakes/github/acme.json):
#   * effective permissions of an org with a base permission, an owner,
#     nested teams (platform > platform-sre), a user in two teams with
#     different permissions, a direct collaborator, an outside collaborator,
#     an archived repository and topics mapped to classifications; each
#     source kept, repo_permissions equal to their maximum, one history row
#     per source; unmatched logins get nothing; the login join ignores case;
#   * a second run answers from ETags: the fake sees If-None-Match on every
#     request and answers 304, and nothing is written (no history row);
#   * a "full" run sends no If-None-Match and still changes nothing;
#   * changes on GitHub become raised/lowered/removed history rows; a user
#     losing a repository loses their access token for it at once;
#   * a run that cannot read GitHub fails, is recorded as failed, and
#     leaves the last good state.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"
. "$TESSERA_SRCDIR/tests/fakes/github/lib.sh"

command -v jq >/dev/null || die "jq not found (Debian package jq)"
pg_start
GH_DIR=$(mktemp_dir gh)
gh_fake_start "$TESSERA_SRCDIR/tests/fakes/github/acme.json"
conf=$GH_DIR/t.conf
gh_conf "$conf"
"$TESSERAD" -c "$conf" migrate 2>"$GH_DIR/migrate.err" || die "migrate failed: $(cat "$GH_DIR/migrate.err")"

# tessera users; erin (member) and xavier (outside collaborator) have no user
pg_psql "INSERT INTO users (user_name, repo_login) VALUES ('olivia', 'Olivia'), ('alice', 'alice'),
  ('bob', 'bob'), ('carol', 'carol'), ('dave', 'dave'), ('frank', 'frank')" >/dev/null

# ---- first run
if gh_sync "$conf"; then ok "first_sync_run_succeeds"; else fail "first_sync_run_succeeds" "$GH_RUN" "$(tail -20 "$GH_DIR/sync.err")"; fi
is "$(pg_psql "SELECT status || ' ' || mode FROM sync_runs WHERE id = $(gh_field run_id)")" "ok incremental" \
	"first_run_is_recorded_ok_in_sync_runs"

want="alice|api|write
alice|infra|read
alice|legacy|read
alice|web|write
bob|api|write
bob|infra|admin
bob|legacy|read
bob|web|read
carol|api|read
carol|infra|read
carol|legacy|read
carol|web|maintain
dave|api|triage
frank|api|write
frank|infra|read
frank|legacy|read
frank|web|read
olivia|api|admin
olivia|infra|admin
olivia|legacy|admin
olivia|web|admin"
is "$(gh_perms)" "$want" "effective_permissions_of_the_seeded_org"

src() { # src USER REPO: "via/ref/perm" per source, sorted
	pg_psql "SELECT s.via || '/' || s.via_ref || '/' || s.permission FROM repo_permission_sources s
	           JOIN users u ON u.id = s.user_id JOIN repositories r ON r.id = s.repo_id
	          WHERE u.user_name = '$1' AND r.name = '$2' ORDER BY 1" | paste -sd' '
}
is "$(src alice api)" "org//read team/frontend/read team/platform/write" \
	"user_in_two_teams_keeps_both_sources_and_gets_the_higher"
is "$(src bob api)" "org//read team/platform/write" "child_team_member_inherits_the_parent_team_grant"
is "$(src bob infra)" "org//read team/platform-sre/admin" "child_team_grant_applies_to_its_members"
is "$(src dave api)" "outside//triage" "outside_collaborator_gets_only_their_direct_grant"
is "$(src carol web)" "direct//maintain org//read" "direct_collaborator_grant_is_a_source_of_its_own"
is "$(src olivia legacy)" "org//read org/owner/admin" "org_owner_is_admin_everywhere"
is "$(pg_psql "SELECT count(*) FROM repo_permissions p JOIN users u ON u.id = p.user_id
                WHERE u.user_name = 'dave' AND p.repo_id IN (SELECT id FROM repositories WHERE name <> 'api')")" 0 \
	"outside_collaborator_gets_no_base_permission"
is "$(pg_psql "SELECT count(*) FROM (SELECT user_id, repo_id, max(permission) AS m FROM repo_permission_sources
                GROUP BY 1, 2) s FULL JOIN repo_permissions p USING (user_id, repo_id)
                WHERE s.m IS DISTINCT FROM p.permission")" 0 "repo_permissions_equal_the_max_over_sources"
is "$(pg_psql "SELECT count(*) FROM repo_permission_history WHERE change = 'granted'")" \
	"$(pg_psql "SELECT count(*) FROM repo_permission_sources")" "first_run_writes_one_granted_history_row_per_source"
is "$(pg_psql "SELECT name || ':' || visibility || ':' || archived || ':' || array_to_string(classifications, ',')
                 FROM repositories ORDER BY name" | paste -sd' ')" \
	"api:private:false:phi infra:internal:false:pci legacy:private:true:phi web:public:false:" \
	"repository_visibility_archived_and_topic_classifications"
is "$(pg_psql "SELECT count(*) FROM repo_accounts WHERE lower(login) IN ('erin', 'xavier')")" 2 \
	"unmatched_logins_are_recorded_as_accounts"
is "$(pg_psql "SELECT count(*) FROM repo_permission_sources s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)")" 0 \
	"no_permission_rows_without_a_user"

# ---- second run: nothing changed on GitHub
snapshot() { pg_psql "SELECT md5(string_agg(user_id || ':' || repo_id || ':' || permission, ',' ORDER BY user_id, repo_id)) FROM repo_permissions"; }
before=$(snapshot)
hist=$(gh_history_count)
gh_calls_reset
if gh_sync "$conf"; then ok "second_sync_run_succeeds"; else fail "second_sync_run_succeeds" "$(tail -20 "$GH_DIR/sync.err")"; fi
total=$(gh_count total)
is "$(gh_count not_modified)" "$total" "second_run_every_request_is_answered_304_by_the_fake"
is "$(gh_ctl GET /_fake/calls | jq '[.calls[] | select(.inm)] | length')" "$total" "second_run_sends_if_none_match_on_every_request"
if ((total > 0)); then ok "second_run_made_api_calls ($total)"; else fail "second_run_made_api_calls"; fi
is "$(gh_field not_modified)" "$total" "run_reports_its_304_count"
is "$(gh_history_count)" "$hist" "second_run_adds_no_history_rows"
is "$(snapshot)" "$before" "second_run_changes_no_permission"
is "$(pg_psql "SELECT not_modified = api_calls AND api_calls > 0 FROM sync_runs WHERE id = $(gh_field run_id)")" t \
	"sync_runs_records_calls_and_304s"

# ---- a full run ignores the cache but still changes nothing
gh_calls_reset
gh_sync "$conf" full || fail "full_run_succeeds" "$(tail -20 "$GH_DIR/sync.err")"
is "$(gh_count not_modified)" 0 "full_run_sends_no_conditional_requests"
is "$(pg_psql "SELECT mode FROM sync_runs WHERE id = $(gh_field run_id)")" full "full_run_is_recorded_as_full"
is "$(gh_history_count)" "$hist" "full_run_without_changes_adds_no_history_rows"

# ---- changes on GitHub (no webhook configured): the next run picks them up
# frank holds an access token for api; alice leaves frontend (api stays write
# through platform), frank leaves platform (api drops to read, base), dave
# loses his outside-collaborator grant on api (he loses api entirely).
tok_hash=$(printf 'tsr_frank_api' | sha256sum | cut -d' ' -f1)
dave_hash=$(printf 'tsr_dave_api' | sha256sum | cut -d' ' -f1)
pg_psql "INSERT INTO credentials (kind, token_hash, user_id, expires_at)
           SELECT 'access', decode(h, 'hex'), u.id, now() + interval '15 minutes'
             FROM (VALUES ('frank', '$tok_hash'), ('dave', '$dave_hash')) v(n, h) JOIN users u ON u.user_name = v.n;
         INSERT INTO credential_repos (credential_id, repo_id)
           SELECT c.id, r.id FROM credentials c, repositories r WHERE c.kind = 'access' AND r.name = 'api'" >/dev/null
gh_ctl POST /_fake/mutate '{"op":"team_remove_member","org":"acme","team":"frontend","login":"alice"}' >/dev/null
gh_ctl POST /_fake/mutate '{"op":"team_remove_member","org":"acme","team":"platform","login":"frank"}' >/dev/null
gh_ctl POST /_fake/mutate '{"op":"collaborator_remove","org":"acme","repo":"api","login":"dave"}' >/dev/null
gh_ctl POST /_fake/mutate '{"op":"collaborator_add","org":"acme","repo":"web","login":"bob","permission":"admin"}' >/dev/null
gh_calls_reset
gh_sync "$conf" || fail "run_after_changes_succeeds" "$(tail -20 "$GH_DIR/sync.err")"
nm=$(gh_count not_modified)
total=$(gh_count total)
if ((nm > 0 && nm < total)); then ok "run_after_changes_mixes_304s_and_fresh_pages ($nm of $total)"; else fail "run_after_changes_mixes_304s_and_fresh_pages" "$nm of $total"; fi
chg() { pg_psql "SELECT h.change || ':' || coalesce(h.old_permission::text, '-') || '>' || coalesce(h.new_permission::text, '-')
                   FROM repo_permission_history h JOIN users u ON u.id = h.user_id JOIN repositories r ON r.id = h.repo_id
                  WHERE u.user_name = '$1' AND r.name = '$2' AND h.via = '$3' AND h.via_ref = '$4'
                  ORDER BY h.id DESC LIMIT 1"; }
is "$(chg alice api team frontend)" "removed:read>-" "leaving_a_team_writes_a_removed_history_row"
is "$(pg_psql "SELECT p.permission FROM repo_permissions p JOIN users u ON u.id = p.user_id JOIN repositories r ON r.id = p.repo_id
                WHERE u.user_name = 'alice' AND r.name = 'api'")" write "other_team_still_grants_write"
is "$(chg frank api team platform)" "removed:write>-" "frank_leaving_platform_is_recorded"
is "$(pg_psql "SELECT p.permission FROM repo_permissions p JOIN users u ON u.id = p.user_id JOIN repositories r ON r.id = p.repo_id
                WHERE u.user_name = 'frank' AND r.name = 'api'")" read "effective_permission_drops_to_the_base_permission"
is "$(chg bob web direct '')" "granted:->admin" "new_direct_grant_is_recorded"
is "$(pg_psql "SELECT p.permission FROM repo_permissions p JOIN users u ON u.id = p.user_id JOIN repositories r ON r.id = p.repo_id
                WHERE u.user_name = 'bob' AND r.name = 'web'")" admin "direct_grant_raises_the_effective_permission"
is "$(pg_psql "SELECT count(*) FROM repo_permissions p JOIN users u ON u.id = p.user_id WHERE u.user_name = 'dave'")" 0 \
	"outside_collaborator_removed_loses_the_repository"
is "$(pg_psql "SELECT revoked_reason || '/' || revoked_by FROM credentials WHERE token_hash = decode('$dave_hash', 'hex')")" \
	"permission lost/github-sync" "access_token_of_a_lost_repository_is_revoked_by_the_sync"
is "$(pg_psql "SELECT revoked_at IS NULL FROM credentials WHERE token_hash = decode('$tok_hash', 'hex')")" t \
	"access_token_is_kept_while_read_remains"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'token.revoke' AND detail->>'reason' = 'permission lost'")" 1 \
	"token_revocation_is_audited"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'sync.github' AND outcome = 'success'")" 4 \
	"every_successful_run_is_audited"

# ---- a run that cannot read GitHub fails and keeps the last good state
before=$(snapshot)
hist=$(gh_history_count)
printf 'ghp_wrong\n' >"$GH_DIR/token"
if gh_sync "$conf"; then fail "run_with_a_bad_token_fails" "$GH_RUN"; else ok "run_with_a_bad_token_fails"; fi
is "$(pg_psql "SELECT status FROM sync_runs WHERE id = (SELECT max(id) FROM sync_runs)")" failed "failed_run_is_recorded_as_failed"
like "$(pg_psql "SELECT error FROM sync_runs WHERE id = (SELECT max(id) FROM sync_runs)")" 'reading organisation acme' \
	"failed_run_records_why"
is "$(snapshot)" "$before" "failed_run_leaves_the_last_good_permissions"
is "$(gh_history_count)" "$hist" "failed_run_writes_no_history"
if grep -q 'ghp_wrong\|ghp_sync_token' "$GH_DIR/sync.err"; then fail "github_token_is_never_logged"; else ok "github_token_is_never_logged"; fi
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'sync.github' AND outcome = 'failure'")" 1 "failed_run_is_audited"
printf '%s\n' "$GH_TOKEN" >"$GH_DIR/token"

# ---- and the next good run works again
gh_sync "$conf" || fail "recovery_run_after_failure_succeeds" "$(tail -20 "$GH_DIR/sync.err")"
is "$(gh_field status)" ok "recovery_run_after_failure_succeeds"

tap_done
