/*
 * repo_perm.c — see repo_perm.h.
 *
 * Bulk inputs travel as array parameters ($n::bigint[], $n::text[]) and are
 * unnested in SQL, so a sync run of 10,000 repositories is a handful of
 * statements, each replacing one input table for its scope with "delete
 * what is no longer reported, insert or update what is" — a no-change run
 * writes nothing.
 *
 * db_rp_recompute() is two statements. The first derives the wanted
 * sources (org base permission and owners x live repos; team grants x the
 * members of the team and of its descendants, via_ref = the granting team's
 * slug; direct and outside collaborators), compares them with the stored
 * sources in scope, writes one history row per difference, applies it, and
 * notes the touched (user, repo) pairs in a per-connection temporary table.
 * The second recomputes repo_permissions for those pairs and returns the
 * pairs that lost every source. Lock order: RP_WRITE_LOCK (advisory, per
 * transaction), then the tables in the order above, then credentials and
 * the audit chain head (db_perm_revoke_lost).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "repo_perm.h"
#include "audit.h"
#include "notify.h"
#include "offboard.h"
#include "../lib/buf.h"
#include "../lib/log.h"

/* "ghperm\0\1": outside the range 0001_initial.sql reserves */
#define RP_WRITE_LOCK "7478368417985053953"
/* more changed pairs than this in one transaction: NOTIFY 'all' instead of each */
#define NOTIFY_EACH_MAX 1000

/* ---------- array parameters ---------- */

static char *int_array(const int64_t *v, size_t n, bool zero_is_null)
{
	struct buf b;
	buf_init(&b, (size_t)1 << 30);
	tsr_rc rc = buf_puts(&b, "{");
	for (size_t i = 0; i < n && rc == TSR_OK; i++) {
		if (zero_is_null && v[i] == 0)
			rc = buf_printf(&b, "%sNULL", i ? "," : "");
		else
			rc = buf_printf(&b, "%s%" PRId64, i ? "," : "", v[i]);
	}
	if (rc == TSR_OK)
		rc = buf_puts(&b, "}");
	if (rc != TSR_OK) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static char *bool_array(const bool *v, size_t n)
{
	char *s = malloc(2 * n + 3);
	if (!s)
		return NULL;
	size_t o = 0;
	s[o++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			s[o++] = ',';
		s[o++] = v[i] ? 't' : 'f';
	}
	s[o++] = '}';
	s[o] = '\0';
	return s;
}

static int64_t count_at(PGresult *r, int row, int col)
{
	return PQntuples(r) > row && !PQgetisnull(r, row, col) ? strtoll(PQgetvalue(r, row, col), NULL, 10) : 0;
}

static void lower_copy(const char *s, char *out, size_t n)
{
	size_t i = 0;
	for (; s[i] && i + 1 < n; i++)
		out[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
	out[i] = '\0';
}

/* ---------- lock ---------- */

static const struct db_stmt S_LOCK = { "rp_lock", 0, "SELECT pg_advisory_xact_lock(" RP_WRITE_LOCK ")" };

tsr_rc db_rp_lock(struct db_conn *c)
{
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_LOCK, 0, NULL, &rc);
	PQclear(r);
	return rc;
}

/* ---------- inputs ---------- */

static const struct db_stmt S_ACCOUNTS = { "rp_accounts", 2,
	"INSERT INTO repo_accounts (host, external_id, login) "
	"SELECT DISTINCT ON (id) 'github', id, login FROM unnest($1::bigint[], $2::text[]) AS t(id, login) "
	"ORDER BY id "
	"ON CONFLICT (host, external_id) DO UPDATE SET login = EXCLUDED.login, last_seen = now() "
	" WHERE repo_accounts.login IS DISTINCT FROM EXCLUDED.login "
	"    OR repo_accounts.last_seen < now() - interval '1 day'" };

tsr_rc db_rp_store_accounts(struct db_conn *c, const struct rp_account *v, size_t n)
{
	int64_t *ids = calloc(n ? n : 1, sizeof(*ids));
	const char **logins = calloc(n ? n : 1, sizeof(*logins));
	char *a1 = NULL, *a2 = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if (!ids || !logins)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ids[i] = v[i].id;
		logins[i] = v[i].login;
	}
	a1 = int_array(ids, n, false);
	a2 = db_text_array(logins, n);
	if (!a1 || !a2)
		goto out;
	const char *p[] = { a1, a2 };
	PGresult *r = db_exec(c, &S_ACCOUNTS, 2, p, &rc);
	PQclear(r);
out:
	free(ids);
	free(logins);
	free(a1);
	free(a2);
	return rc;
}

static const struct db_stmt S_ORG = { "rp_org", 3,
	"INSERT INTO github_orgs (org, login, external_id, base_permission) "
	"VALUES (lower($1), $1, $2::bigint, $3::repo_permission) "
	"ON CONFLICT (org) DO UPDATE SET login = EXCLUDED.login, external_id = EXCLUDED.external_id, "
	"       base_permission = EXCLUDED.base_permission, updated_at = now() "
	" WHERE (github_orgs.login, github_orgs.external_id, github_orgs.base_permission) IS DISTINCT FROM "
	"       (EXCLUDED.login, EXCLUDED.external_id, EXCLUDED.base_permission)" };

tsr_rc db_rp_store_org(struct db_conn *c, const char *login, int64_t id, const char *base_perm)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	tsr_rc rc;
	const char *p[] = { login, id > 0 ? ids : NULL, base_perm };
	PGresult *r = db_exec(c, &S_ORG, 3, p, &rc);
	PQclear(r);
	return rc;
}

static const struct db_stmt S_MEMBERS = { "rp_members", 3,
	"WITH s AS (SELECT DISTINCT ON (id) id, role FROM unnest($2::bigint[], $3::text[]) AS t(id, role) "
	"           ORDER BY id, role), "
	"del AS (DELETE FROM github_org_members m WHERE m.org = $1 "
	"          AND NOT EXISTS (SELECT 1 FROM s WHERE s.id = m.account_id) RETURNING 1), "
	"ins AS (INSERT INTO github_org_members (org, account_id, role) SELECT $1, id, role FROM s "
	"        ON CONFLICT (org, account_id) DO UPDATE SET role = EXCLUDED.role "
	"         WHERE github_org_members.role <> EXCLUDED.role RETURNING 1) "
	"SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM ins)" };

