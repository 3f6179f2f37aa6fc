/*
 * scim_store.h — SCIM Users and Groups in Postgres (the SQL side of
 * broker/scim.c): typed C structs in, typed C structs out.
 *
 * Where a SCIM resource lives (migrations/0001_initial.sql):
 *   User  users (userName, displayName, name.givenName/familyName, active as
 *         the merged conclusion, enterprise extension as received),
 *         user_sources row source 'scim' (externalId, the IdP's view of
 *         active, every other attribute as JSON in attributes),
 *         user_emails rows source 'scim'.
 *   Group groups row source 'scim' (displayName in name and display_name,
 *         externalId), group_members (users and SCIM groups).
 * A user is a SCIM resource while it has a live 'scim' source row; LDAP-only
 * and local users are invisible here until an IdP links them by userName.
 * ETags are users.version / groups.version, bumped by the 0001 triggers.
 * Tombstones: DELETE sets users.deleted_at and drops the scim source row
 * (freeing externalId); every lookup filters deleted_at IS NULL.
 *
 * Writes join the caller's transaction (the broker holds one open across
 * the write, db_offboard(), db_roles_sync() and the audit event). Filter
 * text never reaches SQL: broker/scim_filter.c compiles a filter into a
 * boolean expression built only from the fixed fragments of the attribute
 * maps below and $n placeholders; its values are bound parameters.
 * db/ never includes broker headers.
 */
#ifndef TSR_DB_SCIM_STORE_H
#define TSR_DB_SCIM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "db.h"

/* ---------- attribute maps for filters and sorting ---------- */

enum scim_sql_type {
	SCIM_SQL_STRING,   /* text; case_exact says how eq/co/... compare */
	SCIM_SQL_BOOL,
	SCIM_SQL_DATETIME, /* timestamptz; compared with an RFC 3339 value */
	SCIM_SQL_ID,       /* uuid (SCIM id); eq/ne by value, other operators on its text */
};

/*
 * One filterable attribute. name is the lower-case attribute path
 * ("username", "name.givenname", "emails", or an extension attribute with
 * its schema URN). A multi-valued attribute has exists (the opening of an
 * EXISTS subquery over its rows, to which the compiler appends
 * " AND (<condition>))") and sub (its sub-attributes, "value" first, which
 * is what a comparison on the bare attribute means); expr is then unused.
 * Tables end with a NULL name.
 */
struct scim_sql_attr {
	const char *name;
	const char *expr;
	enum scim_sql_type type;
	bool case_exact;
	const char *exists;
	const struct scim_sql_attr *sub;
};

extern const struct scim_sql_attr scim_user_attrs[];
extern const struct scim_sql_attr scim_group_attrs[];

/* ---------- tokens ---------- */

struct scim_token_info {
	int64_t id;
	char label[128];
};

/*
 * Find a live SCIM token by the SHA-256 of its text: not revoked, not past
 * expires_at. TSR_NOT_FOUND otherwise. Touches last_used_at (at most once a
 * minute).
 */
tsr_rc scim_store_token_check(struct db_conn *c, const uint8_t hash[32], struct scim_token_info *out) TSR_WUR;

/*
 * Create a token with hash and label; every other live token that has no
 * expiry yet gets expires_at = now() + overlap_s (rotation overlap).
 * Returns the new id and, in prev_expiry (size n), the end of the overlap
 * ("" when there was no previous token). Caller runs it in a transaction.
 */
tsr_rc scim_store_token_rotate(struct db_conn *c, const uint8_t hash[32], const char *label, const char *created_by,
			       int64_t overlap_s, int64_t *id, char *prev_expiry, size_t n) TSR_WUR;

/* Import a token hash (from [scim] token_file) unless that hash is already known. *created says which. */
tsr_rc scim_store_token_import(struct db_conn *c, const uint8_t hash[32], const char *label, bool *created) TSR_WUR;

/* ---------- users ---------- */

struct scim_email {
	char *value;
	char *type;     /* NULL when absent */
	bool primary;
};

struct scim_user {
	/* identity (read) */
	int64_t id;
	char scim_id[37];
	char created[40], modified[40];   /* RFC 3339 UTC */
	int64_t version;
	bool active;                      /* users.active: the merged conclusion */
	bool source_active;               /* the IdP's own view (user_sources.active) */
	char deactivated_by[16];
	/* attributes (read and written) */
	char *user_name;
	char *display_name, *given_name, *family_name;   /* NULL when absent */
	char *external_id;
	char *enterprise;   /* JSON object text, or NULL */
	char *attributes;   /* JSON object text of every other attribute, or NULL */
	struct scim_email *emails;
	size_t n_emails;
	char *groups;       /* read: JSON array text [{"value","display"}] of SCIM groups, or NULL */
};

void scim_user_free(struct scim_user *u);  /* frees the members, not u; NULL is a no-op */

/*
 * Load the live SCIM user with this SCIM id. lock: SELECT ... FOR UPDATE
 * (inside the caller's transaction). TSR_NOT_FOUND when absent, tombstoned
 * or not linked to SCIM. Caller frees with scim_user_free().
 */
tsr_rc scim_store_user_get(struct db_conn *c, const char *scim_id, bool lock, struct scim_user *out) TSR_WUR;

/*
 * Create a user from u (user_name, names, external_id, enterprise,
 * attributes, emails; active is the IdP's view), or link a live user of
 * another source (LDAP) that has the same userName and no SCIM row yet.
 * TSR_CONFLICT when a live SCIM or local user already has the userName, or
 * the externalId is taken; *linked says which case happened. Fills u->id
 * and u->scim_id.
 */
