/*
 * libFuzzer target: SCIM PATCH paths ("emails[type eq \"work\"].value",
 * "urn:...:enterprise:2.0:User:manager", members[value eq "..."]) come from
 * the network in every PATCH body. Each input is parsed as a path; the first
 * byte also picks an operation (add/replace/remove) and a value shape, and
 * the whole PATCH is applied to a sample User (with the enterprise
 * extension) and to a sample Group (whose members go to a callback), so path
 * resolution, value filters and the multi-valued add/remove logic all run
 * on what the parser accepts.
 * Invariants: errors carry an HTTP status and scimType; the document stays a
 * JSON object; nothing leaks (ASan/LSan).
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_scim_patch_path
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/scim_patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *user_doc =
	"{\"userName\":\"bjensen\",\"active\":true,\"name\":{\"givenName\":\"B\",\"formatted\":\"B J\"},"
	"\"emails\":[{\"value\":\"b@x.org\",\"type\":\"work\",\"primary\":true},{\"value\":\"h@y\",\"type\":\"home\"}],"
	"\"phoneNumbers\":[{\"value\":\"1\",\"type\":\"work\"}],"
	"\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":{\"employeeNumber\":\"7\","
	"\"manager\":{\"value\":\"m1\"}}}";

static tsr_rc members(void *arg, enum scim_patch_op op, const struct scim_path *path, json_t *value,
		      struct scim_patch_err *err)
{
	int *calls = arg;
	(*calls)++;
	if (path && path->filter) {
		json_t *m = json_pack("{s:s,s:s}", "value", "u1", "type", "User");
		(void)scim_filter_eval(path->filter, m, NULL);
		json_decref(m);
	}
	return TSR_OK;
}

static void run(const struct scim_patch_ctx *ctx, const char *doc_text, json_t *body)
{
	json_t *doc = json_loads(doc_text, 0, NULL);
	struct scim_patch_err err;
	tsr_rc rc = scim_patch_apply(ctx, body, doc, &err);
	if (rc != TSR_OK && (err.status < 400 || err.status > 599))
		abort(); /* every refusal maps to an HTTP error */
	if (!json_is_object(doc))
		abort();
	if (rc == TSR_OK) {
		json_t *norm = NULL;
		struct scim_err e2;
		if (scim_normalize(ctx->core, ctx->ext, doc, &norm, &e2) == TSR_OK)
			json_decref(norm);
	}
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	char *s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	struct scim_path *p = NULL;
	struct scim_err perr;
	if (scim_path_parse(s, &p, &perr) == TSR_OK)
		scim_path_free(p);

	static const char *const opnames[] = { "add", "Replace", "remove", "ADD" };
	json_t *value;
	switch ((sel >> 2) & 3) {
	case 0: value = json_string("x@example.org"); break;
	case 1: value = json_pack("{s:s,s:s,s:b}", "value", "v", "type", "work", "primary", 1); break;
	case 2: value = json_pack("[{s:s},{s:s}]", "value", "a", "value", "b"); break;
	default: value = (sel & 16) ? json_string("False") : json_true(); break;
	}
	json_t *op = json_pack("{s:s,s:s,s:o}", "op", opnames[sel & 3], "path", s, "value", value);
	json_t *body = json_pack("{s:[s],s:[o]}", "schemas", "urn:ietf:params:scim:api:messages:2.0:PatchOp",
				 "Operations", op);
	int calls = 0;
	struct scim_patch_ctx uctx = { &scim_schema_user, &scim_schema_enterprise, NULL, NULL };
	struct scim_patch_ctx gctx = { &scim_schema_group, NULL, members, &calls };
	run(&uctx, user_doc, body);
	run(&gctx, "{\"displayName\":\"g\",\"externalId\":\"x\"}", body);
	json_decref(body);
	free(s);
	return 0;
}
