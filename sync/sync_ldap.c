/*
 * sync_ldap.c — one LDAP sync run: decide, then write in one transaction.
 * See sync_ldap.h for the contract.
 *
 * Order of a run:
 *   1. sync_runs row 'running' (own statement), stale 'running' rows aborted;
 *   2. the directory read into memory (ldap_read.c) — no transaction open;
 *   3. BEGIN; Postgres's view loaded (dir_known_users/groups); for an
 *      incremental run, entries present but unknown are fetched by id;
 *   4. the safety valves: users that would be deactivated, LDAP groups that
 *      would be removed, each against [ldap] max_deactivate_ratio;
 *   5. users inserted (bulk), re-attached, updated; source state (disabled,
 *      removed) recorded; deactivations through db_offboard(), re-enabled
 *      users reinstated with db_reinstate() when LDAP had deactivated them;
 *   6. groups inserted, updated, removed; their member references replaced;
 *   7. memberships re-resolved in SQL when anything they depend on changed;
 *      role grants recomputed (db_roles_sync) after membership changes;
 *   8. the high-water mark and mapping fingerprint stored (only if changed),
 *      one summary audit event when anything changed; COMMIT;
 *   9. the run row finished with counts (also for failed runs).
 * A no-change run therefore writes only its sync_runs row.
 *
 * Audit: one event per change (user updated/linked/removed/disabled/
 * enabled, group added/updated/removed, a group's membership delta), except
 * additions, which are listed ADDED_PER_EVENT users to an event: a first
 * sync of 100k users would otherwise spend most of its time appending 100k
 * chain records one by one. Deactivations carry db_offboard()'s receipt.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "sync_ldap.h"
#include "ldap.h"
#include "ldap_read.h"
#include "strmap.h"
#include "../db/audit.h"
#include "../db/directory.h"
#include "../db/offboard.h"
#include "../db/roles.h"
#include "../lib/buf.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

#define ACTOR "ldap-sync"
#define ADDED_PER_EVENT 100
#define MEMBERS_PER_EVENT 500
#define EVENT_FLUSH 500
#define MAX_CONFLICTS 100
#define FULL_EVERY_SECS 86400 /* scheduled runs go full when the last full run is older */
#define GROUP_VALVE_MIN 10     /* see safety_valve() */

struct run {
	struct db_pool *pool;
	const struct config *cfg;
	const struct sync_ldap_opts *o;
	int64_t run_id;
	bool full;
	char fingerprint[65];
	struct ldap_view view;
	struct ldap_session *ls;
	struct dir_known_user *ku;
	size_t n_ku;
	struct strmap ku_index;
	bool *ku_written;       /* written (attached/updated) this run */
	bool *ku_attached;      /* re-attached this run (mirrored now) */
	struct dir_known_group *kg;
	size_t n_kg;
	struct strmap kg_index;
	struct sync_counts k;
	int reinstated, linked;
	size_t changes;         /* audit-worthy changes made */
	json_t *conflicts;      /* [{dn, reason}] */
	size_t n_conflicts;
	json_t *valve;          /* set when the safety valve tripped */
	bool memberships_dirty, roles_dirty;
	/* audit events waiting for a flush; their strings are owned here */
	struct audit_event *ev;
	size_t n_ev, cap_ev;
	char **owned;
	size_t n_owned, cap_owned;
	json_t *added;          /* pending users for the next ldap.users.added event */
	json_t *new_groups;     /* group id → {target, detail}: ldap.group.added, written with its first members */
	int64_t added_first_id;
	struct timespec t0, last_progress;
	double t_read, t_load, t_users, t_groups, t_members, t_commit; /* seconds spent, for the run's detail */
	char err[512];
};

/* ---------- bookkeeping ---------- */

static double elapsed(const struct run *r)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - r->t0.tv_sec) + (double)(t.tv_nsec - r->t0.tv_nsec) / 1e9;
}

/* Post progress to the run row at most once a second, on a connection of its own. */
static void progress(void *arg, const char *phase, size_t n)
{
	struct run *r = arg;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (r->last_progress.tv_sec && now.tv_sec - r->last_progress.tv_sec < 1)
		return;
	r->last_progress = now;
	struct db_conn *c;
	if (!r->run_id || db_acquire(r->pool, 200, &c) != TSR_OK)
		return;
	json_t *j = json_pack("{s:s,s:I,s:f}", "phase", phase, "entries", (json_int_t)n, "elapsed_s", elapsed(r));
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (s && db_sync_run_progress(c, r->run_id, s) != TSR_OK)
		log_debug("ldap_sync_progress_lost", "run=%" PRId64, r->run_id);
	free(s);
	json_decref(j);
	db_release(r->pool, c);
}

static void conflict(struct run *r, const char *dn, const char *fmt, ...) TSR_PRINTF(3, 4);
static void conflict(struct run *r, const char *dn, const char *fmt, ...)
{
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	r->n_conflicts++;
	if (json_array_size(r->conflicts) < MAX_CONFLICTS)
		json_array_append_new(r->conflicts, json_pack("{s:s,s:s}", "dn", dn ? dn : "", "reason", why));
	if (r->n_conflicts <= MAX_CONFLICTS)
		log_warn("ldap_sync_conflict", "dn=\"%s\" reason=\"%s\"", dn ? dn : "", why);
}

static char *keep(struct run *r, char *s)
{
	if (!s)
		return NULL;
	if (r->n_owned == r->cap_owned) {
		size_t c = r->cap_owned ? r->cap_owned * 2 : 256;
		char **v = realloc(r->owned, c * sizeof(*v));
		if (!v) {
			free(s);
			return NULL;
		}
		r->owned = v;
		r->cap_owned = c;
	}
	r->owned[r->n_owned++] = s;
	return s;
}

/* Queue an audit event; detail is stolen. */
static tsr_rc ev_add(struct run *r, const char *action, int64_t user_id, const char *target, json_t *detail)
{
	/* target may point into detail: copy it first */
	char *t = target ? keep(r, strdup(target)) : NULL;
	char *d = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	bool bad = (target && !t) || (detail && !keep(r, d));
	json_decref(detail);
	if (bad)
		return TSR_INTERNAL;
	if (r->n_ev == r->cap_ev) {
		size_t c = r->cap_ev ? r->cap_ev * 2 : 64;
		struct audit_event *v = realloc(r->ev, c * sizeof(*v));
		if (!v)
			return TSR_INTERNAL;
		r->ev = v;
		r->cap_ev = c;
	}
	struct audit_event *e = &r->ev[r->n_ev];
	tsr_rc rc = audit_event_init(e, ACTOR, action, "success");
	if (rc != TSR_OK)
		return rc;
	e->user_id = user_id;
	e->target = t;
	e->detail = d;
	r->n_ev++;
	r->changes++;
	return TSR_OK;
}

