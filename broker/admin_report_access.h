/*
 * admin_report_access.h — GET /admin/v1/report/access/unmatched (role
 * admin or security): the repo-host accounts that match no user and so
 * hold no permission in tessera (`tessera report access --unmatched`).
 * The rest of `report access` (--repo, --user, --at) arrives with the
 * audit and reports work.
 */
#ifndef TSR_BROKER_ADMIN_REPORT_ACCESS_H
#define TSR_BROKER_ADMIN_REPORT_ACCESS_H

#include "http.h"

extern const struct route_table admin_report_access_routes;

#endif
