/*
 * scim.c — see scim.h. The route table, the SCIM bearer-token check, the
 * discovery endpoints (ServiceProviderConfig, ResourceTypes, Schemas) and
 * the plumbing scim_int.h declares. Users and Groups live in
 * scim_users.c and scim_groups.c.
 *
 * Errors: every reply under /scim/v2/ — including 401 from the token check —
 * uses the SCIM error schema with "status" as a string (RFC 7644 §3.12).
 * A token is never logged, audited or echoed; only its hash is looked up.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>

#include "scim.h"
#include "scim_int.h"
#include "../db/audit.h"
#include "../lib/config.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

/* ---------------------------------------------------------------- replies */

void scim_base(struct http_req *r, char *out, size_t n)
{
	const char *pub = r->b->cfg->server.public_url;
	if (pub && *pub) {
		size_t l = strlen(pub);
		while (l && pub[l - 1] == '/')
			l--;
		snprintf(out, n, "%.*s/scim/v2", (int)l, pub);
		return;
	}
	const char *host = http_header(r, "Host");
	/* only a plausible host name goes into a URL we hand out */
	if (!host || !*host || strlen(host) > 255 || strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
							       "0123456789.-:[]") != strlen(host))
		host = r->b->cfg->server.listen;
	snprintf(out, n, "http://%s/scim/v2", host);
}

tsr_rc scim_reply(struct http_req *r, int status, json_t *j)
{
	tsr_rc rc = http_reply_json(r, status, j);
	r->content_type = SCIM_CT;
	return rc;
}

tsr_rc scim_fail(struct http_req *r, int status, const char *scim_type, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	char st[8];
	snprintf(st, sizeof(st), "%d", status);
	json_t *j = json_pack("{s:[s],s:s,s:s}", "schemas", SCIM_URN_ERROR, "status", st, "detail", detail);
	if (j && scim_type)
		json_object_set_new(j, "scimType", json_string(scim_type));
	r->n_hdr = 0; /* an error carries no ETag/Location */
	if (scim_reply(r, status, j) != TSR_OK) {
		r->status = 500;
		r->content_type = SCIM_CT;
	}
	return TSR_OK;
}

tsr_rc scim_fail_rc(struct http_req *r, tsr_rc rc, const char *what)
{
	switch (rc) {
	case TSR_CONFLICT:
		return scim_fail(r, 409, "uniqueness", "%s", what);
	case TSR_NOT_FOUND:
		return scim_fail(r, 404, NULL, "%s not found", what);
	case TSR_UNAVAILABLE:
		return scim_fail(r, 503, NULL, "the database is unavailable; retry later");
	case TSR_INVALID:
		return scim_fail(r, 400, "invalidValue", "the value was refused by a constraint (%s)", what);
	case TSR_TOO_LARGE:
		return scim_fail(r, 413, NULL, "the request or its result is too large");
	default:
		return scim_fail(r, 500, NULL, "internal error");
	}
}

