#!/usr/bin/env bash
# gateway_rotate_scheduled_replicas.sh — issue 8: with a short rotation_period
# and two tesserad replicas sharing one PostgreSQL, scheduled rotation through
# the provider admin API fires on time, and each due rotation happens exactly
# once (one key created at the provider, one audit event, one log line on one
# replica); when that replica stops, the other takes the schedule over;
# retired provider keys are deleted at the provider exactly once; gateway
# requests through both replicas keep succeeding throughout.
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/rotation.sh"

PERIOD=6
rot_setup "rotation_period = ${PERIOD}s
grace_period = 10s"

# the second replica: same database, same upstreams, its own port and local state
R2_DIR=$(mktemp_dir replica2)
R2_PORT=$(free_port)
sed -e "s|^listen = .*|listen = 127.0.0.1:$R2_PORT|" -e "s|^state_dir = .*|state_dir = $R2_DIR/state|" \
	-e "s|^spool_dir = .*|spool_dir = $R2_DIR/spool|" "$GW_DIR/tesserad.conf" >"$R2_DIR/tesserad.conf"
"$TESSERAD" -c "$R2_DIR/tesserad.conf" >"$R2_DIR/tesserad.out" 2>"$R2_DIR/tesserad.err" &
R2_PID=$!
on_exit "kill $R2_PID 2>/dev/null; wait $R2_PID 2>/dev/null"
R2_URL=http://127.0.0.1:$R2_PORT
wait_http "$R2_URL/healthz" 30 || die "the second replica did not start: $(tail -n 5 "$R2_DIR/tesserad.err")"

# ~14 s of requests through both replicas while the scheduler rotates, then
# replica 1 stops and ~16 s more through replica 2, whose scheduler takes over
: >"$GW_DIR/codes"
end=$((SECONDS + 14))
while ((SECONDS < end)); do
	{ rot_chat "$GW_URL"; echo; rot_chat "$R2_URL"; echo; } >>"$GW_DIR/codes"
	sleep 0.2
done
gw_stop_tesserad
before=$(rot_keys '.creates')
end=$((SECONDS + 16))
while ((SECONDS < end)); do
	{ rot_chat "$R2_URL"; echo; } >>"$GW_DIR/codes"
	sleep 0.2
done
kill -TERM "$R2_PID" 2>/dev/null
wait "$R2_PID" 2>/dev/null

codes=$(sort "$GW_DIR/codes" | uniq -c | tr -s ' ' | sed 's/^ //' | tr '\n' ';')
like "$codes" '^[0-9]+ 200;$' "requests_through_both_replicas_succeed_across_scheduled_rotations"

creates=$(rot_keys '.creates')
if ((creates >= 2)); then
	ok "scheduled_rotation_fires_repeatedly_with_a_${PERIOD}s_period"
else
	fail "scheduled_rotation_fires_repeatedly_with_a_${PERIOD}s_period" "only $creates keys created in 30 s"
fi
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_rotated' AND outcome = 'success'
 AND upstream = 'openai' AND detail->>'trigger' = 'schedule' AND actor = 'rotation'")" "$creates" \
	"each_scheduled_rotation_is_audited_exactly_once"
is "$(pg_psql "SELECT count(*) || ':' || max(version) FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
 WHERE u.name = 'openai' AND origin = 'provider'")" "$creates:$((creates + 1))" \
	"each_key_created_at_the_provider_is_one_stored_version"
n1=$(grep -c 'upstream_key_rotated.*trigger=schedule' "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out" |
	awk -F: '{s += $2} END {print s + 0}')
n2=$(grep -c 'upstream_key_rotated.*trigger=schedule' "$R2_DIR/tesserad.err" "$R2_DIR/tesserad.out" |
	awk -F: '{s += $2} END {print s + 0}')
is "$((n1 + n2))" "$creates" "each_rotation_ran_on_exactly_one_replica"
diag "rotations by replica 1: $n1, by replica 2: $n2"
if (($(rot_keys '.creates') > before && n2 >= 1)); then
	ok "when_one_replica_stops_the_other_runs_the_schedule"
else
	fail "when_one_replica_stops_the_other_runs_the_schedule" "creates before $before, after $(rot_keys '.creates'), replica 2 rotated $n2 times"
fi
r1=$(grep -c 'job_started job=rotation.upstreams' "$GW_DIR/tesserad.err" "$GW_DIR/tesserad.out" | awk -F: '{s += $2} END {print s + 0}')
r2=$(grep -c 'job_started job=rotation.upstreams' "$R2_DIR/tesserad.err" "$R2_DIR/tesserad.out" | awk -F: '{s += $2} END {print s + 0}')
diag "scheduler turns: replica 1 $r1, replica 2 $r2"

# on time: consecutive activations are at least one period apart (none early or
# twice) and at most a period plus the job's 5 s tick and some slack
gaps=$(pg_psql "SELECT string_agg(round(extract(epoch FROM g))::text, ',') FROM (
  SELECT activated_at - lag(activated_at) OVER (ORDER BY version) AS g
    FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id WHERE u.name = 'openai' AND version > 1) x
 WHERE g IS NOT NULL")
diag "seconds between scheduled rotations: $gaps"
early=$(pg_psql "SELECT count(*) FROM (
  SELECT activated_at - lag(activated_at) OVER (ORDER BY version) AS g
    FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id WHERE u.name = 'openai' AND version > 1) x
 WHERE g < interval '$PERIOD seconds' OR g > interval '$((PERIOD + 8)) seconds'")
is "$early" 0 "each_rotation_fires_after_one_period_and_on_time"

deletes=$(rot_keys '.deletes')
is "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'upstream.key_deleted_at_provider' AND outcome = 'success'")" \
	"$deletes" "each_provider_deletion_happens_and_is_audited_exactly_once"
is "$(pg_psql "SELECT count(*) FROM upstream_keys WHERE provider_deleted_at IS NOT NULL")" "$deletes" \
	"each_deleted_key_is_marked_deleted"
is "$(rot_keys '[.admin_calls[] | select(.method == "DELETE" and .status != 200)] | length')" 0 \
	"no_key_is_deleted_twice_at_the_provider"
is "$(pg_psql "SELECT count(*) FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id
 WHERE u.name = 'openai' AND k.state = 'active'")" 1 "the_upstream_always_has_one_active_key"

tap_done
