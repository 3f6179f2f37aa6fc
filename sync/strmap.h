/*
 * strmap.h — a string → index hash map (open addressing, FNV-1a) for the
 * directory sync's in-memory diff of 100k entries against Postgres.
 *
 * Keys are borrowed, not copied: they must outlive the map. Not
 * thread-safe; a map belongs to one sync run.
 */
#ifndef TSR_SYNC_STRMAP_H
#define TSR_SYNC_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include "../lib/status.h"

struct strmap {
	const char **keys;
	size_t *vals;
	size_t cap; /* power of two */
	size_t n;
};

/* An empty map sized for about expect keys. Caller frees with strmap_free(). */
tsr_rc strmap_init(struct strmap *m, size_t expect) TSR_WUR;
/* Add key → val; TSR_CONFLICT (map unchanged) when key is already there, TSR_INTERNAL on OOM. */
tsr_rc strmap_put(struct strmap *m, const char *key, size_t val) TSR_WUR;
/* True and *val when key is present (val may be NULL). */
bool strmap_get(const struct strmap *m, const char *key, size_t *val);
/* strmap_free on a zeroed or freed map is a no-op. */
void strmap_free(struct strmap *m);

#endif