static tsr_rc ev_flush(struct run *r, struct db_conn *c)
{
	tsr_rc rc = db_audit_append(c, r->ev, (int)r->n_ev);
	r->n_ev = 0;
	for (size_t i = 0; i < r->n_owned; i++)
		free(r->owned[i]);
	r->n_owned = 0;
	return rc;
}

static tsr_rc ev_maybe_flush(struct run *r, struct db_conn *c)
{
	return r->n_ev >= EVENT_FLUSH ? ev_flush(r, c) : TSR_OK;
}

static tsr_rc added_flush(struct run *r)
{
	size_t n = json_array_size(r->added);
	if (!n)
		return TSR_OK;
	json_t *users = r->added;
	r->added = json_array();
	if (!r->added) {
		json_decref(users);
		return TSR_INTERNAL;
	}
	char target[64];
	const char *t = target;
	if (n == 1)
		t = json_string_value(json_object_get(json_array_get(users, 0), "user_name"));
	else
		snprintf(target, sizeof(target), "%zu users", n);
	return ev_add(r, "ldap.users.added", n == 1 ? r->added_first_id : 0, t, json_pack("{s:o}", "users", users));
}

static tsr_rc added_note(struct run *r, int64_t id, const struct ldap_user_entry *u, bool disabled)
{
	if (json_array_size(r->added) == 0)
		r->added_first_id = id;
	if (json_array_append_new(r->added, json_pack("{s:I,s:s,s:s,s:s,s:b}", "user_id", (json_int_t)id, "user_name",
						      u->login, "dn", u->dn, "external_id", u->ext_id, "active",
						      !disabled)) != 0)
		return TSR_INTERNAL;
	return json_array_size(r->added) >= ADDED_PER_EVENT ? added_flush(r) : TSR_OK;
}

/* ---------- the mapping ---------- */

static void fingerprint(const struct config *cfg, char out[65])
{
	const char *f[] = { cfg->ldap.uri,	      cfg->ldap.user_base,   cfg->ldap.user_filter,
			    cfg->ldap.group_base,     cfg->ldap.group_filter, cfg->ldap.login_attr,
			    cfg->ldap.id_attr,	      cfg->ldap.mail_attr,   cfg->ldap.name_attr,
			    cfg->ldap.repo_login_attr, cfg->ldap.disabled_filter, cfg->ldap.member_of ? "mo" : "-" };
	struct buf b;
	buf_init(&b, 1u << 20);
	tsr_rc rc = TSR_OK;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]) && rc == TSR_OK; i++)
		rc = buf_printf(&b, "%zu:%s|", f[i] ? strlen(f[i]) : 0, f[i] ? f[i] : "");
	uint8_t h[32];
	crypto_sha256(b.data ? b.data : "", b.len, h);
	crypto_hex(h, 32, out);
	buf_free(&b);
}

static tsr_rc check_config(const struct config *cfg, char *err, size_t errlen)
{
	if (!cfg->ldap.uri) {
		snprintf(err, errlen, "[ldap] uri is not configured");
		return TSR_INVALID;
	}
	if (!cfg->ldap.user_base) {
		snprintf(err, errlen, "[ldap] user_base is not configured");
		return TSR_INVALID;
	}
	const char *names[] = { "login_attr", "id_attr", "mail_attr", "name_attr", "repo_login_attr" };
	const char *vals[] = { cfg->ldap.login_attr, cfg->ldap.id_attr, cfg->ldap.mail_attr, cfg->ldap.name_attr,
			       cfg->ldap.repo_login_attr };
	for (int i = 0; i < 5; i++) {
		if ((i < 2 && !vals[i]) || (vals[i] && !ldap_attr_valid(vals[i]))) {
			snprintf(err, errlen, "[ldap] %s is not an attribute name: '%s'", names[i],
				 vals[i] ? vals[i] : "");
			return TSR_INVALID;
		}
	}
	return TSR_OK;
}

static void to_dir_user(const struct run *r, const struct ldap_user_entry *u, bool disabled, struct dir_user *d)
{
	memset(d, 0, sizeof(*d));
	d->external_id = u->ext_id;
	d->dn = u->dn;
	d->dn_key = u->dn_key;
	d->login = u->login;
	d->display_name = u->display_name;
	d->given_name = u->given_name;
	d->family_name = u->family_name;
	d->repo_login = u->repo_login;
	d->set_repo_login = r->cfg->ldap.repo_login_attr != NULL;
	d->mails = (const char *const *)u->mails;
	d->n_mails = u->n_mails;
	d->disabled = disabled;
	memcpy(d->digest, u->digest, 32);
	d->track_memberof = u->has_memberof;
	d->memberof = (const char *const *)u->memberof;
	d->n_memberof = u->n_memberof;
	memcpy(d->memberof_digest, u->memberof_digest, 32);
}

static bool is_disabled(const struct run *r, const char *ext_id)
{
	return strmap_get(&r->view.disabled_index, ext_id, NULL);
}

/* ---------- users ---------- */

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* {"field": {"old": .., "new": ..}} for what differs between now and u. */
static json_t *user_changes(const struct run *r, const struct dir_user_now *now, const struct ldap_user_entry *u,
			    bool with_repo)
{
	json_t *ch = json_object();
	const char *names[] = { "user_name", "display_name", "given_name", "family_name", "dn" };
	const char *olds[] = { now->user_name, now->display_name, now->given_name, now->family_name, now->dn };
	const char *news[] = { u->login, u->display_name, u->given_name, u->family_name, u->dn };
	for (int i = 0; i < 5; i++)
		if (!str_eq(olds[i], news[i]))
			json_object_set_new(ch, names[i], json_pack("{s:s?,s:s?}", "old", olds[i], "new", news[i]));
	if (with_repo && r->cfg->ldap.repo_login_attr && !str_eq(now->repo_login, u->repo_login))
		json_object_set_new(ch, "repo_login",
				    json_pack("{s:s?,s:s?}", "old", now->repo_login, "new", u->repo_login));
	bool same = now->n_mails == u->n_mails;
	for (size_t i = 0; same && i < u->n_mails; i++)
		same = strcmp(now->mails[i], u->mails[i]) == 0;
	if (!same) {
		json_t *o = json_array(), *n = json_array();
		for (size_t i = 0; i < now->n_mails; i++)
			json_array_append_new(o, json_string(now->mails[i]));
		for (size_t i = 0; i < u->n_mails; i++)
			json_array_append_new(n, json_string(u->mails[i]));
		json_object_set_new(ch, "mail", json_pack("{s:o,s:o}", "old", o, "new", n));
	}
	return ch;
}