json_t *scim_body(struct http_req *r)
{
	json_error_t je;
	json_t *j = r->body.len ? json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!json_is_object(j)) {
		if (j || !r->body.len)
			scim_fail(r, 400, "invalidSyntax", "the body must be a JSON object");
		else
			scim_fail(r, 400, "invalidSyntax", "the body is not valid JSON (line %d, column %d): %s", je.line,
				  je.column, je.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

void scim_etag(char *out, size_t n, int64_t version)
{
	snprintf(out, n, "W/\"%" PRId64 "\"", version);
}

/* Does a header's list of entity tags (or "*") name version? */
static bool etag_matches(const char *h, int64_t version)
{
	char want[32];
	snprintf(want, sizeof(want), "\"%" PRId64 "\"", version);
	const char *p = h;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (*p == '*')
			return true;
		if ((p[0] == 'W' || p[0] == 'w') && p[1] == '/')
			p += 2; /* weak comparison */
		size_t len = strcspn(p, ",");
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == strlen(want) && strncmp(p, want, len) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

bool scim_if_match(struct http_req *r, int64_t version)
{
	const char *h = http_header(r, "If-Match");
	if (!h || etag_matches(h, version))
		return true;
	char cur[32];
	scim_etag(cur, sizeof(cur), version);
	scim_fail(r, 412, NULL, "If-Match does not match the current version %s: the resource changed", cur);
	return false;
}

bool scim_if_none_match(struct http_req *r, int64_t version)
{
	const char *h = http_header(r, "If-None-Match");
	return h && etag_matches(h, version);
}

void scim_resource_headers(struct http_req *r, int64_t version, const char *location)
{
	char tag[32];
	scim_etag(tag, sizeof(tag), version);
	tsr_rc a = http_reply_header(r, "ETag", tag);
	tsr_rc b = location ? http_reply_header(r, "Location", location) : TSR_OK;
	if (a != TSR_OK || b != TSR_OK)
		log_warn("scim_header_dropped", "etag=%d location=%d", a == TSR_OK, b == TSR_OK);
}

json_t *scim_list_response(json_t *resources, int64_t total, int64_t start_index)
{
	return json_pack("{s:[s],s:I,s:I,s:I,s:o}", "schemas", SCIM_URN_LIST, "totalResults", (json_int_t)total,
			 "startIndex", (json_int_t)start_index, "itemsPerPage", (json_int_t)json_array_size(resources),
			 "Resources", resources);
}

/* ---------------------------------------------------------------- list parameters */

static bool int_param(struct http_req *r, const char *name, int64_t *out)
{
	const char *v = http_query(r, name);
	if (!v)
		return true;
	char *end;
	long long x = strtoll(v, &end, 10);
	if (!*v || *end) {
		scim_fail(r, 400, "invalidValue", "%s must be an integer", name);
		return false;
	}
	*out = x;
	return true;
}

bool scim_list_params(struct http_req *r, const struct scim_sql_attr *map, struct scim_list_query *q,
		      struct scim_sql *sql)
{
	memset(q, 0, sizeof(*q));
	q->start_index = 1;
	q->count = SCIM_DEFAULT_COUNT;
	if (!int_param(r, "startIndex", &q->start_index) || !int_param(r, "count", &q->count))
		return false;
	if (q->start_index < 1)
		q->start_index = 1; /* RFC 7644 §3.4.2.4: values below 1 are interpreted as 1 */
	if (q->count < 0)
		q->count = 0;
	if (q->count > SCIM_MAX_COUNT)
		q->count = SCIM_MAX_COUNT;
	const char *filter = http_query(r, "filter");
	if (filter) {
		struct scim_filter *f;
		struct scim_err err;
		if (scim_filter_parse(filter, &f, &err) != TSR_OK) {
			scim_fail(r, 400, "invalidFilter", "invalid filter at position %zu: %s", err.pos, err.msg);
			return false;
		}
		tsr_rc rc = scim_filter_sql(f, map, 1, sql, &err);
		scim_filter_free(f);
		if (rc != TSR_OK) {
			scim_fail(r, 400, "invalidFilter", "unsupported filter at position %zu: %s", err.pos, err.msg);
			return false;
		}
		q->where = sql->sql.data;
		q->params = (const char *const *)sql->params;
		q->nparams = sql->n;
	}
	const char *sort = http_query(r, "sortBy");
	if (sort) {
		struct scim_path *p;
		struct scim_err err;
		const struct scim_sql_attr *top = NULL, *sub = NULL;
		if (scim_path_parse(sort, &p, &err) != TSR_OK) {
			scim_fail(r, 400, "invalidValue", "invalid sortBy at position %zu: %s", err.pos, err.msg);
			return false;
		}
		bool found = !p->filter && scim_sql_lookup(map, &p->attr, &top, &sub) && !top->exists;
		scim_path_free(p);
		if (!found) {
			scim_fail(r, 400, "invalidValue", "cannot sort by '%.100s': use a single-valued attribute", sort);
			return false;
		}
		q->order_expr = top->expr;
		q->order_fold = top->type == SCIM_SQL_STRING && !top->case_exact;
	}
	const char *order = http_query(r, "sortOrder");
	if (order) {
		if (strcasecmp(order, "descending") == 0)
			q->descending = true;
		else if (strcasecmp(order, "ascending") != 0) {
			scim_fail(r, 400, "invalidValue", "sortOrder must be ascending or descending");
			return false;
		}
	}
	return true;
}

/* ---------------------------------------------------------------- projection */

#define CORE_PREFIXES { SCIM_URN_USER ":", SCIM_URN_GROUP ":" }

static json_t *get_ci(json_t *obj, const char *name, const char **key)
{
	const char *k;
	json_t *v;
	json_object_foreach (obj, k, v)
		if (strcasecmp(k, name) == 0) {
			if (key)
				*key = k;
			return v;
		}
	return NULL;
}

/* Split one attributes/excludedAttributes item: ext (extension object key or NULL), attr, sub. */
static bool split_item(const char *item, const char *ext, char *attr, size_t an, char *sub, size_t sn, bool *in_ext,
		       bool *whole_ext)
{
	*in_ext = *whole_ext = false;
	attr[0] = sub[0] = '\0';
	const char *p = item;
	static const char *const core[] = CORE_PREFIXES;
	for (size_t i = 0; i < 2; i++)
		if (strncasecmp(p, core[i], strlen(core[i])) == 0)
			p += strlen(core[i]);
	if (ext && strncasecmp(p, ext, strlen(ext)) == 0) {
		p += strlen(ext);
		if (!*p) {
			*whole_ext = *in_ext = true;
			return true;
		}
		if (*p != ':')
			return false;
		p++;
		*in_ext = true;
	}
	const char *dot = strchr(p, '.');
	size_t alen = dot ? (size_t)(dot - p) : strlen(p);
	if (!alen || alen >= an)
		return false;
	memcpy(attr, p, alen);
	attr[alen] = '\0';
	if (dot)
		snprintf(sub, sn, "%s", dot + 1);
	return true;
}

/* Copy src[attr(.sub)] into dst. */
static void copy_attr(json_t *src, json_t *dst, const char *attr, const char *sub)
{
	const char *key;
	json_t *v = get_ci(src, attr, &key);
	if (!v)
		return;
	if (!*sub || (!json_is_object(v) && !json_is_array(v))) {
		json_object_set(dst, key, v);
		return;
	}
	if (json_is_object(v)) {
		const char *sk;
		json_t *sv = get_ci(v, sub, &sk);
		if (!sv)
			return;
		json_t *o = json_object_get(dst, key);
		if (!json_is_object(o)) {
			o = json_object();
			json_object_set_new(dst, key, o);
		}
		json_object_set(o, sk, sv);
		return;
	}
	json_t *arr = json_array();
	size_t i;
	json_t *e;
	json_array_foreach (v, i, e) {
		const char *sk;
		json_t *sv = json_is_object(e) ? get_ci(e, sub, &sk) : NULL;
		if (sv)
			json_array_append_new(arr, json_pack("{s:O}", sk, sv));
	}
	json_object_set_new(dst, key, arr);
}

static void drop_attr(json_t *obj, const char *attr, const char *sub)
{
	const char *key;
	json_t *v = get_ci(obj, attr, &key);
	if (!v)
		return;
	if (!*sub) {
		json_object_del(obj, key);
		return;
	}
	if (json_is_object(v)) {
		const char *sk;
		if (get_ci(v, sub, &sk))
			json_object_del(v, sk);
		return;
	}
	size_t i;
	json_t *e;
	json_array_foreach (v, i, e) {
		const char *sk;
		if (json_is_object(e) && get_ci(e, sub, &sk))
			json_object_del(e, sk);
	}
}

/* Call fn for each comma-separated item of list. */
static void each_item(const char *list, void (*fn)(void *arg, const char *item), void *arg)
{
	char item[600];
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t len = strcspn(p, ",");
		size_t t = len;
		while (t && p[t - 1] == ' ')
			t--;
		if (t && t < sizeof(item)) {
			memcpy(item, p, t);
			item[t] = '\0';
			fn(arg, item);
		}
		p += len;
	}
}

struct proj {
	json_t *res, *out;
	const char *ext;
	bool exclude;
};

static void proj_item(void *arg, const char *item)
{
	struct proj *pr = arg;
	char attr[300], sub[300];
	bool in_ext, whole;
	if (!split_item(item, pr->ext, attr, sizeof(attr), sub, sizeof(sub), &in_ext, &whole))
		return;
	if (!in_ext && (strcasecmp(attr, "id") == 0 || strcasecmp(attr, "schemas") == 0))
		return; /* returned: always */
	json_t *src = pr->res;
	if (in_ext) {
		src = get_ci(pr->res, pr->ext, NULL);
		if (!json_is_object(src))
			return;
	}
	if (pr->exclude) {
		if (whole)
			json_object_del(pr->res, pr->ext);
		else
			drop_attr(src, attr, sub);
		return;
	}
	if (whole) {
		json_object_set(pr->out, pr->ext, src);
		return;
	}
	json_t *dst = pr->out;
	if (in_ext) {
		dst = json_object_get(pr->out, pr->ext);
		if (!json_is_object(dst)) {
			dst = json_object();
			json_object_set_new(pr->out, pr->ext, dst);
		}
	}
	copy_attr(src, dst, attr, sub);
}

void scim_project(struct http_req *r, json_t *res, const char *ext)
{
	const char *attrs = http_query(r, "attributes");
	const char *excl = http_query(r, "excludedAttributes");
	if (attrs && *attrs) {
		struct proj pr = { res, json_object(), ext, false };
		json_object_set(pr.out, "schemas", json_object_get(res, "schemas"));
		json_object_set(pr.out, "id", json_object_get(res, "id"));
		each_item(attrs, proj_item, &pr);
		json_object_clear(res);
		json_object_update(res, pr.out);
		json_decref(pr.out);
	} else if (excl && *excl) {
		struct proj pr = { res, NULL, ext, true };
		each_item(excl, proj_item, &pr);
	}
}

struct want {
	const char *attr;
	bool hit;
};

static void want_item(void *arg, const char *item)
{
	struct want *w = arg;
	size_t n = strlen(w->attr);
	const char *p = item;
	static const char *const core[] = CORE_PREFIXES;
	for (size_t i = 0; i < 2; i++)
		if (strncasecmp(p, core[i], strlen(core[i])) == 0)
			p += strlen(core[i]);
	if (strncasecmp(p, w->attr, n) == 0 && (p[n] == '\0' || p[n] == '.'))
		w->hit = true;
}

bool scim_wants(struct http_req *r, const char *attr)
{
	const char *attrs = http_query(r, "attributes");
	const char *excl = http_query(r, "excludedAttributes");
	struct want w = { attr, false };
	if (attrs && *attrs) {
		each_item(attrs, want_item, &w);
		return w.hit;
	}
	if (excl && *excl) {
		each_item(excl, want_item, &w);
		return !w.hit;
	}
	return true;
}

/* ---------------------------------------------------------------- transactions and audit */

tsr_rc scim_begin(struct http_req *r, struct db_conn **c)
{
	tsr_rc rc = db_acquire(r->b->pool, 5000, c);
	if (rc != TSR_OK) {
		scim_fail(r, 503, NULL, "the database is unavailable; retry later");
		return rc;
	}
	rc = db_simple(*c, "BEGIN");
	if (rc != TSR_OK) {
		db_release(r->b->pool, *c);
		*c = NULL;
		scim_fail(r, 503, NULL, "the database is unavailable; retry later");
	}
	return rc;
}

tsr_rc scim_end(struct http_req *r, struct db_conn *c, tsr_rc rc)
{
	if (!c)
		return rc;
	if (rc == TSR_OK) {
		rc = db_simple(c, "COMMIT");
	} else if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	db_release(r->b->pool, c);
	return rc;
}

const char *scim_actor(const struct http_req *r)
{
	return r->who.user_name[0] ? r->who.user_name : "scim:unknown";
}

tsr_rc scim_audit(struct db_conn *c, struct http_req *r, const char *action, const char *outcome, int64_t user_id,
		  const char *target, json_t *detail)
{
	if (!detail)
		detail = json_object();
	json_object_set_new(detail, "scim_token_id", json_integer((json_int_t)r->who.cred_id));
	char *d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(detail);
	if (!d)
		return TSR_INTERNAL;
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, scim_actor(r), action, outcome);
	if (rc == TSR_OK) {
		ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
		ev.user_id = user_id;
		ev.target = target;
		ev.route = r->url;
		ev.status = r->status ? r->status : -1;
		ev.detail = d;
		rc = db_audit_append(c, &ev, 1);
	}
	free(d);
	return rc;
}

void scim_audit_refusal(struct http_req *r, const char *action, const char *target)
{
	json_t *body = r->out.data ? json_loads(r->out.data, 0, NULL) : NULL;
	json_t *detail = json_pack("{s:O?,s:O?}", "scimType", json_object_get(body, "scimType"), "detail",
				   json_object_get(body, "detail"));
	json_decref(body);
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc == TSR_OK) {
		rc = scim_audit(c, r, action, "failure", 0, target, detail);
		detail = NULL;
		db_release(r->b->pool, c);
	}
	json_decref(detail);
	if (rc != TSR_OK)
		log_error("audit_write_failed", "action=%s outcome=failure", action);
}

