/*
 * policy.h — what the gateway's policy reads from and writes to Postgres:
 * the per-user daily usage counters
 * (usage_counters of migrations/0001: reserve before forwarding, settle from
 * the upstream's usage, atomically, so replicas cannot overspend together),
 * the per-minute request-rate leases (rate_windows of migrations/0009) and
 * which of the groups named by [policy] model_access a user belongs to.
 */
#ifndef TSR_DB_POLICY_H
#define TSR_DB_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"

/*
 * Reserve `tokens` of user_id's budget for today (UTC) and count one request,
 * in one statement that refuses (*granted = false) when used + reserved +
 * tokens would pass limit. *spent gets used + reserved after the call.
 */
tsr_rc db_usage_reserve(struct db_conn *c, int64_t user_id, int64_t tokens, int64_t limit, bool *granted,
			int64_t *spent) TSR_WUR;
/* Settle a reservation against today's (UTC) row: release reserved, add used and bytes_out. */
tsr_rc db_usage_settle(struct db_conn *c, int64_t user_id, int64_t reserved, int64_t used, int64_t bytes_out) TSR_WUR;

/*
 * Lease up to `want` requests of user_id's allowance in the current UTC
 * minute, never letting the window's total pass limit (one atomic statement:
 * replicas racing for the last requests cannot both win). *granted gets
 * what was leased (0 when the window is spent), *window_start its start
 * (Unix seconds) and *left_ms the milliseconds until it ends.
 */
tsr_rc db_rate_lease(struct db_conn *c, int64_t user_id, int want, int64_t limit, int *granted,
		     int64_t *window_start, int64_t *left_ms) TSR_WUR;
/* Delete rate windows that ended more than a few minutes ago. */
tsr_rc db_rate_prune(struct db_conn *c) TSR_WUR;

/*
 * Which of names[0..n-1] (group names, compared case-insensitively; n <= 64)
 * user_id is a member of, directly or through nested groups (ldap, scim and
 * local groups, as for roles): bit i of *mask for names[i].
 */
tsr_rc db_user_group_mask(struct db_conn *c, int64_t user_id, const char *const *names, size_t n,
			  uint64_t *mask) TSR_WUR;

#endif
