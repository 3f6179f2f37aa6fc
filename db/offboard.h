/*
 * offboard.h — the one offboarding path (DESIGN.md: Offboarding).
 *
 * Every trigger — SCIM active=false or DELETE, LDAP sync finding a user
 * disabled or gone, `tessera user offboard`, the HR webhook — calls
 * db_offboard(). In one transaction it marks the user inactive, revokes
 * every session and access token, drops every role grant, writes one audit
 * event (the revocation receipt: each credential revoked and when it was
 * last used) and sends NOTIFY tessera_revoke 'user:<id>' so every replica
 * drops the user's cached credentials at commit. Running it again for an
 * already offboarded user changes nothing and writes nothing.
 */
#ifndef TSR_DB_OFFBOARD_H
#define TSR_DB_OFFBOARD_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"

/* Triggers, as stored in users.deactivated_by. */
#define OFFBOARD_SCIM "scim"
#define OFFBOARD_LDAP "ldap"
#define OFFBOARD_ADMIN "admin"
#define OFFBOARD_HR "hr"
#define OFFBOARD_GITHUB "github"

#define NOTIFY_REVOKE_CHANNEL "tessera_revoke"
#define NOTIFY_PERM_CHANNEL "tessera_perm"

struct offboard_result {
	bool changed;        /* false: already offboarded, nothing written */
	int credentials;     /* credentials revoked now */
	int roles;           /* role grants removed now */
};

/*
 * Offboard user_id. trigger is one of OFFBOARD_*; actor names who did it
 * (user name, "scim:<idp>", "ldap-sync", "hr-webhook"); reason is free text
 * kept in the receipt. Joins the caller's open transaction (LDAP sync runs
 * one per run) or runs its own. TSR_NOT_FOUND for an unknown user.
 */
tsr_rc db_offboard(struct db_conn *c, int64_t user_id, const char *trigger, const char *actor, const char *reason,
		   struct offboard_result *out) TSR_WUR;

/*
 * Let an offboarded user log in again (never revives old credentials); an
 * audit event records it. Same transaction rules as db_offboard().
 * *changed is false when the user was already active.
 */
tsr_rc db_reinstate(struct db_conn *c, int64_t user_id, const char *actor, const char *reason,
		    bool *changed) TSR_WUR;

#endif
