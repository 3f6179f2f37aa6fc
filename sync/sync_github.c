/*
 * sync_github.c — see sync_github.h.
 *
 * A run reads every organisation completely into a struct org_data (the
 * extracted API items are kept alive in one jansson array, so the rp_*
 * structs can point at their strings), then writes in one transaction.
 * Queue turns build the same struct, partially, with the scope of each
 * part recorded (which teams' member lists, which repositories'
 * collaborators were re-read), so db/repo_perm.c replaces exactly those.
 *
 * API calls of a full run, per organisation: 1 (org) + pages of owners +
 * pages of members + pages of teams + per team (pages of members + pages of
 * repositories) + pages of repositories + per repository (pages of direct
 * collaborators). Outside collaborators need no call of their own: a direct
 * collaborator who is not a member is one.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>

#include "sync_github.h"
#include "../db/audit.h"
#include "../db/github_state.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

/* "ghsync\0\1": the session lock shared by sync.github and sync.github.queue */
#define SYNC_LOCK "7478364846718337025"
#define ACTOR "github-sync"
#define QUEUE_BATCH 200

/* ---------- small growable arrays ---------- */

struct vec {
	void *v;
	size_t n, cap, sz;
};

static tsr_rc vec_push(struct vec *x, const void *item)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		void *p = realloc(x->v, cap * x->sz);
		if (!p)
			return TSR_INTERNAL;
		x->v = p;
		x->cap = cap;
	}
	memcpy((char *)x->v + x->n * x->sz, item, x->sz);
	x->n++;
	return TSR_OK;
}

#define VEC_INIT(T) { NULL, 0, 0, sizeof(T) }
#define VEC_AT(x, T, i) (((T *)(x).v)[i])

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* ---------- one organisation's data ---------- */

struct org_data {
	char org[101];          /* as configured */
	json_t *keep;           /* extracted items: owners of every string below */
	bool has_info;
	char login[101];
	int64_t id;
	const char *base;       /* base permission name, NULL = none */
	struct vec owners;      /* int64_t, sorted after listing */
	bool has_members;
	struct vec members;     /* rp_member */
	bool has_teams;
	struct vec teams;       /* rp_team */
	struct vec accounts;    /* rp_account */
	struct vec tm_scope;    /* int64_t: teams whose member lists were read */
	struct vec tmembers;    /* rp_team_member */
	struct vec gt_scope;    /* int64_t: teams whose grants were read */
	struct vec gr_scope;    /* int64_t: repos whose team grants were read */
	struct vec grants;      /* rp_grant */
	bool repos_complete;
	struct vec repos;       /* rp_repo */
	struct vec co_scope;    /* int64_t: repos whose collaborators were read */
	struct vec collabs;     /* rp_collab */
	struct vec gone;        /* int64_t: repos that answered 404 */
	struct vec allocs;      /* void *: topic/class arrays to free */
	bool touched;           /* queue: something to recompute */
	/* cursor for the item callbacks */
	int64_t cur_id;         /* team or repo being listed */
};

static void org_init(struct org_data *d, const char *org)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->org, sizeof(d->org), "%s", org);
	snprintf(d->login, sizeof(d->login), "%s", org);
	struct vec i64 = VEC_INIT(int64_t);
	d->owners = d->tm_scope = d->gt_scope = d->gr_scope = d->co_scope = d->gone = i64;
	d->members = (struct vec)VEC_INIT(struct rp_member);
	d->teams = (struct vec)VEC_INIT(struct rp_team);
	d->accounts = (struct vec)VEC_INIT(struct rp_account);
	d->tmembers = (struct vec)VEC_INIT(struct rp_team_member);
	d->grants = (struct vec)VEC_INIT(struct rp_grant);
	d->repos = (struct vec)VEC_INIT(struct rp_repo);
	d->collabs = (struct vec)VEC_INIT(struct rp_collab);
	d->allocs = (struct vec)VEC_INIT(void *);
	d->keep = json_array();
}

static void org_free(struct org_data *d)
{
	struct vec *all[] = { &d->owners, &d->members, &d->teams, &d->accounts, &d->tm_scope, &d->tmembers,
			      &d->gt_scope, &d->gr_scope, &d->grants, &d->repos, &d->co_scope, &d->collabs,
			      &d->gone };
	for (size_t i = 0; i < d->allocs.n; i++)
		free(VEC_AT(d->allocs, void *, i));
	free(d->allocs.v);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->v);
	json_decref(d->keep);
}

/* ---------- extractors: what a 304 replays ---------- */

static json_t *field(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return v ? json_incref(v) : json_null();
}

static json_t *ex_org(json_t *o)
{
	return json_pack("{s:o,s:o,s:o}", "login", field(o, "login"), "id", field(o, "id"), "base",
			 field(o, "default_repository_permission"));
}

static json_t *ex_user(json_t *o)
{
	return json_pack("{s:o,s:o}", "id", field(o, "id"), "login", field(o, "login"));
}

static json_t *ex_team(json_t *o)
{
	json_t *parent = json_object_get(o, "parent");
	return json_pack("{s:o,s:o,s:o,s:o}", "id", field(o, "id"), "slug", field(o, "slug"), "name",
			 field(o, "name"), "parent", json_is_object(parent) ? field(parent, "id") : json_null());
}

