/*
 * throttle.h — failed-login limits shared by every replica (auth_throttle).
 *
 * Keys are "user:<lower name>" and "addr:<ip>". A key that fails `limit`
 * times within a 5-minute window is blocked for 5 minutes.
 */
#ifndef TSR_DB_THROTTLE_H
#define TSR_DB_THROTTLE_H

#include "db.h"

/* TSR_RATE_LIMITED with *retry_after_s set while key is blocked, else TSR_OK. */
tsr_rc db_throttle_check(struct db_conn *c, const char *key, int *retry_after_s) TSR_WUR;
/* Count a failure against key. */
tsr_rc db_throttle_fail(struct db_conn *c, const char *key, int limit) TSR_WUR;
/* A success clears key. */
tsr_rc db_throttle_clear(struct db_conn *c, const char *key) TSR_WUR;

#endif
