#!/usr/bin/env bash
# ldap_sync_failures.sh — tesserad starts and serves without an [ldap] section (and a requested
# LDAP sync says it is not configured); an unreachable directory, bad service credentials and a
# directory that stops answering (timeout) each fail the run with a clear error in sync_runs and
# the log, change nothing, never leak the bind password, and leave the broker serving while the
# run waits (`tessera sync run` on a terminal shows the run's progress meanwhile); the next run
# retries and succeeds, and so does the schedule on its own.
set -uo pipefail
# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/ldapsync.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/ldapsync.sh"

pg_start
ldapsync_slapd 500
P=$TEST_LDAP_PEOPLE
{
	for i in $(seq -w 1 10); do
		printf 'dn: uid=u%s,%s\nobjectClass: inetOrgPerson\nuid: u%s\ncn: User %s\nsn: U\n\n' "$i" "$P" "$i" "$i"
	done
} | ldap_add >/dev/null 2>&1 || fail "fixture_loaded"

last_run() { q "SELECT status || '|' || coalesce(error, '') FROM sync_runs ORDER BY id DESC LIMIT 1"; }
n_users() { q "SELECT count(*) FROM users u JOIN user_sources s ON s.user_id = u.id AND s.source = 'ldap' WHERE u.active"; }

# --- no [ldap] section -----------------------------------------------------------------------------
unset TESSERAD_PORT
tesserad_conf "$LDAPSYNC_DIR/tessera.conf"
ldapsync_start
is "$(curl -s -o /dev/null -w '%{http_code}' "$TESSERA_URL/readyz")" 200 "tesserad_serves_without_an_ldap_section"
sync_ldap
is "$SYNC_RC" 1 "a_requested_ldap_sync_without_ldap_config_exits_1"
like "$SYNC_OUT" "\[ldap\] uri is not configured" "it_says_ldap_is_not_configured"
sleep 6 # the job thread wakes every 5 s: a scheduled run would have happened by now
is "$(q "SELECT count(*) FROM sync_runs WHERE started_by = 'schedule'")" 0 "no_scheduled_ldap_run_without_a_uri"
ldapsync_stop

# --- directory unreachable ----------------------------------------------------------------------------
closed=$(free_port)
ldapsync_conf "uri = ldap://127.0.0.1:$closed"
ldapsync_start
sync_ldap
is "$SYNC_RC" 1 "sync_against_an_unreachable_directory_exits_1"
like "$SYNC_OUT" "service bind to ldap://127.0.0.1:$closed as 'cn=tessera-sync,dc=example,dc=com' failed: Can't contact LDAP server" \
	"the_unreachable_directory_is_named_in_the_error"
like "$(last_run)" "^failed\|service bind to ldap://127.0.0.1:$closed" "the_failure_is_recorded_in_sync_runs"
is "$(n_users)" 0 "nothing_was_written"
ldapsync_stop

# --- bad service credentials --------------------------------------------------------------------------------
printf 'not-the-password-%s\n' "$RANDOM" >"$LDAPSYNC_DIR/wrong.pw"
chmod 600 "$LDAPSYNC_DIR/wrong.pw"
ldapsync_conf "bind_password_file = $LDAPSYNC_DIR/wrong.pw"
ldapsync_start
sync_ldap
is "$SYNC_RC" 1 "sync_with_a_wrong_bind_password_exits_1"
like "$SYNC_OUT" "service bind .* failed: Invalid credentials" "the_bad_credentials_are_named"
if grep -rqF "$(cat "$LDAPSYNC_DIR/wrong.pw")" "$LDAPSYNC_DIR"/tesserad.* ||
	[[ -n $(q "SELECT 1 FROM sync_runs WHERE error LIKE '%not-the-password%' OR detail::text LIKE '%not-the-password%'") ]]; then
	fail "the_bind_password_never_reaches_the_log_or_postgres"
else
	ok "the_bind_password_never_reaches_the_log_or_postgres"
fi
ldapsync_stop

# --- a good run, then a directory that stops answering --------------------------------------------------------
ldapsync_conf "timeout = 2s"
ldapsync_start
sync_ldap
is "$SYNC_RC" 0 "a_good_run_succeeds" || diag "$SYNC_OUT"
is "$(n_users)" 10 "ten_users_synced"

kill -STOP "$TEST_SLAPD_PID"
on_exit "kill -CONT $TEST_SLAPD_PID 2>/dev/null"
t0=$SECONDS
# on a pseudo-terminal (script(1)), so the CLI shows progress while it waits
timeout 120 script -qefc "$TESSERA sync run ldap" /dev/null >"$LDAPSYNC_DIR/stalled.out" 2>&1 &
stalled=$!
sleep 0.5
hz_start=$(date +%s%N)
hz=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$TESSERA_URL/healthz")
hz_ms=$((($(date +%s%N) - hz_start) / 1000000))
is "$hz" 200 "healthz_answers_while_the_sync_waits_on_the_directory"
if ((hz_ms < 1000)); then
	ok "healthz_answers_within_a_second_during_the_stall"
else
	fail "healthz_answers_within_a_second_during_the_stall" "took ${hz_ms} ms"
fi
who=$("$TESSERA" whoami 2>&1)
like "$who" "^admin" "admin_api_answers_while_the_sync_waits"
wait "$stalled"
rc=$?
out=$(cat "$LDAPSYNC_DIR/stalled.out")
is "$rc" 1 "a_sync_against_a_stalled_directory_exits_1"
like "$out" "timed out" "the_stall_is_reported_as_a_timeout"
like "$out" $'\r''ldap sync run [0-9]+: (connecting|starting)' "a_terminal_shows_the_runs_progress_while_it_waits"
if ((SECONDS - t0 < 30)); then
	ok "the_timeout_is_bounded_by_the_configured_timeout"
else
	fail "the_timeout_is_bounded_by_the_configured_timeout" "took $((SECONDS - t0)) s"
fi
like "$(last_run)" "^failed\|.*timed out" "the_timeout_is_recorded_in_sync_runs"
is "$(n_users)" 10 "the_timed_out_run_deactivated_no_one"
like "$(cat "$LDAPSYNC_DIR/tesserad.err")" "event=ldap_sync_failed .*timed out" "the_timeout_is_logged"

kill -CONT "$TEST_SLAPD_PID"
sync_ldap
is "$SYNC_RC" 0 "the_next_run_retries_and_succeeds" || diag "$SYNC_OUT"
is "$(n_users)" 10 "all_users_still_active_after_the_retry"

# the schedule: pretend the interval has passed; the job thread wakes within 5 s and runs on its own
LDAPNOINIT=1 ldapdelete -x -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" "uid=u10,$P"
q "UPDATE settings SET updated_at = now() - interval '30 days' WHERE key = 'job.sync.ldap.last_started'" >/dev/null
for ((i = 0; i < 150; i++)); do
	[[ $(q "SELECT count(*) FROM sync_runs WHERE started_by = 'schedule' AND status <> 'running'") -gt 0 ]] && break
	sleep 0.1
done
is "$(q "SELECT status || '|' || users_deactivated FROM sync_runs WHERE started_by = 'schedule'")" "ok|1" \
	"a_scheduled_run_happens_on_its_own_and_sees_the_deletion"

ldapsync_finish
tap_done
