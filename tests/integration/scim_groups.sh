#!/usr/bin/env bash
# scim_groups.sh — /scim/v2/Groups against a real PostgreSQL and tesserad:
# create with members, read, filter by displayName, excludedAttributes=members,
# uniqueness of displayName regardless of case, PUT, PATCH member add/remove
# (by path, by value filter, by value list, replace), a PATCH adding 1,000
# members in one request (bulk SQL: timed, and one ETag bump), ETags, DELETE,
# and role grants following SCIM group membership ([roles] maps group names).
set -uo pipefail
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/scim.sh"

scim_start "
[roles]
admin = tessera-admins
developer = Engineers"

U1=$(mkuser alice) || die "cannot create users"
U2=$(mkuser bob)
U3=$(mkuser carol)
uid() { pg_psql "select id from users where scim_id = '$1'"; }
grants() { pg_psql "select coalesce(string_agg(u.user_name || ':' || r.role, ',' order by u.user_name, r.role), '') from role_grants r join users u on u.id = r.user_id where r.via like 'group:%'"; }

# ---------------------------------------------------------------- create
sreq POST /Groups "{\"schemas\":[\"$SCIM_URN_GROUP\"],\"displayName\":\"Tessera-Admins\",\"externalId\":\"okta-g1\",\"members\":[{\"value\":\"$U1\",\"type\":\"User\"}]}"
is "$code" 201 "post_group_returns_201"
G=$(j .id)
is "$(hdr Location)" "$SCIM/Groups/$G" "post_group_sets_location"
is "$(j .meta.resourceType)/$(j .externalId)" Group/okta-g1 "group_meta_and_external_id"
is "$(j '.members[0].value')/$(j '.members[0].type')/$(j '.members[0].display')" "$U1/User/alice" \
	"group_members_carry_value_type_and_display"
is "$(j '.members[0]["$ref"]')" "$SCIM/Users/$U1" "group_member_ref_points_at_the_user"
is "$(grants)" alice:admin "group_member_gets_the_role_mapped_to_the_group_name"
sreq POST /Groups "{\"displayName\":\"tessera-ADMINS\"}"
is "$code/$(j .scimType)" 409/uniqueness "duplicate_group_display_name_in_other_case_is_409"
sreq POST /Groups "{\"displayName\":\"ghosts\",\"members\":[{\"value\":\"2819c223-7f76-453a-919d-413861904646\"}]}"
is "$code/$(j .scimType)" 400/invalidValue "unknown_member_id_is_400_invalid_value"
sreq GET "/Groups?filter=$(jq -rn '"displayName eq \"ghosts\""|@uri')"
is "$(j .totalResults)" 0 "refused_group_create_leaves_nothing_behind"
sreq POST /Groups "{\"externalId\":\"x\"}"
is "$code/$(j .scimType)" 400/invalidValue "group_without_display_name_is_400"

# ---------------------------------------------------------------- read and filter
sreq GET "/Groups/$G"
is "$code/$(j '.members|length')" 200/1 "get_group_with_members"
ETAG=$(hdr ETag)
like "$ETAG" '^W/"[0-9]+"$' "get_group_sets_etag"
sreq GET "/Groups?filter=$(jq -rn '"displayName eq \"TESSERA-admins\""|@uri')&excludedAttributes=members"
is "$(j .totalResults)/$(j '.Resources[0].id')/$(j '.Resources[0].members')" "1/$G/null" \
	"filter_group_display_name_ignores_case_and_excludes_members"
