/*
 * users.h — reading people for login, the admin API and the CLI.
 * (Writes belong to the sync and SCIM modules and to offboard.c.)
 */
#ifndef TSR_DB_USERS_H
#define TSR_DB_USERS_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"

struct user_row {
	int64_t id;
	char user_name[256];
	char display_name[256];
	char email[256];
	char repo_login[128];
	char sources[64];
	char roles[64];
	bool active;
	char deactivated_at[40];
	char deactivated_by[16];
	char deactivated_reason[256];
	char created_at[40];
	int live_credentials;
	int repos;
};

/* By user name (case-insensitive; live users only). TSR_NOT_FOUND if none. */
tsr_rc db_user_by_name(struct db_conn *c, const char *name, struct user_row *out) TSR_WUR;
/* By repo-host login (case-insensitive). TSR_NOT_FOUND if none. */
tsr_rc db_user_by_repo_login(struct db_conn *c, const char *login, struct user_row *out) TSR_WUR;
/*
 * Users whose name, display name or e-mail contains query (NULL: all),
 * ordered by name, at most limit. Caller frees *rows with free().
 */
tsr_rc db_user_list(struct db_conn *c, const char *query, int limit, struct user_row **rows, int *n) TSR_WUR;

#endif
