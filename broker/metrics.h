/*
 * metrics.h — process-wide counters and histograms, rendered as Prometheus
 * text at /metrics. Lock-free (atomics), callable from any thread.
 */
#ifndef TSR_METRICS_H
#define TSR_METRICS_H

#include <stdint.h>
#include "../lib/buf.h"
#include "broker.h"

#define METRICS_MAX_ROUTES 64

/* Name each route index once at start (route paths are static strings). */
void metrics_set_route_name(int route, const char *name);
/* Count one finished HTTP request; route -1 for unmatched paths. */
void metrics_http(int route, int status, uint64_t latency_us);
/* Count one failed authentication. */
void metrics_auth_failure(void);
/* Append the Prometheus exposition to out. */
tsr_rc metrics_render(struct broker *b, struct buf *out) TSR_WUR;

#endif
