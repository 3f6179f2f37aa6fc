#!/usr/bin/env bash
# gateway_policy.sh — issue 7: the gateway's checks and errors, each in the
# route's dialect: classification policy (a phi repository's token cannot
# reach a non-BAA upstream), token scope, 401/403/404/413/429/502/504, scanner
# block/redact/log per rule and classification, the upstream request
# cancelled when the client goes away, what the audit record holds (and
# never: prompt text), the organisation key never in the clear in Postgres
# or the logs, `tessera upstream list|show`, /metrics.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"

GW_SLOW_MS=3000 gw_setup "[policy]
scanner_action = us_ssn@none:redact, jwt:log
patterns = mrn:MRN-#######

[gateway]
max_body = 4096
read_timeout = 1s
rate_limit = 60

[upstream.dead]
kind = openai
base_url = http://127.0.0.1:1/v1
models = dead-model"
H=$GW_DIR/h
post() { # post PATH TOKEN BODY [HEADER] -> "BODY CODE", response headers in $H
	curl -s -D "$H" -w ' %{http_code}' --max-time 20 -H "Authorization: Bearer $2" ${4:+-H "$4"} \
		--data-binary "$3" "$GW_URL$1"
}
chat='{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
# ---- classification policy ----------------------------------------------------
out=$(post /openai/v1/chat/completions "$GW_TOKEN_PHI" "$chat")
like "$out" ' 403$' "phi_repository_token_cannot_reach_a_non_baa_upstream"
like "$out" 'policy classified_upstreams' "the_refusal_names_the_policy"
like "$out" "upstream 'openai'" "the_refusal_names_the_upstream"
is "$(pg_psql "SELECT decision || ' ' || status || ' ' || outcome FROM audit_events WHERE action = 'gateway.request'
	AND credential_id = (SELECT max(id) FROM credentials WHERE kind = 'access') ORDER BY seq DESC LIMIT 1")" \
	"deny 403 denied" "policy_refusal_is_audited_as_denied"
out=$(post /anthropic/v1/messages "$GW_TOKEN_PHI" '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"x"}]}')
like "$out" ' 200$' "phi_repository_token_reaches_the_baa_upstream"
out=$(post /openai/v1/chat/completions "$GW_TOKEN_PHI" '{"model":"llama-3","messages":[{"role":"user","content":"x"}]}')
like "$out" ' 200$' "phi_repository_token_reaches_the_on_prem_upstream"
is "$(curl -s "$GW_FAKE/__received" | jq -r '.[-1].headers.authorization // "none"')" none \
	"a_keyless_upstream_gets_no_credential_at_all"
# A reclassification reaches live tokens with its notification (what the GitHub
# sync sends when a repository's classifications change), not after a cache
# expiry: the classifications come with the token check.
reclassify() { # reclassify CLASSES-ARRAY: acme/api, then the sync's notification
	pg_psql "UPDATE repositories SET classifications = '$1' WHERE owner = 'acme' AND name = 'api';
SELECT pg_notify('tessera_perm', 'repo:' || id) FROM repositories WHERE owner = 'acme' AND name = 'api'" >/dev/null
}
until_code() { # until_code CODE: post with GW_TOKEN until it answers CODE (at most 2 s); the last answer
	local out t
	for ((t = 0; t < 20; t++)); do
		out=$(post /openai/v1/chat/completions "$GW_TOKEN" "$chat")
		[[ $out == *" $1" ]] && break
		sleep 0.1
	done
	echo "$out"
}
like "$(post /openai/v1/chat/completions "$GW_TOKEN" "$chat")" ' 200$' "unclassified_repository_token_reaches_the_non_baa_upstream"
reclassify '{phi}'
like "$(until_code 403)" 'policy classified_upstreams.* 403$' "a_repository_reclassified_phi_is_refused_within_2s_of_the_notification"
reclassify '{}'
like "$(until_code 200)" ' 200$' "and_allowed_again_once_unclassified"

# ---- authentication and scope -----------------------------------------------------
out=$(curl -s -w ' %{http_code}' -d "$chat" "$GW_URL/openai/v1/chat/completions")
like "$out" '^\{"error":\{"message":"no credential.*"type":"authentication_error".* 401$' "missing_token_is_401_in_openai_dialect"
out=$(curl -s -w ' %{http_code}' -H "x-api-key: tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" -d '{}' "$GW_URL/anthropic/v1/messages")
like "$out" '^\{"type":"error","error":\{"type":"authentication_error","message":"unknown credential"\}\}.? 401$' \
	"unknown_token_is_401_in_anthropic_dialect"
out=$(post /openai/v1/chat/completions "$GW_SESSION" "$chat")
like "$out" 'only access tokens.* 403$' "a_session_cannot_call_the_gateway"
scoped=$(gw_mint acme/api '["gpt-4o-mini"]')
out=$(post /openai/v1/chat/completions "$scoped" "$chat")
like "$out" 'scoped to the models gpt-4o-mini.* 403$' "token_model_scope_is_enforced"
out=$(post /openai/v1/chat/completions "$scoped" '{"model":"gpt-4o-mini","messages":[]}')
like "$out" ' 200$' "token_scope_allows_its_model"
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $scoped" "$GW_URL/openai/v1/models")
is "$(jq -r '[.data[].id] | join(",")' <<<"${out% *}")" gpt-4o-mini "models_lists_only_what_the_token_may_use"

