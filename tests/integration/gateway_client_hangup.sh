#!/usr/bin/env bash
# gateway_client_hangup.sh — issue 7: a client that goes away while tesserad
# is still waiting for the upstream's first byte (a slow model) gets its
# upstream request cancelled — the fake upstream sees the connection closed
# before it answered — and the request still has its audit record (status
# 499, client_gone), for a plain and for a streaming request. (A client
# leaving in the middle of a stream: gateway_policy.sh.)
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

GW_SLOW_MS=4000 gw_setup ""

aborted_of() { # aborted_of MARKER -> the fake's "aborted" for the request whose body holds MARKER
	curl -s "$GW_FAKE/__received" | jq -r --arg m "$1" '[.[] | select(.body | contains($m))][-1].aborted // false'
}
audit_of() { # audit_of MARKER -> status|outcome|client_gone of the request's record ("" while none)
	pg_psql "SELECT status || '|' || outcome || '|' || coalesce(detail->>'client_gone', 'false') FROM audit_events
		WHERE action = 'gateway.request' AND req_sha256 = decode('$(gw_sha256 "$2")', 'hex')"
}

for mode in plain stream; do
	marker="hangup-before-first-byte-$mode"
	stream=false
	[[ $mode == stream ]] && stream=true
	body="{\"model\":\"fake-slow\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"$marker\"}]}"
	start=$SECONDS
	curl -s -N --max-time 0.8 -H "Authorization: Bearer $GW_TOKEN" --data-binary "$body" \
		"$GW_URL/openai/v1/chat/completions" >"$GW_DIR/$mode.out" 2>/dev/null
	is "$?" 28 "client_gave_up_before_the_first_byte ($mode)"
	is "$(cat "$GW_DIR/$mode.out")" "" "nothing_had_arrived_when_the_client_left ($mode)"
	aborted=false
	for ((t = 0; t < 25; t++)); do
		aborted=$(aborted_of "$marker")
		[[ $aborted == true ]] && break
		sleep 0.1
	done
	is "$aborted" true "upstream_request_is_aborted_when_the_client_leaves_while_waiting ($mode)"
	((SECONDS - start < 4)) && ok "the_abort_came_before_the_upstream_would_have_answered ($mode)" ||
		fail "the_abort_came_before_the_upstream_would_have_answered ($mode)" "took $((SECONDS - start)) s"
	row=
	for ((t = 0; t < 30; t++)); do
		row=$(audit_of "$marker" "$body")
		[[ -n $row ]] && break
		sleep 0.1
	done
	is "$row" "499|failure|true" "the_abandoned_request_has_its_audit_record_with_status_499 ($mode)"
done

out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $GW_TOKEN" \
	-d '{"model":"gpt-4o","messages":[{"role":"user","content":"after"}]}' "$GW_URL/openai/v1/chat/completions")
like "$out" ' 200$' "the_gateway_serves_the_next_request"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'gateway.request' AND model = 'fake-slow'")" 2 \
	"exactly_one_record_per_abandoned_request"
tap_done
