/*
 * hooks_github.h — POST /hooks/github and the GitHub sync jobs.
 *
 * The route authenticates deliveries by their X-Hub-Signature-256 (HMAC-
 * SHA256 of the raw body under [github] webhook_secret_file, compared in
 * constant time); a missing or wrong signature is answered 401, audited,
 * and nothing in the delivery is looked at further. A delivery is applied
 * once (webhook_deliveries, by X-GitHub-Delivery). Removals (a member
 * leaving a team or the org, a collaborator or a team grant removed, a
 * team or repository deleted) are applied at once inside the request, in
 * one transaction that also revokes the access tokens that depended on
 * them; everything else (additions, changes) is queued for the job
 * "sync.github.queue", which re-reads the affected repository, team or
 * member list from the API within seconds.
 *
 * Jobs (registered in main.c job_defs[]):
 *   sync.github        every [github] sync_interval (disabled when [github]
 *                      orgs is empty); arg "full" ignores the ETag cache
 *   sync.github.queue  every few seconds and on request from the webhook
 */
#ifndef TSR_BROKER_HOOKS_GITHUB_H
#define TSR_BROKER_HOOKS_GITHUB_H

#include <stdint.h>
#include "http.h"

extern const struct route_table hooks_github_routes;

int64_t github_sync_interval(const struct config *cfg);
tsr_rc github_sync_job(struct broker *b, const char *arg);
int64_t github_queue_interval(const struct config *cfg);
tsr_rc github_queue_job(struct broker *b, const char *arg);

#endif
