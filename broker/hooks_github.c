/*
 * hooks_github.c — see hooks_github.h.
 *
 * What each delivery does (removals at once, the rest through the queue):
 *   member       removed: the collaborator's grant on the repository goes;
 *                every action queues the repository for a re-read
 *   membership   removed (scope team): the member leaves the team and its
 *                ancestors (fail closed); queues the team
 *   organization member_removed: org role, team memberships and
 *                collaborations go; queues the member lists
 *   team         deleted: the team and its child teams go;
 *                removed_from_repository: the team's grant goes; queues
 *                the team or the repository
 *   team_add     queues the repository (its teams and their permission)
 *   repository   deleted: marked removed, every permission on it goes;
 *                archived, renamed, visibility and topics changes are
 *                applied from the payload; queues the repository
 * Each removal recomputes only the users or repositories it concerns and,
 * when a user lost a repository, revokes their access tokens for it
 * (db_perm_revoke_lost) in the same transaction. A delivery that changed
 * permissions is recorded as a sync_runs row of mode 'webhook'; every
 * delivery, accepted or refused, is an audit event "hook.github".
 * Handlers run on HTTP worker threads: no GitHub API call here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "hooks_github.h"
#include "jobs.h"
#include "webhook_secret.h"
#include "../db/audit.h"
#include "../db/github_state.h"
#include "../db/repo_perm.h"
#include "../lib/log.h"
#include "../sync/github_hook.h"
#include "../sync/sync_github.h"

#define ACTOR "github-webhook"
/* revoked_by of tokens revoked for a lost permission, whichever path noticed it */
#define REVOKER "github-sync"

static void audit_hook(struct http_req *r, const char *outcome, const char *event, const char *delivery,
		       json_t *extra)
{
	json_t *d = extra ? extra : json_object();
	json_object_set_new(d, "event", event ? json_string(event) : json_null());
	json_object_set_new(d, "delivery", delivery ? json_string(delivery) : json_null());
	char *detail = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(d);
	struct audit_event ev;
	tsr_rc rc = detail ? audit_event_init(&ev, ACTOR, "hook.github", outcome) : TSR_INTERNAL;
	if (rc == TSR_OK) {
		ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
		ev.target = "/hooks/github";
		ev.detail = detail;
		struct db_conn *c;
		rc = db_acquire(r->b->pool, 2000, &c);
		if (rc == TSR_OK) {
			rc = db_audit_append(c, &ev, 1);
			db_release(r->b->pool, c);
		}
	}
	if (rc != TSR_OK)
		log_error("audit_write_failed", "action=hook.github outcome=%s", outcome);
	free(detail);
}

/* Header values are echoed into audit detail only when they look like GitHub's. */
static const char *safe_header(struct http_req *r, const char *name)
{
	const char *v = http_header(r, name);
	if (!v || !*v || strlen(v) > 100)
		return NULL;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return NULL;
	return v;
}

static tsr_rc authn(struct http_req *r, char *why, size_t whylen)
{
	const char *event = safe_header(r, "X-GitHub-Event"), *delivery = safe_header(r, "X-GitHub-Delivery");
	const char *sig = http_header(r, "X-Hub-Signature-256");
	struct webhook_secret_set set;
	const char *reason = NULL;
	if (webhook_secret_current(r->b, WEBHOOK_GITHUB, &set) != TSR_OK) {
		reason = "webhook secret not configured or unreadable";
	} else if (!sig) {
		reason = "missing X-Hub-Signature-256";
	} else {
		/* the active secret and, during an overlap window, the previous one; all are checked */
		bool ok = false;
		for (int i = 0; i < set.n; i++)
			ok |= gh_signature_ok(set.v[i].secret, set.v[i].len, r->body.data ? r->body.data : "", r->body.len,
					      sig);
		if (!ok)
			reason = "bad signature";
	}
	webhook_secret_set_free(&set);
	if (!reason)
		return TSR_OK;
	log_warn("github_hook_refused", "reason=\"%s\" addr=%s", reason, r->client_addr);
	audit_hook(r, "denied", event, delivery, json_pack("{s:s}", "reason", reason));
	snprintf(why, whylen, "%s", reason);
	return TSR_UNAUTHENTICATED;
}

