#!/usr/bin/env bash
# ldap_sync_mirror.sh — a directory with nested groups (and a cycle), all three group schemas
# (groupOfNames/member, groupOfUniqueNames/uniqueMember with an optional UID, posixGroup/memberUid),
# memberOf (overlay), disabled users (ppolicy lock and a disabled_filter attribute), and DNs with
# escaped commas, plus signs, quotes, leading/trailing spaces, backslashes and non-ASCII names is
# mirrored into Postgres exactly, asserted row by row; member values spelled differently from the
# entry's DN (case, escaping, AVA order) still resolve; ambiguous logins, group names and repo logins
# are reported, not guessed (and a conflict that persists writes nothing on later runs); roles follow nested groups; a second run (incremental, then --full) writes nothing;
# the sync routes refuse a caller without the admin or security role.
set -uo pipefail
# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/ldapsync.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/ldapsync.sh"

pg_start
ldapsync_slapd 500 paged memberof ppolicy
P=$TEST_LDAP_PEOPLE G=$TEST_LDAP_GROUPS B=$TEST_LDAP_BASE

ldap_add >"$LDAPSYNC_DIR/fixture.log" 2>&1 <<LDIF || fail "fixture_loaded" "$(tail -5 "$LDAPSYNC_DIR/fixture.log")"
dn: uid=alice,$P
objectClass: inetOrgPerson
uid: alice
cn: Alice Example
givenName: Alice
sn: Example
mail: alice@example.com
mail: alice.example@example.org
employeeNumber: alice-gh
userPassword: alice-pw

dn: uid=bob,$P
objectClass: inetOrgPerson
uid: bob
cn: Bob Locked
sn: Locked
mail: bob@example.com
pwdAccountLockedTime: 000001010000Z

dn: uid=carol,$P
objectClass: inetOrgPerson
uid: carol
cn: Carol Gone-Dark
sn: Dark
employeeType: disabled

dn: uid=dave,$P
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: D
employeeNumber: ALICE-GH

dn: cn=Smith\2C John,$P
objectClass: inetOrgPerson
uid: jsmith
cn: Smith, John
givenName: John
sn: Smith
mail: john.smith@example.com

dn: uid=plus\+one,$P
objectClass: inetOrgPerson
uid: plus+one
cn: Plus One
sn: One

dn: cn=The \"Boss\",$P
objectClass: inetOrgPerson
uid: boss
cn: The "Boss"
sn: Boss

dn: cn=\ lead and trail\ ,$P
objectClass: inetOrgPerson
uid: spaces
cn:: IGxlYWQgYW5kIHRyYWlsIA==
sn: Spaces

dn: cn=Jürgen Müller,$P
objectClass: inetOrgPerson
uid: jürgen
cn: Jürgen Müller
givenName: Jürgen
sn: Müller
mail: juergen@example.com
employeeNumber: jmueller-gh

dn: cn=Multi+uid=multi,$P
objectClass: inetOrgPerson
uid: multi
cn: Multi
sn: M

dn: cn=back\\\\slash \#1\; x\=y,$P
objectClass: inetOrgPerson
uid: odd
cn: back\\slash #1; x=y
sn: Odd

dn: cn=李小龙,$P
objectClass: inetOrgPerson
uid: 李
cn: 李小龙
sn: 李

dn: cn=Alice Duplicate,$P
objectClass: inetOrgPerson
uid: alice
cn: Alice Duplicate
sn: Duplicate

dn: cn=developers,$G
objectClass: groupOfNames
cn: developers
member: UID=Alice,OU=People,DC=example,DC=com
member: cn=Smith\, John,ou=people,$B
member: cn=ldap-admins,$G
member: cn=J\C3\BCrgen M\C3\BCller,ou=people,$B

dn: cn=ldap-admins,$G
objectClass: groupOfUniqueNames
cn: ldap-admins
uniqueMember: uid=plus\+one,ou=people,$B#'0101'B
uniqueMember: cn=The \"Boss\",ou=people,$B
uniqueMember: uid=carol,ou=people,$B

dn: cn=ops,$G
objectClass: posixGroup
cn: ops
gidNumber: 1000
memberUid: alice
memberUid: DAVE
memberUid: nosuchuser

