/*
 * scim.h — the SCIM 2.0 service provider (RFC 7643/7644) under /scim/v2/:
 * Users, Groups, ServiceProviderConfig, ResourceTypes, Schemas.
 *
 * Identity providers (Okta, Entra ID, OneLogin, JumpCloud) provision and
 * deprovision people here. Every route authenticates with the
 * organisation's SCIM bearer token (SHA-256 looked up in scim_tokens; live
 * while not revoked and not past expires_at) through the route table's
 * authn hook, and answers errors in the SCIM error schema itself. SCIM is
 * served only with [scim] enabled = true.
 *
 * Every write is one transaction holding the change, the offboarding or
 * reinstatement it implies (db_offboard()/db_reinstate()), the role
 * recomputation after membership changes (db_roles_sync()) and its audit
 * event (actor "scim:<token label>"), committed before the reply is sent.
 * Handlers run on HTTP worker threads; nothing here keeps state between
 * requests except the interned statement texts of db/scim_store.c.
 */
#ifndef TSR_SCIM_H
#define TSR_SCIM_H

#include "http.h"

extern const struct route_table scim_routes;
/* POST /admin/v1/scim/token (admin_scim.c): rotate the SCIM token. */
extern const struct route_table admin_scim_routes;

/*
 * At start: when [scim] enabled and token_file are set, import the file's
 * token (its SHA-256 only) unless that hash is already known — so a token
 * rotated out is never resurrected by a restart. TSR_INVALID when the file
 * cannot be read or is too short.
 */
tsr_rc scim_import_token_file(struct broker *b) TSR_WUR;

#endif
