# shellcheck shell=bash
# tests/lib/slapd.sh — a throwaway OpenLDAP slapd for tessera's tests (one per script).
#
#   slapd_start [SIZELIMIT [FEATURE...]]
#                            writes an old-style slapd.conf (-f) in a temp dir: core, cosine,
#                            inetorgperson and nis schemas, one mdb database for dc=example,dc=com
#                            with a generated rootpw, global `sizelimit SIZELIMIT` (default 500;
#                            note the rootdn is exempt from limits), anonymous read access;
#                            starts /usr/sbin/slapd on ldap://127.0.0.1:PORT/ only, waits for it,
#                            adds dc=example,dc=com, ou=people and ou=groups. FEATUREs (optional):
#                              paged     paged searches (RFC 2696) may return more than SIZELIMIT
#                                        entries in total (size.prtotal=unlimited), as Active
#                                        Directory and most operators allow; plain searches stay
#                                        limited
#                              memberof  the memberof overlay: users get memberOf from groupOfNames
#                              ppolicy   the ppolicy overlay with a default policy (pwdLockout):
#                                        pwdAccountLockedTime locks an account (its binds fail)
#                              tls       a throwaway CA and a server certificate for 127.0.0.1;
#                                        StartTLS on the ldap:// port and ldaps:// on a second one
#                                        (exports TEST_LDAPS_URI and TEST_LDAP_CA_FILE)
#                            $TESSERA_SLAPD_EXTRA_CONF, when set, is appended to the database section
#                            (e.g. access rules a test needs).
#                            Exports
#                              TEST_LDAP_URI        ldap://127.0.0.1:PORT
#                              TEST_LDAP_BASE       dc=example,dc=com
#                              TEST_LDAP_PEOPLE     ou=people,dc=example,dc=com
#                              TEST_LDAP_GROUPS     ou=groups,dc=example,dc=com
#                              TEST_LDAP_BIND_DN    cn=admin,dc=example,dc=com
#                              TEST_LDAP_BIND_PW    the generated root password
#                              TEST_SLAPD_DIR       temp dir (slapd.conf, db/, slapd.log, slapd.pid)
#                              TEST_SLAPD_PID       slapd's pid
#                              TEST_LDAPS_URI       ldaps://127.0.0.1:PORT2 (feature tls)
#                              TEST_LDAP_CA_FILE    the CA that signed slapd's certificate (tls)
#                            The stop is registered with on_exit. If slapd is missing or does not
#                            start: prints "Bail out! ..." and EXITS the script with status 1.
#   slapd_stop               SIGTERM by pid file, waits until gone, removes the dir. Idempotent.
#   ldap_add [ARGS...]       ldapadd -x as the root DN, LDIF on stdin
#   ldap_modify [ARGS...]    ldapmodify -x as the root DN, LDIF on stdin
#   ldap_search [ARGS...]    ldapsearch -x -LLL as the root DN under TEST_LDAP_BASE; ARGS are
#                            e.g. a filter and attribute names
# The OpenLDAP client tools here run with LDAPNOINIT=1, so /etc/ldap/ldap.conf and ~/.ldaprc
# cannot change them.

if [[ -n ${_TESSERA_SLAPD_SH:-} ]]; then
	return 0
fi
_TESSERA_SLAPD_SH=1

# shellcheck source=tests/lib/common.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TESSERA_SLAPD=${TESSERA_SLAPD:-/usr/sbin/slapd}

_slapd_fail() {
	local dir=$1
	shift
	if [[ -s $dir/slapd.log ]]; then
		printf '# --- %s (last 30 lines)\n' "$dir/slapd.log"
		tail -n 30 "$dir/slapd.log" | sed 's/^/# /'
	fi
	die "slapd_start: $*"
}

