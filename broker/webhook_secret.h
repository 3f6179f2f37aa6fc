/*
 * webhook_secret.h — the secrets that sign the HR and GitHub webhooks, and
 * their rotation with an overlap window.
 *
 * Where a webhook's secret comes from (NAME hr or github):
 *   - before the first rotation: the configured file ([hr] or [github]
 *     webhook_secret_file), read on each request as always (bootstrap);
 *   - once `tessera rotate webhook-secret NAME` has run (the table secrets
 *     holds an active version of "webhook.NAME"): only the versions in
 *     Postgres count — the active one, and each retiring one until its
 *     not_after — and the file is ignored (logged once per process,
 *     "webhook_secret_file_superseded"). The first rotation stores the
 *     file's secret as a retiring version, so senders still signing with it
 *     keep working for the overlap window.
 * Versions are sealed under the master key (db/secrets.h; AAD
 * "secret:webhook.NAME:VERSION"), so rotation needs [server]
 * master_key_file. Decrypted versions are cached per process for at most
 * WEBHOOK_SECRET_TTL_MS, so a busy webhook does not query Postgres per
 * request; a rotation on this replica drops the cache at once, one on
 * another replica is seen within the TTL. The end of a retiring version's
 * window is checked against the clock on every request, not at the next
 * reload, so the old secret stops working at not_after exactly.
 * The GitHub secret can also rotate without a person, tesserad setting it
 * at GitHub itself ([github] webhook_hook_id, webhook_secret_rotation_period;
 * webhook_secret_push.c, below).
 * Thread-safe: one mutex per webhook guards its cache (no other lock is
 * taken while holding it, except a pooled database connection).
 */
#ifndef TSR_WEBHOOK_SECRET_H
#define TSR_WEBHOOK_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http.h"

#define WEBHOOK_SECRET_MAX 8          /* usable versions considered per webhook */
#define WEBHOOK_SECRET_TTL_MS 1000
#define WEBHOOK_SECRET_MIN_LEN 16     /* operator-supplied secrets */
#define WEBHOOK_SECRET_MAX_LEN 512

enum webhook_kind { WEBHOOK_HR, WEBHOOK_GITHUB, WEBHOOK_KINDS };

struct webhook_secret_version {
	int version;          /* 0: the configured file */
	bool active;
	int64_t not_after_ms; /* Unix ms; retiring versions only */
	char *secret;         /* NUL-terminated; wiped by webhook_secret_set_free() */
	size_t len;
};

/* The secrets a delivery may be signed with right now. */
struct webhook_secret_set {
	int n;
	struct webhook_secret_version v[WEBHOOK_SECRET_MAX];
};

/* --- pure helpers (webhook_secret_set.c; unit-tested) --- */

/* "hr" or "github" to a kind; false for anything else. */
bool webhook_kind_parse(const char *name, enum webhook_kind *out);
const char *webhook_kind_name(enum webhook_kind k);
/* Is an operator-supplied secret acceptable (length bounds, printable ASCII, no spaces)? */
bool webhook_secret_acceptable(const char *s, size_t n);
/* May version v sign a delivery at now_ms (active, or retiring with now_ms < not_after_ms)? */
bool webhook_secret_usable(const struct webhook_secret_version *v, int64_t now_ms);
/*
 * Copy into out the versions of in[0..n) usable at now_ms (newest first as
 * given). Returns TSR_INTERNAL on allocation failure (out then empty).
 */
tsr_rc webhook_secret_pick(const struct webhook_secret_version *in, int n, int64_t now_ms,
			   struct webhook_secret_set *out) TSR_WUR;
/* Wipe and free every secret of s; s becomes empty. NULL is a no-op. */
void webhook_secret_set_free(struct webhook_secret_set *s);

/* --- the broker side (webhook_secret.c) --- */

/*
 * The secrets that may sign a delivery of webhook k now. TSR_OK with
 * out->n >= 1; TSR_NOT_FOUND when the webhook has neither a stored version
 * nor a configured file; TSR_UNAVAILABLE when the file cannot be read, or
 * the stored versions cannot be read or opened. Caller frees with
 * webhook_secret_set_free().
 */
tsr_rc webhook_secret_current(struct broker *b, enum webhook_kind k, struct webhook_secret_set *out) TSR_WUR;

/* POST /admin/v1/webhook-secrets/NAME/rotate (role admin). */
extern const struct route_table webhook_secret_routes;

/*
 * Pushing the GitHub secret (webhook_secret_push.c). With [github]
 * webhook_hook_id set (ORG:ID, or ID with exactly one org in [github] orgs),
 * a generated GitHub secret is not printed for an operator: tesserad sets it
 * on the organisation webhook itself (PATCH /orgs/{org}/hooks/{id}/config,
 * token or App with admin:org_hook), in the job "webhook_secret.rotate" —
 * on request (POST …/github/rotate without a secret answers 202 and the CLI
 * polls GET …/github) or when the active version is older than [github]
 * webhook_secret_rotation_period. The new version is accepted before the
 * PATCH and active after it, the old one verifies for the overlap; a failed
 * PATCH leaves the old one active, is audited with its HTTP status and is
 * retried with backoff. See the design comment of webhook_secret_push.c.
 */
bool webhook_secret_push_configured(const struct config *cfg);
tsr_rc webhook_secret_push_request(struct http_req *r, int64_t overlap) TSR_WUR;
tsr_rc webhook_secret_status(struct http_req *r) TSR_WUR;
int64_t webhook_secret_rotate_interval(const struct config *cfg);
tsr_rc webhook_secret_rotate_job(struct broker *b, const char *arg);
/* Drop this process's cache of k's secrets (after a change). */
void webhook_secret_invalidate(enum webhook_kind k);
/*
 * /metrics: tessera_webhook_secret_push_failures{name="github"}, the
 * consecutive failed pushes to GitHub (0 after a success), when [github]
 * webhook_hook_id is set. Read from Postgres; nothing when it is away.
 */
tsr_rc webhook_secret_push_metrics(struct broker *b, struct buf *out) TSR_WUR;

/* Job "webhook_secret.retire": retire versions past not_after, shredding their envelopes. */
int64_t webhook_secret_retire_interval(const struct config *cfg);
tsr_rc webhook_secret_retire_job(struct broker *b, const char *arg);

#endif