/* ---------------------------------------------------------------- authentication */

static void audit_auth_failure(struct http_req *r, const char *reason)
{
	json_t *d = json_pack("{s:s,s:s}", "reason", reason, "method", r->method);
	char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(d);
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, "anonymous", "scim.auth_failed", "failure");
	if (rc == TSR_OK) {
		ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
		ev.target = r->url;
		ev.route = r->url;
		ev.status = 401;
		ev.detail = detail;
		struct db_conn *c;
		if ((rc = db_acquire(r->b->pool, 2000, &c)) == TSR_OK) {
			rc = db_audit_append(c, &ev, 1);
			db_release(r->b->pool, c);
		}
	}
	if (rc != TSR_OK)
		log_error("audit_write_failed", "action=scim.auth_failed outcome=failure");
	free(detail);
}

static tsr_rc refuse(struct http_req *r, char *why, size_t whylen, const char *reason)
{
	snprintf(why, whylen, "%s", reason);
	scim_fail(r, 401, NULL, "%s", reason);
	tsr_rc ignored = http_reply_header(r, "WWW-Authenticate", "Bearer realm=\"tessera-scim\"");
	(void)ignored;
	audit_auth_failure(r, reason);
	return TSR_UNAUTHENTICATED;
}

static tsr_rc scim_authn(struct http_req *r, char *why, size_t whylen)
{
	const char *h = http_header(r, "Authorization");
	if (!h)
		return refuse(r, why, whylen, "missing credential: send 'Authorization: Bearer <SCIM token>'");
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return refuse(r, why, whylen, "unsupported authorization scheme: use a Bearer token");
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	size_t len = strlen(tok);
	while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
		len--;
	if (len < 16 || len > 512)
		return refuse(r, why, whylen, "malformed SCIM token");
	uint8_t hash[SHA256_LEN];
	crypto_sha256(tok, len, hash);
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK) {
		OPENSSL_cleanse(hash, sizeof(hash));
		snprintf(why, whylen, "database unavailable");
		scim_fail(r, 503, NULL, "the database is unavailable; retry later");
		return TSR_UNAVAILABLE;
	}
	struct scim_token_info ti;
	rc = scim_store_token_check(c, hash, &ti);
	db_release(r->b->pool, c);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (rc == TSR_NOT_FOUND)
		return refuse(r, why, whylen, "invalid, expired or revoked SCIM token");
	if (rc != TSR_OK) {
		snprintf(why, whylen, "token check failed");
		scim_fail(r, 503, NULL, "the token check is unavailable; retry later");
		return rc;
	}
	if (!r->b->cfg->scim.enabled) {
		snprintf(why, whylen, "SCIM is not enabled");
		scim_fail(r, 404, NULL, "SCIM is not enabled on this server ([scim] enabled = false)");
		return TSR_NOT_FOUND;
	}
	memset(&r->who, 0, sizeof(r->who));
	snprintf(r->who.user_name, sizeof(r->who.user_name), "scim:%s", ti.label);
	snprintf(r->who.kind, sizeof(r->who.kind), "scim");
	snprintf(r->who.source, sizeof(r->who.source), "scim");
	r->who.cred_id = ti.id;
	r->who.active = true;
	return TSR_OK;
}

