#!/usr/bin/env bash
# ldap_sync_safety.sh — a mistyped base DN must never offboard the company: a user base that does
# not exist, or exists but holds nobody, trips the safety valve (the run fails, says why, changes
# nothing, offboards no one); a group base that matches nothing does the same for groups; a run
# that deactivates no more than max_deactivate_ratio goes through, one that would deactivate more
# stops, and --force lets it through (recorded as forced).
set -uo pipefail
# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/ldapsync.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/ldapsync.sh"

pg_start
ldapsync_slapd 500
P=$TEST_LDAP_PEOPLE G=$TEST_LDAP_GROUPS
{
	for i in $(seq -w 1 20); do
		printf 'dn: uid=u%s,%s\nobjectClass: inetOrgPerson\nuid: u%s\ncn: User %s\nsn: U\n\n' "$i" "$P" "$i" "$i"
	done
	printf 'dn: cn=developers,%s\nobjectClass: groupOfNames\ncn: developers\nmember: uid=u01,%s\n\n' "$G" "$P"
	printf 'dn: ou=empty,%s\nobjectClass: organizationalUnit\nou: empty\n\n' "$TEST_LDAP_BASE"
} | ldap_add >"$LDAPSYNC_DIR/fixture.log" 2>&1 || fail "fixture_loaded" "$(tail -5 "$LDAPSYNC_DIR/fixture.log")"

ldapsync_conf
ldapsync_start
sync_ldap
is "$SYNC_RC" 0 "initial_sync_succeeds" || diag "$SYNC_OUT"
like "$SYNC_OUT" "users +20 added" "initial_sync_adds_twenty_users"

state() { # what a tripped valve must leave untouched
	q "SELECT (SELECT count(*) FROM users WHERE active),
	          (SELECT count(*) FROM user_sources WHERE source = 'ldap' AND active),
	          (SELECT count(*) FROM ldap_users), (SELECT count(*) FROM groups WHERE source = 'ldap'),
	          (SELECT count(*) FROM group_members), (SELECT count(*) FROM role_grants),
	          (SELECT count(*) FROM audit_events WHERE action NOT IN ('sync.request'))"
}
restart_with() {
	ldapsync_stop
	ldapsync_conf "$1"
	ldapsync_start
}
before=$(state)

# --- a user base that does not exist ------------------------------------------------------------
restart_with "user_base = ou=peple,dc=example,dc=com"
sync_ldap
is "$SYNC_RC" 1 "sync_with_a_missing_user_base_exits_1"
like "$SYNC_OUT" "safety valve: this run would deactivate 20 of 20 active directory users \(100%\) \(the user base DN does not exist\)" \
	"the_valve_says_how_many_and_why"
like "$SYNC_OUT" "nothing was changed \(re-run with --force if this is intended\)" "the_valve_says_nothing_changed_and_how_to_override"
is "$(state)" "$before" "a_tripped_valve_changes_nothing"
is "$(q "SELECT count(*) FROM audit_events WHERE action = 'user.offboard'")" 0 "a_tripped_valve_offboards_no_one"
is "$(q "SELECT status || '|' || (detail->'safety_valve'->>'would_deactivate') || '|' || (detail->'safety_valve'->>'active_users')
          FROM sync_runs ORDER BY id DESC LIMIT 1")" "failed|20|20" "the_failed_run_records_the_valve_figures"
like "$(cat "$LDAPSYNC_DIR/tesserad.err")" "event=ldap_sync_failed .*safety valve" "the_valve_is_logged"

# --- a user base that exists but holds nobody ------------------------------------------------------
restart_with "user_base = ou=empty,dc=example,dc=com"
sync_ldap
is "$SYNC_RC" 1 "sync_with_an_empty_user_base_exits_1"
like "$SYNC_OUT" "deactivate 20 of 20 active directory users \(100%\) \(the user search found no entries\)" \
	"the_valve_trips_on_a_base_that_matches_nothing"
is "$(state)" "$before" "the_empty_base_changes_nothing"

# --- a group base that matches nothing ----------------------------------------------------------------
restart_with "group_base = ou=grups,dc=example,dc=com"
sync_ldap
is "$SYNC_RC" 1 "sync_with_a_missing_group_base_exits_1"
like "$SYNC_OUT" "remove 1 of 1 directory groups \(100%\) \(the group base DN does not exist\)" \
	"the_group_valve_trips_too"
is "$(state)" "$before" "the_missing_group_base_changes_nothing"

# --- under the limit, over the limit, forced ------------------------------------------------------------
restart_with ""
for u in u19 u20; do
	LDAPNOINIT=1 ldapdelete -x -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" "uid=$u,$P"
done
sync_ldap
is "$SYNC_RC" 0 "deactivating_ten_percent_is_allowed" || diag "$SYNC_OUT"
like "$SYNC_OUT" "2 deactivated" "two_users_deactivated"
for u in u16 u17 u18; do
	LDAPNOINIT=1 ldapdelete -x -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" "uid=$u,$P"
done
sync_ldap
is "$SYNC_RC" 1 "deactivating_more_than_ten_percent_stops" || diag "$SYNC_OUT"
like "$SYNC_OUT" "deactivate 3 of 18 active directory users \(17%\)" "the_valve_counts_active_users_only"
is "$(q "SELECT count(*) FROM users WHERE active AND user_name IN ('u16', 'u17', 'u18')")" 3 \
	"the_stopped_run_left_the_three_active"
sync_ldap --force
is "$SYNC_RC" 0 "force_overrides_the_valve" || diag "$SYNC_OUT"
like "$SYNC_OUT" "3 deactivated" "the_forced_run_deactivates_the_three"
like "$SYNC_OUT" "forced\) ok" "the_forced_run_is_labelled"
is "$(q "SELECT forced FROM sync_runs ORDER BY id DESC LIMIT 1")" t "sync_runs_records_the_force"
is "$(q "SELECT count(*) FROM audit_events WHERE action = 'user.offboard' AND actor = 'ldap-sync'")" 5 \
	"each_deactivation_went_through_the_offboarding_path"

ldapsync_finish
tap_done
