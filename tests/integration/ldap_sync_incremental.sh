#!/usr/bin/env bash
# ldap_sync_incremental.sh — what happens in slapd after a full sync is reflected by the next
# incremental run (modifyTimestamp high-water mark plus the list of entry ids): a disabled user is
# offboarded through the one offboarding path (credentials revoked, tokens stop working, receipt in
# the audit log), a deleted user too, a renamed user (modrdn) keeps their tessera identity with the
# new name and DN, an unchanged posixGroup whose memberUid no longer names anyone loses that member,
# group membership changes and new users arrive; re-enabling a user reinstates them (old credentials
# stay dead), but not one an admin offboarded.
set -uo pipefail
# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/ldapsync.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/ldapsync.sh"

pg_start
ldapsync_slapd 500 paged memberof ppolicy
P=$TEST_LDAP_PEOPLE G=$TEST_LDAP_GROUPS

{
	for i in $(seq -w 1 40); do
		printf 'dn: uid=u%s,%s\nobjectClass: inetOrgPerson\nuid: u%s\ncn: User %s\nsn: U\nmail: u%s@example.com\n\n' \
			"$i" "$P" "$i" "$i" "$i"
	done
	printf 'dn: cn=developers,%s\nobjectClass: groupOfNames\ncn: developers\n' "$G"
	for i in 01 02 03 04 05 06 07 08 09 10; do printf 'member: uid=u%s,%s\n' "$i" "$P"; done
	printf '\ndn: cn=ops,%s\nobjectClass: posixGroup\ncn: ops\ngidNumber: 2000\n' "$G"
	for i in 11 12 13; do printf 'memberUid: u%s\n' "$i"; done
	printf '\ndn: cn=temp,%s\nobjectClass: groupOfNames\ncn: temp\nmember: uid=u30,%s\n\n' "$G" "$P"
} | ldap_add >"$LDAPSYNC_DIR/fixture.log" 2>&1 || fail "fixture_loaded" "$(tail -5 "$LDAPSYNC_DIR/fixture.log")"

# modifyTimestamp has one-second resolution and the mark is inclusive (>=): one more entry a
# second later moves the mark past the fixture, so the incremental run below re-reads only what
# changed (plus that marker)
sleep 1.1
ldap_add >/dev/null <<LDIF || fail "marker_entry_added"
dn: uid=marker,$P
objectClass: inetOrgPerson
uid: marker
cn: Marker
sn: M
LDIF

ldapsync_conf
ldapsync_start

# token NAME: a session credential for user NAME, printed (its hash is what the database holds)
token() {
	local raw hash
	raw="tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)"
	hash=$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)
	q "INSERT INTO credentials (kind, token_hash, user_id, expires_at)
	   SELECT 'session', decode('$hash', 'hex'), id, now() + interval '1 hour' FROM users
	    WHERE user_name = '$1'" >/dev/null
	printf '%s' "$raw"
}
whoami_rc() {
	TESSERA_TOKEN=$1 "$TESSERA" whoami >/dev/null 2>&1
	echo $?
}
col() { # col USER COLUMN
	q "SELECT $2 FROM users WHERE user_name = '$1' AND deleted_at IS NULL"
}

sync_ldap
is "$SYNC_RC" 0 "initial_full_sync_succeeds" || diag "$SYNC_OUT"
like "$SYNC_OUT" "users +41 added" "initial_sync_adds_forty_one_users"
u02_id=$(col u02 id) u04_id=$(col u04 id) u12_id=$(col u12 id)
tok02=$(token u02)
tok03=$(token u03)
is "$(whoami_rc "$tok02")" 0 "before_the_change_u02s_token_works"
is "$(whoami_rc "$tok03")" 0 "before_the_change_u03s_token_works"
"$TESSERA" user offboard u07 --reason "left the project" >/dev/null 2>&1
is "$(col u07 active)" f "an_admin_offboarded_u07_independently"

