#!/bin/bash
# dev_mode.sh — `tesserad --dev` with a fresh state dir creates its own
# PostgreSQL cluster, becomes ready, prints the bootstrap admin token exactly
# once (and never logs or stores it in the clear), and that token works with
# `tessera whoami`. SIGTERM and SIGINT stop the daemon and its private
# postgres cleanly (exit 0, no process left behind); a restart keeps the data
# and prints no new token. Without PostgreSQL binaries it fails and tells the
# operator which Debian package to install.

# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/common.sh"

S=$(mktemp_dir state) || die "cannot create the state dir"
L=$(mktemp_dir logs) || die "cannot create the log dir"
H=$(mktemp_dir home) || die "cannot create an empty HOME"
S2=$(mktemp_dir state-nopg) || die "cannot create the second state dir"
P=$(free_port) || die "no free port"
URL=http://127.0.0.1:$P
DPID=

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n $st && $st != Z ]]
}

# wait_exit PID SECS: wait for our child PID to exit; sets rc (its exit status)
# and returns 0, or kills it after SECS, sets rc=timeout and returns 1.
wait_exit() {
	local pid=$1 deadline=$((SECONDS + $2))
	while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rc=timeout
		return 1
	fi
	wait "$pid"
	rc=$?
	return 0
}

# wait_status URL CODE SECS: until URL answers CODE; gives up early if the
# daemon died. Sets code to the last status seen.
wait_status() {
	local deadline=$(($3 + SECONDS))
	while :; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null)
		[[ $code == "$2" ]] && return 0
		((SECONDS >= deadline)) && return 1
		if [[ -n $DPID ]] && ! alive "$DPID"; then return 1; fi
		sleep 0.2
	done
}

# postmaster_pid DIR: pid of a running postmaster whose data dir is under DIR.
postmaster_pid() {
	local f pid
	while IFS= read -r f; do
		pid=$(head -n1 "$f" 2>/dev/null)
		if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
			echo "$pid"
			return 0
		fi
	done < <(find "$1" -name postmaster.pid 2>/dev/null)
	return 1
}

cleanup() {
	local pid d deadline
	if [[ -n $DPID ]] && alive "$DPID"; then
		kill -TERM "$DPID" 2>/dev/null
		wait_exit "$DPID" 30
	fi
	# A postmaster the daemon failed to stop: immediate shutdown, by its pid.
	for d in "$S" "$S2"; do
		if pid=$(postmaster_pid "$d"); then
			kill -QUIT "$pid" 2>/dev/null
			deadline=$((SECONDS + 10))
			while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
			alive "$pid" && kill -KILL "$pid" 2>/dev/null
		fi
	done
}
on_exit cleanup

# start_dev NAME: start the daemon in the background, stdout/stderr in $L/NAME.*
# SIGINT is reset to default: bash starts background jobs with it ignored,
# unlike a terminal's Ctrl-C, which is what this test imitates.
start_dev() {
	env --default-signal=INT,TERM "$TESSERAD" --dev --state-dir "$S" --listen "127.0.0.1:$P" \
		>"$L/$1.out" 2>"$L/$1.err" &
	DPID=$!
}

cli() { # tessera with a clean HOME, against this daemon
	env -u XDG_CONFIG_HOME HOME="$H" TESSERA_URL="$URL" timeout 30 "$TESSERA" "$@"
}

tail_err() { tail -n 40 "$L/$1.err" 2>/dev/null; }

bootstrap_re='^bootstrap token: tsr_[A-Za-z0-9_-]{43}$'

# ---------------------------------------------------------------- first start
start_dev first
if wait_status "$URL/readyz" 200 60; then
	ok "first_dev_start_becomes_ready_within_60s"
else
	fail "first_dev_start_becomes_ready_within_60s" "last /readyz status: $code; stderr:" "$(tail_err first)"
fi
if grep -q 'event=ready' "$L/first.err"; then
	ok "dev_start_logs_event_ready"
else
	fail "dev_start_logs_event_ready" "$(tail_err first)"
