#!/usr/bin/env bash
# gateway_model_policy.sh — issue 7: [policy] model_access decides which
# roles and groups may use which models. A member of an allowed group (here
# through a nested group) gets through; a user outside it gets 403 in the
# route's dialect naming the rule, nothing reaches the upstream, and the
# refusal is audited as denied. Roles, "none", unmatched models (allowed),
# /openai/v1/models listing only usable models, and a membership removed in
# Postgres taking effect within the 5 s cache.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

gw_setup "[policy]
model_access = gpt-4o:ML-Research, claude-*:admin, llama-*:none, text-embedding*:any"

# alice is in team-x, which is a member of ml-research (nested); bob is in no group
pg_psql "INSERT INTO users (user_name, repo_login) VALUES ('bob', 'bob-gh');
INSERT INTO repo_permissions (user_id, repo_id, permission)
  SELECT u.id, r.id, 'write' FROM users u, repositories r WHERE u.user_name = 'bob' AND r.name = 'api';
INSERT INTO groups (name, source) VALUES ('ml-research', 'ldap'), ('team-x', 'ldap');
INSERT INTO group_members (group_id, member_group_id)
  SELECT g.id, x.id FROM groups g, groups x WHERE g.name = 'ml-research' AND x.name = 'team-x';
INSERT INTO group_members (group_id, member_user_id)
  SELECT g.id, u.id FROM groups g, users u WHERE g.name = 'team-x' AND u.user_name = 'alice';" >/dev/null ||
	die "fixtures"
BOB_SESSION=tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | head -c 43)
pg_psql "INSERT INTO credentials (kind, token_hash, user_id, auth_method, expires_at)
  SELECT 'session', sha256('$BOB_SESSION'::bytea), id, 'local', now() + interval '2 hours'
    FROM users WHERE user_name = 'bob'" >/dev/null || die "bob's session"
BOB=$(curl -s -X POST -H "Authorization: Bearer $BOB_SESSION" -d '{"repo":"acme/api","ttl":3600}' "$GW_URL/auth/v1/token" |
	sed -n 's/.*"token":"\(tsr_[^"]*\)".*/\1/p')
[[ $BOB == tsr_* ]] || die "could not mint bob's token"

H=$GW_DIR/h
post() { # post PATH TOKEN BODY -> "BODY CODE"
	curl -s -D "$H" -w ' %{http_code}' --max-time 20 -H "Authorization: Bearer $2" --data-binary "$3" "$GW_URL$1"
}
last_audit() { # last_audit USER -> decision|status|outcome|model|reason of the user's latest gateway record
	pg_psql "SELECT e.decision || '|' || e.status || '|' || e.outcome || '|' || e.model || '|' || coalesce(e.detail->>'reason', '')
		FROM audit_events e JOIN users u ON u.id = e.user_id
		WHERE e.action = 'gateway.request' AND u.user_name = '$1' ORDER BY e.seq DESC LIMIT 1"
}
chat() { printf '{"model":"%s","messages":[{"role":"user","content":"hi"}]}' "$1"; }

# ---- a group (nested) admits; outside it, 403 naming the rule ----------------------
out=$(post /openai/v1/chat/completions "$GW_TOKEN" "$(chat gpt-4o)")
like "$out" ' 200$' "member_of_an_allowed_nested_group_gets_through"
seen=$(gw_fake_count)
out=$(post /openai/v1/chat/completions "$BOB" "$(chat gpt-4o)")
like "$out" ' 403$' "user_outside_the_allowed_group_gets_403"
like "$out" '"message":"policy model_access: model gpt-4o is limited to ML-Research \(entry '"'"'gpt-4o:ML-Research'"'"'\)"' \
	"the_refusal_names_the_rule"
like "$out" '"type":"permission_error"' "the_refusal_is_in_the_openai_dialect"
is "$(gw_fake_count)" "$seen" "nothing_reaches_the_upstream_for_the_refused_request"
is "$(last_audit bob)" "deny|403|denied|gpt-4o|policy model_access: model gpt-4o is limited to ML-Research (entry 'gpt-4o:ML-Research')" \
	"the_refusal_is_audited_as_denied_with_the_rule"

