/*
 * scim_schema.h — the SCIM schemas tessera serves (RFC 7643 §4 User and
 * Group, §4.3 enterprise extension) as one table, so validation, PATCH
 * mutability checks and the /Schemas document cannot disagree.
 *
 * scim_normalize() turns a client's resource body into tessera's canonical
 * form: attribute names in their schema case, readOnly and unknown
 * attributes dropped (RFC 7644 §3.3, §3.5.1), writeOnly password dropped
 * (tessera holds no passwords), booleans accepted as true/false or as the
 * strings "True"/"False" (Entra ID), a single value accepted where a list
 * is expected, type errors reported as invalidValue naming the attribute.
 * Pure functions over jansson values; no globals; any thread.
 */
#ifndef TSR_SCIM_SCHEMA_H
#define TSR_SCIM_SCHEMA_H

#include <stdbool.h>
#include <jansson.h>

#include "scim_filter.h"

#define SCIM_URN_USER "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_URN_GROUP "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SCIM_URN_ENTERPRISE "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define SCIM_URN_LIST "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#define SCIM_URN_ERROR "urn:ietf:params:scim:api:messages:2.0:Error"
#define SCIM_URN_PATCH "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define SCIM_URN_SPC "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
#define SCIM_URN_RT "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
#define SCIM_URN_SCHEMA "urn:ietf:params:scim:schemas:core:2.0:Schema"

enum scim_type { ST_STRING, ST_BOOLEAN, ST_COMPLEX, ST_REFERENCE, ST_DATETIME, ST_INTEGER, ST_DECIMAL, ST_BINARY };
enum scim_mut { SM_READWRITE, SM_READONLY, SM_IMMUTABLE, SM_WRITEONLY };
enum scim_ret { SR_DEFAULT, SR_ALWAYS, SR_NEVER, SR_REQUEST };

struct scim_attr_def {
	const char *name;
	enum scim_type type;
	bool multi;
	bool required;
	bool case_exact;
	enum scim_mut mut;
	enum scim_ret ret;
	bool unique;                          /* uniqueness "server" */
	const char *desc;
	const struct scim_attr_def *sub;      /* complex: sub-attributes, NULL-name terminated */
	const char *const *canonical;         /* canonicalValues, NULL-terminated, or NULL */
};

struct scim_schema_def {
	const char *id;
	const char *name;
	const char *desc;
	const struct scim_attr_def *attrs;
};

extern const struct scim_schema_def scim_schema_user, scim_schema_enterprise, scim_schema_group;

/* Attribute of attrs named name (case-insensitive), or NULL. */
const struct scim_attr_def *scim_attr_find(const struct scim_attr_def *attrs, const char *name);

/*
 * Canonicalise a resource body (POST/PUT, or the document a PATCH
 * produced) for core (User or Group) with optional extension ext.
 * *out is a new object (caller json_decref()s) holding only writable,
 * known attributes, plus "externalId". On a type error: TSR_INVALID and
 * err->msg names the attribute (scimType invalidValue).
 */
tsr_rc scim_normalize(const struct scim_schema_def *core, const struct scim_schema_def *ext, json_t *in,
		      json_t **out, struct scim_err *err) TSR_WUR;

/* Coerce a boolean given as true/false or "true"/"false" (any case). false when it is neither. */
bool scim_bool(json_t *v, bool *out);

/* The /Schemas resource of one schema (location under base, e.g. "https://h/scim/v2"). New reference. */
json_t *scim_schema_json(const struct scim_schema_def *s, const char *base);

/* Whether attr (of User/Group/extension; a sub-attribute name too) compares case-exactly. */
bool scim_case_exact(const char *attr);

#endif
