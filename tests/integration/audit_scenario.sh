#!/usr/bin/env bash
# audit_scenario.sh — issue 9: the auditor's three questions, answered exactly
# by the reports from the evidence tessera keeps:
#   1. "who could reach repository acme/payments last Tuesday?"
#      (users and GitHub permission history as fixtures: team, collaborator,
#      outside-collaborator and organisation grants granted and removed
#      around that moment; one user offboarded just before it)
#   2. "what did user yusuf send to which upstream?"
#      (gateway.request records written through db_audit_append, the path
#      the gateway uses: tests/tools/audit_tool append)
#   3. "when did each of zoe's credentials stop working?"
#      (a real session from `tessera login --github`, access tokens minted
#      through /auth/v1/token, one of them expired, gateway use of another,
#      then `tessera user offboard`)
# plus the subprocessor list and the compliance checklist (text and HTML).
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

TOOL=$TESSERA_BUILDDIR/tests/tools/audit_tool
pg_start
dir=$(mktemp_dir)
export HOME=$dir/home
mkdir -p "$HOME"

ghport=$(free_port)
node "$TESSERA_SRCDIR/tests/fakes/repohost-user/server.mjs" "$ghport" "gh-zoe=zoe-gh" >"$dir/gh.log" 2>&1 &
ghpid=$!
on_exit "kill $ghpid 2>/dev/null"
wait_http "http://127.0.0.1:$ghport/user" 10 || die "fake repo host did not start"

TESSERA_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export TESSERA_MASTER_KEY
tesserad_conf "$dir/t.conf" "[github]
api_url = http://127.0.0.1:$ghport

[audit]
seal_interval = 1s"
"$TESSERAD" -c "$dir/t.conf" >"$dir/d.out" 2>"$dir/d.err" &
dpid=$!
on_exit "kill $dpid 2>/dev/null; wait $dpid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || die "tesserad did not start: $(tail -20 "$dir/d.err")"
boot=$(sed -n 's/^bootstrap token: //p' "$dir/d.out")
export TESSERA_URL=$TESSERAD_URL
unset TESSERA_TOKEN
admin() { TESSERA_TOKEN=$boot "$TESSERA" "$@"; }

# "last Tuesday" at noon UTC, strictly in the past
T=$(date -u -d "last tuesday 12:00" +%Y-%m-%dT%H:%M:%SZ)
diag "last Tuesday noon: $T"

# --- fixtures: people, repositories, the permission history around T ---------------
pg_psql "
INSERT INTO users (user_name, repo_login, created_at) VALUES
  ('alice', 'alice-gh', now() - interval '60 days'), ('bob', 'bob-gh', now() - interval '60 days'),
  ('carol', 'carol-gh', now() - interval '60 days'), ('dave', 'dave-gh', now() - interval '60 days'),
  ('erin', 'erin-gh', now() - interval '60 days'), ('frank', 'frank-gh', now() - interval '60 days'),
  ('yusuf', 'yusuf-gh', now() - interval '60 days'), ('zoe', 'zoe-gh', now() - interval '60 days');
INSERT INTO repositories (owner, name, classifications) VALUES ('acme', 'payments', '{phi}'), ('acme', 'web', '{}');
CREATE TEMP TABLE h (u text, via text, ref text, old repo_permission, new repo_permission, change text, at timestamptz);
INSERT INTO h VALUES
  ('alice', 'team', 'payments-devs', NULL, 'write', 'granted', '$T'::timestamptz - interval '20 days'),
  ('alice', 'org', '', NULL, 'read', 'granted', '$T'::timestamptz - interval '20 days'),
  ('bob', 'direct', '', NULL, 'read', 'granted', '$T'::timestamptz - interval '15 days'),
  ('carol', 'team', 'payments-devs', NULL, 'write', 'granted', '$T'::timestamptz + interval '1 hour'),
  ('dave', 'direct', '', NULL, 'write', 'granted', '$T'::timestamptz - interval '10 days'),
  ('dave', 'direct', '', 'write', NULL, 'removed', '$T'::timestamptz - interval '1 hour'),
  ('erin', 'team', 'payments-devs', NULL, 'write', 'granted', '$T'::timestamptz - interval '20 days'),
  ('frank', 'outside', '', NULL, 'read', 'granted', '$T'::timestamptz - interval '5 days'),
  ('frank', 'outside', '', 'read', 'write', 'raised', '$T'::timestamptz + interval '2 hours');
INSERT INTO repo_permission_history (user_id, repo_id, via, via_ref, old_permission, new_permission, change, changed_at)
  SELECT u.id, r.id, h.via, h.ref, h.old, h.new, h.change, h.at
    FROM h JOIN users u ON u.user_name = h.u, repositories r WHERE r.full_name = 'acme/payments';
