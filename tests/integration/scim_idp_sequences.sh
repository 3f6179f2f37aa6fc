#!/usr/bin/env bash
# scim_idp_sequences.sh — what Okta and Microsoft Entra ID actually send, in
# the order they send it, against a real PostgreSQL and tesserad:
#   Okta:  lookup by userName filter, create, get, full PUT, deactivate with
#          PATCH replace {"active":false}, reactivate, group push.
#   Entra: lookup by userName/externalId, create with the enterprise
#          extension, PATCH with capitalised ops ("Replace", "Add"), string
#          booleans ("False"), value-filtered paths (emails[type eq "work"].value),
#          keys that are paths (name.givenName) in a value object, manager as
#          a bare id, group member add/remove by value list and by filter,
#          hard DELETE.
# And what deactivation must do: once the SCIM reply is back, the user's
# existing credential is refused by the token check (/admin/v1/whoami: 401),
# reactivation does not revive it, and the offboarding receipt names the IdP.
# Finally SCIM and LDAP coexisting: an LDAP user is linked (not duplicated)
# by a SCIM create with the same userName, an LDAP-inactive user stays
# inactive whatever SCIM says, break-glass local accounts cannot be claimed,
# and [scim] profile_source = ldap keeps LDAP's names.
set -uo pipefail
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/scim.sh"

scim_start "profile_source = ldap

[roles]
developer = okta-engineers"

# credential NAME UID: insert a live session for user id UID; prints its token (tsr_ + 43 chars)
credential() {
	local tok hash
	tok=tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)
	hash=$(printf '%s' "$tok" | sha256sum | cut -d' ' -f1)
	pg_psql "insert into credentials (kind, token_hash, user_id, auth_method, expires_at)
	         values ('session', decode('$hash', 'hex'), $2, 'ldap', now() + interval '1 hour')" >/dev/null
	printf '%s' "$tok"
}
whoami() {
	curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$URL/admin/v1/whoami"
}
uq() { jq -rn --arg f "$1" '$f|@uri'; }

# ================================================================ Okta
sreq GET "/Users?filter=$(uq 'userName eq "isaac.brock@example.com"')&startIndex=1&count=100"
is "$code/$(j .totalResults)/$(j '.Resources|length')" 200/0/0 "okta_lookup_before_create_finds_nothing"
sreq POST /Users "{\"schemas\":[\"$SCIM_URN_USER\"],\"userName\":\"isaac.brock@example.com\",
  \"name\":{\"givenName\":\"Isaac\",\"familyName\":\"Brock\"},
  \"emails\":[{\"primary\":true,\"value\":\"isaac.brock@example.com\",\"type\":\"work\"}],
  \"displayName\":\"Isaac Brock\",\"locale\":\"en-US\",\"externalId\":\"00ujl29u0le5T6Aj10h7\",
  \"groups\":[],\"password\":\"1mz050nq\",\"active\":true}"
is "$code" 201 "okta_create_user_is_201"
OK_ID=$(j .id)
is "$(j .active)/$(j .locale)/$(j '.groups')" true/en-US/null "okta_create_ignores_read_only_groups"
sreq GET "/Users?filter=$(uq 'userName eq "isaac.brock@example.com"')&startIndex=1&count=100"
is "$(j .totalResults)/$(j '.Resources[0].id')" "1/$OK_ID" "okta_lookup_by_user_name_finds_the_user"
sreq GET "/Users/$OK_ID"
is "$code/$(j .name.givenName)" 200/Isaac "okta_get_user"
sreq PUT "/Users/$OK_ID" "{\"schemas\":[\"$SCIM_URN_USER\"],\"id\":\"$OK_ID\",\"userName\":\"isaac.brock@example.com\",
  \"name\":{\"givenName\":\"Isaac\",\"familyName\":\"Brock\"},\"emails\":[{\"primary\":true,\"value\":\"isaac.brock@example.com\",\"type\":\"work\"}],
  \"displayName\":\"Isaac J. Brock\",\"locale\":\"en-US\",\"externalId\":\"00ujl29u0le5T6Aj10h7\",\"active\":true,
  \"meta\":{\"resourceType\":\"User\"}}"