dn: cn=cycle-a,$G
objectClass: groupOfNames
cn: cycle-a
member: cn=cycle-b,$G
member: uid=bob,$P

dn: cn=cycle-b,$G
objectClass: groupOfNames
cn: cycle-b
member: cn=cycle-a,$G
member: cn=\20lead and trail\20,$P

dn: cn=all-staff,$G
objectClass: groupOfNames
cn: all-staff
member: cn=developers,$G
member: cn=ops,$G
member: uid=multi+cn=Multi,$P
member: cn=back\5cslash \23\31\3b x\3dy,$P
member: cn=李小龙,$P

dn: cn=dangling,$G
objectClass: groupOfNames
cn: dangling
member: uid=ghost,$P

dn: cn=dup,$G
objectClass: groupOfNames
cn: dup
member: uid=alice,$P

dn: ou=sub,$G
objectClass: organizationalUnit
ou: sub

dn: cn=DUP,ou=sub,$G
objectClass: groupOfNames
cn: DUP
member: uid=dave,$P
LDIF

ldapsync_conf "member_of = true"
ldapsync_start

sync_ldap
is "$SYNC_RC" 0 "first_sync_succeeds" || diag "$SYNC_OUT"
like "$SYNC_OUT" "ldap sync run 1 \(full, cli:admin\) ok" "first_sync_is_a_full_run_started_by_the_cli_user"
like "$SYNC_OUT" "users +12 added, 0 updated, 0 deactivated" "first_sync_counts_twelve_users_added"
like "$SYNC_OUT" "groups +7 added" "first_sync_counts_seven_groups_added"
like "$SYNC_OUT" "memberships +18 added, 0 removed" "first_sync_counts_eighteen_direct_memberships"

# --- users, row by row --------------------------------------------------------------
users=$(q "SELECT user_name, coalesce(display_name, '-'), coalesce(given_name, '-'), coalesce(family_name, '-'),
                  coalesce(repo_login, '-'), active, coalesce(deactivated_by, '-')
             FROM users u WHERE EXISTS (SELECT 1 FROM user_sources s WHERE s.user_id = u.id AND s.source = 'ldap')
            ORDER BY user_name COLLATE \"C\"")
is "$users" "alice|Alice Example|Alice|Example|alice-gh|t|-
bob|Bob Locked|-|Locked|-|f|ldap
boss|The \"Boss\"|-|Boss|-|t|-
carol|Carol Gone-Dark|-|Dark|-|f|ldap
dave|Dave|-|D|-|t|-
jsmith|Smith, John|John|Smith|-|t|-
jürgen|Jürgen Müller|Jürgen|Müller|jmueller-gh|t|-
multi|Multi|-|M|-|t|-
odd|back\\slash #1; x=y|-|Odd|-|t|-
plus+one|Plus One|-|One|-|t|-
spaces| lead and trail |-|Spaces|-|t|-
李|李小龙|-|李|-|t|-" "users_are_mirrored_row_by_row"

sources=$(q "SELECT u.user_name, s.dn, s.active FROM user_sources s JOIN users u ON u.id = s.user_id
              WHERE s.source = 'ldap' ORDER BY u.user_name COLLATE \"C\"")
is "$sources" "alice|uid=alice,$P|t
bob|uid=bob,$P|f
boss|cn=The \\22Boss\\22,$P|t
carol|uid=carol,$P|f
dave|uid=dave,$P|t
jsmith|cn=Smith\\2C John,$P|t
jürgen|cn=Jürgen Müller,$P|t
multi|cn=Multi+uid=multi,$P|t
odd|cn=back\\5Cslash #1\\3B x\\3Dy,$P|t
plus+one|uid=plus\\2Bone,$P|t
spaces|cn=\\20lead and trail\\20,$P|t
李|cn=李小龙,$P|t" "user_dns_are_stored_exactly_as_the_directory_spells_them"

# every stored DN finds its own entry again, and the stored id is that entry's entryUUID
bad=
while IFS='|' read -r name dn ext; do
	got=$(ldap_search -s base -b "$dn" '(objectClass=*)' entryUUID uid 2>/dev/null | sed -n 's/^entryUUID: //p')
	[[ $got == "$ext" ]] || bad+="$name ($dn): directory says '$got', stored '$ext'"$'\n'
