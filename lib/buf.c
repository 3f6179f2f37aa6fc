/*
 * buf.c — bounded growable buffer. See buf.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "buf.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

static tsr_rc reserve(struct buf *b, size_t extra)
{
	if (extra > b->max - b->len)
		return TSR_TOO_LARGE;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return TSR_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > (b->max + 1) / 2 ? b->max + 1 : cap * 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return TSR_INTERNAL;
	b->data = p;
	b->cap = cap;
	return TSR_OK;
}

tsr_rc buf_append(struct buf *b, const void *p, size_t n)
{
	tsr_rc rc = reserve(b, n);
	if (rc != TSR_OK)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return TSR_OK;
}

tsr_rc buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

tsr_rc buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return TSR_INTERNAL;
	tsr_rc rc = reserve(b, (size_t)n);
	if (rc != TSR_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return TSR_OK;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_wipe(struct buf *b)
{
	if (!b)
		return;
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	buf_free(b);
}

char *buf_steal(struct buf *b)
{
	char *p = b->data;
	if (!p) {
		p = malloc(1);
		if (p)
			*p = '\0';
	}
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