is "$code/$(j .displayName)" "200/Isaac J. Brock" "okta_profile_push_with_put"

OK_UID=$(pg_psql "select id from users where scim_id = '$OK_ID'")
OK_TOK=$(credential isaac "$OK_UID")
is "$(whoami "$OK_TOK")" 200 "okta_user_credential_works_while_active"
sreq PATCH "/Users/$OK_ID" "$(patchop '[{"op":"replace","value":{"active":false}}]')"
is "$code/$(j .active)" 200/false "okta_deactivate_with_patch_replace_active_false"
is "$(whoami "$OK_TOK")" 401 "okta_deactivation_refuses_existing_credential_immediately"
is "$(pg_psql "select revoked_by from credentials where user_id = $OK_UID")" "scim:token_file" \
	"okta_deactivation_revokes_the_credential_as_the_idp"
is "$(pg_psql "select count(*) from audit_events where action = 'user.offboard' and user_id = $OK_UID and detail->>'trigger' = 'scim'")" \
	1 "okta_deactivation_writes_one_offboarding_receipt"
is "$(pg_psql "select jsonb_array_length(detail->'credentials') from audit_events where action = 'user.offboard' and user_id = $OK_UID")" \
	1 "okta_offboarding_receipt_lists_the_revoked_credential"
sreq GET "/Users?filter=$(uq 'active eq false')"
is "$(j '.Resources[0].id')" "$OK_ID" "okta_deactivated_user_is_listed_as_inactive"
sreq PATCH "/Users/$OK_ID" "$(patchop '[{"op":"replace","value":{"active":true}}]')"
is "$code/$(j .active)" 200/true "okta_reactivate"
is "$(whoami "$OK_TOK")" 401 "okta_reactivation_does_not_revive_old_credentials"
NEW_TOK=$(credential isaac2 "$OK_UID")
is "$(whoami "$NEW_TOK")" 200 "okta_reactivated_user_can_use_new_credentials"

