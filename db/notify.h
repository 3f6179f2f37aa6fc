/*
 * notify.h — LISTEN/NOTIFY: a listener thread on its own connection.
 *
 * The listener reconnects with backoff when its connection drops. Because
 * notifications sent while it was disconnected are lost for good, it calls
 * on_reset() whenever they may have been missed — once when the connection
 * is lost and again right after it is re-established and listening — so the
 * user (e.g. the token cache) can flush what it learned from notifications.
 * notify_connected() lets the user poll harder while disconnected.
 *
 * Callbacks run on the listener thread; keep them short and non-blocking.
 */
#ifndef TSR_DB_NOTIFY_H
#define TSR_DB_NOTIFY_H

#include <stdbool.h>
#include "db.h"

struct notify;

struct notify_ops {
	void (*on_notify)(void *arg, const char *channel, const char *payload);
	void (*on_reset)(void *arg); /* notifications may have been missed */
	void *arg;
};

/*
 * Start listening on channels[0..n) (identifiers; quoted by notify.c).
 * Caller stops and frees with notify_stop().
 */
tsr_rc notify_start(const char *conninfo, const char *const *channels, int n, const struct notify_ops *ops,
		    struct notify **out) TSR_WUR;
void notify_stop(struct notify *nt);
bool notify_connected(struct notify *nt);
/* Backend pid of the listening connection (0 if none), so tests can kill it. */
int notify_backend_pid(struct notify *nt);

/* Send a notification on a pooled connection (inside or outside a transaction). */
tsr_rc notify_send(struct db_conn *c, const char *channel, const char *payload) TSR_WUR;

#endif
