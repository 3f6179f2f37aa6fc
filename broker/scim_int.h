/*
 * scim_int.h — what the SCIM handler files (scim.c, scim_users.c,
 * scim_groups.c) share: replies and errors in the SCIM schemas, ETags,
 * list parameters, attribute projection, transactions and audit events.
 * Not a public interface: other modules use scim.h.
 */
#ifndef TSR_SCIM_INT_H
#define TSR_SCIM_INT_H

#include <jansson.h>

#include "http.h"
#include "scim_filter.h"
#include "scim_schema.h"
#include "../db/scim_store.h"

#define SCIM_CT "application/scim+json"
#define SCIM_DEFAULT_COUNT 100
#define SCIM_MAX_COUNT 1000

/* "<public_url or http://Host>/scim/v2" for meta.location. */
void scim_base(struct http_req *r, char *out, size_t n);

/* Reply with a SCIM resource (reference stolen), content type application/scim+json. */
tsr_rc scim_reply(struct http_req *r, int status, json_t *j) TSR_WUR;

/* Reply with the SCIM error schema: "status" as a string, scimType when not NULL. Returns TSR_OK. */
tsr_rc scim_fail(struct http_req *r, int status, const char *scim_type, const char *fmt, ...) TSR_PRINTF(4, 5);

/* Reply for a storage rc (409 uniqueness, 404, 503, 400 invalidValue, 500). what names the resource. */
tsr_rc scim_fail_rc(struct http_req *r, tsr_rc rc, const char *what);

/* The request body as a JSON object, or NULL after replying 400 invalidSyntax. Caller json_decref()s. */
json_t *scim_body(struct http_req *r);

/* W/"<version>" */
void scim_etag(char *out, size_t n, int64_t version);

/* If-Match against the current version: false after replying 412. */
bool scim_if_match(struct http_req *r, int64_t version);

/* If-None-Match matches the current version (GET answers 304). */
bool scim_if_none_match(struct http_req *r, int64_t version);

/* ETag and Location headers for a resource reply. */
void scim_resource_headers(struct http_req *r, int64_t version, const char *location);

/*
 * Read filter, startIndex, count, sortBy, sortOrder into q (compiling the
 * filter into sql against map). false after replying 400 (invalidFilter,
 * invalidValue). Caller frees sql with scim_sql_free().
 */
bool scim_list_params(struct http_req *r, const struct scim_sql_attr *map, struct scim_list_query *q,
		      struct scim_sql *sql);

/*
 * Apply attributes / excludedAttributes (query parameters) to a resource
 * in place: id and schemas always stay. ext is the extension URN or NULL.
 */
void scim_project(struct http_req *r, json_t *res, const char *ext);

/* Whether the projection asks for attr at all (to skip loading members). */
bool scim_wants(struct http_req *r, const char *attr);

/* A ListResponse around resources (stolen). */
json_t *scim_list_response(json_t *resources, int64_t total, int64_t start_index);

/* Acquire a connection and BEGIN. After failure nothing is held (and a 503 was replied). */
tsr_rc scim_begin(struct http_req *r, struct db_conn **c) TSR_WUR;
/* COMMIT when rc is TSR_OK, else ROLLBACK; release. Returns the commit's rc (or rc). */
tsr_rc scim_end(struct http_req *r, struct db_conn *c, tsr_rc rc);

/* The audit actor of this request: "scim:<token label>". */
const char *scim_actor(const struct http_req *r);

/* An audit event for this request, in c's transaction. detail is stolen (may be NULL). */
tsr_rc scim_audit(struct db_conn *c, struct http_req *r, const char *action, const char *outcome, int64_t user_id,
		  const char *target, json_t *detail) TSR_WUR;

/* After a refused write (reply already set): record it with outcome failure, in its own transaction. */
void scim_audit_refusal(struct http_req *r, const char *action, const char *target);

/* Handlers (scim_users.c, scim_groups.c). rest: what follows "/Users" or "/Groups". */
tsr_rc scim_users(struct http_req *r, const char *rest);
tsr_rc scim_groups(struct http_req *r, const char *rest);

#endif