tsr_rc db_rp_store_members(struct db_conn *c, const char *org, const struct rp_member *v, size_t n,
			   struct rp_counts *k)
{
	char lorg[101];
	lower_copy(org, lorg, sizeof(lorg));
	int64_t *ids = calloc(n ? n : 1, sizeof(*ids));
	const char **roles = calloc(n ? n : 1, sizeof(*roles));
	char *a1 = NULL, *a2 = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if (!ids || !roles)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ids[i] = v[i].account_id;
		roles[i] = v[i].owner ? "admin" : "member";
	}
	a1 = int_array(ids, n, false);
	a2 = db_text_array(roles, n);
	if (!a1 || !a2)
		goto out;
	const char *p[] = { lorg, a1, a2 };
	PGresult *r = db_exec(c, &S_MEMBERS, 3, p, &rc);
	if (r) {
		k->members_removed += (int)count_at(r, 0, 0);
		k->members_added += (int)count_at(r, 0, 1);
	}
	PQclear(r);
out:
	free(ids);
	free(roles);
	free(a1);
	free(a2);
	return rc;
}

static const struct db_stmt S_TEAMS = { "rp_teams", 5,
	"WITH s AS (SELECT DISTINCT ON (id) id, slug, name, parent_id "
	"             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[]) AS t(id, slug, name, parent_id) "
	"            ORDER BY id), "
	"gone AS (DELETE FROM github_teams t WHERE t.org = $1 AND NOT EXISTS (SELECT 1 FROM s WHERE s.id = t.id) "
	"         RETURNING t.id), "
	"gm AS (DELETE FROM github_team_members m USING gone WHERE m.team_id = gone.id RETURNING 1), "
	"gr AS (DELETE FROM github_team_repos g USING gone WHERE g.team_id = gone.id RETURNING 1), "
	"ins AS (INSERT INTO github_teams (id, org, slug, name, parent_id) SELECT id, $1, slug, name, parent_id FROM s "
	"        ON CONFLICT (id) DO UPDATE SET org = EXCLUDED.org, slug = EXCLUDED.slug, name = EXCLUDED.name, "
	"               parent_id = EXCLUDED.parent_id "
	"         WHERE (github_teams.org, github_teams.slug, github_teams.name, github_teams.parent_id) "
	"               IS DISTINCT FROM (EXCLUDED.org, EXCLUDED.slug, EXCLUDED.name, EXCLUDED.parent_id) "
	"        RETURNING (xmax = 0) AS inserted) "
	"SELECT (SELECT count(*) FROM gone), count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), "
	"       (SELECT count(*) FROM gm) "
	"  FROM ins" };

tsr_rc db_rp_store_teams(struct db_conn *c, const char *org, const struct rp_team *v, size_t n, struct rp_counts *k)
{
	char lorg[101];
	lower_copy(org, lorg, sizeof(lorg));
	int64_t *ids = calloc(n ? n : 1, sizeof(*ids)), *parents = calloc(n ? n : 1, sizeof(*parents));
	const char **slugs = calloc(n ? n : 1, sizeof(*slugs)), **names = calloc(n ? n : 1, sizeof(*names));
	char *a[4] = { NULL };
	tsr_rc rc = TSR_INTERNAL;
	if (!ids || !parents || !slugs || !names)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ids[i] = v[i].id;
		parents[i] = v[i].parent_id;
		slugs[i] = v[i].slug;
		names[i] = v[i].name;
	}
	a[0] = int_array(ids, n, false);
	a[1] = db_text_array(slugs, n);
	a[2] = db_text_array(names, n);
	a[3] = int_array(parents, n, true);
	if (!a[0] || !a[1] || !a[2] || !a[3])
		goto out;
	const char *p[] = { lorg, a[0], a[1], a[2], a[3] };
	PGresult *r = db_exec(c, &S_TEAMS, 5, p, &rc);
	if (r) {
		k->teams_removed += (int)count_at(r, 0, 0);
		k->teams_added += (int)count_at(r, 0, 1);
		k->teams_updated += (int)count_at(r, 0, 2);
		k->members_removed += (int)count_at(r, 0, 3);
	}
	PQclear(r);
out:
	free(ids);
	free(parents);
	free(slugs);
	free(names);
	for (int i = 0; i < 4; i++)
		free(a[i]);
	return rc;
}

static const struct db_stmt S_TEAM_MEMBERS = { "rp_team_members", 3,
	"WITH s AS (SELECT DISTINCT team_id, account_id FROM unnest($2::bigint[], $3::bigint[]) AS t(team_id, account_id)), "
	"del AS (DELETE FROM github_team_members m WHERE m.team_id = ANY($1::bigint[]) "
	"          AND NOT EXISTS (SELECT 1 FROM s WHERE s.team_id = m.team_id AND s.account_id = m.account_id) "
	"        RETURNING 1), "
	"ins AS (INSERT INTO github_team_members (team_id, account_id) SELECT team_id, account_id FROM s "
	"        ON CONFLICT DO NOTHING RETURNING 1) "
	"SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM ins)" };

tsr_rc db_rp_store_team_members(struct db_conn *c, const int64_t *scope, size_t ns, const struct rp_team_member *v,
				size_t n, struct rp_counts *k)
{
	int64_t *t = calloc(n ? n : 1, sizeof(*t)), *a = calloc(n ? n : 1, sizeof(*a));
	char *p0 = NULL, *p1 = NULL, *p2 = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if (!t || !a)
		goto out;
	for (size_t i = 0; i < n; i++) {
		t[i] = v[i].team_id;
		a[i] = v[i].account_id;
	}
	p0 = int_array(scope, ns, false);
	p1 = int_array(t, n, false);
	p2 = int_array(a, n, false);
	if (!p0 || !p1 || !p2)
		goto out;
	const char *p[] = { p0, p1, p2 };
	PGresult *r = db_exec(c, &S_TEAM_MEMBERS, 3, p, &rc);
	if (r) {
		k->members_removed += (int)count_at(r, 0, 0);
		k->members_added += (int)count_at(r, 0, 1);
	}
	PQclear(r);
out:
	free(t);
	free(a);
	free(p0);
	free(p1);
	free(p2);
	return rc;
}

