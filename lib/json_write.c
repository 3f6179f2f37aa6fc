/*
 * json_write.c — see json_write.h. The escaping mirrors jansson's dump.c
 * (2.x) exactly, including the upper-case hex digits of \u00XX; the unit
 * test tests/unit/test_audit_line.c holds it to jansson's output.
 */
#include <string.h>

#include "json_write.h"

bool json_write_utf8_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 4;
			cp = c & 0x07;
		} else {
			return false; /* continuation byte first, 0xc0/0xc1 (always overlong), or past RFC 3629 */
		}
		if ((size_t)(end - p) < n)
			return false;
		for (size_t i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
			return false;
		p += n;
	}
	return true;
}

tsr_rc json_write_str(struct buf *b, const char *s)
{
	if (!s)
		return buf_append(b, "null", 4);
	size_t len = strlen(s);
	if (!json_write_utf8_ok(s, len))
		return buf_append(b, "null", 4);
	tsr_rc rc = buf_append(b, "\"", 1);
	const char *p = s, *end = s + len;
	while (rc == TSR_OK && p < end) {
		const char *run = p;
		while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			rc = buf_append(b, run, (size_t)(p - run));
		if (rc != TSR_OK || p == end)
			break;
		static const char hex[] = "0123456789ABCDEF";
		char esc[6] = { '\\', 0 };
		size_t n = 2;
		switch (*p) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[(unsigned char)*p >> 4];
			esc[5] = hex[*p & 0x0f];
			n = 6;
		}
		rc = buf_append(b, esc, n);
		p++;
	}
	return rc == TSR_OK ? buf_append(b, "\"", 1) : rc;
}

size_t json_write_i64(char out[JSON_WRITE_INT_MAX], int64_t v)
{
	/* through uint64_t: -INT64_MIN does not fit an int64_t */
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	char tmp[JSON_WRITE_INT_MAX];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	size_t len = 0;
	if (v < 0)
		out[len++] = '-';
	while (n)
		out[len++] = tmp[--n];
	out[len] = '\0';
	return len;
}

tsr_rc json_write_int(struct buf *b, int64_t v)
{
	char d[JSON_WRITE_INT_MAX];
	return buf_append(b, d, json_write_i64(d, v));
}