/* ---------------------------------------------------------------- discovery */

static json_t *resource_type(const char *base, const char *name, const char *endpoint, const char *desc,
			     const char *schema, const char *ext)
{
	char loc[700];
	snprintf(loc, sizeof(loc), "%s/ResourceTypes/%s", base, name);
	json_t *j = json_pack("{s:[s],s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s}}", "schemas", SCIM_URN_RT, "id", name, "name",
			      name, "endpoint", endpoint, "description", desc, "schema", schema, "meta", "resourceType",
			      "ResourceType", "location", loc);
	json_object_set_new(j, "schemaExtensions",
			    ext ? json_pack("[{s:s,s:b}]", "schema", ext, "required", 0) : json_array());
	return j;
}

static tsr_rc h_spc(struct http_req *r)
{
	char base[600], loc[700];
	scim_base(r, base, sizeof(base));
	snprintf(loc, sizeof(loc), "%s/ServiceProviderConfig", base);
	json_t *j = json_pack(
		"{s:[s],s:s,s:{s:b},s:{s:b,s:i,s:i},s:{s:b,s:i},s:{s:b},s:{s:b},s:{s:b},"
		"s:[{s:s,s:s,s:s,s:b}],s:{s:s,s:s}}",
		"schemas", SCIM_URN_SPC, "documentationUri", "man:tessera.conf(5)", "patch", "supported", 1, "bulk",
		"supported", 0, "maxOperations", 0, "maxPayloadSize", 0, "filter", "supported", 1, "maxResults",
		SCIM_MAX_COUNT, "changePassword", "supported", 0, "sort", "supported", 1, "etag", "supported", 1,
		"authenticationSchemes", "type", "oauthbearertoken", "name", "OAuth Bearer Token", "description",
		"The organisation's SCIM token (tessera rotate scim-token), as 'Authorization: Bearer <token>'",
		"primary", 1, "meta", "resourceType", "ServiceProviderConfig", "location", loc);
	return scim_reply(r, 200, j);
}

