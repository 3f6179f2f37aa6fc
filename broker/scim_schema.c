/*
 * scim_schema.c — see scim_schema.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "scim_schema.h"

static const char *const email_types[] = { "work", "home", "other", NULL };
static const char *const phone_types[] = { "work", "home", "mobile", "fax", "pager", "other", NULL };
static const char *const member_types[] = { "User", "Group", NULL };
static const char *const group_types[] = { "direct", "indirect", NULL };

#define SIMPLE(n, t, d) { n, t, false, false, false, SM_READWRITE, SR_DEFAULT, false, d, NULL, NULL }

static const struct scim_attr_def name_sub[] = {
	SIMPLE("formatted", ST_STRING, "The full name, formatted for display."),
	SIMPLE("familyName", ST_STRING, "The family name."),
	SIMPLE("givenName", ST_STRING, "The given name."),
	SIMPLE("middleName", ST_STRING, "The middle name(s)."),
	SIMPLE("honorificPrefix", ST_STRING, "Honorific prefix, e.g. 'Ms.'."),
	SIMPLE("honorificSuffix", ST_STRING, "Honorific suffix, e.g. 'III'."),
	{ 0 },
};

#define MV_SUB(types, vtype)                                                                       \
	{                                                                                          \
		{ "value", vtype, false, false, false, SM_READWRITE, SR_DEFAULT, false, "The value.", NULL, NULL }, \
		SIMPLE("display", ST_STRING, "A human-readable name, primarily used for display."),  \
		{ "type", ST_STRING, false, false, false, SM_READWRITE, SR_DEFAULT, false,         \
		  "A label indicating the attribute's function.", NULL, types },                   \
		SIMPLE("primary", ST_BOOLEAN, "The primary or preferred value (at most one)."),     \
		{ 0 },                                                                             \
	}

static const struct scim_attr_def email_sub[] = MV_SUB(email_types, ST_STRING);
static const struct scim_attr_def phone_sub[] = MV_SUB(phone_types, ST_STRING);
static const struct scim_attr_def ims_sub[] = MV_SUB(NULL, ST_STRING);
static const struct scim_attr_def photo_sub[] = MV_SUB(NULL, ST_REFERENCE);
static const struct scim_attr_def plain_sub[] = MV_SUB(NULL, ST_STRING);
static const struct scim_attr_def cert_sub[] = MV_SUB(NULL, ST_BINARY);

static const struct scim_attr_def address_sub[] = {
	SIMPLE("formatted", ST_STRING, "The full mailing address."),
	SIMPLE("streetAddress", ST_STRING, "The street address."),
	SIMPLE("locality", ST_STRING, "City or locality."),
	SIMPLE("region", ST_STRING, "State or region."),
	SIMPLE("postalCode", ST_STRING, "Zip or postal code."),
	SIMPLE("country", ST_STRING, "Country, ISO 3166-1 alpha-2."),
	{ "type", ST_STRING, false, false, false, SM_READWRITE, SR_DEFAULT, false, "work, home or other.", NULL,
	  email_types },
	SIMPLE("primary", ST_BOOLEAN, "The primary address (at most one)."),
	{ 0 },
};

static const struct scim_attr_def user_groups_sub[] = {
	{ "value", ST_STRING, false, false, false, SM_READONLY, SR_DEFAULT, false, "The id of the group.", NULL, NULL },
	{ "$ref", ST_REFERENCE, false, false, false, SM_READONLY, SR_DEFAULT, false, "The URI of the group.", NULL,
	  NULL },
	{ "display", ST_STRING, false, false, false, SM_READONLY, SR_DEFAULT, false, "The group's displayName.", NULL,
	  NULL },
	{ "type", ST_STRING, false, false, false, SM_READONLY, SR_DEFAULT, false, "direct (tessera lists direct "
	  "memberships in SCIM groups).", NULL, group_types },
	{ 0 },
};

static const struct scim_attr_def user_attrs[] = {
	{ "userName", ST_STRING, false, true, false, SM_READWRITE, SR_DEFAULT, true,
	  "Unique identifier for the user, typically used to log in; unique regardless of case.", NULL, NULL },
	{ "name", ST_COMPLEX, false, false, false, SM_READWRITE, SR_DEFAULT, false, "The components of the user's name.",
	  name_sub, NULL },
	SIMPLE("displayName", ST_STRING, "The name of the user, suitable for display."),
	SIMPLE("nickName", ST_STRING, "The casual way to address the user."),
	SIMPLE("profileUrl", ST_REFERENCE, "A URI of the user's online profile."),
	SIMPLE("title", ST_STRING, "The user's title, such as 'Vice President'."),
	SIMPLE("userType", ST_STRING, "The relationship between the organisation and the user."),
	SIMPLE("preferredLanguage", ST_STRING, "Preferred written or spoken language."),
	SIMPLE("locale", ST_STRING, "Default location for localisation."),
	SIMPLE("timezone", ST_STRING, "Time zone in the 'Olson' format."),
	SIMPLE("active", ST_BOOLEAN, "Whether the user may use tessera; false runs the offboarding."),
	{ "password", ST_STRING, false, false, false, SM_WRITEONLY, SR_NEVER, false,
	  "Not used by tessera: accepted and discarded, never stored or returned.", NULL, NULL },
	{ "emails", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "Email addresses.", email_sub,
	  NULL },
	{ "phoneNumbers", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "Phone numbers.", phone_sub,
	  NULL },
	{ "ims", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "Instant messaging addresses.", ims_sub,
	  NULL },
	{ "photos", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "URLs of photos.", photo_sub, NULL },
	{ "addresses", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "Physical mailing addresses.",
	  address_sub, NULL },
	{ "groups", ST_COMPLEX, true, false, false, SM_READONLY, SR_DEFAULT, false,
	  "SCIM groups the user belongs to directly.", user_groups_sub, NULL },
	{ "entitlements", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "Entitlements.", plain_sub,
	  NULL },
	{ "roles", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false,
	  "IdP roles, kept as received (tessera roles come from group membership).", plain_sub, NULL },
	{ "x509Certificates", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "X.509 certificates.",
	  cert_sub, NULL },
	{ 0 },
};

static const struct scim_attr_def manager_sub[] = {
	SIMPLE("value", ST_STRING, "The id of the manager."),
	SIMPLE("$ref", ST_REFERENCE, "The URI of the manager."),
	{ "displayName", ST_STRING, false, false, false, SM_READONLY, SR_DEFAULT, false, "The manager's displayName.",
	  NULL, NULL },
	{ 0 },
};

static const struct scim_attr_def enterprise_attrs[] = {
	SIMPLE("employeeNumber", ST_STRING, "Identifier assigned by the organisation."),
	SIMPLE("costCenter", ST_STRING, "Cost center."),
	SIMPLE("organization", ST_STRING, "Organisation."),
	SIMPLE("division", ST_STRING, "Division."),
	SIMPLE("department", ST_STRING, "Department."),
	{ "manager", ST_COMPLEX, false, false, false, SM_READWRITE, SR_DEFAULT, false, "The user's manager.", manager_sub,
	  NULL },
	{ 0 },
};

static const struct scim_attr_def member_sub[] = {
	{ "value", ST_STRING, false, false, false, SM_IMMUTABLE, SR_DEFAULT, false, "The id of the member.", NULL, NULL },
	{ "$ref", ST_REFERENCE, false, false, false, SM_IMMUTABLE, SR_DEFAULT, false, "The URI of the member.", NULL,
	  NULL },
	{ "type", ST_STRING, false, false, false, SM_IMMUTABLE, SR_DEFAULT, false, "User or Group.", NULL,
	  member_types },
	{ "display", ST_STRING, false, false, false, SM_READONLY, SR_DEFAULT, false, "The member's display name.", NULL,
	  NULL },
	{ 0 },
};

static const struct scim_attr_def group_attrs[] = {
	{ "displayName", ST_STRING, false, true, false, SM_READWRITE, SR_DEFAULT, true,
	  "A human-readable name for the group; unique regardless of case among SCIM groups. [roles] maps group names "
	  "to tessera roles.", NULL, NULL },
	{ "members", ST_COMPLEX, true, false, false, SM_READWRITE, SR_DEFAULT, false, "Users and groups in the group.",
	  member_sub, NULL },
	{ 0 },
};

const struct scim_schema_def scim_schema_user = { SCIM_URN_USER, "User", "User Account", user_attrs };
const struct scim_schema_def scim_schema_enterprise = { SCIM_URN_ENTERPRISE, "EnterpriseUser", "Enterprise User",
							 enterprise_attrs };
const struct scim_schema_def scim_schema_group = { SCIM_URN_GROUP, "Group", "Group", group_attrs };

const struct scim_attr_def *scim_attr_find(const struct scim_attr_def *attrs, const char *name)
{
	for (const struct scim_attr_def *a = attrs; a && a->name; a++)
		if (strcasecmp(a->name, name) == 0)
			return a;
	return NULL;
}

bool scim_bool(json_t *v, bool *out)
{
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (json_is_string(v)) {
		if (strcasecmp(json_string_value(v), "true") == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(json_string_value(v), "false") == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

bool scim_case_exact(const char *attr)
{
	/* ids and externalId are caseExact (RFC 7643 §3.1); everything tessera serves otherwise is not */
	return attr && (strcasecmp(attr, "id") == 0 || strcasecmp(attr, "externalId") == 0);
}

