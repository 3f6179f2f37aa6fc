#!/usr/bin/env bash
# gateway_audit_spool.sh — issue 7: no served request without its audit
# record. PostgreSQL is stopped while a stream of gateway requests is in
# flight and started again: requests answered 2xx meanwhile had their records
# spooled (fsync'd), the spool is replayed in order when PostgreSQL returns,
# and afterwards every 2xx request has exactly one record, none duplicated,
# the chain has no gap. Replaying the same spool a second time (a crash after
# the commit, before the spool was removed) stores nothing twice.
# Runs with the test default [audit] durability (postgres); with
# TEST_AUDIT_DURABILITY=journal (gateway_audit_spool_journal.sh) the same
# file is the write-ahead journal every record goes to first, shipped to
# PostgreSQL behind the answers, and emptied (not removed) once shipped.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

gw_setup
out=$GW_DIR/out
mkdir -p "$out"

send() { # send I MODEL: one chat request with a unique body; status into $out/I.code
	local body="{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"request number $1\"}]}"
	printf '%s' "$body" >"$out/$1.body"
	curl -s -o "$out/$1.resp" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $GW_TOKEN" \
		-H 'Content-Type: application/json' --data-binary "@$out/$1.body" \
		"$GW_URL/openai/v1/chat/completions" >"$out/$1.code" 2>/dev/null
}

# a steady stream: 20 fast requests before, 30 slow ones (1.5 s at the upstream) across the outage
pids=()
for i in $(seq 1 20); do
	send "$i" gpt-4o &
	pids+=($!)
done
wait "${pids[@]}" # never a bare `wait`: tesserad and the fake are children too
pids=()
for i in $(seq 21 50); do
	send "$i" fake-slow &
	pids+=($!)
	sleep 0.02
done
sleep 0.3 # the slow requests are now at the upstream
gw_pg_down
ok "postgres_stopped_while_requests_are_in_flight"
for i in $(seq 51 60); do # during the outage
	send "$i" gpt-4o &
	pids+=($!)
done
wait "${pids[@]}"

spooled=$(wc -l <"$GW_SPOOL/audit.spool" 2>/dev/null || echo 0)
if ((spooled > 0)); then
	ok "records_of_requests_answered_during_the_outage_went_to_the_spool"
else
	fail "records_of_requests_answered_during_the_outage_went_to_the_spool" "$(tail -n 20 "$GW_DIR/tesserad.err")"
fi
served_down=0
for i in $(seq 21 60); do
	[[ $(cat "$out/$i.code") == 2* ]] && served_down=$((served_down + 1))
done
diag "answered 2xx while or after postgres went down: $served_down; spooled records: $spooled"
((served_down > 0)) && ok "in_flight_requests_were_served_with_their_records_spooled" ||
	fail "in_flight_requests_were_served_with_their_records_spooled"
like "$(curl -s "$GW_URL/metrics")" 'tessera_audit_spool_bytes [1-9]' "metrics_show_the_spool_size"
if grep -qF "request number" "$GW_SPOOL/audit.spool"; then
	fail "the_spool_holds_no_prompt_text"
else
	ok "the_spool_holds_no_prompt_text"
fi
is "$(stat -c %a "$GW_SPOOL/audit.spool")" 600 "spool_file_is_mode_0600"
cp "$GW_SPOOL/audit.spool" "$GW_DIR/spool.copy"

gw_pg_up
for ((t = 0; t < 150; t++)); do
	[[ -s $GW_SPOOL/audit.spool ]] || break
	sleep 0.1
done
if [[ ! -s $GW_SPOOL/audit.spool ]]; then
	ok "spool_is_replayed_and_emptied_when_postgres_returns"
else
	fail "spool_is_replayed_and_emptied_when_postgres_returns" "$(tail -n 20 "$GW_DIR/tesserad.err")"
fi
for ((t = 0; t < 100; t++)); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GW_TOKEN" \
		-d '{"model":"gpt-4o","messages":[{"role":"user","content":"after"}]}' "$GW_URL/openai/v1/chat/completions")
	[[ $code == 200 ]] && break
	sleep 0.1
done
is "$code" 200 "gateway_serves_again_after_postgres_returns"
gw_audit_shipped || diag "records still waiting for Postgres: $(curl -s "$GW_URL/metrics" | grep spool_bytes)"

check_records() { # check_records LABEL: every 2xx request has exactly one record
	local bad=0 n2xx=0 i code cnt
	for i in $(seq 1 60); do
		code=$(cat "$out/$i.code")
		[[ $code == 2* ]] || continue
		n2xx=$((n2xx + 1))
		cnt=$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request'
			AND req_sha256 = decode('$(gw_sha256 "$(cat "$out/$i.body")")', 'hex')")
		if [[ $cnt != 1 ]]; then
			bad=$((bad + 1))
			diag "request $i ($code) has $cnt records"
		fi
	done
	diag "$1: $n2xx requests answered 2xx"
	is "$bad" 0 "$1"
}
check_records "every_2xx_request_has_exactly_one_audit_record"
is "$(pg_psql "SELECT count(*) - count(DISTINCT event_id) FROM audit_events")" 0 "no_audit_event_is_duplicated"
is "$(pg_psql "SELECT count(*) FROM (SELECT req_sha256 FROM audit_events WHERE action = 'gateway.request'
	AND req_sha256 IS NOT NULL GROUP BY req_sha256 HAVING count(*) > 1) d")" 0 "no_request_is_recorded_twice"
is "$(pg_psql "SELECT max(seq) = count(*) FROM audit_events")" t "audit_chain_has_no_gap"
for i in $(seq 21 50); do
	code=$(cat "$out/$i.code")
	if [[ $code == 2* ]]; then
		body=$(cat "$out/$i.body")
		row=$(pg_psql "SELECT status, upstream, model FROM audit_events WHERE req_sha256 = decode('$(gw_sha256 "$body")', 'hex')")
		is "$row" "200|openai|fake-slow" "a_spooled_record_kept_its_fields (request $i)"
		break
	fi
done

# a second replay of the same spool (as after a crash between commit and unlink) adds nothing
before=$(pg_psql "SELECT count(*) FROM audit_events")
before_gw=$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request'")
gw_stop_tesserad
cp "$GW_DIR/spool.copy" "$GW_SPOOL/audit.spool"
gw_start_tesserad
for ((t = 0; t < 100; t++)); do
	[[ -s $GW_SPOOL/audit.spool ]] || break
	sleep 0.1
done
[[ ! -s $GW_SPOOL/audit.spool ]] && ok "a_spool_left_at_start_is_replayed" || fail "a_spool_left_at_start_is_replayed"
after_all=$(pg_psql "SELECT count(*) FROM audit_events")
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request'")" "$before_gw" \
	"replaying_the_same_spool_twice_stores_nothing_twice"
is "$((after_all - before))" 0 "second_replay_added_no_record"
like "$(cat "$GW_DIR/tesserad.err")" 'audit_spool_duplicates_skipped' "duplicates_were_recognised_by_event_id"
check_records "still_exactly_one_record_per_2xx_request_after_a_double_replay"

tap_done
