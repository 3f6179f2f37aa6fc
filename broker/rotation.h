/*
 * rotation.h — rotation of upstream provider keys (issue 8).
 *
 * POST /admin/v1/upstreams/NAME/rotate (role admin) takes an
 * operator-supplied key ({"key": "..."}; `tessera rotate upstream NAME
 * --key-file F`), seals it with the master key as a new version, makes it
 * the active key for new requests and demotes the previous one to retiring
 * (retire_after = now + the upstream's grace_period), in one transaction
 * with its audit event. Requests already holding the old key finish with
 * it. The job "rotation.retire" (every 5 s) retires keys past their
 * grace period, shreds their envelopes and deletes retired keys that a
 * provider created at that provider (retried with backoff).
 *
 * Automatic rotation (rotation_auto.c, rotation_provider.h): for an
 * upstream with a provider admin API ([upstream.NAME] provider =
 * openai-admin) tesserad creates the new key itself. POST .../rotate
 * {"now": true} (`tessera rotate upstream NAME --now`) records a request
 * and wakes the job "rotation.upstreams" (every 2 s, one replica at a time),
 * which also rotates every provider-backed upstream whose active key is
 * older than its rotation_period; GET .../rotate reports the outcome of the
 * last attempt. A failed provider call changes nothing but the backoff
 * (5 s doubling to 5 min): the old key stays active. Upstreams without a
 * provider are only reminded of (a log line at most hourly, /metrics
 * tessera_rotation_overdue); `--now` on them is refused naming --key-file.
 */
#ifndef TSR_ROTATION_H
#define TSR_ROTATION_H

#include "http.h"

extern const struct route_table rotation_routes;

/* The retire job: every 5 seconds (cheap: one UPDATE, then provider deletions if any). */
int64_t rotation_retire_interval(const struct config *cfg);
tsr_rc rotation_retire_job(struct broker *b, const char *arg);

/* rotation_auto.c: the job "rotation.upstreams" (every 2 s). */
extern const struct route_table rotation_auto_routes;
int64_t rotation_upstreams_interval(const struct config *cfg);
tsr_rc rotation_upstreams_job(struct broker *b, const char *arg);
/* Delete retired provider keys at the provider (retire job's thread). */
void rotation_delete_retired_at_provider(struct broker *b);
/*
 * Handle POST .../rotate {"now": true}: record the request and wake the job
 * (replies 202). TSR_CONFLICT, nothing written, when the upstream has no
 * provider admin API; TSR_NOT_FOUND for an unknown upstream.
 */
tsr_rc rotation_request_now(struct http_req *r, const char *name) TSR_WUR;
/* Append the rotation metrics (read from Postgres) to out. */
tsr_rc rotation_metrics_render(struct broker *b, struct buf *out) TSR_WUR;

/*
 * Master-key rotation. POST /admin/v1/rotate/master-key {"new_key_file":
 * PATH} (role admin): tesserad reads the new key from that 0600 file (the
 * key never travels over HTTP), adopts it for new envelopes and requests
 * the job "rotation.master_key", which re-wraps every data key still under
 * an older held key, one row per transaction. GET on the same path reports
 * how many rows remain. After an interruption, a tesserad started with the
 * new key as master_key_file and the old one as [server]
 * previous_master_key_file resumes the re-wrap by itself
 * (rotation_master_resume); re-posting the same file also completes it.
 */
int64_t rotation_master_interval(const struct config *cfg);
tsr_rc rotation_master_job(struct broker *b, const char *arg);
/*
 * Once the jobs run: when tesserad holds an older master key (the re-wrap of
 * a rotation may have been interrupted), request the re-wrap job so it
 * finishes on its own; a job that finds nothing left records nothing.
 */
void rotation_master_resume(struct broker *b);
/* At start: attach [server] previous_master_key_file to mk (error on stderr). */
struct masterkey;
tsr_rc rotation_load_previous_key(const struct config *cfg, struct masterkey *mk) TSR_WUR;

#endif