/*
 * Write an existing user (update, re-attach or link). A repo login taken by
 * someone else is left out (and the digest spoiled so the next run tries
 * again); a user name taken by someone else skips the entry.
 * *written says whether it was written.
 */
static tsr_rc write_user(struct run *r, struct db_conn *c, int64_t id, const struct ldap_user_entry *u, bool attach,
			 const char *why, bool *written)
{
	*written = false;
	struct dir_user_now now;
	tsr_rc rc = dir_user_get(c, id, &now);
	if (rc != TSR_OK)
		return rc;
	bool dis = is_disabled(r, u->ext_id);
	struct dir_user d;
	to_dir_user(r, u, dis, &d);
	rc = dir_user_write(c, id, &d, &now, attach);
	if (rc == TSR_CONFLICT && d.set_repo_login) {
		conflict(r, u->dn, "repo login '%s' already belongs to another user; left unset",
			 u->repo_login ? u->repo_login : "");
		d.set_repo_login = false;
		memset(d.digest, 0, sizeof(d.digest)); /* try again next run */
		rc = dir_user_write(c, id, &d, &now, attach);
	}
	if (rc == TSR_CONFLICT) {
		conflict(r, u->dn, "user name '%s' already belongs to another user", u->login);
		dir_user_now_clear(&now);
		return TSR_OK;
	}
	if (rc != TSR_OK) {
		dir_user_now_clear(&now);
		return rc;
	}
	*written = true;
	json_t *ch = user_changes(r, &now, u, d.set_repo_login); /* only what was written */
	bool visible = json_object_size(ch) > 0 || attach;
	if (!str_eq(now.dn, u->dn) || !str_eq(now.user_name, u->login) || attach)
		r->memberships_dirty = true;
	if (visible) {
		r->k.users_updated++;
		rc = ev_add(r, why, id, u->login,
			    json_pack("{s:s,s:s,s:o}", "dn", u->dn, "external_id", u->ext_id, "changes", ch));
	} else {
		json_decref(ch);
	}
	dir_user_now_clear(&now);
	return rc;
}

/* A new entry whose user name or repo login is taken: link, insert without repo login, or report. */
static tsr_rc resolve_new(struct run *r, struct db_conn *c, const struct ldap_user_entry *u)
{
	struct dir_user_now now;
	tsr_rc rc = dir_user_by_name(c, u->login, &now);
	bool dis = is_disabled(r, u->ext_id);
	if (rc == TSR_OK) {
		int64_t id = now.id;
		bool linkable = !now.has_ldap && !now.has_local && !now.deleted, was_active = now.active;
		if (!linkable)
			conflict(r, u->dn, "user name '%s' already belongs to %s", u->login,
				 now.has_local ? "a local (break-glass) account" : "another directory entry");
		dir_user_now_clear(&now);
		if (!linkable)
			return TSR_OK;
		bool written;
		if ((rc = write_user(r, c, id, u, true, "ldap.user.linked", &written)) != TSR_OK || !written)
			return rc;
		r->linked++;
		r->memberships_dirty = true;
		if (dis && was_active) {
			if ((rc = ev_flush(r, c)) != TSR_OK)
				return rc;
			struct offboard_result res;
			rc = db_offboard(c, id, OFFBOARD_LDAP, ACTOR, "disabled in the directory", &res);
			if (rc == TSR_OK && res.changed)
				r->k.users_deactivated++;
		}
		return rc;
	}
	if (rc != TSR_NOT_FOUND)
		return rc;
	/* the user name is free: the repo login is what collides */
	struct dir_user d;
	to_dir_user(r, u, dis, &d);
	d.repo_login = NULL;
	memset(d.digest, 0, sizeof(d.digest)); /* try again next run */
	const struct dir_user *one[] = { &d };
	int64_t id = 0;
	if ((rc = dir_users_insert(c, one, 1, &id)) != TSR_OK)
		return rc;
	if (!id) {
		conflict(r, u->dn, "user name '%s' or repo login '%s' is taken", u->login,
			 u->repo_login ? u->repo_login : "");
		return TSR_OK;
	}
	conflict(r, u->dn, "repo login '%s' already belongs to another user; left unset",
		 u->repo_login ? u->repo_login : "");
	r->k.users_added++;
	r->memberships_dirty = true;
	return added_note(r, id, u, dis);
}

