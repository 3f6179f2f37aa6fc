#!/bin/bash
# config_errors.sh — `tesserad --check-config` reports every kind of config
# mistake as FILE:LINE plus the key and section, exits 1, and never echoes a
# secret; a valid file prints "FILE: OK" and exits 0. No database is needed:
# checking a config must not connect anywhere.

# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/common.sh"

T=$(mktemp_dir config-errors) || exit 1
cd "$T" || exit 1   # --dev defaults to ./var: keep anything it might create in T

# A URL that is never contacted: --check-config validates, it does not connect.
DBURL='postgresql://tessera@127.0.0.1:1/tessera'

# check NAME [--dev]: run --check-config on $T/NAME.conf; sets rc, OUT, ERR, F.
check() {
	F="$T/$1.conf"
	shift
	OUT="$T/out" ERR="$T/err"
	timeout 30 "$TESSERAD" -c "$F" "$@" --check-config >"$OUT" 2>"$ERR"
	rc=$?
}

# has FILE STRING NAME: FILE contains STRING verbatim.
has() {
	if grep -qF -- "$2" "$1"; then
		ok "$3"
	else
		fail "$3" "want '$2' in $(basename "$1"), got: $(head -c 2000 "$1")"
	fi
}

# lacks FILE STRING NAME: FILE does not contain STRING.
lacks() {
	if grep -qF -- "$2" "$1"; then
		fail "$3" "'$2' found in $(basename "$1"): $(head -c 2000 "$1")"
	else
		ok "$3"
	fi
}

# ---- unknown key: line 3 of the file, in [server]
cat >"$T/unknown_key.conf" <<EOF
[server]
listen = 127.0.0.1:8080
prot = 1

[database]
url = $DBURL
EOF
check unknown_key
is "$rc" 1 "unknown_key_exits_1"
has "$ERR" "$F:3: unknown key 'prot' in [server]" "unknown_key_names_file_line_key_and_section"
lacks "$OUT" "OK" "unknown_key_does_not_print_ok"

# ---- unknown section
cat >"$T/unknown_section.conf" <<EOF
[database]
url = $DBURL

[foo]
bar = 1
EOF
check unknown_section
is "$rc" 1 "unknown_section_exits_1"
has "$ERR" "$F:4: unknown section [foo]" "unknown_section_names_file_line_and_section"

# ---- bad int value
cat >"$T/bad_int.conf" <<EOF
[database]
url = $DBURL
pool_size = abc
EOF
check bad_int
is "$rc" 1 "bad_pool_size_exits_1"
has "$ERR" "$F:3: bad value for 'pool_size' in [database]: " "bad_pool_size_names_file_line_key_and_section"
has "$ERR" ", got 'abc'" "bad_pool_size_quotes_the_bad_value"

# ---- bad duration
cat >"$T/bad_duration.conf" <<EOF
[database]
url = $DBURL

[tokens]
default_ttl = 15 parsecs
EOF
check bad_duration
is "$rc" 1 "bad_duration_exits_1"
has "$ERR" "$F:5: bad value for 'default_ttl' in [tokens]: " "bad_duration_names_file_line_key_and_section"
has "$ERR" "got '15 parsecs'" "bad_duration_quotes_the_bad_value"

# ---- max_ttl over the 8 h ceiling
cat >"$T/max_ttl_9h.conf" <<EOF
[database]
url = $DBURL

[tokens]
max_ttl = 9h
EOF
check max_ttl_9h
is "$rc" 1 "max_ttl_over_8h_exits_1"
has "$ERR" "$F:5: bad value for 'max_ttl' in [tokens]: " "max_ttl_over_8h_names_file_line_key_and_section"

# ---- max_ttl exactly 8 h is allowed (the ceiling is inclusive)
cat >"$T/max_ttl_8h.conf" <<EOF
[database]
url = $DBURL

[tokens]
max_ttl = 8h
EOF
check max_ttl_8h
is "$rc" 0 "max_ttl_of_exactly_8h_is_accepted"

# ---- max_ttl below default_ttl is a contradiction
cat >"$T/max_below_default.conf" <<EOF
[database]
url = $DBURL

[tokens]
default_ttl = 1h
max_ttl = 30m
EOF
check max_below_default
is "$rc" 1 "max_ttl_below_default_ttl_exits_1"
if grep -q "max_ttl" "$ERR" && grep -qF "$F" "$ERR"; then
	ok "max_ttl_below_default_ttl_error_names_file_and_key"
else
	fail "max_ttl_below_default_ttl_error_names_file_and_key" "stderr: $(cat "$ERR")"
fi

# ---- bad bool
cat >"$T/bad_bool.conf" <<EOF
[database]
url = $DBURL

[ldap]
starttls = maybe
EOF
check bad_bool
is "$rc" 1 "bad_bool_exits_1"
has "$ERR" "$F:5: bad value for 'starttls' in [ldap]: " "bad_bool_names_file_line_key_and_section"

# ---- missing [database] without --dev
cat >"$T/no_database.conf" <<EOF
[server]
listen = 127.0.0.1:8080
EOF
check no_database
is "$rc" 1 "missing_database_section_without_dev_exits_1"
has "$ERR" "$F: missing required section [database] (needed without --dev)" "missing_database_section_is_named"

# ---- the same file with --dev is fine
check no_database --dev
is "$rc" 0 "missing_database_section_with_dev_exits_0"
has "$OUT" "$F: OK" "missing_database_section_with_dev_prints_ok"
if [ -e "$T/var" ]; then
	fail "check_config_with_dev_creates_no_state_dir" "found $T/var"
