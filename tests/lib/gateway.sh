# shellcheck shell=bash
# tests/lib/gateway.sh — a running gateway for tests: PostgreSQL, the fake LLM
# upstream (tests/fakes/llm), tesserad with three upstreams, users and
# repositories, and access tokens minted the real way (POST /auth/v1/token).
#
#   gw_setup [EXTRA_INI]   start everything; EXTRA_INI is appended to the config.
#                          GW_SLOW_MS: how long the fake's "slow" models wait (default 1500).
#                          GW_EXTRA_KEYS: more provider keys the fake accepts (comma-separated).
#                          GW_FAKE_ARGS: more arguments for the fake (e.g. --admin-key K --project P).
#                          Exports:
#     GW_DIR          the test's dir (config, logs: tesserad.err, fake.log)
#     GW_URL          http://127.0.0.1:PORT of tesserad
#     GW_FAKE         http://127.0.0.1:PORT of the fake upstream
#     GW_SPOOL        the audit spool dir
#     GW_TOKEN        access token of alice for acme/api (unclassified)
#     GW_TOKEN_PHI    access token of alice for acme/ehr (classified phi)
#     GW_SESSION      alice's session (mints more tokens)
#     GW_BOOT         the bootstrap admin token
#     GW_ORG_OPENAI, GW_ORG_ANTHROPIC   the organisation's provider keys
#     TESSERAD_PID
#   gw_mint REPO [MODELS_JSON]   prints a new access token of alice for REPO
#   gw_start_tesserad / gw_stop_tesserad   (re)start the daemon with the same config
#   gw_fake_count         requests the fake upstream has received
#   gw_pg_down / gw_pg_up stop PostgreSQL (fast shutdown) / start it again on the same port and data
#   gw_sha256 TEXT        hex SHA-256 of TEXT (as the audit record's req_sha256)
#   gw_audit_shipped      wait until no audit record waits locally for Postgres (TEST_AUDIT_DURABILITY=journal)
#
# Upstreams: openai (kind openai, not BAA, region us: gpt-4o, gpt-4o-mini,
# text-embedding-3-small, fake-slow, fake-drip), anthropic (kind anthropic, BAA:
# claude-test, claude-slow, claude-drip), onprem (openai-compatible,
# on_prem, no key: llama-3).

if [[ -n ${_TESSERA_GATEWAY_SH:-} ]]; then
	return 0
fi
_TESSERA_GATEWAY_SH=1

# shellcheck source=tests/lib/pg.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"

gw_fake_count() {
	curl -s "$GW_FAKE/__count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p'
}

gw_start_tesserad() {
	"$TESSERAD" -c "$GW_DIR/tesserad.conf" >>"$GW_DIR/tesserad.out" 2>>"$GW_DIR/tesserad.err" &
	TESSERAD_PID=$!
	export TESSERAD_PID
	on_exit "kill $TESSERAD_PID 2>/dev/null; wait $TESSERAD_PID 2>/dev/null"
	local i
	for ((i = 0; i < 300; i++)); do
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "$GW_URL/healthz") == 200 ]]; then
			return 0
		fi
		pid_alive "$TESSERAD_PID" || break
		sleep 0.1
	done
	tail -n 30 "$GW_DIR/tesserad.err" >&2
	die "gw_setup: tesserad did not start"
}

gw_audit_shipped() { # wait (up to 15 s) until no audit record waits in the journal/spool for Postgres
	local i
	for ((i = 0; i < 150; i++)); do
		[[ $(curl -s "$GW_URL/metrics") == *"tessera_audit_spool_bytes 0"* ]] && return 0
		sleep 0.1
	done
	return 1
}

