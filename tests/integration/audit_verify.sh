#!/usr/bin/env bash
# audit_verify.sh — issue 9: the audit log as evidence. tesserad seals the
# chain with a published Ed25519 key; `tessera audit export` streams records
# with their seals and a signed verification record; `tessera audit verify
# --file F --key K` checks an export offline and names the first altered,
# removed, reordered record or the cut; `tessera audit verify` (online)
# names a record altered in the database;
# key rotation keeps old seals verifiable; search filters. (The sealer's
# refusal to seal a tampered stretch is tests/dbtest/test_audit_verify.c.)
set -uo pipefail
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/pg.sh"

TOOL=$TESSERA_BUILDDIR/tests/tools/audit_tool
pg_start
dir=$(mktemp_dir)
export HOME=$dir/home
mkdir -p "$HOME"
TESSERA_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export TESSERA_MASTER_KEY
tesserad_conf "$dir/t.conf" "[audit]
seal_interval = 1s"
"$TESSERAD" -c "$dir/t.conf" >"$dir/d.out" 2>"$dir/d.err" &
dpid=$!
on_exit "kill $dpid 2>/dev/null; wait $dpid 2>/dev/null"
wait_http "$TESSERAD_URL/readyz" 30 || die "tesserad did not start: $(tail -20 "$dir/d.err")"
boot=$(sed -n 's/^bootstrap token: //p' "$dir/d.out")
export TESSERA_URL=$TESSERAD_URL TESSERA_TOKEN=$boot

# 5000 gateway records over two days, then a few with JSON details and addresses
"$TOOL" gen "$TEST_PG_URL" 5000 --days 2 --users 20 --repos 5 >/dev/null || die "audit_tool gen failed"
"$TOOL" append "$TEST_PG_URL" >/dev/null <<'EOF' || die "audit_tool append failed"
{"action":"gateway.request","actor":"alice","user_id":3,"repo_id":2,"upstream":"azure-east","req_bytes":1234,"detail":{"b":[1,2.5,"x\"y"],"a":{"z":null}}}
{"action":"gateway.request","actor":"bob","user_id":4,"repo_id":2,"upstream":"onprem-vllm","req_bytes":99,"rule_hits":{"ssn":1},"decision":"block","outcome":"denied"}
{"action":"auth.login","actor":"carol","outcome":"failure","target":"carol, \"the\" admin\nsecond line"}
EOF
head=$(pg_psql "SELECT seq FROM audit_chain_head")
for _ in $(seq 1 100); do
	sealed=$(pg_psql "SELECT coalesce(max(seq_upto), 0) FROM audit_seals")
	((sealed >= head)) && break
	sleep 0.2
done
((sealed >= head)) && ok "sealer_seals_the_chain_head_within_the_interval" ||
	fail "sealer_seals_the_chain_head_within_the_interval" "head $head, sealed up to $sealed; $(tail -5 "$dir/d.err")"

curl -s "$TESSERAD_URL/audit/v1/keys" >"$dir/keys.json"
like "$(cat "$dir/keys.json")" '"algorithm":"Ed25519".*"active":true' "public_seal_keys_are_published_without_a_credential"
is "$(pg_psql "SELECT count(*) FROM audit_keys WHERE private_key_ciphertext IS NOT NULL AND master_key_id IS NOT NULL")" 1 \
	"the_signing_key_is_stored_only_encrypted_under_the_master_key"
keyhex=$(sed -n 's/.*"public_key_hex":"\([0-9a-f]\{64\}\)".*/\1/p' "$dir/keys.json")

out=$("$TESSERA" audit verify 2>&1)
is "$?" 0 "online_verify_of_an_intact_log_exits_0"
like "$out" "^OK: [0-9]+ records.*chain intact" "online_verify_reports_records_and_seals"

head=$(pg_psql "SELECT seq FROM audit_chain_head")
"$TESSERA" audit export >"$dir/all.jsonl" 2>"$dir/export.err"
is "$?" 0 "export_exits_0"
like "$(cat "$dir/export.err")" "OK: [0-9]+ records" "export_checks_what_it_downloads"
like "$(tail -n 1 "$dir/all.jsonl")" '^\{"type":"verification".*"signature":"[A-Za-z0-9+/=]{88}"' \
	"export_ends_with_a_signed_verification_record"
nrec=$(grep -vc '"type":' "$dir/all.jsonl")
is "$nrec" "$head" "export_holds_every_record_of_the_log"
like "$(grep -c '"type":"seal"' "$dir/all.jsonl")" '^[1-9][0-9]*$' "export_interleaves_the_seals"

