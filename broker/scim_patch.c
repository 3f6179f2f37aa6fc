/*
 * scim_patch.c — see scim_patch.h.
 *
 * Attribute names are resolved through the schema table and always written
 * back in their canonical case, so "GivenName" and "givenName" never end up
 * as two keys. Operations with an explicit path are strict (unknown
 * attribute: invalidPath; readOnly: mutability); the keys of a value object
 * without a path are lenient (unknown and readOnly keys are ignored, as in a
 * PUT), because IdPs send back id/meta/schemas there.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim_patch.h"

static const struct scim_attr_def common_attrs[] = {
	{ "externalId", ST_STRING, false, false, true, SM_READWRITE, SR_DEFAULT, false, "", NULL, NULL },
	{ "id", ST_STRING, false, false, true, SM_READONLY, SR_ALWAYS, true, "", NULL, NULL },
	{ "meta", ST_COMPLEX, false, false, false, SM_READONLY, SR_DEFAULT, false, "", NULL, NULL },
	{ "schemas", ST_STRING, true, false, true, SM_READONLY, SR_ALWAYS, false, "", NULL, NULL },
	{ 0 },
};

static tsr_rc perr(struct scim_patch_err *e, int status, const char *type, const char *fmt, ...) TSR_PRINTF(4, 5);
static tsr_rc perr(struct scim_patch_err *e, int status, const char *type, const char *fmt, ...)
{
	e->status = status;
	e->scim_type = type;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	return TSR_INVALID;
}

static json_t *get_ci(json_t *obj, const char *name)
{
	if (!json_is_object(obj))
		return NULL;
	json_t *v = json_object_get(obj, name);
	if (v)
		return v;
	const char *k;
	json_object_foreach (obj, k, v)
		if (strcasecmp(k, name) == 0)
			return v;
	return NULL;
}

static void del_ci(json_t *obj, const char *name)
{
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe (obj, tmp, k, v)
		if (strcasecmp(k, name) == 0)
			json_object_del(obj, k);
}

/* Set obj[canonical] = v (steals v), removing any key that differs only in case. */
static void set_ci(json_t *obj, const char *canonical, json_t *v)
{
	del_ci(obj, canonical);
	json_object_set_new(obj, canonical, v);
}

struct target {
	json_t *base;                         /* object holding the attribute (doc or the extension object) */
	const struct scim_attr_def *def;
	const struct scim_attr_def *subdef;   /* attr.sub, or [filter].sub */
	const struct scim_filter *filter;
	bool in_ext;
};

/* A value filter may only name sub-attributes of the attribute it filters. */
static bool filter_names_ok(const struct scim_filter *f, const struct scim_attr_def *def, struct scim_patch_err *err)
{
	if (!f)
		return true;
	if (f->op == SCIM_AND || f->op == SCIM_OR || f->op == SCIM_NOT)
		return filter_names_ok(f->a, def, err) && filter_names_ok(f->b, def, err);
	if (f->op == SCIM_VALUEPATH || f->path.sub || f->path.urn || !scim_attr_find(def->sub, f->path.attr)) {
		perr(err, 400, "invalidFilter", "'%s' has no sub-attribute '%s' (in the value filter at position %zu)",
		     def->name, f->path.attr, f->pos);
		return false;
	}
	return true;
}

/*
 * Resolve a parsed path against the schema. Returns 1 found, 0 unknown
 * (err set for the strict case), -1 error (err set).
 */
