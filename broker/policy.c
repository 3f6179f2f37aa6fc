/*
 * policy.c — see policy.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"
#include "model_access.h"
#include "../db/credential.h"
#include "../db/policy.h"
#include "../lib/commalist.h"
#include "../lib/log.h"

#define GROUP_TTL_NS (5LL * 1000000000LL)
#define GROUP_SLOTS 4096
#define RATE_MAX_USERS 100000
#define RATE_BUCKETS 8192
#define RATE_SLICE_DIV 10                       /* a lease is at most limit/10 requests */
#define RATE_DB_BACKOFF_NS (5LL * 1000000000LL) /* after a failed lease, the local bucket for 5 s */
#define RATE_PRUNE_NS (120LL * 1000000000LL)

_Static_assert(MA_ROLE_ADMIN == ROLE_ADMIN && MA_ROLE_SECURITY == ROLE_SECURITY && MA_ROLE_DEVELOPER == ROLE_DEVELOPER,
	       "model_access role bits follow enum role_bits");

struct class_rule {
	char cls[64];
	bool baa, on_prem, any;
	struct strlist names; /* upstream names allowed by name (borrowed from nothing: owned) */
	char text[256];       /* as configured, for messages */
};

struct action_entry {
	int rule;         /* scanner rule, or -1 for a group */
	int group;        /* enum scan_group when rule < 0 */
	char cls[64];     /* "" = any repository */
	enum scan_action act;
};

struct group_slot {
	int64_t user_id;
	int64_t fetched_ns;
	uint64_t mask; /* membership of model_access_group_names() */
};

/*
 * A user's rate state on this replica: the lease of the current cluster
 * window (left requests until window_end_ns), and the local token bucket
 * used only while Postgres cannot be reached.
 */
struct rate_entry {
	struct rate_entry *next;
	int64_t user_id;
	int64_t window_start; /* Unix seconds, as Postgres keyed it */
	int64_t window_end_ns; /* monotonic */
	int64_t left;         /* leased and not yet used */
	int64_t leased;       /* leased by this replica in this window (the next slice grows with it) */
	bool spent;           /* the window's allowance is gone: 429 until window_end_ns */
	double tokens;        /* the fallback bucket */
	int64_t last_ns;
};

/* A settlement waiting for the settler thread. */
struct settle {
	struct settle *next;
	int64_t user_id, reserved, used, bytes_out;
};

struct policy {
	struct broker *b;
	const struct scanner *s;
	struct class_rule *rules;
	int n_rules;
	struct action_entry *acts;
	int n_acts;
	struct model_access *models;
	pthread_mutex_t group_mu;
	struct group_slot *groups;
	pthread_mutex_t rate_mu;
	struct rate_entry *buckets[RATE_BUCKETS];
	int n_rate;
	int64_t rate_db_down_until_ns; /* rate_mu */
	int64_t rate_pruned_ns;        /* rate_mu */
	/* settlements, applied by the settler thread (off the HTTP workers' event loops) */
	pthread_mutex_t settle_mu;
	pthread_cond_t settle_cv;
	struct settle *sq, *sq_tail;
	bool settle_stop, settler_started;
	pthread_t settler;
};

static void *settler(void *arg);

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

const char *policy_action_name(enum scan_action a)
{
	switch (a) {
	case ACT_BLOCK: return "block";
	case ACT_REDACT: return "redact";
	case ACT_LOG: return "log";
	default: return "off";
	}
}

static bool parse_action(const char *s, enum scan_action *out)
{
	static const char *names[] = { "off", "log", "redact", "block" };
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum scan_action)i;
			return true;
		}
	return false;
}

/* Is cls one of the comma-separated classes? */
static bool has_class(const char *classes, const char *cls)
{
	return commalist_has(classes, cls, strlen(cls));
}

