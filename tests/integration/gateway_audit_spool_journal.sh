#!/usr/bin/env bash
# gateway_audit_spool_journal.sh — gateway_audit_spool.sh with [audit] durability = journal
# (answers wait for the local write-ahead journal; records reach PostgreSQL
# behind them): the same guarantees must hold.
TEST_AUDIT_DURABILITY=journal exec bash "$TESSERA_SRCDIR/tests/integration/gateway_audit_spool.sh"