static int resolve(const struct scim_patch_ctx *ctx, json_t *doc, const struct scim_path *p, bool create,
		   struct target *t, struct scim_patch_err *err)
{
	memset(t, 0, sizeof(*t));
	const struct scim_attr_def *attrs = ctx->core->attrs;
	if (p->attr.urn) {
		if (strcasecmp(p->attr.urn, ctx->core->id) == 0) {
			attrs = ctx->core->attrs;
		} else if (ctx->ext && strcasecmp(p->attr.urn, ctx->ext->id) == 0) {
			attrs = ctx->ext->attrs;
			t->in_ext = true;
		} else {
			perr(err, 400, "invalidPath", "unknown schema '%s' in the path", p->attr.urn);
			return 0;
		}
	}
	t->def = t->in_ext ? NULL : scim_attr_find(common_attrs, p->attr.attr);
	if (!t->def)
		t->def = scim_attr_find(attrs, p->attr.attr);
	if (!t->def) {
		perr(err, 400, "invalidPath", "no attribute '%s' in %s", p->attr.attr,
		     t->in_ext ? ctx->ext->name : ctx->core->name);
		return 0;
	}
	const char *sub = p->attr.sub ? p->attr.sub : p->sub;
	if (sub) {
		if (t->def->type != ST_COMPLEX || !t->def->sub) {
			perr(err, 400, "invalidPath", "'%s' has no sub-attributes ('%s.%s')", t->def->name, t->def->name, sub);
			return 0;
		}
		t->subdef = scim_attr_find(t->def->sub, sub);
		if (!t->subdef) {
			perr(err, 400, "invalidPath", "'%s' has no sub-attribute '%s'", t->def->name, sub);
			return 0;
		}
		if (t->def->multi && !p->filter) {
			perr(err, 400, "invalidPath",
			     "'%s.%s' names every value of a multi-valued attribute: select values with a filter, e.g. "
			     "%s[type eq \"work\"].%s",
			     t->def->name, t->subdef->name, t->def->name, t->subdef->name);
			return -1;
		}
	}
	if (p->filter) {
		if (!t->def->multi || t->def->type != ST_COMPLEX) {
			perr(err, 400, "invalidPath", "'%s' is not a multi-valued complex attribute: a [filter] does not apply",
			     t->def->name);
			return -1;
		}
		if (!filter_names_ok(p->filter, t->def, err))
			return -1;
		t->filter = p->filter;
	}
	t->base = doc;
	if (t->in_ext) {
		json_t *e = get_ci(doc, ctx->ext->id);
		if (!json_is_object(e)) {
			if (!create) {
				t->base = NULL;
				return 1;
			}
			e = json_object();
			set_ci(doc, ctx->ext->id, e);
		}
		t->base = e;
	}
	return 1;
}

/* A complex value's writable sub-attributes, canonical names; NULL if v is not an object. */
static json_t *canon_complex(const struct scim_attr_def *def, json_t *v)
{
	if (!json_is_object(v))
		return NULL;
	json_t *o = json_object();
	const char *k;
	json_t *x;
	json_object_foreach (v, k, x) {
		const struct scim_attr_def *s = scim_attr_find(def->sub, k);
		if (s && s->mut != SM_READONLY)
			set_ci(o, s->name, json_incref(x));
	}
	return o;
}

/* Merge the sub-attributes of v into obj (null removes one). */
static void merge_complex(const struct scim_attr_def *def, json_t *obj, json_t *v)
{
	const char *k;
	json_t *x;
	json_object_foreach (v, k, x) {
		const struct scim_attr_def *s = scim_attr_find(def->sub, k);
		if (!s || s->mut == SM_READONLY)
			continue;
		if (json_is_null(x))
			del_ci(obj, s->name);
		else
			set_ci(obj, s->name, json_incref(x));
	}
}

static bool is_primary(json_t *e)
{
	bool b = false;
	return scim_bool(get_ci(e, "primary"), &b) && b;
}

static void clear_primary(json_t *arr, json_t *except)
{
	size_t i;
	json_t *e;
	json_array_foreach (arr, i, e)
		if (e != except && json_is_object(e) && is_primary(e))
			set_ci(e, "primary", json_false());
}

/* The multi-valued array at t (created when asked). */
static json_t *multi_array(const struct target *t, bool create)
{
	json_t *a = get_ci(t->base, t->def->name);
	if (json_is_array(a))
		return a;
	if (!create)
		return NULL;
	a = json_array();
	set_ci(t->base, t->def->name, a);
	return a;
}

