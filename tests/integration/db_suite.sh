#!/usr/bin/env bash
# db_suite.sh — runs the C tests in tests/dbtest/ (cmocka) against a real,
# freshly migrated PostgreSQL, re-emitting each of their test points here.
# Each binary gets TEST_PG_URL (and TEST_PG_BINDIR, TEST_PG_DIR so a test can
# restart or stop the cluster).
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

pg_start
dir=$(mktemp_dir)
tesserad_conf "$dir/tessera.conf"
if "$TESSERAD" -c "$dir/tessera.conf" migrate 2>"$dir/migrate.log"; then
	ok "database migrated for the C tests"
else
	fail "database migrated for the C tests" "$(cat "$dir/migrate.log")"
fi

shopt -s nullglob
bins=("$TESSERA_BUILDDIR"/tests/dbtest/test_*)
[[ ${#bins[@]} -gt 0 ]] || fail "tests/dbtest binaries are built"
for bin in "${bins[@]}"; do
	[[ -x $bin && $bin != *.o ]] || continue
	name=$(basename "$bin")
	out=$(TEST_PG_URL=$TEST_PG_URL TEST_PGPORT=$TEST_PGPORT CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$bin" 2>&1)
	rc=$?
	points=0
	while IFS= read -r line; do
		if [[ $line =~ ^ok\ [0-9]+\ -\ (.*)$ ]]; then
			ok "$name: ${BASH_REMATCH[1]}"
			points=$((points + 1))
		elif [[ $line =~ ^not\ ok\ [0-9]+\ -\ (.*)$ ]]; then
			fail "$name: ${BASH_REMATCH[1]}" "$(printf '%s\n' "$out" | grep -E '^#' | head -20)"
			points=$((points + 1))
		fi
	done <<<"$out"
	if ((points == 0 || (rc != 0 && rc != 1))); then
		fail "$name ran to completion" "exit $rc; output:
$(printf '%s\n' "$out" | tail -30)"
	fi
done
tap_done
