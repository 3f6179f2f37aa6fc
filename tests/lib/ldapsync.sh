# shellcheck shell=bash
# tests/lib/ldapsync.sh — shared set-up of the LDAP sync tests (tests/integration/ldap_*.sh):
# a real PostgreSQL, a real slapd, a tesserad configured for it and an admin token.
#
#   ldapsync_slapd [SIZELIMIT [FEATURE...]]
#                         slapd_start with those arguments, plus a service account
#                         cn=tessera-sync,dc=example,dc=com (not the rootdn, so the size limit
#                         applies to it) whose password is in $LDAPSYNC_DIR/ldap.pw. Exports
#                         LDAPSYNC_BIND_DN and LDAPSYNC_DIR.
#   ldapsync_conf [EXTRA_LDAP_KEYS]
#                         writes $LDAPSYNC_DIR/tessera.conf: [ldap] for that slapd (users under
#                         ou=people, groups under ou=groups, disabled_filter
#                         (|(pwdAccountLockedTime=*)(employeeType=disabled)), repo_login_attr
#                         employeeNumber, [roles] admin = ldap-admins, developer = developers)
#                         followed by EXTRA_LDAP_KEYS lines (later keys win: they replace same-named
#                         ones).
#   ldapsync_start        `tesserad migrate`, marks the schedule as just run (so no scheduled run
#                         races the test's own), starts tesserad, waits for /readyz and exports
#                         TESSERA_URL and TESSERA_TOKEN (the bootstrap admin token). Registers the
#                         stop with on_exit.
#   ldapsync_stop         SIGTERM tesserad and wait.
#   ldapsync_finish       ldapsync_stop, then one test point: tesserad's log holds no sanitizer report
#                         (AddressSanitizer, LeakSanitizer, UBSan: the --enable-sanitizers build);
#                         call it just before tap_done.
#   sync_ldap [ARGS...]   `tessera sync run ldap ARGS`; sets SYNC_OUT (stdout+stderr) and SYNC_RC.
#   q SQL                 pg_psql with one statement; prints the rows ('|'-separated).

if [[ -n ${_TESSERA_LDAPSYNC_SH:-} ]]; then
	return 0
fi
_TESSERA_LDAPSYNC_SH=1

# shellcheck source=tests/lib/common.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tests/lib/pg.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"
# shellcheck source=tests/lib/slapd.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/slapd.sh"

LDAPSYNC_PID=

ldapsync_slapd() {
	LDAPSYNC_DIR=$(mktemp_dir ldapsync) || die "ldapsync: cannot create a temp dir"
	export LDAPSYNC_DIR
	slapd_start "$@"
	export LDAPSYNC_BIND_DN="cn=tessera-sync,$TEST_LDAP_BASE"
	head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$LDAPSYNC_DIR/ldap.pw"
	chmod 0600 "$LDAPSYNC_DIR/ldap.pw"
	ldap_add >/dev/null <<-LDIF || die "ldapsync: cannot add the service account"
		dn: $LDAPSYNC_BIND_DN
		objectClass: organizationalRole
		objectClass: simpleSecurityObject
		cn: tessera-sync
		userPassword: $(cat "$LDAPSYNC_DIR/ldap.pw")
	LDIF
}

ldapsync_conf() {
	local extra=${1:-} base
	base="uri = $TEST_LDAP_URI
bind_dn = $LDAPSYNC_BIND_DN
bind_password_file = $LDAPSYNC_DIR/ldap.pw
user_base = $TEST_LDAP_PEOPLE
group_base = $TEST_LDAP_GROUPS
disabled_filter = (|(pwdAccountLockedTime=*)(employeeType=disabled))
repo_login_attr = employeeNumber
sync_interval = 7d
timeout = 5s"
	# later keys replace earlier ones of the same name
	local merged
	merged=$(printf '%s\n%s\n' "$base" "$extra" | awk -F' = ' 'NF { k[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
		END { for (i = 1; i <= n; i++) if (k[order[i]] !~ / = $/) print k[order[i]] }')
	unset TESSERAD_PORT
	tesserad_conf "$LDAPSYNC_DIR/tessera.conf" "[roles]
admin = ldap-admins
developer = developers

[ldap]
$merged"
}

ldapsync_start() {
	local conf=$LDAPSYNC_DIR/tessera.conf
	"$TESSERAD" -c "$conf" migrate 2>"$LDAPSYNC_DIR/migrate.log" ||
		die "ldapsync: tesserad migrate failed: $(tail -5 "$LDAPSYNC_DIR/migrate.log")"
	pg_psql "INSERT INTO settings (key, value) VALUES ('job.sync.ldap.last_started', now()::text)
	         ON CONFLICT (key) DO UPDATE SET value = now()::text, updated_at = now()" >/dev/null
	"$TESSERAD" -c "$conf" >>"$LDAPSYNC_DIR/tesserad.out" 2>>"$LDAPSYNC_DIR/tesserad.err" &
	LDAPSYNC_PID=$!
	on_exit ldapsync_stop
	wait_http "$TESSERAD_URL/readyz" 30 || die "ldapsync: tesserad not ready: $(tail -20 "$LDAPSYNC_DIR/tesserad.err")"
	local tok
	tok=$(sed -n 's/^bootstrap token: //p' "$LDAPSYNC_DIR/tesserad.out" | head -n 1)
	[[ -n $tok ]] || die "ldapsync: no bootstrap token printed"
	export TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$tok
}

ldapsync_stop() {
	local i
	[[ -n $LDAPSYNC_PID ]] || return 0
	if pid_alive "$LDAPSYNC_PID"; then
		kill -TERM "$LDAPSYNC_PID" 2>/dev/null
		for ((i = 0; i < 300; i++)); do
			pid_alive "$LDAPSYNC_PID" || break
			sleep 0.1
		done
	fi
	wait "$LDAPSYNC_PID" 2>/dev/null
	LDAPSYNC_PID=
	return 0
}

ldapsync_finish() {
	local reports
	ldapsync_stop
	reports=$(grep -h -A12 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LDAPSYNC_DIR"/tesserad.err 2>/dev/null | head -40)
	if [[ -z $reports ]]; then
		ok "tesserad_logged_no_sanitizer_report"
	else
		fail "tesserad_logged_no_sanitizer_report" "$reports"
	fi
}

# shellcheck disable=SC2034 # SYNC_OUT and SYNC_RC are for the caller
sync_ldap() {
	SYNC_OUT=$(timeout 300 "$TESSERA" sync run ldap "$@" 2>&1)
	SYNC_RC=$?
}

q() {
	pg_psql "$1"
}