out=$("$TESSERA" audit verify --file "$dir/all.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 0 "jsonl_export_verifies_offline_with_the_published_keys"
like "$out" "chain intact" "offline_verify_says_the_chain_is_intact"
out=$("$TESSERA" audit verify --file "$dir/all.jsonl" --key "$keyhex" 2>&1)
is "$?" 0 "offline_verify_accepts_the_hex_public_key"
sed -n 's/.*"public_key_pem":"\([^"]*\)".*/\1/p' "$dir/keys.json" | sed 's/\\n/\n/g' >"$dir/key.pem"
out=$("$TESSERA" audit verify --file "$dir/all.jsonl" --key "$dir/key.pem" 2>&1)
is "$?" 0 "offline_verify_accepts_the_pem_public_key"

"$TESSERA" audit export --format csv >"$dir/all.csv" 2>/dev/null
is "$?" 0 "csv_export_exits_0"
like "$(head -n 1 "$dir/all.csv")" '^seq,at,event_id,' "csv_export_starts_with_the_header"
out=$("$TESSERA" audit verify --file "$dir/all.csv" --key "$dir/keys.json" 2>&1)
is "$?" 0 "csv_export_verifies_offline"

other=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
out=$("$TESSERA" audit verify --file "$dir/all.jsonl" --key "$other" 2>&1)
is "$?" 1 "offline_verify_with_an_untrusted_key_exits_1"
like "$out" "not among the trusted keys" "offline_verify_names_the_untrusted_key"
out=$("$TESSERA" audit verify --file "$dir/all.jsonl" 2>&1)
is "$?" 2 "offline_verify_without_a_key_is_a_usage_error"

# --- tampering with an export file --------------------------------------------
recline() { # recline N: the line number of the N-th record line (not a seal)
	grep -vn '"type":' "$dir/all.jsonl" | sed -n "${1}p" | cut -d: -f1
}
l=$(recline 100)
seq=$(sed -n "${l}p" "$dir/all.jsonl" | sed -n 's/^{"seq":\([0-9]*\),.*/\1/p')
sed "${l}s/\"resp_bytes\":[0-9]*/\"resp_bytes\":7/; ${l}s/\"resp_bytes\":null/\"resp_bytes\":7/" "$dir/all.jsonl" >"$dir/t1.jsonl"
out=$("$TESSERA" audit verify --file "$dir/t1.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 1 "altered_record_in_an_export_fails_verification"
like "$out" "record seq $seq \(line $l\) was altered" "altered_record_is_named_by_seq_and_line"

l=$(recline 200)
seq=$(sed -n "${l}p" "$dir/all.jsonl" | sed -n 's/^{"seq":\([0-9]*\),.*/\1/p')
sed "${l}d" "$dir/all.jsonl" >"$dir/t2.jsonl"
out=$("$TESSERA" audit verify --file "$dir/t2.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 1 "deleted_record_in_an_export_fails_verification"
like "$out" "record seq $seq was removed" "deleted_record_is_named"

a=$(recline 300)
b=$(recline 301)
((b == a + 1)) || die "records 300 and 301 are not adjacent"
seq=$(sed -n "${a}p" "$dir/all.jsonl" | sed -n 's/^{"seq":\([0-9]*\),.*/\1/p')
awk -v a="$a" 'NR == a { held = $0; next } NR == a + 1 { print; print held; next } { print }' "$dir/all.jsonl" >"$dir/t3.jsonl"
out=$("$TESSERA" audit verify --file "$dir/t3.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 1 "swapped_records_in_an_export_fail_verification"
like "$out" "reordered: record seq $seq appears out of chain order" "swapped_records_are_reported_reordered"

head -n -1 "$dir/all.jsonl" >"$dir/t4.jsonl"
out=$("$TESSERA" audit verify --file "$dir/t4.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 1 "an_export_without_its_verification_record_fails"
like "$out" "incomplete \(truncated" "a_cut_off_export_is_called_truncated"

n=$(wc -l <"$dir/all.jsonl")
last_rec=$(recline "$nrec")
awk -v d="$last_rec" 'NR != d' "$dir/all.jsonl" >"$dir/t5.jsonl"
out=$("$TESSERA" audit verify --file "$dir/t5.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 1 "dropping_the_last_records_but_keeping_the_trailer_fails"

sed '$s/"exported_by":"admin"/"exported_by":"auditor"/' "$dir/all.jsonl" >"$dir/t6.jsonl"
out=$("$TESSERA" audit verify --file "$dir/t6.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 1 "an_edited_verification_record_fails"
like "$out" "signature is invalid" "an_edited_verification_record_is_caught_by_its_signature"

# --- filtered and ranged exports ---------------------------------------------------
pg_psql "INSERT INTO users (user_name) VALUES ('user2'), ('user3'), ('user4')" >/dev/null
uid=$(pg_psql "SELECT id FROM users WHERE user_name = 'user3'")
"$TESSERA" audit export --user user3 >"$dir/u3.jsonl" 2>/dev/null
is "$?" 0 "filtered_export_exits_0"
is "$(grep -vc '"type":' "$dir/u3.jsonl")" "$(pg_psql "SELECT count(*) FROM audit_events WHERE user_id = $uid")" \
	"filtered_export_holds_exactly_the_users_records"
out=$("$TESSERA" audit verify --file "$dir/u3.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 0 "filtered_export_verifies_offline"
like "$out" "filtered export" "filtered_export_says_it_is_filtered"
from=$(pg_psql "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM audit_events WHERE seq = 1000")
to=$(pg_psql "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM audit_events WHERE seq = 2000")
"$TESSERA" audit export --from "$from" --to "$to" >"$dir/range.jsonl" 2>/dev/null
is "$(grep -vc '"type":' "$dir/range.jsonl")" 1000 "range_export_holds_the_records_of_the_range"
out=$("$TESSERA" audit verify --file "$dir/range.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 0 "range_export_verifies_offline"
out=$("$TESSERA" audit export --from yesterday-ish 2>&1 >/dev/null)
is "$?" 2 "export_with_an_unparseable_time_is_a_usage_error"

# --- tampering with the database ---------------------------------------------------
orig=$(pg_psql "SELECT actor FROM audit_events WHERE seq = 1234")
pg_psql "SET session_replication_role = replica; UPDATE audit_events SET actor = 'mallory' WHERE seq = 1234" >/dev/null
out=$("$TESSERA" audit verify 2>&1)
is "$?" 1 "online_verify_of_an_altered_database_exits_1"
like "$out" "altered: first bad record seq 1234" "online_verify_names_the_altered_record"
"$TESSERA" audit export >"$dir/bad.jsonl" 2>/dev/null
is "$?" 1 "exporting_a_tampered_log_exits_1"
like "$(tail -n 1 "$dir/bad.jsonl")" '"verified":false.*"kind":"altered","seq":1234' \
	"the_export_of_a_tampered_log_says_so_in_its_signed_record"
out=$("$TESSERA" audit verify --file "$dir/bad.jsonl" --key "$dir/keys.json" 2>&1)
like "$out" "record seq 1234 .* was altered" "offline_verify_of_that_export_names_the_record"
pg_psql "SET session_replication_role = replica; UPDATE audit_events SET actor = '$orig' WHERE seq = 1234" >/dev/null
out=$("$TESSERA" audit verify 2>&1)
is "$?" 0 "restoring_the_record_makes_the_log_verify_again"

# --- key rotation ----------------------------------------------------------------------
rot=$(curl -s -X POST -H "Authorization: Bearer $boot" "$TESSERAD_URL/admin/v1/audit/keys/rotate")
like "$rot" '"new_key_id":"[0-9a-f]{64}"' "admin_can_rotate_the_seal_key"
newhead=$(pg_psql "SELECT seq FROM audit_chain_head")
for _ in $(seq 1 100); do
	sealed=$(pg_psql "SELECT coalesce(max(seq_upto), 0) FROM audit_seals")
	((sealed >= newhead)) && break
	sleep 0.2
done
"$TESSERA" audit export >"$dir/rot.jsonl" 2>/dev/null
out=$("$TESSERA" audit verify --file "$dir/rot.jsonl" --key "$dir/keys.json" 2>&1)
is "$?" 1 "after_rotation_the_old_key_alone_does_not_verify_new_seals"
curl -s "$TESSERAD_URL/audit/v1/keys" >"$dir/keys2.json"
like "$(cat "$dir/keys2.json")" '"active":true.*"active":false' "rotation_keeps_the_old_public_key_published"
out=$("$TESSERA" audit verify --file "$dir/rot.jsonl" --key "$dir/keys2.json" 2>&1)
is "$?" 0 "seals_of_both_keys_verify_with_the_published_keys"
is "$(pg_psql "SELECT count(*) FROM audit_keys WHERE retired_at IS NOT NULL AND private_key_ciphertext IS NULL")" 1 \
	"the_retired_key_has_its_private_half_shredded"

# --- search -------------------------------------------------------------------------------
out=$("$TESSERA" --json audit search --user user3 --limit 5)
is "$(grep -c '"seq":' <<<"$out")" 5 "search_returns_at_most_the_limit"
is "$(grep -c '"user_id": '"$uid" <<<"$out")" 5 "search_by_user_returns_only_that_users_records"
out=$("$TESSERA" --json audit search --action gateway.request --decision block --limit 1000)
like "$out" '"decision": "block"' "search_by_decision_finds_blocked_requests"
unlike "$out" '"decision": "allow"' "search_by_decision_returns_nothing_else"
out=$("$TESSERA" audit search --upstream onprem-vllm --limit 3)
like "$out" "onprem-vllm" "search_by_upstream_prints_a_table"
like "$(pg_psql "SELECT count(*) FROM audit_events WHERE action = 'audit.export'")" '^[1-9]' "every_export_is_an_audit_event"

tap_done
