#!/usr/bin/env bash
# scim_users.sh — RFC 7643/7644 conformance of /scim/v2/Users against a real
# PostgreSQL and tesserad: create/read/replace/patch/delete, meta and ETags
# (If-Match -> 412, If-None-Match -> 304), uniqueness of userName regardless
# of case (409), filters (every operator, and/or/not, value paths, precise
# invalidFilter positions), pagination, attributes/excludedAttributes,
# sortBy, PATCH semantics and its errors (invalidPath, noTarget, mutability,
# invalidValue, invalidSyntax), the enterprise extension, DELETE tombstones,
# and one audit event per write with the IdP as actor.
set -uo pipefail
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/scim.sh"

scim_start

# ---------------------------------------------------------------- create
body=$(cat <<EOF
{"schemas":["$SCIM_URN_USER","$SCIM_URN_ENT"],"externalId":"okta-00u1","userName":"Bjensen@Example.com",
 "name":{"formatted":"Ms. Barbara J Jensen III","familyName":"Jensen","givenName":"Barbara"},
 "displayName":"Babs Jensen","title":"Tour Guide","active":true,"password":"t1meMa\$heen",
 "emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],
 "phoneNumbers":[{"value":"555-555-8377","type":"work"}],
 "$SCIM_URN_ENT":{"employeeNumber":"701984","department":"Tour Operations",
   "manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d","displayName":"John Smith"}}}
EOF
)
sreq POST /Users "$body"
is "$code" 201 "post_user_returns_201"
like "$(hdr Content-Type)" '^application/scim\+json' "post_user_content_type_is_scim_json"
ID=$(j .id)
like "$ID" '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' "post_user_assigns_opaque_uuid_id"
is "$(hdr Location)" "$SCIM/Users/$ID" "post_user_sets_location_header"
is "$(j .meta.location)" "$SCIM/Users/$ID" "meta_location_equals_location_header"
is "$(j .meta.resourceType)" User "meta_resource_type_is_user"
like "$(j .meta.created)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "meta_created_is_rfc3339"
is "$(j .meta.lastModified)" "$(j .meta.created)" "new_user_last_modified_equals_created"
ETAG=$(hdr ETag)
like "$ETAG" '^W/"[0-9]+"$' "post_user_sets_weak_etag"
is "$(j .meta.version)" "$ETAG" "meta_version_equals_etag_header"
is "$(j '.schemas | sort | join(",")')" "$SCIM_URN_USER,$SCIM_URN_ENT" "schemas_list_core_and_enterprise"
is "$(j .password)" null "password_is_never_returned"
is "$(j '.emails | length')" 2 "emails_are_stored_and_returned"
is "$(j '.emails[] | select(.primary) | .value')" bjensen@example.com "primary_email_round_trips"
is "$(j '.phoneNumbers[0].value')" 555-555-8377 "attributes_without_columns_round_trip"
is "$(j ".\"$SCIM_URN_ENT\".employeeNumber")" 701984 "enterprise_extension_is_stored_and_returned"
is "$(j ".\"$SCIM_URN_ENT\".manager.displayName")" null "read_only_manager_display_name_is_ignored"
is "$(pg_psql "select enterprise->>'department' from users where scim_id = '$ID'")" "Tour Operations" \
	"enterprise_extension_lives_in_users_enterprise"
is "$(pg_psql "select external_id from user_sources where source = 'scim' and user_id = (select id from users where scim_id = '$ID')")" \
	okta-00u1 "external_id_lives_in_the_scim_source_row"

# uniqueness regardless of case
sreq POST /Users "{\"schemas\":[\"$SCIM_URN_USER\"],\"userName\":\"bjensen@example.COM\"}"
is "$code" 409 "duplicate_user_name_in_other_case_is_409"
is "$(j .scimType)" uniqueness "duplicate_user_name_scim_type_is_uniqueness"
is "$(j .status)" 409 "error_status_is_a_string"
is "$(jq -r '.status | type' "$SB")" string "error_status_json_type_is_string"
is "$(j '.schemas[0]')" "$SCIM_URN_ERROR" "error_uses_the_scim_error_schema"