static bool org_configured(const struct config *cfg, const char *org)
{
	for (size_t i = 0; i < cfg->github.orgs.n; i++)
		if (strcasecmp(cfg->github.orgs.v[i], org) == 0)
			return true;
	return false;
}

/* What one delivery asks for. */
struct plan {
	enum { RM_NONE, RM_COLLAB, RM_TEAM_MEMBER, RM_ORG_MEMBER, RM_TEAM, RM_GRANT, RM_REPO } rm;
	bool update_repo;
	const char *queue_kind;  /* repo | team | members | org, or NULL */
	int64_t queue_id;
	const char *queue_ref;
};

static void plan_of(const struct gh_event *e, struct plan *p)
{
	memset(p, 0, sizeof(*p));
	const char *a = e->action;
	if (strcmp(e->event, "member") == 0 && e->has_repo) {
		if (strcmp(a, "removed") == 0 && e->has_user)
			p->rm = RM_COLLAB;
		p->queue_kind = "repo";
	} else if (strcmp(e->event, "membership") == 0 && e->has_team) {
		if (strcmp(a, "removed") == 0 && e->has_user)
			p->rm = RM_TEAM_MEMBER;
		p->queue_kind = "team";
	} else if (strcmp(e->event, "organization") == 0) {
		if (strcmp(a, "member_removed") == 0 && e->has_user)
			p->rm = RM_ORG_MEMBER;
		p->queue_kind = strcmp(a, "renamed") == 0 ? "org" : "members";
	} else if (strcmp(e->event, "team") == 0 && e->has_team) {
		if (strcmp(a, "deleted") == 0) {
			p->rm = RM_TEAM;
			p->queue_kind = "team";
		} else if (strcmp(a, "removed_from_repository") == 0 && e->has_repo) {
			p->rm = RM_GRANT;
			p->queue_kind = "repo";
		} else if (strcmp(a, "added_to_repository") == 0 && e->has_repo) {
			p->queue_kind = "repo";
		} else {
			p->queue_kind = "team";
		}
	} else if (strcmp(e->event, "team_add") == 0 && e->has_repo) {
		p->queue_kind = "repo";
	} else if (strcmp(e->event, "repository") == 0 && e->has_repo) {
		if (strcmp(a, "deleted") == 0) {
			p->rm = RM_REPO;
		} else {
			p->update_repo = strcmp(a, "created") != 0 && strcmp(a, "transferred") != 0;
			p->queue_kind = "repo";
		}
	}
	if (p->queue_kind && strcmp(p->queue_kind, "repo") == 0) {
		p->queue_id = e->repo_id;
		p->queue_ref = e->repo_name;
	} else if (p->queue_kind && strcmp(p->queue_kind, "team") == 0) {
		p->queue_id = e->team_id;
		p->queue_ref = e->team_slug;
	}
}

static const char *rm_name(int rm)
{
	static const char *const n[] = { "none", "collaborator", "team_member", "org_member", "team", "team_grant",
					 "repository" };
	return n[rm];
}

/* Apply the removal and recompute what it touches. */
static tsr_rc apply(struct db_conn *c, const struct config *cfg, const struct gh_event *e, const struct plan *p,
		    int64_t run_id, bool *changed, struct rp_changes *ch)
{
	tsr_rc rc = TSR_OK;
	*changed = false;
	const int64_t *acc = NULL, *repo = NULL;
	size_t na = 0, nr = 0;
	bool whole = false;
	switch (p->rm) {
	case RM_COLLAB:
		rc = db_rp_remove_collab(c, e->repo_id, e->user_id, changed);
		acc = &e->user_id, na = 1, repo = &e->repo_id, nr = 1;
		break;
	case RM_TEAM_MEMBER:
		rc = db_rp_remove_team_member(c, e->team_id, e->user_id, changed);
		acc = &e->user_id, na = 1;
		break;
	case RM_ORG_MEMBER:
		rc = db_rp_remove_org_member(c, e->org, e->user_id, changed);
		acc = &e->user_id, na = 1;
		break;
	case RM_TEAM:
		rc = db_rp_remove_team(c, e->team_id, changed);
		whole = true;
		break;
	case RM_GRANT:
		rc = db_rp_remove_grant(c, e->team_id, e->repo_id, changed);
		repo = &e->repo_id, nr = 1;
		break;
	case RM_REPO:
		rc = db_rp_remove_repo(c, e->repo_id, changed);
		repo = &e->repo_id, nr = 1;
		break;
	case RM_NONE:
		break;
	}
	if (rc == TSR_OK && *changed && (acc || repo || whole))
		rc = db_rp_recompute(c, e->org, acc, na, repo, nr, run_id, REVOKER, ch);
	if (rc == TSR_OK && p->update_repo) {
		const char *classes[GH_MAX_TOPICS + 1], *topics[GH_MAX_TOPICS];
		size_t nc = 0;
		for (int i = 0; i < e->ntopics; i++)
			topics[i] = e->topics[i];
		if (e->has_topics)
			nc = sync_github_classify(&cfg->github.topic_classifications, topics, (size_t)e->ntopics, classes,
						  GH_MAX_TOPICS);
		bool upd = false;
		rc = db_rp_update_repo(c, e->repo_id, e->repo_owner[0] ? e->repo_owner : e->org, e->repo_name,
				       e->visibility, e->archived, e->has_topics ? topics : NULL, (size_t)e->ntopics,
				       e->has_topics ? classes : NULL, nc, &upd);
		*changed = *changed || upd;
	}
	return rc;
}