static const struct db_stmt S_GRANTS = { "rp_grants", 5,
	"WITH s AS (SELECT DISTINCT ON (team_id, repo_id) team_id, repo_id, perm::repo_permission AS perm "
	"             FROM unnest($3::bigint[], $4::bigint[], $5::text[]) AS t(team_id, repo_id, perm) "
	"            ORDER BY team_id, repo_id, perm::repo_permission DESC), "
	"del AS (DELETE FROM github_team_repos g "
	"         WHERE (g.team_id = ANY($1::bigint[]) OR g.repo_id = ANY($2::bigint[])) "
	"           AND NOT EXISTS (SELECT 1 FROM s WHERE s.team_id = g.team_id AND s.repo_id = g.repo_id) "
	"        RETURNING 1), "
	"ins AS (INSERT INTO github_team_repos (team_id, repo_id, permission) SELECT team_id, repo_id, perm FROM s "
	"        ON CONFLICT (team_id, repo_id) DO UPDATE SET permission = EXCLUDED.permission "
	"         WHERE github_team_repos.permission <> EXCLUDED.permission RETURNING 1) "
	"SELECT (SELECT count(*) FROM del) + (SELECT count(*) FROM ins)" };

tsr_rc db_rp_store_grants(struct db_conn *c, const int64_t *teams, size_t nt, const int64_t *repos, size_t nr,
			  const struct rp_grant *v, size_t n, struct rp_counts *k)
{
	int64_t *t = calloc(n ? n : 1, sizeof(*t)), *rp = calloc(n ? n : 1, sizeof(*rp));
	const char **perm = calloc(n ? n : 1, sizeof(*perm));
	char *a[5] = { NULL };
	tsr_rc rc = TSR_INTERNAL;
	if (!t || !rp || !perm)
		goto out;
	for (size_t i = 0; i < n; i++) {
		t[i] = v[i].team_id;
		rp[i] = v[i].repo_id;
		perm[i] = v[i].perm;
	}
	a[0] = int_array(teams, nt, false);
	a[1] = int_array(repos, nr, false);
	a[2] = int_array(t, n, false);
	a[3] = int_array(rp, n, false);
	a[4] = db_text_array(perm, n);
	for (int i = 0; i < 5; i++)
		if (!a[i])
			goto out;
	const char *p[] = { a[0], a[1], a[2], a[3], a[4] };
	PGresult *r = db_exec(c, &S_GRANTS, 5, p, &rc);
	if (r)
		k->grants_changed += (int)count_at(r, 0, 0);
	PQclear(r);
out:
	free(t);
	free(rp);
	free(perm);
	for (int i = 0; i < 5; i++)
		free(a[i]);
	return rc;
}

static const struct db_stmt S_COLLABS = { "rp_collabs", 4,
	"WITH s AS (SELECT DISTINCT ON (repo_id, account_id) repo_id, account_id, perm::repo_permission AS perm "
	"             FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS t(repo_id, account_id, perm) "
	"            ORDER BY repo_id, account_id, perm::repo_permission DESC), "
	"del AS (DELETE FROM github_repo_collaborators k WHERE k.repo_id = ANY($1::bigint[]) "
	"          AND NOT EXISTS (SELECT 1 FROM s WHERE s.repo_id = k.repo_id AND s.account_id = k.account_id) "
	"        RETURNING 1), "
	"ins AS (INSERT INTO github_repo_collaborators (repo_id, account_id, permission) "
	"        SELECT repo_id, account_id, perm FROM s "
	"        ON CONFLICT (repo_id, account_id) DO UPDATE SET permission = EXCLUDED.permission "
	"         WHERE github_repo_collaborators.permission <> EXCLUDED.permission RETURNING 1) "
	"SELECT (SELECT count(*) FROM del) + (SELECT count(*) FROM ins)" };

tsr_rc db_rp_store_collabs(struct db_conn *c, const int64_t *scope, size_t ns, const struct rp_collab *v, size_t n,
			   struct rp_counts *k)
{
	int64_t *rp = calloc(n ? n : 1, sizeof(*rp)), *ac = calloc(n ? n : 1, sizeof(*ac));
	const char **perm = calloc(n ? n : 1, sizeof(*perm));
	char *a[4] = { NULL };
	tsr_rc rc = TSR_INTERNAL;
	if (!rp || !ac || !perm)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rp[i] = v[i].repo_id;
		ac[i] = v[i].account_id;
		perm[i] = v[i].perm;
	}
	a[0] = int_array(scope, ns, false);
	a[1] = int_array(rp, n, false);
	a[2] = int_array(ac, n, false);
	a[3] = db_text_array(perm, n);
	for (int i = 0; i < 4; i++)
		if (!a[i])
			goto out;
	const char *p[] = { a[0], a[1], a[2], a[3] };
	PGresult *r = db_exec(c, &S_COLLABS, 4, p, &rc);
	if (r)
		k->collabs_changed += (int)count_at(r, 0, 0);
	PQclear(r);
out:
	free(rp);
	free(ac);
	free(perm);
	for (int i = 0; i < 4; i++)
		free(a[i]);
	return rc;
}

/* $1 lower(org), $2 ids still listed: mark the rest removed and drop their inputs */
static const struct db_stmt S_REPOS_GONE = { "rp_repos_gone", 2,
	"WITH gone AS (UPDATE repositories SET removed_at = now(), updated_at = now() "
	"               WHERE host = 'github' AND lower(owner) = $1 AND removed_at IS NULL "
	"                 AND NOT (external_id = ANY($2::bigint[])) RETURNING id, external_id), "
	"g AS (DELETE FROM github_team_repos x USING gone WHERE x.repo_id = gone.external_id RETURNING 1), "
	"k AS (DELETE FROM github_repo_collaborators x USING gone WHERE x.repo_id = gone.external_id RETURNING 1) "
	"SELECT id FROM gone" };