static json_t *ex_repo(json_t *o)
{
	json_t *vis = json_object_get(o, "visibility");
	json_t *v = json_is_string(vis) ? json_incref(vis)
		    : json_is_boolean(json_object_get(o, "private"))
			    ? json_string(json_is_true(json_object_get(o, "private")) ? "private" : "public")
			    : json_null();
	return json_pack("{s:o,s:o,s:o,s:o,s:o}", "id", field(o, "id"), "name", field(o, "name"), "visibility", v,
			 "archived", field(o, "archived"), "topics", field(o, "topics"));
}

static json_t *perm_json(json_t *o)
{
	const char *p = gh_perm_name(gh_perm_of(o));
	return p ? json_string(p) : json_null();
}

/* a team's grant (team repos) or a collaborator, with the permission it holds */
static json_t *ex_with_perm(json_t *o)
{
	return json_pack("{s:o,s:o,s:o,s:o}", "id", field(o, "id"), "login", field(o, "login"), "name",
			 field(o, "name"), "perm", perm_json(o));
}

/* a team as GET /repos/{o}/{r}/teams lists it */
static json_t *ex_repo_team(json_t *o)
{
	return json_pack("{s:o,s:o,s:o}", "id", field(o, "id"), "slug", field(o, "slug"), "perm", perm_json(o));
}

/* ---------- item handlers ---------- */

static bool id_ok(json_t *it, int64_t *id)
{
	json_t *v = json_object_get(it, "id");
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return false;
	*id = (int64_t)json_integer_value(v);
	return true;
}

static const char *name_of(json_t *it, const char *key)
{
	const char *s = json_string_value(json_object_get(it, key));
	return gh_name_ok(s) ? s : NULL;
}

static tsr_rc keep(struct org_data *d, json_t *it)
{
	return json_array_append(d->keep, it) == 0 ? TSR_OK : TSR_INTERNAL;
}

static tsr_rc bad_item(const char *what)
{
	log_error("github_bad_item", "what=%s", what);
	return TSR_INVALID;
}

static tsr_rc add_account(struct org_data *d, json_t *it, int64_t *id)
{
	const char *login = name_of(it, "login");
	if (!id_ok(it, id) || !login)
		return bad_item("user");
	struct rp_account a = { *id, login };
	tsr_rc rc = keep(d, it);
	return rc == TSR_OK ? vec_push(&d->accounts, &a) : rc;
}

static tsr_rc on_owner(void *arg, json_t *it)
{
	struct org_data *d = arg;
	int64_t id;
	if (!id_ok(it, &id))
		return bad_item("owner");
	return vec_push(&d->owners, &id);
}

static tsr_rc on_member(void *arg, json_t *it)
{
	struct org_data *d = arg;
	int64_t id;
	tsr_rc rc = add_account(d, it, &id);
	if (rc != TSR_OK)
		return rc;
	struct rp_member m = { id, bsearch(&id, d->owners.v, d->owners.n, sizeof(int64_t), cmp_i64) != NULL };
	return vec_push(&d->members, &m);
}

static tsr_rc on_team(void *arg, json_t *it)
{
	struct org_data *d = arg;
	struct rp_team t = { 0 };
	json_t *parent = json_object_get(it, "parent");
	if (!id_ok(it, &t.id) || !(t.slug = name_of(it, "slug")))
		return bad_item("team");
	t.name = json_string_value(json_object_get(it, "name"));
	if (json_is_integer(parent) && json_integer_value(parent) > 0)
		t.parent_id = (int64_t)json_integer_value(parent);
	tsr_rc rc = keep(d, it);
	return rc == TSR_OK ? vec_push(&d->teams, &t) : rc;
}

static tsr_rc on_team_member(void *arg, json_t *it)
{
	struct org_data *d = arg;
	int64_t id;
	tsr_rc rc = add_account(d, it, &id);
	if (rc != TSR_OK)
		return rc;
	struct rp_team_member m = { d->cur_id, id };
	return vec_push(&d->tmembers, &m);
}

static tsr_rc on_team_repo(void *arg, json_t *it)
{
	struct org_data *d = arg;
	struct rp_grant g = { d->cur_id, 0, json_string_value(json_object_get(it, "perm")) };
	if (!id_ok(it, &g.repo_id))
		return bad_item("team repository");
	if (!g.perm)
		return TSR_OK; /* no permission: no grant */
	tsr_rc rc = keep(d, it);
	return rc == TSR_OK ? vec_push(&d->grants, &g) : rc;
}

static tsr_rc on_repo_team(void *arg, json_t *it)
{
	struct org_data *d = arg;
	struct rp_grant g = { 0, d->cur_id, json_string_value(json_object_get(it, "perm")) };
	if (!id_ok(it, &g.team_id))
		return bad_item("repository team");
	if (!g.perm)
		return TSR_OK;
	tsr_rc rc = keep(d, it);
	return rc == TSR_OK ? vec_push(&d->grants, &g) : rc;
}

static tsr_rc on_collab(void *arg, json_t *it)
{
	struct org_data *d = arg;
	int64_t id;
	tsr_rc rc = add_account(d, it, &id);
	if (rc != TSR_OK)
		return rc;
	struct rp_collab k = { d->cur_id, id, json_string_value(json_object_get(it, "perm")) };
	return k.perm ? vec_push(&d->collabs, &k) : TSR_OK;
}

