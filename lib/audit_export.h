/*
 * audit_export.h — the export format of audit records (tessera-audit-export-v1),
 * shared by tesserad (writing exports and search results) and the CLI
 * (verifying an export offline), so both read and write it the same way.
 *
 * A file is, in chain order:
 *   JSON Lines: one object per record, its fields as audit_field_names
 *     (integers as JSON numbers, `at` as "YYYY-MM-DDTHH:MM:SS.ffffffZ",
 *     rule_hits/detail as JSON values, req_sha256 hex, null for NULL), then
 *     "prev_hash" and "hash" (hex). After the record a seal covers, a line
 *     {"type":"seal",...}.
 *   CSV: a header line (the field names, prev_hash, hash), one row per
 *     record (RFC 4180 quoting; NULL is an empty unquoted field, the empty
 *     string is ""; JSON fields in canonical text); seal lines as
 *     "# {json}".
 * Last comes the verification record {"type":"verification",...} (CSV:
 * "# {json}"), whose records_sha256 is the SHA-256 of every byte before
 * that line and whose signature (Ed25519, lib/audit_seal.h) covers the rest
 * of it. The canonical text of each field — what the chain hashes — is
 * rebuilt exactly from either form (audit_export_parse, audit_csv_parse).
 */
#ifndef TSR_AUDIT_EXPORT_H
#define TSR_AUDIT_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "audit_verify.h"
#include "buf.h"

#define AUDIT_EXPORT_FORMAT "tessera-audit-export-v1"

/* The JSON object of r (export and search form). Caller json_decref()s. NULL on OOM. */
json_t *audit_export_json(const struct audit_rec *r);
/* {"type":"seal",...} of s. Caller json_decref()s. */
json_t *audit_export_seal_json(const struct audit_seal_rec *s);

/* A record rebuilt from its export form; the strings live here. */
struct audit_parsed {
	struct audit_rec rec;
	char num[AUF_NFIELDS][24];
	char at[24];
	char *text[AUF_NFIELDS]; /* owned copies (CSV), or NULL */
};
/* From a JSON object. err explains a malformed record. Free with audit_parsed_free(). */
tsr_rc audit_export_parse(json_t *obj, struct audit_parsed *p, char *err, size_t errlen) TSR_WUR;
/* A {"type":"seal"} object back into a seal. */
tsr_rc audit_export_parse_seal(json_t *obj, struct audit_seal_rec *s) TSR_WUR;
void audit_parsed_free(struct audit_parsed *p);

/* Append the CSV header line / one record's CSV row to b. */
tsr_rc audit_csv_header(struct buf *b) TSR_WUR;
tsr_rc audit_csv_row(struct buf *b, const struct audit_rec *r) TSR_WUR;
/*
 * Split one CSV record starting at line (which may continue over the next
 * lines: call with more text while *need_more). On success fills p.
 */
tsr_rc audit_csv_parse(const char *text, size_t len, struct audit_parsed *p, bool *need_more, char *err,
		       size_t errlen) TSR_WUR;

/*
 * The message the export trailer's signature covers:
 * "tessera-audit-export-v1\n" + canonical JSON of trailer without "signature".
 * Caller frees with free().
 */
char *audit_export_signed_text(json_t *trailer);

#endif
