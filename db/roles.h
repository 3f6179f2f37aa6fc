/*
 * roles.h — role grants derived from group membership.
 *
 * Config maps group names to roles ([roles] admin/security/developer).
 * db_roles_sync() recomputes every grant whose via is "group:<name>" from
 * the current (nested, cycle-tolerant) memberships of directory and SCIM
 * groups, for active users only, and audits each grant added or removed.
 * Grants with other vias (bootstrap, local) are left alone. Sync code calls
 * it inside its own transaction after changing memberships.
 */
#ifndef TSR_DB_ROLES_H
#define TSR_DB_ROLES_H

#include "db.h"
#include "../lib/config.h"

/* *added and *removed (may be NULL) count the grants changed. */
tsr_rc db_roles_sync(struct db_conn *c, const struct config *cfg, const char *actor, int *added,
		     int *removed) TSR_WUR;

#endif