size_t sync_github_classify(const struct strlist *map, const char *const *topics, size_t n, const char **out,
			    size_t max)
{
	size_t k = 0;
	for (size_t m = 0; m < map->n; m++) {
		const char *pair = map->v[m], *colon = strchr(pair, ':');
		if (!colon || colon == pair || !colon[1])
			continue;
		size_t tl = (size_t)(colon - pair);
		bool hit = false;
		for (size_t i = 0; i < n && !hit; i++)
			hit = strlen(topics[i]) == tl && strncasecmp(topics[i], pair, tl) == 0;
		if (!hit)
			continue;
		const char *cls = colon + 1;
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(out[j], cls) == 0;
		if (!dup && k < max)
			out[k++] = cls;
	}
	/* sorted, so the stored array is stable and a no-change run writes nothing */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(out[j - 1], out[j]) > 0; j--) {
			const char *t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return k;
}

struct repo_ctx {
	struct org_data *d;
	const struct strlist *map;
};

static tsr_rc add_repo(struct org_data *d, const struct strlist *map, json_t *it)
{
	struct rp_repo r = { 0 };
	json_t *topics = json_object_get(it, "topics");
	json_t *arch = json_object_get(it, "archived");
	if (!id_ok(it, &r.id) || !(r.name = name_of(it, "name")) || (arch && !json_is_boolean(arch) && !json_is_null(arch)) ||
	    (topics && !json_is_array(topics) && !json_is_null(topics)))
		return bad_item("repository");
	r.visibility = json_string_value(json_object_get(it, "visibility"));
	if (r.visibility && strcmp(r.visibility, "public") != 0 && strcmp(r.visibility, "private") != 0 &&
	    strcmp(r.visibility, "internal") != 0)
		return bad_item("repository visibility");
	r.archived = json_is_true(arch);
	size_t nt = json_array_size(topics);
	const char **tv = calloc(nt + 1, sizeof(*tv)), **cv = calloc(map->n + 1, sizeof(*cv));
	if (!tv || !cv) {
		free(tv);
		free(cv);
		return TSR_INTERNAL;
	}
	tsr_rc rc = vec_push(&d->allocs, &tv);
	if (rc == TSR_OK)
		rc = vec_push(&d->allocs, &cv);
	if (rc != TSR_OK) {
		free(tv);
		free(cv);
		return rc;
	}
	for (size_t i = 0; i < nt; i++) {
		tv[i] = json_string_value(json_array_get(topics, i));
		if (!tv[i])
			return bad_item("repository topic");
		r.ntopics++;
	}
	r.topics = tv;
	r.nclasses = sync_github_classify(map, tv, nt, cv, map->n);
	r.classes = cv;
	rc = keep(d, it);
	return rc == TSR_OK ? vec_push(&d->repos, &r) : rc;
}

static tsr_rc on_repo(void *arg, json_t *it)
{
	struct repo_ctx *x = arg;
	return add_repo(x->d, x->map, it);
}

/* ---------- fetching ---------- */

static tsr_rc path_of(char *out, size_t n, const char *fmt, ...) TSR_PRINTF(3, 4);
static tsr_rc path_of(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	return w > 0 && (size_t)w < n ? TSR_OK : TSR_INVALID;
}

static tsr_rc fetch_info(struct gh_client *gh, struct org_data *d)
{
	char path[512];
	json_t *o = NULL;
	tsr_rc rc = path_of(path, sizeof(path), "/orgs/%s", d->org);
	if (rc == TSR_OK)
		rc = gh_get(gh, d->org, path, ex_org, &o);
	if (rc != TSR_OK)
		return rc;
	const char *login = name_of(o, "login");
	int64_t id = 0;
	if (!login || !id_ok(o, &id)) {
		json_decref(o);
		return bad_item("organization");
	}
	snprintf(d->login, sizeof(d->login), "%s", login);
	d->id = id;
	/* absent (a token that may not read it) or "none": no base permission */
	d->base = gh_perm_name(gh_perm_parse(json_string_value(json_object_get(o, "base"))));
	d->has_info = true;
	rc = keep(d, o);
	json_decref(o);
	return rc;
}

static tsr_rc fetch_members(struct gh_client *gh, struct org_data *d)
{
	char path[512];
	tsr_rc rc = path_of(path, sizeof(path), "/orgs/%s/members?role=admin", d->org);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_user, on_owner, d);
	if (rc != TSR_OK)
		return rc;
	qsort(d->owners.v, d->owners.n, sizeof(int64_t), cmp_i64);
	rc = path_of(path, sizeof(path), "/orgs/%s/members?role=all", d->org);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_user, on_member, d);
	d->has_members = rc == TSR_OK;
	return rc;
}

static tsr_rc fetch_teams(struct gh_client *gh, struct org_data *d)
{
	char path[512];
	tsr_rc rc = path_of(path, sizeof(path), "/orgs/%s/teams", d->org);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_team, on_team, d);
	d->has_teams = rc == TSR_OK;
	return rc;
}