static tsr_rc sync_users(struct run *r, struct db_conn *c)
{
	struct ldap_view *v = &r->view;
	const struct ldap_user_entry **fresh = calloc(v->n_users + 1, sizeof(*fresh));
	struct dir_user *dv = calloc(v->n_users + 1, sizeof(*dv));
	const struct dir_user **dp = calloc(v->n_users + 1, sizeof(*dp));
	int64_t *ids = calloc(v->n_users + 1, sizeof(*ids));
	struct strmap seen_login = { 0 };
	tsr_rc rc = TSR_INTERNAL;
	if (!fresh || !dv || !dp || !ids || strmap_init(&seen_login, v->n_users) != TSR_OK)
		goto out;
	size_t n_fresh = 0;
	rc = TSR_OK;
	/* 1. classify what was read */
	for (size_t i = 0; i < v->n_users && rc == TSR_OK; i++) {
		const struct ldap_user_entry *u = &v->users[i];
		size_t ki;
		if (strmap_get(&seen_login, u->login, NULL)) {
			conflict(r, u->dn, "another entry has the same %s '%s'", r->cfg->ldap.login_attr, u->login);
			continue;
		}
		if (strmap_put(&seen_login, u->login, i) != TSR_OK) {
			rc = TSR_INTERNAL;
			break;
		}
		if (!strmap_get(&r->ku_index, u->ext_id, &ki)) {
			to_dir_user(r, u, is_disabled(r, u->ext_id), &dv[n_fresh]);
			dp[n_fresh] = &dv[n_fresh];
			fresh[n_fresh++] = u;
			continue;
		}
		struct dir_known_user *k = &r->ku[ki];
		if (k->deleted) {
			conflict(r, u->dn, "user '%s' was deleted in tessera (SCIM); not re-created", k->user_name);
			continue;
		}
		bool written = false;
		if (!k->mirrored) {
			rc = write_user(r, c, k->user_id, u, true, "ldap.user.returned", &written);
			r->ku_attached[ki] = written;
		} else if (!k->has_digest || memcmp(k->digest, u->digest, 32) != 0) {
			rc = write_user(r, c, k->user_id, u, false, "ldap.user.updated", &written);
		}
		r->ku_written[ki] = written;
		if (rc == TSR_OK)
			rc = ev_maybe_flush(r, c);
		if (i % 1000 == 999)
			progress(r, "writing users", i + 1);
	}
	if (rc != TSR_OK)
		goto out;
	/* 2. new entries, in bulk */
	if (n_fresh) {
		progress(r, "adding users", n_fresh);
		if ((rc = dir_users_insert(c, dp, n_fresh, ids)) != TSR_OK)
			goto out;
		for (size_t i = 0; i < n_fresh && rc == TSR_OK; i++) {
			if (ids[i]) {
				r->k.users_added++;
				r->memberships_dirty = true;
				rc = added_note(r, ids[i], fresh[i], dv[i].disabled);
			} else {
				rc = resolve_new(r, c, fresh[i]);
			}
			if (rc == TSR_OK)
				rc = ev_maybe_flush(r, c);
		}
		if (rc == TSR_OK)
			rc = added_flush(r);
		if (rc != TSR_OK)
			goto out;
	}
	/* 3. every user the database knew: gone, disabled, enabled, memberOf */
	for (size_t ki = 0; ki < r->n_ku && rc == TSR_OK; ki++) {
		struct dir_known_user *k = &r->ku[ki];
		if (k->deleted || (!k->mirrored && !r->ku_attached[ki]))
			continue;
		if (!ldap_view_user_present(&r->view, k->external_id)) {
			if ((rc = dir_user_detach(c, k->user_id)) != TSR_OK)
				break;
			r->memberships_dirty = true;
			if ((rc = ev_add(r, "ldap.user.removed", k->user_id, k->user_name,
					 json_pack("{s:s}", "external_id", k->external_id))) != TSR_OK ||
			    (rc = ev_flush(r, c)) != TSR_OK)
				break;
			if (k->active) {
				struct offboard_result res;
				rc = db_offboard(c, k->user_id, OFFBOARD_LDAP, ACTOR, "removed from the directory", &res);
				if (rc == TSR_OK && res.changed)
					r->k.users_deactivated++;
			}
			continue;
		}
		bool dis = is_disabled(r, k->external_id);
		/* a returning entry was written with its state: report it when disabled */
		bool report = r->ku_attached[ki] ? dis : dis != k->disabled;
		if (report) {
			if (!r->ku_written[ki] && (rc = dir_user_set_disabled(c, k->user_id, dis)) != TSR_OK)
				break;
			if ((rc = ev_add(r, dis ? "ldap.user.disabled" : "ldap.user.enabled", k->user_id, k->user_name,
					 json_pack("{s:s}", "external_id", k->external_id))) != TSR_OK)
				break;
		}
		if (dis && k->active) {
			if ((rc = ev_flush(r, c)) != TSR_OK)
				break;
			struct offboard_result res;
			rc = db_offboard(c, k->user_id, OFFBOARD_LDAP, ACTOR, "disabled in the directory", &res);
			if (rc == TSR_OK && res.changed)
				r->k.users_deactivated++;
		} else if (!dis && !k->active && k->deactivated_by_ldap && !k->other_inactive) {
			if ((rc = ev_flush(r, c)) != TSR_OK)
				break;
			bool changed = false;
			rc = db_reinstate(c, k->user_id, ACTOR, "enabled in the directory again", &changed);
			if (rc == TSR_OK && changed) {
				r->reinstated++;
				r->changes++;
				r->roles_dirty = true;
			}
		}
		if (rc != TSR_OK)
			break;
		/* memberOf read for everyone on incremental runs: apply what changed */
		const struct ldap_user_entry *mo = ldap_view_memberof(&r->view, k->external_id);
		if (mo && !r->ku_written[ki] &&
		    (!k->has_memberof || memcmp(k->memberof_digest, mo->memberof_digest, 32) != 0)) {
			struct dir_user d;
			memset(&d, 0, sizeof(d));
			d.track_memberof = true;
			d.memberof = (const char *const *)mo->memberof;
			d.n_memberof = mo->n_memberof;
			memcpy(d.memberof_digest, mo->memberof_digest, 32);
			if ((rc = dir_user_memberof(c, k->user_id, &d)) != TSR_OK)
				break;
			r->memberships_dirty = true;
		}
		if (rc == TSR_OK)
			rc = ev_maybe_flush(r, c);
	}
out:
	strmap_free(&seen_login);
	free(fresh);
	free(dv);
	free(dp);
	free(ids);
	return rc;
}

/* ---------- groups ---------- */

