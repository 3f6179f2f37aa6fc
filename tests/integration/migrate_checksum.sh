#!/bin/bash
# migrate_checksum.sh — applied migrations are immutable: when a file that was
# applied changes, or a recorded migration disappears from the directory,
# both `tesserad` (serve) and `tesserad migrate` refuse with exit 1 and say
# which file. Putting the file back makes migrate succeed again. Also: a new
# file is applied by the next run, and a failing migration leaves nothing
# behind (it runs in a transaction and is not recorded).

# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/common.sh"
# shellcheck disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

T=$(mktemp_dir migrate-checksum) || exit 1
cd "$T" || exit 1

# rc_is GOT WANT NAME STDERR_FILE: exit status check that shows stderr on failure.
rc_is() {
	if [ "$1" = "$2" ]; then
		ok "$3"
	else
		fail "$3" "exit $1, want $2; stderr: $(head -c 3000 "$4" 2>/dev/null)"
	fi
}

# has FILE STRING NAME: FILE contains STRING verbatim.
has() {
	if grep -qF -- "$2" "$1"; then
		ok "$3"
	else
		fail "$3" "want '$2' in $(basename "$1"), got: $(head -c 3000 "$1")"
	fi
}

M="$T/migrations"
cp -R "$TESSERA_SRCDIR/migrations" "$M" && chmod -R u+w "$M"
if [ -f "$M/0001_initial.sql" ]; then
	ok "copied_migrations_include_0001_initial"
else
	fail "copied_migrations_include_0001_initial" "$(ls "$M")"
fi
shopt -s nullglob
files=("$M"/*.sql)
shopt -u nullglob
nfiles=${#files[@]}

pg_start
conf="$T/tessera.conf"
tesserad_conf "$conf"
# Point [database] migrations_dir at the private copy (replacing any value
# tesserad_conf wrote).
awk -v dir="$M" '
	/^[ \t]*migrations_dir[ \t]*=/ { next }
	{ print }
	/^[ \t]*\[database\][ \t]*$/ { print "migrations_dir = " dir }
' "$conf" >"$conf.new" && mv "$conf.new" "$conf"
if grep -q "^migrations_dir = $M\$" "$conf"; then
	ok "config_points_at_private_migrations_copy"
else
	fail "config_points_at_private_migrations_copy" "$(cat "$conf")"
fi

migrate() { # NAME: run migrate, stderr in $T/NAME.err, sets rc
	timeout 120 "$TESSERAD" -c "$conf" migrate >"$T/$1.out" 2>"$T/$1.err"
	rc=$?
}
serve() { # NAME: start serving; must exit by itself within 20 s; sets rc
	port=$(free_port)
	timeout 20 "$TESSERAD" -c "$conf" --listen "127.0.0.1:$port" >"$T/$1.out" 2>"$T/$1.err"
	rc=$?
}
rows() { pg_psql "select count(*) from schema_migrations"; }

# ---- baseline
migrate initial
rc_is "$rc" 0 "migrate_on_empty_database_exits_0" "$T/initial.err"
is "$(rows)" "$nfiles" "migrate_records_every_file"

# ---- edit an applied migration
cp "$M/0001_initial.sql" "$T/0001_initial.sql.orig"
printf '\n-- edited\n' >>"$M/0001_initial.sql"
changed_msg="migration 0001_initial.sql was changed after it was applied"

serve serve_changed
rc_is "$rc" 1 "serve_refuses_changed_migration_with_exit_1" "$T/serve_changed.err"
has "$T/serve_changed.err" "$changed_msg" "serve_names_the_changed_migration"
if grep -q "event=ready" "$T/serve_changed.err"; then
	fail "serve_with_changed_migration_never_becomes_ready" "$(cat "$T/serve_changed.err")"
else
	ok "serve_with_changed_migration_never_becomes_ready"
fi

migrate migrate_changed
rc_is "$rc" 1 "migrate_refuses_changed_migration_with_exit_1" "$T/migrate_changed.err"
has "$T/migrate_changed.err" "$changed_msg" "migrate_names_the_changed_migration"
is "$(rows)" "$nfiles" "refused_migrate_records_nothing"

# ---- put it back
cp "$T/0001_initial.sql.orig" "$M/0001_initial.sql"
migrate restored
rc_is "$rc" 0 "migrate_succeeds_after_file_restored" "$T/restored.err"
is "$(rows)" "$nfiles" "restored_migrate_is_a_no_op"

# ---- a recorded migration missing from the directory
pg_psql "insert into schema_migrations (version, name, checksum, applied_at)
	values (9999, '9999_vanished.sql', 'deadbeef', now())" >/dev/null
migrate migrate_missing
rc_is "$rc" 1 "migrate_refuses_when_recorded_migration_is_missing" "$T/migrate_missing.err"
if grep -q "9999" "$T/migrate_missing.err"; then
	ok "migrate_names_the_missing_migration"
else
	fail "migrate_names_the_missing_migration" "$(cat "$T/migrate_missing.err")"
fi
serve serve_missing
rc_is "$rc" 1 "serve_refuses_when_recorded_migration_is_missing" "$T/serve_missing.err"
if grep -q "9999" "$T/serve_missing.err"; then
	ok "serve_names_the_missing_migration"
else
	fail "serve_names_the_missing_migration" "$(cat "$T/serve_missing.err")"
fi
pg_psql "delete from schema_migrations where version = 9999" >/dev/null
migrate after_missing
rc_is "$rc" 0 "migrate_succeeds_once_missing_row_is_gone" "$T/after_missing.err"

# ---- a new file is applied by the next run
cat >"$M/9000_test_extra.sql" <<'EOF'
create table tsr_test_extra (x int);
EOF
migrate pending
rc_is "$rc" 0 "migrate_applies_a_new_file" "$T/pending.err"
is "$(pg_psql "select count(*) from schema_migrations where version = 9000")" 1 "new_migration_is_recorded"
is "$(pg_psql "select to_regclass('tsr_test_extra') is not null")" t "new_migration_was_executed"

# ---- a failing migration leaves nothing behind
cat >"$M/9001_test_broken.sql" <<'EOF'
create table tsr_test_half (x int);
select no_such_column from no_such_table;
EOF
migrate broken
rc_is "$rc" 1 "failing_migration_makes_migrate_exit_1" "$T/broken.err"
has "$T/broken.err" "9001_test_broken.sql" "failing_migration_is_named"
is "$(pg_psql "select count(*) from schema_migrations where version = 9001")" 0 "failing_migration_is_not_recorded"
is "$(pg_psql "select to_regclass('tsr_test_half') is null")" t "failing_migration_is_rolled_back"
rm -f "$M/9001_test_broken.sql"
migrate fixed
rc_is "$rc" 0 "migrate_succeeds_once_failing_file_removed" "$T/fixed.err"

tap_done