sreq POST /Users "{\"schemas\":[\"$SCIM_URN_USER\"],\"displayName\":\"nobody\"}"
is "$code/$(j .scimType)" 400/invalidValue "missing_user_name_is_400_invalid_value"
sreq POST /Users "{\"userName\":\"x1\",\"active\":\"maybe\"}"
is "$code/$(j .scimType)" 400/invalidValue "non_boolean_active_is_400_invalid_value"
sreq POST /Users "{\"userName\":\"x2\",\"emails\":[{\"value\":\"a@x\",\"primary\":true},{\"value\":\"b@x\",\"primary\":true}]}"
is "$code/$(j .scimType)" 400/invalidValue "two_primary_emails_are_400_invalid_value"
sreq POST /Users '{"userName": "x3",'
is "$code/$(j .scimType)" 400/invalidSyntax "malformed_json_is_400_invalid_syntax"

# ---------------------------------------------------------------- read
sreq GET "/Users/$ID"
is "$code" 200 "get_user_by_id_is_200"
is "$(j .userName)" Bjensen@Example.com "get_user_returns_user_name_as_given"
is "$(hdr ETag)" "$ETAG" "get_user_returns_the_etag"
sreq GET "/Users/$ID" "" -H "If-None-Match: $ETAG"
is "$code" 304 "get_with_matching_if_none_match_is_304"
sreq GET /Users/2819c223-7f76-453a-919d-413861904646
is "$code" 404 "unknown_user_id_is_404"
is "$(j .status)" 404 "unknown_user_404_uses_scim_error"
sreq GET /Users/not-a-uuid
is "$code" 404 "malformed_user_id_is_404"

# ---------------------------------------------------------------- more users for lists
for n in alice bob carol dave erin; do
	mkuser "$n" "\"externalId\":\"ext-$n\",\"displayName\":\"User $n\",\"emails\":[{\"value\":\"$n@corp.example\",\"type\":\"work\",\"primary\":true}]" >/dev/null
done
mkuser frank "\"active\":false" >/dev/null

q() { sreq GET "/Users?$(jq -rn --arg f "$1" '$f|@uri' | sed 's/^/filter=/')${2:+&$2}"; }
q 'userName eq "ALICE"'
is "$code/$(j .totalResults)/$(j '.Resources[0].userName')" 200/1/alice "filter_user_name_eq_ignores_case"
is "$(j '.schemas[0]')" "$SCIM_URN_LIST" "list_uses_list_response_schema"
q 'externalId eq "ext-bob"'
is "$(j .totalResults)/$(j '.Resources[0].userName')" 1/bob "filter_external_id_eq"
q 'externalId eq "EXT-BOB"'
is "$(j .totalResults)" 0 "filter_external_id_is_case_exact"
q 'userName ne "alice" and userName sw "a"'
is "$(j .totalResults)" 0 "filter_ne_and_sw"
q 'userName co "aro"'
is "$(j '.Resources[0].userName')" carol "filter_co"
q 'userName ew "VE"'
is "$(j '.Resources[0].userName')" dave "filter_ew"
q 'userName gt "dave" and userName lt "frank"'
is "$(j '[.Resources[].userName] | join(",")')" erin "filter_gt_lt_compare_lexically"
q 'userName ge "erin" and userName le "frank"'
is "$(j .totalResults)" 2 "filter_ge_le_are_inclusive"
q 'title pr'
is "$(j '.Resources[0].userName')/$(j .totalResults)" Bjensen@Example.com/1 "filter_pr_on_stored_attribute"
q 'not (title pr) and (userName eq "bob" or userName eq "carol")'
is "$(j '[.Resources[].userName] | sort | join(",")')" bob,carol "filter_not_or_and_parentheses"
q 'emails[type eq "work" and value co "@corp.example"]'
is "$(j .totalResults)" 5 "filter_value_path_with_and"
q 'emails.value eq "ERIN@corp.example"'
is "$(j '.Resources[0].userName')" erin "filter_email_value_ignores_case"
q 'active eq false'
is "$(j '.Resources[0].userName')/$(j .totalResults)" frank/1 "filter_active_eq_false"
q "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"bob\""
is "$(j .totalResults)" 1 "filter_attribute_with_core_urn"
q "$SCIM_URN_ENT:employeeNumber eq \"701984\""
is "$(j .totalResults)" 1 "filter_enterprise_attribute_with_urn"
q 'UserName Eq "bob" AND Active EQ true'
is "$(j .totalResults)" 1 "filter_keywords_and_names_are_case_insensitive"
q 'meta.created gt "2000-01-01T00:00:00Z"'
is "$(j .totalResults)" 7 "filter_meta_created_gt"

