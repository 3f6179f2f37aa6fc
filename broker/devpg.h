/*
 * devpg.h — the embedded default: a private PostgreSQL cluster for --dev.
 *
 * devpg owns STATE/pg: it runs initdb there once, starts `postgres` as a
 * child process listening on a Unix socket in that directory only (no TCP
 * port), creates the `tessera` database, and stops the cluster with a fast
 * shutdown. PostgreSQL refuses to run as root, so when tesserad is root the
 * cluster runs as the `postgres` account. The child is started with a
 * parent-death signal so a killed tesserad never leaves its Postgres behind.
 * Call from the main thread only (the death signal follows the thread that forked).
 */
#ifndef TSR_DEVPG_H
#define TSR_DEVPG_H

#include "../lib/status.h"

struct devpg;

/*
 * Create (first time) and start the cluster under state_dir. On success
 * *conninfo is a libpq conninfo for the tessera database (caller frees with
 * free()) and *out the handle (caller stops with devpg_stop()).
 * Errors are explained on stderr (e.g. which Debian package to install).
 */
tsr_rc devpg_start(const char *state_dir, struct devpg **out, char **conninfo) TSR_WUR;
/* Fast shutdown, wait for exit; devpg_stop(NULL) is a no-op. */
void devpg_stop(struct devpg *d);

#endif
