#!/usr/bin/env bash
# scim_auth_discovery.sh — who may speak SCIM and what the server says about
# itself, against a real PostgreSQL and tesserad:
#   - the bearer token: missing, wrong scheme, unknown, revoked -> 401 in the
#     SCIM error schema with WWW-Authenticate; failures audited; the token text
#     never stored, logged or audited (only its SHA-256);
#   - [scim] token_file imported once at start; `tessera rotate scim-token`
#     prints a new token once on stdout, the old one keeps working for
#     [scim] token_overlap and is refused after it, a restart does not bring
#     the rotated-out file token back; only admins may rotate;
#   - [scim] enabled = false: nothing is served (404 with a valid token);
#   - ServiceProviderConfig, ResourceTypes, Schemas (lists and single).
set -uo pipefail
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/scim.sh"

scim_start "token_overlap = 3s"
FILE_TOKEN=$SCIM_TOKEN

# ---------------------------------------------------------------- bearer token
sreq_as "" GET /Users
is "$code" 401 "no_token_is_401"
is "$(j '.schemas[0]')/$(j .status)" "$SCIM_URN_ERROR/401" "no_token_401_uses_scim_error_schema"
like "$(hdr WWW-Authenticate)" '^Bearer' "401_carries_www_authenticate_bearer"
like "$(hdr Content-Type)" '^application/scim\+json' "401_is_scim_json"
sreq_as "" GET /Users "" -H "Authorization: Basic $(printf 'a:b' | base64)"
is "$code" 401 "basic_auth_is_401"
WRONG=wrong-token-$RANDOM$RANDOM-abcdefghijklmnop
sreq_as "$WRONG" GET /Users
is "$code" 401 "unknown_token_is_401"
sreq_as "$WRONG" POST /Users '{"userName":"mallory"}'
is "$code" 401 "unknown_token_cannot_create"
is "$(pg_psql "select count(*) from users where user_name = 'mallory'")" 0 "refused_create_writes_nothing"
sreq GET /Users
is "$code" 200 "file_token_is_accepted"
like "$(pg_psql "select count(*) from audit_events where action = 'scim.auth_failed' and outcome = 'failure'")" '^[4-9]$|^[1-9][0-9]+$' \
	"failed_scim_authentications_are_audited"
is "$(pg_psql "select count(*) from scim_tokens where label = 'token_file'")" 1 "token_file_is_imported_at_start"
is "$(pg_psql "select encode(token_hash, 'hex') from scim_tokens where label = 'token_file'")" \
	"$(printf '%s' "$FILE_TOKEN" | sha256sum | cut -d' ' -f1)" "only_the_sha256_of_the_token_is_stored"
if grep -qF "$WRONG" "$DLOG" || grep -qF "$FILE_TOKEN" "$DLOG"; then
	fail "scim_tokens_never_reach_the_log"
else
	ok "scim_tokens_never_reach_the_log"
fi
if pg_psql "select coalesce(detail::text, '') || coalesce(target, '') from audit_events" | grep -qF -e "$WRONG" -e "$FILE_TOKEN"; then
	fail "scim_tokens_never_reach_the_audit_log"
else
	ok "scim_tokens_never_reach_the_audit_log"
fi

# ---------------------------------------------------------------- rotation
[[ -n $BOOT ]] || die "no bootstrap token printed"
out=$(TESSERA_URL=$URL TESSERA_TOKEN=$BOOT HOME=$SCIM_DIR "$TESSERA" rotate scim-token --label okta 2>"$SCIM_DIR/rot.err")
rc=$?
is "$rc" 0 "tessera_rotate_scim_token_exits_0"
NEW=$(printf '%s\n' "$out" | head -n 1)
is "$(printf '%s\n' "$out" | wc -l | tr -d ' ')" 1 "rotate_prints_exactly_one_line_on_stdout"
like "$NEW" '^tsr_[A-Za-z0-9_-]{43}$' "rotate_prints_a_256_bit_token"
like "$(cat "$SCIM_DIR/rot.err")" 'previous SCIM tokens keep working until' "rotate_says_when_the_old_token_stops"
sreq_as "$NEW" GET /Users
is "$code" 200 "rotated_token_is_accepted"
sreq GET /Users
is "$code" 200 "old_token_still_works_during_the_overlap"
is "$(pg_psql "select count(*) from scim_tokens where label = 'token_file' and expires_at is not null")" 1 \
	"rotation_sets_expiry_on_the_previous_token"
is "$(pg_psql "select count(*) from audit_events where action = 'scim.token_rotated' and actor = 'admin'")" 1 \
	"rotation_is_audited_with_the_admin_as_actor"
if pg_psql "select detail::text from audit_events where action = 'scim.token_rotated'" | grep -qF "${NEW#tsr_}"; then
	fail "rotated_token_is_not_in_the_audit_event"
else
	ok "rotated_token_is_not_in_the_audit_event"
fi
sreq_as "$NEW" POST /Users '{"userName":"rotated-user"}'
is "$(pg_psql "select actor from audit_events where action = 'scim.user.create' order by seq desc limit 1")" scim:okta \
	"the_token_label_names_the_idp_in_audit_events"
