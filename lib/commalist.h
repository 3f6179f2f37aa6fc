/*
 * commalist.h — comma-separated lists as tessera stores them ("phi,pci",
 * a token's model scope): exact items, no spaces, no quoting.
 */
#ifndef TSR_COMMALIST_H
#define TSR_COMMALIST_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Is item[0, len) one of list's items? */
static inline bool commalist_has(const char *list, const char *item, size_t len)
{
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		if (n == len && strncmp(p, item, len) == 0)
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

#endif
