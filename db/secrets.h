/*
 * secrets.h — versioned secrets tessera verifies with (HR and GitHub webhook
 * secrets), stored in the table secrets of migrations/0001 only as
 * AES-256-GCM envelopes under the master key (lib/masterkey.h); this module
 * moves envelopes, never plaintext.
 *
 * One name (e.g. "webhook.hr") has at most one 'active' version; rotation
 * turns it 'retiring' with not_after = now + overlap, during which both
 * verify; then a job retires it and shreds its envelope (columns NULL).
 * The caller seals with AAD "secret:NAME:VERSION" (db_secret_aad()).
 * Functions run in the caller's transaction.
 */
#ifndef TSR_DB_SECRETS_H
#define TSR_DB_SECRETS_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"
#include "../lib/masterkey.h"

/* One usable version: active, or retiring with not_after in the future. */
struct db_secret {
	int version;
	bool active;
	int64_t not_after_ms; /* Unix milliseconds; 0 for the active version */
	struct sealed sealed; /* free with db_secrets_free() */
};

/* The AAD binding a version's envelope to its row: "secret:NAME:VERSION". */
void db_secret_aad(const char *name, int version, char *out, size_t n);

/*
 * The usable versions of name, newest first (at most max). Caller frees
 * *out with db_secrets_free(*out, *n). *n is 0 when name has none.
 */
tsr_rc db_secrets_usable(struct db_conn *c, const char *name, int max, struct db_secret **out, int *n) TSR_WUR;
void db_secrets_free(struct db_secret *v, int n);

/*
 * Serialise rotations of name (transaction-scoped advisory lock) and return
 * the next version number and whether an active version exists.
 */
tsr_rc db_secret_lock(struct db_conn *c, const char *name, int *next_version, bool *has_active) TSR_WUR;

/*
 * Insert version of name sealed as s. active: demote the current active
 * version (if any) to retiring first; else the row is inserted retiring.
 * Either way a retiring row gets not_after = now() + overlap_s. The master
 * key id of s is registered (master_keys) first. *prev_version is the
 * demoted version (0 if none) and prev_not_after its deadline (ISO 8601 UTC,
 * "" if none); both may be NULL.
 */
tsr_rc db_secret_insert(struct db_conn *c, const char *name, int version, bool active, int64_t overlap_s,
			const struct sealed *s, const char *created_by, int *prev_version, char *prev_not_after,
			size_t pnlen) TSR_WUR;

/*
 * The active version of name: *version (0 when there is none) and its age
 * in seconds.
 */
tsr_rc db_secret_active(struct db_conn *c, const char *name, int *version, int64_t *age_s) TSR_WUR;

/*
 * Make the retiring version of name the active one (a secret stored before
 * a peer was told about it): the current active version, if any, turns
 * retiring with not_after = now() + overlap_s. TSR_NOT_FOUND when version
 * is no longer retiring with its envelope. *prev_version / prev_not_after
 * as for db_secret_insert(). Call under db_secret_lock().
 */
tsr_rc db_secret_promote(struct db_conn *c, const char *name, int version, int64_t overlap_s, int *prev_version,
			 char *prev_not_after, size_t pnlen) TSR_WUR;

/* Retire version of name at once, shredding its envelope (a secret a peer refused). */
tsr_rc db_secret_discard(struct db_conn *c, const char *name, int version) TSR_WUR;

/*
 * The state of pushing name's secret to its peer (GitHub), kept in the
 * table settings ("secret.NAME.push") so the backoff survives a failover.
 */
struct db_secret_push {
	int attempts;            /* every push attempt ever, successful or not */
	int failures;            /* consecutive failed attempts */
	int64_t next_attempt_ms; /* Unix ms before which a scheduled attempt waits; 0: none */
	long last_status;        /* HTTP status of the last attempt; 0: no answer */
	bool last_ok;
	int last_version;        /* version the last attempt pushed */
	char last_error[32];     /* status name of the last failure, "" after a success */
};
/* Zeroed state when none is stored. */
tsr_rc db_secret_push_get(struct db_conn *c, const char *name, struct db_secret_push *out) TSR_WUR;
tsr_rc db_secret_push_put(struct db_conn *c, const char *name, const struct db_secret_push *st) TSR_WUR;

/* A version retired by db_secrets_retire_due(). */
struct db_secret_retired {
	int64_t id;
	char name[64];
	int version;
};
/*
 * Every retiring version past not_after becomes retired and its envelope is
 * shredded. Caller frees *out with free().
 */
tsr_rc db_secrets_retire_due(struct db_conn *c, struct db_secret_retired **out, int *n) TSR_WUR;

#endif