tsr_rc policy_new(struct broker *b, const struct scanner *s, struct policy **out, char *err, size_t errlen)
{
	const struct config *cfg = b->cfg;
	struct policy *p = calloc(1, sizeof(*p));
	if (!p)
		return TSR_INTERNAL;
	p->b = b;
	p->s = s;
	pthread_mutex_init(&p->rate_mu, NULL);
	pthread_mutex_init(&p->group_mu, NULL);
	pthread_mutex_init(&p->settle_mu, NULL);
	pthread_cond_init(&p->settle_cv, NULL);
	p->groups = calloc(GROUP_SLOTS, sizeof(*p->groups));
	p->rules = calloc(cfg->policy.classified_upstreams.n + 1, sizeof(*p->rules));
	p->acts = calloc(cfg->policy.scanner_action.n + 1, sizeof(*p->acts));
	if (!p->groups || !p->rules || !p->acts) {
		policy_free(p);
		return TSR_INTERNAL;
	}
	tsr_rc mrc = model_access_new(&cfg->policy.model_access, &p->models, err, errlen);
	if (mrc != TSR_OK) {
		policy_free(p);
		return mrc;
	}
	/* classification:attr|attr */
	for (size_t i = 0; i < cfg->policy.classified_upstreams.n; i++) {
		const char *e = cfg->policy.classified_upstreams.v[i];
		const char *colon = strchr(e, ':');
		struct class_rule *r = &p->rules[p->n_rules];
		if (!colon || colon == e || (size_t)(colon - e) >= sizeof(r->cls) || !colon[1]) {
			snprintf(err, errlen, "[policy] classified_upstreams: expected classification:attr|attr, got '%s'", e);
			policy_free(p);
			return TSR_INVALID;
		}
		memcpy(r->cls, e, (size_t)(colon - e));
		snprintf(r->text, sizeof(r->text), "%s", colon + 1);
		const char *a = colon + 1;
		while (*a) {
			size_t len = strcspn(a, "|");
			char tok[64];
			snprintf(tok, sizeof(tok), "%.*s", (int)len, a);
			if (strcmp(tok, "baa") == 0)
				r->baa = true;
			else if (strcmp(tok, "on_prem") == 0)
				r->on_prem = true;
			else if (strcmp(tok, "any") == 0)
				r->any = true;
			else if (strcmp(tok, "none") != 0) {
				char **v = realloc(r->names.v, (r->names.n + 1) * sizeof(*v));
				if (!v || !(v[r->names.n] = strdup(tok))) {
					free(v);
					policy_free(p);
					return TSR_INTERNAL;
				}
				r->names.v = v;
				r->names.n++;
			}
			a += len;
			if (*a == '|')
				a++;
		}
		p->n_rules++;
	}
	/* RULE[@CLASS]:action */
	for (size_t i = 0; i < cfg->policy.scanner_action.n; i++) {
		const char *e = cfg->policy.scanner_action.v[i];
		const char *colon = strrchr(e, ':');
		struct action_entry *a = &p->acts[p->n_acts];
		if (!colon || !parse_action(colon + 1, &a->act)) {
			snprintf(err, errlen, "[policy] scanner_action: expected RULE[@CLASS]:block|redact|log|off, got '%s'", e);
			policy_free(p);
			return TSR_INVALID;
		}
		const char *at = memchr(e, '@', (size_t)(colon - e));
		size_t nlen = (size_t)((at ? at : colon) - e);
		if (at)
			snprintf(a->cls, sizeof(a->cls), "%.*s", (int)(colon - at - 1), at + 1);
		a->rule = scanner_rule_find(s, e, nlen);
		if (a->rule < 0) {
			if (nlen == 7 && strncmp(e, "secrets", 7) == 0)
				a->group = SG_SECRET;
			else if (nlen == 3 && strncmp(e, "phi", 3) == 0)
				a->group = SG_PHI;
			else if (nlen == 3 && strncmp(e, "pci", 3) == 0)
				a->group = SG_PCI;
			else {
				snprintf(err, errlen, "[policy] scanner_action: unknown rule '%.*s' (see tessera.conf(5))",
					 (int)nlen, e);
				policy_free(p);
				return TSR_INVALID;
			}
		}
		p->n_acts++;
	}
	*out = p;
	return TSR_OK;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	if (p->settler_started) {
		/* every request has released its reservation by now: the settler applies the rest and ends */
		pthread_mutex_lock(&p->settle_mu);
		p->settle_stop = true;
		pthread_cond_signal(&p->settle_cv);
		pthread_mutex_unlock(&p->settle_mu);
		pthread_join(p->settler, NULL);
	}
	pthread_cond_destroy(&p->settle_cv);
	pthread_mutex_destroy(&p->settle_mu);
	for (int i = 0; p->rules && i < p->n_rules; i++) {
		for (size_t k = 0; k < p->rules[i].names.n; k++)
			free(p->rules[i].names.v[k]);
		free(p->rules[i].names.v);
	}
	for (int i = 0; i < RATE_BUCKETS; i++)
		while (p->buckets[i]) {
			struct rate_entry *e = p->buckets[i];
			p->buckets[i] = e->next;
			free(e);
		}
	free(p->rules);
	free(p->acts);
	free(p->groups);
	model_access_free(p->models);
	pthread_mutex_destroy(&p->group_mu);
	pthread_mutex_destroy(&p->rate_mu);
	free(p);
}