done < <(q "SELECT u.user_name, s.dn, s.external_id FROM user_sources s JOIN users u ON u.id = s.user_id
             WHERE s.source = 'ldap'")
is "$bad" "" "stored_dns_round_trip_to_the_directory_and_ids_are_entryuuids"

emails=$(q "SELECT u.user_name, e.value, e.is_primary FROM user_emails e JOIN users u ON u.id = e.user_id
             WHERE e.source = 'ldap' ORDER BY u.user_name COLLATE \"C\", e.is_primary DESC, e.value")
is "$emails" "alice|alice@example.com|t
alice|alice.example@example.org|f
bob|bob@example.com|t
jsmith|john.smith@example.com|t
jürgen|juergen@example.com|t" "emails_are_mirrored_with_the_first_as_primary"

# --- groups and memberships ---------------------------------------------------------------
groups=$(q "SELECT name, dn FROM groups WHERE source = 'ldap' ORDER BY name COLLATE \"C\"")
is "$groups" "all-staff|cn=all-staff,$G
cycle-a|cn=cycle-a,$G
cycle-b|cn=cycle-b,$G
dangling|cn=dangling,$G
developers|cn=developers,$G
ldap-admins|cn=ldap-admins,$G
ops|cn=ops,$G" "groups_are_mirrored_and_the_ambiguous_name_is_left_out"

members=$(q "SELECT g.name, CASE WHEN m.member_user_id IS NOT NULL THEN 'user' ELSE 'group' END,
                    coalesce(u.user_name, mg.name)
               FROM group_members m JOIN groups g ON g.id = m.group_id
               LEFT JOIN users u ON u.id = m.member_user_id LEFT JOIN groups mg ON mg.id = m.member_group_id
              WHERE g.source = 'ldap' ORDER BY g.name COLLATE \"C\", 2, coalesce(u.user_name, mg.name) COLLATE \"C\"")
is "$members" "all-staff|group|developers
all-staff|group|ops
all-staff|user|multi
all-staff|user|odd
all-staff|user|李
cycle-a|group|cycle-b
cycle-a|user|bob
cycle-b|group|cycle-a
cycle-b|user|spaces
developers|group|ldap-admins
developers|user|alice
developers|user|jsmith
developers|user|jürgen
ldap-admins|user|boss
ldap-admins|user|carol
ldap-admins|user|plus+one
ops|user|alice
ops|user|dave" "memberships_of_all_three_schemas_resolve_whatever_the_dn_spelling"

roles=$(q "SELECT u.user_name, r.role, r.via FROM role_grants r JOIN users u ON u.id = r.user_id
            WHERE r.via LIKE 'group:%' ORDER BY u.user_name COLLATE \"C\", 2, 3")
is "$roles" "alice|developer|group:developers
boss|admin|group:ldap-admins
boss|developer|group:developers
jsmith|developer|group:developers
jürgen|developer|group:developers
plus+one|admin|group:ldap-admins
plus+one|developer|group:developers" "roles_follow_nested_groups_and_skip_disabled_users"

is "$(q "SELECT count(*) FROM audit_events WHERE action = 'user.offboard'")" 0 \
	"users_disabled_from_the_start_are_created_inactive_without_an_offboarding"
detail=$(q "SELECT detail FROM sync_runs WHERE id = 1")
like "$detail" '"conflicts_total": 4' "ambiguous_login_repo_login_and_both_same_named_groups_are_reported"
like "$detail" "uid=dave,$P\", \"reason\": \"repo login 'ALICE-GH' already belongs to another user; left unset\"" \
	"a_repo_login_held_by_another_user_is_left_unset_and_reported"
like "$detail" "cn=Alice Duplicate,$P\", \"reason\": \"another entry has the same uid 'alice'\"" \
	"the_duplicate_login_names_the_entry_and_the_reason"
like "$detail" "cn=DUP,ou=sub,$G" "the_same_named_group_in_another_ou_is_reported"
added=$(q "SELECT jsonb_array_length(detail->'users') FROM audit_events WHERE action = 'ldap.users.added'")
is "$added" 12 "every_added_user_is_listed_in_the_audit_log"
is "$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE detail ? 'members') FROM audit_events
          WHERE action = 'ldap.group.added'")" "7|6" "each_added_group_is_audited_with_its_first_members"
is "$(q "SELECT string_agg(m->>'user', ',' ORDER BY m->>'user') || '|' || string_agg(m->>'group', ',')
          FROM audit_events e, jsonb_array_elements(e.detail->'members') m
         WHERE e.action = 'ldap.group.added' AND e.target = 'developers'")" "alice,jsmith,jürgen|ldap-admins" \
	"the_added_event_names_the_groups_members"

# --- a second run changes nothing and writes nothing ---------------------------------------
snapshot() {
	q "SELECT 'users', id::text, xmin::text FROM users
	   UNION ALL SELECT 'sources', user_id || source, xmin::text FROM user_sources
	   UNION ALL SELECT 'emails', id::text, xmin::text FROM user_emails
	   UNION ALL SELECT 'groups', id::text, xmin::text FROM groups
	   UNION ALL SELECT 'members', group_id || '/' || coalesce(member_user_id, 0) || '/' || coalesce(member_group_id, 0), xmin::text FROM group_members
	   UNION ALL SELECT 'roles', user_id || role || via, xmin::text FROM role_grants
	   UNION ALL SELECT 'ldap_users', user_id::text, xmin::text FROM ldap_users
	   UNION ALL SELECT 'ldap_groups', group_id::text, xmin::text FROM ldap_groups
	   UNION ALL SELECT 'refs', group_id || kind || value, xmin::text FROM ldap_group_refs
	   UNION ALL SELECT 'memberof', user_id || group_key, xmin::text FROM ldap_user_memberof
	   UNION ALL SELECT 'state', key, xmin::text FROM sync_state
	   UNION ALL SELECT 'audit', count(*)::text, '' FROM audit_events WHERE action <> 'sync.request'
	   ORDER BY 1, 2"
}
before=$(snapshot)
sync_ldap
is "$SYNC_RC" 0 "second_sync_succeeds"
like "$SYNC_OUT" "\(incremental, cli:admin\) ok" "second_sync_is_incremental"
like "$SYNC_OUT" "users +0 added, 0 updated, 0 deactivated" "second_sync_counts_nothing"
is "$(snapshot)" "$before" "a_no_change_incremental_run_writes_no_row"
sync_ldap --full
like "$SYNC_OUT" "\(full, cli:admin\) ok" "forced_full_run_succeeds"
is "$(snapshot)" "$before" "a_no_change_full_run_writes_no_row"
is "$(q "SELECT count(*) FROM sync_runs WHERE status = 'ok'")" 3 "every_run_has_its_sync_runs_row"

# --- the sync routes need admin or security --------------------------------------------------
raw="tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
hash=$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)
q "INSERT INTO credentials (kind, token_hash, user_id, expires_at)
   SELECT 'session', decode('$hash', 'hex'), id, now() + interval '1 hour' FROM users WHERE user_name = 'alice'" >/dev/null