/* $1 owner, $2 ids, $3 names, $4 visibility, $5 archived, $6 topics (array literals), $7 classes (same) */
static const struct db_stmt S_REPOS = { "rp_repos", 7,
	"WITH s AS (SELECT DISTINCT ON (id) id, name, vis, arch, topics::text[] AS topics, classes::text[] AS classes "
	"             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::boolean[], $6::text[], $7::text[]) "
	"                  AS t(id, name, vis, arch, topics, classes) ORDER BY id), "
	"old AS (SELECT r.id, r.external_id, r.archived, r.classifications, r.removed_at FROM repositories r "
	"          JOIN s ON r.host = 'github' AND r.external_id = s.id), "
	"up AS (INSERT INTO repositories (host, owner, name, external_id, visibility, archived, topics, classifications) "
	"       SELECT 'github', $1, name, id, vis, arch, topics, classes FROM s "
	"       ON CONFLICT (host, external_id) DO UPDATE SET owner = EXCLUDED.owner, name = EXCLUDED.name, "
	"              visibility = EXCLUDED.visibility, archived = EXCLUDED.archived, topics = EXCLUDED.topics, "
	"              classifications = EXCLUDED.classifications, removed_at = NULL, updated_at = now() "
	"        WHERE (repositories.owner, repositories.name, repositories.visibility, repositories.archived, "
	"               repositories.topics, repositories.classifications, repositories.removed_at) "
	"              IS DISTINCT FROM (EXCLUDED.owner, EXCLUDED.name, EXCLUDED.visibility, EXCLUDED.archived, "
	"               EXCLUDED.topics, EXCLUDED.classifications, NULL::timestamptz) "
	"       RETURNING id, external_id, archived, classifications) "
	"SELECT up.id, old.id IS NULL, "
	"       old.id IS NOT NULL AND (old.archived IS DISTINCT FROM up.archived "
	"         OR old.classifications IS DISTINCT FROM up.classifications OR old.removed_at IS NOT NULL) "
	"  FROM up LEFT JOIN old ON old.external_id = up.external_id" };

static tsr_rc notify_repo(struct db_conn *c, const char *repo_id)
{
	char payload[40];
	snprintf(payload, sizeof(payload), "repo:%s", repo_id);
	return notify_send(c, NOTIFY_PERM_CHANNEL, payload);
}

tsr_rc db_rp_store_repos(struct db_conn *c, const char *org_login, const struct rp_repo *v, size_t n, bool complete,
			 struct rp_counts *k)
{
	char lorg[101];
	lower_copy(org_login, lorg, sizeof(lorg));
	int64_t *ids = calloc(n ? n : 1, sizeof(*ids));
	bool *arch = calloc(n ? n : 1, sizeof(*arch));
	const char **names = calloc(n ? n : 1, sizeof(*names)), **vis = calloc(n ? n : 1, sizeof(*vis));
	char **topics = calloc(n ? n : 1, sizeof(*topics)), **classes = calloc(n ? n : 1, sizeof(*classes));
	char *a[6] = { NULL };
	PGresult *r = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if (!ids || !arch || !names || !vis || !topics || !classes)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ids[i] = v[i].id;
		arch[i] = v[i].archived;
		names[i] = v[i].name;
		vis[i] = v[i].visibility;
		topics[i] = db_text_array(v[i].topics, v[i].ntopics);
		classes[i] = db_text_array(v[i].classes, v[i].nclasses);
		if (!topics[i] || !classes[i])
			goto out;
	}
	a[0] = int_array(ids, n, false);
	a[1] = db_text_array(names, n);
	a[2] = db_text_array(vis, n);
	a[3] = bool_array(arch, n);
	a[4] = db_text_array((const char *const *)topics, n);
	a[5] = db_text_array((const char *const *)classes, n);
	for (int i = 0; i < 6; i++)
		if (!a[i])
			goto out;
	if (complete) {
		const char *pg[] = { lorg, a[0] };
		r = db_exec(c, &S_REPOS_GONE, 2, pg, &rc);
		if (!r)
			goto out;
		k->repos_removed += PQntuples(r);
		for (int i = 0; i < PQntuples(r) && rc == TSR_OK; i++)
			rc = notify_repo(c, PQgetvalue(r, i, 0));
		PQclear(r);
		r = NULL;
		if (rc != TSR_OK)
			goto out;
	}
	const char *p[] = { org_login, a[0], a[1], a[2], a[3], a[4], a[5] };
	r = db_exec(c, &S_REPOS, 7, p, &rc);
	if (!r)
		goto out;
	for (int i = 0; i < PQntuples(r) && rc == TSR_OK; i++) {
		if (PQgetvalue(r, i, 1)[0] == 't')
			k->repos_added++;
		else
			k->repos_updated++;
		if (PQgetvalue(r, i, 2)[0] == 't')
			rc = notify_repo(c, PQgetvalue(r, i, 0));
	}
out:
	PQclear(r);
	for (size_t i = 0; topics && classes && i < n; i++) {
		free(topics[i]);
		free(classes[i]);
	}
	free(ids);
	free(arch);
	free(names);
	free(vis);
	free(topics);
	free(classes);
	for (int i = 0; i < 6; i++)
		free(a[i]);
	return rc;
}

/* ---------- recompute ---------- */

tsr_rc db_rp_analyze(struct db_conn *c)
{
	return db_simple(c, "ANALYZE github_orgs, github_org_members, github_teams, github_team_members, "
			    "github_team_repos, github_repo_collaborators, repositories, repo_accounts, users, "
			    "repo_permission_sources, repo_permissions");
}

static const struct db_stmt S_PAIRS_EXISTS = { "rp_pairs_exists", 0,
	"SELECT to_regclass('pg_temp.rp_changed_pairs') IS NOT NULL" };
static const struct db_stmt S_PAIRS_CLEAR = { "rp_pairs_clear", 0, "DELETE FROM rp_changed_pairs" };

