#!/usr/bin/env bash
# login_ldap.sh — issue 6 with a real slapd: `tessera login --ldap` with a
# good and a bad password, a disabled directory user refused even with the
# right password, a user inactive in tessera refused even when the bind
# succeeds, per-user throttling, and the password never in a log.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"
. "$TESSERA_SRCDIR/tests/lib/slapd.sh"

pg_start
slapd_start
dir=$(mktemp_dir)
export HOME=$dir/home
mkdir -p "$HOME"
P="ou=people,$TEST_LDAP_BASE"
ldap_add >"$dir/ldif.log" 2>&1 <<LDIF || fail "directory_fixture_loaded" "$(cat "$dir/ldif.log")"
dn: uid=alice,$P
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: alice-pw-1

dn: uid=carol,$P
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: carol-pw-1
employeeType: disabled

dn: uid=dan,$P
objectClass: inetOrgPerson
uid: dan
cn: Dan
sn: D
userPassword: dan-pw-1
LDIF
printf '%s' "$TEST_LDAP_BIND_PW" >"$dir/bind.pw"
chmod 600 "$dir/bind.pw"
tesserad_conf "$dir/t.conf" "[ldap]
uri = $TEST_LDAP_URI
bind_dn = $TEST_LDAP_BIND_DN
bind_password_file = $dir/bind.pw
user_base = $P
disabled_filter = (employeeType=disabled)"
"$TESSERAD" -c "$dir/t.conf" >"$dir/out" 2>"$dir/err" &
pid=$!
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || fail "tesserad ready" "$(tail "$dir/err")"
export TESSERA_URL=$TESSERAD_URL
# users as the directory sync would have mirrored them; dan is inactive in tessera
pg_psql "INSERT INTO users (user_name) VALUES ('alice'), ('carol');
INSERT INTO users (user_name, active, deactivated_at, deactivated_by) VALUES ('dan', false, now(), 'admin');" >/dev/null

out=$(printf 'alice-pw-1\n' | "$TESSERA" login --ldap alice 2>&1)
is "$?" 0 "login_with_the_right_password_succeeds"
like "$(TESSERA_TOKEN=$(cat "$HOME/.config/tessera/session") "$TESSERA" whoami)" "^alice" \
	"the_ldap_session_belongs_to_the_user"
is "$(pg_psql "SELECT auth_method FROM credentials c JOIN users u ON u.id = c.user_id WHERE u.user_name = 'alice'")" \
	ldap "the_session_records_the_ldap_method"

out=$(printf 'wrong\n' | HOME=$dir/o "$TESSERA" login --ldap alice 2>&1)
is "$?" 3 "login_with_a_wrong_password_exits_3"
like "$out" "bad user name or password" "wrong_password_is_explained_without_detail"
out=$(printf 'x\n' | HOME=$dir/o "$TESSERA" login --ldap nosuchuser 2>&1)
like "$out" "bad user name or password" "unknown_user_looks_like_a_wrong_password"
out=$(printf '\n' | HOME=$dir/o "$TESSERA" login --ldap alice 2>&1)
is "$?" 3 "an_empty_password_never_logs_in"

out=$(printf 'carol-pw-1\n' | HOME=$dir/o "$TESSERA" login --ldap carol 2>&1)
is "$?" 3 "a_user_disabled_in_the_directory_is_refused"
like "$out" "disabled" "the_refusal_says_the_account_is_disabled"
out=$(printf 'dan-pw-1\n' | HOME=$dir/o "$TESSERA" login --ldap dan 2>&1)
is "$?" 3 "a_user_inactive_in_tessera_is_refused_even_when_the_bind_succeeds"
like "$out" "deactivated" "the_refusal_says_deactivated"

# five failures for one user block that user (and only that user)
for _ in 1 2 3 4 5; do printf 'bad\n' | HOME=$dir/o "$TESSERA" login --ldap alice >/dev/null 2>&1; done
hdr=$(curl -s -D - -o /dev/null -X POST -d '{"user":"alice","password":"alice-pw-1"}' "$TESSERAD_URL/auth/v1/login/ldap")
like "$hdr" "HTTP/1.1 429" "five_failures_block_the_user_even_with_the_right_password"
like "$hdr" "Retry-After: [0-9]+" "the_block_says_when_to_retry"
if grep -rqsF -e "alice-pw-1" -e "carol-pw-1" -e "$TEST_LDAP_BIND_PW" "$dir/err" "$dir/out"; then
	fail "passwords_never_logged"
else
	ok "passwords_never_logged"
fi
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'auth.login' AND outcome = 'failure' AND actor = 'carol'")" 1 \
	"the_disabled_login_attempt_is_audited"
tap_done