tsr_rc scim_store_user_create(struct db_conn *c, struct scim_user *u, bool profile_from_scim, bool *linked) TSR_WUR;

/*
 * Write u's attributes over the stored user u->id (a full replace: absent
 * optional attributes are cleared); only what differs is written, so an
 * unchanged resource keeps its ETag. profile_from_scim false keeps the
 * users row's userName/displayName/name as LDAP wrote them when the user
 * also has an LDAP row ([scim] profile_source = ldap; the IdP's values for
 * those are dropped). Does not touch users.active: the caller runs
 * db_offboard()/db_reinstate().
 */
tsr_rc scim_store_user_update(struct db_conn *c, const struct scim_user *u, bool profile_from_scim) TSR_WUR;

/* Set the scim source's view of active for u->id. */
tsr_rc scim_store_user_source_active(struct db_conn *c, int64_t uid, bool active) TSR_WUR;

/* Whether a source other than SCIM currently reports the user inactive. */
tsr_rc scim_store_user_other_source_inactive(struct db_conn *c, int64_t uid, bool *inactive) TSR_WUR;

/* Tombstone: deleted_at = now(), drop the scim source row and its SCIM group memberships. */
tsr_rc scim_store_user_tombstone(struct db_conn *c, int64_t uid) TSR_WUR;

/* Does user uid have a non-SCIM source row (ldap/local)? */
tsr_rc scim_store_user_has_other_source(struct db_conn *c, int64_t uid, bool *other) TSR_WUR;

/* ---------- lists ---------- */

/*
 * A list query: where (a boolean SQL expression from scim_filter_sql() over
 * scim_user_attrs/scim_group_attrs with params[0..nparams), or NULL for
 * all), order_expr (an expr from the same map, or NULL for creation order),
 * descending, 1-based start_index, count (0: only count them). The page is
 * fetched first; the separate count(*) runs only when the page does not
 * already tell the total (a short first page), so an exact-match lookup is
 * one statement.
 */
struct scim_list_query {
	const char *where;
	const char *const *params;
	int nparams;
	const char *order_expr;
	bool order_fold;      /* sort by lower(order_expr) (caseExact false) */
	bool descending;
	int64_t start_index;
	int64_t count;
};

/* Users matching q: *total counts all matches; out[0..*n) the page. Caller frees each and the array. */
tsr_rc scim_store_user_list(struct db_conn *c, const struct scim_list_query *q, int64_t *total,
			    struct scim_user **out, size_t *n) TSR_WUR;

/* ---------- groups ---------- */

struct scim_member {
	char value[37];     /* SCIM id of the user or group */
	char *display;
	bool is_group;
};

struct scim_group {
	int64_t id;
	char scim_id[37];
	char created[40], modified[40];
	int64_t version;
	char *display_name;
	char *external_id;
	struct scim_member *members;  /* loaded only when asked */
	size_t n_members;
	bool members_loaded;
};

void scim_group_free(struct scim_group *g);

/* Load a SCIM group (members too when with_members). TSR_NOT_FOUND when absent. */
tsr_rc scim_store_group_get(struct db_conn *c, const char *scim_id, bool lock, bool with_members,
			    struct scim_group *out) TSR_WUR;

/* Load the members of g->id into g (g->members, g->n_members). */
tsr_rc scim_store_group_load_members(struct db_conn *c, struct scim_group *g) TSR_WUR;

/* Create; TSR_CONFLICT for a duplicate displayName (case-insensitive) or externalId. */
tsr_rc scim_store_group_create(struct db_conn *c, struct scim_group *g) TSR_WUR;

/* Rewrite displayName and externalId of g->id (only when they differ). */
tsr_rc scim_store_group_update(struct db_conn *c, const struct scim_group *g) TSR_WUR;

/* Delete the group (memberships cascade). */
tsr_rc scim_store_group_delete(struct db_conn *c, int64_t gid) TSR_WUR;

/*
 * Resolve SCIM ids to members in one query. unknown[0..*n_unknown) gets
 * pointers into values of those that name no live SCIM user or group
 * (caller provides room for n). user_ids/group_ids (size n each, caller
 * frees) receive the internal ids, 0 where the value is of the other kind.
 */
tsr_rc scim_store_members_resolve(struct db_conn *c, const char *const *values, size_t n, int64_t *user_ids,
				  int64_t *group_ids, const char **unknown, size_t *n_unknown) TSR_WUR;

/* Add members in one statement (existing ones are kept). *added counts new rows. */
tsr_rc scim_store_members_add(struct db_conn *c, int64_t gid, const int64_t *user_ids, const int64_t *group_ids,
			      size_t n, int64_t *added) TSR_WUR;

/* Remove the members named by SCIM id in one statement; *removed counts rows. */
tsr_rc scim_store_members_remove(struct db_conn *c, int64_t gid, const char *const *values, size_t n,
				 int64_t *removed) TSR_WUR;

/* Remove every member. */
tsr_rc scim_store_members_clear(struct db_conn *c, int64_t gid, int64_t *removed) TSR_WUR;

/* Groups matching q, without members unless with_members. */
tsr_rc scim_store_group_list(struct db_conn *c, const struct scim_list_query *q, bool with_members, int64_t *total,
			     struct scim_group **out, size_t *n) TSR_WUR;

#endif