sreq GET "/Groups?filter=$(jq -rn --arg u "$U1" '"members[value eq \"" + $u + "\"]"|@uri')"
is "$(j .totalResults)" 1 "filter_groups_by_member_value"
sreq GET "/Users/$U1"
is "$(j '.groups[0].value')/$(j '.groups[0].display')" "$G/Tessera-Admins" "user_lists_its_groups"
sreq GET /Groups/9f1b5c0e-0000-4000-8000-000000000000
is "$code" 404 "unknown_group_is_404"

# ---------------------------------------------------------------- patch members
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"$U2\"},{\"value\":\"$U3\"}]}]")"
is "$code" 204 "patch_group_is_204"
isnt "$(hdr ETag)" "$ETAG" "member_change_changes_the_group_etag"
is "$(grants)" alice:admin,bob:admin,carol:admin "patch_add_members_grants_roles"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"remove\",\"path\":\"members[value eq \\\"$U2\\\"]\"}]")"
is "$code/$(grants)" 204/alice:admin,carol:admin "patch_remove_member_by_value_filter_revokes_role"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"remove\",\"path\":\"members[value eq \\\"$U2\\\"]\"}]")"
is "$code" 204 "removing_an_absent_member_is_harmless"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"remove\",\"path\":\"members[display eq \\\"CAROL\\\"]\"}]")"
is "$(grants)" alice:admin "patch_remove_member_by_other_filter_evaluates_in_c"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"replace\",\"path\":\"members\",\"value\":[{\"value\":\"$U3\"}]}]")"
is "$(grants)" carol:admin "patch_replace_members_swaps_the_list"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"$U3\"}]}]")"
sreq GET "/Groups/$G"
is "$(j '.members|length')" 1 "adding_an_existing_member_does_not_duplicate"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"$U1\"},{\"value\":\"nope\"}]}]")"
is "$code/$(j .scimType)" 400/invalidValue "patch_with_unknown_member_is_invalid_value"
sreq GET "/Groups/$G"
is "$(j '.members|length')" 1 "failed_member_patch_is_atomic"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"replace\",\"path\":\"members[value eq \\\"$U3\\\"].display\",\"value\":\"x\"}]")"
is "$code/$(j .scimType)" 400/mutability "patch_member_display_is_mutability"
sreq PATCH "/Groups/$G" "$(patchop "[{\"op\":\"replace\",\"value\":{\"id\":\"$G\",\"displayName\":\"tessera-admins\"}}]")"
is "$code" 204 "patch_replace_display_name_without_path_ignores_id"
sreq GET "/Groups/$G?attributes=displayName"
is "$(j .displayName)/$(j .members)" tessera-admins/null "attributes_display_name_only"
E=$(hdr ETag)
sreq PATCH "/Groups/$G" "$(patchop '[{"op":"remove","path":"members"}]')" -H 'If-Match: W/"1"'
is "$code" 412 "patch_group_with_stale_if_match_is_412"
sreq PATCH "/Groups/$G" "$(patchop '[{"op":"remove","path":"members"}]')" -H "If-Match: $E"
is "$code/$(grants)" 204/ "patch_remove_all_members"

# ---------------------------------------------------------------- 1,000 members in one PATCH
pg_psql "with u as (insert into users (user_name) select 'bulk' || g from generate_series(1, 1000) g returning id)
         insert into user_sources (user_id, source) select id, 'scim' from u" >/dev/null
sreq POST /Groups '{"displayName":"engineers"}'
GE=$(j .id)
V0=$(pg_psql "select version from groups where scim_id = '$GE'")
pg_psql "select json_build_object('schemas', json_build_array('$SCIM_URN_PATCH'), 'Operations',
         json_build_array(json_build_object('op', 'Add', 'path', 'members', 'value',
           json_agg(json_build_object('value', scim_id))))) from users where user_name like 'bulk%'" >"$SCIM_DIR/p1000.json"
t0=$(date +%s%N)
sreq PATCH "/Groups/$GE" "@$SCIM_DIR/p1000.json"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
is "$code" 204 "patch_adding_1000_members_is_204"
is "$(pg_psql "select count(*) from group_members where group_id = (select id from groups where scim_id = '$GE')")" 1000 \
	"patch_adding_1000_members_adds_them_all"
is "$(pg_psql "select version from groups where scim_id = '$GE'")" "$((V0 + 1))" \
	"patch_adding_1000_members_bumps_the_etag_once (one bulk statement)"
is "$(pg_psql "select count(*) from role_grants where via = 'group:engineers' and role = 'developer'")" 1000 \
	"patch_adding_1000_members_grants_their_roles"
diag "PATCH adding 1000 members took ${ms} ms"
if ((ms < 5000)); then ok "patch_adding_1000_members_takes_under_5s (${ms} ms)"; else fail "patch_adding_1000_members_takes_under_5s" "${ms} ms"; fi
sreq GET "/Groups/$GE"
is "$(j '.members|length')" 1000 "get_group_returns_1000_members"
# Entra ID removes members with a value list
vals=$(pg_psql "select json_agg(json_build_object('value', scim_id)) from (select scim_id from users where user_name like 'bulk%' order by id limit 10) s")
sreq PATCH "/Groups/$GE" "$(patchop "[{\"op\":\"Remove\",\"path\":\"members\",\"value\":$vals}]")"
is "$code/$(pg_psql "select count(*) from group_members where group_id = (select id from groups where scim_id = '$GE')")" 204/990 \
	"patch_remove_members_by_value_list"

# ---------------------------------------------------------------- put, delete
sreq PUT "/Groups/$G" "{\"schemas\":[\"$SCIM_URN_GROUP\"],\"displayName\":\"tessera-admins\",\"members\":[{\"value\":\"$U1\"},{\"value\":\"$U2\"}]}"
is "$code/$(j '.members|length')" 200/2 "put_group_replaces_members"
is "$(grants | tr ',' '\n' | grep -c admin)" 2 "put_group_recomputes_roles"
sreq PUT "/Groups/$G" "{\"displayName\":\"engineers\"}"
is "$code/$(j .scimType)" 409/uniqueness "put_group_onto_existing_name_is_409"
sreq DELETE "/Groups/$G"
is "$code" 204 "delete_group_is_204"
sreq GET "/Groups/$G"
is "$code" 404 "deleted_group_is_404"
is "$(pg_psql "select count(*) from role_grants where via = 'group:tessera-admins'")" 0 "delete_group_revokes_its_roles"
sreq DELETE "/Users/$U3"
is "$code" 204 "delete_member_user"
sreq GET "/Groups/$GE?excludedAttributes=members"
is "$code" 200 "group_still_served_after_member_deletion"
is "$(pg_psql "select count(*) from audit_events where action like 'scim.group.%' and outcome = 'success' and actor = 'scim:token_file'")" \
	14 "every_group_write_is_audited"

scim_finish
tap_done
