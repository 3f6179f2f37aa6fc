/*
 * log.h — structured logs (logfmt) on stderr, with secrets redacted.
 *
 * One line per event: `ts=… level=info event=NAME key=value …`. The caller
 * formats the key=value part; log.c adds the prefix, replaces control
 * characters (no log injection through a request path), and runs
 * log_redact() over the whole line as a last line of defence, so a tsr_ token
 * or a password in a conninfo never reaches the log even if a caller forgets.
 * Each line is written with a single write(2), so threads never interleave.
 * Thread-safe; no locks.
 */
#ifndef TSR_LOG_H
#define TSR_LOG_H

#include <stddef.h>
#include "status.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the minimum level written. Default LOG_INFO. */
void log_set_level(enum log_level lvl);
/* Parse "debug|info|warn|error"; returns -1 for anything else. */
int log_level_parse(const char *s);

/* Write one event. fmt formats the key=value pairs after event=NAME (may be ""). */
void log_event(enum log_level lvl, const char *event, const char *fmt, ...) TSR_PRINTF(3, 4);

#define log_debug(ev, ...) log_event(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_event(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_event(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_event(LOG_ERROR, ev, __VA_ARGS__)

/*
 * Redact secrets in s, in place (the result is never longer than s):
 * tsr_ tokens keep their prefix and 4 characters, conninfo `password=…`
 * and URI `user:password@` lose the password. Exposed for tests.
 */
void log_redact(char *s);

#endif