/* Members and grants of team t. */
static tsr_rc fetch_team(struct gh_client *gh, struct org_data *d, const struct rp_team *t)
{
	char path[512];
	d->cur_id = t->id;
	tsr_rc rc = path_of(path, sizeof(path), "/orgs/%s/teams/%s/members", d->org, t->slug);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_user, on_team_member, d);
	if (rc == TSR_OK)
		rc = vec_push(&d->tm_scope, &t->id);
	if (rc == TSR_OK)
		rc = path_of(path, sizeof(path), "/orgs/%s/teams/%s/repos", d->org, t->slug);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_with_perm, on_team_repo, d);
	if (rc == TSR_OK)
		rc = vec_push(&d->gt_scope, &t->id);
	return rc;
}

static tsr_rc fetch_collabs(struct gh_client *gh, struct org_data *d, int64_t repo_id, const char *name)
{
	char path[512];
	d->cur_id = repo_id;
	tsr_rc rc = path_of(path, sizeof(path), "/repos/%s/%s/collaborators?affiliation=direct", d->org, name);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_with_perm, on_collab, d);
	if (rc == TSR_OK)
		rc = vec_push(&d->co_scope, &repo_id);
	return rc;
}

static tsr_rc fetch_org(struct gh_client *gh, const struct config *cfg, struct org_data *d)
{
	char path[512];
	tsr_rc rc = fetch_info(gh, d);
	if (rc == TSR_OK)
		rc = fetch_members(gh, d);
	if (rc == TSR_OK)
		rc = fetch_teams(gh, d);
	for (size_t i = 0; rc == TSR_OK && i < d->teams.n; i++)
		rc = fetch_team(gh, d, &VEC_AT(d->teams, struct rp_team, i));
	struct repo_ctx x = { d, &cfg->github.topic_classifications };
	if (rc == TSR_OK)
		rc = path_of(path, sizeof(path), "/orgs/%s/repos?type=all", d->org);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_repo, on_repo, &x);
	d->repos_complete = rc == TSR_OK;
	for (size_t i = 0; rc == TSR_OK && i < d->repos.n; i++) {
		const struct rp_repo *r = &VEC_AT(d->repos, struct rp_repo, i);
		rc = fetch_collabs(gh, d, r->id, r->name);
	}
	return rc;
}

/* ---------- writing ---------- */

static tsr_rc store_org(struct db_conn *c, struct org_data *d, struct rp_counts *k)
{
	tsr_rc rc = db_rp_store_accounts(c, d->accounts.v, d->accounts.n);
	if (rc == TSR_OK && d->has_info)
		rc = db_rp_store_org(c, d->login, d->id, d->base);
	if (rc == TSR_OK && d->has_members)
		rc = db_rp_store_members(c, d->login, d->members.v, d->members.n, k);
	if (rc == TSR_OK && d->has_teams)
		rc = db_rp_store_teams(c, d->login, d->teams.v, d->teams.n, k);
	if (rc == TSR_OK && (d->repos.n || d->repos_complete))
		rc = db_rp_store_repos(c, d->login, d->repos.v, d->repos.n, d->repos_complete, k);
	for (size_t i = 0; rc == TSR_OK && i < d->gone.n; i++) {
		bool changed;
		rc = db_rp_remove_repo(c, VEC_AT(d->gone, int64_t, i), &changed);
		k->repos_removed += changed;
	}
	if (rc == TSR_OK && d->tm_scope.n)
		rc = db_rp_store_team_members(c, d->tm_scope.v, d->tm_scope.n, d->tmembers.v, d->tmembers.n, k);
	if (rc == TSR_OK && (d->gt_scope.n || d->gr_scope.n))
		rc = db_rp_store_grants(c, d->gt_scope.v, d->gt_scope.n, d->gr_scope.v, d->gr_scope.n, d->grants.v,
					d->grants.n, k);
	if (rc == TSR_OK && d->co_scope.n)
		rc = db_rp_store_collabs(c, d->co_scope.v, d->co_scope.n, d->collabs.v, d->collabs.n, k);
	return rc;
}

struct etag_batch {
	const char **url, **etag, **data;
	char **sha;
	size_t n, cap;
};

static tsr_rc etag_collect(void *arg, const char *url, const char *etag, const uint8_t sha[32], const char *data)
{
	struct etag_batch *b = arg;
	if (b->n == b->cap)
		return TSR_INTERNAL;
	char *hex = malloc(65);
	if (!hex)
		return TSR_INTERNAL;
	crypto_hex(sha, 32, hex);
	b->url[b->n] = url;
	b->etag[b->n] = etag;
	b->data[b->n] = data;
	b->sha[b->n++] = hex;
	return TSR_OK;
}

static tsr_rc save_etags(struct db_conn *c, struct gh_client *gh)
{
	size_t n = gh_cache_dirty_count(gh);
	if (n == 0)
		return TSR_OK;
	struct etag_batch b = { calloc(n, sizeof(char *)), calloc(n, sizeof(char *)), calloc(n, sizeof(char *)),
				calloc(n, sizeof(char *)), 0, n };
	tsr_rc rc = TSR_INTERNAL;
	if (b.url && b.etag && b.data && b.sha) {
		rc = gh_cache_each_dirty(gh, etag_collect, &b);
		if (rc == TSR_OK)
			rc = db_gh_etags_save(c, b.url, b.etag, (const char *const *)b.sha, b.data, b.n);
	}
	for (size_t i = 0; b.sha && i < b.n; i++)
		free(b.sha[i]);
	free(b.url);
	free(b.etag);
	free(b.data);
	free(b.sha);
	return rc;
}