/* ---------- classifications ---------- */

tsr_rc policy_upstream_ok(const struct policy *p, const char *classes, const struct upstream *u, char *why,
			  size_t whylen)
{
	const struct config *cfg = p->b->cfg;
	for (int i = 0; i < p->n_rules; i++) {
		const struct class_rule *r = &p->rules[i];
		if (!has_class(classes, r->cls))
			continue;
		bool ok = r->any || (r->baa && u->cfg->baa) || (r->on_prem && u->cfg->on_prem);
		for (size_t k = 0; !ok && k < r->names.n; k++)
			ok = strcmp(r->names.v[k], u->name) == 0;
		if (!ok) {
			snprintf(why, whylen,
				 "policy classified_upstreams: the repository is classified %s, which may only reach %s "
				 "upstreams; upstream '%s' is not",
				 r->cls, r->text, u->name);
			return TSR_DENIED;
		}
	}
	if (cfg->policy.allowed_regions.n) {
		bool ok = false;
		for (size_t k = 0; !ok && k < cfg->policy.allowed_regions.n; k++)
			ok = u->cfg->region && strcmp(cfg->policy.allowed_regions.v[k], u->cfg->region) == 0;
		if (!ok) {
			snprintf(why, whylen, "policy allowed_regions: upstream '%s' is in region %s, not an allowed region",
				 u->name, u->cfg->region ? u->cfg->region : "(unset)");
			return TSR_DENIED;
		}
	}
	return TSR_OK;
}

void policy_scan_actions(const struct policy *p, const char *classes, enum scan_action *act)
{
	int n = scanner_n_rules(p->s);
	bool none = !*classes;
	for (int r = 0; r < n; r++) {
		enum scan_group g = scanner_rule_group(p->s, r);
		enum scan_action def = g == SG_SECRET ? ACT_BLOCK
				       : g == SG_PHI  ? (has_class(classes, "phi") ? ACT_BLOCK : ACT_LOG)
						      : (has_class(classes, "pci") ? ACT_BLOCK : ACT_LOG);
		/* specificity: 3 rule@class, 2 rule, 1 group@class, 0 group */
		int best = -1;
		enum scan_action chosen = def;
		for (int i = 0; i < p->n_acts; i++) {
			const struct action_entry *a = &p->acts[i];
			bool rule_match = a->rule == r, group_match = a->rule < 0 && a->group == (int)g;
			if (!rule_match && !group_match)
				continue;
			bool cls_match = !*a->cls || (strcmp(a->cls, "none") == 0 ? none : has_class(classes, a->cls));
			if (!cls_match)
				continue;
			int spec = (rule_match ? 2 : 0) + (*a->cls ? 1 : 0);
			if (spec > best || (spec == best && a->act > chosen)) {
				best = spec;
				chosen = a->act;
			}
		}
		act[r] = chosen;
	}
	for (int r = n; r < SCAN_MAX_RULES; r++)
		act[r] = ACT_OFF;
}

/* ---------- model access ---------- */

/* user_id's group mask from the 5 s cache (true), or false when it must be read. */
static bool groups_cached(struct policy *p, int64_t user_id, int64_t t, uint64_t *mask)
{
	struct group_slot *sl = &p->groups[(uint64_t)user_id % GROUP_SLOTS];
	pthread_mutex_lock(&p->group_mu);
	bool hit = sl->user_id == user_id && t - sl->fetched_ns < GROUP_TTL_NS;
	if (hit)
		*mask = sl->mask;
	pthread_mutex_unlock(&p->group_mu);
	return hit;
}

