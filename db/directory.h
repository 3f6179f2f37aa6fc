/*
 * directory.h — the SQL of the LDAP directory sync (tables of 0001 and
 * 0002_ldap.sql), with typed structs at the boundary.
 *
 * Every function runs inside the caller's transaction: the sync makes all
 * of a run's changes in one transaction (sync/sync_ldap.c). Functions that
 * may hit a uniqueness conflict the directory can legitimately cause (two
 * entries wanting one user name, a rename onto a taken name) run under a
 * savepoint and return TSR_CONFLICT with nothing written, so the run can
 * report the entry and go on. Bulk functions take arrays and bind them as
 * one text[] parameter each (db_text_array()), so a first sync of 100k
 * users is a few dozen statements, not a few hundred thousand.
 * Audit events are written by the caller, which knows why a row changed.
 */
#ifndef TSR_DB_DIRECTORY_H
#define TSR_DB_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "db.h"

/* What the directory says about one user entry (all strings borrowed). */
struct dir_user {
	const char *external_id;
	const char *dn;            /* exactly as the server sent it */
	const char *dn_key;        /* ldap_dn_key(dn) */
	const char *login;         /* users.user_name */
	const char *display_name, *given_name, *family_name; /* NULL when absent */
	const char *repo_login;    /* NULL when absent */
	bool set_repo_login;       /* false: no repo_login_attr configured, leave users.repo_login alone */
	const char *const *mails;  /* first one is primary */
	size_t n_mails;
	bool disabled;
	uint8_t digest[32];
	bool track_memberof;       /* memberOf read for this entry */
	const char *const *memberof; /* group DN keys */
	size_t n_memberof;
	uint8_t memberof_digest[32];
};

/* Postgres's view of one user known to the ldap source. Strings owned. */
struct dir_known_user {
	char *external_id;
	int64_t user_id;
	char *user_name;
	bool mirrored;             /* has an ldap_users row: the entry was present at the last run */
	bool has_digest;
	uint8_t digest[32];
	bool disabled;             /* ldap_users.disabled */
	bool has_memberof;
	uint8_t memberof_digest[32];
	bool active;               /* users.active */
	bool deleted;              /* users.deleted_at is set (SCIM tombstone) */
	bool deactivated_by_ldap;  /* users.deactivated_by = 'ldap' */
	bool other_inactive;       /* another source (scim) says inactive */
};

/* Every user with an ldap source. Caller frees with dir_known_users_free(). */
tsr_rc dir_known_users(struct db_conn *c, struct dir_known_user **out, size_t *n) TSR_WUR;
void dir_known_users_free(struct dir_known_user *v, size_t n);

/*
 * Insert n new users (users, user_sources, ldap_users, user_emails,
 * ldap_user_memberof); a disabled entry is created inactive
 * (deactivated_by 'ldap'). ids[i] gets the new users.id, or 0 when the
 * user name or repo login is already taken (nothing written for it; the
 * caller links or reports it).
 */
tsr_rc dir_users_insert(struct db_conn *c, const struct dir_user *const *u, size_t n, int64_t *ids) TSR_WUR;

/* Current column values of one user, for update diffs and link decisions. Strings owned. */
struct dir_user_now {
	int64_t id;
	char *user_name, *display_name, *given_name, *family_name, *repo_login;
	char *dn;                  /* user_sources.dn of the ldap source, NULL when none */
	char **mails;              /* ldap source only, primary first */
	size_t n_mails;
	bool has_ldap, has_local, deleted, active;
};
/* By id, or by live user name (case-insensitive); TSR_NOT_FOUND when none. dir_user_now_clear() frees. */
tsr_rc dir_user_get(struct db_conn *c, int64_t id, struct dir_user_now *out) TSR_WUR;
tsr_rc dir_user_by_name(struct db_conn *c, const char *user_name, struct dir_user_now *out) TSR_WUR;
void dir_user_now_clear(struct dir_user_now *u);