# --- the changes in the directory ------------------------------------------------------------
ldap_modify >/dev/null <<LDIF
dn: uid=u02,$P
changetype: modify
add: pwdAccountLockedTime
pwdAccountLockedTime: 000001010000Z

dn: cn=developers,$G
changetype: modify
delete: member
member: uid=u05,$P
-
add: member
member: uid=u20,$P

dn: uid=u06,$P
changetype: modify
replace: mail
mail: u06.new@example.com
LDIF
LDAPNOINIT=1 ldapdelete -x -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" "uid=u03,$P"
LDAPNOINIT=1 ldapdelete -x -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" "cn=temp,$G"
LDAPNOINIT=1 ldapmodrdn -x -r -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" \
	"uid=u04,$P" "uid=u04-renamed"
LDAPNOINIT=1 ldapmodrdn -x -r -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" \
	"uid=u12,$P" "uid=u12-new"
ldap_add >/dev/null <<LDIF
dn: uid=u41,$P
objectClass: inetOrgPerson
uid: u41
cn: User 41
sn: U
LDIF
ldap_modify >/dev/null <<LDIF
dn: cn=developers,$G
changetype: modify
add: member
member: uid=u41,$P
LDIF

sync_ldap
is "$SYNC_RC" 0 "incremental_sync_after_the_changes_succeeds" || diag "$SYNC_OUT"
like "$SYNC_OUT" "\(incremental, cli:admin\) ok" "the_run_is_incremental"
like "$SYNC_OUT" "users +1 added, 3 updated, 2 deactivated" "counts_one_new_three_changed_two_deactivated"
detail=$(q "SELECT detail FROM sync_runs ORDER BY id DESC LIMIT 1")
like "$detail" '"users_read": [1-9]' "the_incremental_run_read_only_changed_entries_in_full"
like "$detail" '"users_read": [1-9],' "the_incremental_run_did_not_read_every_user_in_full"

# disabled
is "$(col u02 "active || '|' || deactivated_by || '|' || deactivated_reason")" "false|ldap|disabled in the directory" \
	"a_disabled_user_is_deactivated_by_ldap"
is "$(q "SELECT active FROM user_sources WHERE user_id = $u02_id AND source = 'ldap'")" f \
	"the_directory_view_of_the_disabled_user_is_inactive"
is "$(q "SELECT count(*) FROM credentials WHERE user_id = $u02_id AND revoked_at IS NULL")" 0 \
	"the_disabled_users_credentials_are_revoked"
