/*
 * model_access.c — see model_access.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model_access.h"

#define MA_MAX_GROUPS 64

struct ma_entry {
	char glob[128];
	char who[256];   /* as configured, for messages */
	int specificity; /* literal characters; exact names rank above every glob */
	bool any;
	unsigned roles;
	uint64_t groups; /* bits of m->groups */
};

struct model_access {
	struct ma_entry *v;
	int n;
	char *groups[MA_MAX_GROUPS];
	size_t n_groups;
};

bool model_access_glob(const char *glob, const char *s)
{
	const char *star = NULL, *resume = NULL;
	while (*s) {
		if (*glob == '*') {
			star = glob++;
			resume = s;
		} else if (*glob == '?' || *glob == *s) {
			glob++;
			s++;
		} else if (star) {
			glob = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*glob == '*')
		glob++;
	return *glob == '\0';
}

static int specificity(const char *glob)
{
	int lit = 0;
	bool wild = false;
	for (const char *p = glob; *p; p++) {
		if (*p == '*' || *p == '?')
			wild = true;
		else
			lit++;
	}
	return wild ? lit : lit + 100000;
}

/* Index of group name (lower-cased) in m, added when new; -1 when there are too many. */
static int group_index(struct model_access *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->n_groups; i++)
		if (strlen(m->groups[i]) == len && strncasecmp(m->groups[i], name, len) == 0)
			return (int)i;
	if (m->n_groups >= MA_MAX_GROUPS)
		return -1;
	char *g = malloc(len + 1);
	if (!g)
		return -2;
	for (size_t i = 0; i < len; i++)
		g[i] = (char)tolower((unsigned char)name[i]);
	g[len] = '\0';
	m->groups[m->n_groups] = g;
	return (int)m->n_groups++;
}

tsr_rc model_access_new(const struct strlist *entries, struct model_access **out, char *err, size_t errlen)
{
	struct model_access *m = calloc(1, sizeof(*m));
	if (!m || !(m->v = calloc(entries->n + 1, sizeof(*m->v)))) {
		model_access_free(m);
		return TSR_INTERNAL;
	}
	tsr_rc rc = TSR_INVALID;
	for (size_t i = 0; i < entries->n; i++) {
		const char *e = entries->v[i];
		const char *colon = strrchr(e, ':');
		struct ma_entry *x = &m->v[m->n];
		if (!colon || colon == e || !colon[1] || (size_t)(colon - e) >= sizeof(x->glob) ||
		    strlen(colon + 1) >= sizeof(x->who)) {
			snprintf(err, errlen, "[policy] model_access: expected MODEL_GLOB:role|group|any|none, got '%s'", e);
			goto fail;
		}
		memcpy(x->glob, e, (size_t)(colon - e));
		snprintf(x->who, sizeof(x->who), "%s", colon + 1);
		x->specificity = specificity(x->glob);
		for (const char *a = colon + 1; *a;) {
			size_t len = strcspn(a, "|");
			if (len == 0) {
				snprintf(err, errlen, "[policy] model_access: empty name in '%s'", e);
				goto fail;
			}
			if (len == 3 && strncmp(a, "any", 3) == 0)
				x->any = true;
			else if (len == 4 && strncmp(a, "none", 4) == 0)
				;
			else if (len == 5 && strncmp(a, "admin", 5) == 0)
				x->roles |= MA_ROLE_ADMIN;
			else if (len == 8 && strncmp(a, "security", 8) == 0)
				x->roles |= MA_ROLE_SECURITY;
			else if (len == 9 && strncmp(a, "developer", 9) == 0)
				x->roles |= MA_ROLE_DEVELOPER;
			else {
				int gi = group_index(m, a, len);
				if (gi == -2) {
					rc = TSR_INTERNAL;
					goto fail;
				}
				if (gi < 0) {
					snprintf(err, errlen, "[policy] model_access: more than %d distinct group names",
						 MA_MAX_GROUPS);
					goto fail;
				}
				x->groups |= 1ULL << gi;
			}
			a += len;
			if (*a == '|')
				a++;
		}
		m->n++;
	}
	*out = m;
	return TSR_OK;
fail:
	model_access_free(m);
	return rc;
}

void model_access_free(struct model_access *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_groups; i++)
		free(m->groups[i]);
	free(m->v);
	free(m);
}

bool model_access_empty(const struct model_access *m)
{
	return !m || m->n == 0;
}

enum ma_verdict model_access_check(const struct model_access *m, const char *model, unsigned roles,
				   const uint64_t *groups, int *rule)
{
	int best = -1;
	for (int i = 0; m && i < m->n; i++)
		if ((best < 0 || m->v[i].specificity > m->v[best].specificity) && model_access_glob(m->v[i].glob, model))
			best = i;
	*rule = best;
	if (best < 0)
		return MA_ALLOW;
	const struct ma_entry *x = &m->v[best];
	if (x->any || (x->roles & roles))
		return MA_ALLOW;
	if (!x->groups)
		return MA_DENY;
	if (!groups)
		return MA_NEED_GROUPS;
	return (x->groups & *groups) ? MA_ALLOW : MA_DENY;
}

void model_access_why(const struct model_access *m, int rule, const char *model, char *why, size_t whylen)
{
	if (!m || rule < 0 || rule >= m->n) {
		snprintf(why, whylen, "policy model_access: model %s is not allowed", model);
		return;
	}
	const struct ma_entry *x = &m->v[rule];
	if (!x->any && !x->roles && !x->groups)
		snprintf(why, whylen, "policy model_access: model %s may not be used by anyone (entry '%s:%s')", model,
			 x->glob, x->who);
	else
		snprintf(why, whylen, "policy model_access: model %s is limited to %s (entry '%s:%s')", model, x->who,
			 x->glob, x->who);
}

const char *const *model_access_group_names(const struct model_access *m, size_t *n)
{
	*n = m ? m->n_groups : 0;
	return m ? (const char *const *)m->groups : NULL;
}