static void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static tsr_rc sync_groups(struct run *r, struct db_conn *c)
{
	struct ldap_view *v = &r->view;
	const struct dir_group **fresh = calloc(v->n_groups + 1, sizeof(*fresh));
	const struct ldap_group_entry **fe = calloc(v->n_groups + 1, sizeof(*fe));
	const struct dir_group **refs = calloc(v->n_groups + 1, sizeof(*refs));
	int64_t *ref_ids = calloc(v->n_groups + 1, sizeof(*ref_ids));
	int64_t *ids = calloc(v->n_groups + 1, sizeof(*ids));
	struct dir_group *rg = calloc(v->n_groups + 1, sizeof(*rg));
	struct strmap names = { 0 };
	char **lnames = calloc(v->n_groups + r->n_kg + 1, sizeof(*lnames));
	size_t n_lnames = 0, n_fresh = 0, n_refs = 0;
	unsigned char *name_count = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if (!fresh || !fe || !refs || !ref_ids || !ids || !rg || !lnames ||
	    strmap_init(&names, v->n_groups + r->n_kg) != TSR_OK)
		goto out;
	name_count = calloc(v->n_groups + r->n_kg + 1, 1);
	if (!name_count)
		goto out;
	/*
	 * Names must be unique per source ([roles] maps names). Count the
	 * (ASCII-folded) names of the groups as they will be: read ones with
	 * their new names, the others as stored; a name held twice is reported
	 * for every group wanting it rather than given to one of them.
	 */
	for (size_t i = 0; i < v->n_groups + r->n_kg; i++) {
		const char *nm;
		if (i < v->n_groups) {
			nm = v->groups[i].name;
		} else {
			const struct dir_known_group *k = &r->kg[i - v->n_groups];
			if (strmap_get(&v->group_index, k->external_id, NULL) ||
			    !ldap_view_group_present(v, k->external_id))
				continue;
			nm = k->name;
		}
		char *l = strdup(nm);
		if (!l)
			goto out;
		ascii_lower(l);
		lnames[n_lnames] = l;
		size_t at;
		if (strmap_get(&names, l, &at)) {
			if (name_count[at] < 255)
				name_count[at]++;
		} else if (strmap_put(&names, l, n_lnames) != TSR_OK) {
			goto out;
		} else {
			name_count[n_lnames] = 1;
		}
		n_lnames++;
	}
	rc = TSR_OK;
	for (size_t i = 0; i < v->n_groups && rc == TSR_OK; i++) {
		const struct ldap_group_entry *g = &v->groups[i];
		char *l = strdup(g->name);
		size_t at = 0;
		if (!l) {
			rc = TSR_INTERNAL;
			break;
		}
		ascii_lower(l);
		bool dup = strmap_get(&names, l, &at) && name_count[at] > 1;
		free(l);
		size_t ki;
		bool known = strmap_get(&r->kg_index, g->ext_id, &ki);
		if (dup) {
			conflict(r, g->dn, "another LDAP group is also named '%s'; [roles] could not tell them apart",
				 g->name);
			continue;
		}
		struct dir_group *d = &rg[i];
		d->external_id = g->ext_id;
		d->dn = g->dn;
		d->dn_key = g->dn_key;
		d->name = g->name;
		d->dn_refs = (const char *const *)g->dn_refs;
		d->n_dn_refs = g->n_dn_refs;
		d->uid_refs = (const char *const *)g->uid_refs;
		d->n_uid_refs = g->n_uid_refs;
		memcpy(d->digest, g->digest, 32);
		if (!known) {
			fresh[n_fresh] = d;
			fe[n_fresh++] = g;
			continue;
		}
		const struct dir_known_group *k = &r->kg[ki];
		if (memcmp(k->digest, g->digest, 32) == 0)
			continue;
		rc = dir_group_write(c, k->group_id, d);
		if (rc == TSR_CONFLICT) {
			conflict(r, g->dn, "group name '%s' is taken", g->name);
			rc = TSR_OK;
			continue;
		}
		if (rc != TSR_OK)
			break;
		refs[n_refs] = d;
		ref_ids[n_refs++] = k->group_id;
		r->memberships_dirty = true;
		r->k.groups_updated++;
		json_t *ch = json_object();
		if (strcmp(k->name, g->name) != 0)
			json_object_set_new(ch, "name", json_pack("{s:s,s:s}", "old", k->name, "new", g->name));
		if (!str_eq(k->dn, g->dn))
			json_object_set_new(ch, "dn", json_pack("{s:s?,s:s}", "old", k->dn, "new", g->dn));
		rc = ev_add(r, "ldap.group.updated", 0, g->name,
			    json_pack("{s:s,s:s,s:o,s:I,s:I}", "dn", g->dn, "external_id", g->ext_id, "changes", ch,
				      "member_refs", (json_int_t)g->n_dn_refs, "member_uids",
				      (json_int_t)g->n_uid_refs));
	}
	if (rc != TSR_OK)
		goto out;
	if (n_fresh) {
		progress(r, "adding groups", n_fresh);
		if ((rc = dir_groups_insert(c, fresh, n_fresh, ids)) != TSR_OK)
			goto out;
		for (size_t i = 0; i < n_fresh && rc == TSR_OK; i++) {
			if (!ids[i]) {
				conflict(r, fe[i]->dn, "group name '%s' is taken", fe[i]->name);
				continue;
			}
			refs[n_refs] = fresh[i];
			ref_ids[n_refs++] = ids[i];
			r->k.groups_added++;
			r->memberships_dirty = true;
			/* the event waits for the group's first members (sync_memberships) */
			char key[24];
			snprintf(key, sizeof(key), "%" PRId64, ids[i]);
			if (json_object_set_new(r->new_groups, key,
						json_pack("{s:s,s:{s:s,s:s,s:I}}", "target", fe[i]->name, "detail", "dn",
							  fe[i]->dn, "external_id", fe[i]->ext_id, "group_id",
							  (json_int_t)ids[i])) != 0)
				rc = TSR_INTERNAL;
		}
		if (rc != TSR_OK)
			goto out;
	}
	if (n_refs && (rc = dir_group_refs_replace(c, ref_ids, refs, n_refs)) != TSR_OK)
		goto out;
	for (size_t ki = 0; ki < r->n_kg && rc == TSR_OK; ki++) {
		const struct dir_known_group *k = &r->kg[ki];
		if (ldap_view_group_present(v, k->external_id))
			continue;
		if ((rc = dir_group_delete(c, k->group_id)) != TSR_OK)
			break;
		r->k.groups_removed++;
		r->memberships_dirty = true;
		r->roles_dirty = true;
		rc = ev_add(r, "ldap.group.removed", 0, k->name,
			    json_pack("{s:s?,s:s,s:I}", "dn", k->dn, "external_id", k->external_id, "group_id",
				      (json_int_t)k->group_id));
	}
out:
	if (lnames)
		for (size_t i = 0; i < n_lnames; i++)
			free(lnames[i]);
	free(lnames);
	free(name_count);
	strmap_free(&names);
	free(fresh);
	free(fe);
	free(refs);
	free(ref_ids);
	free(ids);
	free(rg);
	return rc;
}

/*
 * Re-resolve memberships; one audit event per group whose members changed
 * (chunked). A group added by this run gets its first members in its own
 * ldap.group.added event instead, written here as soon as they are known.
 */
