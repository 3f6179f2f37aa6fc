/*
 * audit_canon.h — the canonical encoding and hash of an audit record.
 *
 * Shared by the writer (db/audit.c) and every verifier (tesserad, the
 * tessera CLI, offline verification of an export), so a record hashes the
 * same wherever it is checked. A record is its fields in the fixed order
 * below, each in its canonical text form (NULL pointer = SQL NULL):
 *   integers in decimal; `at` as integer microseconds since the Unix epoch;
 *   event_id as lower-case UUID; actor_addr as PostgreSQL host(inet) prints it;
 *   req_sha256 as lower-case hex; JSON (rule_hits, detail) as compact JSON
 *   with sorted keys (audit_canon_json()).
 * hash = SHA-256( prev_hash[32] || "tessera-audit-v1" || for each field:
 *                 'N'  (NULL)  |  'S' || be64(len) || bytes )
 * The length prefix makes the encoding unambiguous whatever the values hold.
 */
#ifndef TSR_AUDIT_CANON_H
#define TSR_AUDIT_CANON_H

#include <stdint.h>
#include "status.h"

enum audit_field {
	AUF_SEQ, AUF_AT_US, AUF_EVENT_ID, AUF_ACTOR_USER_ID, AUF_ACTOR, AUF_ACTOR_ADDR, AUF_ACTION, AUF_TARGET, AUF_OUTCOME,
	AUF_USER_ID, AUF_REPO_ID, AUF_CREDENTIAL_ID, AUF_ROUTE, AUF_MODEL, AUF_UPSTREAM, AUF_UPSTREAM_KEY_ID, AUF_DECISION,
	AUF_RULE_HITS, AUF_REQ_BYTES, AUF_RESP_BYTES, AUF_REQ_SHA256, AUF_STATUS, AUF_LATENCY_US, AUF_TOKENS_IN,
	AUF_TOKENS_OUT, AUF_DETAIL, AUF_NFIELDS
};

/* Column names in field order (also the export's field names). */
extern const char *const audit_field_names[AUF_NFIELDS];

/* hash of one record given its predecessor's hash. */
void audit_canon_hash(const char *const fields[AUF_NFIELDS], const uint8_t prev[32], uint8_t out[32]);

/*
 * Canonical JSON text of json (compact, keys sorted). TSR_INVALID if json is
 * not valid JSON. Caller frees *out with free().
 */
tsr_rc audit_canon_json(const char *json, char **out) TSR_WUR;

#endif