/*
 * Write u over existing user id: users columns (only those that differ),
 * the ldap user_sources row (created when attach), ldap_users, the ldap
 * emails (replaced when they differ from now's) and memberOf keys (replaced
 * when u->track_memberof). Under a savepoint: TSR_CONFLICT when the new user
 * name or repo login belongs to someone else, with nothing written.
 */
tsr_rc dir_user_write(struct db_conn *c, int64_t id, const struct dir_user *u, const struct dir_user_now *now,
		      bool attach) TSR_WUR;
/* Replace only the memberOf keys of a user (incremental runs read them for everyone). */
tsr_rc dir_user_memberof(struct db_conn *c, int64_t id, const struct dir_user *u) TSR_WUR;
/* The directory's view of an existing entry: ldap_users.disabled and user_sources.active. */
tsr_rc dir_user_set_disabled(struct db_conn *c, int64_t id, bool disabled) TSR_WUR;
/* The entry left the directory: ldap_users and memberOf rows go, user_sources.active = false. */
tsr_rc dir_user_detach(struct db_conn *c, int64_t id) TSR_WUR;

/* What the directory says about one group entry (strings borrowed). */
struct dir_group {
	const char *external_id, *dn, *dn_key, *name;
	const char *const *dn_refs;   /* member/uniqueMember DN keys */
	size_t n_dn_refs;
	const char *const *uid_refs;  /* memberUid values */
	size_t n_uid_refs;
	uint8_t digest[32];
};

struct dir_known_group {
	char *external_id;
	int64_t group_id;
	char *name, *dn;
	uint8_t digest[32];
};
/* Every LDAP group. Caller frees with dir_known_groups_free(). */
tsr_rc dir_known_groups(struct db_conn *c, struct dir_known_group **out, size_t *n) TSR_WUR;
void dir_known_groups_free(struct dir_known_group *v, size_t n);

/* Insert n new groups (groups, ldap_groups); ids[i] = 0 when the name is taken. Refs separately. */
tsr_rc dir_groups_insert(struct db_conn *c, const struct dir_group *const *g, size_t n, int64_t *ids) TSR_WUR;
/* Rename/move an existing group; under a savepoint, TSR_CONFLICT when the name is taken. */
tsr_rc dir_group_write(struct db_conn *c, int64_t id, const struct dir_group *g) TSR_WUR;
/* Replace the member references of n groups (ids[i] ↔ g[i]). */
tsr_rc dir_group_refs_replace(struct db_conn *c, const int64_t *ids, const struct dir_group *const *g,
			      size_t n) TSR_WUR;
/* The group left the directory: the row goes (memberships cascade). */
tsr_rc dir_group_delete(struct db_conn *c, int64_t id) TSR_WUR;

/* One membership added or removed by dir_memberships_resolve(). */
struct dir_member_change {
	bool added;
	int64_t group_id;
	const char *group_name;    /* points into the result: valid until dir_member_changes_free() */
	int64_t user_id;           /* 0 when the member is a group */
	int64_t member_group_id;   /* 0 when the member is a user */
	const char *member_name;
};
struct dir_member_changes {
	struct dir_member_change *v;
	size_t n;
	PGresult *res;
};
/*
 * Make group_members of every LDAP group what the stored references say:
 * member DNs resolve to users (ldap_users.dn_key) or nested groups
 * (ldap_groups.dn_key), memberUid to users by login (case-insensitive),
 * memberOf to the group it names. Returns the changes, ordered by group.
 * Caller frees with dir_member_changes_free().
 */
tsr_rc dir_memberships_resolve(struct db_conn *c, struct dir_member_changes *out) TSR_WUR;
void dir_member_changes_free(struct dir_member_changes *x);

/* sync_state of kind 'ldap': *value NULL when unset (caller frees with free()). */
tsr_rc dir_state_get(struct db_conn *c, const char *key, char **value) TSR_WUR;
/* Set it; writes only when the value differs. */
tsr_rc dir_state_set(struct db_conn *c, const char *key, const char *value) TSR_WUR;

#endif
