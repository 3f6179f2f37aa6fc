/*
 * admin_upstreams.h — GET /admin/v1/upstreams[/NAME]: the configured LLM
 * upstreams as stored (kind, base URL, region, BAA, on-prem, models, the
 * active key's version and fingerprint — never key material), for
 * `tessera upstream list|show`. Roles: admin or security.
 */
#ifndef TSR_ADMIN_UPSTREAMS_H
#define TSR_ADMIN_UPSTREAMS_H

#include "http.h"

extern const struct route_table admin_upstreams_routes;

#endif
