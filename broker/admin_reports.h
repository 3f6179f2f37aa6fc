/*
 * admin_reports.h — the auditor's reports as JSON (roles security or admin;
 * the CLI renders them as text, JSON or HTML):
 *   GET /admin/v1/report/access?repo=R[&at=T]      who could get a token for R then, through which grant
 *   GET /admin/v1/report/access?user=U[&at=T]      which repositories U could reach then
 *   GET /admin/v1/report/usage?from=T&to=T[&by=user|repo|upstream][&user=U]
 *                                                  requests, tokens, bytes sent to each upstream
 *   GET /admin/v1/report/offboarding?user=U        the revocation receipt(s) and every credential's end
 *   GET /admin/v1/report/upstreams                 the subprocessor list: region, BAA, on-prem, first/last use
 *   GET /admin/v1/report/compliance                the security review checklist with live evidence
 * (`report access --unmatched` is broker/admin_report_access.c.)
 */
#ifndef TSR_BROKER_ADMIN_REPORTS_H
#define TSR_BROKER_ADMIN_REPORTS_H

#include "http.h"

extern const struct route_table admin_reports_routes;

#endif