static tsr_rc h_hook(struct http_req *r)
{
	const struct config *cfg = r->b->cfg;
	const char *event = safe_header(r, "X-GitHub-Event"), *delivery = safe_header(r, "X-GitHub-Delivery");
	if (!event || !delivery) {
		audit_hook(r, "failure", event, delivery, json_pack("{s:s}", "reason", "missing event or delivery id"));
		return http_reply_error(r, TSR_INVALID, "X-GitHub-Event and X-GitHub-Delivery are required");
	}
	if (strcmp(event, "ping") == 0)
		return http_reply_json(r, 200, json_pack("{s:s}", "status", "pong"));
	struct gh_event e;
	if (gh_event_parse(event, r->body.data ? r->body.data : "", r->body.len, &e) != TSR_OK) {
		audit_hook(r, "failure", event, delivery, json_pack("{s:s}", "reason", "malformed payload"));
		return http_reply_error(r, TSR_INVALID, "malformed %s payload", event);
	}
	struct plan p;
	plan_of(&e, &p);
	if ((p.rm == RM_NONE && !p.queue_kind && !p.update_repo) || !e.org[0] || !org_configured(cfg, e.org)) {
		audit_hook(r, "success", event, delivery,
			   json_pack("{s:s,s:s,s:s}", "action", e.action, "org", e.org, "result", "ignored"));
		return http_reply_json(r, 202, json_pack("{s:s}", "status", "ignored"));
	}

	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 5000, &c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "database unavailable");
	bool dup = false, changed = false;
	int64_t run_id = 0;
	struct rp_changes ch = { 0 };
	char by[96];
	snprintf(by, sizeof(by), "webhook:%s", event);
	json_t *d = NULL;
	char *detail = NULL;
	if ((rc = db_simple(c, "BEGIN")) != TSR_OK || (rc = db_rp_lock(c)) != TSR_OK)
		goto out;
	if ((rc = db_gh_delivery_claim(c, delivery, &dup)) != TSR_OK || dup)
		goto out;
	if ((rc = db_gh_run_webhook(c, by, &run_id)) != TSR_OK)
		goto out;
	if ((rc = apply(c, cfg, &e, &p, run_id, &changed, &ch)) != TSR_OK)
		goto out;
	if (p.queue_kind && (rc = db_gh_queue_add(c, e.org, p.queue_kind, p.queue_id, p.queue_ref, event)) != TSR_OK)
		goto out;
	int sources = ch.granted + ch.raised + ch.lowered + ch.removed;
	d = json_pack("{s:s,s:s,s:s,s:s?,s:b,s:i,s:i,s:i,s:I}", "action", e.action, "org", e.org, "applied",
		      rm_name(p.rm), "queued", p.queue_kind, "changed", changed, "sources_changed", sources,
		      "pairs_lost", ch.pairs_lost, "tokens_revoked", ch.revoked, "run_id",
		      (json_int_t)(sources ? run_id : 0));
	detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (!detail) {
		rc = TSR_INTERNAL;
		goto out;
	}
	if (sources == 0) {
		rc = db_gh_run_discard(c, run_id);
	} else {
		struct gh_run_totals t = { NULL, &ch, 0, 0, 0, detail };
		rc = db_gh_run_finish(c, run_id, "ok", NULL, &t);
	}
	if (rc != TSR_OK)
		goto out;
	struct audit_event ev;
	if ((rc = audit_event_init(&ev, ACTOR, "hook.github", "success")) != TSR_OK)
		goto out;
	ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
	ev.target = "/hooks/github";
	json_object_set_new(d, "event", json_string(event));
	json_object_set_new(d, "delivery", json_string(delivery));
	free(detail);
	detail = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	ev.detail = detail;
	if (!detail || (rc = db_audit_append(c, &ev, 1)) != TSR_OK) {
		rc = rc == TSR_OK ? TSR_INTERNAL : rc;
		goto out;
	}
	rc = db_simple(c, "COMMIT");