static bool same_value(json_t *a, json_t *b)
{
	if (json_is_object(a) && json_is_object(b)) {
		json_t *va = get_ci(a, "value"), *vb = get_ci(b, "value");
		if (json_is_string(va) && json_is_string(vb)) {
			json_t *ta = get_ci(a, "type"), *tb = get_ci(b, "type");
			bool same_type = (!ta && !tb) || (json_is_string(ta) && json_is_string(tb) &&
							  strcasecmp(json_string_value(ta), json_string_value(tb)) == 0);
			return same_type && strcasecmp(json_string_value(va), json_string_value(vb)) == 0;
		}
	}
	return json_equal(a, b);
}

/* add to a multi-valued attribute: append values not already present; a new primary clears the others. */
static tsr_rc add_multi(const struct target *t, json_t *value, struct scim_patch_err *err)
{
	json_t *arr = multi_array(t, true);
	json_t *items = json_is_array(value) ? json_incref(value) : json_pack("[O]", value);
	size_t i;
	json_t *it;
	tsr_rc rc = TSR_OK;
	json_array_foreach (items, i, it) {
		json_t *n;
		if (t->def->type == ST_COMPLEX) {
			n = canon_complex(t->def, it);
			if (!n) {
				rc = perr(err, 400, "invalidValue", "each value of '%s' must be an object", t->def->name);
				break;
			}
		} else {
			n = json_incref(it);
		}
		size_t j;
		json_t *e;
		json_t *dup = NULL;
		json_array_foreach (arr, j, e)
			if (same_value(e, n))
				dup = e;
		if (dup) {
			if (json_is_object(n)) /* same value again: take the sub-attributes it brings (e.g. primary) */
				merge_complex(t->def, dup, n);
			if (is_primary(dup))
				clear_primary(arr, dup);
			json_decref(n);
			continue;
		}
		if (json_is_object(n) && is_primary(n))
			clear_primary(arr, NULL);
		json_array_append_new(arr, n);
	}
	json_decref(items);
	return rc;
}

/*
 * Build a new element from a filter made only of "sub eq value" joined by
 * "and" (type eq "work"); false when the filter has any other shape.
 */
static bool element_from_filter(const struct scim_filter *f, const struct scim_attr_def *def, json_t *obj)
{
	if (f->op == SCIM_AND)
		return element_from_filter(f->a, def, obj) && element_from_filter(f->b, def, obj);
	if (f->op != SCIM_EQ || f->path.sub)
		return false;
	const struct scim_attr_def *s = scim_attr_find(def->sub, f->path.attr);
	if (!s || s->mut == SM_READONLY)
		return false;
	switch (f->v.type) {
	case SCIM_V_STRING: set_ci(obj, s->name, json_string(f->v.s)); return true;
	case SCIM_V_TRUE: set_ci(obj, s->name, json_true()); return true;
	case SCIM_V_FALSE: set_ci(obj, s->name, json_false()); return true;
	default: return false;
	}
}

/* add/replace through a value filter. */
static tsr_rc set_filtered(const struct target *t, enum scim_patch_op op, json_t *value, struct scim_patch_err *err)
{
	json_t *arr = multi_array(t, op != SCIM_PATCH_REMOVE);
	size_t i;
	json_t *e;
	int matched = 0;
	if (!t->subdef && !json_is_object(value))
		return perr(err, 400, "invalidValue", "the value for '%s[...]' must be an object", t->def->name);
	json_array_foreach (arr, i, e) {
		if (!json_is_object(e) || !scim_filter_eval(t->filter, e, scim_case_exact))
			continue;
		matched++;
		if (t->subdef) {
			if (json_is_null(value))
				del_ci(e, t->subdef->name);
			else
				set_ci(e, t->subdef->name, json_incref(value));
		} else if (op == SCIM_PATCH_ADD) {
			merge_complex(t->def, e, value);
		} else {
			json_t *n = canon_complex(t->def, value);
			json_object_clear(e);
			json_object_update(e, n);
			json_decref(n);
		}
		if (is_primary(e))
			clear_primary(arr, e);
	}
	if (matched)
		return TSR_OK;
	/* nothing matched: create the element when the filter says what it is */
	json_t *n = json_object();
	if (element_from_filter(t->filter, t->def, n) && (op == SCIM_PATCH_ADD || t->subdef)) {
		if (t->subdef)
			set_ci(n, t->subdef->name, json_incref(value));
		else
			merge_complex(t->def, n, value);
		if (is_primary(n))
			clear_primary(arr, NULL);
		json_array_append_new(arr, n);
		return TSR_OK;
	}
	json_decref(n);
	if (op == SCIM_PATCH_ADD)
		return perr(err, 400, "noTarget", "no value of '%s' matches the filter, and the filter does not describe a "
			    "new value (use only 'sub eq value' joined by 'and')", t->def->name);
	return perr(err, 400, "noTarget", "no value of '%s' matches the filter", t->def->name);
}

