/*
 * roles.c — see roles.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "roles.h"
#include "audit.h"
#include "notify.h"
#include "offboard.h"

/* $1 group names, $2 roles (parallel arrays) */
static const struct db_stmt S_SYNC = { "roles_sync", 2,
	"WITH RECURSIVE closure(group_id, user_id) AS ( "
	"    SELECT group_id, member_user_id FROM group_members WHERE member_user_id IS NOT NULL "
	"  UNION "
	"    SELECT gm.group_id, c.user_id FROM group_members gm JOIN closure c ON gm.member_group_id = c.group_id "
	"), want AS ( "
	"    SELECT DISTINCT c.user_id, m.role, 'group:' || g.name AS via "
	"      FROM closure c JOIN groups g ON g.id = c.group_id AND g.source IN ('ldap', 'scim', 'local') "
	"      JOIN unnest($1::text[], $2::text[]) AS m(group_name, role) ON lower(m.group_name) = lower(g.name) "
	"      JOIN users u ON u.id = c.user_id AND u.active AND u.deleted_at IS NULL "
	"), del AS ( "
	"    DELETE FROM role_grants r WHERE r.via LIKE 'group:%' AND NOT EXISTS "
	"      (SELECT 1 FROM want w WHERE w.user_id = r.user_id AND w.role = r.role AND w.via = r.via) "
	"    RETURNING r.user_id, r.role, r.via "
	"), ins AS ( "
	"    INSERT INTO role_grants (user_id, role, via) SELECT user_id, role, via FROM want "
	"    ON CONFLICT DO NOTHING RETURNING user_id, role, via "
	") "
	"SELECT 'role.granted', i.user_id, i.role, i.via, u.user_name FROM ins i JOIN users u ON u.id = i.user_id "
	"UNION ALL "
	"SELECT 'role.revoked', d.user_id, d.role, d.via, u.user_name FROM del d JOIN users u ON u.id = d.user_id" };

tsr_rc db_roles_sync(struct db_conn *c, const struct config *cfg, const char *actor, int *added, int *removed)
{
	const struct strlist *lists[] = { &cfg->roles.admin, &cfg->roles.security, &cfg->roles.developer };
	const char *names[] = { "admin", "security", "developer" };
	size_t n = 0;
	for (int i = 0; i < 3; i++)
		n += lists[i]->n;
	const char **groups = calloc(n ? n : 1, sizeof(*groups));
	const char **roles = calloc(n ? n : 1, sizeof(*roles));
	char *ga = NULL, *ra = NULL;
	PGresult *r = NULL;
	struct audit_event *ev = NULL;
	char **details = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if (!groups || !roles)
		goto out;
	size_t k = 0;
	for (int i = 0; i < 3; i++)
		for (size_t j = 0; j < lists[i]->n; j++) {
			groups[k] = lists[i]->v[j];
			roles[k++] = names[i];
		}
	ga = db_text_array(groups, n);
	ra = db_text_array(roles, n);
	if (!ga || !ra)
		goto out;
	const char *p[] = { ga, ra };
	r = db_exec(c, &S_SYNC, 2, p, &rc);
	if (!r)
		goto out;
	int rows = PQntuples(r);
	int a = 0, d = 0;
	ev = calloc((size_t)rows + 1, sizeof(*ev));
	details = calloc((size_t)rows + 1, sizeof(*details));
	if (!ev || !details) {
		rc = TSR_INTERNAL;
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		bool grant = strcmp(PQgetvalue(r, i, 0), "role.granted") == 0;
		grant ? a++ : d++;
		if ((rc = audit_event_init(&ev[i], actor, PQgetvalue(r, i, 0), "success")) != TSR_OK)
			goto out;
		ev[i].user_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		ev[i].target = PQgetvalue(r, i, 4);
		json_t *j = json_pack("{s:s,s:s}", "role", PQgetvalue(r, i, 2), "via", PQgetvalue(r, i, 3));
		details[i] = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!details[i]) {
			rc = TSR_INTERNAL;
			goto out;
		}
		ev[i].detail = details[i];
	}
	rc = db_audit_append(c, ev, rows);
	for (int i = 0; i < rows && rc == TSR_OK; i++) {
		char payload[40];
		snprintf(payload, sizeof(payload), "user:%s", PQgetvalue(r, i, 1));
		rc = notify_send(c, NOTIFY_REVOKE_CHANNEL, payload); /* cached role sets are stale */
	}
	if (added)
		*added = a;
	if (removed)
		*removed = d;
out:
	if (details && r)
		for (int i = 0; i < PQntuples(r); i++)
			free(details[i]);
	free(details);
	free(ev);
	PQclear(r);
	free(ga);
	free(ra);
	free(groups);
	free(roles);
	return rc;
}
