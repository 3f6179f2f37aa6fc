/*
 * upstream.h — LLM upstreams and their encrypted provider keys as stored in
 * Postgres (tables upstreams and upstream_keys of migrations/0001).
 *
 * Config is the source of the upstream rows: at start tesserad upserts one
 * row per [upstream.NAME] and marks rows no longer configured removed. Keys
 * are stored only as AES-256-GCM envelopes (lib/masterkey.h); this module
 * moves envelopes, never plaintext.
 */
#ifndef TSR_DB_UPSTREAM_H
#define TSR_DB_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"
#include "../lib/config.h"
#include "../lib/masterkey.h"

/* Upsert the row of u (un-removing it); *id receives its id. */
tsr_rc db_upstream_sync(struct db_conn *c, const struct cfg_upstream *u, int64_t *id) TSR_WUR;
/* Mark every upstream not in names[0..n) removed (keeps the row). *removed: how many changed. */
tsr_rc db_upstream_mark_removed(struct db_conn *c, const char *const *names, size_t n, int *removed) TSR_WUR;
/* Record a master key id (so key rows can reference it); harmless when present. */
tsr_rc db_master_key_register(struct db_conn *c, const char *master_key_id) TSR_WUR;

/* The active key of an upstream: its row id, version, fingerprint and envelope. */
struct upstream_key {
	int64_t id;
	int version;
	char fingerprint[33];
	struct sealed sealed; /* caller frees with sealed_free() */
};

/* TSR_NOT_FOUND when the upstream has no active key. */
tsr_rc db_upstream_active_key(struct db_conn *c, int64_t upstream_id, struct upstream_key *out) TSR_WUR;
/*
 * Store a new active key version from config: the envelope s sealed with
 * AAD "upstream_key:NAME:VERSION" for the version returned in *version.
 * The caller seals with the version it was told: call with *version = 0 to
 * learn the next version, then again with it. TSR_CONFLICT if another
 * replica activated a key meanwhile.
 */
tsr_rc db_upstream_key_next_version(struct db_conn *c, int64_t upstream_id, int *version) TSR_WUR;
tsr_rc db_upstream_key_insert(struct db_conn *c, int64_t upstream_id, int version, const char *origin,
			      const struct sealed *s, const char *fingerprint, int64_t *key_id) TSR_WUR;

/* One upstream for `tessera upstream list|show`. */
struct upstream_row {
	int64_t id;
	char name[64], kind[32], base_url[512], region[64], models[1024];
	bool baa, on_prem, removed;
	char rotation_period[40], grace_period[40];
	char first_used_at[40], last_used_at[40], created_at[40];
	int key_version;              /* active key, 0 if none */
	char key_fingerprint[33], key_activated_at[40], key_origin[16];
	int keys_total;
	int64_t key_age_s;            /* seconds since the active key was activated */
	char next_rotation_at[40];    /* activated_at + rotation_period, "" without a key */
	bool rotation_due;            /* the active key is older than rotation_period */
	int keys_retiring;            /* versions still valid for in-flight requests */
};

/* Every upstream (name order); caller frees *rows with free(). */
tsr_rc db_upstream_list(struct db_conn *c, struct upstream_row **rows, int *n) TSR_WUR;
/* One by name; TSR_NOT_FOUND if none. */
tsr_rc db_upstream_get(struct db_conn *c, const char *name, struct upstream_row *out) TSR_WUR;
/*
 * Rotation (issue 8). Lock the live upstream name (FOR UPDATE, inside the
 * caller's transaction) so concurrent rotations of one upstream serialise;
 * TSR_NOT_FOUND if there is no such live upstream.
 */
tsr_rc db_upstream_lock(struct db_conn *c, const char *name, int64_t *id) TSR_WUR;
/*
 * In the caller's transaction: demote the active key (if any) to retiring
 * with retire_after = now() + the upstream's grace_period, then insert s as
 * the new active version (sealed with AAD "upstream_key:NAME:VERSION").
 * *old_version is 0 when there was no active key; retire_after gets the
 * old key's deadline (ISO 8601 UTC, "" when none).
 */
tsr_rc db_upstream_key_rotate(struct db_conn *c, int64_t upstream_id, int version, const char *origin,
			      const struct sealed *s, const char *fingerprint, int64_t *key_id, int *old_version,
			      char *retire_after, size_t ralen) TSR_WUR;
