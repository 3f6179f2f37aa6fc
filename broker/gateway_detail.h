/*
 * gateway_detail.h — the `detail` JSON of a gateway.request audit record.
 *
 * Written directly in canonical form (compact, keys in bytewise order,
 * strings escaped as jansson does): exactly what audit_canon_json() would
 * return for it, so the event can carry detail_canonical and the audit
 * writer and shipper skip parsing and re-dumping it on every request.
 * Keeping the keys sorted is this function's job; tests/unit/test_audit_line.c
 * checks the output against audit_canon_json().
 */
#ifndef TSR_GATEWAY_DETAIL_H
#define TSR_GATEWAY_DETAIL_H

#include <stdbool.h>
#include <stdint.h>
#include "../lib/buf.h"

struct gateway_detail {
	const char *classifications; /* comma-separated repo classes (NULL or not UTF-8: null) */
	bool client_gone;            /* written only when true */
	int64_t overhead_us;
	bool stream;
	int64_t ttfb_us;             /* -1: no first byte */
	const char *upstream_error;  /* written only when not NULL (curl_easy_strerror) */
	int64_t upstream_us;
};

/* Append d's canonical JSON object to out. */
tsr_rc gateway_detail_json(struct buf *out, const struct gateway_detail *d) TSR_WUR;

#endif
