#!/usr/bin/env bash
# shutdown_drain.sh — SIGTERM lets requests already in flight finish (a login
# waiting 2 s on the repo host gets its answer), refuses new connections,
# then tesserad exits 0.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

pg_start
dir=$(mktemp_dir)
ghport=$(free_port)
node "$TESSERA_SRCDIR/tests/fakes/repohost-user/server.mjs" "$ghport" "gh-slow=slow:slowpoke" >"$dir/gh.log" 2>&1 &
ghpid=$!
on_exit "kill $ghpid 2>/dev/null"
wait_http "http://127.0.0.1:$ghport/user" 10 || fail "fake repo host started"
tesserad_conf "$dir/t.conf" "[github]
api_url = http://127.0.0.1:$ghport"
"$TESSERAD" -c "$dir/t.conf" >"$dir/out" 2>"$dir/err" &
pid=$!
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || fail "tesserad ready" "$(tail "$dir/err")"
pg_psql "INSERT INTO users (user_name, repo_login) VALUES ('slowpoke', 'slowpoke')" >/dev/null

curl -s -o "$dir/slow.body" -w '%{http_code}' -X POST -d '{"token":"gh-slow"}' \
	"$TESSERAD_URL/auth/v1/login/github" >"$dir/slow.code" 2>&1 &
cpid=$!
sleep 0.7 # the login is now waiting on the repo host
kill -TERM "$pid"
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$TESSERAD_URL/healthz")
is "$code" 000 "after_sigterm_new_connections_are_refused"
wait "$cpid"
is "$(cat "$dir/slow.code")" 200 "the_request_in_flight_completes_after_sigterm"
like "$(cat "$dir/slow.body")" '"token":"tsr_' "the_request_in_flight_gets_its_full_answer"
wait "$pid"
is "$?" 0 "tesserad_exits_0_after_draining"
like "$(cat "$dir/err")" "event=stopped" "tesserad_logs_that_it_stopped"
tap_done
