#!/bin/bash
# migrate_concurrent.sh — two `tesserad migrate` started at the same moment
# against one empty database both succeed and apply every migration exactly
# once (the runner serialises on a lock); a third run changes nothing.

# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/common.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

T=$(mktemp_dir migrate-concurrent) || exit 1
cd "$T" || exit 1

# rc_is GOT WANT NAME STDERR_FILE: exit status check that shows stderr on failure.
rc_is() {
	if [ "$1" = "$2" ]; then
		ok "$3"
	else
		fail "$3" "exit $1, want $2; stderr: $(head -c 3000 "$4" 2>/dev/null)"
	fi
}

# The migrations shipped in the source tree, and their version numbers
# (NNNN_description.sql → NNNN as an integer).
shopt -s nullglob
files=("$TESSERA_SRCDIR"/migrations/*.sql)
shopt -u nullglob
nfiles=${#files[@]}
want_versions=$(for f in "${files[@]}"; do
	b=$(basename "$f")
	echo $((10#${b%%_*}))
done | sort -n | paste -sd, -)
if [ "$nfiles" -ge 1 ]; then
	ok "source_tree_has_migrations"
else
	fail "source_tree_has_migrations" "no $TESSERA_SRCDIR/migrations/*.sql"
fi

pg_start
conf="$T/tessera.conf"
tesserad_conf "$conf"

# Start both runs on one signal (a file appearing) so they really overlap.
run_migrate() { # NAME
	until [ -e "$T/go" ]; do sleep 0.01; done
	exec timeout 120 "$TESSERAD" -c "$conf" migrate >"$T/$1.out" 2>"$T/$1.err"
}
run_migrate a &
pa=$!
run_migrate b &
pb=$!
sleep 0.3
touch "$T/go"
wait "$pa"
ra=$?
wait "$pb"
rb=$?

rc_is "$ra" 0 "first_concurrent_migrate_exits_0" "$T/a.err"
rc_is "$rb" 0 "second_concurrent_migrate_exits_0" "$T/b.err"

if grep -q "level=error" "$T/a.err" "$T/b.err"; then
	fail "concurrent_migrate_logs_no_error" "$(grep -h "level=error" "$T/a.err" "$T/b.err")"
else
	ok "concurrent_migrate_logs_no_error"
fi

counts=$(pg_psql "select count(*) || ' ' || count(distinct version) from schema_migrations")
is "$counts" "$nfiles $nfiles" "every_migration_recorded_exactly_once"

got_versions=$(pg_psql "select string_agg(version::text, ',' order by version) from schema_migrations")
is "$got_versions" "$want_versions" "recorded_versions_match_migration_files"

empty_checksums=$(pg_psql "select count(*) from schema_migrations where checksum is null or checksum = ''")
is "$empty_checksums" 0 "every_recorded_migration_has_a_checksum"

before=$(pg_psql "select count(*) || '/' || max(applied_at) from schema_migrations")

timeout 120 "$TESSERAD" -c "$conf" migrate >"$T/c.out" 2>"$T/c.err"
rc_is $? 0 "third_migrate_exits_0" "$T/c.err"
after=$(pg_psql "select count(*) || '/' || max(applied_at) from schema_migrations")
if [[ $after == "$before" && ${after%%/*} == "$nfiles" ]]; then
	ok "third_migrate_is_a_no_op"
else
	fail "third_migrate_is_a_no_op" "before: '$before' after: '$after' (count/max(applied_at)), want $nfiles rows unchanged"
fi

tap_done