code=$(curl -s -o "$LDAPSYNC_DIR/dev.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $raw" \
	-H 'Content-Type: application/json' --data '{"full":true}' "$TESSERA_URL/admin/v1/sync/ldap")
is "$code" 403 "a_developer_cannot_request_a_sync"
out=$(TESSERA_TOKEN=$raw "$TESSERA" sync status 2>&1)
is "$?" 3 "a_developer_cannot_read_sync_status"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TESSERA_TOKEN" \
	"$TESSERA_URL/admin/v1/sync/nosuchkind")
is "$code" 404 "an_unknown_sync_kind_is_not_found"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TESSERA_TOKEN" \
	-H 'Content-Type: application/json' --data '{"full":"yes"}' "$TESSERA_URL/admin/v1/sync/ldap")
is "$code" 400 "a_non_boolean_option_is_refused"
out=$("$TESSERA" sync status 2>&1)
like "$out" "latest: ldap sync run 3 \(full, cli:admin\) ok" "sync_status_shows_the_latest_run"
out=$("$TESSERA" --json sync status 2>&1)
like "$out" '"kind": "ldap"' "sync_status_json_lists_the_ldap_kind"
run1=$(curl -s -H "Authorization: Bearer $TESSERA_TOKEN" "$TESSERA_URL/admin/v1/sync/runs/1")
like "$run1" '"users_added": ?12' "a_run_can_be_read_by_id"

ldapsync_finish
tap_done
