/*
 * tokencache.c — see tokencache.h.
 *
 * A chained hash table keyed by the token hash. Entries are heap copies of
 * struct principal plus timing; the table holds at most MAX_ENTRIES and is
 * cleared when full (cheap, rare, and always safe: a miss only costs a
 * lookup). Lock: tc->mu guards the table, the epoch, the counters and the
 * touch queue.
 *
 * The check runs on HTTP workers, event loops that must not wait on
 * PostgreSQL, so a thread of the cache's own ("token-refresh") does what
 * can be done ahead: it re-reads an entry in use before it goes stale
 * (REFRESH_AHEAD_NS before FRESH_NS; an entry no longer valid is dropped,
 * so the next request gets the exact answer), and records last use
 * (db_credential_touch, best effort). A request waits on PostgreSQL only
 * for a token not seen in the last FRESH_NS, or while notifications are down.
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
#define REFRESH_AHEAD_NS (10LL * 1000000000LL) /* re-read in the background from 20 s of age */
#define REFRESH_MAX 256                          /* entries re-read per pass (1 s) */
#define TOUCH_QUEUE 256

struct entry {
	struct entry *next;
	uint8_t hash[32];
	struct principal p;
	int64_t fetched_ns;
	int64_t touched_ns;
	int64_t used_ns;
};

struct tokencache {
	struct broker *b;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* with mu: the refresher's work (touches) or stop */
	struct entry *buckets[NBUCKETS];
	int n;
	uint64_t epoch;
	uint64_t hits, misses, refreshes;
	struct notify *nt;
	pthread_t thread;
	bool started, stop;
	int64_t touch_q[TOUCH_QUEUE];
	int n_touch;
};

static void *refresher(void *arg);

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
	pthread_cond_init(&tc->cv, NULL);
	const char *chans[] = { NOTIFY_REVOKE_CHANNEL, NOTIFY_PERM_CHANNEL };
	struct notify_ops ops = { on_notify, on_reset, tc };
	if (notify_start(b->conninfo, chans, 2, &ops, &tc->nt) != TSR_OK) {
		pthread_cond_destroy(&tc->cv);
		pthread_mutex_destroy(&tc->mu);
		free(tc);
		return TSR_INTERNAL;
	}
	tc->started = pthread_create(&tc->thread, NULL, refresher, tc) == 0;
	if (!tc->started)
		log_warn("token_refresh_not_started", "effect=\"tokens in use are re-read on the request path\"");
	*out = tc;
	return TSR_OK;
}

void tokencache_stop(struct tokencache *tc)
{
	if (!tc)
		return;
	if (tc->started) {
		pthread_mutex_lock(&tc->mu);
		tc->stop = true;
		pthread_cond_signal(&tc->cv);
		pthread_mutex_unlock(&tc->mu);
		pthread_join(tc->thread, NULL);
	}
	notify_stop(tc->nt);
	pthread_mutex_lock(&tc->mu);
	evict_where(tc, match_all, 0);
	pthread_mutex_unlock(&tc->mu);
	pthread_cond_destroy(&tc->cv);
	pthread_mutex_destroy(&tc->mu);
	free(tc);
}