static tsr_rc sync_memberships(struct run *r, struct db_conn *c)
{
	struct dir_member_changes mc;
	progress(r, "resolving memberships", 0);
	tsr_rc rc = dir_memberships_resolve(c, &mc);
	if (rc != TSR_OK)
		return rc;
	struct dir_member_change *ch = mc.v;
	size_t n = mc.n, i = 0;
	while (i < n && rc == TSR_OK) {
		int64_t gid = ch[i].group_id;
		json_t *added = json_array(), *removed = json_array();
		size_t listed = 0, j = i;
		for (; j < n && ch[j].group_id == gid && listed < MEMBERS_PER_EVENT; j++, listed++) {
			json_t *m = json_pack("{s:s,s:I}", ch[j].user_id ? "user" : "group", ch[j].member_name,
					      ch[j].user_id ? "user_id" : "group_id",
					      (json_int_t)(ch[j].user_id ? ch[j].user_id : ch[j].member_group_id));
			json_array_append_new(ch[j].added ? added : removed, m);
			if (ch[j].added)
				r->k.memberships_added++;
			else
				r->k.memberships_removed++;
		}
		char key[24];
		snprintf(key, sizeof(key), "%" PRId64, gid);
		json_t *fresh = json_object_get(r->new_groups, key);
		if (fresh) {
			json_t *detail = json_incref(json_object_get(fresh, "detail"));
			json_object_set_new(detail, "members", added);
			json_decref(removed);
			rc = ev_add(r, "ldap.group.added", 0, json_string_value(json_object_get(fresh, "target")), detail);
			json_object_del(r->new_groups, key);
		} else {
			rc = ev_add(r, "ldap.group.members", 0, ch[i].group_name,
				    json_pack("{s:I,s:o,s:o}", "group_id", (json_int_t)gid, "added", added, "removed",
					      removed));
		}
		if (rc == TSR_OK)
			rc = ev_maybe_flush(r, c);
		i = j;
	}
	if (n)
		r->roles_dirty = true;
	dir_member_changes_free(&mc);
	return rc;
}

/* The ldap.group.added events of this run's new groups that got no members. */
static tsr_rc new_groups_flush(struct run *r, struct db_conn *c)
{
	const char *key;
	json_t *v;
	tsr_rc rc = TSR_OK;
	json_object_foreach (r->new_groups, key, v) {
		if (rc != TSR_OK)
			break;
		rc = ev_add(r, "ldap.group.added", 0, json_string_value(json_object_get(v, "target")),
			    json_incref(json_object_get(v, "detail")));
		if (rc == TSR_OK)
			rc = ev_maybe_flush(r, c);
	}
	json_object_clear(r->new_groups);
	return rc;
}

/* ---------- the run ---------- */

/* Would this run deactivate or remove more than the configured share? Sets r->valve. */
static void safety_valve(struct run *r)
{
	double limit = r->cfg->ldap.max_deactivate_ratio;
	size_t active = 0, would = 0;
	for (size_t i = 0; i < r->n_ku; i++) {
		const struct dir_known_user *k = &r->ku[i];
		if (!k->mirrored || k->deleted || !k->active)
			continue;
		active++;
		if (!ldap_view_user_present(&r->view, k->external_id) || is_disabled(r, k->external_id))
			would++;
	}
	size_t groups = r->n_kg, gone = 0;
	if (r->view.groups_read)
		for (size_t i = 0; i < r->n_kg; i++)
			if (!ldap_view_group_present(&r->view, r->kg[i].external_id))
				gone++;
	bool users_trip = would > 0 && active > 0 && (double)would > limit * (double)active;
	/*
	 * Removing a group offboards no one, so its valve is looser: it trips
	 * when every LDAP group would go (the group base matches nothing), or
	 * when more than the share would go and that is at least GROUP_VALVE_MIN
	 * groups (deleting one of three groups is routine).
	 */
	bool groups_trip = gone > 0 && groups > 0 &&
			   (gone == groups || ((double)gone > limit * (double)groups && gone >= GROUP_VALVE_MIN));
	if (!users_trip && !groups_trip)
		return;
	r->valve = json_pack("{s:I,s:I,s:I,s:I,s:f,s:b,s:b,s:b}", "would_deactivate", (json_int_t)would,
			     "active_users", (json_int_t)active, "would_remove_groups", (json_int_t)gone, "groups",
			     (json_int_t)groups, "limit", limit, "forced", r->o->force, "user_base_missing",
			     r->view.user_base_missing, "group_base_missing", r->view.group_base_missing);
	char what[300];
	if (users_trip)
		snprintf(what, sizeof(what), "deactivate %zu of %zu active directory users (%.0f%%)", would, active,
			 100.0 * (double)would / (double)active);
	else
		snprintf(what, sizeof(what), "remove %zu of %zu directory groups (%.0f%%)", gone, groups,
			 100.0 * (double)gone / (double)groups);
	const char *base = r->view.user_base_missing ? " (the user base DN does not exist)"
			   : r->view.group_base_missing ? " (the group base DN does not exist)"
			   : (users_trip && r->view.n_users == 0 && !r->view.enumerated) ? " (the user search found no entries)"
											   : "";
	if (r->o->force) {
		log_warn("ldap_sync_valve_forced", "run=%" PRId64 " what=\"%s\"", r->run_id, what);
		return;
	}
	snprintf(r->err, sizeof(r->err),
		 "safety valve: this run would %s%s, more than max_deactivate_ratio %.0f%%; nothing was changed "
		 "(re-run with --force if this is intended)",
		 what, base, 100.0 * limit);
}

static tsr_rc load_known(struct run *r, struct db_conn *c)
{
	tsr_rc rc = dir_known_users(c, &r->ku, &r->n_ku);
	if (rc == TSR_OK)
		rc = dir_known_groups(c, &r->kg, &r->n_kg);
	if (rc != TSR_OK)
		return rc;
	r->ku_written = calloc(r->n_ku + 1, sizeof(bool));
	r->ku_attached = calloc(r->n_ku + 1, sizeof(bool));
	if (!r->ku_written || !r->ku_attached || strmap_init(&r->ku_index, r->n_ku) != TSR_OK ||
	    strmap_init(&r->kg_index, r->n_kg) != TSR_OK)
		return TSR_INTERNAL;
	for (size_t i = 0; i < r->n_ku; i++)
		if (strmap_put(&r->ku_index, r->ku[i].external_id, i) != TSR_OK)
			return TSR_INTERNAL;
	for (size_t i = 0; i < r->n_kg; i++)
		if (strmap_put(&r->kg_index, r->kg[i].external_id, i) != TSR_OK)
			return TSR_INTERNAL;
	return TSR_OK;
}