/* $1 lower(org), $2 account ids or NULL, $3 repo ids (GitHub) or NULL, $4 run id */
static const struct db_stmt S_SOURCES = { "rp_sources", 4,
	"WITH RECURSIVE "
	"org_repos AS (SELECT id, external_id, removed_at IS NULL AS live FROM repositories "
	"               WHERE host = 'github' AND lower(owner) = $1 "
	"                 AND ($3::bigint[] IS NULL OR external_id = ANY($3::bigint[]))), "
	"acct AS (SELECT a.external_id AS account_id, u.id AS user_id "
	"           FROM repo_accounts a JOIN users u ON lower(u.repo_login) = lower(a.login) AND u.deleted_at IS NULL "
	"          WHERE a.host = 'github' AND ($2::bigint[] IS NULL OR a.external_id = ANY($2::bigint[]))), "
	"closure(ancestor, team_id) AS ( "
	"    SELECT id, id FROM github_teams WHERE org = $1 "
	"  UNION "
	"    SELECT c.ancestor, t.id FROM closure c JOIN github_teams t ON t.parent_id = c.team_id AND t.org = $1), "
	"wanted_raw AS ( "
	"    SELECT a.user_id, r.id AS repo_id, 'org'::text AS via, ''::text AS via_ref, o.base_permission AS perm "
	"      FROM github_orgs o JOIN github_org_members m ON m.org = o.org "
	"      JOIN acct a ON a.account_id = m.account_id CROSS JOIN org_repos r "
	"     WHERE o.org = $1 AND o.base_permission IS NOT NULL AND r.live "
	"  UNION ALL "
	"    SELECT a.user_id, r.id, 'org', 'owner', 'admin'::repo_permission "
	"      FROM github_org_members m JOIN acct a ON a.account_id = m.account_id CROSS JOIN org_repos r "
	"     WHERE m.org = $1 AND m.role = 'admin' AND r.live "
	"  UNION ALL "
	"    SELECT a.user_id, r.id, 'team', t.slug, g.permission "
	"      FROM github_team_repos g JOIN org_repos r ON r.external_id = g.repo_id AND r.live "
	"      JOIN github_teams t ON t.id = g.team_id AND t.org = $1 "
	"      JOIN closure c ON c.ancestor = g.team_id "
	"      JOIN github_team_members tm ON tm.team_id = c.team_id "
	"      JOIN acct a ON a.account_id = tm.account_id "
	"  UNION ALL "
	"    SELECT a.user_id, r.id, "
	"           CASE WHEN EXISTS (SELECT 1 FROM github_org_members om "
	"                              WHERE om.org = $1 AND om.account_id = k.account_id) "
	"                THEN 'direct' ELSE 'outside' END, '', k.permission "
	"      FROM github_repo_collaborators k JOIN org_repos r ON r.external_id = k.repo_id AND r.live "
	"      JOIN acct a ON a.account_id = k.account_id), "
	"wanted AS (SELECT user_id, repo_id, via, via_ref, max(perm) AS perm FROM wanted_raw GROUP BY 1, 2, 3, 4), "
	"cur AS (SELECT s.user_id, s.repo_id, s.via, s.via_ref, s.permission AS perm "
	"          FROM repo_permission_sources s JOIN org_repos r ON r.id = s.repo_id "
	"         WHERE $2::bigint[] IS NULL OR s.user_id IN (SELECT user_id FROM acct)), "
	"diff AS (SELECT coalesce(w.user_id, c.user_id) AS user_id, coalesce(w.repo_id, c.repo_id) AS repo_id, "
	"                coalesce(w.via, c.via) AS via, coalesce(w.via_ref, c.via_ref) AS via_ref, "
	"                c.perm AS old, w.perm AS new "
	"           FROM wanted w FULL JOIN cur c ON c.user_id = w.user_id AND c.repo_id = w.repo_id "
	"                                       AND c.via = w.via AND c.via_ref = w.via_ref "
	"          WHERE c.perm IS DISTINCT FROM w.perm), "
	"hist AS (INSERT INTO repo_permission_history "
	"           (user_id, repo_id, via, via_ref, old_permission, new_permission, change, sync_run_id) "
	"         SELECT user_id, repo_id, via, via_ref, old, new, "
	"                CASE WHEN old IS NULL THEN 'granted' WHEN new IS NULL THEN 'removed' "
	"                     WHEN new > old THEN 'raised' ELSE 'lowered' END, $4::bigint "
	"           FROM diff RETURNING change), "
	"del AS (DELETE FROM repo_permission_sources s USING diff d "
	"         WHERE d.new IS NULL AND s.user_id = d.user_id AND s.repo_id = d.repo_id "
	"           AND s.via = d.via AND s.via_ref = d.via_ref RETURNING 1), "
	"ups AS (INSERT INTO repo_permission_sources (user_id, repo_id, via, via_ref, permission) "
	"        SELECT user_id, repo_id, via, via_ref, new FROM diff WHERE new IS NOT NULL "
	"        ON CONFLICT (user_id, repo_id, via, via_ref) "
	"        DO UPDATE SET permission = EXCLUDED.permission, updated_at = now() RETURNING 1), "
	"pairs AS (INSERT INTO rp_changed_pairs (user_id, repo_id) SELECT DISTINCT user_id, repo_id FROM diff "
	"          RETURNING 1) "
	"SELECT count(*) FILTER (WHERE change = 'granted'), count(*) FILTER (WHERE change = 'raised'), "
	"       count(*) FILTER (WHERE change = 'lowered'), count(*) FILTER (WHERE change = 'removed'), "
	"       (SELECT count(*) FROM del) + (SELECT count(*) FROM ups) + (SELECT count(*) FROM pairs) "
	"  FROM hist" };

static const struct db_stmt S_EFFECTIVE = { "rp_effective", 1,
	"WITH pairs AS (SELECT DISTINCT user_id, repo_id FROM rp_changed_pairs), "
	"eff AS (SELECT p.user_id, p.repo_id, max(s.permission) AS perm "
	"          FROM pairs p LEFT JOIN repo_permission_sources s ON s.user_id = p.user_id AND s.repo_id = p.repo_id "
	"         GROUP BY 1, 2), "
	"del AS (DELETE FROM repo_permissions rp USING eff e "
	"         WHERE e.perm IS NULL AND rp.user_id = e.user_id AND rp.repo_id = e.repo_id "
	"        RETURNING rp.user_id, rp.repo_id), "
	"up AS (INSERT INTO repo_permissions (user_id, repo_id, permission) "
	"       SELECT user_id, repo_id, perm FROM eff WHERE perm IS NOT NULL "
	"       ON CONFLICT (user_id, repo_id) DO UPDATE SET permission = EXCLUDED.permission, updated_at = now() "
	"        WHERE repo_permissions.permission IS DISTINCT FROM EXCLUDED.permission "
	"       RETURNING user_id, repo_id) "
	"SELECT 'lost', user_id, repo_id FROM del "
	"UNION ALL SELECT 'count', count(*), 0 FROM up "
	"UNION ALL (SELECT 'changed', user_id, repo_id FROM up LIMIT $1::int)" };