q 'userName eq "bob" and'
is "$code/$(j .scimType)" 400/invalidFilter "dangling_and_is_invalid_filter"
q '(userName eq "bob"'
like "$(j .detail)" 'position 18.*close' "unclosed_parenthesis_error_names_position"
q 'userName zz "bob"'
like "$(j .detail)" 'position 9.*operator' "unknown_operator_error_names_position"
q 'userName eq bob'
like "$(j .detail)" 'position 12.*value' "unquoted_value_error_names_position"
q 'nosuchattr eq "x"'
is "$code/$(j .scimType)" 400/invalidFilter "unknown_attribute_is_invalid_filter"
q 'active gt true'
is "$code/$(j .scimType)" 400/invalidFilter "gt_on_boolean_is_invalid_filter"
q "userName eq \"x'); DROP TABLE users; --\""
is "$code/$(j .totalResults)" 200/0 "filter_values_are_parameters_not_sql"

# pagination
sreq GET '/Users?startIndex=2&count=3&sortBy=userName'
is "$(j .totalResults)/$(j .startIndex)/$(j .itemsPerPage)" 7/2/3 "pagination_reports_total_start_and_page_size"
is "$(j '[.Resources[].userName] | join(",")')" Bjensen@Example.com,bob,carol "sort_by_user_name_ignores_case_and_pages"
sreq GET '/Users?sortBy=userName&sortOrder=descending&count=1'
is "$(j '.Resources[0].userName')" frank "sort_order_descending"
sreq GET '/Users?count=0'
is "$(j .totalResults)/$(j '.Resources | length')" 7/0 "count_zero_returns_only_the_total"
sreq GET '/Users?startIndex=0&count=1'
is "$(j .startIndex)" 1 "start_index_below_one_is_one"
sreq GET '/Users?startIndex=100'
is "$(j .totalResults)/$(j '.Resources | length')" 7/0 "start_index_past_the_end_is_empty_page"

# attributes / excludedAttributes
q 'userName eq "bob"' "attributes=userName,emails.value"
is "$(j '.Resources[0] | keys | join(",")')" emails,id,schemas,userName "attributes_returns_only_requested_and_always"
is "$(j '.Resources[0].emails[0] | keys | join(",")')" value "attributes_sub_attribute_projection"
sreq GET "/Users/$ID?excludedAttributes=emails,$SCIM_URN_ENT:manager,name.formatted"
is "$(j .emails)/$(j ".\"$SCIM_URN_ENT\".manager")/$(j .name.formatted)/$(j .name.givenName)" null/null/null/Barbara \
	"excluded_attributes_drops_attributes_and_sub_attributes"
is "$(j .id)" "$ID" "excluded_attributes_never_drops_id"

# ---------------------------------------------------------------- replace
sreq PUT "/Users/$ID" "{\"schemas\":[\"$SCIM_URN_USER\"],\"userName\":\"bjensen@example.com\",\"externalId\":\"okta-00u1\",\"displayName\":\"Barbara Jensen\",\"active\":true,\"emails\":[{\"value\":\"bjensen@example.com\",\"type\":\"work\",\"primary\":true}]}" \
	-H "If-Match: $ETAG"
