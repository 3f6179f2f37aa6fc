#!/usr/bin/env bash
# gateway_audit_journal_crash.sh — issue 7, [audit] durability = journal:
# an answer waits only for its record in the local journal (fsync'd), and
# records reach PostgreSQL behind the answers. Shipping is held up
# deterministically (a session holds the audit chain head's row lock, which
# every append needs) while requests are answered; the journal fills up to
# journal_max_bytes and then the gateway fails closed (503, nothing
# forwarded, /readyz says so). tesserad is then killed with SIGKILL, the
# journal gets a torn last line (a crash in the middle of a write), the
# lock is released and tesserad restarted: every request that was answered
# 2xx has exactly one record in PostgreSQL, none twice, the chain has no gap
# and `tessera audit verify` accepts it.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

export TEST_AUDIT_DURABILITY=journal
gw_setup "[audit]
journal_max_bytes = 65536"
out=$GW_DIR/out
mkdir -p "$out"
journal=$GW_SPOOL/audit.spool

send() { # send I: one chat request with a unique body; prints its status
	local body="{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"journal request $1\"}]}"
	printf '%s' "$body" >"$out/$1.body"
	curl -s -o "$out/$1.resp" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $GW_TOKEN" \
		-H 'Content-Type: application/json' --data-binary "@$out/$1.body" \
		"$GW_URL/openai/v1/chat/completions" | tee "$out/$1.code"
}
records_of() { # records_of I: how many audit records request I has
	pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request'
		AND req_sha256 = decode('$(gw_sha256 "$(cat "$out/$1.body")")', 'hex')"
}

# shipping works: records follow the answers
for i in 1 2 3 4 5; do
	send "$i" >/dev/null
done
gw_audit_shipped && ok "records_are_shipped_to_postgres_behind_the_answers" ||
	fail "records_are_shipped_to_postgres_behind_the_answers" "$(tail -n 20 "$GW_DIR/tesserad.err")"
is "$(records_of 1)$(records_of 5)" 11 "shipped_records_are_in_postgres"

# hold the chain head's row lock: every append to the chain (the shipper's) waits for it
psql=psql
[[ -n ${TEST_PG_BINDIR:-} && -x $TEST_PG_BINDIR/psql ]] && psql=$TEST_PG_BINDIR/psql
mkfifo "$GW_DIR/lock.fifo"
"$psql" -XAtq "$TEST_PG_URL" <"$GW_DIR/lock.fifo" >"$GW_DIR/lock.out" 2>&1 &
lockpid=$!
exec 7>"$GW_DIR/lock.fifo"
on_exit "exec 7>&-; kill $lockpid 2>/dev/null"
printf 'BEGIN;\nSELECT seq FROM audit_chain_head FOR UPDATE;\nSELECT %s;\n' "'locked'" >&7
for ((t = 0; t < 100; t++)); do
	grep -qs locked "$GW_DIR/lock.out" && break
	sleep 0.1
done
like "$(cat "$GW_DIR/lock.out")" locked "a_session_holds_the_chain_head_lock"

# answered while shipping is held up: from the journal alone
codes=""
for i in $(seq 6 25); do
	codes+="$(send "$i") "
done
is "$codes" "$(printf '200 %.0s' $(seq 6 25))" "requests_are_answered_while_shipping_is_held_up"
sleep 0.5
unshipped=0
for i in $(seq 6 25); do
	unshipped=$((unshipped + 1 - $(records_of "$i")))
done
is "$unshipped" 20 "none_of_their_records_is_in_postgres_yet"
lines=$(wc -l <"$journal")
((lines >= 20)) && ok "their_records_are_in_the_journal" || fail "their_records_are_in_the_journal" "$lines lines"
like "$(curl -s "$GW_URL/metrics")" 'tessera_audit_spool_bytes [1-9]' "metrics_show_the_unshipped_bytes"

# the journal fills up to journal_max_bytes: then the gateway fails closed
last=25 code=200
while [[ $code == 200 ]] && ((last < 200)); do
	last=$((last + 1))
	code=$(send "$last")
done
is "$code" 503 "a_full_journal_refuses_requests_with_503"
diag "answered before the journal was full: $((last - 1)) requests, journal $(stat -c %s "$journal") bytes"
seen=$(gw_fake_count)
is "$(send refused)" 503 "requests_stay_refused_while_the_journal_is_full"
like "$(cat "$out/refused.resp")" 'journal full' "the_refusal_says_the_journal_is_full"
is "$(gw_fake_count)" "$seen" "nothing_is_forwarded_while_the_journal_is_full"
ready=$(curl -s -w ' %{http_code}' "$GW_URL/readyz")
like "$ready" ' 503$' "readyz_is_503_while_the_journal_is_full"
like "$ready" 'journal full' "readyz_says_the_journal_is_full"

# crash: SIGKILL, a torn last line, then the lock goes and tesserad restarts
kill -KILL "$TESSERAD_PID"
wait "$TESSERAD_PID" 2>/dev/null
# the torn write: part of a line where the content ends (at the first zero byte: each batch is padded with zeros)
end=$(head -z -n 1 "$journal" | tr -d '\000' | wc -c)
printf '{"at_us":17956,"event_id":"torn' | dd of="$journal" bs=1 seek="$end" conv=notrunc status=none
printf 'ROLLBACK;\n' >&7
exec 7>&-
wait "$lockpid"
unshipped=0
for i in $(seq 6 25); do
	unshipped=$((unshipped + 1 - $(records_of "$i")))
done
is "$unshipped" 20 "the_killed_process_shipped_nothing_of_them"
gw_start_tesserad
gw_audit_shipped && ok "the_journal_is_shipped_after_the_restart" ||
	fail "the_journal_is_shipped_after_the_restart" "$(tail -n 20 "$GW_DIR/tesserad.err")"
bad=0 n2xx=0
for i in $(seq 1 "$last") refused; do
	[[ $(cat "$out/$i.code") == 2* ]] || continue
	n2xx=$((n2xx + 1))
	cnt=$(records_of "$i")
	if [[ $cnt != 1 ]]; then
		bad=$((bad + 1))
		diag "request $i has $cnt records"
	fi
done
diag "$n2xx requests answered 2xx"
is "$bad" 0 "every_answered_request_has_exactly_one_record_after_the_crash"
is "$(records_of "$last")" 0 "the_refused_request_has_no_success_record"
is "$(pg_psql "SELECT count(*) - count(DISTINCT event_id) FROM audit_events")" 0 "no_audit_event_is_duplicated"
is "$(pg_psql "SELECT max(seq) = count(*) FROM audit_events")" t "audit_chain_has_no_gap"
like "$(cat "$GW_DIR/tesserad.err")" 'audit_journal_torn_line' "the_torn_line_is_cut_off"
like "$(cat "$GW_DIR/tesserad.err")" 'audit_journal_replayed' "the_journal_found_at_start_is_shipped_with_de_duplication"
out_v=$(TESSERA_URL=$GW_URL TESSERA_TOKEN=$GW_BOOT "$TESSERA" audit verify 2>&1)
is "$?" 0 "audit_verify_accepts_the_chain"
like "$out_v" 'chain intact' "audit_verify_reports_the_chain_intact"
is "$(send after)" 200 "the_gateway_serves_again"

tap_done