static const char *type_name(enum scim_type t)
{
	switch (t) {
	case ST_STRING: return "string";
	case ST_BOOLEAN: return "boolean";
	case ST_COMPLEX: return "complex";
	case ST_REFERENCE: return "reference";
	case ST_DATETIME: return "dateTime";
	case ST_INTEGER: return "integer";
	case ST_DECIMAL: return "decimal";
	case ST_BINARY: return "binary";
	}
	return "string";
}

static void verr(struct scim_err *err, const char *fmt, ...) TSR_PRINTF(2, 3);
static void verr(struct scim_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* One simple value of type t; returns a new reference or NULL (err set). */
static json_t *norm_simple(const struct scim_attr_def *d, json_t *v, const char *path, struct scim_err *err)
{
	switch (d->type) {
	case ST_BOOLEAN: {
		bool b;
		if (!scim_bool(v, &b)) {
			verr(err, "attribute '%s' must be a boolean (true or false)", path);
			return NULL;
		}
		return json_boolean(b);
	}
	case ST_INTEGER:
		if (!json_is_integer(v)) {
			verr(err, "attribute '%s' must be an integer", path);
			return NULL;
		}
		return json_incref(v);
	case ST_DECIMAL:
		if (!json_is_number(v)) {
			verr(err, "attribute '%s' must be a number", path);
			return NULL;
		}
		return json_incref(v);
	default:
		if (!json_is_string(v)) {
			verr(err, "attribute '%s' must be a string", path);
			return NULL;
		}
		if (json_string_length(v) > 4096) {
			verr(err, "attribute '%s' is longer than 4096 bytes", path);
			return NULL;
		}
		if (d->canonical && strcmp(d->name, "type") == 0 && d->canonical == member_types) {
			for (const char *const *c = d->canonical; *c; c++)
				if (strcasecmp(*c, json_string_value(v)) == 0)
					return json_string(*c);
			verr(err, "attribute '%s' must be User or Group", path);
			return NULL;
		}
		return json_incref(v);
	}
}

static json_t *norm_value(const struct scim_attr_def *d, json_t *v, const char *path, struct scim_err *err);

/* A complex value: known, writable sub-attributes in canonical case. */
static json_t *norm_complex(const struct scim_attr_def *d, json_t *v, const char *path, struct scim_err *err)
{
	if (!json_is_object(v)) {
		verr(err, "attribute '%s' must be an object", path);
		return NULL;
	}
	json_t *o = json_object();
	const char *k;
	json_t *x;
	json_object_foreach (v, k, x) {
		const struct scim_attr_def *s = scim_attr_find(d->sub, k);
		if (!s || s->mut == SM_READONLY || json_is_null(x))
			continue;
		char sp[300];
		snprintf(sp, sizeof(sp), "%s.%s", path, s->name);
		json_t *n = norm_value(s, x, sp, err);
		if (!n) {
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, s->name, n);
	}
	return o;
}

static json_t *norm_value(const struct scim_attr_def *d, json_t *v, const char *path, struct scim_err *err)
{
	if (d->multi) {
		json_t *arr = json_array();
		json_t *in = v;
		json_t *tmp = NULL;
		if (!json_is_array(v)) { /* a single value where a list is expected */
			tmp = json_pack("[O]", v);
			in = tmp;
		}
		size_t i;
		json_t *e;
		int primaries = 0;
		json_array_foreach (in, i, e) {
			if (json_is_null(e))
				continue;
			json_t *n = d->type == ST_COMPLEX ? norm_complex(d, e, path, err) : norm_simple(d, e, path, err);
			if (!n) {
				json_decref(arr);
				json_decref(tmp);
				return NULL;
			}
			if (json_is_true(json_object_get(n, "primary")))
				primaries++;
			if (json_is_object(n) && !json_object_size(n)) {
				json_decref(n);
				continue;
			}
			json_array_append_new(arr, n);
		}
		json_decref(tmp);
		if (primaries > 1) {
			verr(err, "attribute '%s' has more than one primary value", path);
			json_decref(arr);
			return NULL;
		}
		return arr;
	}
	if (d->type == ST_COMPLEX && json_is_string(v) && scim_attr_find(d->sub, "value")) {
		/* a bare id for a complex attribute with a "value" (Entra ID's manager) */
		json_t *w = json_pack("{s:O}", "value", v);
		json_t *n = norm_complex(d, w, path, err);
		json_decref(w);
		return n;
	}
	if (d->type == ST_COMPLEX)
		return norm_complex(d, v, path, err);
	return norm_simple(d, v, path, err);
}

/* Copy the writable attributes of in (per attrs) into out. */
static tsr_rc norm_attrs(const struct scim_attr_def *attrs, json_t *in, json_t *out, struct scim_err *err)
{
	const char *k;
	json_t *v;
	json_object_foreach (in, k, v) {
		const struct scim_attr_def *d = scim_attr_find(attrs, k);
		if (!d || d->mut == SM_READONLY || d->mut == SM_WRITEONLY || json_is_null(v))
			continue; /* unknown and readOnly attributes are ignored (RFC 7644 §3.5.1); password discarded */
		json_t *n = norm_value(d, v, d->name, err);
		if (!n)
			return TSR_INVALID;
		if ((json_is_array(n) && !json_array_size(n)) || (json_is_object(n) && !json_object_size(n)) ||
		    (json_is_string(n) && !json_string_length(n))) {
			json_decref(n); /* empty means unassigned */
			continue;
		}
		json_object_set_new(out, d->name, n);
	}
	return TSR_OK;
}

tsr_rc scim_normalize(const struct scim_schema_def *core, const struct scim_schema_def *ext, json_t *in,
		      json_t **out, struct scim_err *err)
{
	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (!json_is_object(in)) {
		snprintf(err->msg, sizeof(err->msg), "the resource must be a JSON object");
		return TSR_INVALID;
	}
	json_t *o = json_object();
	if (!o)
		return TSR_INTERNAL;
	tsr_rc rc = norm_attrs(core->attrs, in, o, err);
	if (rc != TSR_OK)
		goto fail;
	json_t *xid = NULL;
	const char *k;
	json_t *v;
	json_object_foreach (in, k, v) {
		if (strcasecmp(k, "externalId") == 0)
			xid = v;
		if (ext && strcasecmp(k, ext->id) == 0 && !json_is_null(v)) {
			if (!json_is_object(v)) {
				snprintf(err->msg, sizeof(err->msg), "'%s' must be an object", ext->id);
				rc = TSR_INVALID;
				goto fail;
			}
			json_t *e = json_object();
			if ((rc = norm_attrs(ext->attrs, v, e, err)) != TSR_OK) {
				json_decref(e);
				goto fail;
			}
			if (json_object_size(e))
				json_object_set_new(o, ext->id, e);
			else
				json_decref(e);
		}
	}
	if (xid && !json_is_null(xid)) {
		if (!json_is_string(xid) || json_string_length(xid) > 1024) {
			snprintf(err->msg, sizeof(err->msg), "attribute 'externalId' must be a string of at most 1024 bytes");
			rc = TSR_INVALID;
			goto fail;
		}
		if (json_string_length(xid))
			json_object_set(o, "externalId", xid);
	}
	*out = o;
	return TSR_OK;
fail:
	json_decref(o);
	return rc;
}

static json_t *attr_json(const struct scim_attr_def *d)
{
	static const char *const mut[] = { "readWrite", "readOnly", "immutable", "writeOnly" };
	static const char *const ret[] = { "default", "always", "never", "request" };
	json_t *a = json_pack("{s:s,s:s,s:b,s:s,s:b,s:b,s:s,s:s,s:s}", "name", d->name, "type", type_name(d->type),
			      "multiValued", d->multi, "description", d->desc ? d->desc : "", "required", d->required,
			      "caseExact", d->case_exact, "mutability", mut[d->mut], "returned", ret[d->ret],
			      "uniqueness", d->unique ? "server" : "none");
	if (d->type == ST_REFERENCE)
		json_object_set_new(a, "referenceTypes", json_pack("[s,s]", "external", "uri"));
	if (d->canonical) {
		json_t *c = json_array();
		for (const char *const *p = d->canonical; *p; p++)
			json_array_append_new(c, json_string(*p));
		json_object_set_new(a, "canonicalValues", c);
	}
	if (d->sub) {
		json_t *s = json_array();
		for (const struct scim_attr_def *x = d->sub; x->name; x++)
			json_array_append_new(s, attr_json(x));
		json_object_set_new(a, "subAttributes", s);
	}
	return a;
}

json_t *scim_schema_json(const struct scim_schema_def *s, const char *base)
{
	json_t *attrs = json_array();
	for (const struct scim_attr_def *d = s->attrs; d->name; d++)
		json_array_append_new(attrs, attr_json(d));
	char loc[1024];
	snprintf(loc, sizeof(loc), "%s/Schemas/%s", base, s->id);
	return json_pack("{s:[s],s:s,s:s,s:s,s:o,s:{s:s,s:s}}", "schemas", SCIM_URN_SCHEMA, "id", s->id, "name",
			 s->name, "description", s->desc, "attributes", attrs, "meta", "resourceType", "Schema",
			 "location", loc);
}
