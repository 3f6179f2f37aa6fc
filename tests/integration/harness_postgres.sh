#!/usr/bin/env bash
# The test harness starts a private PostgreSQL on loopback, as a non-root user, and removes
# every trace of it when stopped.
# shellcheck source=tests/lib/tap.sh
. "$(dirname "$0")/../lib/tap.sh"
# shellcheck source=tests/lib/pg.sh
. "$(dirname "$0")/../lib/pg.sh"

pg_start
pid=$TEST_PG_PID dir=$TEST_PG_DIR

is "$(pg_psql 'select 1')" 1 "throwaway_postgres_answers_queries"
is "$(pg_psql 'show listen_addresses')" 127.0.0.1 "throwaway_postgres_listens_on_loopback_only"
is "$(pg_psql 'select current_user || chr(32) || current_database()')" "tessera tessera" \
	"throwaway_postgres_has_tessera_role_and_database"
like "$TEST_PG_URL" "^postgresql://tessera@127\.0\.0\.1:$TEST_PGPORT/tessera\$" \
	"throwaway_postgres_exports_url"
owner=$(ps -o user= -p "$pid" | tr -d ' ')
if [[ -n $owner && $owner != root ]]; then
	ok "throwaway_postgres_runs_as_non_root ($owner)"
else
	fail "throwaway_postgres_runs_as_non_root" "postmaster $pid runs as '${owner:-?}'"
fi

pg_start second
# shellcheck disable=SC2154 # TEST_PGPORT_<NAME> are exported by pg_start NAME
isnt "$TEST_PGPORT_second" "$TEST_PGPORT_main" "two_named_clusters_use_different_ports"
pg_psql 'create table only_in_second(x int)'
pg_use main
is "$(pg_psql "select count(*) from pg_tables where tablename = 'only_in_second'")" 0 \
	"two_named_clusters_are_separate"
pg_stop second

pg_stop
if pid_alive "$pid"; then
	fail "pg_stop_ends_the_postmaster" "pid $pid still alive"
else
	ok "pg_stop_ends_the_postmaster"
fi
if [[ -e $dir ]]; then
	fail "pg_stop_removes_the_cluster_dir" "$dir still exists"
else
	ok "pg_stop_removes_the_cluster_dir"
fi
is "${TEST_PG_URL:-}" "" "pg_stop_unsets_test_pg_url"

tap_done
