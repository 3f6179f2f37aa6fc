/*
 * audit_check.h — offline verification of an audit export
 * (lib/audit_export.h), in the CLI itself: `tessera audit verify --file F
 * --key K`, and `tessera audit export` checking what it downloads as it
 * writes it.
 *
 * Fed bytes in any chunks (constant memory: one line at a time), it checks
 *   - every record's hash over its own fields and prev_hash;
 *   - for an unfiltered export, the chain from record to record (gaps,
 *     insertions, reordering: lib/audit_verify.h) and each seal line's head;
 *   - each seal's Ed25519 signature against the trusted keys;
 *   - the trailing verification record: present and last, records_sha256
 *     over every byte before it, its counts and hashes matching the records,
 *     tesserad's own verification result, and its signature.
 * A filtered export (--user/--repo) holds a subset of the chain: its links
 * cannot be checked offline; the signed trailer vouches that tesserad
 * verified the whole span, and each record still proves its own content.
 */
#ifndef TSR_ADMIN_AUDIT_CHECK_H
#define TSR_ADMIN_AUDIT_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "../lib/audit_verify.h"

struct audit_check;

/*
 * keys: the trusted public keys (copied). path: the export file when reading
 * one (lets a broken link be classified by looking records up), else NULL.
 * Caller frees with audit_check_free().
 */
tsr_rc audit_check_new(const struct audit_pubkey *keys, int nkeys, const char *path, struct audit_check **out) TSR_WUR;
void audit_check_free(struct audit_check *k);
/* Feed the next bytes of the export. */
void audit_check_feed(struct audit_check *k, const char *p, size_t n);
/* End of the export: run the trailer's checks. true when everything verified. */
bool audit_check_finish(struct audit_check *k);
/* Records seen so far. */
int64_t audit_check_records(const struct audit_check *k);
/* "OK: …" or "FAILED: …" lines on f (after finish). */
void audit_check_report(const struct audit_check *k, FILE *f);
/* The same as JSON (caller json_decref()s). */
json_t *audit_check_json(const struct audit_check *k);

/*
 * Trusted keys from --key values: a file (PEM, hex, base64, or the JSON of
 * GET /audit/v1/keys) or the key itself in hex or base64. Caller frees
 * *keys with free(). err explains a value that is none of those.
 */
tsr_rc audit_keys_load(const char *const *values, int n, struct audit_pubkey **keys, int *nkeys, char *err,
		       size_t errlen) TSR_WUR;
/* Keys from the JSON of GET /audit/v1/keys, appended to *keys. */
tsr_rc audit_keys_from_json(json_t *j, struct audit_pubkey **keys, int *nkeys) TSR_WUR;

#endif