# Okta group push
sreq POST /Groups "{\"schemas\":[\"$SCIM_URN_GROUP\"],\"displayName\":\"okta-engineers\",\"members\":[]}"
is "$code" 201 "okta_group_push_create"
OG=$(j .id)
sreq PATCH "/Groups/$OG" "$(patchop "[{\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"$OK_ID\",\"display\":\"isaac.brock@example.com\"}]}]")"
is "$code" 204 "okta_group_push_add_member"
is "$(pg_psql "select role from role_grants where user_id = $OK_UID and via = 'group:okta-engineers'")" developer \
	"okta_group_membership_grants_the_mapped_role"
sreq PATCH "/Groups/$OG" "$(patchop "[{\"op\":\"replace\",\"value\":{\"id\":\"$OG\",\"displayName\":\"okta-engineers-renamed\"}}]")"
is "$code/$(pg_psql "select count(*) from role_grants where user_id = $OK_UID")" 204/0 \
	"okta_group_rename_recomputes_roles"
sreq PATCH "/Groups/$OG" "$(patchop "[{\"op\":\"remove\",\"path\":\"members[value eq \\\"$OK_ID\\\"]\"}]")"
is "$code" 204 "okta_group_push_remove_member"
sreq DELETE "/Groups/$OG"
is "$code" 204 "okta_group_push_delete"

# ================================================================ Entra ID
EXT=0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef
sreq GET "/Users?filter=$(uq 'userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"')"
is "$(j .totalResults)" 0 "entra_lookup_before_create_finds_nothing"
sreq POST /Users "{\"schemas\":[\"$SCIM_URN_USER\",\"$SCIM_URN_ENT\"],\"externalId\":\"$EXT\",
  \"userName\":\"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1\",\"active\":true,
  \"emails\":[{\"primary\":true,\"type\":\"work\",\"value\":\"Test_User_fd0ea19b@testuser.com\"}],
  \"meta\":{\"resourceType\":\"User\"},\"name\":{\"formatted\":\"givenName familyName\",\"familyName\":\"familyName\",\"givenName\":\"givenName\"},
  \"roles\":[],\"$SCIM_URN_ENT\":{\"department\":\"Eng\"}}"
is "$code" 201 "entra_create_user_is_201"
EN_ID=$(j .id)
sreq GET "/Users?filter=$(uq "externalId eq \"$EXT\"")"
is "$(j '.Resources[0].id')" "$EN_ID" "entra_lookup_by_external_id"
sreq GET "/Users?filter=$(uq 'userName eq "test_user_ab6490ee-1e48-479e-a20b-2d77186b5dd1"')"
is "$(j .totalResults)" 1 "entra_lookup_by_user_name_ignores_case"
sreq PATCH "/Users/$EN_ID" "$(patchop '[
  {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
  {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
  {"op":"Add","path":"title","value":"Engineer"},
  {"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 555 0100"}]')"
is "$code" 200 "entra_patch_with_capitalised_ops"
is "$(j '.emails[0].value')/$(j .name.familyName)/$(j .title)" updatedEmail@microsoft.com/updatedFamilyName/Engineer \
	"entra_patch_applies_value_filtered_and_sub_attribute_paths"
is "$(j '.phoneNumbers[0].type')/$(j '.phoneNumbers[0].value')" "mobile/+1 555 0100" \
	"entra_add_through_an_unmatched_equality_filter_creates_the_value"
sreq PATCH "/Users/$EN_ID" "$(patchop "[{\"op\":\"Add\",\"path\":\"$SCIM_URN_ENT:manager\",\"value\":\"$OK_ID\"}]")"
is "$code/$(j ".\"$SCIM_URN_ENT\".manager.value")" "200/$OK_ID" "entra_manager_as_a_bare_id"
sreq PATCH "/Users/$EN_ID" "$(patchop "[{\"op\":\"Replace\",\"value\":{\"name.givenName\":\"Ada\",\"$SCIM_URN_ENT:department\":\"Research\"}}]")"
is "$(j .name.givenName)/$(j ".\"$SCIM_URN_ENT\".department")" Ada/Research "entra_value_object_keys_are_paths"
EN_UID=$(pg_psql "select id from users where scim_id = '$EN_ID'")
EN_TOK=$(credential ada "$EN_UID")
is "$(whoami "$EN_TOK")" 200 "entra_user_credential_works_while_active"
sreq PATCH "/Users/$EN_ID" "$(patchop '[{"op":"Replace","path":"active","value":"False"}]')"
is "$code/$(j .active)" 200/false "entra_soft_delete_with_string_boolean_false"
is "$(whoami "$EN_TOK")" 401 "entra_deactivation_refuses_existing_credential"
sreq PATCH "/Users/$EN_ID" "$(patchop '[{"op":"Replace","path":"active","value":"True"}]')"
is "$code/$(j .active)" 200/true "entra_reactivate_with_string_boolean_true"

# Entra groups
sreq POST /Groups "{\"schemas\":[\"$SCIM_URN_GROUP\"],\"externalId\":\"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159\",\"displayName\":\"displayName\",\"meta\":{\"resourceType\":\"Group\"}}"
is "$code" 201 "entra_create_group"
EG=$(j .id)
sreq GET "/Groups?excludedAttributes=members&filter=$(uq 'displayName eq "displayName"')"
is "$(j '.Resources[0].id')/$(j '.Resources[0].members')" "$EG/null" "entra_group_lookup_excluding_members"
sreq PATCH "/Groups/$EG" "$(patchop "[{\"op\":\"Add\",\"path\":\"members\",\"value\":[{\"\$ref\":null,\"value\":\"$EN_ID\"},{\"\$ref\":null,\"value\":\"$OK_ID\"}]}]")"
is "$code/$(pg_psql "select count(*) from group_members where group_id = (select id from groups where scim_id = '$EG')")" 204/2 \
	"entra_add_members"
sreq PATCH "/Groups/$EG" "$(patchop "[{\"op\":\"Remove\",\"path\":\"members\",\"value\":[{\"\$ref\":null,\"value\":\"$OK_ID\"}]}]")"
is "$code/$(pg_psql "select count(*) from group_members where group_id = (select id from groups where scim_id = '$EG')")" 204/1 \
	"entra_remove_member_by_value_list"
sreq PATCH "/Groups/$EG" "$(patchop "[{\"op\":\"Remove\",\"path\":\"members[value eq \\\"$EN_ID\\\"]\"}]")"
is "$code/$(pg_psql "select count(*) from group_members where group_id = (select id from groups where scim_id = '$EG')")" 204/0 \
	"entra_remove_member_by_value_filter"
sreq PATCH "/Groups/$EG" "$(patchop '[{"op":"Replace","path":"displayName","value":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]')"
is "$code" 204 "entra_rename_group"
EN_TOK2=$(credential ada2 "$EN_UID")
sreq DELETE "/Users/$EN_ID"
is "$code" 204 "entra_hard_delete_is_204"
is "$(whoami "$EN_TOK2")" 401 "entra_hard_delete_refuses_existing_credential"
sreq GET "/Users/$EN_ID"
is "$code" 404 "entra_deleted_user_is_404"

# ================================================================ SCIM and LDAP coexist
pg_psql "with u as (insert into users (user_name, display_name) values ('grace', 'Grace Hopper (LDAP)') returning id)
         insert into user_sources (user_id, source, external_id, dn, active)
         select id, 'ldap', 'entry-uuid-grace', 'uid=grace,ou=people,dc=example,dc=org', true from u" >/dev/null
G_UID=$(pg_psql "select id from users where user_name = 'grace'")
sreq GET "/Users?filter=$(uq 'userName eq "grace"')"
is "$(j .totalResults)" 0 "ldap_only_users_are_not_scim_resources"
sreq POST /Users "{\"userName\":\"GRACE\",\"displayName\":\"Grace from the IdP\",\"externalId\":\"okta-grace\"}"
is "$code" 201 "scim_create_links_an_existing_ldap_user"
GR_ID=$(j .id)
is "$(pg_psql "select id from users where scim_id = '$GR_ID'")" "$G_UID" "linked_user_is_the_same_person_not_a_copy"
is "$(pg_psql "select string_agg(source, ',' order by source) from user_sources where user_id = $G_UID")" ldap,scim \
	"linked_user_has_both_source_rows"
is "$(j .displayName)/$(j .userName)" "Grace Hopper (LDAP)/grace" "profile_source_ldap_keeps_ldap_names"
is "$(pg_psql "select external_id from user_sources where user_id = $G_UID and source = 'ldap'")" entry-uuid-grace \
	"scim_link_leaves_the_ldap_row_alone"
sreq POST /Users "{\"userName\":\"Grace\"}"
is "$code/$(j .scimType)" 409/uniqueness "a_second_scim_create_for_a_linked_user_is_409"
# the directory disables grace: LDAP's view and the offboarding
pg_psql "update user_sources set active = false where user_id = $G_UID and source = 'ldap'" >/dev/null
pg_psql "update users set active = false, deactivated_at = now(), deactivated_by = 'ldap' where id = $G_UID" >/dev/null
sreq PATCH "/Users/$GR_ID" "$(patchop '[{"op":"replace","path":"active","value":true}]')"
is "$code/$(j .active)" 200/false "scim_active_true_cannot_reactivate_a_user_ldap_disabled"
is "$(pg_psql "select active from users where id = $G_UID")" f "ldap_disabled_user_stays_inactive"
sreq POST /Users '{"userName":"admin"}'
is "$code/$(j .scimType)" 409/uniqueness "break_glass_local_admin_cannot_be_claimed_by_scim"

# every SCIM write in this file was attributed to the IdP
is "$(pg_psql "select count(*) from audit_events where action ~ '^scim[.](user|group)[.]' and actor <> 'scim:token_file'")" \
	0 "all_scim_writes_have_the_idp_as_actor"

scim_finish
tap_done