static tsr_rc pairs_table(struct db_conn *c)
{
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_PAIRS_EXISTS, 0, NULL, &rc);
	if (!r)
		return rc;
	bool exists = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!exists) {
		rc = db_simple(c, "CREATE TEMP TABLE rp_changed_pairs (user_id bigint, repo_id bigint) "
				  "ON COMMIT DELETE ROWS");
		if (rc != TSR_OK)
			return rc;
	}
	r = db_exec(c, &S_PAIRS_CLEAR, 0, NULL, &rc);
	PQclear(r);
	return rc;
}

tsr_rc db_rp_recompute(struct db_conn *c, const char *org, const int64_t *accounts, size_t na, const int64_t *repos,
		       size_t nr, int64_t run_id, const char *actor, struct rp_changes *out)
{
	char lorg[101], run[24], lim[16];
	lower_copy(org, lorg, sizeof(lorg));
	snprintf(run, sizeof(run), "%" PRId64, run_id);
	snprintf(lim, sizeof(lim), "%d", NOTIFY_EACH_MAX + 1);
	char *pa = accounts ? int_array(accounts, na, false) : NULL;
	char *pr = repos ? int_array(repos, nr, false) : NULL;
	int64_t *lu = NULL, *lr = NULL;
	PGresult *r = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if ((accounts && !pa) || (repos && !pr))
		goto out;
	if ((rc = pairs_table(c)) != TSR_OK)
		goto out;
	const char *p[] = { lorg, pa, pr, run_id > 0 ? run : NULL };
	r = db_exec(c, &S_SOURCES, 4, p, &rc);
	if (!r)
		goto out;
	out->granted += (int)count_at(r, 0, 0);
	out->raised += (int)count_at(r, 0, 1);
	out->lowered += (int)count_at(r, 0, 2);
	out->removed += (int)count_at(r, 0, 3);
	PQclear(r);
	const char *pe[] = { lim };
	r = db_exec(c, &S_EFFECTIVE, 1, pe, &rc);
	if (!r)
		goto out;
	int nrows = PQntuples(r), nlost = 0;
	int64_t nup = 0;
	lu = calloc((size_t)nrows + 1, sizeof(*lu));
	lr = calloc((size_t)nrows + 1, sizeof(*lr));
	if (!lu || !lr) {
		rc = TSR_INTERNAL;
		goto out;
	}
	for (int i = 0; i < nrows; i++) {
		const char *kind = PQgetvalue(r, i, 0);
		if (strcmp(kind, "lost") == 0) {
			lu[nlost] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
			lr[nlost++] = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		} else if (strcmp(kind, "count") == 0) {
			nup = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		}
	}
	out->pairs_lost += nlost;
	out->pairs_changed += nlost + (int)nup;
	/* replicas re-check at once: each pair, or everything after a large change */
	if (nlost + nup > NOTIFY_EACH_MAX) {
		rc = notify_send(c, NOTIFY_PERM_CHANNEL, "all");
	} else {
		char payload[64];
		for (int i = 0; i < nrows && rc == TSR_OK; i++) {
			const char *kind = PQgetvalue(r, i, 0);
			if (strcmp(kind, "count") == 0)
				continue;
			snprintf(payload, sizeof(payload), "user:%s:repo:%s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
			rc = notify_send(c, NOTIFY_PERM_CHANNEL, payload);
		}
	}
	if (rc == TSR_OK && nlost > 0) {
		int revoked = 0;
		rc = db_perm_revoke_lost(c, lu, lr, (size_t)nlost, actor, &revoked);
		out->revoked += revoked;
	}
out:
	PQclear(r);
	free(pa);
	free(pr);
	free(lu);
	free(lr);
	return rc;
}

/* ---------- revocation ---------- */

static const struct db_stmt S_REVOKE_LOST = { "rp_revoke_lost", 3,
	"WITH pairs AS (SELECT DISTINCT p.user_id, p.repo_id FROM unnest($1::bigint[], $2::bigint[]) AS p(user_id, repo_id) "
	"                WHERE NOT EXISTS (SELECT 1 FROM repo_permissions rp "
	"                                   WHERE rp.user_id = p.user_id AND rp.repo_id = p.repo_id)), "
	"hit AS (SELECT c.id, min(p.repo_id) AS repo_id "
	"          FROM pairs p JOIN credentials c ON c.user_id = p.user_id AND c.revoked_at IS NULL "
	"                        AND c.kind = 'access' AND (c.expires_at IS NULL OR c.expires_at > now()) "
	"          JOIN credential_repos cr ON cr.credential_id = c.id AND cr.repo_id = p.repo_id "
	"         GROUP BY c.id) "
	"UPDATE credentials c SET revoked_at = now(), revoked_reason = 'permission lost', revoked_by = $3 "
	"  FROM hit WHERE c.id = hit.id AND c.revoked_at IS NULL "
	"RETURNING c.id, c.user_id, hit.repo_id, "
	"  (SELECT full_name FROM repositories WHERE id = hit.repo_id), "
	"  (SELECT user_name FROM users WHERE id = c.user_id)" };

tsr_rc db_perm_revoke_lost(struct db_conn *c, const int64_t *user_ids, const int64_t *repo_ids, size_t n,
			   const char *actor, int *revoked)
{
	if (revoked)
		*revoked = 0;
	if (n == 0)
		return TSR_OK;
	bool own = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
	char *pu = int_array(user_ids, n, false), *pr = int_array(repo_ids, n, false);
	struct audit_event *ev = NULL;
	char **details = NULL;
	PGresult *r = NULL;
	int nr = 0;
	tsr_rc rc = TSR_INTERNAL;
	if (!pu || !pr)
		goto out;
	if (own && (rc = db_simple(c, "BEGIN")) != TSR_OK)
		goto out;
	const char *p[] = { pu, pr, actor };
	r = db_exec(c, &S_REVOKE_LOST, 3, p, &rc);
	if (!r)
		goto out;
	nr = PQntuples(r);
	if (nr == 0)
		goto out;
	ev = calloc((size_t)nr, sizeof(*ev));
	details = calloc((size_t)nr, sizeof(*details));
	if (!ev || !details) {
		rc = TSR_INTERNAL;
		goto out;
	}
	for (int i = 0; i < nr; i++) {
		json_t *d = json_pack("{s:s,s:s,s:s?}", "reason", "permission lost", "kind", "access", "repo",
				      PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3));
		details[i] = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(d);
		if (!details[i] || (rc = audit_event_init(&ev[i], actor, "token.revoke", "success")) != TSR_OK) {
			rc = rc == TSR_OK ? TSR_INTERNAL : rc;
			goto out;
		}
		ev[i].credential_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		ev[i].user_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		ev[i].repo_id = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		ev[i].target = PQgetvalue(r, i, 4);
		ev[i].detail = details[i];
	}
	if ((rc = db_audit_append(c, ev, nr)) != TSR_OK)
		goto out;
	char payload[64];
	for (int i = 0; i < nr && rc == TSR_OK; i++) {
		rc = notify_send(c, NOTIFY_REVOKE_CHANNEL, PQgetvalue(r, i, 0));
		if (rc == TSR_OK) {
			snprintf(payload, sizeof(payload), "user:%s:repo:%s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
			rc = notify_send(c, NOTIFY_PERM_CHANNEL, payload);
		}
	}
	if (rc == TSR_OK && revoked)
		*revoked = nr;
out:
	if (rc == TSR_OK && nr > 0)
		log_info("tokens_revoked", "reason=\"permission lost\" count=%d actor=%s", nr, actor);
	PQclear(r);
	if (own && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		tsr_rc e = db_simple(c, rc == TSR_OK ? "COMMIT" : "ROLLBACK");
		if (rc == TSR_OK)
			rc = e;
	}
	for (int i = 0; details && i < nr; i++)
		free(details[i]);
	free(details);
	free(ev);
	free(pu);
	free(pr);
	return rc;
}

/* ---------- webhook removals ---------- */

static tsr_rc exec_changed(struct db_conn *c, const struct db_stmt *s, int n, const char *const *p, bool *changed)
{
	tsr_rc rc;
	PGresult *r = db_exec(c, s, n, p, &rc);
	if (r)
		*changed = PQntuples(r) > 0;
	PQclear(r);
	return rc;
}

static const struct db_stmt S_RM_COLLAB = { "rp_rm_collab", 2,
	"DELETE FROM github_repo_collaborators WHERE repo_id = $1 AND account_id = $2 RETURNING 1" };
static const struct db_stmt S_RM_TEAM_MEMBER = { "rp_rm_team_member", 2,
	"WITH RECURSIVE up(id) AS (SELECT $1::bigint "
	"  UNION SELECT t.parent_id FROM github_teams t JOIN up ON t.id = up.id WHERE t.parent_id IS NOT NULL) "
	"DELETE FROM github_team_members m WHERE m.account_id = $2 AND m.team_id IN (SELECT id FROM up) "
	"RETURNING m.team_id" };
static const struct db_stmt S_RM_GRANT = { "rp_rm_grant", 2,
	"DELETE FROM github_team_repos WHERE team_id = $1 AND repo_id = $2 RETURNING 1" };
static const struct db_stmt S_RM_TEAM = { "rp_rm_team", 1,
	"WITH RECURSIVE down(id) AS (SELECT $1::bigint "
	"  UNION SELECT t.id FROM github_teams t JOIN down ON t.parent_id = down.id), "
	"m AS (DELETE FROM github_team_members WHERE team_id IN (SELECT id FROM down) RETURNING 1), "
	"g AS (DELETE FROM github_team_repos WHERE team_id IN (SELECT id FROM down) RETURNING 1), "
	"t AS (DELETE FROM github_teams WHERE id IN (SELECT id FROM down) RETURNING 1) "
	"SELECT 1 WHERE EXISTS (SELECT 1 FROM m) OR EXISTS (SELECT 1 FROM g) OR EXISTS (SELECT 1 FROM t)" };
static const struct db_stmt S_RM_ORG_MEMBER = { "rp_rm_org_member", 2,
	"WITH tm AS (DELETE FROM github_team_members m USING github_teams t "
	"             WHERE t.id = m.team_id AND t.org = $1 AND m.account_id = $2 RETURNING 1), "
	"k AS (DELETE FROM github_repo_collaborators k USING repositories r "
	"       WHERE r.host = 'github' AND r.external_id = k.repo_id AND lower(r.owner) = $1 "
	"         AND k.account_id = $2 RETURNING 1), "
	"om AS (DELETE FROM github_org_members WHERE org = $1 AND account_id = $2 RETURNING 1) "
	"SELECT 1 WHERE EXISTS (SELECT 1 FROM tm) OR EXISTS (SELECT 1 FROM k) OR EXISTS (SELECT 1 FROM om)" };
static const struct db_stmt S_RM_REPO = { "rp_rm_repo", 1,
	"WITH g AS (DELETE FROM github_team_repos WHERE repo_id = $1 RETURNING 1), "
	"k AS (DELETE FROM github_repo_collaborators WHERE repo_id = $1 RETURNING 1) "
	"UPDATE repositories SET removed_at = now(), updated_at = now() "
	" WHERE host = 'github' AND external_id = $1 AND removed_at IS NULL RETURNING id" };

tsr_rc db_rp_remove_collab(struct db_conn *c, int64_t repo_id, int64_t account_id, bool *changed)
{
	char a[24], b[24];
	snprintf(a, sizeof(a), "%" PRId64, repo_id);
	snprintf(b, sizeof(b), "%" PRId64, account_id);
	const char *p[] = { a, b };
	return exec_changed(c, &S_RM_COLLAB, 2, p, changed);
}

tsr_rc db_rp_remove_team_member(struct db_conn *c, int64_t team_id, int64_t account_id, bool *changed)
{
	char a[24], b[24];
	snprintf(a, sizeof(a), "%" PRId64, team_id);
	snprintf(b, sizeof(b), "%" PRId64, account_id);
	const char *p[] = { a, b };
	return exec_changed(c, &S_RM_TEAM_MEMBER, 2, p, changed);
}

tsr_rc db_rp_remove_grant(struct db_conn *c, int64_t team_id, int64_t repo_id, bool *changed)
{
	char a[24], b[24];
	snprintf(a, sizeof(a), "%" PRId64, team_id);
	snprintf(b, sizeof(b), "%" PRId64, repo_id);
	const char *p[] = { a, b };
	return exec_changed(c, &S_RM_GRANT, 2, p, changed);
}

tsr_rc db_rp_remove_team(struct db_conn *c, int64_t team_id, bool *changed)
{
	char a[24];
	snprintf(a, sizeof(a), "%" PRId64, team_id);
	const char *p[] = { a };
	return exec_changed(c, &S_RM_TEAM, 1, p, changed);
}

tsr_rc db_rp_remove_org_member(struct db_conn *c, const char *org, int64_t account_id, bool *changed)
{
	char lorg[101], b[24];
	lower_copy(org, lorg, sizeof(lorg));
	snprintf(b, sizeof(b), "%" PRId64, account_id);
	const char *p[] = { lorg, b };
	return exec_changed(c, &S_RM_ORG_MEMBER, 2, p, changed);
}

tsr_rc db_rp_remove_repo(struct db_conn *c, int64_t repo_id, bool *changed)
{
	char a[24];
	snprintf(a, sizeof(a), "%" PRId64, repo_id);
	const char *p[] = { a };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_RM_REPO, 1, p, &rc);
	if (!r)
		return rc;
	*changed = PQntuples(r) > 0;
	for (int i = 0; i < PQntuples(r) && rc == TSR_OK; i++)
		rc = notify_repo(c, PQgetvalue(r, i, 0));
	PQclear(r);
	return rc;
}