slapd_start() {
	local sizelimit=${1:-500} dir port sport pw pid _try i t schema f urls
	local paged=0 memberof=0 ppolicy=0 tls=0 limitline modules overlays tlsconf
	[[ -z ${TEST_SLAPD_PID:-} ]] || die "slapd_start: slapd already running (one per script)"
	[[ $sizelimit =~ ^([0-9]+|unlimited)$ ]] || die "slapd_start: bad sizelimit '$sizelimit'"
	shift $(($# > 0 ? 1 : 0))
	for f in "$@"; do
		case $f in
		paged) paged=1 ;;
		memberof) memberof=1 ;;
		ppolicy) ppolicy=1 ;;
		tls) tls=1 ;;
		*) die "slapd_start: unknown feature '$f' (paged, memberof, ppolicy, tls)" ;;
		esac
	done
	[[ -x $TESSERA_SLAPD ]] ||
		die "slapd_start: $TESSERA_SLAPD not found; install the Debian packages 'slapd ldap-utils'"
	for t in ldapsearch ldapadd ldapmodify; do
		command -v "$t" >/dev/null ||
			die "slapd_start: $t not found; install the Debian packages 'slapd ldap-utils'"
	done
	for schema in core cosine inetorgperson nis; do
		[[ -r /etc/ldap/schema/$schema.schema ]] ||
			die "slapd_start: /etc/ldap/schema/$schema.schema missing; install the Debian package 'slapd'"
	done

	dir=$(mktemp_dir slapd) || die "slapd_start: cannot create a temp dir"
	mkdir "$dir/db"
	pw=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
	TEST_SLAPD_DIR=$dir
	on_exit slapd_stop

	limitline="sizelimit $sizelimit"
	if ((paged)) && [[ $sizelimit != unlimited ]]; then
		limitline="sizelimit size.soft=$sizelimit size.hard=$sizelimit size.prtotal=unlimited"
	fi
	modules='' overlays='' tlsconf=''
	if ((memberof)); then
		modules+=$'moduleload memberof\n'
		overlays+=$'overlay memberof\nmemberof-refint TRUE\n'
	fi
	if ((ppolicy)); then
		modules+=$'moduleload ppolicy\n'
		overlays+=$'overlay ppolicy\nppolicy_default "cn=default,ou=policies,dc=example,dc=com"\n'
	fi
	if ((tls)); then
		command -v openssl >/dev/null || die "slapd_start: openssl not found (Debian package openssl)"
		mkdir "$dir/tls"
		(
			cd "$dir/tls" &&
				openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
					-subj "/CN=tessera test CA" &&
				openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
				printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext &&
				openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
					-days 2 -extfile ext
		) >"$dir/tls/openssl.log" 2>&1 || _slapd_fail "$dir" "cannot create the test certificates"
		tlsconf="TLSCACertificateFile $dir/tls/ca.pem
