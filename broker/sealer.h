/*
 * sealer.h — signing the audit chain and keeping the audit log's size in
 * check: the jobs "audit.seal" (every [audit] seal_interval: verify the
 * records since the last seal, then sign the chain head with the active
 * Ed25519 key) and "audit.retention" (daily: drop the monthly partitions
 * older than [audit] retention, auditing the drop), and the routes
 *   GET  /audit/v1/keys              public: every seal key's public half
 *   POST /admin/v1/audit/keys/rotate admin: retire the active key, make a new one
 * Key material lives in db/seal.c under the master key (b->masterkey); a
 * tesserad without a master key cannot seal and says so at each turn.
 * Jobs run on one replica at a time (broker/jobs.h).
 */
#ifndef TSR_BROKER_SEALER_H
#define TSR_BROKER_SEALER_H

#include "http.h"

extern const struct route_table sealer_routes;

int64_t sealer_interval(const struct config *cfg);
tsr_rc sealer_job(struct broker *b, const char *arg);
int64_t retention_interval(const struct config *cfg);
tsr_rc retention_job(struct broker *b, const char *arg);

#endif