# ---- roles, none, any, unmatched ------------------------------------------------
out=$(post /anthropic/v1/messages "$GW_TOKEN" '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"x"}]}')
like "$out" '^\{"type":"error","error":\{"type":"permission_error","message":"policy model_access: model claude-test is limited to admin.* 403$' \
	"a_role_rule_refuses_in_the_anthropic_dialect"
out=$(post /openai/v1/chat/completions "$GW_TOKEN" "$(chat llama-3)")
like "$out" 'may not be used by anyone.* 403$' "a_none_rule_refuses_everyone"
is "$(gw_fake_count)" "$seen" "refused_requests_of_every_dialect_never_reach_the_upstream"
out=$(post /openai/v1/embeddings "$BOB" '{"model":"text-embedding-3-small","input":"x"}')
like "$out" ' 200$' "an_any_rule_admits_everyone"
out=$(post /openai/v1/chat/completions "$BOB" "$(chat gpt-4o-mini)")
like "$out" ' 200$' "a_model_no_rule_matches_is_allowed"

# ---- /openai/v1/models lists only what the user may use ---------------------------
models() { curl -s -H "Authorization: Bearer $1" "$GW_URL/openai/v1/models" | jq -r '[.data[].id] | sort | join(",")'; }
is "$(models "$BOB")" "fake-drip,fake-slow,gpt-4o-mini,text-embedding-3-small" "models_list_leaves_out_what_the_user_may_not_use"
is "$(models "$GW_TOKEN")" "fake-drip,fake-slow,gpt-4o,gpt-4o-mini,text-embedding-3-small" \
	"models_list_includes_what_group_membership_allows"

# ---- a role granted admits to its models (as db_roles_sync does: grant, then notify) ------
pg_psql "INSERT INTO role_grants (user_id, role, via) SELECT id, 'admin', 'local' FROM users WHERE user_name = 'bob';
SELECT pg_notify('tessera_revoke', 'user:' || id) FROM users WHERE user_name = 'bob'" >/dev/null
sleep 0.5
out=$(post /anthropic/v1/messages "$BOB" '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"x"}]}')
like "$out" ' 200$' "a_granted_role_admits_to_its_models"

# ---- leaving the group takes effect within the 5 s membership cache --------------------
pg_psql "DELETE FROM group_members WHERE member_user_id = (SELECT id FROM users WHERE user_name = 'alice')" >/dev/null
sleep 5.5
out=$(post /openai/v1/chat/completions "$GW_TOKEN" "$(chat gpt-4o)")
like "$out" 'policy model_access: model gpt-4o is limited to ML-Research.* 403$' "leaving_the_group_takes_effect_within_seconds"
is "$(last_audit alice)" "deny|403|denied|gpt-4o|policy model_access: model gpt-4o is limited to ML-Research (entry 'gpt-4o:ML-Research')" \
	"the_later_refusal_is_audited_too"

# ---- a malformed entry stops tesserad at start, naming the key ---------------------------
mkdir -p "$GW_DIR/bad"
sed -e "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" -e "s|^state_dir = .*|state_dir = $GW_DIR/bad/state|" \
	-e "s|^spool_dir = .*|spool_dir = $GW_DIR/bad/spool|" -e "s|^model_access = .*|model_access = gpt-4o, o1*:admin|" \
	"$GW_DIR/tesserad.conf" >"$GW_DIR/bad/tesserad.conf"
timeout 20 "$TESSERAD" -c "$GW_DIR/bad/tesserad.conf" >/dev/null 2>"$GW_DIR/bad/err"
rc=$?
((rc != 0 && rc != 124)) && ok "a_malformed_model_access_entry_stops_tesserad" ||
	fail "a_malformed_model_access_entry_stops_tesserad" "exit $rc"
like "$(cat "$GW_DIR/bad/err")" "\\[policy\\] model_access: expected MODEL_GLOB:role\\|group\\|any\\|none, got 'gpt-4o'" \
	"the_startup_error_names_the_key_and_the_entry"
tap_done