/* Incremental: read in full the entries present but not (or no longer) mirrored. */
static tsr_rc fetch_unknown(struct run *r)
{
	struct ldap_view *v = &r->view;
	if (!v->enumerated)
		return TSR_OK;
	char **ids = calloc(v->n_present + v->n_present_groups + 1, sizeof(*ids));
	if (!ids)
		return TSR_INTERNAL;
	size_t n = 0;
	for (size_t i = 0; i < v->n_present; i++) {
		const char *id = v->present[i].ext_id;
		size_t ki;
		if (strmap_get(&v->user_index, id, NULL))
			continue;
		if (strmap_get(&r->ku_index, id, &ki) && r->ku[ki].mirrored)
			continue;
		ids[n++] = (char *)(uintptr_t)id;
	}
	tsr_rc rc = TSR_OK;
	if (n) {
		progress(r, "fetching new users", n);
		rc = ldap_view_fetch(r->ls, r->cfg, v, false, ids, n, r->err, sizeof(r->err));
	}
	n = 0;
	for (size_t i = 0; rc == TSR_OK && i < v->n_present_groups; i++) {
		const char *id = v->present_groups[i];
		if (!strmap_get(&v->group_index, id, NULL) && !strmap_get(&r->kg_index, id, NULL))
			ids[n++] = (char *)(uintptr_t)id;
	}
	if (rc == TSR_OK && n) {
		progress(r, "fetching new groups", n);
		rc = ldap_view_fetch(r->ls, r->cfg, v, true, ids, n, r->err, sizeof(r->err));
	}
	free(ids);
	return rc;
}

/* Everything inside the run's transaction. */
static tsr_rc apply(struct run *r, struct db_conn *c)
{
	double t = elapsed(r);
	tsr_rc rc = load_known(r, c);
	if (rc != TSR_OK)
		return rc;
	if ((rc = fetch_unknown(r)) != TSR_OK)
		return rc;
	r->t_load = elapsed(r) - t;
	t = elapsed(r);
	safety_valve(r);
	if (r->valve && !r->o->force)
		return TSR_CONFLICT;
	progress(r, "writing users", 0);
	if ((rc = sync_users(r, c)) != TSR_OK)
		return rc;
	if ((rc = ev_flush(r, c)) != TSR_OK)
		return rc;
	r->t_users = elapsed(r) - t;
	t = elapsed(r);
	if (r->view.groups_read) {
		progress(r, "writing groups", 0);
		if ((rc = sync_groups(r, c)) != TSR_OK)
			return rc;
	}
	r->t_groups = elapsed(r) - t;
	t = elapsed(r);
	ldap_view_drop_entries(&r->view); /* written: give the memory back before resolving */
	if (r->memberships_dirty && (rc = sync_memberships(r, c)) != TSR_OK)
		return rc;
	if ((rc = new_groups_flush(r, c)) != TSR_OK || (rc = ev_flush(r, c)) != TSR_OK)
		return rc;
	r->t_members = elapsed(r) - t;
	if (r->roles_dirty || r->k.users_added || r->linked) {
		int added = 0, removed = 0;
		if ((rc = db_roles_sync(c, r->cfg, ACTOR, &added, &removed)) != TSR_OK)
			return rc;
		r->changes += (size_t)(added + removed);
	}
	if (r->view.hwm[0] && (rc = dir_state_set(c, "hwm", r->view.hwm)) != TSR_OK)
		return rc;
	if ((rc = dir_state_set(c, "config", r->fingerprint)) != TSR_OK)
		return rc;
	if (r->changes) {
		const struct sync_counts *k = &r->k;
		rc = ev_add(r, "sync.run", 0, "ldap",
			    json_pack("{s:I,s:s,s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}}", "run_id",
				      (json_int_t)r->run_id, "mode", r->full ? "full" : "incremental", "counts",
				      "users_added", k->users_added, "users_updated", k->users_updated,
				      "users_deactivated", k->users_deactivated, "users_reinstated", r->reinstated,
				      "groups_added", k->groups_added, "groups_updated", k->groups_updated,
				      "groups_removed", k->groups_removed, "memberships_added", k->memberships_added,
				      "memberships_removed", k->memberships_removed, "conflicts", (int)r->n_conflicts));
		if (rc == TSR_OK)
			rc = ev_flush(r, c);
	}
	return rc;
}

static void run_free(struct run *r)
{
	ldap_view_free(&r->view);
	ldap_session_close(r->ls);
	dir_known_users_free(r->ku, r->n_ku);
	dir_known_groups_free(r->kg, r->n_kg);
	strmap_free(&r->ku_index);
	strmap_free(&r->kg_index);
	free(r->ku_written);
	free(r->ku_attached);
	for (size_t i = 0; i < r->n_owned; i++)
		free(r->owned[i]);
	free(r->owned);
	free(r->ev);
	json_decref(r->conflicts);
	json_decref(r->valve);
	json_decref(r->added);
	json_decref(r->new_groups);
}

/* The run row's detail at the end. Caller frees. */
static char *final_detail(struct run *r, const char *why_full)
{
	json_t *d = json_pack("{s:I,s:I,s:I,s:I,s:i,s:i,s:I,s:s?,s:s?}", "users_read", (json_int_t)r->view.n_users,
			      "groups_read", (json_int_t)r->view.n_groups, "disabled", (json_int_t)r->view.n_disabled,
			      "enumerated", (json_int_t)r->view.n_present, "reinstated", r->reinstated, "linked",
			      r->linked, "conflicts_total", (json_int_t)r->n_conflicts, "high_water_mark",
			      r->view.hwm[0] ? r->view.hwm : NULL, "full_because", why_full);
	if (!d)
		return NULL;
	if (json_array_size(r->conflicts))
		json_object_set(d, "conflicts", r->conflicts);
	if (r->valve)
		json_object_set(d, "safety_valve", r->valve);
	if (r->view.total_problems) {
		json_t *p = json_array();
		for (size_t i = 0; i < r->view.n_problems; i++)
			json_array_append_new(p, json_pack("{s:s,s:s}", "dn", r->view.problems[i].dn, "reason",
							   r->view.problems[i].reason));
		json_object_set_new(d, "skipped", p);
		json_object_set_new(d, "skipped_total", json_integer((json_int_t)r->view.total_problems));
	}
	json_object_set_new(d, "seconds",
			    json_pack("{s:f,s:f,s:f,s:f,s:f,s:f}", "directory", r->t_read, "load", r->t_load, "users",
				      r->t_users, "groups", r->t_groups, "memberships", r->t_members, "commit",
				      r->t_commit));
	if (r->view.user_base_missing)
		json_object_set_new(d, "user_base_missing", json_true());
	if (r->view.group_base_missing)
		json_object_set_new(d, "group_base_missing", json_true());
	if (!r->view.groups_read)
		json_object_set_new(d, "groups_skipped", json_string("no [ldap] group_base configured"));
	char *s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(d);
	return s;
}