static tsr_rc etag_load_cb(void *arg, const char *url, const char *etag, const char *data)
{
	return gh_cache_load(arg, url, etag, data);
}

static tsr_rc load_etags(struct db_conn *c, struct gh_client *gh, const struct config *cfg, const char *sub)
{
	char prefix[1024];
	size_t n = strlen(cfg->github.api_url);
	while (n > 0 && cfg->github.api_url[n - 1] == '/')
		n--;
	snprintf(prefix, sizeof(prefix), "%.*s%s", (int)n, cfg->github.api_url, sub ? sub : "/");
	return db_gh_etags_load(c, prefix, GH_CACHE_VERSION, etag_load_cb, gh);
}

/* ---------- client ---------- */

tsr_rc sync_github_client(const struct config *cfg, bool conditional, const atomic_bool *cancel,
			  struct gh_client **out)
{
	char *token = NULL, *key = NULL;
	tsr_rc rc;
	struct gh_client_opts o = { .api_url = cfg->github.api_url, .conditional = conditional, .cancel = cancel,
				    .user_agent = "tessera/" PACKAGE_VERSION };
	if (cfg->github.token_file) {
		rc = config_secret(NULL, cfg->github.token_file, &token);
		if (rc != TSR_OK) {
			log_error("github_token_unreadable", "file=%s", cfg->github.token_file);
			return TSR_INVALID;
		}
		o.token = token;
	} else if (cfg->github.app_id && cfg->github.app_key_file) {
		rc = config_secret(NULL, cfg->github.app_key_file, &key);
		if (rc != TSR_OK) {
			log_error("github_app_key_unreadable", "file=%s", cfg->github.app_key_file);
			return TSR_INVALID;
		}
		o.app_id = cfg->github.app_id;
		o.app_key_pem = key;
	} else {
		log_error("github_no_credential", "reason=\"set [github] token_file, or app_id and app_key_file\"");
		return TSR_INVALID;
	}
	rc = gh_client_new(&o, out);
	if (rc == TSR_INVALID)
		log_error("github_client_invalid", "reason=\"bad api_url or app key (RSA PEM expected)\"");
	secret_free(token);
	secret_free(key);
	return rc;
}

/* ---------- runs ---------- */

static const struct db_stmt S_LOCK_WAIT = { "ghsync_lock", 0, "SELECT pg_advisory_lock(" SYNC_LOCK ")" };
static const struct db_stmt S_LOCK_TRY = { "ghsync_trylock", 0, "SELECT pg_try_advisory_lock(" SYNC_LOCK ")" };
static const struct db_stmt S_UNLOCK = { "ghsync_unlock", 0, "SELECT pg_advisory_unlock(" SYNC_LOCK ")" };

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static char *run_detail(const char *mode, const struct gh_sync_result *r)
{
	const struct gh_stats *a = &r->api;
	json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:{s:i,s:i,s:i,s:i},s:i,s:i,s:i}",
			      "mode", mode, "orgs", r->orgs, "repos", r->repos, "teams", r->teams, "members",
			      r->members, "collaborators", r->collaborators, "queue_items", r->queue_items,
			      "api_calls", (json_int_t)a->calls, "not_modified", (json_int_t)a->not_modified,
			      "wait_ms", (json_int_t)a->wait_ms, "retries", (json_int_t)a->retries, "limited",
			      (json_int_t)a->limited, "sources", "granted", r->changes.granted, "raised",
			      r->changes.raised, "lowered", r->changes.lowered, "removed", r->changes.removed,
			      "pairs_changed", r->changes.pairs_changed, "pairs_lost", r->changes.pairs_lost,
			      "tokens_revoked", r->changes.revoked);
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	return s;
}

static tsr_rc audit_run(struct db_conn *c, const char *outcome, const char *detail)
{
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, ACTOR, "sync.github", outcome);
	if (rc != TSR_OK)
		return rc;
	ev.target = "github";
	ev.detail = detail;
	return db_audit_append(c, &ev, 1);
}

static void rollback(struct db_conn *c)
{
	if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
}

/* Record a failed run (own transaction) and audit it. */
static void record_failure(struct db_conn *c, int64_t run_id, const char *mode, const char *error,
			   const struct gh_sync_result *r)
{
	rollback(c);
	char *detail = run_detail(mode, r);
	struct gh_run_totals t = { NULL, NULL, r->api.calls, r->api.not_modified, r->api.wait_ms, detail };
	if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc rc = db_gh_run_finish(c, run_id, "failed", error, &t);
		if (rc == TSR_OK)
			rc = audit_run(c, "failure", detail);
		if (rc != TSR_OK)
			log_error("github_sync_record_failed", "run=%" PRId64, run_id);
	}
	free(detail);
}

static tsr_rc finish_ok(struct db_conn *c, int64_t run_id, const char *mode, struct gh_sync_result *r)
{
	char *detail = run_detail(mode, r);
	struct gh_run_totals t = { &r->counts, &r->changes, r->api.calls, r->api.not_modified, r->api.wait_ms, detail };
	tsr_rc rc = detail ? db_gh_run_finish(c, run_id, "ok", NULL, &t) : TSR_INTERNAL;
	if (rc == TSR_OK)
		rc = audit_run(c, "success", detail);
	free(detail);
	return rc;
}

