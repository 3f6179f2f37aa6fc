/*
 * status.h — the one error type of tessera.
 *
 * Every fallible function returns a tsr_rc. The values map one-to-one onto
 * HTTP statuses (status_http) and onto the CLI's exit codes (status_exit), so
 * an error keeps its meaning from the database layer to the user's terminal.
 * UNAUTHENTICATED is DENIED's twin for "who are you?" (401) as opposed to
 * "you may not" (403); both exit with 3.
 */
#ifndef TSR_STATUS_H
#define TSR_STATUS_H

typedef enum {
	TSR_OK = 0,
	TSR_INVALID,         /* bad input: 400, exit 2 for usage */
	TSR_UNAUTHENTICATED, /* no or bad credential: 401, exit 3 */
	TSR_DENIED,          /* authenticated but not allowed: 403, exit 3 */
	TSR_NOT_FOUND,       /* 404, exit 4 */
	TSR_CONFLICT,        /* 409, exit 1 */
	TSR_TOO_LARGE,       /* a bounded buffer's ceiling was hit: 413, exit 1 */
	TSR_RATE_LIMITED,    /* too many attempts or requests: 429, exit 1 */
	TSR_UNAVAILABLE,     /* a dependency (Postgres, LDAP, upstream) is down: 503, exit 1 */
	TSR_INTERNAL,        /* a bug or resource exhaustion: 500, exit 1 */
} tsr_rc;

#define TSR_WUR __attribute__((warn_unused_result))
#define TSR_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* HTTP status code for rc. */
int status_http(tsr_rc rc);
/* Stable lower-case name for rc, used as the "code" of JSON errors. */
const char *status_name(tsr_rc rc);
/* Map an HTTP status answered by tesserad back to an rc (CLI side). */
tsr_rc status_from_http(long http);
/* CLI exit code for rc: 0 ok, 1 failure, 2 usage, 3 denied, 4 not found. */
int status_exit(tsr_rc rc);

#endif