is "$(whoami_rc "$tok02")" 3 "the_disabled_users_token_stops_working"
receipt=$(q "SELECT actor || '|' || (detail->>'trigger') || '|' || (detail->>'reason') || '|' || jsonb_array_length(detail->'credentials')
               FROM audit_events WHERE action = 'user.offboard' AND user_id = $u02_id")
is "$receipt" "ldap-sync|ldap|disabled in the directory|1" "the_offboarding_receipt_lists_the_revoked_credential"

# deleted
is "$(col u03 "active || '|' || deactivated_reason")" "false|removed from the directory" \
	"a_deleted_user_is_deactivated"
is "$(whoami_rc "$tok03")" 3 "the_deleted_users_token_stops_working"
is "$(q "SELECT count(*) FROM ldap_users lu JOIN users u ON u.id = lu.user_id WHERE u.user_name = 'u03'")" 0 \
	"a_deleted_entry_is_no_longer_mirrored"
is "$(q "SELECT s.active FROM user_sources s JOIN users u ON u.id = s.user_id WHERE u.user_name = 'u03'")" f \
	"the_deleted_users_source_row_stays_as_evidence"

# renamed
is "$(q "SELECT id || '|' || user_name || '|' || active FROM users WHERE id = $u04_id")" "$u04_id|u04-renamed|true" \
	"a_renamed_user_keeps_their_identity_under_the_new_login"
is "$(q "SELECT dn FROM user_sources WHERE user_id = $u04_id AND source = 'ldap'")" "uid=u04-renamed,$P" \
	"a_renamed_users_dn_follows_the_modrdn"
is "$(q "SELECT user_name FROM users WHERE id = $u12_id")" "u12-new" "the_second_renamed_user_is_renamed_too"

# memberships
devs=$(q "SELECT string_agg(u.user_name, ',' ORDER BY u.user_name) FROM group_members m
           JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.member_user_id WHERE g.name = 'developers'")
is "$devs" "u01,u02,u04-renamed,u06,u07,u08,u09,u10,u20,u41" "developers_membership_follows_the_directory"
delta=$(q "SELECT (SELECT string_agg(m->>'user', ',' ORDER BY m->>'user') FROM jsonb_array_elements(detail->'added') m)
               || '|' || (SELECT string_agg(m->>'user', ',' ORDER BY m->>'user') FROM jsonb_array_elements(detail->'removed') m)
             FROM audit_events WHERE action = 'ldap.group.members' AND target = 'developers'")
is "$delta" "u20,u41|u03,u05" "the_membership_delta_is_audited_once_for_the_group"
ops=$(q "SELECT string_agg(u.user_name, ',' ORDER BY u.user_name) FROM group_members m
          JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.member_user_id WHERE g.name = 'ops'")
is "$ops" "u11,u13" "an_unchanged_posix_group_drops_a_memberuid_that_no_longer_names_anyone"
grants=$(q "SELECT string_agg(u.user_name, ',' ORDER BY u.user_name) FROM role_grants r JOIN users u ON u.id = r.user_id
             WHERE r.role = 'developer'")
is "$grants" "u01,u04-renamed,u06,u08,u09,u10,u20,u41" "developer_grants_follow_active_members_only"
is "$(q "SELECT string_agg(value, ',') FROM user_emails e JOIN users u ON u.id = e.user_id WHERE u.user_name = 'u06'")" \
	"u06.new@example.com" "a_changed_mail_is_updated"
is "$(col u41 active)" t "a_new_user_is_added"
is "$(q "SELECT count(*) FROM groups WHERE name = 'temp'")" 0 "a_deleted_group_is_removed"
like "$SYNC_OUT" "groups +0 added, 1 updated, 1 removed" "the_group_counts_say_one_updated_one_removed"
is "$(q "SELECT (SELECT count(*) FROM ldap_group_refs r WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = r.group_id))
               + (SELECT count(*) FROM ldap_user_memberof m WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id))")" 0 \
	"no_orphan_member_references_are_left"
is "$(col u07 active)" f "an_admin_offboarded_user_stays_inactive"

# --- re-enabling --------------------------------------------------------------------------------
ldap_modify >/dev/null <<LDIF
dn: uid=u02,$P
changetype: modify
delete: pwdAccountLockedTime

dn: uid=u07,$P
changetype: modify
replace: cn
cn: User 07 (back)
LDIF
sync_ldap
is "$SYNC_RC" 0 "incremental_sync_after_re_enabling_succeeds" || diag "$SYNC_OUT"
is "$(col u02 "active::text || '|' || coalesce(deactivated_by, '-')")" "true|-" "a_re_enabled_user_is_reinstated"
is "$(q "SELECT count(*) FROM audit_events WHERE action = 'user.reinstate' AND user_id = $u02_id")" 1 \
	"the_reinstatement_is_audited"
is "$(whoami_rc "$tok02")" 3 "old_credentials_stay_dead_after_reinstatement"
is "$(q "SELECT count(*) FROM role_grants WHERE user_id = $u02_id AND role = 'developer'")" 1 \
	"the_reinstated_user_gets_their_group_role_back"
is "$(col u07 "active::text || '|' || display_name")" "false|User 07 (back)" \
	"an_admin_offboarded_user_is_updated_but_not_reinstated_by_the_directory"

sync_ldap
like "$SYNC_OUT" "users +0 added, 0 updated, 0 deactivated" "the_run_after_that_finds_nothing_new"

ldapsync_finish
tap_done