static tsr_rc op_remove(const struct target *t, json_t *value, struct scim_patch_err *err)
{
	if (!t->base)
		return TSR_OK;
	if (t->filter) {
		json_t *arr = multi_array(t, false);
		if (!arr)
			return TSR_OK; /* removing what is not there is not an error */
		for (size_t i = json_array_size(arr); i-- > 0;) {
			json_t *e = json_array_get(arr, i);
			if (!json_is_object(e) || !scim_filter_eval(t->filter, e, scim_case_exact))
				continue;
			if (t->subdef)
				del_ci(e, t->subdef->name);
			else
				json_array_remove(arr, i);
		}
		if (!json_array_size(arr))
			del_ci(t->base, t->def->name);
		return TSR_OK;
	}
	if (t->subdef) {
		json_t *o = get_ci(t->base, t->def->name);
		if (json_is_object(o))
			del_ci(o, t->subdef->name);
		return TSR_OK;
	}
	if (t->def->multi && value && !json_is_null(value)) {
		/* remove the listed values (Entra ID: {"op":"Remove","path":"members","value":[{"value":"id"}]}) */
		json_t *arr = multi_array(t, false);
		json_t *items = json_is_array(value) ? json_incref(value) : json_pack("[O]", value);
		for (size_t i = arr ? json_array_size(arr) : 0; i-- > 0;) {
			json_t *e = json_array_get(arr, i);
			size_t j;
			json_t *it;
			json_array_foreach (items, j, it)
				if (same_value(e, it) || (json_is_object(e) && json_is_object(it) && get_ci(it, "value") &&
							  json_equal(get_ci(e, "value"), get_ci(it, "value")))) {
					json_array_remove(arr, i);
					break;
				}
		}
		json_decref(items);
		if (arr && !json_array_size(arr))
			del_ci(t->base, t->def->name);
		return TSR_OK;
	}
	(void)err;
	del_ci(t->base, t->def->name);
	return TSR_OK;
}

static tsr_rc op_set(const struct target *t, enum scim_patch_op op, json_t *value, struct scim_patch_err *err)
{
	if (t->filter)
		return set_filtered(t, op, value, err);
	if (json_is_null(value))
		return op_remove(t, NULL, err);
	if (t->subdef) {
		json_t *o = get_ci(t->base, t->def->name);
		if (!json_is_object(o)) {
			o = json_object();
			set_ci(t->base, t->def->name, o);
		}
		set_ci(o, t->subdef->name, json_incref(value));
		return TSR_OK;
	}
	if (t->def->multi) {
		if (op == SCIM_PATCH_REPLACE)
			del_ci(t->base, t->def->name);
		return add_multi(t, value, err);
	}
	if (t->def->type == ST_COMPLEX) {
		json_t *wrapped = NULL;
		if (json_is_string(value) && scim_attr_find(t->def->sub, "value")) {
			/* Entra ID sends the enterprise manager as a bare id: {"value": id} */
			wrapped = json_pack("{s:O}", "value", value);
			value = wrapped;
		}
		if (!json_is_object(value))
			return perr(err, 400, "invalidValue", "the value for '%s' must be an object", t->def->name);
		json_t *o = get_ci(t->base, t->def->name);
		if (!json_is_object(o)) {
			o = json_object();
			set_ci(t->base, t->def->name, o);
		}
		merge_complex(t->def, o, value);
		json_decref(wrapped);
		return TSR_OK;
	}
	if (json_is_object(value) || json_is_array(value)) {
		/* a one-element list or {"value": x} for a simple attribute is a common IdP quirk */
		json_t *inner = json_is_array(value) && json_array_size(value) == 1 ? json_array_get(value, 0) : NULL;
		if (json_is_object(value))
			inner = get_ci(value, "value");
		if (!inner || json_is_object(inner) || json_is_array(inner))
			return perr(err, 400, "invalidValue", "the value for '%s' must be a single %s", t->def->name,
				    t->def->type == ST_BOOLEAN ? "boolean" : "string");
		value = inner;
	}
	set_ci(t->base, t->def->name, json_incref(value));
	return TSR_OK;
}

