/*
 * ldap_read.h — reading the directory into memory for one sync run: user
 * and group entries turned into plain C structs, with the digests that let
 * the run tell changed entries from unchanged ones.
 *
 * Owns the meaning of attributes: the [ldap] attribute mapping, group
 * schemas (groupOfNames/member, groupOfUniqueNames/uniqueMember with its
 * optional #'bits'B UID, posixGroup/memberUid, memberOf on users), what an
 * unusable entry is (no id, no login, invalid UTF-8, control characters) —
 * such entries are skipped and reported, never half-written. Does not own
 * Postgres (sync_ldap.c decides, db/directory.c writes) or the connection
 * (ldap.c). A view belongs to one run on one thread.
 */
#ifndef TSR_SYNC_LDAP_READ_H
#define TSR_SYNC_LDAP_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ldap.h"
#include "strmap.h"

struct ldap_user_entry {
	char *ext_id, *dn, *dn_key, *login;
	char *display_name, *given_name, *family_name, *repo_login; /* NULL when absent */
	char **mails;            /* deduplicated, in directory order */
	size_t n_mails;
	bool has_memberof;       /* memberOf was read ([ldap] member_of) */
	char **memberof;         /* group DN keys, sorted, unique */
	size_t n_memberof;
	uint8_t digest[32];      /* over dn, login, names, repo login, mails */
	uint8_t memberof_digest[32];
};

struct ldap_group_entry {
	char *ext_id, *dn, *dn_key, *name;
	char **dn_refs;          /* member/uniqueMember DN keys, sorted, unique */
	size_t n_dn_refs;
	char **uid_refs;         /* memberUid values, sorted, unique */
	size_t n_uid_refs;
	uint8_t digest[32];
};

/* A skipped entry or value, for the run's report. */
struct ldap_problem {
	char *dn;
	char *reason;
};

typedef void (*ldap_progress_fn)(void *arg, const char *phase, size_t n);

struct ldap_view {
	/* entries read with every mapped attribute (full: all; incremental: changed + fetched) */
	struct ldap_user_entry *users;
	size_t n_users, cap_users;
	struct strmap user_index;        /* ext_id → index in users */
	struct ldap_group_entry *groups;
	size_t n_groups, cap_groups;
	struct strmap group_index;
	/*
	 * ids of every entry in scope that has an id, including entries skipped
	 * as unusable (full: those read; incremental: the enumeration, with
	 * memberOf when configured)
	 */
	bool enumerated;                 /* incremental: ids listed separately from full entries */
	struct ldap_user_entry *present;  /* ext_id (+ memberof) only */
	size_t n_present, cap_present;
	struct strmap present_index;
	char **present_groups;
	size_t n_present_groups, cap_present_groups;
	struct strmap present_group_index;
	/* users matching disabled_filter */
	char **disabled;
	size_t n_disabled, cap_disabled;
	struct strmap disabled_index;
	bool groups_read;                /* false: no group_base configured */
	bool dropped;                    /* ldap_view_drop_entries() was called */
	bool user_base_missing, group_base_missing; /* noSuchObject */
	char hwm[64];                    /* greatest modifyTimestamp seen (or the one given) */
	struct ldap_problem *problems;   /* at most LDAP_VIEW_MAX_PROBLEMS kept */
	size_t n_problems;
	size_t total_problems;
	ldap_progress_fn progress;
	void *progress_arg;
};
#define LDAP_VIEW_MAX_PROBLEMS 100

/*
 * Free the entries (read, enumerated, disabled) but keep the counts
 * (n_users, n_groups, n_present, n_disabled), the mark and the problems.
 * Lookups answer "absent" afterwards.
 */
void ldap_view_drop_entries(struct ldap_view *v);
/* Zero a view and set its progress callback (may be NULL). */
tsr_rc ldap_view_init(struct ldap_view *v, ldap_progress_fn progress, void *arg) TSR_WUR;
void ldap_view_free(struct ldap_view *v);

/*
 * Read the directory. hwm NULL: a full read of every user and group entry.
 * hwm set: an incremental read (entries with modifyTimestamp >= hwm in
 * full, every entry's id, the disabled set). err says why on failure.
 */
tsr_rc ldap_view_read(struct ldap_session *s, const struct config *cfg, const char *hwm, struct ldap_view *v,
		      char *err, size_t errlen) TSR_WUR;
/* Read the full entries of the given users (groups when groups) by id, in batches (incremental runs). */
tsr_rc ldap_view_fetch(struct ldap_session *s, const struct config *cfg, struct ldap_view *v, bool groups,
		       char *const *ids, size_t n, char *err, size_t errlen) TSR_WUR;

/* Is ext_id in scope in the directory (whether or not its entry was usable)? */
bool ldap_view_user_present(const struct ldap_view *v, const char *ext_id);
bool ldap_view_group_present(const struct ldap_view *v, const char *ext_id);
/* The entry with memberOf for ext_id (a full entry or an enumerated one), NULL when none. */
const struct ldap_user_entry *ldap_view_memberof(const struct ldap_view *v, const char *ext_id);

/*
 * The DN key of a member value. uniqueMember (unique = true) may end in an
 * optional UID "#'0101'B" (RFC 4517 nameAndOptionalUID), which is dropped
 * when what remains is a DN. TSR_INVALID when it is no DN.
 * Caller frees *key with free().
 */
tsr_rc ldap_member_key(const char *value, size_t len, bool unique, char **key) TSR_WUR;

/* The digests, exposed for tests: with_repo says whether repo_login is mapped at all. */
void ldap_user_digest(const struct ldap_user_entry *u, bool with_repo, uint8_t out[32]);
void ldap_group_digest(const struct ldap_group_entry *g, uint8_t out[32]);
void ldap_memberof_digest(const struct ldap_user_entry *u, uint8_t out[32]);

#endif