static void tally(struct gh_sync_result *r, const struct org_data *d)
{
	r->repos += (int)d->repos.n;
	r->teams += (int)d->teams.n;
	r->members += (int)d->members.n;
	r->collaborators += (int)d->collabs.n;
}

tsr_rc sync_github_run(const struct gh_sync_opts *o, struct gh_sync_result *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->status, sizeof(out->status), "failed");
	const struct config *cfg = o->cfg;
	bool full = o->arg && strcmp(o->arg, "full") == 0;
	const char *mode = full ? "full" : "incremental";
	int64_t t0 = mono_ms();
	size_t norgs = cfg->github.orgs.n;
	if (norgs == 0) {
		/* recorded, so whoever asked (tessera sync run github) learns why at once */
		log_warn("github_sync_disabled", "reason=\"[github] orgs is empty\"");
		struct db_conn *c0;
		if (db_acquire(o->pool, 10000, &c0) == TSR_OK) {
			if (db_gh_run_begin(c0, mode, o->started_by ? o->started_by : "schedule", o->request_id, false,
					    &out->run_id) == TSR_OK) {
				tsr_rc ignored = db_gh_run_finish(c0, out->run_id, "failed", "[github] orgs is empty", NULL);
				(void)ignored;
			}
			db_release(o->pool, c0);
		}
		return TSR_INVALID;
	}
	for (size_t i = 0; i < norgs; i++)
		if (!gh_name_ok(cfg->github.orgs.v[i])) {
			log_error("github_sync_bad_org", "org_index=%zu", i);
			return TSR_INVALID;
		}
	struct db_conn *c = NULL;
	struct gh_client *gh = NULL;
	struct org_data *orgs = calloc(norgs, sizeof(*orgs));
	bool locked = false;
	char error[256] = "";
	tsr_rc rc = orgs ? db_acquire(o->pool, 10000, &c) : TSR_INTERNAL;
	if (rc != TSR_OK)
		goto out;
	for (size_t i = 0; i < norgs; i++)
		org_init(&orgs[i], cfg->github.orgs.v[i]);
	PGresult *r = db_exec(c, &S_LOCK_WAIT, 0, NULL, &rc);
	PQclear(r);
	if (rc != TSR_OK)
		goto out;
	locked = true;
	if ((rc = db_gh_run_begin(c, mode, o->started_by ? o->started_by : "schedule", o->request_id, true,
				   &out->run_id)) != TSR_OK)
		goto out;
	log_info("github_sync_started", "run=%" PRId64 " mode=%s orgs=%zu", out->run_id, mode, norgs);

	if ((rc = sync_github_client(cfg, !full, o->cancel, &gh)) != TSR_OK) {
		snprintf(error, sizeof(error), "no usable GitHub credential (see the log)");
		goto fail;
	}
	if (!full && (rc = load_etags(c, gh, cfg, NULL)) != TSR_OK) {
		snprintf(error, sizeof(error), "cannot load the ETag cache: %s", status_name(rc));
		goto fail;
	}
	for (size_t i = 0; i < norgs; i++) {
		rc = fetch_org(gh, cfg, &orgs[i]);
		out->api = *gh_client_stats(gh);
		if (rc != TSR_OK) {
			snprintf(error, sizeof(error), "reading organisation %s from GitHub: %s", orgs[i].org,
				 status_name(rc));
			goto fail;
		}
		tally(out, &orgs[i]);
		out->orgs++;
		log_info("github_org_read", "org=%s repos=%zu teams=%zu members=%zu calls=%ld not_modified=%ld",
			 orgs[i].org, orgs[i].repos.n, orgs[i].teams.n, orgs[i].members.n, out->api.calls,
			 out->api.not_modified);
	}

	out->fetch_ms = mono_ms() - t0;
	/* everything read: one transaction for every change */
	if ((rc = db_simple(c, "BEGIN")) != TSR_OK || (rc = db_rp_lock(c)) != TSR_OK)
		goto dberr;
	for (size_t i = 0; i < norgs; i++)
		if ((rc = store_org(c, &orgs[i], &out->counts)) != TSR_OK)
			goto dberr;
	if ((rc = db_rp_analyze(c)) != TSR_OK)
		goto dberr;
	for (size_t i = 0; i < norgs; i++)
		if ((rc = db_rp_recompute(c, orgs[i].login, NULL, 0, NULL, 0, out->run_id, ACTOR, &out->changes)) !=
		    TSR_OK)
			goto dberr;
	if ((rc = save_etags(c, gh)) != TSR_OK || (rc = db_gh_queue_done_before_run(c, out->run_id)) != TSR_OK)
		goto dberr;
	out->api = *gh_client_stats(gh);
	out->ms = mono_ms() - t0;
	if ((rc = finish_ok(c, out->run_id, mode, out)) != TSR_OK || (rc = db_simple(c, "COMMIT")) != TSR_OK)
		goto dberr;
	snprintf(out->status, sizeof(out->status), "ok");
	log_info("github_sync_finished",
		 "run=%" PRId64 " mode=%s ms=%lld calls=%ld not_modified=%ld wait_ms=%lld granted=%d raised=%d "
		 "lowered=%d removed=%d revoked=%d",
		 out->run_id, mode, (long long)out->ms, out->api.calls, out->api.not_modified,
		 (long long)out->api.wait_ms, out->changes.granted, out->changes.raised, out->changes.lowered,
		 out->changes.removed, out->changes.revoked);
	goto out;