else
	ok "check_config_with_dev_creates_no_state_dir"
fi

# ---- a valid minimal config
cat >"$T/valid.conf" <<EOF
[database]
url = $DBURL
EOF
check valid
is "$rc" 0 "valid_minimal_config_exits_0"
has "$OUT" "$F: OK" "valid_minimal_config_prints_file_ok"
if [ -s "$ERR" ] && grep -qi "error" "$ERR"; then
	fail "valid_minimal_config_reports_no_error" "stderr: $(cat "$ERR")"
else
	ok "valid_minimal_config_reports_no_error"
fi

# ---- a fuller valid config: every type parses
cat >"$T/valid_full.conf" <<EOF
# comment
[server]
listen = 127.0.0.1:8081
workers = 2
shutdown_timeout = 10s
log_level = debug

[database]
url = $DBURL
pool_size = 4
connect_timeout = 3s

[tokens]
session_ttl = 12h
default_ttl = 15m
max_ttl = 8h

[roles]
admin = ops, sre
developer = eng

[scim]
enabled = no

[ldap]
uri = ldap://127.0.0.1:389
starttls = off
bind_dn = cn=reader,dc=example,dc=com
user_base = ou=people,dc=example,dc=com
group_base = ou=groups,dc=example,dc=com
max_deactivate_ratio = 0.25
page_size = 100
timeout = 10s

[upstream.local]
kind = openai-compatible
base_url = http://127.0.0.1:11434/v1
models = llama3, qwen
on_prem = yes
rotation_period = 30d
grace_period = 1h

[audit]
retention = 7y
EOF
check valid_full
is "$rc" 0 "config_using_every_value_type_is_accepted"
has "$OUT" "$F: OK" "config_using_every_value_type_prints_ok"

# ---- a bad ratio
cat >"$T/bad_ratio.conf" <<EOF
[database]
url = $DBURL
[ldap]
max_deactivate_ratio = 1.5
EOF
check bad_ratio
is "$rc" 1 "ratio_above_1_exits_1"
has "$ERR" "$F:4: bad value for 'max_deactivate_ratio' in [ldap]: " "ratio_above_1_names_file_line_key_and_section"

# ---- secrets are never echoed, even next to an error
cat >"$T/secret.conf" <<EOF
[database]
url = postgresql://tessera:db-pw-s3cr3t@127.0.0.1:1/tessera
pool_size = lots

[ldap]
bind_password = hunter2-secret
bind_pasword = hunter2-secret
starttls = maybe
EOF
check secret
is "$rc" 1 "config_with_secret_and_bad_neighbours_exits_1"
has "$ERR" "$F:7: unknown key 'bind_pasword' in [ldap]" "typo_of_secret_key_is_reported"
has "$ERR" "$F:8: bad value for 'starttls' in [ldap]: " "bad_neighbour_of_secret_is_reported"
lacks "$ERR" "hunter2-secret" "ldap_bind_password_never_echoed_in_errors"
lacks "$OUT" "hunter2-secret" "ldap_bind_password_never_echoed_on_stdout"
lacks "$ERR" "db-pw-s3cr3t" "database_url_password_never_echoed_in_errors"

# ---- [upstream.NAME] sections: unknown key and bad kind
cat >"$T/upstream_key.conf" <<EOF
[database]
url = $DBURL

[upstream.foo]
kind = openai
base_url = https://api.openai.com/v1
colour = blue
EOF
check upstream_key
is "$rc" 1 "unknown_key_in_upstream_section_exits_1"
has "$ERR" "$F:7: unknown key 'colour' in [upstream.foo]" "unknown_key_in_upstream_section_names_the_upstream"

cat >"$T/upstream_kind.conf" <<EOF
[database]
url = $DBURL

[upstream.foo]
kind = gemini
base_url = https://example.invalid/v1
EOF
check upstream_kind
is "$rc" 1 "bad_upstream_kind_exits_1"
has "$ERR" "$F:5: bad value for 'kind' in [upstream.foo]: " "bad_upstream_kind_names_file_line_key_and_section"
has "$ERR" "got 'gemini'" "bad_upstream_kind_quotes_the_bad_value"

# ---- several errors are all reported, not just the first
cat >"$T/two_errors.conf" <<EOF
[server]
prot = 1
[database]
url = $DBURL
pool_size = abc
EOF
check two_errors
is "$rc" 1 "config_with_two_errors_exits_1"
if grep -qF "$F:2: unknown key 'prot' in [server]" "$ERR" &&
	grep -qF "$F:5: bad value for 'pool_size' in [database]" "$ERR"; then
	ok "config_with_two_errors_reports_both"
else
	fail "config_with_two_errors_reports_both" "stderr: $(cat "$ERR")"
fi

# ---- a config file that does not exist
F="$T/does-not-exist.conf"
timeout 30 "$TESSERAD" -c "$F" --check-config >"$T/out" 2>"$T/err"
rc=$?
is "$rc" 1 "missing_config_file_exits_1"
has "$T/err" "$F" "missing_config_file_is_named"

# ---- command-line usage errors are exit 2, not config errors
timeout 30 "$TESSERAD" --no-such-flag >"$T/out" 2>"$T/err"
rc=$?
is "$rc" 2 "tesserad_unknown_flag_exits_2"
has "$T/err" "no-such-flag" "tesserad_unknown_flag_is_named"

tap_done