fi

# The line is printed before ready; allow stdio a moment anyway.
for _ in $(seq 30); do grep -qE "$bootstrap_re" "$L/first.out" && break; sleep 0.1; done
is "$(grep -cE "$bootstrap_re" "$L/first.out")" 1 "first_start_prints_exactly_one_bootstrap_token_line"
is "$(grep -c 'tsr_' "$L/first.out")" 1 "no_other_stdout_line_carries_a_token"
tok=$(sed -n 's/^bootstrap token: \(tsr_[A-Za-z0-9_-]\{43\}\)$/\1/p' "$L/first.out" | head -n1)
body=${tok#tsr_}
[[ -n $tok ]] || tok=tsr_missing_bootstrap_token_xxxxxxxxxxxxxxxxxxxxxxx

key="$S/master.key"
if [[ -f $key ]]; then
	is "$(stat -c %a "$key")" 600 "dev_master_key_is_generated_with_mode_0600"
else
	fail "dev_master_key_is_generated_with_mode_0600" "no $key; state dir: $(ls -la "$S")"
fi
key_sum=$(sha256sum "$key" 2>/dev/null | cut -d' ' -f1)

out=$(TESSERA_TOKEN=$tok cli whoami 2>"$L/whoami.err")
rc=$?
is "$rc" 0 "whoami_with_bootstrap_token_exits_0"
like "$out" '^admin( |$)' "whoami_with_bootstrap_token_prints_admin"
like "$out" 'roles: admin' "whoami_human_output_lists_admin_role"

json=$(TESSERA_TOKEN=$tok cli --json whoami 2>"$L/whoami-json.err")
rc=$?
is "$rc" 0 "whoami_json_exits_0"
is "$(jq -r '.user' <<<"$json" 2>&1)" admin "whoami_json_user_is_admin"
is "$(jq -c '.roles | index("admin") != null' <<<"$json" 2>&1)" true "whoami_json_roles_include_admin"
is "$(jq -r '.credential.kind' <<<"$json" 2>&1)" bootstrap "whoami_json_credential_is_the_bootstrap_token"
is "$(jq -c '.credential.expires_at' <<<"$json" 2>&1)" null "bootstrap_token_does_not_expire"

TESSERA_TOKEN=tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA cli whoami >"$L/wrong.out" 2>"$L/wrong.err"
rc=$?
is "$rc" 3 "whoami_with_wrong_token_exits_3"

if [[ -z $body ]]; then
	fail "bootstrap_token_never_logged" "no token to look for"
elif grep -qF -- "$body" "$L/first.err"; then
	fail "bootstrap_token_never_logged" "found in stderr log"
else
	ok "bootstrap_token_never_logged"
fi

# ---------------------------------------------------------------- SIGTERM
pm_children=
if pm=$(postmaster_pid "$S"); then
	ok "private_postgres_runs_under_state_dir"
	pm_children=$(pgrep -P "$pm" | tr '\n' ' ')
else
	fail "private_postgres_runs_under_state_dir" "no live postmaster.pid under $S"
fi
if ! alive "$DPID"; then
	wait "$DPID"
	rc=$?
	fail "sigterm_stops_tesserad_within_30s" "tesserad had already exited ($rc) before the signal"
elif kill -TERM "$DPID" && wait_exit "$DPID" 30; then
	ok "sigterm_stops_tesserad_within_30s"
else
	fail "sigterm_stops_tesserad_within_30s" "$(tail_err first)"
fi
is "$rc" 0 "sigterm_exit_status_is_0"
DPID=
left=$(pgrep -af -- "$S")
is "$left" "" "no_process_left_with_state_dir_after_sigterm"
left=
for p in $pm $pm_children; do alive "$p" && left="$left $p"; done
is "$left" "" "private_postgres_and_its_backends_gone_after_sigterm"
if [[ -n $(find "$S" -name postmaster.pid 2>/dev/null) ]]; then
	fail "private_postgres_shut_down_cleanly" "postmaster.pid still present"
else
	ok "private_postgres_shut_down_cleanly"
fi

# The token (or its random part) must not be anywhere under the state dir in
# the clear: the database keeps only a hash. Checked after shutdown, when
# postgres has flushed everything to its files.
if [[ -z $body ]]; then
	fail "bootstrap_token_not_stored_in_clear_in_state_dir" "no token to look for"
elif found=$(grep -rlaF -- "$body" "$S" 2>/dev/null) && [[ -n $found ]]; then
	fail "bootstrap_token_not_stored_in_clear_in_state_dir" "found in: $found"
else
	ok "bootstrap_token_not_stored_in_clear_in_state_dir"
fi

# ---------------------------------------------------------------- restart
start_dev second
if wait_status "$URL/readyz" 200 60; then
	ok "second_dev_start_becomes_ready"
else
	fail "second_dev_start_becomes_ready" "last /readyz status: $code; stderr:" "$(tail_err second)"
fi
is "$(grep -c 'bootstrap token' "$L/second.out")" 0 "second_start_prints_no_bootstrap_token"
is "$(sha256sum "$key" 2>/dev/null | cut -d' ' -f1)" "${key_sum:-no master key at first start}" "second_start_keeps_master_key"
TESSERA_TOKEN=$tok cli whoami >"$L/whoami2.out" 2>"$L/whoami2.err"
rc=$?
is "$rc" 0 "first_bootstrap_token_still_works_after_restart"

# ---------------------------------------------------------------- SIGINT
pm=$(postmaster_pid "$S")
if ! alive "$DPID"; then
	wait "$DPID"
	rc=$?
	fail "sigint_stops_tesserad_within_30s" "tesserad had already exited ($rc) before the signal"
elif kill -INT "$DPID" && wait_exit "$DPID" 30; then
	ok "sigint_stops_tesserad_within_30s"
else
	fail "sigint_stops_tesserad_within_30s" "$(tail_err second)"
fi
is "$rc" 0 "sigint_exit_status_is_0"
DPID=
is "$(pgrep -af -- "$S")" "" "no_process_left_with_state_dir_after_sigint"
if [[ -n $pm ]] && alive "$pm"; then
	fail "private_postgres_gone_after_sigint" "postmaster $pm still running"
else
	ok "private_postgres_gone_after_sigint"
fi
if [[ -z $body ]]; then
	fail "bootstrap_token_never_logged_on_restart" "no token to look for"
elif grep -qF -- "$body" "$L/second.err"; then
	fail "bootstrap_token_never_logged_on_restart" "found in stderr log"
else
	ok "bootstrap_token_never_logged_on_restart"
fi

# Logs are logfmt on stderr, one event per line; the private postgres's own
# output must not be mixed in.
bad=$(cat "$L/first.err" "$L/second.err" | grep -Ev '^ts=[0-9T:.Z-]+ level=(debug|info|warn|error) event=[a-z_]+( |$)')
is "$bad" "" "dev_stderr_is_all_logfmt"

# ---------------------------------------------------------------- no PostgreSQL binaries
P2=$(free_port)
timeout 60 env PATH=/nonexistent TESSERA_PG_BINDIR=/nonexistent \
	"$TESSERAD" --dev --state-dir "$S2" --listen "127.0.0.1:$P2" >"$L/nopg.out" 2>"$L/nopg.err"
rc=$?
is "$rc" 1 "dev_without_postgres_binaries_exits_1"
if grep -Eiq '(package|apt(-get)? install)[^a-z].*postgresql|postgresql.*package' "$L/nopg.err"; then
	ok "dev_without_postgres_binaries_names_debian_package_postgresql"
else
	fail "dev_without_postgres_binaries_names_debian_package_postgresql" "stderr: $(cat "$L/nopg.err")"
fi
is "$(grep -c 'tsr_' "$L/nopg.out")" 0 "dev_without_postgres_binaries_prints_no_token"
is "$(pgrep -af -- "$S2")" "" "dev_without_postgres_binaries_leaves_no_process"

tap_done