dberr:
	snprintf(error, sizeof(error), "writing to PostgreSQL: %s", status_name(rc));
fail:
	if (gh)
		out->api = *gh_client_stats(gh);
	log_error("github_sync_failed", "run=%" PRId64 " error=\"%s\"", out->run_id, error);
	memset(&out->changes, 0, sizeof(out->changes));
	record_failure(c, out->run_id, mode, error, out);
	if (rc == TSR_OK)
		rc = TSR_INTERNAL;
out:
	out->ms = mono_ms() - t0;
	if (c && locked && PQstatus(c->pg) == CONNECTION_OK) {
		rollback(c);
		tsr_rc ignored;
		PGresult *u = db_exec(c, &S_UNLOCK, 0, NULL, &ignored);
		PQclear(u);
	}
	if (c)
		db_release(o->pool, c);
	gh_client_free(gh);
	for (size_t i = 0; orgs && i < norgs; i++)
		org_free(&orgs[i]);
	free(orgs);
	return rc;
}

/* ---------- queue turns ---------- */

static struct org_data *org_for(struct org_data *v, size_t n, const char *org)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i].org, org) == 0)
			return &v[i];
	return NULL;
}

/* Re-read one repository: attributes, direct collaborators, team grants. */
static tsr_rc queue_repo(struct gh_client *gh, const struct config *cfg, struct org_data *d,
			 const struct gh_queue_item *q)
{
	char path[512];
	if (!gh_name_ok(q->ref))
		return TSR_OK; /* nothing to address it by; the next full run sees it */
	json_t *repo = NULL;
	tsr_rc rc = path_of(path, sizeof(path), "/repos/%s/%s", d->org, q->ref);
	if (rc == TSR_OK)
		rc = gh_get(gh, d->org, path, ex_repo, &repo);
	if (rc == TSR_NOT_FOUND) {
		d->touched = true;
		return q->ref_id > 0 ? vec_push(&d->gone, &q->ref_id) : TSR_OK;
	}
	if (rc != TSR_OK)
		return rc;
	rc = add_repo(d, &cfg->github.topic_classifications, repo);
	json_decref(repo);
	if (rc != TSR_OK)
		return rc;
	const struct rp_repo *r = &VEC_AT(d->repos, struct rp_repo, d->repos.n - 1);
	if ((rc = fetch_collabs(gh, d, r->id, r->name)) != TSR_OK)
		return rc;
	d->cur_id = r->id;
	rc = path_of(path, sizeof(path), "/repos/%s/%s/teams", d->org, r->name);
	if (rc == TSR_OK)
		rc = gh_list(gh, d->org, path, ex_repo_team, on_repo_team, d);
	if (rc == TSR_OK)
		rc = vec_push(&d->gr_scope, &r->id);
	d->touched = true;
	return rc;
}

/* Re-read the team list, then the team and its ancestors (their lists include it). */
static tsr_rc queue_team(struct gh_client *gh, struct org_data *d, const struct gh_queue_item *q)
{
	tsr_rc rc = TSR_OK;
	if (!d->has_teams)
		rc = fetch_teams(gh, d);
	int64_t id = q->ref_id;
	for (int depth = 0; rc == TSR_OK && id > 0 && depth < 64; depth++) {
		const struct rp_team *t = NULL;
		for (size_t i = 0; i < d->teams.n && !t; i++)
			if (VEC_AT(d->teams, struct rp_team, i).id == id)
				t = &VEC_AT(d->teams, struct rp_team, i);
		if (!t)
			break; /* deleted: storing the team list drops it */
		bool seen = false;
		for (size_t i = 0; i < d->tm_scope.n && !seen; i++)
			seen = VEC_AT(d->tm_scope, int64_t, i) == id;
		struct rp_team copy = *t;
		if (!seen)
			rc = fetch_team(gh, d, &copy);
		id = copy.parent_id;
	}
	d->touched = true;
	return rc;
}

