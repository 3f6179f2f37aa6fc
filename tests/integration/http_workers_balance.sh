#!/usr/bin/env bash
# http_workers_balance.sh — new connections go to the HTTP worker with the
# fewest (broker/http.c): three idle keep-alive clients on three workers land
# one on each, /metrics shows it (tessera_http_worker_connections), and the
# count falls again when they close. With one listening socket shared by the
# workers, whichever woke first took them all.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

pg_start
dir=$(mktemp_dir)
tesserad_conf "$dir/t.conf" "[server]
workers = 3"
"$TESSERAD" -c "$dir/t.conf" >"$dir/out" 2>"$dir/err" &
pid=$!
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || fail "tesserad ready" "$(tail "$dir/err")"
sleep 0.3 # the readiness probes' connections are closed

per_worker() { curl -s "$TESSERAD_URL/metrics" | sed -n 's/^tessera_http_worker_connections{worker="\([0-9]*\)"} \(-\{0,1\}[0-9]*\)$/\1 \2/p'; }

like "$(per_worker | wc -l | tr -d ' ')" '^3$' "metrics_list_one_line_per_worker"
# three idle connections, held open by this shell
exec 3<>"/dev/tcp/127.0.0.1/$TESSERAD_PORT" 4<>"/dev/tcp/127.0.0.1/$TESSERAD_PORT" 5<>"/dev/tcp/127.0.0.1/$TESSERAD_PORT"
sleep 0.3
counts=$(per_worker) # the scrape's own connection is the fourth
diag "while held: $(tr '\n' ' ' <<<"$counts")"
is "$(awk '$2 >= 1' <<<"$counts" | wc -l | tr -d ' ')" 3 "each_worker_took_one_of_the_idle_connections"
is "$(awk '{ s += $2 } END { print s }' <<<"$counts")" 4 "the_counts_add_up_to_the_open_connections"
exec 3>&- 4>&- 5>&-
sleep 0.5
counts=$(per_worker)
is "$(awk '{ s += $2 } END { print s }' <<<"$counts")" 1 "closed_connections_are_no_longer_counted"
tap_done
