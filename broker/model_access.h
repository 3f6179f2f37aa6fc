/*
 * model_access.h — which roles and groups may use which models: the rules of
 * [policy] model_access, compiled once, matched without allocation.
 *
 * An entry is MODEL_GLOB:WHO|WHO…, e.g. "gpt-4o*:developer|ml-research".
 * The glob (`*` any run of characters, `?` one character, case-sensitive)
 * is split from the list at the entry's last ':' so model names with a
 * colon ("llama3:8b:any") work. WHO is a role (admin, security, developer:
 * granted as in [roles]), "any" (every user), "none" (nobody), or else the
 * name of a directory/SCIM group (case-insensitive; membership nested).
 * The most specific matching entry decides (the most literal characters in
 * its glob; an exact name beats every glob); among equally specific entries
 * the first one configured. A model no entry matches is allowed (so a
 * deployment without model_access behaves as before; "*:none" as the last,
 * least specific entry makes the default a refusal). At most 64 distinct
 * group names.
 *
 * This module knows nothing of Postgres: the caller resolves the user's
 * membership of the groups named here (model_access_group_names) and passes
 * it as a bit mask. Immutable after model_access_new: any thread may read.
 */
#ifndef TSR_MODEL_ACCESS_H
#define TSR_MODEL_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../lib/config.h"
#include "../lib/status.h"

/* Role bits as in enum role_bits (db/credential.h). */
#define MA_ROLE_ADMIN (1u << 0)
#define MA_ROLE_SECURITY (1u << 1)
#define MA_ROLE_DEVELOPER (1u << 2)

enum ma_verdict {
	MA_ALLOW,       /* no entry matches, or the deciding entry admits the caller */
	MA_DENY,        /* the deciding entry does not admit the caller */
	MA_NEED_GROUPS, /* the caller's roles don't suffice, but a group named by the entry might */
};

struct model_access;

/* Compile entries; errors (no ':', empty glob or list, too many groups) go to err. Caller frees with model_access_free(). */
tsr_rc model_access_new(const struct strlist *entries, struct model_access **out, char *err, size_t errlen) TSR_WUR;
void model_access_free(struct model_access *m);
bool model_access_empty(const struct model_access *m);

/*
 * Decide for model and a caller with role bits roles. groups: the caller's
 * membership mask of model_access_group_names(), or NULL when not known yet
 * (then MA_NEED_GROUPS when only a group could admit). *rule gets the
 * deciding entry's index, -1 when none matched.
 */
enum ma_verdict model_access_check(const struct model_access *m, const char *model, unsigned roles,
				   const uint64_t *groups, int *rule);

/* "policy model_access: model M is limited to WHO (entry 'GLOB')" for a denial by rule. */
void model_access_why(const struct model_access *m, int rule, const char *model, char *why, size_t whylen);

/* The distinct group names the entries mention (lower-cased), *n of them; owned by m. */
const char *const *model_access_group_names(const struct model_access *m, size_t *n);

/* Does glob (`*`, `?`) match all of s? */
bool model_access_glob(const char *glob, const char *s);

#endif
