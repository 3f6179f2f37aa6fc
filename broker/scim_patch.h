/*
 * scim_patch.h — RFC 7644 §3.5.2 PATCH on a SCIM resource document.
 *
 * The operations of one request are applied, in order, to the resource's
 * canonical JSON (the writable attributes as scim_normalize() produces
 * them); the caller then normalises the result again (type checks) and
 * stores it, inside one transaction, so a PATCH is atomic: any error
 * leaves the resource as it was.
 *
 * Supported: add/replace/remove (op names in any case: "Replace"), with
 * and without path; paths with a schema URN prefix; complex sub-attributes
 * (name.givenName); value-filtered paths (emails[type eq "work"],
 * emails[type eq "work"].value, members[value eq "..."]); value objects
 * without path whose keys are themselves paths ("name.givenName", an
 * extension URN, "urn:...:User:department", as Entra ID sends them);
 * booleans as "True"/"False" strings; multi-valued add appends (without
 * duplicates) and a new primary value clears the others; remove on a
 * multi-valued attribute with a value array removes those values (Entra
 * ID's member removal). Add or replace through an equality filter that
 * matches nothing creates the element (Entra ID's
 * emails[type eq "work"].value on a user without one); any other
 * unmatched replace is noTarget.
 *
 * Group members never go through the document: ops on "members" are handed
 * to the members callback, so a PATCH adding 1,000 members is one bulk SQL
 * statement, not a rewrite of the member list.
 */
#ifndef TSR_SCIM_PATCH_H
#define TSR_SCIM_PATCH_H

#include <jansson.h>

#include "scim_filter.h"
#include "scim_schema.h"

enum scim_patch_op { SCIM_PATCH_ADD, SCIM_PATCH_REMOVE, SCIM_PATCH_REPLACE };

/* An error for the SCIM error response: HTTP status and scimType (may be NULL). */
struct scim_patch_err {
	int status;
	const char *scim_type;
	char detail[300];
};

struct scim_patch_ctx {
	const struct scim_schema_def *core;
	const struct scim_schema_def *ext;   /* may be NULL */
	/*
	 * Called for operations on "members" instead of changing the document
	 * (NULL: members are an unknown attribute). path is NULL for a
	 * whole-attribute operation (no filter), else the parsed path.
	 * value may be NULL (remove).
	 */
	tsr_rc (*members)(void *arg, enum scim_patch_op op, const struct scim_path *path, json_t *value,
			  struct scim_patch_err *err);
	void *arg;
};

/*
 * Apply the PatchOp body to doc (modified in place). TSR_OK, or TSR_INVALID
 * (or the callback's rc) with err filled: invalidSyntax, invalidPath,
 * invalidValue, invalidFilter, noTarget or mutability.
 */
tsr_rc scim_patch_apply(const struct scim_patch_ctx *ctx, json_t *body, json_t *doc, struct scim_patch_err *err) TSR_WUR;

#endif