# ---- request errors -------------------------------------------------------------
out=$(post /openai/v1/chat/completions "$GW_TOKEN" '{"model":"no-such-model","messages":[]}')
like "$out" 'not served by any.* 404$' "unknown_model_is_404"
out=$(post /openai/v1/chat/completions "$GW_TOKEN" 'not json')
like "$out" 'not a JSON object.* 400$' "invalid_json_is_400"
big=$(printf '{"model":"gpt-4o","messages":[{"role":"user","content":"%05000d"}]}' 0)
out=$(post /openai/v1/chat/completions "$GW_TOKEN" "$big")
like "$out" '"code":"request_too_large".* 413$' "body_over_max_body_is_413_in_dialect"
out=$(post /anthropic/v1/messages "$GW_TOKEN" "$big")
like "$out" '"type":"request_too_large".* 413$' "anthropic_413_in_dialect"
out=$(post /openai/v1/chat/completions "$GW_TOKEN" '{"model":"dead-model","messages":[]}')
like "$out" "upstream 'dead' failed.* 502$" "unreachable_upstream_is_502"
start=$SECONDS
out=$(post /openai/v1/chat/completions "$GW_TOKEN" '{"model":"fake-slow","messages":[]}')
like "$out" 'timed out.* 504$' "silent_upstream_is_504_after_read_timeout"
((SECONDS - start <= 5)) && ok "timeout_does_not_hang" || fail "timeout_does_not_hang"

# ---- scanner: block, redact, log; per classification -----------------------------
seen=$(gw_fake_count)
out=$(post /openai/v1/chat/completions "$GW_TOKEN" '{"model":"gpt-4o","messages":[{"role":"user","content":"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"}]}')
like "$out" "rule 'pem_private_key'.* 400$" "private_key_is_blocked_naming_the_rule"
unlike "$out" 'MIIEow' "the_refusal_never_contains_the_match"
is "$(gw_fake_count)" "$seen" "a_blocked_request_is_not_forwarded"
out=$(post /openai/v1/chat/completions "$GW_TOKEN" '{"model":"gpt-4o","messages":[{"role":"user","content":"ssn 123-45-6789 please"}]}')
like "$out" ' 200$' "ssn_in_an_unclassified_repository_is_redacted_and_forwarded"
sent=$(curl -s "$GW_FAKE/__received" | jq -r '.[-1].body')
like "$sent" 'ssn \[REDACTED:us_ssn\] please' "upstream_got_the_typed_placeholder"
unlike "$sent" '123-45-6789' "upstream_never_saw_the_ssn"
is "$(pg_psql "SELECT decision || ' ' || rule_hits::text FROM audit_events WHERE action = 'gateway.request' ORDER BY seq DESC LIMIT 1")" \
	'redact {"us_ssn": 1}' "redaction_is_audited_with_its_rule_hits"
out=$(post /anthropic/v1/messages "$GW_TOKEN_PHI" '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"ssn 123-45-6789"}]}')
like "$out" "rule 'us_ssn'.* 400$" "ssn_in_a_phi_repository_is_blocked_by_default"
out=$(post /anthropic/v1/messages "$GW_TOKEN_PHI" '{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"see MRN-0012345"}]}')
like "$out" "rule 'mrn'.* 400$" "configured_mrn_pattern_is_blocked_in_a_phi_repository"
out=$(post /openai/v1/chat/completions "$GW_TOKEN" '{"model":"gpt-4o","messages":[{"role":"user","content":"card 4111 1111 1111 1111"}]}')
like "$out" ' 200$' "card_number_in_an_unclassified_repository_is_logged_not_blocked"
is "$(pg_psql "SELECT decision || ' ' || rule_hits::text FROM audit_events WHERE action = 'gateway.request' ORDER BY seq DESC LIMIT 1")" \
	'allow {"card_number": 1}' "logged_hit_is_counted_in_the_audit_record"
out=$(post /openai/v1/chat/completions "$GW_TOKEN" "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"$GW_TOKEN\"}]}")
like "$out" "rule 'tsr_token'.* 400$" "a_tsr_token_in_the_prompt_is_blocked"

# ---- streaming: the upstream request is cancelled when the client goes away ---------
curl -s -N --max-time 1 -H "Authorization: Bearer $GW_TOKEN" \
	-d '{"model":"fake-drip","stream":true,"messages":[{"role":"user","content":"drip"}]}' \
	"$GW_URL/openai/v1/chat/completions" >"$GW_DIR/drip.out" 2>/dev/null
like "$(cat "$GW_DIR/drip.out")" 'data: \{' "stream_chunks_arrived_before_the_client_left"
for ((t = 0; t < 20; t++)); do
	aborted=$(curl -s "$GW_FAKE/__received" | jq -r '[.[] | select(.body | test("drip"))][-1].aborted // false')
	[[ $aborted == true ]] && break
	sleep 0.1
