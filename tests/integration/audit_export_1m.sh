#!/usr/bin/env bash
# audit_export_1m.sh — issue 9: an export of 1,000,000 audit records runs in
# constant memory. One million valid chained gateway records are written
# (tests/tools/audit_tool gen, one COPY), tesserad seals them, then
# `tessera audit export` streams them all; the peak RSS of the CLI and the
# growth of tesserad's peak RSS must stay far below the export's size and
# close to what a 10,000-record export needs. The export then verifies
# offline. Figures are reported as diagnostics.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

N=1000000
LIMIT_KB=65536 # 64 MiB: the export itself is several hundred MB
GROWTH_KB=16384
TOOL=$TESSERA_BUILDDIR/tests/tools/audit_tool
pg_start
dir=$(mktemp_dir)
if [[ $(ldd "$TESSERAD" 2>/dev/null) == *libasan* ]]; then # no pipe: grep -q would SIGPIPE ldd under pipefail
	# ASan keeps freed memory in a 256 MiB quarantine: peak RSS would measure that, not the program
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
	# its allocator still keeps per-thread caches and shadow memory: looser bounds, still far below
	# the export's size (hundreds of MB), which is what buffering would cost
	LIMIT_KB=163840
	GROWTH_KB=131072
	diag "sanitizer build: ASan quarantine limited to 4 MiB, bounds ${LIMIT_KB} kB / ${GROWTH_KB} kB"
fi
TESSERA_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export TESSERA_MASTER_KEY
tesserad_conf "$dir/t.conf" "[audit]
seal_interval = 1s"
"$TESSERAD" -c "$dir/t.conf" >"$dir/d.out" 2>"$dir/d.err" &
dpid=$!
on_exit "kill $dpid 2>/dev/null; wait $dpid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || die "tesserad did not start: $(tail -20 "$dir/d.err")"
export TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$(sed -n 's/^bootstrap token: //p' "$dir/d.out")

t0=$SECONDS
out=$("$TOOL" gen "$TEST_PG_URL" "$N" --days 20 --users 500 --repos 200 2>&1)
like "$out" "appended $N records" "one_million_chained_records_are_written"
diag "generated $N records in $((SECONDS - t0)) s"
head=$(pg_psql "SELECT seq FROM audit_chain_head")
t0=$SECONDS
for _ in $(seq 1 600); do
	sealed=$(pg_psql "SELECT coalesce(max(seq_upto), 0) FROM audit_seals")
	((sealed >= head)) && break
	sleep 0.5
done
((sealed >= head)) && ok "the_sealer_verifies_and_seals_the_million_records" ||
	fail "the_sealer_verifies_and_seals_the_million_records" "sealed up to $sealed of $head; $(tail -5 "$dir/d.err")"
diag "first seal (verifying $head records) after $((SECONDS - t0)) s"

hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null; }

# run_export OUT ARGS...: export in the background, sampling the CLI's peak RSS; sets peak_kb, rc, secs
run_export() {
	local out=$1 pid start
	shift
	start=$(date +%s%N)
	"$TESSERA" audit export "$@" >"$out" 2>"$out.err" &
	pid=$!
	peak_kb=0
	while pid_alive "$pid"; do
		local v
		v=$(hwm "$pid")
		[[ -n $v ]] && ((v > peak_kb)) && peak_kb=$v
		sleep 0.05
	done
	wait "$pid"
	rc=$?
	secs=$(( ($(date +%s%N) - start) / 1000000 ))
}

from=$(pg_psql "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM audit_events WHERE seq = 1")
to=$(pg_psql "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM audit_events WHERE seq = 10001")
d_before=$(hwm "$dpid")
run_export "$dir/small.jsonl" --from "$from" --to "$to"
is "$rc" 0 "a_10000_record_export_succeeds"
small_cli=$peak_kb
d_small=$(hwm "$dpid")

head=$(pg_psql "SELECT seq FROM audit_chain_head")
run_export "$dir/all.jsonl"
is "$rc" 0 "the_1000000_record_export_succeeds"
like "$(cat "$dir/all.jsonl.err")" "OK: $head records" "the_cli_verified_the_whole_stream_as_it_wrote_it"
big_cli=$peak_kb
d_after=$(hwm "$dpid")
bytes=$(stat -c %s "$dir/all.jsonl")
is "$(grep -vc '"type":' "$dir/all.jsonl")" "$head" "the_export_holds_every_record"
diag "export: $head records, $((bytes / 1048576)) MiB in $((secs / 1000)).$((secs % 1000 / 100)) s ($((head * 1000 / (secs > 0 ? secs : 1))) records/s)"
diag "CLI peak RSS: $((small_cli / 1024)) MiB for 10,000 records, $((big_cli / 1024)) MiB for $head records"
diag "tesserad peak RSS: $((d_before / 1024)) MiB before, $((d_small / 1024)) MiB after the small export, $((d_after / 1024)) MiB after the large one"

((big_cli > 0 && big_cli < LIMIT_KB)) && ok "the_cli_exports_in_constant_memory" ||
	fail "the_cli_exports_in_constant_memory" "peak RSS ${big_cli} kB (limit ${LIMIT_KB} kB, export $bytes bytes)"
((big_cli - small_cli < GROWTH_KB)) && ok "the_cli_needs_no_more_memory_for_100_times_the_records" ||
	fail "the_cli_needs_no_more_memory_for_100_times_the_records" "${small_cli} kB vs ${big_cli} kB"
((d_after - d_before < LIMIT_KB)) && ok "tesserad_exports_in_constant_memory" ||
	fail "tesserad_exports_in_constant_memory" "peak RSS grew from ${d_before} kB to ${d_after} kB"
((d_after - d_small < GROWTH_KB)) && ok "tesserad_needs_no_more_memory_for_100_times_the_records" ||
	fail "tesserad_needs_no_more_memory_for_100_times_the_records" "${d_small} kB vs ${d_after} kB"

curl -s "$TESSERAD_URL/audit/v1/keys" >"$dir/keys.json"
start=$(date +%s%N)
out=$("$TESSERA" audit verify --file "$dir/all.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 0 "the_million_record_export_verifies_offline"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
diag "offline verification: $head records in $ms ms ($((head * 1000 / (ms > 0 ? ms : 1))) records/s)"
out=$("$TESSERA" --json audit verify)
like "$out" '"ok": true' "tesserad_verifies_the_million_records_online"
diag "online verification: $(sed -n 's/.*"records_per_second": \([0-9]*\).*/\1/p' <<<"$out") records/s"

tap_done
