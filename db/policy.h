/*
 * policy.h — what the gateway's policy reads from and writes to Postgres:
 * repository classifications and the per-user daily usage counters
 * (usage_counters of migrations/0001: reserve before forwarding, settle from
 * the upstream's usage, atomically, so replicas cannot overspend together).
 */
#ifndef TSR_DB_POLICY_H
#define TSR_DB_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"

/* Comma-separated classifications of repository repo_id ("" for none); TSR_NOT_FOUND if no such repo. */
tsr_rc db_repo_classifications(struct db_conn *c, int64_t repo_id, char *out, size_t n) TSR_WUR;

/*
 * Reserve `tokens` of user_id's budget for today (UTC) and count one request,
 * in one statement that refuses (*granted = false) when used + reserved +
 * tokens would pass limit. *spent gets used + reserved after the call.
 */
tsr_rc db_usage_reserve(struct db_conn *c, int64_t user_id, int64_t tokens, int64_t limit, bool *granted,
			int64_t *spent) TSR_WUR;
/* Settle a reservation against today's (UTC) row: release reserved, add used and bytes_out. */
tsr_rc db_usage_settle(struct db_conn *c, int64_t user_id, int64_t reserved, int64_t used, int64_t bytes_out) TSR_WUR;

#endif