/* Read the credential from PostgreSQL; *good: valid to cache. Touches last use once when touch. */
static tsr_rc fetch(struct tokencache *tc, const uint8_t hash[32], struct principal *out, bool touch, bool *good)
{
	struct db_conn *c;
	*good = false;
	tsr_rc rc = db_acquire(tc->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	rc = db_credential_lookup(c, hash, out);
	*good = rc == TSR_OK && !out->revoked && !out->expired && out->active && out->perm_ok;
	if (*good && touch) {
		tsr_rc ignored = db_credential_touch(c, out->cred_id);
		(void)ignored;
	}
	db_release(tc->b->pool, c);
	return rc;
}

/* Remove the entry of hash, if any; mu held. */
static void unlink_hash(struct tokencache *tc, const uint8_t hash[32])
{
	struct entry **pp = &tc->buckets[bucket_of(hash)];
	while (*pp) {
		if (!CRYPTO_memcmp((*pp)->hash, hash, 32)) {
			struct entry *old = *pp;
			*pp = old->next;
			free_entry(old);
			tc->n--;
			return;
		}
		pp = &(*pp)->next;
	}
}

/* Cache p as read at t, unless an invalidation arrived since epoch (then the copy may predate it). */
static void store(struct tokencache *tc, const uint8_t hash[32], const struct principal *p, int64_t t, int64_t used,
		  uint64_t epoch)
{
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return; /* caching is an optimisation */
	memcpy(e->hash, hash, 32);
	e->p = *p;
	e->fetched_ns = e->touched_ns = t;
	e->used_ns = used;
	pthread_mutex_lock(&tc->mu);
	if (tc->epoch != epoch) {
		pthread_mutex_unlock(&tc->mu);
		free_entry(e);
		return;
	}
	if (tc->n >= MAX_ENTRIES)
		evict_where(tc, match_all, 0);
	unlink_hash(tc, hash); /* a stale copy */
	unsigned bk = bucket_of(hash);
	e->next = tc->buckets[bk];
	tc->buckets[bk] = e;
	tc->n++;
	pthread_mutex_unlock(&tc->mu);
}

/* A fresh cached entry for hash into *out (a hit: counted, its use noted); false otherwise. */
static bool cached(struct tokencache *tc, const uint8_t hash[32], struct principal *out, int64_t t)
{
	int64_t fresh = notify_connected(tc->nt) ? FRESH_NS : FRESH_DOWN_NS;
	unsigned bk = bucket_of(hash);
	pthread_mutex_lock(&tc->mu);
	for (struct entry *e = tc->buckets[bk]; e; e = e->next) {
		if (!CRYPTO_memcmp(e->hash, hash, 32) && t - e->fetched_ns < fresh) {
			*out = e->p;
			e->used_ns = t;
			if (t - e->touched_ns > TOUCH_NS && tc->n_touch < TOUCH_QUEUE) {
				e->touched_ns = t;
				tc->touch_q[tc->n_touch++] = e->p.cred_id; /* recorded by the refresher */
				pthread_cond_signal(&tc->cv);
			}
			tc->hits++;
			pthread_mutex_unlock(&tc->mu);
			out->expired = out->expires_unix && out->expires_unix <= (int64_t)time(NULL);
			return true;
		}
	}
	pthread_mutex_unlock(&tc->mu);
	return false;
}

bool tokencache_peek(struct tokencache *tc, const uint8_t hash[32], struct principal *out)
{
	return cached(tc, hash, out, now_ns());
}

tsr_rc tokencache_check(struct tokencache *tc, const uint8_t hash[32], struct principal *out)
{
	int64_t t = now_ns();
	if (cached(tc, hash, out, t))
		return TSR_OK;
	pthread_mutex_lock(&tc->mu);
	tc->misses++;
	uint64_t epoch = tc->epoch; /* read before the fetch: an invalidation after it keeps the result out */
	pthread_mutex_unlock(&tc->mu);

	bool good;
	tsr_rc rc = fetch(tc, hash, out, true, &good);
	if (!good)
		return rc; /* refusals are not cached: they are rare and must stay exact */
	store(tc, hash, out, t, t, epoch);
	return TSR_OK;
}

/*
 * The refresher: once a second (or when a touch is queued), record queued
 * last uses and re-read the entries in use that are about to go stale.
 */
static void *refresher(void *arg)
{
	struct tokencache *tc = arg;
	pthread_setname_np(pthread_self(), "token-refresh");
	struct cand {
		uint8_t hash[32];
		int64_t used;
	} *cand = calloc(REFRESH_MAX, sizeof(*cand));
	int64_t touch[TOUCH_QUEUE];
	pthread_mutex_lock(&tc->mu);
	while (!tc->stop) {
		if (tc->n_touch == 0) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&tc->cv, &tc->mu, &until);
			if (tc->stop)
				break;
		}
		int nt = tc->n_touch;
		memcpy(touch, tc->touch_q, (size_t)nt * sizeof(touch[0]));
		tc->n_touch = 0;
		int nc = 0;
		int64_t t = now_ns();
		bool ahead = cand && notify_connected(tc->nt); /* while notifications are down, entries last 1 s anyway */
		for (int i = 0; ahead && i < NBUCKETS && nc < REFRESH_MAX; i++)
			for (struct entry *e = tc->buckets[i]; e && nc < REFRESH_MAX; e = e->next)
				if (t - e->fetched_ns > FRESH_NS - REFRESH_AHEAD_NS && t - e->used_ns < FRESH_NS) {
					memcpy(cand[nc].hash, e->hash, 32);
					cand[nc++].used = e->used_ns;
				}
		uint64_t epoch = tc->epoch;
		pthread_mutex_unlock(&tc->mu);

		if (nt > 0) {
			struct db_conn *c;
			if (db_acquire(tc->b->pool, 2000, &c) == TSR_OK) {
				for (int i = 0; i < nt; i++) {
					tsr_rc ignored = db_credential_touch(c, touch[i]);
					(void)ignored; /* last_used_at is best effort */
				}
				db_release(tc->b->pool, c);
			}
		}
		for (int i = 0; i < nc; i++) {
			struct principal p;
			bool good;
			int64_t at = now_ns();
			tsr_rc rc = fetch(tc, cand[i].hash, &p, false, &good);
			if (good) {
				store(tc, cand[i].hash, &p, at, cand[i].used, epoch);
			} else if (rc != TSR_UNAVAILABLE) {
				/* revoked, expired, gone: the next request gets the exact answer from PostgreSQL */
				pthread_mutex_lock(&tc->mu);
				unlink_hash(tc, cand[i].hash);
				pthread_mutex_unlock(&tc->mu);
			}
			OPENSSL_cleanse(&p, sizeof(p));
			pthread_mutex_lock(&tc->mu);
			if (good)
				tc->refreshes++;
			bool stop = tc->stop;
			pthread_mutex_unlock(&tc->mu);
			if (stop)
				break;
		}
		if (cand)
			OPENSSL_cleanse(cand, (size_t)REFRESH_MAX * sizeof(*cand));
		pthread_mutex_lock(&tc->mu);
	}
	pthread_mutex_unlock(&tc->mu);
	free(cand);
	return NULL;
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

uint64_t tokencache_refreshes(struct tokencache *tc)
{
	pthread_mutex_lock(&tc->mu);
	uint64_t v = tc->refreshes;
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
