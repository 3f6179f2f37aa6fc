#!/usr/bin/env bash
# http_blocking_pool.sh — a request that waits on PostgreSQL does not stall
# its HTTP worker (broker/http.c, the blocking pool). With one worker: while
# a first use of a token and an admin request wait on a lock in PostgreSQL,
# a gateway request with a token already checked, a streaming one and
# /healthz are answered by that worker; once the lock goes, the waiting
# requests are answered too, each with its audit record. Then a stop while
# a request waits on the lock for longer than shutdown_timeout: the stop cuts
# the connection but frees the request only once the pool is done with it,
# and tesserad exits cleanly once the lock is released.
# (Without the pool the worker itself would sit in the query, and nothing
# else could be answered until the lock went: the checks below would fail.)
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

TEST_AUDIT_DURABILITY=journal gw_setup "" # answers wait for the local journal, not for Postgres
gw_stop_tesserad
sed -i 's/^\[server\]$/[server]\nworkers = 1\nshutdown_timeout = 1s/' "$GW_DIR/tesserad.conf"
gw_start_tesserad
chat() { # chat TOKEN CONTENT [STREAM] -> body then " STATUS"
	curl -s -N --max-time "${CHAT_MAX:-20}" -w ' %{http_code}' -H "Authorization: Bearer $1" \
		-d "{\"model\":\"gpt-4o\",\"stream\":${3:-false},\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]}" \
		"$GW_URL/openai/v1/chat/completions"
}
like "$(chat "$GW_TOKEN" warm)" ' 200$' "a_token_is_checked_once (now cached)"
fresh=$(gw_mint acme/api) # minted, never used: its first check reads credentials

lock_credentials() { # hold an exclusive lock on credentials until released (or 60 s)
	pg_psql "BEGIN; LOCK TABLE credentials IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
	locker=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(pg_psql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE c.relname = 'credentials' AND l.mode = 'AccessExclusiveLock' AND l.granted") == 1 ]] && return 0
		sleep 0.05
	done
	return 1
}
release_credentials() {
	pg_psql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%'
		AND pid <> pg_backend_pid()" >/dev/null
	wait "$locker" 2>/dev/null
}
waiting_on_lock() { # how many backends wait for a lock on a relation
	pg_psql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
}
wait_for_waiters() { # wait_for_waiters N: until N backends wait on the lock (up to 10 s)
	local i
	for ((i = 0; i < 200; i++)); do
		(($(waiting_on_lock) >= $1)) && return 0
		sleep 0.05
	done
	return 1
}

lock_credentials || fail "credentials_locked" "the lock was not granted"
chat "$fresh" first-use >"$GW_DIR/first.out" 2>/dev/null &
first=$!
curl -s --max-time 60 -w ' %{http_code}' -H "Authorization: Bearer $GW_BOOT" "$GW_URL/admin/v1/whoami" \
	>"$GW_DIR/admin.out" 2>/dev/null &
admin=$!
wait_for_waiters 2 && ok "the_first_use_and_the_admin_request_wait_on_the_lock" ||
	fail "the_first_use_and_the_admin_request_wait_on_the_lock" "waiting: $(waiting_on_lock)"

# the one worker answers meanwhile
like "$(chat "$GW_TOKEN" while-locked)" '"chat.completion".* 200$' "a_checked_token_is_answered_while_another_request_waits"
like "$(chat "$GW_TOKEN" while-locked-stream true)" 'data: \[DONE\].* 200$' \
	"a_stream_is_answered_while_another_request_waits"
is "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$GW_URL/healthz")" 200 "healthz_is_answered_while_a_request_waits"
pid_alive "$first" && pid_alive "$admin" && [[ ! -s $GW_DIR/first.out && ! -s $GW_DIR/admin.out ]] &&
	ok "the_waiting_requests_are_still_waiting (so the answers above did not wait for them)" ||
	fail "the_waiting_requests_are_still_waiting (so the answers above did not wait for them)" \
		"first: $(cat "$GW_DIR/first.out"), admin: $(cat "$GW_DIR/admin.out")"
is "$(waiting_on_lock)" 2 "the_lock_still_holds_them"
like "$(curl -s --max-time 10 "$GW_URL/metrics")" $'\ntessera_http_pool_requests 2\n' "metrics_show_the_two_requests_on_the_pool"

release_credentials
wait "$first" "$admin"
like "$(cat "$GW_DIR/first.out")" '"chat.completion".* 200$' "the_first_use_is_answered_once_the_lock_goes"
like "$(cat "$GW_DIR/admin.out")" '"user":"admin".* 200$' "the_admin_request_is_answered_once_the_lock_goes"
gw_audit_shipped || fail "audit_shipped" "the journal did not empty"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request' AND status = 200
	AND req_sha256 IN (decode('$(gw_sha256 '{"model":"gpt-4o","stream":false,"messages":[{"role":"user","content":"first-use"}]}')', 'hex'),
	                   decode('$(gw_sha256 '{"model":"gpt-4o","stream":false,"messages":[{"role":"user","content":"while-locked"}]}')', 'hex'))")" 2 \
	"the_waiting_and_the_answered_request_have_one_record_each"

# an unknown token waits too, and is refused with its record once it can be checked
lock_credentials || fail "credentials_locked_again" "the lock was not granted"
CHAT_MAX=60 chat "tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | head -c 43)" unknown \
	>"$GW_DIR/unknown.out" 2>/dev/null &
unknown=$!
wait_for_waiters 1 || fail "the_unknown_token_waits" "waiting: $(waiting_on_lock)"
like "$(chat "$GW_TOKEN" while-locked-2)" ' 200$' "the_worker_answers_while_an_unknown_token_waits"
release_credentials
wait "$unknown"
like "$(cat "$GW_DIR/unknown.out")" 'unknown credential.* 401$' "the_unknown_token_is_refused_once_checked"

# a stop while a request waits: the request is cut or answered, and tesserad exits cleanly
another=$(gw_mint acme/api) # never used: its first check waits on the lock
lock_credentials || fail "credentials_locked_for_stop" "the lock was not granted"
CHAT_MAX=60 chat "$another" during-stop >"$GW_DIR/stop.out" 2>/dev/null &
during=$!
wait_for_waiters 1 || fail "a_request_waits_at_the_stop" "waiting: $(waiting_on_lock)"
kill -TERM "$TESSERAD_PID"
sleep 2.5 # past shutdown_timeout (1 s): the stop has cut the connection, the pool still has the request
pid_alive "$TESSERAD_PID" && ok "the_stop_waits_for_the_request_the_pool_holds" ||
	fail "the_stop_waits_for_the_request_the_pool_holds" "tesserad exited while a pool thread used the request"
release_credentials
for ((i = 0; i < 400; i++)); do
	pid_alive "$TESSERAD_PID" || break
	sleep 0.1
done
wait "$TESSERAD_PID"
is "$?" 0 "tesserad_exits_cleanly_once_the_waiting_request_is_done"
wait "$during" 2>/dev/null
grep -q 'event=shutdown_timeout' "$GW_DIR/tesserad.err" && ok "the_stop_cut_the_request_after_shutdown_timeout" ||
	fail "the_stop_cut_the_request_after_shutdown_timeout" "$(tail -n 5 "$GW_DIR/tesserad.err")"
grep -q 'event=stopped' "$GW_DIR/tesserad.err" && ok "the_log_says_stopped" ||
	fail "the_log_says_stopped" "$(tail -n 5 "$GW_DIR/tesserad.err")"
tap_done
