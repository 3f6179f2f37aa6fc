# shellcheck shell=bash
# tests/lib/tap.sh — minimal TAP producer for tessera's shell tests.
#
#   ok NAME                    record a passing test point
#   fail NAME [WHY...]         record a failing test point; WHY printed as "# " lines
#   is GOT WANT NAME           pass when GOT and WANT are the same string
#   isnt GOT UNWANTED NAME     pass when they differ
#   like TEXT REGEX NAME       pass when TEXT matches the extended regex (bash =~, whole text,
#                              '.' also matches newlines)
#   unlike TEXT REGEX NAME     pass when it does not match
#   run_ok NAME CMD...         pass when CMD exits 0 (its output is shown only on failure)
#   diag MSG...                print "# MSG" lines
#   tap_done                   print the plan "1..N"; exit 1 if any point failed or none ran
#
# Each helper returns 0 on pass and 1 on fail, so `is ... || die ...` works; do not use them
# under `set -e` unless you want the first failure to end the script (the plan is then missing,
# which tests/run reports as a failure too).
# Sources common.sh, so on_exit and friends are available.

if [[ -n ${_TESSERA_TAP_SH:-} ]]; then
	return 0
fi
_TESSERA_TAP_SH=1

# shellcheck source=tests/lib/common.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_TAP_N=0
_TAP_FAILED=0

diag() {
	local line
	while IFS= read -r line; do
		printf '# %s\n' "$line"
	done <<<"$*"
}

ok() {
	_TAP_N=$((_TAP_N + 1))
	printf 'ok %d - %s\n' "$_TAP_N" "$(_tap_name "$1")"
	return 0
}

fail() {
	local name=$1
	shift
	_TAP_N=$((_TAP_N + 1))
	_TAP_FAILED=$((_TAP_FAILED + 1))
	printf 'not ok %d - %s\n' "$_TAP_N" "$(_tap_name "$name")"
	if (($# > 0)); then
		diag "$*"
	fi
	return 1
}

is() {
	if [[ $1 == "$2" ]]; then
		ok "$3"
	else
		fail "$3" "$(printf '  got: %s\n want: %s' "$(_tap_quote "$1")" "$(_tap_quote "$2")")"
	fi
}

isnt() {
	if [[ $1 != "$2" ]]; then
		ok "$3"
	else
		fail "$3" "$(printf '     got: %s\nexpected: anything else' "$(_tap_quote "$1")")"
	fi
}

like() {
	if [[ $1 =~ $2 ]]; then
		ok "$3"
	else
		fail "$3" "$(printf '   text: %s\ndoes not match: /%s/' "$(_tap_quote "$1")" "$2")"
	fi
}

unlike() {
	if [[ $1 =~ $2 ]]; then
		fail "$3" "$(printf '   text: %s\nmatches: /%s/' "$(_tap_quote "$1")" "$2")"
	else
		ok "$3"
	fi
}

run_ok() {
	local name=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if ((rc == 0)); then
		ok "$name"
	else
		fail "$name" "$(printf 'command: %s\nexit: %d\noutput:\n%s' "$*" "$rc" "$out")"
	fi
}

# A test name on one line, without a '#' that would read as a TAP directive.
_tap_name() {
	local n=${1//$'\n'/ }
	printf '%s' "${n//#/\\#}"
}

# Single-quote a value for diagnostics; long values are kept whole (logs are cheap).
_tap_quote() {
	printf "'%s'" "$1"
}

tap_done() {
	printf '1..%d\n' "$_TAP_N"
	if ((_TAP_N == 0)); then
		diag "no test points were run"
		exit 1
	fi
	if ((_TAP_FAILED > 0)); then
		diag "failed $_TAP_FAILED of $_TAP_N"
		exit 1
	fi
	exit 0
}
