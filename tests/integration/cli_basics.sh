#!/bin/bash
# cli_basics.sh — the `tessera` CLI's contract that needs no server: version
# and help, usage errors exit 2 and name the culprit, an unreachable server
# exits 1 naming the URL, and no credential at all exits 3 telling the user
# how to log in. Also `tesserad --version/--help`.

# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/common.sh"

T=$(mktemp_dir cli-basics) || die "cannot create a temp dir"
H=$(mktemp_dir home) || die "cannot create an empty HOME"
cd "$T" || die "cannot cd to $T"

version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$TESSERA_SRCDIR/configure.ac")

# cli ARGS...: tessera with an empty HOME and no inherited URL/token; stdout in
# $T/out, stderr in $T/err, exit status in rc. Set TESSERA_URL/TESSERA_TOKEN
# for one call with `env` in front (see below) or via the CLI_ENV array.
CLI_ENV=()
cli() {
	env -u TESSERA_URL -u TESSERA_TOKEN -u XDG_CONFIG_HOME HOME="$H" "${CLI_ENV[@]}" \
		timeout 30 "$TESSERA" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

has() { # FILE STRING NAME
	if grep -qF -- "$2" "$1"; then
		ok "$3"
	else
		fail "$3" "want '$2' in $(basename "$1"); stdout: $(head -c 2000 "$T/out"); stderr: $(head -c 2000 "$T/err")"
	fi
}

# ---- version and help
cli --version
is "$rc" 0 "version_exits_0"
if [[ -n $version ]]; then
	has "$T/out" "$version" "version_prints_the_release_version_on_stdout"
else
	fail "version_prints_the_release_version_on_stdout" "no version in configure.ac AC_INIT"
fi

cli --help
is "$rc" 0 "help_exits_0"
if grep -qw whoami "$T/out"; then
	ok "help_lists_whoami"
else
	fail "help_lists_whoami" "stdout: $(cat "$T/out")"
fi

cli whoami --help
is "$rc" 0 "whoami_help_exits_0"
has "$T/out" "whoami" "whoami_help_describes_whoami_on_stdout"

# ---- usage errors: exit 2, naming what was wrong
cli frobnicate
is "$rc" 2 "unknown_command_exits_2"
has "$T/err" "frobnicate" "unknown_command_is_named_on_stderr"

cli --frobnicate whoami
is "$rc" 2 "unknown_global_flag_exits_2"
has "$T/err" "frobnicate" "unknown_global_flag_is_named_on_stderr"

cli whoami --frobnicate
is "$rc" 2 "unknown_command_flag_exits_2"
has "$T/err" "frobnicate" "unknown_command_flag_is_named_on_stderr"

cli
is "$rc" 2 "no_command_exits_2"

# ---- server unreachable: exit 1, the message names the URL
port=$(free_port) || die "no free port"
url=http://127.0.0.1:$port
CLI_ENV=(TESSERA_URL="$url" TESSERA_TOKEN=tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA)
cli whoami
is "$rc" 1 "unreachable_server_exits_1"
has "$T/err" "$url" "unreachable_server_message_names_the_url"
has "$T/err" "cannot reach" "unreachable_server_message_says_cannot_reach"

# --url wins over TESSERA_URL
port2=$(free_port) || die "no free port"
url2=http://127.0.0.1:$port2
cli --url "$url2" whoami
is "$rc" 1 "unreachable_url_flag_exits_1"
has "$T/err" "$url2" "url_flag_overrides_tessera_url"

# ---- no credential anywhere: exit 3 and say how to log in. The server URL is
# unreachable on purpose: with nothing to send, the CLI has no reason to call it.
CLI_ENV=(TESSERA_URL="$url")
cli whoami
is "$rc" 3 "whoami_without_any_credential_exits_3"
has "$T/err" "tessera login" "whoami_without_any_credential_says_how_to_log_in"
if [[ -z $(ls -A "$H") ]]; then
	ok "whoami_without_credential_writes_nothing_to_home"
else
	fail "whoami_without_credential_writes_nothing_to_home" "$(find "$H")"
fi
CLI_ENV=()

# ---- tesserad basics
timeout 30 "$TESSERAD" --version >"$T/out" 2>"$T/err"
rc=$?
is "$rc" 0 "tesserad_version_exits_0"
has "$T/out" "${version:-no version in configure.ac}" "tesserad_version_prints_the_release_version"
timeout 30 "$TESSERAD" --help >"$T/out" 2>"$T/err"
rc=$?
is "$rc" 0 "tesserad_help_exits_0"
for opt in --dev --check-config migrate --list-routes; do
	has "$T/out" "$opt" "tesserad_help_mentions_$opt"
done

tap_done