is "$code" 200 "put_with_matching_if_match_is_200"
is "$(j .userName)/$(j .displayName)/$(j .title)/$(j '.emails|length')" bjensen@example.com/"Barbara Jensen"/null/1 \
	"put_replaces_the_whole_resource"
ETAG2=$(hdr ETag)
isnt "$ETAG2" "$ETAG" "put_changes_the_etag"
sreq PUT "/Users/$ID" "{\"userName\":\"bjensen@example.com\",\"displayName\":\"stale write\"}" -H "If-Match: $ETAG"
is "$code" 412 "put_with_stale_if_match_is_412"
sreq GET "/Users/$ID"
is "$(j .displayName)" "Barbara Jensen" "rejected_412_write_changes_nothing"
sreq PUT "/Users/$ID" "{\"userName\":\"BOB\"}"
is "$code/$(j .scimType)" 409/uniqueness "rename_onto_existing_user_name_is_409"
sreq PUT "/Users/$ID" "{\"schemas\":[\"$SCIM_URN_USER\"],\"userName\":\"bjensen@example.com\",\"externalId\":\"okta-00u1\",\"displayName\":\"Barbara Jensen\",\"active\":true,\"emails\":[{\"value\":\"bjensen@example.com\",\"type\":\"work\",\"primary\":true}]}"
is "$(hdr ETag)" "$ETAG2" "unchanged_put_keeps_the_etag"
sreq PUT /Users/2819c223-7f76-453a-919d-413861904646 "{\"userName\":\"ghost\"}"
is "$code" 404 "put_unknown_user_is_404"

# ---------------------------------------------------------------- patch
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"add","path":"emails","value":[{"value":"b@home.example","type":"home","primary":true}]},{"op":"replace","path":"name.givenName","value":"Barb"},{"op":"add","path":"title","value":"Guide"}]')"
is "$code" 200 "patch_returns_200_with_the_resource"
is "$(j '.emails|length')/$(j '[.emails[]|select(.primary)|.value]|join(",")')" 2/b@home.example \
	"patch_add_multi_valued_appends_and_new_primary_clears_others"
is "$(j .name.givenName)/$(j .title)" Barb/Guide "patch_replace_sub_attribute_and_add_simple"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"replace","path":"emails[type eq \"work\"].value","value":"barbara@example.com"}]')"
is "$(j '.emails[]|select(.type=="work")|.value')" barbara@example.com "patch_replace_value_filtered_sub_attribute"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"remove","path":"emails[type eq \"home\"]"}]')"
is "$(j '.emails|length')/$(j '.emails[0].type')" 1/work "patch_remove_value_filtered_element"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"replace","value":{"displayName":"B. Jensen","nickName":"Babs"}}]')"
is "$(j .displayName)/$(j .nickName)" "B. Jensen/Babs" "patch_replace_without_path_takes_an_object"
sreq PATCH "/Users/$ID" "$(patchop "[{\"op\":\"add\",\"path\":\"$SCIM_URN_ENT:costCenter\",\"value\":\"4130\"}]")"
is "$(j ".\"$SCIM_URN_ENT\".costCenter")/$(j '.schemas | index("'"$SCIM_URN_ENT"'") > 0')" 4130/true \
	"patch_add_enterprise_attribute_by_urn_path"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"remove","path":"title"}]')"
