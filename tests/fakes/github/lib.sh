# shellcheck shell=bash
# tests/fakes/github/lib.sh — helpers for tests that drive the GitHub sync
# against the fake GitHub (server.mjs) and a real PostgreSQL.
# Source after tests/lib/tap.sh and tests/lib/pg.sh.
#
#   gh_fake_start SEED        start the fake on a free port: GH_PORT, GH_URL (stopped at exit)
#   gh_ctl METHOD PATH [JSON] call the fake's control API (/_fake/...), print the answer
#   gh_count FIELD            a counter of /_fake/calls: total, not_modified, limited, ok
#   gh_calls_reset            forget the calls received so far
#   gh_conf FILE [EXTRA]      tesserad_conf FILE with a [github] section for the fake
#                             (orgs = acme, token from GH_TOKEN, topics hipaa:phi,pci:pci) + EXTRA
#   gh_sync CONF [full|queue] one run with tests/tools/gh_sync_once; its JSON in GH_RUN,
#                             its log in $GH_DIR/sync.err; returns its exit status
#   gh_field NAME             a field of GH_RUN
#   gh_perms                  "user|repo|permission" lines of repo_permissions, sorted
#   gh_history_count          rows of repo_permission_history

if [[ -n ${_TESSERA_GH_LIB:-} ]]; then
	return 0
fi
_TESSERA_GH_LIB=1

GH_TOKEN=${GH_TOKEN:-ghp_sync_token}
GH_SYNC=$TESSERA_BUILDDIR/tests/tools/gh_sync_once

gh_fake_start() {
	local seed=$1 pid
	command -v node >/dev/null || die "node not found (Debian package nodejs)"
	[[ -x $GH_SYNC ]] || die "$GH_SYNC not built (make check builds it)"
	GH_DIR=${GH_DIR:-$(mktemp_dir gh)}
	GH_PORT=$(free_port) || die "no free port"
	GH_URL=http://127.0.0.1:$GH_PORT
	node "$TESSERA_SRCDIR/tests/fakes/github/server.mjs" "$GH_PORT" "$seed" >"$GH_DIR/fake.log" 2>&1 &
	pid=$!
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	wait_http "$GH_URL/_fake/calls" 20 || die "fake GitHub did not start: $(cat "$GH_DIR/fake.log")"
	printf '%s\n' "$GH_TOKEN" >"$GH_DIR/token"
	chmod 600 "$GH_DIR/token"
	export GH_PORT GH_URL GH_DIR
}

gh_ctl() {
	local method=$1 path=$2 body=${3:-}
	if [[ -n $body ]]; then
		curl -s --max-time 60 -X "$method" -H 'content-type: application/json' -d "$body" "$GH_URL$path"
	else
		curl -s --max-time 60 -X "$method" "$GH_URL$path"
	fi
}

gh_count() {
	gh_ctl GET '/_fake/calls?summary=1' | jq -r ".$1"
}

gh_calls_reset() {
	gh_ctl POST /_fake/calls/reset >/dev/null
}

gh_conf() {
	local file=$1 extra=${2:-}
	tesserad_conf "$file" "[github]
api_url = $GH_URL
orgs = acme
token_file = $GH_DIR/token
topic_classifications = hipaa:phi,pci:pci
$extra"
}

gh_sync() {
	local conf=$1 mode=${2:-} rc
	GH_RUN=$("$GH_SYNC" -c "$conf" $mode 2>"$GH_DIR/sync.err")
	rc=$?
	export GH_RUN
	return $rc
}

gh_field() {
	jq -r ".$1" <<<"$GH_RUN"
}

gh_perms() {
	pg_psql "SELECT u.user_name || '|' || r.name || '|' || p.permission FROM repo_permissions p
	           JOIN users u ON u.id = p.user_id JOIN repositories r ON r.id = p.repo_id ORDER BY 1"
}

gh_history_count() {
	pg_psql "SELECT count(*) FROM repo_permission_history"
}
