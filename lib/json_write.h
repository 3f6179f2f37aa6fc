/*
 * json_write.h — JSON text written straight into a struct buf, without
 * building a jansson tree first.
 *
 * For hot paths that emit a fixed shape of record (the audit journal line,
 * the gateway's audit detail): no allocation per field, one append per run
 * of plain bytes. The output is byte for byte what jansson's json_dumps()
 * writes for the same values without JSON_ENSURE_ASCII / JSON_ESCAPE_SLASH,
 * so such text is already canonical in the sense of audit_canon_json() when
 * the caller writes the keys in sorted order.
 */
#ifndef TSR_JSON_WRITE_H
#define TSR_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "status.h"

/* Longest decimal int64 ("-9223372036854775808") plus the terminator. */
#define JSON_WRITE_INT_MAX 21

/* Is s valid UTF-8 by jansson's rules (no overlongs, surrogates, or code points past U+10FFFF)? */
bool json_write_utf8_ok(const char *s, size_t len);

/*
 * s as a JSON string: '"', '\\' and bytes below 0x20 escaped (\b \f \n \r \t,
 * else \u00XX), everything else as is. NULL, and text that is not valid
 * UTF-8, are written as null: jansson refuses such a string, and the readers
 * (json_string_value) see a NULL either way.
 */
tsr_rc json_write_str(struct buf *b, const char *s) TSR_WUR;

/* v in decimal. */
tsr_rc json_write_int(struct buf *b, int64_t v) TSR_WUR;

/* v in decimal into out (NUL-terminated); returns the length. */
size_t json_write_i64(char out[JSON_WRITE_INT_MAX], int64_t v);

#endif
