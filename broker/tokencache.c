/*
 * tokencache.c — see tokencache.h.
 *
 * A chained hash table keyed by the token hash. Entries are heap copies of
 * struct principal plus timing; the table holds at most MAX_ENTRIES and is
 * cleared when full (cheap, rare, and always safe: a miss only costs a
 * lookup). Lock: tc->mu guards the table, the epoch and the counters.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "tokencache.h"
#include "../db/notify.h"
#include "../db/offboard.h"
#include "../lib/log.h"

#define NBUCKETS 4096
#define MAX_ENTRIES 50000
#define FRESH_NS (30LL * 1000000000LL)      /* re-read after 30 s at the latest */
#define FRESH_DOWN_NS (1LL * 1000000000LL)  /* 1 s while notifications may be missed */
#define TOUCH_NS (60LL * 1000000000LL)

struct entry {
	struct entry *next;
	uint8_t hash[32];
	struct principal p;
	int64_t fetched_ns;
	int64_t touched_ns;
};

struct tokencache {
	struct broker *b;
	pthread_mutex_t mu;
	struct entry *buckets[NBUCKETS];
	int n;
	uint64_t epoch;
	uint64_t hits, misses;
	struct notify *nt;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static unsigned bucket_of(const uint8_t h[32])
{
	return ((unsigned)h[0] << 8 | h[1]) % NBUCKETS;
}

static void free_entry(struct entry *e)
{
	OPENSSL_cleanse(e->hash, sizeof(e->hash));
	free(e);
}

/* Remove entries matching pred; mu held. */
static void evict_where(struct tokencache *tc, bool (*pred)(const struct entry *, int64_t), int64_t arg)
{
	for (int i = 0; i < NBUCKETS; i++) {
		struct entry **pp = &tc->buckets[i];
		while (*pp) {
			struct entry *e = *pp;
			if (pred(e, arg)) {
				*pp = e->next;
				free_entry(e);
				tc->n--;
			} else {
				pp = &e->next;
			}
		}
	}
	tc->epoch++;
}

static bool match_all(const struct entry *e, int64_t arg)
{
	return true;
}

static bool match_cred(const struct entry *e, int64_t id)
{
	return e->p.cred_id == id || e->p.session_id == id;
}

static bool match_user(const struct entry *e, int64_t id)
{
	return e->p.user_id == id;
}

static bool match_repo(const struct entry *e, int64_t id)
{
	for (int i = 0; i < e->p.n_repos; i++)
		if (e->p.repo_ids[i] == id)
			return true;
	return false;
}

void tokencache_flush(struct tokencache *tc)
{
	pthread_mutex_lock(&tc->mu);
	evict_where(tc, match_all, 0);
	pthread_mutex_unlock(&tc->mu);
}

void tokencache_evict_user(struct tokencache *tc, int64_t user_id)
{
	if (!tc)
		return;
	pthread_mutex_lock(&tc->mu);
	evict_where(tc, match_user, user_id);
	pthread_mutex_unlock(&tc->mu);
}

void tokencache_evict_cred(struct tokencache *tc, int64_t cred_id)
{
	if (!tc)
		return;
	pthread_mutex_lock(&tc->mu);
	evict_where(tc, match_cred, cred_id);
	pthread_mutex_unlock(&tc->mu);
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	struct tokencache *tc = arg;
	long long u = 0, r = 0;
	pthread_mutex_lock(&tc->mu);
	if (strcmp(channel, NOTIFY_REVOKE_CHANNEL) == 0) {
		if (sscanf(payload, "user:%lld", &u) == 1)
			evict_where(tc, match_user, u);
		else if (sscanf(payload, "%lld", &u) == 1)
			evict_where(tc, match_cred, u);
		else
			evict_where(tc, match_all, 0);
	} else if (strcmp(channel, NOTIFY_PERM_CHANNEL) == 0) {
		if (sscanf(payload, "user:%lld:repo:%lld", &u, &r) == 2 || sscanf(payload, "user:%lld", &u) == 1)
			evict_where(tc, match_user, u);
		else if (sscanf(payload, "repo:%lld", &r) == 1)
			evict_where(tc, match_repo, r);
		else
			evict_where(tc, match_all, 0);
	}
	pthread_mutex_unlock(&tc->mu);
}

static void on_reset(void *arg)
{
	tokencache_flush(arg);
}

tsr_rc tokencache_start(struct broker *b, struct tokencache **out)
{
	struct tokencache *tc = calloc(1, sizeof(*tc));
	if (!tc)
		return TSR_INTERNAL;
	tc->b = b;
	pthread_mutex_init(&tc->mu, NULL);
	const char *chans[] = { NOTIFY_REVOKE_CHANNEL, NOTIFY_PERM_CHANNEL };
	struct notify_ops ops = { on_notify, on_reset, tc };
	if (notify_start(b->conninfo, chans, 2, &ops, &tc->nt) != TSR_OK) {
		pthread_mutex_destroy(&tc->mu);
		free(tc);
		return TSR_INTERNAL;
	}
	*out = tc;
	return TSR_OK;
}

void tokencache_stop(struct tokencache *tc)
{
	if (!tc)
		return;
	notify_stop(tc->nt);
	pthread_mutex_lock(&tc->mu);
	evict_where(tc, match_all, 0);
	pthread_mutex_unlock(&tc->mu);
	pthread_mutex_destroy(&tc->mu);
	free(tc);
}

tsr_rc tokencache_check(struct tokencache *tc, const uint8_t hash[32], struct principal *out)
{
	int64_t t = now_ns();
	int64_t fresh = notify_connected(tc->nt) ? FRESH_NS : FRESH_DOWN_NS;
	bool touch = false;
	unsigned bk = bucket_of(hash);
	pthread_mutex_lock(&tc->mu);
	for (struct entry *e = tc->buckets[bk]; e; e = e->next) {
		if (!CRYPTO_memcmp(e->hash, hash, 32) && t - e->fetched_ns < fresh) {
			*out = e->p;
			if (t - e->touched_ns > TOUCH_NS) {
				e->touched_ns = t;
				touch = true;
			}
			tc->hits++;
			pthread_mutex_unlock(&tc->mu);
			out->expired = out->expires_unix && out->expires_unix <= (int64_t)time(NULL);
			if (touch) {
				struct db_conn *c;
				if (db_acquire(tc->b->pool, 1000, &c) == TSR_OK) {
					tsr_rc ignored = db_credential_touch(c, out->cred_id);
					(void)ignored; /* last_used_at is best effort */
					db_release(tc->b->pool, c);
				}
			}
			return TSR_OK;
		}
	}
	uint64_t epoch = tc->epoch;
	tc->misses++;
	pthread_mutex_unlock(&tc->mu);

	struct db_conn *c;
	tsr_rc rc = db_acquire(tc->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	rc = db_credential_lookup(c, hash, out);
	bool good = rc == TSR_OK && !out->revoked && !out->expired && out->active && out->perm_ok;
	if (good) {
		tsr_rc ignored = db_credential_touch(c, out->cred_id);
		(void)ignored;
	}
	db_release(tc->b->pool, c);
	if (!good)
		return rc; /* refusals are not cached: they are rare and must stay exact */

	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return TSR_OK; /* caching is an optimisation */
	memcpy(e->hash, hash, 32);
	e->p = *out;
	e->fetched_ns = e->touched_ns = t;
	pthread_mutex_lock(&tc->mu);
	if (tc->epoch != epoch) {
		/* an invalidation arrived while we read: our copy may predate it */
		pthread_mutex_unlock(&tc->mu);
		free_entry(e);
		return TSR_OK;
	}
	if (tc->n >= MAX_ENTRIES)
		evict_where(tc, match_all, 0);
	/* replace a stale copy if present */
	struct entry **pp = &tc->buckets[bk];
	while (*pp) {
		if (!CRYPTO_memcmp((*pp)->hash, hash, 32)) {
			struct entry *old = *pp;
			*pp = old->next;
			free_entry(old);
			tc->n--;
			break;
		}
		pp = &(*pp)->next;
	}
	e->next = tc->buckets[bk];
	tc->buckets[bk] = e;
	tc->n++;
	pthread_mutex_unlock(&tc->mu);
	return TSR_OK;
}

int tokencache_size(struct tokencache *tc)
{
	pthread_mutex_lock(&tc->mu);
	int n = tc->n;
	pthread_mutex_unlock(&tc->mu);
	return n;
}

int tokencache_listener_pid(struct tokencache *tc)
{
	return notify_backend_pid(tc->nt);
}

uint64_t tokencache_hits(struct tokencache *tc)
{
	pthread_mutex_lock(&tc->mu);
	uint64_t v = tc->hits;
	pthread_mutex_unlock(&tc->mu);
	return v;
}

uint64_t tokencache_misses(struct tokencache *tc)
{
	pthread_mutex_lock(&tc->mu);
	uint64_t v = tc->misses;
	pthread_mutex_unlock(&tc->mu);
	return v;
}