static bool is_members(const struct scim_patch_ctx *ctx, const struct scim_attrpath *a)
{
	return ctx->members && strcasecmp(a->attr, "members") == 0 && !a->sub &&
	       (!a->urn || strcasecmp(a->urn, ctx->core->id) == 0);
}

static tsr_rc apply_path(const struct scim_patch_ctx *ctx, json_t *doc, enum scim_patch_op op,
			 const struct scim_path *p, json_t *value, bool lenient, struct scim_patch_err *err)
{
	if (is_members(ctx, &p->attr))
		return ctx->members(ctx->arg, op, p->filter ? p : NULL, value, err);
	struct target t;
	int r = resolve(ctx, doc, p, op != SCIM_PATCH_REMOVE, &t, err);
	if (r < 0)
		return TSR_INVALID;
	if (r == 0)
		return lenient ? TSR_OK : TSR_INVALID;
	bool read_only = t.def->mut == SM_READONLY || (t.subdef && t.subdef->mut == SM_READONLY);
	if (read_only || (t.def->mut == SM_WRITEONLY && op == SCIM_PATCH_REMOVE)) {
		if (lenient)
			return TSR_OK;
		return perr(err, 400, "mutability", "'%s%s%s' is read-only", t.def->name, t.subdef ? "." : "",
			    t.subdef ? t.subdef->name : "");
	}
	if (op == SCIM_PATCH_REMOVE || json_is_null(value)) {
		if (t.def->required && !t.subdef && !t.filter)
			return perr(err, 400, "mutability", "'%s' is required and cannot be removed", t.def->name);
		return op_remove(&t, op == SCIM_PATCH_REMOVE ? value : NULL, err);
	}
	return op_set(&t, op, value, err);
}

/* Apply a path given as text (from "path", or a key of a value object). */
static tsr_rc apply_text(const struct scim_patch_ctx *ctx, json_t *doc, enum scim_patch_op op, const char *path,
			 json_t *value, bool lenient, struct scim_patch_err *err);

/* Each member of an extension object, as "URN:attr". */
static tsr_rc apply_ext_object(const struct scim_patch_ctx *ctx, json_t *doc, enum scim_patch_op op, json_t *value,
			       struct scim_patch_err *err)
{
	if (!json_is_object(value))
		return perr(err, 400, "invalidValue", "the value for '%s' must be an object", ctx->ext->id);
	const char *k;
	json_t *v;
	json_object_foreach (value, k, v) {
		char sub[512];
		snprintf(sub, sizeof(sub), "%s:%s", ctx->ext->id, k);
		tsr_rc rc = apply_text(ctx, doc, op, sub, v, true, err);
		if (rc != TSR_OK)
			return rc;
	}
	return TSR_OK;
}

static tsr_rc apply_text(const struct scim_patch_ctx *ctx, json_t *doc, enum scim_patch_op op, const char *path,
			 json_t *value, bool lenient, struct scim_patch_err *err)
{
	if (ctx->ext && strcasecmp(path, ctx->ext->id) == 0) {
		if (op == SCIM_PATCH_REMOVE) {
			del_ci(doc, ctx->ext->id);
			return TSR_OK;
		}
		if (op == SCIM_PATCH_REPLACE)
			del_ci(doc, ctx->ext->id);
		return apply_ext_object(ctx, doc, op, value, err);
	}
	struct scim_path *p;
	struct scim_err pe;
	if (scim_path_parse(path, &p, &pe) != TSR_OK) {
		if (lenient)
			return TSR_OK;
		return perr(err, 400, "invalidPath", "invalid path at position %zu: %s", pe.pos, pe.msg);
	}
	tsr_rc rc = apply_path(ctx, doc, op, p, value, lenient, err);
	scim_path_free(p);
	return rc;
}

