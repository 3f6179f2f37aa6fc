/*
 * buf.h — the one growable buffer, always with a ceiling.
 *
 * Request bodies, upstream responses, LDAP results and webhook payloads all
 * go through struct buf so a size limit cannot be forgotten: appending past
 * `max` fails with TSR_TOO_LARGE and leaves the buffer as it was. The data is
 * always NUL-terminated (the terminator is not counted in len or max).
 * Not thread-safe; a buffer belongs to one request.
 */
#ifndef TSR_BUF_H
#define TSR_BUF_H

#include <stddef.h>
#include "status.h"

struct buf {
	char *data;   /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;   /* ceiling on len */
};

/* Start an empty buffer that may grow to max bytes. */
void buf_init(struct buf *b, size_t max);
/* Append n bytes; TSR_TOO_LARGE past the ceiling, TSR_INTERNAL on OOM. */
tsr_rc buf_append(struct buf *b, const void *p, size_t n) TSR_WUR;
tsr_rc buf_puts(struct buf *b, const char *s) TSR_WUR;
tsr_rc buf_printf(struct buf *b, const char *fmt, ...) TSR_PRINTF(2, 3) TSR_WUR;
/* Release memory; buf_free(NULL) is a no-op. buf_wipe also clears the bytes first (secrets). */
void buf_free(struct buf *b);
void buf_wipe(struct buf *b);
/* Hand the data to the caller (caller frees with free()); the buffer is left empty. */
char *buf_steal(struct buf *b);

#endif