TLSCertificateFile $dir/tls/server.pem
TLSCertificateKeyFile $dir/tls/server.key"
	fi

	cat >"$dir/slapd.conf" <<-CONF
		# generated by tests/lib/slapd.sh
		include /etc/ldap/schema/core.schema
		include /etc/ldap/schema/cosine.schema
		include /etc/ldap/schema/inetorgperson.schema
		include /etc/ldap/schema/nis.schema

		pidfile  $dir/slapd.pid
		argsfile $dir/slapd.args
		modulepath /usr/lib/ldap
		moduleload back_mdb
		$modules
		$limitline
		$tlsconf

		database mdb
		maxsize 1073741824
		suffix "dc=example,dc=com"
		rootdn "cn=admin,dc=example,dc=com"
		rootpw $pw
		directory $dir/db
		# a throwaway database: no fsync per write (5,000 adds take 1 s instead of 30)
		dbnosync
		index objectClass eq
		$overlays
		${TESSERA_SLAPD_EXTRA_CONF:-}
	CONF
	chmod 0600 "$dir/slapd.conf"

	pid=
	for _try in 1 2 3; do
		port=$(free_port) || die "slapd_start: no free port"
		urls="ldap://127.0.0.1:$port/"
		if ((tls)); then
			sport=$(free_port) || die "slapd_start: no free port"
			urls+=" ldaps://127.0.0.1:$sport/"
		fi
		# -d keeps slapd in the foreground (our child, logging to slapd.log); 256 = stats.
		"$TESSERA_SLAPD" -f "$dir/slapd.conf" -h "$urls" -d 256 \
			</dev/null >>"$dir/slapd.log" 2>&1 &
		pid=$!
		TEST_SLAPD_PID=$pid
		for ((i = 0; i < 300; i++)); do
			pid_alive "$pid" || break
			if LDAPNOINIT=1 ldapsearch -x -H "ldap://127.0.0.1:$port" -b '' -s base -LLL \
				namingContexts >/dev/null 2>&1; then
				break 2
			fi
			sleep 0.1
		done
		if pid_alive "$pid"; then
			_slapd_fail "$dir" "slapd (pid $pid) did not answer on port $port within 30s"
		fi
		wait "$pid" 2>/dev/null || true
		unset TEST_SLAPD_PID
		pid=
		grep -q 'Address already in use' "$dir/slapd.log" ||
			_slapd_fail "$dir" "slapd exited at start"
	done
	[[ -n $pid ]] || _slapd_fail "$dir" "slapd did not start: no usable port after 3 tries"

	export TEST_SLAPD_DIR=$dir TEST_SLAPD_PID=$pid
	export TEST_LDAP_URI="ldap://127.0.0.1:$port"
	export TEST_LDAP_BASE="dc=example,dc=com"
	export TEST_LDAP_PEOPLE="ou=people,dc=example,dc=com"
	export TEST_LDAP_GROUPS="ou=groups,dc=example,dc=com"
	export TEST_LDAP_BIND_DN="cn=admin,dc=example,dc=com"
	export TEST_LDAP_BIND_PW=$pw
	if ((tls)); then
		export TEST_LDAPS_URI="ldaps://127.0.0.1:$sport" TEST_LDAP_CA_FILE=$dir/tls/ca.pem
	fi

	# shellcheck disable=SC2119
	ldap_add >>"$dir/slapd.log" 2>&1 <<-LDIF || _slapd_fail "$dir" "cannot add the base entries"
		dn: dc=example,dc=com
		objectClass: top
		objectClass: dcObject
		objectClass: organization
		dc: example
		o: Example

		dn: ou=people,dc=example,dc=com
		objectClass: organizationalUnit
		ou: people

		dn: ou=groups,dc=example,dc=com
		objectClass: organizationalUnit
		ou: groups
	LDIF
	if ((ppolicy)); then
		ldap_add >>"$dir/slapd.log" 2>&1 <<-LDIF || _slapd_fail "$dir" "cannot add the password policy"
			dn: ou=policies,dc=example,dc=com
			objectClass: organizationalUnit
			ou: policies

			dn: cn=default,ou=policies,dc=example,dc=com
			objectClass: organizationalRole
			objectClass: pwdPolicy
			cn: default
			pwdAttribute: userPassword
			pwdLockout: TRUE
		LDIF
	fi
}

slapd_stop() {
	local dir=${TEST_SLAPD_DIR:-} pid=${TEST_SLAPD_PID:-} i
	[[ -n $dir ]] || return 0
	if [[ -f $dir/slapd.pid ]]; then
		pid=$(cat "$dir/slapd.pid")
	fi
	if pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 200; i++)); do
			pid_alive "$pid" || break
			sleep 0.05
		done
		if pid_alive "$pid"; then
			echo "slapd_stop: slapd $pid did not stop in 10s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	# slapd runs in the foreground as our child: reap it.
	if [[ -n $pid ]]; then
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
	unset TEST_SLAPD_DIR TEST_SLAPD_PID TEST_LDAP_URI TEST_LDAP_BASE TEST_LDAP_PEOPLE \
		TEST_LDAP_GROUPS TEST_LDAP_BIND_DN TEST_LDAP_BIND_PW TEST_LDAPS_URI TEST_LDAP_CA_FILE
	return 0
}

_ldap_need() {
	[[ -n ${TEST_LDAP_URI:-} ]] || {
		echo "ldap: no slapd started (TEST_LDAP_URI unset)" >&2
		return 1
	}
}

# shellcheck disable=SC2120 # callers pass extra ldapadd options
ldap_add() {
	_ldap_need || return 1
	LDAPNOINIT=1 ldapadd -x -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" "$@"
}

ldap_modify() {
	_ldap_need || return 1
	LDAPNOINIT=1 ldapmodify -x -H "$TEST_LDAP_URI" -D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" "$@"
}

ldap_search() {
	_ldap_need || return 1
	LDAPNOINIT=1 ldapsearch -x -LLL -o ldif-wrap=no -H "$TEST_LDAP_URI" \
		-D "$TEST_LDAP_BIND_DN" -w "$TEST_LDAP_BIND_PW" -b "$TEST_LDAP_BASE" "$@"
}