-- the current sources follow from the history (erin's went with her offboarding below)
INSERT INTO repo_permission_sources (user_id, repo_id, via, via_ref, permission)
  SELECT u.id, r.id, x.via, x.ref, x.perm::repo_permission
    FROM (VALUES ('alice', 'team', 'payments-devs', 'write'), ('alice', 'org', '', 'read'), ('bob', 'direct', '', 'read'),
                 ('carol', 'team', 'payments-devs', 'write'), ('frank', 'outside', '', 'write')) x(u, via, ref, perm)
    JOIN users u ON u.user_name = x.u, repositories r WHERE r.full_name = 'acme/payments';
INSERT INTO repo_permissions (user_id, repo_id, permission)
  SELECT user_id, repo_id, max(permission) FROM repo_permission_sources GROUP BY 1, 2;
INSERT INTO repo_permissions (user_id, repo_id, permission)
  SELECT u.id, r.id, 'read' FROM users u, repositories r WHERE u.user_name IN ('zoe', 'yusuf') AND r.full_name = 'acme/web';
" >/dev/null || die "fixtures failed"
id() { pg_psql "SELECT id FROM users WHERE user_name = '$1'"; }
repo_web=$(pg_psql "SELECT id FROM repositories WHERE full_name = 'acme/web'")
repo_pay=$(pg_psql "SELECT id FROM repositories WHERE full_name = 'acme/payments'")

# erin was offboarded two hours before T (her receipt is in the audit log with that time)
erin=$(id erin)
erin_off=$(date -u -d "$T - 2 hours" +%Y-%m-%dT%H:%M:%S.000000Z)
"$TOOL" append "$TEST_PG_URL" >/dev/null <<EOF || die "audit_tool append failed"
{"action":"user.offboard","actor":"hr-webhook","user_id":$erin,"target":"erin","at":"$erin_off","detail":{"trigger":"hr","reason":"left","credentials":[]}}
EOF
pg_psql "UPDATE users SET active = false, deactivated_at = '$erin_off', deactivated_by = 'hr' WHERE id = $erin" >/dev/null

# --- 1. who could reach acme/payments last Tuesday ---------------------------------------
rep=$(admin --json report access --repo acme/payments --at "$T")
is "$?" 0 "report_access_at_a_past_time_succeeds"
who=$(printf '%s\n' "$rep" | tr -d '\n ' | grep -o '"could_get_token":true,"permission":"[a-z]*","repo_login":"[a-z-]*","sources":\[[^]]*\],"user":"[a-z]*"' |
	sed 's/.*"permission":"\([a-z]*\)".*"user":"\([a-z]*\)"/\2:\1/' | sort | tr '\n' ' ')
is "$who" "alice:write bob:read frank:read " "last_tuesday_exactly_alice_bob_and_frank_could_get_a_token_for_acme_payments"
is "$(grep -c '"grant": "team payments-devs"' <<<"$rep")" 2 "the_team_grant_is_named_for_alice_and_for_erin"
like "$rep" '"grant": "organisation base permission"' "alices_second_source_is_the_organisation_base_permission"
like "$rep" '"grant": "collaborator"' "bobs_source_is_a_collaborator_grant"
like "$rep" '"grant": "outside collaborator".*"permission": "read"' "franks_source_is_an_outside_collaborator_grant_still_read_then"
like "$(printf '%s\n' "$rep" | tr -d '\n ')" '"active":false,"could_get_token":false,"permission":"write","repo_login":"erin-gh"' \
	"erin_held_write_but_was_offboarded_before_so_could_not_get_a_token"
unlike "$rep" '"user": "carol"' "carol_granted_an_hour_after_is_not_listed"
unlike "$rep" '"user": "dave"' "dave_removed_an_hour_before_is_not_listed"
txt=$(admin report access --repo acme/payments --at "$T")
like "$txt" "alice +write +yes +organisation base permission \(read, since [0-9T:.-]+Z\); team payments-devs \(write" \
	"the_text_report_names_each_grant_and_since_when"
like "$txt" "3 users could get a token \(4 held a permission\)" "the_text_report_counts_who_could_get_a_token"
now_rep=$(admin --json report access --repo acme/payments)
like "$now_rep" '"user": "carol"' "today_carol_can_reach_it"
unlike "$now_rep" '"user": "erin"' "today_erin_cannot"
like "$now_rep" '"grant": "outside collaborator".*"permission": "write"' "today_franks_grant_is_write"
urep=$(admin --json report access --user alice --at "$T")
like "$urep" '"repo": "acme/payments"' "report_access_by_user_lists_the_repository"

# --- 2. what did yusuf send to which upstream ---------------------------------------------
yusuf=$(id yusuf)
alice=$(id alice)
"$TOOL" append "$TEST_PG_URL" >/dev/null <<EOF || die "audit_tool append failed"
{"action":"gateway.request","actor":"yusuf","user_id":$yusuf,"repo_id":$repo_web,"upstream":"azure-east","route":"/openai/v1/chat/completions","model":"gpt-4o","decision":"allow","req_bytes":1000,"resp_bytes":5000,"tokens_in":250,"tokens_out":900,"status":200}
{"action":"gateway.request","actor":"yusuf","user_id":$yusuf,"repo_id":$repo_web,"upstream":"azure-east","route":"/openai/v1/chat/completions","model":"gpt-4o","decision":"allow","req_bytes":2500,"resp_bytes":7000,"tokens_in":600,"tokens_out":1400,"status":200}
{"action":"gateway.request","actor":"yusuf","user_id":$yusuf,"repo_id":$repo_web,"upstream":"onprem-vllm","route":"/openai/v1/chat/completions","model":"llama-3-70b","decision":"allow","req_bytes":700,"resp_bytes":300,"tokens_in":170,"tokens_out":60,"status":200}
{"action":"gateway.request","actor":"yusuf","user_id":$yusuf,"repo_id":$repo_web,"upstream":"azure-east","route":"/openai/v1/chat/completions","model":"gpt-4o","decision":"block","outcome":"denied","rule_hits":{"aws_access_key":1},"req_bytes":0,"status":403}
{"action":"gateway.request","actor":"alice","user_id":$alice,"repo_id":$repo_web,"upstream":"anthropic","route":"/anthropic/v1/messages","model":"claude-sonnet","decision":"allow","req_bytes":999,"resp_bytes":100,"status":200}
EOF
from=$(date -u -d "$T - 1 day" +%Y-%m-%dT%H:%M:%SZ)
to=$(date -u -d "now + 1 hour" +%Y-%m-%dT%H:%M:%SZ)
use=$(admin --json report usage --from "$from" --to "$to" --by user --user yusuf)
is "$?" 0 "report_usage_succeeds"
flat=$(tr -d '\n ' <<<"$use")
like "$flat" '"key":"yusuf".*"requests":4' "yusuf_made_four_requests"
like "$flat" '"blocked":1,"bytes_received":12000,"bytes_sent":3500,"first":"[^"]*","last":"[^"]*","requests":3,"tokens_in":850,"tokens_out":2300,"upstream":"azure-east"' \
	"yusuf_sent_3500_bytes_to_azure_east_in_two_allowed_requests_one_more_blocked"
like "$flat" '"blocked":0,"bytes_received":300,"bytes_sent":700,"first":"[^"]*","last":"[^"]*","requests":1,"tokens_in":170,"tokens_out":60,"upstream":"onprem-vllm"' \
	"yusuf_sent_700_bytes_to_onprem_vllm"
unlike "$flat" '"upstream":"anthropic"' "alices_request_is_not_in_yusufs_report"
like "$flat" '"totals":\{[^}]*"bytes_sent":4200' "in_total_4200_bytes_of_yusufs_left_the_environment"
txt=$(admin report usage --from "$from" --to "$to" --by upstream)
like "$txt" "anthropic +anthropic +1 +0 +999 B" "usage_by_upstream_shows_every_upstream"

# --- 3. when did each of zoe's credentials stop working --------------------------------------
out=$(GITHUB_TOKEN=gh-zoe "$TESSERA" login --github 2>&1)
is "$?" 0 "zoe_logs_in_with_her_repo_host_token"
sess=$(cat "$HOME/.config/tessera/session")
mint() { curl -s -X POST -H "Authorization: Bearer $sess" -d "$1" "$TESSERAD_URL/auth/v1/token"; }
a=$(mint '{"repo":"acme/web"}')
tok_a=$(sed -n 's/.*"token":"\(tsr_[^"]*\)".*/\1/p' <<<"$a")
id_a=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$a")
b=$(mint '{"repo":"acme/web","ttl":60}')
id_b=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$b")
like "$id_a:$id_b" '^[0-9]+:[0-9]+$' "zoe_mints_two_access_tokens_through_auth_v1_token"
pg_psql "UPDATE credentials SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE id = $id_b" >/dev/null
zoe=$(id zoe)
used_at=$(date -u -d "now - 30 seconds" +%Y-%m-%dT%H:%M:%S.123456Z)
"$TOOL" append "$TEST_PG_URL" >/dev/null <<EOF || die "audit_tool append failed"
{"action":"gateway.request","actor":"zoe","user_id":$zoe,"repo_id":$repo_web,"credential_id":$id_a,"upstream":"azure-east","decision":"allow","req_bytes":42,"status":200,"at":"$used_at"}
EOF
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok_a" "$TESSERAD_URL/admin/v1/whoami")
is "$code" 200 "zoes_token_works_before_offboarding"
out=$(admin user offboard zoe --reason "left the company" 2>&1)
is "$?" 0 "zoe_is_offboarded"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok_a" "$TESSERAD_URL/admin/v1/whoami")
is "$code" 401 "zoes_token_stops_working_at_once"
off=$(admin --json report offboarding zoe)
is "$?" 0 "report_offboarding_succeeds"
flat=$(tr -d '\n ' <<<"$off")
like "$flat" '"reason":"leftthecompany".*"trigger":"admin"' "the_receipt_names_the_trigger_and_reason"
sess_id=$(pg_psql "SELECT id FROM credentials WHERE user_id = $zoe AND kind = 'session'")
ts() { pg_psql "SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM credentials WHERE id = $2"; }
rev_a=$(ts revoked_at "$id_a")
rev_s=$(ts revoked_at "$sess_id")
exp_b=$(ts expires_at "$id_b")
cred() { grep -o "{[^{}]*\"id\":$1,[^{}]*}" <<<"$flat" | head -1; }
like "$(cred "$id_a")" "\"stopped_at\":\"$rev_a\"" "token_a_stopped_working_when_the_offboarding_revoked_it"
like "$(cred "$id_a")" '"stopped_by":"revoked"' "token_a_is_reported_revoked"
like "$(cred "$id_a")" "\"last_request_at\":\"${used_at}\"" "token_a_last_worked_through_the_gateway_at_its_last_request"
like "$(cred "$id_a")" '"used_after_stop":0' "token_a_was_never_used_after_it_stopped"
like "$(cred "$sess_id")" "\"stopped_at\":\"$rev_s\".*\"stopped_by\":\"revoked\"|\"stopped_by\":\"revoked\".*\"stopped_at\":\"$rev_s\"" \
	"the_session_stopped_working_when_revoked"
like "$(cred "$id_b")" "\"stopped_at\":\"$exp_b\"" "token_b_stopped_working_when_it_expired_an_hour_before"
like "$(cred "$id_b")" '"stopped_by":"expired"' "token_b_is_reported_expired"
is "$(grep -o '"working_now":true' <<<"$flat" | wc -l)" 0 "none_of_zoes_credentials_works_now"
like "$flat" '"receipts":\[\{[^]]*"credentials":\[' "the_receipt_lists_the_credentials_it_revoked"
for _ in $(seq 1 50); do
	off=$(admin --json report offboarding zoe)
	grep -q '"sealed_by": {' <<<"$off" && break
	sleep 0.2
done
like "$off" '"sealed_by": \{' "the_receipt_is_covered_by_a_seal"
txt=$(admin report offboarding zoe)
like "$txt" "Revocation receipt: audit record seq [0-9]+" "the_text_report_shows_the_receipt"
like "$txt" "$id_b +access +[^ ]+ +$exp_b +expired" "the_text_report_shows_when_the_expired_token_stopped"

# --- subprocessors and compliance ---------------------------------------------------------------
ups=$(admin --json report upstreams)
flat=$(tr -d '\n ' <<<"$ups")
for u in anthropic azure-east onprem-vllm; do
	like "$flat" "\"name\":\"$u\"" "report_upstreams_lists_$u"
done
first=$(pg_psql "SELECT to_char(min(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM audit_events WHERE upstream = 'onprem-vllm'")
like "$flat" "\"first_use\":\"$first\"" "report_upstreams_gives_the_exact_first_use"
admin report compliance --format html --output "$dir/compliance.html"
is "$?" 0 "the_compliance_report_has_no_failing_control"
html=$(cat "$dir/compliance.html")
like "$html" '^<!DOCTYPE html>.*Security review checklist.*</html>' "the_compliance_report_is_one_html_page"
unlike "$html" '<(script|link|img)[^>]*(src|href)=' "the_html_page_loads_nothing_from_elsewhere"
like "$html" 'AT-1.*tamper-evident.*pass' "the_html_page_shows_the_audit_chain_control_passing"
txt=$(admin report compliance)
like "$txt" "\[pass\] AC-2 +Departed people hold no working credential" "compliance_says_no_departed_person_holds_a_working_credential"
like "$txt" "\[warn\] AC-4" "compliance_warns_while_the_bootstrap_token_lives"

tap_done
