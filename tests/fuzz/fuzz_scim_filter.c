/*
 * libFuzzer target: the SCIM filter parser (RFC 7644 §3.4.2.2) reads the
 * ?filter= of every GET /scim/v2/Users and /Groups, straight from the
 * network. Each input is parsed; a tree that parses is also compiled to SQL
 * against the Users and Groups attribute maps and evaluated in C against a
 * sample user, so the compiler and the evaluator see every shape the parser
 * accepts.
 * Invariants checked: a parse error has a position inside the input; the
 * compiled SQL binds at most SCIM_FILTER_NODES parameters and never carries
 * a NUL; nothing leaks (ASan/LSan).
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_scim_filter
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/scim_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *sample;

static bool exact(const char *attr)
{
	return attr && (strcmp(attr, "id") == 0 || strcmp(attr, "externalId") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!sample)
		sample = json_loads(
			"{\"userName\":\"bjensen\",\"externalId\":\"e1\",\"active\":true,\"name\":{\"givenName\":\"B\"},"
			"\"emails\":[{\"value\":\"b@x.org\",\"type\":\"work\",\"primary\":true},{\"value\":\"h@y\"}],"
			"\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":{\"employeeNumber\":\"7\"},"
			"\"meta\":{\"created\":\"2024-01-01T00:00:00Z\"},\"n\":3}",
			0, NULL);
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	struct scim_filter *f = NULL;
	struct scim_err err;
	if (scim_filter_parse(s, &f, &err) != TSR_OK) {
		if (err.pos > strlen(s) + 1 && strlen(s) <= SCIM_FILTER_MAX)
			abort(); /* an error position outside the input */
		free(s);
		return 0;
	}
	const struct scim_sql_attr *maps[] = { scim_user_attrs, scim_group_attrs };
	for (int m = 0; m < 2; m++) {
		struct scim_sql q;
		scim_sql_init(&q);
		if (scim_filter_sql(f, maps[m], 1, &q, &err) == TSR_OK) {
			if (q.n > SCIM_FILTER_NODES || !q.sql.data || strlen(q.sql.data) != q.sql.len)
				abort();
		}
		scim_sql_free(&q);
	}
	(void)scim_filter_eval(f, sample, exact);
	(void)scim_filter_eval(f, sample, NULL);
	scim_filter_free(f);
	free(s);
	return 0;
}