tsr_rc sync_ldap_run(struct db_pool *pool, const struct config *cfg, const struct sync_ldap_opts *o,
		     struct sync_ldap_result *res)
{
	memset(res, 0, sizeof(*res));
	struct run r = { .pool = pool, .cfg = cfg, .o = o };
	clock_gettime(CLOCK_MONOTONIC, &r.t0);
	r.conflicts = json_array();
	r.added = json_array();
	r.new_groups = json_object();
	tsr_rc rc = r.conflicts && r.added && r.new_groups ? TSR_OK : TSR_INTERNAL;
	struct db_conn *c = NULL;
	char *hwm = NULL, *oldfp = NULL, *detail = NULL;
	const char *why_full = NULL;
	bool in_tx = false;
	if (rc != TSR_OK || (rc = ldap_view_init(&r.view, progress, &r)) != TSR_OK) {
		snprintf(r.err, sizeof(r.err), "out of memory");
		goto out;
	}
	if ((rc = db_acquire(pool, 5000, &c)) != TSR_OK) {
		snprintf(r.err, sizeof(r.err), "database unavailable");
		goto out;
	}
	fingerprint(cfg, r.fingerprint);
	int64_t full_age = -1;
	if ((rc = dir_state_get(c, "hwm", &hwm)) != TSR_OK || (rc = dir_state_get(c, "config", &oldfp)) != TSR_OK ||
	    (rc = db_sync_run_last_ok_age(c, "ldap", "full", &full_age)) != TSR_OK) {
		snprintf(r.err, sizeof(r.err), "cannot read the sync state: %s", status_name(rc));
		goto out;
	}
	why_full = o->full				 ? "requested"
		   : !hwm				 ? "no previous run"
		   : !oldfp || strcmp(oldfp, r.fingerprint) ? "the [ldap] mapping changed"
		   : full_age < 0 || full_age > FULL_EVERY_SECS ? "the last full run is more than a day old"
							    : NULL;
	r.full = why_full != NULL;
	{
		json_t *d0 = o->request_id && *o->request_id ? json_pack("{s:s}", "request_id", o->request_id)
							     : json_object();
		char *s0 = d0 ? json_dumps(d0, JSON_COMPACT) : NULL;
		json_decref(d0);
		rc = s0 ? db_sync_run_begin(c, "ldap", r.full ? "full" : "incremental",
					    o->started_by && *o->started_by ? o->started_by : "schedule", o->force, s0,
					    &r.run_id)
			: TSR_INTERNAL;
		free(s0);
	}
	if (rc != TSR_OK) {
		snprintf(r.err, sizeof(r.err), "cannot record the run: %s", status_name(rc));
		goto out;
	}
	res->run_id = r.run_id;
	int stale = 0;
	if (db_sync_run_abort_stale(c, "ldap", r.run_id, &stale) == TSR_OK && stale)
		log_warn("ldap_sync_stale_runs_aborted", "count=%d", stale);
	db_release(pool, c);
	c = NULL;
	log_info("ldap_sync_started", "run=%" PRId64 " mode=%s started_by=\"%s\"", r.run_id,
		 r.full ? "full" : "incremental", o->started_by ? o->started_by : "schedule");

	if ((rc = check_config(cfg, r.err, sizeof(r.err))) != TSR_OK)
		goto out;
	progress(&r, "connecting", 0);
	if ((rc = ldap_session_open(cfg, &r.ls, r.err, sizeof(r.err))) != TSR_OK)
		goto out;
	double t_read = elapsed(&r);
	if ((rc = ldap_view_read(r.ls, cfg, r.full ? NULL : hwm, &r.view, r.err, sizeof(r.err))) != TSR_OK)
		goto out;
	r.t_read = elapsed(&r) - t_read;

	if ((rc = db_acquire(pool, 10000, &c)) != TSR_OK) {
		snprintf(r.err, sizeof(r.err), "database unavailable");
		goto out;
	}
	if ((rc = db_simple(c, "BEGIN")) != TSR_OK) {
		snprintf(r.err, sizeof(r.err), "database unavailable");
		goto out;
	}
	in_tx = true;
	rc = apply(&r, c);
	if (rc == TSR_OK) {
		double t_commit = elapsed(&r);
		rc = db_simple(c, "COMMIT");
		r.t_commit = elapsed(&r) - t_commit;
		in_tx = false;
		if (rc != TSR_OK)
			snprintf(r.err, sizeof(r.err), "commit failed: %s", status_name(rc));
	} else if (!r.err[0]) {
		snprintf(r.err, sizeof(r.err), "%s while writing the changes (nothing was changed)", status_name(rc));
	}
out:
	if (c && in_tx && PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	if (c)
		db_release(pool, c);
	if (rc != TSR_OK)
		memset(&r.k, 0, sizeof(r.k)); /* nothing committed */
	res->counts = r.k;
	snprintf(res->status, sizeof(res->status), "%s", rc == TSR_OK ? "ok" : "failed");
	snprintf(res->error, sizeof(res->error), "%s", rc == TSR_OK ? "" : r.err);
	double secs = elapsed(&r);
	if (r.run_id) {
		detail = final_detail(&r, why_full);
		struct db_conn *fc;
		tsr_rc frc = db_acquire(pool, 10000, &fc);
		if (frc == TSR_OK) {
			frc = db_sync_run_finish(fc, r.run_id, res->status, rc == TSR_OK ? NULL : r.err, &r.k, detail);
			db_release(pool, fc);
		}
		if (frc != TSR_OK)
			log_error("ldap_sync_unrecorded", "run=%" PRId64 " error=%s", r.run_id, status_name(frc));
	}
	if (rc == TSR_OK)
		log_info("ldap_sync_finished",
			 "run=%" PRId64 " mode=%s secs=%.2f users_added=%d users_updated=%d users_deactivated=%d "
			 "groups_added=%d groups_updated=%d groups_removed=%d memberships_added=%d "
			 "memberships_removed=%d conflicts=%zu",
			 r.run_id, r.full ? "full" : "incremental", secs, r.k.users_added, r.k.users_updated,
			 r.k.users_deactivated, r.k.groups_added, r.k.groups_updated, r.k.groups_removed,
			 r.k.memberships_added, r.k.memberships_removed, r.n_conflicts);
	else
		log_warn("ldap_sync_failed", "run=%" PRId64 " secs=%.2f error=\"%s\"", r.run_id, secs, r.err);
	free(detail);
	free(hwm);
	free(oldfp);
	run_free(&r);
	return rc;
}