tsr_rc sync_github_queue(const struct gh_sync_opts *o, struct gh_sync_result *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->status, sizeof(out->status), "skipped");
	const struct config *cfg = o->cfg;
	int64_t t0 = mono_ms();
	struct db_conn *c = NULL;
	struct gh_client *gh = NULL;
	struct gh_queue_item *items = NULL;
	struct org_data *orgs = NULL;
	size_t norgs = 0;
	int nitems = 0;
	bool locked = false;
	char error[256] = "";
	tsr_rc rc = db_acquire(o->pool, 10000, &c);
	if (rc != TSR_OK)
		return rc;
	PGresult *r = db_exec(c, &S_LOCK_TRY, 0, NULL, &rc);
	locked = r && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!locked)
		goto out; /* a run holds it; the queue waits for the next turn */
	if ((rc = db_gh_queue_peek(c, QUEUE_BATCH, &items, &nitems)) != TSR_OK || nitems == 0)
		goto out;
	out->queue_items = nitems;
	char by[80];
	snprintf(by, sizeof(by), "webhook:%s", items[0].event[0] ? items[0].event : "queue");
	if ((rc = db_gh_run_begin(c, "incremental", by, NULL, true, &out->run_id)) != TSR_OK)
		goto out;
	snprintf(out->status, sizeof(out->status), "failed");
	orgs = calloc(cfg->github.orgs.n + 1, sizeof(*orgs));
	if (!orgs) {
		rc = TSR_INTERNAL;
		goto out;
	}
	if ((rc = sync_github_client(cfg, true, o->cancel, &gh)) != TSR_OK) {
		snprintf(error, sizeof(error), "no usable GitHub credential (see the log)");
		goto fail;
	}
	int64_t *done = calloc((size_t)nitems, sizeof(*done));
	size_t ndone = 0;
	if (!done) {
		rc = TSR_INTERNAL;
		goto fail;
	}
	for (int i = 0; i < nitems && rc == TSR_OK; i++) {
		struct gh_queue_item *q = &items[i];
		done[ndone++] = q->id;
		struct org_data *d = org_for(orgs, norgs, q->org);
		bool configured = false;
		for (size_t k = 0; k < cfg->github.orgs.n; k++)
			configured = configured || strcasecmp(cfg->github.orgs.v[k], q->org) == 0;
		if (!configured || !gh_name_ok(q->org))
			continue; /* an org no longer synced */
		if (!d) {
			d = &orgs[norgs++];
			org_init(d, q->org);
			char sub[300];
			snprintf(sub, sizeof(sub), "/orgs/%s", q->org);
			if ((rc = load_etags(c, gh, cfg, sub)) != TSR_OK)
				break;
			snprintf(sub, sizeof(sub), "/repos/%s/", q->org);
			if ((rc = load_etags(c, gh, cfg, sub)) != TSR_OK)
				break;
			/* the org's own row: its login as GitHub spells it and its base permission */
			if ((rc = fetch_info(gh, d)) != TSR_OK) {
				snprintf(error, sizeof(error), "re-reading organisation %s: %s", q->org, status_name(rc));
				break;
			}
		}
		if (strcmp(q->kind, "repo") == 0) {
			rc = queue_repo(gh, cfg, d, q);
		} else if (strcmp(q->kind, "team") == 0) {
			rc = queue_team(gh, d, q);
		} else if (strcmp(q->kind, "members") == 0) {
			if (!d->has_members)
				rc = fetch_members(gh, d);
			d->touched = true;
		} else if (strcmp(q->kind, "org") == 0) {
			d->touched = true; /* the org's row was re-read above */
		}
		if (rc != TSR_OK && !error[0])
			snprintf(error, sizeof(error), "re-reading %s %s of %s: %s", q->kind, q->ref, q->org,
				 status_name(rc));
	}
	out->api = *gh_client_stats(gh);
	out->fetch_ms = mono_ms() - t0;
	if (rc != TSR_OK) {
		free(done);
		goto fail;
	}
	if ((rc = db_simple(c, "BEGIN")) != TSR_OK || (rc = db_rp_lock(c)) != TSR_OK) {
		free(done);
		goto dberr;
	}
	for (size_t i = 0; i < norgs && rc == TSR_OK; i++) {
		if (!orgs[i].touched)
			continue;
		tally(out, &orgs[i]);
		out->orgs++;
		rc = store_org(c, &orgs[i], &out->counts);
		if (rc == TSR_OK)
			rc = db_rp_recompute(c, orgs[i].login, NULL, 0, NULL, 0, out->run_id, ACTOR, &out->changes);
	}
	if (rc == TSR_OK)
		rc = db_gh_queue_done(c, done, ndone);
	free(done);
	if (rc == TSR_OK)
		rc = save_etags(c, gh);
	out->api = *gh_client_stats(gh);
	out->ms = mono_ms() - t0;
	if (rc == TSR_OK)
		rc = finish_ok(c, out->run_id, "queue", out);
	if (rc == TSR_OK)
		rc = db_simple(c, "COMMIT");
	if (rc != TSR_OK)
		goto dberr;
	snprintf(out->status, sizeof(out->status), "ok");
	log_info("github_queue_finished", "run=%" PRId64 " items=%d ms=%lld calls=%ld not_modified=%ld granted=%d "
		 "removed=%d revoked=%d", out->run_id, nitems, (long long)out->ms, out->api.calls,
		 out->api.not_modified, out->changes.granted, out->changes.removed, out->changes.revoked);
	goto out;
dberr:
	snprintf(error, sizeof(error), "writing to PostgreSQL: %s", status_name(rc));
fail:
	if (!error[0])
		snprintf(error, sizeof(error), "%s", status_name(rc));
	log_error("github_queue_failed", "run=%" PRId64 " error=\"%s\"", out->run_id, error);
	memset(&out->changes, 0, sizeof(out->changes));
	record_failure(c, out->run_id, "queue", error, out);
	if (rc == TSR_OK)
		rc = TSR_INTERNAL;
out:
	out->ms = mono_ms() - t0;
	if (locked && PQstatus(c->pg) == CONNECTION_OK) {
		rollback(c);
		tsr_rc ignored;
		PGresult *u = db_exec(c, &S_UNLOCK, 0, NULL, &ignored);
		PQclear(u);
	}
	db_release(o->pool, c);
	gh_client_free(gh);
	for (size_t i = 0; i < norgs; i++)
		org_free(&orgs[i]);
	free(orgs);
	free(items);
	return rc;
}