is "$(j .title)" null "patch_remove_simple_attribute"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"remove","path":"userName"}]')"
is "$code/$(j .scimType)" 400/mutability "patch_remove_required_attribute_is_mutability"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"replace","path":"id","value":"x"}]')"
is "$code/$(j .scimType)" 400/mutability "patch_read_only_id_is_mutability"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"replace","path":"doesNotExist","value":"x"}]')"
is "$code/$(j .scimType)" 400/invalidPath "patch_unknown_attribute_is_invalid_path"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"replace","path":"emails[type eq ","value":"x"}]')"
is "$code/$(j .scimType)" 400/invalidPath "patch_malformed_path_is_invalid_path"
like "$(j .detail)" 'position' "patch_malformed_path_error_names_position"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"replace","path":"emails[type eq \"fax\" or type eq \"pager\"].value","value":"x"}]')"
is "$code/$(j .scimType)" 400/noTarget "patch_replace_unmatched_filter_is_no_target"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"remove"}]')"
is "$code/$(j .scimType)" 400/noTarget "patch_remove_without_path_is_no_target"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"replace","path":"active","value":"sometimes"}]')"
is "$code/$(j .scimType)" 400/invalidValue "patch_wrong_type_is_invalid_value"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"jump","path":"title","value":"x"}]')"
is "$code/$(j .scimType)" 400/invalidSyntax "patch_unknown_op_is_invalid_syntax"
sreq PATCH "/Users/$ID" '{"Operations":[{"op":"add","path":"title","value":"x"}]}'
is "$code/$(j .scimType)" 400/invalidSyntax "patch_without_patchop_schema_is_invalid_syntax"
sreq GET "/Users/$ID"
is "$(j .title)/$(j .userName)" null/bjensen@example.com "failed_patch_leaves_resource_unchanged"
E=$(hdr ETag)
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"add","path":"title","value":"x"}]')" -H 'If-Match: W/"999999"'
is "$code" 412 "patch_with_stale_if_match_is_412"
sreq PATCH "/Users/$ID" "$(patchop '[{"op":"add","path":"title","value":"y"}]')" -H "If-Match: $E"
is "$code/$(j .title)" 200/y "patch_with_current_if_match_applies"

# ---------------------------------------------------------------- delete
BOB=$(pg_psql "select scim_id from users where user_name = 'bob' and deleted_at is null")
sreq DELETE "/Users/$BOB" "" -H 'If-Match: W/"999999"'
is "$code" 412 "delete_with_stale_if_match_is_412"
sreq DELETE "/Users/$BOB"
is "$code" 204 "delete_user_is_204"
sreq GET "/Users/$BOB"
is "$code" 404 "deleted_user_is_404"
sreq DELETE "/Users/$BOB"
is "$code" 404 "deleting_twice_is_404"
is "$(pg_psql "select deleted_at is not null and not active from users where scim_id = '$BOB'")" t \
	"delete_leaves_an_inactive_tombstone"
q 'userName eq "bob"'
is "$(j .totalResults)" 0 "deleted_user_is_not_listed"
NEWBOB=$(mkuser bob "\"externalId\":\"ext-bob\"")
isnt "$NEWBOB" "$BOB" "user_name_and_external_id_are_reusable_after_delete_with_a_new_id"

# ---------------------------------------------------------------- audit
is "$(pg_psql "select count(*) from audit_events where action = 'scim.user.create' and outcome = 'success' and actor = 'scim:token_file'")" \
	8 "every_create_is_one_audit_event_with_the_idp_as_actor"
is "$(pg_psql "select count(*) from audit_events where action = 'scim.user.delete' and user_id = (select id from users where scim_id = '$BOB')")" \
	1 "delete_is_audited_for_the_user"
is "$(pg_psql "select count(*) from audit_events where action = 'user.offboard' and actor = 'scim:token_file' and user_id = (select id from users where scim_id = '$BOB')")" \
	1 "delete_runs_the_offboarding_function"
like "$(pg_psql "select count(*) from audit_events where action like 'scim.user.%' and outcome = 'failure'")" '^[1-9][0-9]*$' \
	"refused_writes_are_audited_as_failures"
if pg_psql "select detail::text from audit_events" | grep -q 't1meMa'; then
	fail "passwords_never_reach_the_audit_log"
else
	ok "passwords_never_reach_the_audit_log"
fi
if pg_psql "select coalesce(attributes::text,'') from user_sources" | grep -q 't1meMa'; then
	fail "passwords_are_never_stored"
else
	ok "passwords_are_never_stored"
fi

scim_finish
tap_done