done
is "$aborted" true "upstream_request_is_cancelled_when_the_client_goes_away"
sleep 0.3
like "$(pg_psql "SELECT detail::text FROM audit_events WHERE action = 'gateway.request' AND model = 'fake-drip'")" \
	'"client_gone": true' "the_cancelled_stream_has_its_audit_record"

# ---- audit record contents ------------------------------------------------------------
body='{"model":"gpt-4o","messages":[{"role":"user","content":"unique prompt text 4242"}]}'
out=$(post /openai/v1/chat/completions "$GW_TOKEN" "$body")
like "$out" ' 200$' "plain_request_succeeds"
row=$(pg_psql "SELECT u.user_name, r.full_name, e.route, e.model, e.upstream, e.upstream_key_id IS NOT NULL, e.decision,
	e.req_bytes, e.resp_bytes > 0, e.status, e.latency_us > 0, e.tokens_in > 0, e.tokens_out
	FROM audit_events e JOIN users u ON u.id = e.user_id JOIN repositories r ON r.id = e.repo_id
	WHERE e.req_sha256 = decode('$(gw_sha256 "$body")', 'hex')")
is "$row" "alice|acme/api|/openai/v1/chat/completions|gpt-4o|openai|t|allow|${#body}|t|200|t|t|5" \
	"audit_record_has_user_repo_route_model_upstream_key_bytes_status_latency_tokens"
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE detail::text LIKE '%unique prompt%' OR target LIKE '%unique prompt%'")" 0 \
	"audit_record_never_holds_the_prompt"

# ---- rate limit (60/min) --------------------------------------------------------------
# Windows are fixed UTC minutes: a burst that straddles a minute boundary may get up to
# twice the limit through, so 200 requests (more than two windows' worth) must meet a 429.
limited=
for ((i = 0; i < 200; i++)); do
	code=$(curl -s -o "$GW_DIR/rl.out" -D "$H" -w '%{http_code}' -H "Authorization: Bearer $GW_TOKEN" \
		-d '{"model":"gpt-4o-mini","messages":[]}' "$GW_URL/openai/v1/chat/completions")
	if [[ $code == 429 ]]; then
		limited=1
		break
	fi
done
if [[ -n $limited ]]; then
	ok "rate_limit_answers_429"
	like "$(cat "$H")" $'[Rr]etry-[Aa]fter: [0-9]+' "rate_limited_reply_has_retry_after"
	like "$(cat "$GW_DIR/rl.out")" '"type":"rate_limit_error"' "rate_limited_reply_is_in_dialect"
else
	fail "rate_limit_answers_429" "no 429 in 200 requests"
fi

# ---- the organisation key stays secret ----------------------------------------------
pg_psql "CHECKPOINT" >/dev/null
if grep -rqsF "$GW_ORG_OPENAI" "$TEST_PG_DIR" "$GW_DIR"/tesserad.err "$GW_DIR"/tesserad.out; then
	fail "org_key_never_in_postgres_or_logs_in_the_clear"
else
	ok "org_key_never_in_postgres_or_logs_in_the_clear"
fi
is "$(pg_psql "SELECT count(*) FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
	WHERE k.state = 'active' AND octet_length(k.wrapped_dek) = 48 AND k.origin = 'config'")" 2 \
	"org_keys_are_stored_as_envelopes"

# ---- tessera upstream list | show ------------------------------------------------
export TESSERA_URL=$GW_URL
list=$(TESSERA_TOKEN=$GW_BOOT "$TESSERA" upstream list 2>&1)
is "$?" 0 "upstream_list_succeeds"
like "$list" 'anthropic +anthropic +us +yes +no +v1 +claude-test' "upstream_list_shows_baa_and_key_version"
like "$list" 'onprem +openai-compatible +- +no +yes +- +llama-3' "upstream_list_shows_on_prem_without_key"
show=$(TESSERA_TOKEN=$GW_BOOT "$TESSERA" upstream show openai 2>&1)
like "$show" 'active key: +version 1, fingerprint [0-9a-f]{32}' "upstream_show_names_the_key_by_fingerprint"
unlike "$show" "$GW_ORG_OPENAI" "upstream_show_never_shows_the_key"
TESSERA_TOKEN=$GW_BOOT "$TESSERA" upstream show nope >/dev/null 2>&1
is "$?" 4 "upstream_show_of_an_unknown_upstream_exits_4"
TESSERA_TOKEN=$GW_TOKEN "$TESSERA" upstream list >/dev/null 2>&1
is "$?" 3 "upstream_list_needs_admin_or_security"

# ---- metrics ---------------------------------------------------------------------
m=$(curl -s "$GW_URL/metrics")
like "$m" 'tessera_gateway_requests_total\{route="/openai/v1/chat/completions",status="200",upstream="openai"\} [1-9]' \
	"metrics_count_requests_by_route_status_upstream"
like "$m" 'tessera_scanner_hits_total\{rule="us_ssn"\} [1-9]' "metrics_count_scanner_hits_by_rule"
like "$m" 'tessera_gateway_overhead_seconds_count [1-9]' "metrics_have_the_overhead_histogram"
tap_done
