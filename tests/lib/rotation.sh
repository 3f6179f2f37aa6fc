# shellcheck shell=bash
# tests/lib/rotation.sh — a gateway (tests/lib/gateway.sh) whose upstream
# "openai" rotates its key through the fake OpenAI organisation Admin API
# (tests/fakes/llm/server.mjs --admin-key --project).
#
#   rot_setup [EXTRA_INI]  gw_setup, then [upstream.openai] provider = openai-admin
#                          (admin key file, admin_url = the fake, project) plus EXTRA_INI
#                          lines in that section; tesserad restarted with it. Exports
#                          ROT_ADMIN_KEY, ROT_PROJECT (and everything gw_setup does).
#   rot_keys JQ            jq expression over the fake's GET /__keys
#   rot_admin ARGS...      the tessera CLI as the bootstrap admin
#   rot_chat [URL]         one chat completion as alice; prints the HTTP status
#   rot_received_with KEY  requests the fake received with provider key KEY
#   rot_metric URL NAME    value of the metric line NAME (e.g. 'x{upstream="openai"}') at URL/metrics
#   rot_wait SECS CMD...   until CMD succeeds (every 0.2 s), at most SECS; status of the last try

if [[ -n ${_TESSERA_ROTATION_SH:-} ]]; then
	return 0
fi
_TESSERA_ROTATION_SH=1

# shellcheck source=tests/lib/gateway.sh disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/gateway.sh"

rot_setup() {
	ROT_ADMIN_KEY=sk-admin-$RANDOM$RANDOM$RANDOM
	ROT_PROJECT=proj_tessera$RANDOM
	export ROT_ADMIN_KEY ROT_PROJECT
	GW_FAKE_ARGS="--admin-key $ROT_ADMIN_KEY --project $ROT_PROJECT" gw_setup
	printf '%s\n' "$ROT_ADMIN_KEY" >"$GW_DIR/admin.key"
	chmod 0600 "$GW_DIR/admin.key"
	printf '\n[upstream.openai]\nprovider = openai-admin\nadmin_key_file = %s/admin.key\nadmin_url = %s/v1\nproject_id = %s\n%s\n' \
		"$GW_DIR" "$GW_FAKE" "$ROT_PROJECT" "${1:-}" >>"$GW_DIR/tesserad.conf"
	gw_stop_tesserad
	gw_start_tesserad
}

rot_keys() {
	curl -s "$GW_FAKE/__keys" | jq -r "$1"
}

rot_admin() {
	TESSERA_URL=${ROT_URL:-$GW_URL} TESSERA_TOKEN=$GW_BOOT "$TESSERA" "$@"
}

rot_chat() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $GW_TOKEN" \
		-d '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}' "${1:-$GW_URL}/openai/v1/chat/completions"
}

rot_received_with() {
	curl -s "$GW_FAKE/__received" | jq --arg k "Bearer $1" '[.[] | select(.headers.authorization == $k)] | length'
}

rot_metric() {
	curl -s "$1/metrics" | grep -F "$2 " | awk '{print $2}'
}

rot_wait() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}