/* $1 id, $2 owner, $3 name, $4 visibility or NULL, $5 archived, $6 topics or NULL, $7 classes or NULL */
static const struct db_stmt S_UPDATE_REPO = { "rp_update_repo", 7,
	"WITH old AS (SELECT id, archived, classifications FROM repositories "
	"              WHERE host = 'github' AND external_id = $1 AND removed_at IS NULL FOR UPDATE) "
	"UPDATE repositories r SET owner = $2, name = $3, visibility = coalesce($4, r.visibility), "
	"       archived = $5::boolean, topics = coalesce($6::text[], r.topics), "
	"       classifications = coalesce($7::text[], r.classifications), updated_at = now() "
	"  FROM old WHERE r.id = old.id "
	"   AND (r.owner, r.name, r.visibility, r.archived, r.topics, r.classifications) IS DISTINCT FROM "
	"       ($2, $3, coalesce($4, r.visibility), $5::boolean, coalesce($6::text[], r.topics), "
	"        coalesce($7::text[], r.classifications)) "
	"RETURNING r.id, old.archived IS DISTINCT FROM r.archived "
	"             OR old.classifications IS DISTINCT FROM r.classifications" };

tsr_rc db_rp_update_repo(struct db_conn *c, int64_t repo_id, const char *owner, const char *name,
			 const char *visibility, bool archived, const char *const *topics, size_t ntopics,
			 const char *const *classes, size_t nclasses, bool *changed)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, repo_id);
	char *t = topics ? db_text_array(topics, ntopics) : NULL;
	char *k = classes ? db_text_array(classes, nclasses) : NULL;
	tsr_rc rc = TSR_INTERNAL;
	*changed = false;
	if ((topics && !t) || (classes && !k))
		goto out;
	const char *p[] = { id, owner, name, visibility && *visibility ? visibility : NULL, archived ? "t" : "f", t, k };
	PGresult *r = db_exec(c, &S_UPDATE_REPO, 7, p, &rc);
	if (r) {
		*changed = PQntuples(r) > 0;
		if (*changed && PQgetvalue(r, 0, 1)[0] == 't')
			rc = notify_repo(c, PQgetvalue(r, 0, 0));
	}
	PQclear(r);