/* A key retired by db_upstream_keys_retire_due(). */
struct upstream_key_retired {
	int64_t key_id;
	char upstream[64];
	int version;
	char fingerprint[33];
};
/*
 * In the caller's transaction: every retiring key past retire_after becomes
 * retired and its envelope is shredded (set NULL). *out (caller frees with
 * free()) lists them; *n how many.
 */
tsr_rc db_upstream_keys_retire_due(struct db_conn *c, struct upstream_key_retired **out, int *n) TSR_WUR;

/*
 * Automatic rotation (issue 8; migrations/0007): the scheduler's shared
 * state per upstream (table upstream_rotation) and the deletion of retired
 * provider keys at the provider. Backoff: after the n-th consecutive
 * failure the next attempt waits min(base_s * 2^(n-1), max_s) seconds.
 * Timestamps are ISO 8601 UTC with microseconds ("" when NULL), so the CLI
 * can compare them as strings.
 */
struct rotation_candidate {
	int64_t upstream_id;
	char name[64];
	bool has_key;             /* an active key exists */
	int key_version;
	int64_t key_age_s;
	bool due;                 /* the active key is older than rotation_period */
	bool requested;           /* a --now request is pending */
	char requested_by[128];
	int failures;             /* consecutive failed attempts */
	bool may_attempt;         /* the backoff after the last failure has passed */
	bool reminded_recently;   /* an overdue operator-supplied key was logged within the hour */
};
/* Every live upstream; caller frees *out with free(). */
tsr_rc db_rotation_candidates(struct db_conn *c, struct rotation_candidate **out, int *n) TSR_WUR;
/* Ask for a rotation now (clears the backoff); requested_at gets the request's time. */
tsr_rc db_rotation_request(struct db_conn *c, int64_t upstream_id, const char *by, char *requested_at,
			   size_t ralen) TSR_WUR;
/* A successful rotation to version (clears the request, the failures and the backoff). */
tsr_rc db_rotation_succeeded(struct db_conn *c, int64_t upstream_id, int version, const char *fingerprint) TSR_WUR;
/* A failed attempt: counts it, sets the backoff; *failures and next_attempt_at (may be NULL) report it. */
tsr_rc db_rotation_failed(struct db_conn *c, int64_t upstream_id, const char *error, int base_s, int max_s,
			  int *failures, char *next_attempt_at, size_t nalen) TSR_WUR;
/* Count a failed provider call that is not a rotation attempt (a deletion) in failures_total. */
tsr_rc db_rotation_count_failure(struct db_conn *c, int64_t upstream_id) TSR_WUR;
tsr_rc db_rotation_reminded(struct db_conn *c, int64_t upstream_id) TSR_WUR;
struct rotation_status {
	char requested_at[48], last_attempt_at[48], last_outcome[16], last_error[256];
	int last_version;
	char last_fingerprint[33];
	int failures;
	char next_attempt_at[48];
};
/* The state of one upstream by name; TSR_NOT_FOUND if no such upstream (an empty state if never rotated). */
tsr_rc db_rotation_status(struct db_conn *c, const char *name, struct rotation_status *out) TSR_WUR;
/* For /metrics: per live upstream. Caller frees *out with free(). */
struct rotation_metric {
	char name[64];
	int64_t failures_total;
	int64_t last_success;     /* unix seconds, 0 if never */
	bool overdue;             /* the active key is older than rotation_period */
};
tsr_rc db_rotation_metrics(struct db_conn *c, struct rotation_metric **out, int *n) TSR_WUR;
/* Record the provider's id for a key (to delete it later; not secret). */
tsr_rc db_upstream_key_set_provider_id(struct db_conn *c, int64_t key_id, const char *provider_key_id) TSR_WUR;
/* A retired or revoked provider key still to be deleted at the provider. */
struct upstream_key_to_delete {
	int64_t key_id, upstream_id;
	char upstream[64];
	int version;
	char fingerprint[33];
	char provider_key_id[128];
	int failures;
};
/* Those whose backoff has passed; caller frees *out with free(). */
tsr_rc db_upstream_keys_to_delete(struct db_conn *c, struct upstream_key_to_delete **out, int *n) TSR_WUR;
tsr_rc db_upstream_key_provider_deleted(struct db_conn *c, int64_t key_id) TSR_WUR;
tsr_rc db_upstream_key_provider_delete_failed(struct db_conn *c, int64_t key_id, int base_s, int max_s,
					      int *failures) TSR_WUR;

/* Coarse last use (at most about once a minute per replica and upstream). */
tsr_rc db_upstream_touch(struct db_conn *c, int64_t upstream_id) TSR_WUR;

#endif