static tsr_rc h_resource_types(struct http_req *r)
{
	char base[600];
	scim_base(r, base, sizeof(base));
	const char *rest = http_route_rest(r);
	json_t *user = resource_type(base, "User", "/Users", "User Account", SCIM_URN_USER, SCIM_URN_ENTERPRISE);
	json_t *group = resource_type(base, "Group", "/Groups", "Group", SCIM_URN_GROUP, NULL);
	if (!*rest || strcmp(rest, "/") == 0)
		return scim_reply(r, 200, scim_list_response(json_pack("[o,o]", user, group), 2, 1));
	json_t *one = strcmp(rest, "/User") == 0 ? user : strcmp(rest, "/Group") == 0 ? group : NULL;
	if (one)
		json_incref(one);
	json_decref(user);
	json_decref(group);
	if (!one)
		return scim_fail(r, 404, NULL, "no resource type '%.100s'", rest[0] == '/' ? rest + 1 : rest);
	return scim_reply(r, 200, one);
}

static tsr_rc h_schemas(struct http_req *r)
{
	char base[600];
	scim_base(r, base, sizeof(base));
	const char *rest = http_route_rest(r);
	const struct scim_schema_def *all[] = { &scim_schema_user, &scim_schema_enterprise, &scim_schema_group };
	if (!*rest || strcmp(rest, "/") == 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < 3; i++)
			json_array_append_new(a, scim_schema_json(all[i], base));
		return scim_reply(r, 200, scim_list_response(a, 3, 1));
	}
	if (rest[0] == '/')
		for (size_t i = 0; i < 3; i++)
			if (strcmp(rest + 1, all[i]->id) == 0)
				return scim_reply(r, 200, scim_schema_json(all[i], base));
	return scim_fail(r, 404, NULL, "no schema '%.200s'", rest[0] == '/' ? rest + 1 : rest);
}