out:
	free(t);
	free(k);
	return rc;
}

/* ---------- report ---------- */

static const struct db_stmt S_UNMATCHED = { "rp_unmatched", 1,
	"WITH u AS (SELECT a.login, a.external_id, a.first_seen, a.last_seen FROM repo_accounts a "
	"            WHERE a.host = 'github' "
	"              AND NOT EXISTS (SELECT 1 FROM users x WHERE lower(x.repo_login) = lower(a.login) "
	"                                AND x.deleted_at IS NULL) "
	"              AND (EXISTS (SELECT 1 FROM github_org_members m WHERE m.account_id = a.external_id) "
	"                OR EXISTS (SELECT 1 FROM github_repo_collaborators k WHERE k.account_id = a.external_id))) "
	"SELECT u.login, u.external_id, "
	"       coalesce((SELECT string_agg(m.org || ':' || m.role, ',' ORDER BY m.org) FROM github_org_members m "
	"                  WHERE m.account_id = u.external_id), ''), "
	"       (SELECT count(*) FROM github_team_members tm WHERE tm.account_id = u.external_id), "
	"       (SELECT count(*) FROM github_repo_collaborators k WHERE k.account_id = u.external_id), "
	"       to_char(u.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"       to_char(u.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"       count(*) OVER () "
	"  FROM u ORDER BY lower(u.login) LIMIT $1::int" };

tsr_rc db_rp_unmatched(struct db_conn *c, int limit, rp_unmatched_fn fn, void *arg, int64_t *total)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = { lim };
	tsr_rc rc;
	*total = 0;
	PGresult *r = db_exec(c, &S_UNMATCHED, 1, p, &rc);
	if (!r)
		return rc;
	for (int i = 0; i < PQntuples(r) && rc == TSR_OK; i++) {
		struct rp_unmatched u;
		memset(&u, 0, sizeof(u));
		snprintf(u.login, sizeof(u.login), "%s", PQgetvalue(r, i, 0));
		u.id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		snprintf(u.orgs, sizeof(u.orgs), "%s", PQgetvalue(r, i, 2));
		u.teams = (int)strtol(PQgetvalue(r, i, 3), NULL, 10);
		u.collaborations = (int)strtol(PQgetvalue(r, i, 4), NULL, 10);
		snprintf(u.first_seen, sizeof(u.first_seen), "%s", PQgetvalue(r, i, 5));
		snprintf(u.last_seen, sizeof(u.last_seen), "%s", PQgetvalue(r, i, 6));
		*total = strtoll(PQgetvalue(r, i, 7), NULL, 10);
		rc = fn(arg, &u);
	}
	PQclear(r);
	return rc;
}