static tsr_rc apply_op(const struct scim_patch_ctx *ctx, json_t *doc, size_t idx, json_t *o, struct scim_patch_err *err)
{
	if (!json_is_object(o))
		return perr(err, 400, "invalidSyntax", "Operations[%zu] must be an object", idx);
	json_t *jop = get_ci(o, "op");
	json_t *jpath = get_ci(o, "path");
	json_t *value = get_ci(o, "value");
	if (!json_is_string(jop))
		return perr(err, 400, "invalidSyntax", "Operations[%zu] needs \"op\": add, remove or replace", idx);
	const char *ops = json_string_value(jop);
	enum scim_patch_op op;
	if (strcasecmp(ops, "add") == 0)
		op = SCIM_PATCH_ADD;
	else if (strcasecmp(ops, "remove") == 0)
		op = SCIM_PATCH_REMOVE;
	else if (strcasecmp(ops, "replace") == 0)
		op = SCIM_PATCH_REPLACE;
	else
		return perr(err, 400, "invalidSyntax", "Operations[%zu]: unknown op '%.40s' (add, remove or replace)", idx,
			    ops);
	if (jpath && !json_is_null(jpath) && !json_is_string(jpath))
		return perr(err, 400, "invalidPath", "Operations[%zu]: \"path\" must be a string", idx);
	const char *path = json_is_string(jpath) && json_string_length(jpath) ? json_string_value(jpath) : NULL;
	if (op != SCIM_PATCH_REMOVE && !value)
		return perr(err, 400, "invalidValue", "Operations[%zu]: '%s' needs a \"value\"", idx, ops);
	if (path)
		return apply_text(ctx, doc, op, path, value, false, err);
	if (op == SCIM_PATCH_REMOVE)
		return perr(err, 400, "noTarget", "Operations[%zu]: remove needs a \"path\"", idx);
	if (!json_is_object(value))
		return perr(err, 400, "invalidValue", "Operations[%zu]: without a path, the value must be an object of "
			    "attributes", idx);
	const char *k;
	json_t *v;
	json_object_foreach (value, k, v) {
		tsr_rc rc = apply_text(ctx, doc, op, k, v, true, err);
		if (rc != TSR_OK)
			return rc;
	}
	return TSR_OK;
}

tsr_rc scim_patch_apply(const struct scim_patch_ctx *ctx, json_t *body, json_t *doc, struct scim_patch_err *err)
{
	memset(err, 0, sizeof(*err));
	if (!json_is_object(body))
		return perr(err, 400, "invalidSyntax", "the body must be a PatchOp object");
	json_t *schemas = get_ci(body, "schemas");
	bool has_urn = false;
	size_t i;
	json_t *s;
	json_array_foreach (schemas, i, s)
		if (json_is_string(s) && strcasecmp(json_string_value(s), SCIM_URN_PATCH) == 0)
			has_urn = true;
	if (!has_urn)
		return perr(err, 400, "invalidSyntax", "\"schemas\" must contain \"%s\"", SCIM_URN_PATCH);
	json_t *ops = get_ci(body, "Operations");
	if (!json_is_array(ops) || !json_array_size(ops))
		return perr(err, 400, "invalidSyntax", "\"Operations\" must be a non-empty array");
	if (json_array_size(ops) > 10000)
		return perr(err, 400, "invalidValue", "at most 10000 operations per request");
	json_t *o;
	json_array_foreach (ops, i, o) {
		tsr_rc rc = apply_op(ctx, doc, i, o, err);
		if (rc != TSR_OK) {
			if (!err->status)
				perr(err, 500, NULL, "internal error");
			return rc;
		}
	}
	return TSR_OK;
}
