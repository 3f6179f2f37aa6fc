/*
 * rotation.h — rotation of upstream provider keys (issue 8).
 *
 * POST /admin/v1/upstreams/NAME/rotate (role admin) takes an
 * operator-supplied key ({"key": "..."}; `tessera rotate upstream NAME
 * --key-file F`), seals it with the master key as a new version, makes it
 * the active key for new requests and demotes the previous one to retiring
 * (retire_after = now + the upstream's grace_period), in one transaction
 * with its audit event. Requests already holding the old key finish with
 * it. The job "rotation.retire" (every 10 s) retires keys past their
 * grace period and shreds their envelopes. Not done yet: obtaining keys
 * from a provider admin API (`--now` is refused with a clear error) and
 * scheduled rotation (rotation_period is only reported).
 */
#ifndef TSR_ROTATION_H
#define TSR_ROTATION_H

#include "http.h"

extern const struct route_table rotation_routes;

/* The retire job: every 10 seconds (cheap: one UPDATE). */
int64_t rotation_retire_interval(const struct config *cfg);
tsr_rc rotation_retire_job(struct broker *b, const char *arg);

/*
 * Master-key rotation. POST /admin/v1/rotate/master-key {"new_key_file":
 * PATH} (role admin): tesserad reads the new key from that 0600 file (the
 * key never travels over HTTP), adopts it for new envelopes and requests
 * the job "rotation.master_key", which re-wraps every data key still under
 * an older held key, one row per transaction. GET on the same path reports
 * how many rows remain. Re-posting the same file after an interruption
 * (with the old key as [server] previous_master_key_file) completes it.
 */
int64_t rotation_master_interval(const struct config *cfg);
tsr_rc rotation_master_job(struct broker *b, const char *arg);
/* At start: attach [server] previous_master_key_file to mk (error on stderr). */
struct masterkey;
tsr_rc rotation_load_previous_key(const struct config *cfg, struct masterkey *mk) TSR_WUR;

#endif