gw_sha256() {
	printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

gw_pg_down() {
	local pid i
	pid=$(head -n 1 "$TEST_PG_DIR/data/postmaster.pid" 2>/dev/null)
	kill -INT "$pid" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.05
	done
	die "gw_pg_down: postmaster $pid did not stop"
}

gw_pg_up() {
	_pg_as "$TEST_PG_DIR" "$TEST_PG_BINDIR/pg_ctl" -D "$TEST_PG_DIR/data" -l "$TEST_PG_DIR/postgres.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $TEST_PGPORT -k '$TEST_PG_DIR/sock' -c fsync=off -c synchronous_commit=off" \
		start >>"$TEST_PG_DIR/pg_ctl.log" 2>&1 || die "gw_pg_up: postgres did not restart"
	local pid
	pid=$(head -n 1 "$TEST_PG_DIR/data/postmaster.pid")
	printf -v "_PG_PID_${_PG_CURRENT:-main}" '%s' "$pid"
	TEST_PG_PID=$pid
}

gw_stop_tesserad() {
	kill -TERM "$TESSERAD_PID" 2>/dev/null
	wait "$TESSERAD_PID" 2>/dev/null
}

gw_mint() { # gw_mint REPO [MODELS_JSON]
	local body
	body="{\"repo\":\"$1\",\"ttl\":3600${2:+,\"models\":$2}}"
	curl -s -X POST -H "Authorization: Bearer $GW_SESSION" -d "$body" "$GW_URL/auth/v1/token" |
		sed -n 's/.*"token":"\(tsr_[^"]*\)".*/\1/p'
}

gw_setup() {
	local extra=${1:-} fport
	pg_start
	GW_DIR=$(mktemp_dir gw)
	export GW_DIR
	GW_SPOOL=$GW_DIR/spool
	export GW_SPOOL
	GW_ORG_OPENAI=sk-org-openai-$RANDOM$RANDOM
	GW_ORG_ANTHROPIC=sk-ant-org-$RANDOM$RANDOM
	export GW_ORG_OPENAI GW_ORG_ANTHROPIC
	printf '%s\n' "$GW_ORG_OPENAI" >"$GW_DIR/openai.key"
	printf '%s\n' "$GW_ORG_ANTHROPIC" >"$GW_DIR/anthropic.key"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$GW_DIR/master.key"
	chmod 0600 "$GW_DIR/openai.key" "$GW_DIR/anthropic.key" "$GW_DIR/master.key"

	fport=$(free_port)
	# shellcheck disable=SC2086 # GW_FAKE_ARGS is a word list
	node "$TESSERA_SRCDIR/tests/fakes/llm/server.mjs" "$fport" "$GW_ORG_OPENAI,$GW_ORG_ANTHROPIC${GW_EXTRA_KEYS:+,$GW_EXTRA_KEYS}" "${GW_SLOW_MS:-1500}" \
		${GW_FAKE_ARGS:-} >"$GW_DIR/fake.log" 2>&1 &
	local fpid=$!
	on_exit "kill $fpid 2>/dev/null"
	GW_FAKE=http://127.0.0.1:$fport
	export GW_FAKE
	wait_http "$GW_FAKE/__count" 10 || die "gw_setup: fake LLM upstream did not start"

	unset TESSERAD_PORT
	tesserad_conf "$GW_DIR/tesserad.conf" "[server]
master_key_file = $GW_DIR/master.key
" >/dev/null
	# tesserad_conf wrote [server] first; our extra [server] key must live there: rewrite
	{
		printf '[server]\nlisten = 127.0.0.1:%s\nstate_dir = %s/state\nmaster_key_file = %s/master.key\n\n' \
			"$TESSERAD_PORT" "$GW_DIR" "$GW_DIR"
		printf '[database]\nurl = %s\nmigrations_dir = %s/migrations\n\n' "$TEST_PG_URL" "$TESSERA_SRCDIR"
		# TEST_AUDIT_DURABILITY=journal: answers wait for the local journal only (gw_audit_shipped waits for Postgres)
		printf '[audit]\nspool_dir = %s\ndurability = %s\n\n' "$GW_SPOOL" "${TEST_AUDIT_DURABILITY:-postgres}"
		printf '[upstream.openai]\nkind = openai\nbase_url = %s/v1\nkey_file = %s/openai.key\n' "$GW_FAKE" "$GW_DIR"
		printf 'models = gpt-4o, gpt-4o-mini, text-embedding-3-small, fake-slow, fake-drip\nregion = us\n\n'
		printf '[upstream.anthropic]\nkind = anthropic\nbase_url = %s/v1\nkey_file = %s/anthropic.key\n' "$GW_FAKE" "$GW_DIR"
		printf 'models = claude-test, claude-slow, claude-drip\nregion = us\nbaa = true\n\n'
		printf '[upstream.onprem]\nkind = openai-compatible\nbase_url = %s/onprem/v1\nmodels = llama-3\non_prem = true\n\n' "$GW_FAKE"
		printf '%s\n' "$extra"
	} >"$GW_DIR/tesserad.conf"
	GW_URL=$TESSERAD_URL
	export GW_URL
	gw_start_tesserad
	GW_BOOT=$(sed -n 's/^bootstrap token: //p' "$GW_DIR/tesserad.out")
	export GW_BOOT

	pg_psql "INSERT INTO users (user_name, repo_login) VALUES ('alice', 'alice-gh');
INSERT INTO repositories (owner, name) VALUES ('acme', 'api');
INSERT INTO repositories (owner, name, classifications) VALUES ('acme', 'ehr', '{phi}');
INSERT INTO repo_permissions (user_id, repo_id, permission)
  SELECT u.id, r.id, 'write' FROM users u, repositories r WHERE u.user_name = 'alice';" >/dev/null ||
		die "gw_setup: fixtures"
	GW_SESSION=tsr_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | head -c 43)
	export GW_SESSION
	pg_psql "INSERT INTO credentials (kind, token_hash, user_id, auth_method, expires_at)
  SELECT 'session', sha256('$GW_SESSION'::bytea), id, 'local', now() + interval '2 hours'
    FROM users WHERE user_name = 'alice'" >/dev/null || die "gw_setup: session"
	GW_TOKEN=$(gw_mint acme/api)
	GW_TOKEN_PHI=$(gw_mint acme/ehr)
	export GW_TOKEN GW_TOKEN_PHI
	[[ $GW_TOKEN == tsr_* && $GW_TOKEN_PHI == tsr_* ]] ||
		die "gw_setup: could not mint access tokens ($(tail -n 5 "$GW_DIR/tesserad.err"))"
}
