/*
 * strmap.c — see strmap.h. Load factor at most 1/2; grows by doubling.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

tsr_rc strmap_init(struct strmap *m, size_t expect)
{
	memset(m, 0, sizeof(*m));
	size_t cap = 16;
	while (cap < expect * 2 + 2)
		cap <<= 1;
	m->keys = calloc(cap, sizeof(*m->keys));
	m->vals = calloc(cap, sizeof(*m->vals));
	if (!m->keys || !m->vals) {
		strmap_free(m);
		return TSR_INTERNAL;
	}
	m->cap = cap;
	return TSR_OK;
}

static size_t slot_of(const struct strmap *m, const char *key)
{
	size_t i = (size_t)fnv1a(key) & (m->cap - 1);
	while (m->keys[i] && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static tsr_rc grow(struct strmap *m)
{
	struct strmap bigger;
	if (strmap_init(&bigger, m->cap) != TSR_OK)
		return TSR_INTERNAL;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t s = slot_of(&bigger, m->keys[i]);
		bigger.keys[s] = m->keys[i];
		bigger.vals[s] = m->vals[i];
		bigger.n++;
	}
	strmap_free(m);
	*m = bigger;
	return TSR_OK;
}

tsr_rc strmap_put(struct strmap *m, const char *key, size_t val)
{
	if (!m->keys)
		return TSR_INTERNAL;
	if ((m->n + 1) * 2 > m->cap && grow(m) != TSR_OK)
		return TSR_INTERNAL;
	size_t s = slot_of(m, key);
	if (m->keys[s])
		return TSR_CONFLICT;
	m->keys[s] = key;
	m->vals[s] = val;
	m->n++;
	return TSR_OK;
}

bool strmap_get(const struct strmap *m, const char *key, size_t *val)
{
	if (!m->keys || !key)
		return false;
	size_t s = slot_of(m, key);
	if (!m->keys[s])
		return false;
	if (val)
		*val = m->vals[s];
	return true;
}

void strmap_free(struct strmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}
