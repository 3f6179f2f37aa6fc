/*
 * ldap_read.c — see ldap_read.h.
 *
 * Digests are SHA-256 over length-prefixed fields (a NULL field has its own
 * marker), so no two different entries share a digest by concatenation.
 * Multi-valued attributes that carry no order (members, memberOf) are
 * sorted before hashing; mail keeps directory order because the first value
 * is the primary address.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldap_read.h"
#include "../lib/buf.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

#define MAX_VALUE_BYTES 4096   /* a name or mail longer than this is not a name or mail */
#define MAX_LOGIN_BYTES 512    /* users.user_name CHECK */
#define FETCH_BATCH 50         /* ids per (|(id=…)…) filter */

struct reader {
	struct ldap_view *v;
	const struct config *cfg;
	const char *phase;
	size_t n;
	char *err;           /* why a callback stopped the search */
	size_t errlen;
};

/* ---------- small helpers ---------- */

static void problem(struct ldap_view *v, const char *dn, const char *fmt, ...) TSR_PRINTF(3, 4);
static void problem(struct ldap_view *v, const char *dn, const char *fmt, ...)
{
	v->total_problems++;
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (v->n_problems >= LDAP_VIEW_MAX_PROBLEMS)
		return;
	if (!v->problems && !(v->problems = calloc(LDAP_VIEW_MAX_PROBLEMS, sizeof(*v->problems))))
		return;
	struct ldap_problem *p = &v->problems[v->n_problems];
	p->dn = strdup(dn ? dn : "");
	p->reason = strdup(why);
	if (!p->dn || !p->reason) {
		free(p->dn);
		free(p->reason);
		return;
	}
	v->n_problems++;
	log_warn("ldap_entry_skipped", "dn=\"%s\" reason=\"%s\"", p->dn, why);
}