/* user_id's membership of the groups model_access names, from the 5 s cache or Postgres. */
static tsr_rc user_groups(struct policy *p, int64_t user_id, uint64_t *mask)
{
	int64_t t = now_ns();
	if (groups_cached(p, user_id, t, mask))
		return TSR_OK;
	size_t n;
	const char *const *names = model_access_group_names(p->models, &n);
	struct db_conn *c;
	tsr_rc rc = db_acquire(p->b->pool, 1000, &c);
	if (rc != TSR_OK)
		return rc;
	rc = db_user_group_mask(c, user_id, names, n, mask);
	db_release(p->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	struct group_slot *sl = &p->groups[(uint64_t)user_id % GROUP_SLOTS];
	pthread_mutex_lock(&p->group_mu);
	sl->user_id = user_id;
	sl->fetched_ns = t;
	sl->mask = *mask;
	pthread_mutex_unlock(&p->group_mu);
	return TSR_OK;
}

tsr_rc policy_model_ok(struct policy *p, const char *model, int64_t user_id, unsigned roles, char *why, size_t whylen)
{
	if (model_access_empty(p->models))
		return TSR_OK;
	int rule;
	enum ma_verdict v = model_access_check(p->models, model, roles, NULL, &rule);
	if (v == MA_NEED_GROUPS) {
		uint64_t mask;
		tsr_rc rc = user_groups(p, user_id, &mask);
		if (rc != TSR_OK) {
			snprintf(why, whylen, "policy model_access: group membership unavailable: database unreachable");
			return TSR_UNAVAILABLE;
		}
		v = model_access_check(p->models, model, roles, &mask, &rule);
	}
	if (v == MA_ALLOW)
		return TSR_OK;
	model_access_why(p->models, rule, model, why, whylen);
	return TSR_DENIED;
}

/* ---------- rate and budget ---------- */

static int secs_until(int64_t end_ns, int64_t t)
{
	int64_t left = end_ns - t;
	int s = (int)((left + 999999999LL) / 1000000000LL);
	return s < 1 ? 1 : s;
}

/*
 * The per-replica token bucket of e, used while Postgres cannot be reached.
 * It holds at most what this replica's leases left of the current window's
 * limit: requests served from leases in this window count against it, so a
 * fallback never starts with a whole fresh minute's allowance. rate_mu held.
 */
static tsr_rc local_bucket(struct rate_entry *e, int64_t limit, int64_t t, int *retry_after)
{
	double per_ns = (double)limit / 60e9;
	bool in_window = t < e->window_end_ns;
	double cap = (double)(limit - (in_window ? e->leased : 0));
	if (cap < 0)
		cap = 0;
	if (e->last_ns == 0) {
		e->tokens = cap;
		e->last_ns = t;
	}
	e->tokens += (double)(t - e->last_ns) * per_ns;
	if (e->tokens > cap)
		e->tokens = cap;
	e->last_ns = t;
	if (e->tokens >= 1.0) {
		e->tokens -= 1.0;
		return TSR_OK;
	}
	*retry_after = cap < 1.0 && in_window ? secs_until(e->window_end_ns, t)
					      : (int)((1.0 - e->tokens) / (per_ns * 1e9)) + 1;
	return TSR_RATE_LIMITED;
}

static unsigned rate_bucket(int64_t user_id)
{
	return (unsigned)((uint64_t)user_id * 0x9E3779B97F4A7C15ULL >> 51) % RATE_BUCKETS;
}

/* user_id's entry, or NULL. rate_mu held. */
static struct rate_entry *rate_find(struct policy *p, int64_t user_id)
{
	struct rate_entry *e = p->buckets[rate_bucket(user_id)];
	while (e && e->user_id != user_id)
		e = e->next;
	return e;
}

/* user_id's entry, created when missing; NULL when out of memory. rate_mu held. */
static struct rate_entry *rate_entry(struct policy *p, int64_t user_id)
{
	struct rate_entry *e = rate_find(p, user_id);
	if (e)
		return e;
	if (p->n_rate >= RATE_MAX_USERS) {
		/* rare: forget every user wholesale (leases left unused are lost: the limit still holds) */
		for (int i = 0; i < RATE_BUCKETS; i++)
			while (p->buckets[i]) {
				struct rate_entry *x = p->buckets[i];
				p->buckets[i] = x->next;
				free(x);
			}
		p->n_rate = 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	unsigned k = rate_bucket(user_id);
	e->user_id = user_id;
	e->next = p->buckets[k];
	p->buckets[k] = e;
	p->n_rate++;
	return e;
}

tsr_rc policy_rate(struct policy *p, int64_t user_id, int *retry_after)
{
	int64_t limit = p->b->cfg->gateway.rate_limit;
	if (limit <= 0)
		return TSR_OK;
	int64_t t = now_ns();
	pthread_mutex_lock(&p->rate_mu);
	struct rate_entry *e = rate_entry(p, user_id);
	if (!e) {
		pthread_mutex_unlock(&p->rate_mu);
		return TSR_OK; /* fail open on the rate limit only: budgets and audit still apply */
	}
	if (t >= e->window_end_ns) {
		e->left = e->leased = 0;
		e->spent = false;
	}
	if (e->left > 0) {
		e->left--;
		pthread_mutex_unlock(&p->rate_mu);
		return TSR_OK;
	}
	if (e->spent) {
		*retry_after = secs_until(e->window_end_ns, t);
		pthread_mutex_unlock(&p->rate_mu);
		return TSR_RATE_LIMITED;
	}
	if (t < p->rate_db_down_until_ns) {
		tsr_rc rc = local_bucket(e, limit, t, retry_after);
		pthread_mutex_unlock(&p->rate_mu);
		return rc;
	}
	/* a new lease: small at first, growing with what this replica used in the window */
	int64_t cap = limit / RATE_SLICE_DIV > 1 ? limit / RATE_SLICE_DIV : 1;
	int want = (int)(e->leased < 1 ? 1 : e->leased < cap ? e->leased : cap);
	bool prune = t - p->rate_pruned_ns > RATE_PRUNE_NS;
	if (prune)
		p->rate_pruned_ns = t;
	pthread_mutex_unlock(&p->rate_mu);

	struct db_conn *c;
	int granted = 0;
	int64_t wstart = 0, left_ms = 0;
	tsr_rc rc = db_acquire(p->b->pool, 1000, &c);
	if (rc == TSR_OK) {
		rc = db_rate_lease(c, user_id, want, limit, &granted, &wstart, &left_ms);
		if (rc == TSR_OK && prune && db_rate_prune(c) != TSR_OK)
			log_warn("rate_prune_failed", "table=rate_windows");
		db_release(p->b->pool, c);
	}
	int64_t t2 = now_ns();
	pthread_mutex_lock(&p->rate_mu);
	e = rate_entry(p, user_id); /* the lock was dropped: it may have been forgotten */
	if (!e) {
		pthread_mutex_unlock(&p->rate_mu);
		return TSR_OK;
	}
	if (rc != TSR_OK) {
		/* Postgres unreachable: the per-replica bucket for a while (tessera.conf(5)) */
		if (t2 >= p->rate_db_down_until_ns)
			log_warn("rate_lease_unavailable", "user_id=%lld fallback=local_bucket", (long long)user_id);
		p->rate_db_down_until_ns = t2 + RATE_DB_BACKOFF_NS;
		rc = local_bucket(e, limit, t2, retry_after);
		pthread_mutex_unlock(&p->rate_mu);
		return rc;
	}
	if (wstart != e->window_start || t2 >= e->window_end_ns) {
		e->window_start = wstart;
		e->left = e->leased = 0;
		e->spent = false;
	}
	e->window_end_ns = t2 + left_ms * 1000000LL;
	e->left += granted;
	e->leased += granted;
	if (granted == 0)
		e->spent = true;
	if (e->left > 0) {
		e->left--;
		rc = TSR_OK;
	} else {
		*retry_after = secs_until(e->window_end_ns, t2);
		rc = TSR_RATE_LIMITED;
	}
	pthread_mutex_unlock(&p->rate_mu);
	return rc;
}

bool policy_fast(struct policy *p, int64_t user_id)
{
	if (policy_has_budget(p))
		return false; /* every reservation is a statement */
	int64_t t = now_ns();
	size_t n_groups = 0;
	if (!model_access_empty(p->models))
		model_access_group_names(p->models, &n_groups);
	uint64_t mask;
	if (n_groups > 0 && !groups_cached(p, user_id, t, &mask))
		return false; /* model_access needs this user's groups: a query */
	if (p->b->cfg->gateway.rate_limit <= 0)
		return true;
	/* as policy_rate: served from the lease, refused locally, or counted locally while Postgres is down */
	pthread_mutex_lock(&p->rate_mu);
	struct rate_entry *e = rate_find(p, user_id);
	bool fast = e && t < e->window_end_ns && (e->left > 0 || e->spent);
	fast = fast || t < p->rate_db_down_until_ns;
	pthread_mutex_unlock(&p->rate_mu);
	return fast;
}

bool policy_has_budget(const struct policy *p)
{
	return p->b->cfg->gateway.daily_token_budget > 0;
}

tsr_rc policy_budget_reserve(struct policy *p, int64_t user_id, int64_t est, int *retry_after, char *why,
			     size_t whylen)
{
	int64_t limit = p->b->cfg->gateway.daily_token_budget;
	if (limit <= 0)
		return TSR_OK;
	struct db_conn *c;
	tsr_rc rc = db_acquire(p->b->pool, 1000, &c);
	if (rc != TSR_OK)
		return rc;
	bool granted = false;
	int64_t spent = 0;
	rc = db_usage_reserve(c, user_id, est, limit, &granted, &spent);
	db_release(p->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	if (granted)
		return TSR_OK;
	time_t now = time(NULL);
	*retry_after = (int)(86400 - now % 86400);
	snprintf(why, whylen,
		 "policy daily_token_budget: %lld of %lld tokens used or reserved today (UTC); this request needs "
		 "about %lld more",
		 (long long)spent, (long long)limit, (long long)est);
	return TSR_RATE_LIMITED;
}

/* Apply the settlements of list (the settler, or the caller when it could not queue); frees them. */
static void settle_apply(struct policy *p, struct settle *list)
{
	struct db_conn *c = NULL;
	tsr_rc got = list ? db_acquire(p->b->pool, 1000, &c) : TSR_OK;
	while (list) {
		struct settle *s = list;
		list = s->next;
		tsr_rc rc = got == TSR_OK ? db_usage_settle(c, s->user_id, s->reserved, s->used, s->bytes_out) : got;
		if (rc != TSR_OK)
			log_warn("usage_settle_failed", "user_id=%lld reserved=%lld used=%lld", (long long)s->user_id,
				 (long long)s->reserved, (long long)s->used);
		free(s);
	}
	if (c)
		db_release(p->b->pool, c);
}

static void *settler(void *arg)
{
	struct policy *p = arg;
	pthread_setname_np(pthread_self(), "budget-settle");
	pthread_mutex_lock(&p->settle_mu);
	for (;;) {
		while (!p->sq && !p->settle_stop)
			pthread_cond_wait(&p->settle_cv, &p->settle_mu);
		struct settle *list = p->sq;
		p->sq = p->sq_tail = NULL;
		bool stop = p->settle_stop;
		pthread_mutex_unlock(&p->settle_mu);
		settle_apply(p, list); /* in arrival order, on one connection */
		pthread_mutex_lock(&p->settle_mu);
		if (stop && !p->sq)
			break;
	}
	pthread_mutex_unlock(&p->settle_mu);
	return NULL;
}

/*
 * Queued for the settler: this runs where a request's last reference drops,
 * an HTTP worker's event loop or the audit writer, neither of which may wait
 * on PostgreSQL. Until it is applied the reservation still counts, so a
 * budget can only look more spent than it is, never less.
 */
void policy_budget_settle(struct policy *p, int64_t user_id, int64_t reserved, int64_t used, int64_t bytes_out)
{
	if (p->b->cfg->gateway.daily_token_budget <= 0)
		return;
	struct settle *s = calloc(1, sizeof(*s));
	if (!s) {
		log_warn("usage_settle_failed", "user_id=%lld reserved=%lld used=%lld", (long long)user_id,
			 (long long)reserved, (long long)used);
		return;
	}
	*s = (struct settle){ .user_id = user_id, .reserved = reserved, .used = used, .bytes_out = bytes_out };
	pthread_mutex_lock(&p->settle_mu);
	if (!p->settler_started && !p->settle_stop)
		p->settler_started = pthread_create(&p->settler, NULL, settler, p) == 0;
	if (!p->settler_started) {
		pthread_mutex_unlock(&p->settle_mu);
		settle_apply(p, s); /* no thread: here, as before */
		return;
	}
	if (p->sq_tail)
		p->sq_tail->next = s;
	else
		p->sq = s;
	p->sq_tail = s;
	pthread_cond_signal(&p->settle_cv);
	pthread_mutex_unlock(&p->settle_mu);
}
