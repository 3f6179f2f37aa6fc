#!/usr/bin/env bash
# token_refresh_ahead.sh — a token in steady use is re-read from PostgreSQL
# by the token cache's own thread before its 30 s are up (broker/tokencache.c),
# so requests keep hitting the cache: over 34 s of use (0.5 s apart) the
# cache counts one miss, the first request's. Without the refresher the
# entry would go stale at 30 s and a request would wait on PostgreSQL.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

pg_start
dir=$(mktemp_dir)
tesserad_conf "$dir/t.conf" ""
"$TESSERAD" -c "$dir/t.conf" >"$dir/out" 2>"$dir/err" &
pid=$!
on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || fail "tesserad ready" "$(tail "$dir/err")"
tok=$(sed -n 's/^bootstrap token: \(tsr_[A-Za-z0-9_-]*\)$/\1/p' "$dir/out")
like "$tok" '^tsr_' "the_bootstrap_token_was_printed"
misses() { curl -s "$TESSERAD_URL/metrics" | sed -n 's/^tessera_token_cache_lookups_total{result="miss"} \([0-9]*\)$/\1/p'; }
whoami() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "$TESSERAD_URL/admin/v1/whoami"; }

is "$(whoami)" 200 "the_token_is_accepted"
m0=$(misses)
codes=""
for ((i = 0; i < 68; i++)); do
	codes+=$(whoami)" "
	sleep 0.5
done
is "$(tr ' ' '\n' <<<"$codes" | grep -v '^$' | sort -u | tr '\n' ' ')" "200 " "every_request_over_34s_is_accepted"
is "$(misses)" "$m0" "no_request_missed_the_cache_after_the_first"
like "$(curl -s "$TESSERAD_URL/metrics" | sed -n 's/^tessera_token_cache_refreshes_total \([0-9]*\)$/\1/p')" '^[1-9]' \
	"the_refresher_re_read_the_entry"
tap_done