/* /Users and /Groups: rest is "" (collection), "/" or "/<id>". */
static tsr_rc h_users(struct http_req *r)
{
	const char *rest = http_route_rest(r);
	if (*rest && *rest != '/')
		return scim_fail(r, 404, NULL, "no such endpoint");
	return scim_users(r, rest);
}

static tsr_rc h_groups(struct http_req *r)
{
	const char *rest = http_route_rest(r);
	if (*rest && *rest != '/')
		return scim_fail(r, 404, NULL, "no such endpoint");
	return scim_groups(r, rest);
}

static const struct route scim[] = {
	{ "GET", "/scim/v2/Users*", ROLE_PUBLIC, h_users, scim_authn, NULL },
	{ "POST", "/scim/v2/Users*", ROLE_PUBLIC, h_users, scim_authn, NULL },
	{ "PUT", "/scim/v2/Users*", ROLE_PUBLIC, h_users, scim_authn, NULL },
	{ "PATCH", "/scim/v2/Users*", ROLE_PUBLIC, h_users, scim_authn, NULL },
	{ "DELETE", "/scim/v2/Users*", ROLE_PUBLIC, h_users, scim_authn, NULL },
	{ "GET", "/scim/v2/Groups*", ROLE_PUBLIC, h_groups, scim_authn, NULL },
	{ "POST", "/scim/v2/Groups*", ROLE_PUBLIC, h_groups, scim_authn, NULL },
	{ "PUT", "/scim/v2/Groups*", ROLE_PUBLIC, h_groups, scim_authn, NULL },
	{ "PATCH", "/scim/v2/Groups*", ROLE_PUBLIC, h_groups, scim_authn, NULL },
	{ "DELETE", "/scim/v2/Groups*", ROLE_PUBLIC, h_groups, scim_authn, NULL },
	{ "GET", "/scim/v2/ServiceProviderConfig", ROLE_PUBLIC, h_spc, scim_authn, NULL },
	{ "GET", "/scim/v2/ResourceTypes*", ROLE_PUBLIC, h_resource_types, scim_authn, NULL },
	{ "GET", "/scim/v2/Schemas*", ROLE_PUBLIC, h_schemas, scim_authn, NULL },
};
ROUTE_TABLE(scim_routes, scim);