sleep 4
sreq GET /Users
is "$code" 401 "old_token_is_refused_after_the_overlap"
sreq_as "$NEW" GET /Users
is "$code" 200 "new_token_still_accepted_after_the_overlap"
TESSERA_URL=$URL HOME=$SCIM_DIR TESSERA_TOKEN= "$TESSERA" rotate scim-token >/dev/null 2>&1
is "$?" 3 "rotate_without_credential_exits_3"
# a user without the admin role
pg_psql "insert into users (user_name) values ('dev1')" >/dev/null
DEV_TOK=tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)
pg_psql "insert into credentials (kind, token_hash, user_id, auth_method, expires_at)
         select 'session', decode('$(printf '%s' "$DEV_TOK" | sha256sum | cut -d' ' -f1)', 'hex'), id, 'ldap', now() + interval '1 hour'
           from users where user_name = 'dev1'" >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $DEV_TOK" "$URL/admin/v1/scim/token")
is "$code" 403 "rotate_needs_the_admin_role"
# revocation (a token row of its own, so the rotation overlap above is not disturbed)
REV=revocable-token-$RANDOM$RANDOM-abcdefghij
pg_psql "insert into scim_tokens (label, token_hash) values ('revtest', decode('$(printf '%s' "$REV" | sha256sum | cut -d' ' -f1)', 'hex'))" >/dev/null
sreq_as "$REV" GET /Users
is "$code" 200 "inserted_token_is_accepted"
pg_psql "update scim_tokens set revoked_at = now() where label = 'revtest'" >/dev/null
sreq_as "$REV" GET /Users
is "$code" 401 "revoked_token_is_refused"

# restart: the rotated-out file token must not come back
scim_stop
"$TESSERAD" -c "$DCONF" >"$SCIM_DIR/tesserad2.out" 2>"$SCIM_DIR/tesserad2.err" &
DPID=$!
wait_http "$URL/readyz" 30 || die "tesserad did not restart"
sleep 0.5
sreq GET /Users
is "$code" 401 "restart_does_not_resurrect_a_rotated_out_file_token"
sreq_as "$NEW" GET /Users
is "$code" 200 "rotated_token_survives_a_restart"

# ---------------------------------------------------------------- discovery
sreq_as "$NEW" GET /ServiceProviderConfig
is "$code/$(j '.schemas[0]')" "200/urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig" "service_provider_config"
is "$(j .patch.supported)/$(j .bulk.supported)/$(j .filter.supported)/$(j .etag.supported)/$(j .sort.supported)/$(j .changePassword.supported)" \
	true/false/true/true/true/false "service_provider_config_states_the_features"
is "$(j '.authenticationSchemes[0].type')" oauthbearertoken "service_provider_config_auth_scheme_is_bearer"
is "$(j .filter.maxResults)" 1000 "service_provider_config_max_results"
sreq_as "$NEW" GET /ResourceTypes
is "$(j .totalResults)/$(j '[.Resources[].id]|join(",")')" 2/User,Group "resource_types_list_user_and_group"
sreq_as "$NEW" GET /ResourceTypes/User
is "$(j .endpoint)/$(j .schema)/$(j '.schemaExtensions[0].schema')" "/Users/$SCIM_URN_USER/$SCIM_URN_ENT" \
	"resource_type_user_names_its_schema_and_extension"
sreq_as "$NEW" GET /ResourceTypes/Nope
is "$code" 404 "unknown_resource_type_is_404"
sreq_as "$NEW" GET /Schemas
is "$(j .totalResults)" 3 "schemas_lists_user_enterprise_group"
sreq_as "$NEW" GET "/Schemas/$SCIM_URN_USER"
is "$(j '.attributes[] | select(.name == "userName") | "\(.uniqueness)/\(.caseExact)/\(.required)"')" server/false/true \
	"user_schema_user_name_is_unique_case_insensitive_required"
is "$(j '.attributes[] | select(.name == "groups") | .mutability')" readOnly "user_schema_groups_is_read_only"
is "$(j '.attributes[] | select(.name == "emails") | .subAttributes | map(.name) | join(",")')" value,display,type,primary \
	"user_schema_emails_sub_attributes"
sreq_as "$NEW" GET "/Schemas/$SCIM_URN_ENT"
is "$(j '.attributes[] | select(.name == "manager") | .subAttributes[] | select(.name == "displayName") | .mutability')" readOnly \
	"enterprise_schema_manager_display_name_is_read_only"
sreq_as "$NEW" GET "/Schemas/$SCIM_URN_GROUP"
is "$(j '.attributes | map(.name) | join(",")')" displayName,members "group_schema_attributes"
sreq_as "$NEW" GET /Schemas/urn:nope
is "$code" 404 "unknown_schema_is_404"
sreq_as "$NEW" GET /Bulk
is "$code" 404 "bulk_is_not_served"

# ---------------------------------------------------------------- disabled
scim_stop
sed -i 's/^enabled = true$/enabled = false/' "$DCONF"
"$TESSERAD" -c "$DCONF" >"$SCIM_DIR/tesserad3.out" 2>"$SCIM_DIR/tesserad3.err" &
DPID=$!
wait_http "$URL/readyz" 30 || die "tesserad did not restart"
sleep 0.5
sreq_as "$NEW" GET /Users
is "$code/$(j .status)" 404/404 "scim_disabled_serves_nothing_even_with_a_valid_token"
sreq_as "" GET /Users
is "$code" 401 "scim_disabled_still_refuses_anonymous_callers_first"

# the admin API still rotates while SCIM is off; --json prints the whole reply
json=$(TESSERA_URL=$URL TESSERA_TOKEN=$BOOT HOME=$SCIM_DIR "$TESSERA" --json rotate scim-token 2>/dev/null)
like "$(jq -r .token <<<"$json")" '^tsr_[A-Za-z0-9_-]{43}$' "rotate_json_output_carries_the_token"
is "$(jq -r .scim_enabled <<<"$json")" false "rotate_reply_says_scim_is_disabled"

scim_finish
tap_done
