#!/usr/bin/env bash
# audit_verify_journal.sh — audit_verify.sh with [audit] durability = journal (token mints
# and gateway answers wait for the local write-ahead journal; the records
# reach PostgreSQL behind them): the same records and chain must result.
TEST_AUDIT_DURABILITY=journal exec bash "$TESSERA_SRCDIR/tests/integration/audit_verify.sh"