/* ---------------------------------------------------------------- token file */

tsr_rc scim_import_token_file(struct broker *b)
{
	const struct config *cfg = b->cfg;
	if (!cfg->scim.enabled || !cfg->scim.token_file)
		return TSR_OK;
	char *tok = NULL;
	if (config_secret(NULL, cfg->scim.token_file, &tok) != TSR_OK) {
		log_error("scim_token_file_unreadable", "path=%s", cfg->scim.token_file);
		return TSR_INVALID;
	}
	size_t len = strlen(tok);
	if (len < 16 || len > 512 || strpbrk(tok, " \t\r\n")) {
		secret_free(tok);
		log_error("scim_token_file_invalid", "path=%s reason=\"the token must be 16 to 512 characters without "
			  "spaces\"", cfg->scim.token_file);
		return TSR_INVALID;
	}
	uint8_t hash[SHA256_LEN];
	crypto_sha256(tok, len, hash);
	secret_free(tok);
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 10000, &c);
	if (rc != TSR_OK) {
		OPENSSL_cleanse(hash, sizeof(hash));
		return rc;
	}
	bool created = false;
	rc = db_simple(c, "BEGIN");
	if (rc == TSR_OK)
		rc = scim_store_token_import(c, hash, "token_file", &created);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (rc == TSR_OK && created) {
		struct audit_event ev;
		rc = audit_event_init(&ev, "system", "scim.token_imported", "success");
		if (rc == TSR_OK) {
			ev.target = "token_file";
			ev.detail = "{\"source\": \"[scim] token_file\"}";
			rc = db_audit_append(c, &ev, 1);
		}
	}
	if (rc == TSR_OK)
		rc = db_simple(c, "COMMIT");
	else if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	db_release(b->pool, c);
	if (rc == TSR_OK && created)
		log_info("scim_token_imported", "source=token_file");
	return rc;
}