/* Text fit for a user-visible column: valid UTF-8, no control characters, bounded. */
static bool text_ok(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max || !ldap_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/*
 * First value of attr as text: *out NULL when absent (TSR_OK), TSR_INVALID
 * when present but unusable.
 */
static tsr_rc first_text(const struct ldap_entry *e, const char *attr, size_t max, char **out)
{
	*out = NULL;
	if (!attr)
		return TSR_OK;
	struct berval **vals = ldap_entry_values(e, attr);
	if (!vals || !vals[0]) {
		ldap_value_free_len(vals);
		return TSR_OK;
	}
	tsr_rc rc = TSR_OK;
	if (!text_ok(vals[0]->bv_val, vals[0]->bv_len, max))
		rc = TSR_INVALID;
	else if (!(*out = strndup(vals[0]->bv_val, vals[0]->bv_len)))
		rc = TSR_INTERNAL;
	ldap_value_free_len(vals);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort v[0..*n) and drop duplicates (freeing them). */
static void sort_unique(char **v, size_t *n)
{
	if (*n < 2)
		return;
	qsort(v, *n, sizeof(*v), cmp_str);
	size_t o = 1;
	for (size_t i = 1; i < *n; i++) {
		if (strcmp(v[i], v[o - 1]) == 0)
			free(v[i]);
		else
			v[o++] = v[i];
	}
	*n = o;
}

static tsr_rc push_str(char ***v, size_t *n, size_t *cap, char *s)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		char **nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return TSR_INTERNAL;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = s;
	return TSR_OK;
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void dg_field(struct buf *b, tsr_rc *rc, const char *s)
{
	if (*rc != TSR_OK)
		return;
	uint32_t len = s ? (uint32_t)strlen(s) : 0xffffffffu;
	unsigned char l[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
			       (unsigned char)len };
	*rc = buf_append(b, l, 4);
	if (*rc == TSR_OK && s && len)
		*rc = buf_append(b, s, len);
}

static void dg_finish(struct buf *b, tsr_rc rc, uint8_t out[32])
{
	if (rc != TSR_OK) /* cannot happen within the ceiling; make the digest unmatchable */
		memset(out, 0xff, 32);
	else
		crypto_sha256(b->data ? b->data : "", b->len, out);
	buf_free(b);
}

void ldap_user_digest(const struct ldap_user_entry *u, bool with_repo, uint8_t out[32])
{
	struct buf b;
	buf_init(&b, 64u << 20);
	tsr_rc rc = TSR_OK;
	dg_field(&b, &rc, "user/1");
	dg_field(&b, &rc, u->dn);
	dg_field(&b, &rc, u->login);
	dg_field(&b, &rc, u->display_name);
	dg_field(&b, &rc, u->given_name);
	dg_field(&b, &rc, u->family_name);
	dg_field(&b, &rc, with_repo ? "repo" : "norepo");
	dg_field(&b, &rc, with_repo ? u->repo_login : NULL);
	for (size_t i = 0; i < u->n_mails; i++)
		dg_field(&b, &rc, u->mails[i]);
	dg_finish(&b, rc, out);
}

void ldap_memberof_digest(const struct ldap_user_entry *u, uint8_t out[32])
{
	struct buf b;
	buf_init(&b, 256u << 20);
	tsr_rc rc = TSR_OK;
	dg_field(&b, &rc, "memberof/1");
	for (size_t i = 0; i < u->n_memberof; i++)
		dg_field(&b, &rc, u->memberof[i]);
	dg_finish(&b, rc, out);
}

void ldap_group_digest(const struct ldap_group_entry *g, uint8_t out[32])
{
	struct buf b;
	buf_init(&b, 256u << 20);
	tsr_rc rc = TSR_OK;
	dg_field(&b, &rc, "group/1");
	dg_field(&b, &rc, g->dn);
	dg_field(&b, &rc, g->name);
	dg_field(&b, &rc, "dn-refs");
	for (size_t i = 0; i < g->n_dn_refs; i++)
		dg_field(&b, &rc, g->dn_refs[i]);
	dg_field(&b, &rc, "uid-refs");
	for (size_t i = 0; i < g->n_uid_refs; i++)
		dg_field(&b, &rc, g->uid_refs[i]);
	dg_finish(&b, rc, out);
}

/* In a uniqueMember value, where a trailing optional UID "#'0101'B" starts; NULL when none. */
static char *uid_suffix(char *s, size_t len)
{
	if (len < 4 || s[len - 1] != 'B' || s[len - 2] != '\'')
		return NULL;
	char *hash = NULL;
	for (char *p = s; (p = strstr(p, "#'")) != NULL && p < s + len - 2; p++)
		hash = p;
	if (!hash || hash == s)
		return NULL;
	for (char *p = hash + 2; p < s + len - 2; p++)
		if (*p != '0' && *p != '1')
			return NULL;
	return hash;
}

tsr_rc ldap_member_key(const char *value, size_t len, bool unique, char **key)
{
	*key = NULL;
	if (len == 0 || len > 65536 || memchr(value, '\0', len))
		return TSR_INVALID;
	char *s = strndup(value, len);
	if (!s)
		return TSR_INTERNAL;
	char *hash = unique ? uid_suffix(s, len) : NULL;
	if (hash) {
		/* RFC 4517 nameAndOptionalUID: the UID is not part of the name */
		*hash = '\0';
		tsr_rc rc = ldap_dn_key(s, key);
		if (rc != TSR_INVALID) {
			free(s);
			return rc;
		}
		*hash = '#';
	}
	tsr_rc rc = ldap_dn_key(s, key);
	free(s);
	return rc;
}

/* ---------- entries ---------- */

static void user_entry_free(struct ldap_user_entry *u)
{
	free(u->ext_id);
	free(u->dn);
	free(u->dn_key);
	free(u->login);
	free(u->display_name);
	free(u->given_name);
	free(u->family_name);
	free(u->repo_login);
	free_strs(u->mails, u->n_mails);
	free_strs(u->memberof, u->n_memberof);
	memset(u, 0, sizeof(*u));
}

static void group_entry_free(struct ldap_group_entry *g)
{
	free(g->ext_id);
	free(g->dn);
	free(g->dn_key);
	free(g->name);
	free_strs(g->dn_refs, g->n_dn_refs);
	free_strs(g->uid_refs, g->n_uid_refs);
	memset(g, 0, sizeof(*g));
}

static void tick(struct reader *rd)
{
	rd->n++;
	if (rd->v->progress && rd->n % 500 == 0)
		rd->v->progress(rd->v->progress_arg, rd->phase, rd->n);
}

/* The entry's external id into out; false (reported) when it has none. */
static bool entry_id(struct reader *rd, const struct ldap_entry *e, char *out, size_t outlen)
{
	struct berval **vals = ldap_entry_values(e, rd->cfg->ldap.id_attr);
	tsr_rc rc = vals && vals[0] ? ldap_external_id(rd->cfg->ldap.id_attr, vals[0], out, outlen) : TSR_INVALID;
	ldap_value_free_len(vals);
	if (rc != TSR_OK) {
		problem(rd->v, e->dn, "no usable %s (the stable id attribute)", rd->cfg->ldap.id_attr);
		return false;
	}
	return true;
}

static void note_hwm(struct reader *rd, const struct ldap_entry *e)
{
	struct berval **vals = ldap_entry_values(e, "modifyTimestamp");
	if (vals && vals[0] && vals[0]->bv_len > 0 && vals[0]->bv_len < sizeof(rd->v->hwm) &&
	    text_ok(vals[0]->bv_val, vals[0]->bv_len, sizeof(rd->v->hwm))) {
		char ts[sizeof(rd->v->hwm)];
		memcpy(ts, vals[0]->bv_val, vals[0]->bv_len);
		ts[vals[0]->bv_len] = '\0';
		if (strcmp(ts, rd->v->hwm) > 0)
			memcpy(rd->v->hwm, ts, sizeof(ts));
	}
	ldap_value_free_len(vals);
}

/* memberOf values as sorted DN keys into u. */
static tsr_rc read_memberof(struct reader *rd, const struct ldap_entry *e, struct ldap_user_entry *u)
{
	u->has_memberof = true;
	tsr_rc rc = TSR_OK;
	struct berval **vals = ldap_entry_values_all(e, "memberOf", (int)rd->cfg->ldap.timeout, &rc, rd->err, rd->errlen);
	if (rc != TSR_OK)
		return rc;
	size_t cap = 0;
	for (size_t i = 0; vals && vals[i] && rc == TSR_OK; i++) {
		char *key = NULL;
		tsr_rc k = ldap_member_key(vals[i]->bv_val, vals[i]->bv_len, false, &key);
		if (k == TSR_INVALID) {
			problem(rd->v, e->dn, "memberOf value is not a DN (ignored)");
			continue;
		}
		if (k != TSR_OK || (rc = push_str(&u->memberof, &u->n_memberof, &cap, key)) != TSR_OK) {
			free(key);
			rc = TSR_INTERNAL;
		}
	}
	ldap_value_free_len(vals);
	sort_unique(u->memberof, &u->n_memberof);
	ldap_memberof_digest(u, u->memberof_digest);
	return rc;
}

static tsr_rc grow_users(struct ldap_user_entry **v, size_t *n, size_t *cap)
{
	if (*n < *cap)
		return TSR_OK;
	size_t c = *cap ? *cap * 2 : 256;
	struct ldap_user_entry *nv = realloc(*v, c * sizeof(*nv));
	if (!nv)
		return TSR_INTERNAL;
	*v = nv;
	*cap = c;
	return TSR_OK;
}

/* Note ext as present in scope (ids only), unless it already is. */
static tsr_rc note_present(struct ldap_view *v, const char *ext)
{
	if (strmap_get(&v->present_index, ext, NULL))
		return TSR_OK;
	if (grow_users(&v->present, &v->n_present, &v->cap_present) != TSR_OK)
		return TSR_INTERNAL;
	struct ldap_user_entry *u = &v->present[v->n_present];
	memset(u, 0, sizeof(*u));
	if (!(u->ext_id = strdup(ext)))
		return TSR_INTERNAL;
	if (strmap_put(&v->present_index, u->ext_id, v->n_present) != TSR_OK) {
		user_entry_free(u);
		return TSR_INTERNAL;
	}
	v->n_present++;
	return TSR_OK;
}

static tsr_rc add_id(char ***ids, size_t *n, size_t *cap, struct strmap *index, const char *ext);

static tsr_rc on_user(void *arg, const struct ldap_entry *e)
{
	struct reader *rd = arg;
	struct ldap_view *v = rd->v;
	const struct config *cfg = rd->cfg;
	tick(rd);
	char ext[256];
	if (!entry_id(rd, e, ext, sizeof(ext)))
		return TSR_OK;
	if (strmap_get(&v->user_index, ext, NULL))
		return TSR_OK; /* fetched twice (incremental: changed and asked for): keep the first */
	/* present even if skipped below: an unusable entry is reported, never taken for a removed one */
	if (note_present(v, ext) != TSR_OK)
		return TSR_INTERNAL;
	struct ldap_user_entry u = { 0 };
	tsr_rc rc = TSR_OK;
	const char *bad = NULL;
	if (!(u.ext_id = strdup(ext)) || !(u.dn = strdup(e->dn)))
		goto oom;
	rc = ldap_dn_key(e->dn, &u.dn_key);
	if (rc == TSR_INVALID) {
		problem(v, e->dn, "the entry's DN does not parse");
		goto skip;
	}
	if (rc != TSR_OK)
		goto oom;
	if ((rc = first_text(e, cfg->ldap.login_attr, MAX_LOGIN_BYTES, &u.login)) != TSR_OK) {
		bad = cfg->ldap.login_attr;
		goto bad_value;
	}
	if (!u.login) {
		problem(v, e->dn, "no %s (the login attribute)", cfg->ldap.login_attr);
		goto skip;
	}
	if ((rc = first_text(e, cfg->ldap.name_attr, MAX_VALUE_BYTES, &u.display_name)) != TSR_OK) {
		bad = cfg->ldap.name_attr;
		goto bad_value;
	}
	if ((rc = first_text(e, "givenName", MAX_VALUE_BYTES, &u.given_name)) != TSR_OK) {
		bad = "givenName";
		goto bad_value;
	}
	if ((rc = first_text(e, "sn", MAX_VALUE_BYTES, &u.family_name)) != TSR_OK) {
		bad = "sn";
		goto bad_value;
	}
	if ((rc = first_text(e, cfg->ldap.repo_login_attr, MAX_VALUE_BYTES, &u.repo_login)) != TSR_OK) {
		bad = cfg->ldap.repo_login_attr;
		goto bad_value;
	}
	struct berval **mails = cfg->ldap.mail_attr ? ldap_entry_values(e, cfg->ldap.mail_attr) : NULL;
	size_t cap = 0;
	for (size_t i = 0; mails && mails[i]; i++) {
		if (!text_ok(mails[i]->bv_val, mails[i]->bv_len, MAX_VALUE_BYTES)) {
			ldap_value_free_len(mails);
			bad = cfg->ldap.mail_attr;
			goto bad_value;
		}
		bool dup = false;
		for (size_t j = 0; j < u.n_mails && !dup; j++)
			dup = strlen(u.mails[j]) == mails[i]->bv_len &&
			      memcmp(u.mails[j], mails[i]->bv_val, mails[i]->bv_len) == 0;
		if (dup)
			continue;
		char *m = strndup(mails[i]->bv_val, mails[i]->bv_len);
		if (!m || push_str(&u.mails, &u.n_mails, &cap, m) != TSR_OK) {
			free(m);
			ldap_value_free_len(mails);
			goto oom;
		}
	}
	ldap_value_free_len(mails);
	if (cfg->ldap.member_of && (rc = read_memberof(rd, e, &u)) != TSR_OK) {
		user_entry_free(&u);
		return rc;
	}
	ldap_user_digest(&u, cfg->ldap.repo_login_attr != NULL, u.digest);
	note_hwm(rd, e);
	if (grow_users(&v->users, &v->n_users, &v->cap_users) != TSR_OK)
		goto oom;
	v->users[v->n_users] = u;
	if (strmap_put(&v->user_index, v->users[v->n_users].ext_id, v->n_users) != TSR_OK) {
		user_entry_free(&v->users[v->n_users]);
		return TSR_INTERNAL;
	}
	v->n_users++;
	return TSR_OK;
bad_value:
	if (rc == TSR_INVALID) {
		problem(v, e->dn, "%s is not usable text (invalid UTF-8, control characters or too long)", bad);
		goto skip;
	}
oom:
	user_entry_free(&u);
	return TSR_INTERNAL;
skip:
	user_entry_free(&u);
	return TSR_OK;
}

/* Incremental enumeration: every user's id (and memberOf). */
static tsr_rc on_user_present(void *arg, const struct ldap_entry *e)
{
	struct reader *rd = arg;
	struct ldap_view *v = rd->v;
	tick(rd);
	char ext[256];
	if (!entry_id(rd, e, ext, sizeof(ext)))
		return TSR_OK;
	if (strmap_get(&v->present_index, ext, NULL))
		return TSR_OK;
	struct ldap_user_entry u = { 0 };
	if (!(u.ext_id = strdup(ext)) || !(u.dn = strdup(e->dn)))
		goto oom;
	tsr_rc rc;
	if (rd->cfg->ldap.member_of && (rc = read_memberof(rd, e, &u)) != TSR_OK) {
		user_entry_free(&u);
		return rc;
	}
	if (grow_users(&v->present, &v->n_present, &v->cap_present) != TSR_OK)
		goto oom;
	v->present[v->n_present] = u;
	if (strmap_put(&v->present_index, v->present[v->n_present].ext_id, v->n_present) != TSR_OK) {
		user_entry_free(&v->present[v->n_present]);
		return TSR_INTERNAL;
	}
	v->n_present++;
	return TSR_OK;
oom:
	user_entry_free(&u);
	return TSR_INTERNAL;
}

/* An id into a set (disabled users, enumerated groups). */
static tsr_rc add_id(char ***ids, size_t *n, size_t *cap, struct strmap *index, const char *ext)
{
	if (strmap_get(index, ext, NULL))
		return TSR_OK;
	char *d = strdup(ext);
	if (!d || push_str(ids, n, cap, d) != TSR_OK) {
		free(d);
		return TSR_INTERNAL;
	}
	return strmap_put(index, (*ids)[*n - 1], *n - 1) == TSR_OK ? TSR_OK : TSR_INTERNAL;
}

static tsr_rc on_disabled(void *arg, const struct ldap_entry *e)
{
	struct reader *rd = arg;
	struct ldap_view *v = rd->v;
	tick(rd);
	char ext[256];
	if (!entry_id(rd, e, ext, sizeof(ext)))
		return TSR_OK;
	return add_id(&v->disabled, &v->n_disabled, &v->cap_disabled, &v->disabled_index, ext);
}

static tsr_rc on_group_present(void *arg, const struct ldap_entry *e)
{
	struct reader *rd = arg;
	struct ldap_view *v = rd->v;
	tick(rd);
	char ext[256];
	if (!entry_id(rd, e, ext, sizeof(ext)))
		return TSR_OK;
	return add_id(&v->present_groups, &v->n_present_groups, &v->cap_present_groups, &v->present_group_index, ext);
}

/* member/uniqueMember values into g->dn_refs. */
static tsr_rc read_dn_refs(struct reader *rd, const struct ldap_entry *e, const char *attr, bool unique,
			   struct ldap_group_entry *g, size_t *cap)
{
	tsr_rc rc = TSR_OK;
	struct berval **vals = ldap_entry_values_all(e, attr, (int)rd->cfg->ldap.timeout, &rc, rd->err, rd->errlen);
	if (rc != TSR_OK)
		return rc;
	size_t bad = 0;
	for (size_t i = 0; vals && vals[i] && rc == TSR_OK; i++) {
		char *key = NULL;
		tsr_rc k = ldap_member_key(vals[i]->bv_val, vals[i]->bv_len, unique, &key);
		if (k == TSR_INVALID) {
			bad++;
			continue;
		}
		if (k != TSR_OK || push_str(&g->dn_refs, &g->n_dn_refs, cap, key) != TSR_OK) {
			free(key);
			rc = TSR_INTERNAL;
		}
	}
	ldap_value_free_len(vals);
	if (bad)
		problem(rd->v, e->dn, "%zu %s value(s) are not DNs (ignored)", bad, attr);
	return rc;
}

static tsr_rc on_group(void *arg, const struct ldap_entry *e)
{
	struct reader *rd = arg;
	struct ldap_view *v = rd->v;
	tick(rd);
	char ext[256];
	if (!entry_id(rd, e, ext, sizeof(ext)))
		return TSR_OK;
	if (strmap_get(&v->group_index, ext, NULL))
		return TSR_OK;
	if (add_id(&v->present_groups, &v->n_present_groups, &v->cap_present_groups, &v->present_group_index, ext) !=
	    TSR_OK)
		return TSR_INTERNAL;
	struct ldap_group_entry g = { 0 };
	size_t cap = 0, ucap = 0;
	tsr_rc rc;
	if (!(g.ext_id = strdup(ext)) || !(g.dn = strdup(e->dn)))
		goto oom;
	rc = ldap_dn_key(e->dn, &g.dn_key);
	if (rc == TSR_INVALID) {
		problem(v, e->dn, "the entry's DN does not parse");
		goto skip;
	}
	if (rc != TSR_OK)
		goto oom;
	rc = first_text(e, "cn", MAX_VALUE_BYTES, &g.name);
	if (rc == TSR_INVALID || (rc == TSR_OK && !g.name)) {
		problem(v, e->dn, "group without a usable cn");
		goto skip;
	}
	if (rc != TSR_OK)
		goto oom;
	if ((rc = read_dn_refs(rd, e, "member", false, &g, &cap)) != TSR_OK ||
	    (rc = read_dn_refs(rd, e, "uniqueMember", true, &g, &cap)) != TSR_OK) {
		group_entry_free(&g);
		return rc;
	}
	struct berval **uids = ldap_entry_values(e, "memberUid");
	size_t bad = 0;
	for (size_t i = 0; uids && uids[i]; i++) {
		if (!text_ok(uids[i]->bv_val, uids[i]->bv_len, MAX_LOGIN_BYTES)) {
			bad++;
			continue;
		}
		char *s = strndup(uids[i]->bv_val, uids[i]->bv_len);
		if (!s || push_str(&g.uid_refs, &g.n_uid_refs, &ucap, s) != TSR_OK) {
			free(s);
			ldap_value_free_len(uids);
			goto oom;
		}
	}
	ldap_value_free_len(uids);
	if (bad)
		problem(v, e->dn, "%zu memberUid value(s) are not usable text (ignored)", bad);
	sort_unique(g.dn_refs, &g.n_dn_refs);
	sort_unique(g.uid_refs, &g.n_uid_refs);
	ldap_group_digest(&g, g.digest);
	note_hwm(rd, e);
	if (v->n_groups == v->cap_groups) {
		size_t c = v->cap_groups ? v->cap_groups * 2 : 64;
		struct ldap_group_entry *nv = realloc(v->groups, c * sizeof(*nv));
		if (!nv)
			goto oom;
		v->groups = nv;
		v->cap_groups = c;
	}
	v->groups[v->n_groups] = g;
	if (strmap_put(&v->group_index, v->groups[v->n_groups].ext_id, v->n_groups) != TSR_OK) {
		group_entry_free(&v->groups[v->n_groups]);
		return TSR_INTERNAL;
	}
	v->n_groups++;
	return TSR_OK;
oom:
	group_entry_free(&g);
	return TSR_INTERNAL;
skip:
	group_entry_free(&g);
	return TSR_OK;
}

/* ---------- the reads ---------- */

tsr_rc ldap_view_init(struct ldap_view *v, ldap_progress_fn progress, void *arg)
{
	memset(v, 0, sizeof(*v));
	v->progress = progress;
	v->progress_arg = arg;
	if (strmap_init(&v->user_index, 1024) != TSR_OK || strmap_init(&v->group_index, 256) != TSR_OK ||
	    strmap_init(&v->present_index, 16) != TSR_OK || strmap_init(&v->present_group_index, 16) != TSR_OK ||
	    strmap_init(&v->disabled_index, 64) != TSR_OK) {
		ldap_view_free(v);
		return TSR_INTERNAL;
	}
	return TSR_OK;
}

void ldap_view_drop_entries(struct ldap_view *v)
{
	for (size_t i = 0; i < v->n_users; i++)
		user_entry_free(&v->users[i]);
	free(v->users);
	v->users = NULL;
	v->cap_users = 0;
	for (size_t i = 0; i < v->n_present; i++)
		user_entry_free(&v->present[i]);
	free(v->present);
	v->present = NULL;
	v->cap_present = 0;
	for (size_t i = 0; i < v->n_groups; i++)
		group_entry_free(&v->groups[i]);
	free(v->groups);
	v->groups = NULL;
	v->cap_groups = 0;
	free_strs(v->present_groups, v->n_present_groups);
	v->present_groups = NULL;
	v->cap_present_groups = 0;
	free_strs(v->disabled, v->n_disabled);
	v->disabled = NULL;
	v->cap_disabled = 0;
	strmap_free(&v->user_index);
	strmap_free(&v->group_index);
	strmap_free(&v->present_index);
	strmap_free(&v->present_group_index);
	strmap_free(&v->disabled_index);
	v->dropped = true;
}

void ldap_view_free(struct ldap_view *v)
{
	if (v->dropped) {
		for (size_t i = 0; i < v->n_problems; i++) {
			free(v->problems[i].dn);
			free(v->problems[i].reason);
		}
		free(v->problems);
		memset(v, 0, sizeof(*v));
		return;
	}
	for (size_t i = 0; i < v->n_users; i++)
		user_entry_free(&v->users[i]);
	free(v->users);
	for (size_t i = 0; i < v->n_present; i++)
		user_entry_free(&v->present[i]);
	free(v->present);
	for (size_t i = 0; i < v->n_groups; i++)
		group_entry_free(&v->groups[i]);
	free(v->groups);
	free_strs(v->present_groups, v->n_present_groups);
	free_strs(v->disabled, v->n_disabled);
	for (size_t i = 0; i < v->n_problems; i++) {
		free(v->problems[i].dn);
		free(v->problems[i].reason);
	}
	free(v->problems);
	strmap_free(&v->user_index);
	strmap_free(&v->group_index);
	strmap_free(&v->present_index);
	strmap_free(&v->present_group_index);
	strmap_free(&v->disabled_index);
	memset(v, 0, sizeof(*v));
}

/* Attribute lists. */
struct attrs {
	const char *v[16];
	int n;
};

static void attrs_add(struct attrs *a, const char *s)
{
	if (s && a->n < 15)
		a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void user_attrs(const struct config *cfg, struct attrs *a)
{
	a->n = 0;
	attrs_add(a, cfg->ldap.id_attr);
	attrs_add(a, cfg->ldap.login_attr);
	attrs_add(a, cfg->ldap.name_attr);
	attrs_add(a, cfg->ldap.mail_attr);
	attrs_add(a, cfg->ldap.repo_login_attr);
	attrs_add(a, "givenName");
	attrs_add(a, "sn");
	attrs_add(a, "modifyTimestamp");
	if (cfg->ldap.member_of)
		attrs_add(a, "memberOf");
}

static void group_attrs(const struct config *cfg, struct attrs *a)
{
	a->n = 0;
	attrs_add(a, cfg->ldap.id_attr);
	attrs_add(a, "cn");
	attrs_add(a, "member");
	attrs_add(a, "uniqueMember");
	attrs_add(a, "memberUid");
	attrs_add(a, "modifyTimestamp");
}

static tsr_rc search(struct ldap_session *s, struct reader *rd, const char *phase, const char *base,
		     const char *filter, const struct attrs *a, ldap_entry_fn fn, bool *missing, char *err,
		     size_t errlen)
{
	rd->phase = phase;
	rd->n = 0;
	bool miss = false;
	char cb_err[400] = "";
	rd->err = cb_err;
	rd->errlen = sizeof(cb_err);
	tsr_rc rc = ldap_session_search(s, base, filter, a->v, fn, rd, NULL, &miss, err, errlen);
	if (rc != TSR_OK && cb_err[0])
		snprintf(err, errlen, "%s", cb_err); /* the callback's reason is the better one */
	rd->err = NULL;
	if (missing)
		*missing = *missing || miss;
	if (rc == TSR_OK && miss)
		log_warn("ldap_base_missing", "base=\"%s\" reason=\"noSuchObject: the base DN does not exist\"", base);
	if (rd->v->progress)
		rd->v->progress(rd->v->progress_arg, phase, rd->n);
	return rc;
}

tsr_rc ldap_view_read(struct ldap_session *s, const struct config *cfg, const char *hwm, struct ldap_view *v,
		      char *err, size_t errlen)
{
	struct reader rd = { .v = v, .cfg = cfg };
	struct attrs ua, ga, ida;
	user_attrs(cfg, &ua);
	group_attrs(cfg, &ga);
	ida.n = 0;
	attrs_add(&ida, cfg->ldap.id_attr);
	char *changed = NULL, *ge = NULL, *dis = NULL;
	tsr_rc rc = TSR_OK;
	v->enumerated = hwm != NULL;
	if (hwm)
		snprintf(v->hwm, sizeof(v->hwm), "%s", hwm);

	if (hwm) {
		ge = ldap_filter_ge("modifyTimestamp", hwm, strlen(hwm));
		changed = ge ? ldap_filter_and(cfg->ldap.user_filter, ge) : NULL;
		if (!changed) {
			rc = TSR_INTERNAL;
			goto out;
		}
		rc = search(s, &rd, "reading changed users", cfg->ldap.user_base, changed, &ua, on_user,
			    &v->user_base_missing, err, errlen);
		if (rc != TSR_OK)
			goto out;
		struct attrs pa = ida;
		if (cfg->ldap.member_of)
			attrs_add(&pa, "memberOf");
		rc = search(s, &rd, "listing users", cfg->ldap.user_base, cfg->ldap.user_filter, &pa, on_user_present,
			    &v->user_base_missing, err, errlen);
	} else {
		rc = search(s, &rd, "reading users", cfg->ldap.user_base, cfg->ldap.user_filter, &ua, on_user,
			    &v->user_base_missing, err, errlen);
	}
	if (rc != TSR_OK)
		goto out;
	if (cfg->ldap.disabled_filter) {
		dis = ldap_filter_and(cfg->ldap.user_filter, cfg->ldap.disabled_filter);
		if (!dis) {
			rc = TSR_INTERNAL;
			goto out;
		}
		rc = search(s, &rd, "reading disabled users", cfg->ldap.user_base, dis, &ida, on_disabled, NULL, err,
			    errlen);
		if (rc != TSR_OK)
			goto out;
	}
	v->groups_read = cfg->ldap.group_base != NULL;
	if (!v->groups_read)
		goto out;
	if (hwm) {
		free(changed);
		changed = ldap_filter_and(cfg->ldap.group_filter, ge);
		if (!changed) {
			rc = TSR_INTERNAL;
			goto out;
		}
		rc = search(s, &rd, "reading changed groups", cfg->ldap.group_base, changed, &ga, on_group,
			    &v->group_base_missing, err, errlen);
		if (rc == TSR_OK)
			rc = search(s, &rd, "listing groups", cfg->ldap.group_base, cfg->ldap.group_filter, &ida,
				    on_group_present, &v->group_base_missing, err, errlen);
	} else {
		rc = search(s, &rd, "reading groups", cfg->ldap.group_base, cfg->ldap.group_filter, &ga, on_group,
			    &v->group_base_missing, err, errlen);
	}
out:
	free(changed);
	free(ge);
	free(dis);
	if (rc == TSR_INTERNAL && err[0] == '\0')
		snprintf(err, errlen, "out of memory reading the directory");
	return rc;
}

tsr_rc ldap_view_fetch(struct ldap_session *s, const struct config *cfg, struct ldap_view *v, bool groups,
		       char *const *ids, size_t n, char *err, size_t errlen)
{
	struct reader rd = { .v = v, .cfg = cfg };
	struct attrs a;
	if (groups)
		group_attrs(cfg, &a);
	else
		user_attrs(cfg, &a);
	for (size_t off = 0; off < n; off += FETCH_BATCH) {
		size_t k = n - off < FETCH_BATCH ? n - off : FETCH_BATCH;
		char *f[FETCH_BATCH] = { 0 };
		char *any = NULL, *filter = NULL;
		tsr_rc rc = TSR_OK;
		size_t nf = 0;
		for (size_t i = 0; i < k; i++) {
			f[nf] = ldap_filter_external_id(cfg->ldap.id_attr, ids[off + i]);
			if (f[nf])
				nf++;
		}
		if (nf) {
			any = ldap_filter_or(f, nf);
			filter = any ? ldap_filter_and(groups ? cfg->ldap.group_filter : cfg->ldap.user_filter, any)
				     : NULL;
			if (!filter)
				rc = TSR_INTERNAL;
			else
				rc = search(s, &rd, groups ? "fetching groups" : "fetching users",
					    groups ? cfg->ldap.group_base : cfg->ldap.user_base, filter, &a,
					    groups ? on_group : on_user, NULL, err, errlen);
		}
		for (size_t i = 0; i < nf; i++)
			free(f[i]);
		free(any);
		free(filter);
		if (rc != TSR_OK)
			return rc;
	}
	return TSR_OK;
}

bool ldap_view_user_present(const struct ldap_view *v, const char *ext_id)
{
	return strmap_get(&v->present_index, ext_id, NULL);
}

bool ldap_view_group_present(const struct ldap_view *v, const char *ext_id)
{
	return strmap_get(&v->present_group_index, ext_id, NULL);
}

const struct ldap_user_entry *ldap_view_memberof(const struct ldap_view *v, const char *ext_id)
{
	size_t i;
	if (strmap_get(&v->present_index, ext_id, &i) && v->present[i].has_memberof)
		return &v->present[i];
	if (strmap_get(&v->user_index, ext_id, &i) && v->users[i].has_memberof)
		return &v->users[i];
	return NULL;
}