out:
	if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	db_release(r->b->pool, c);
	json_decref(d);
	free(detail);
	if (rc != TSR_OK) {
		log_error("github_hook_failed", "event=%s delivery=%s error=%s", event, delivery, status_name(rc));
		return http_reply_error(r, rc, "delivery not applied: %s", status_name(rc));
	}
	if (dup)
		return http_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "duplicate", "delivery", delivery));
	if (p.queue_kind) {
		tsr_rc q = jobs_request(r->b->jobs, "sync.github.queue", "");
		(void)q; /* CONFLICT: a turn is already pending and will see the row */
	}
	log_info("github_hook_applied", "event=%s action=%s delivery=%s removed=%s sources=%d revoked=%d", event,
		 e.action, delivery, rm_name(p.rm), ch.granted + ch.raised + ch.lowered + ch.removed, ch.revoked);
	return http_reply_json(r, 202,
			       json_pack("{s:s,s:s,s:s,s:s?,s:i,s:i}", "status", "accepted", "delivery", delivery,
					 "applied", rm_name(p.rm), "queued", p.queue_kind, "permissions_lost",
					 ch.pairs_lost, "tokens_revoked", ch.revoked));
}

static const struct route hooks[] = {
	{ "POST", "/hooks/github", ROLE_PUBLIC, h_hook, authn, NULL },
};
ROUTE_TABLE(hooks_github_routes, hooks);

/* ---------- jobs ---------- */

int64_t github_sync_interval(const struct config *cfg)
{
	return cfg->github.orgs.n ? cfg->github.sync_interval : 0;
}

int64_t github_queue_interval(const struct config *cfg)
{
	return cfg->github.orgs.n ? 5 : 0;
}

/*
 * The job's argument: "" (scheduled), "full", or the admin API's text form
 * "full=1;force=0;request=UUID;by=cli:alice" (broker/admin_sync.h; by last).
 */
static void parse_arg(const char *arg, bool *full, char *request, size_t rn, char *by, size_t bn)
{
	bool plain = strcmp(arg, "full") == 0;
	*full = plain;
	request[0] = '\0';
	snprintf(by, bn, "%s", plain ? "request" : "schedule");
	for (const char *p = plain ? "" : arg; *p;) {
		const char *semi = strchr(p, ';');
		size_t n = semi ? (size_t)(semi - p) : strlen(p);
		if (strncmp(p, "by=", 3) == 0) {
			snprintf(by, bn, "%s", p + 3); /* by is last and may hold ';' */
			break;
		}
		if (n == 6 && strncmp(p, "full=1", 6) == 0)
			*full = true;
		else if (n > 8 && strncmp(p, "request=", 8) == 0)
			snprintf(request, rn, "%.*s", (int)(n - 8), p + 8);
		p = semi ? semi + 1 : p + n;
	}
}

tsr_rc github_sync_job(struct broker *b, const char *arg)
{
	bool full;
	char request[64], by[160];
	parse_arg(arg, &full, request, sizeof(request), by, sizeof(by));
	struct gh_sync_opts o = { b->cfg, b->pool, full ? "full" : "", by, request, &b->shutting_down };
	struct gh_sync_result res;
	return sync_github_run(&o, &res);
}

tsr_rc github_queue_job(struct broker *b, const char *arg)
{
	struct gh_sync_opts o = { b->cfg, b->pool, "", "queue", NULL, &b->shutting_down };
	struct gh_sync_result res;
	return sync_github_queue(&o, &res);
}
