#!/usr/bin/env bash
# gateway_env.sh — the running gateway for the e2e tests (tests/e2e/*.test.mjs):
# starts what tests/lib/gateway.sh's gw_setup starts, prints one JSON line with
# the addresses and credentials, then waits until its stdin closes and cleans
# everything up. Not a test itself (tests/run only runs *.test.mjs).
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/gateway.sh"
gw_setup >&2
printf '{"url":"%s","fake":"%s","token":"%s","tokenPhi":"%s","session":"%s","boot":"%s","orgOpenai":"%s","orgAnthropic":"%s","dir":"%s"}\n' \
	"$GW_URL" "$GW_FAKE" "$GW_TOKEN" "$GW_TOKEN_PHI" "$GW_SESSION" "$GW_BOOT" "$GW_ORG_OPENAI" "$GW_ORG_ANTHROPIC" "$GW_DIR"
cat >/dev/null
