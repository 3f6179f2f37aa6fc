#!/usr/bin/env bash
# gateway_fail_closed.sh — issue 7: when neither PostgreSQL nor the audit
# spool can take a record, the gateway refuses (503) and forwards nothing;
# /readyz and /metrics say why. A request already at the upstream when the
# audit log became unwritable is not served either: its answer is withheld.
# When the spool is writable again, requests are served again.
# With TEST_AUDIT_DURABILITY=journal (gateway_fail_closed_journal.sh) the
# spool directory holds the journal: unwritable journal = refused, whatever
# PostgreSQL's state.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

gw_setup
chat() { # chat MODEL CONTENT -> "BODY CODE"
	curl -s -w ' %{http_code}' --max-time 30 -H "Authorization: Bearer $GW_TOKEN" \
		-d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]}" "$GW_URL/openai/v1/chat/completions"
}
like "$(chat gpt-4o before)" ' 200$' "gateway_serves_while_postgres_is_up"

# the spool directory becomes unusable (a file where the directory should be: even root cannot write into it)
rm -rf "$GW_SPOOL"
touch "$GW_SPOOL"

# a request in flight when postgres goes down: its answer comes back, its record cannot be written
chat fake-slow "in flight" >"$GW_DIR/inflight.out" &
inflight=$!
sleep 0.4
gw_pg_down
wait "$inflight"
out=$(cat "$GW_DIR/inflight.out")
like "$out" ' 503$' "in_flight_request_whose_record_cannot_be_written_is_answered_503"
like "$out" 'withheld' "the_refusal_says_the_answer_was_withheld"

for ((t = 0; t < 50; t++)); do
	ready=$(curl -s -w ' %{http_code}' "$GW_URL/readyz")
	[[ $ready == *audit* ]] && break
	sleep 0.1
done
like "$ready" ' 503$' "readyz_is_503_while_the_audit_log_is_unwritable"
like "$ready" 'audit log unavailable' "readyz_says_the_audit_log_is_unavailable"
like "$(curl -s "$GW_URL/metrics")" 'tessera_audit_writable 0' "metrics_show_the_audit_log_unwritable"

seen=$(gw_fake_count)
codes=""
for i in 1 2 3 4 5; do
	out=$(chat gpt-4o "refused $i")
	codes+="${out##* } "
	msg=$out
done
is "$codes" "503 503 503 503 503 " "requests_are_refused_with_503"
like "$msg" '"type":"server_error"' "refusal_is_in_the_openai_dialect"
like "$msg" 'audit log unavailable' "refusal_names_the_audit_log"
out=$(curl -s -w ' %{http_code}' -H "x-api-key: $GW_TOKEN" \
	-d '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"x"}]}' "$GW_URL/anthropic/v1/messages")
like "$out" '^\{"type":"error","error":\{"type":"overloaded_error".* 503$' "anthropic_route_refuses_in_its_dialect"
is "$(gw_fake_count)" "$seen" "nothing_was_forwarded_upstream_while_refusing"

# the spool works again (postgres still down): requests in flight could be served again
rm -f "$GW_SPOOL"
mkdir "$GW_SPOOL"
for ((t = 0; t < 50; t++)); do
	[[ $(curl -s "$GW_URL/metrics") == *"tessera_audit_writable 1"* ]] && break
	sleep 0.1
done
like "$(curl -s "$GW_URL/metrics")" 'tessera_audit_writable 1' "audit_log_is_writable_again_once_the_spool_is"

gw_pg_up
for ((t = 0; t < 100; t++)); do
	out=$(chat gpt-4o after)
	[[ $out == *" 200" ]] && break
	sleep 0.1
done
like "$out" ' 200$' "gateway_serves_again_when_postgres_returns"
gw_audit_shipped || diag "records still waiting for Postgres: $(curl -s "$GW_URL/metrics" | grep spool_bytes)"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request' AND status = 200
	AND req_sha256 = decode('$(gw_sha256 '{"model":"gpt-4o","messages":[{"role":"user","content":"after"}]}')', 'hex')")" 1 \
	"the_served_request_has_its_record"
tap_done
