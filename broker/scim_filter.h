/*
 * scim_filter.h — RFC 7644 §3.4.2.2 filters and attribute paths.
 *
 * A recursive-descent parser turns filter text into a tree (never string
 * matching): comparisons (eq ne co sw ew gt ge lt le), presence (pr),
 * and/or/not with the RFC's precedence (not > and > or), parentheses,
 * value paths (emails[type eq "work" and primary eq true]) and attribute
 * paths with an optional schema URN prefix. Attribute names and keywords are
 * case-insensitive; string values are JSON strings decoded by jansson.
 * Every error says what was expected and the 0-based byte position where it
 * went wrong, for the SCIM invalidFilter / invalidPath detail.
 *
 * The same tree is used three ways:
 *   - scim_filter_sql(): compiled to a parameterised SQL boolean expression
 *     over a column map the caller supplies (db/scim_store.h); values only
 *     ever travel as $n parameters;
 *   - scim_filter_eval(): evaluated in C against a JSON object (PATCH value
 *     filters, members[value eq "..."]);
 *   - scim_path_parse(): a PATCH "path" (attrPath, or valuePath with an
 *     optional ".subAttr") reuses the parser.
 *
 * Bounds: input at most SCIM_FILTER_MAX bytes, nesting at most
 * SCIM_FILTER_DEPTH, at most SCIM_FILTER_NODES nodes, so hostile input
 * costs bounded stack and memory. No globals; safe from any thread.
 */
#ifndef TSR_SCIM_FILTER_H
#define TSR_SCIM_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "../lib/buf.h"
#include "../lib/status.h"
#include "../db/scim_store.h"

#define SCIM_FILTER_MAX 8192
#define SCIM_FILTER_DEPTH 32
#define SCIM_FILTER_NODES 256

enum scim_fop {
	SCIM_EQ, SCIM_NE, SCIM_CO, SCIM_SW, SCIM_EW, SCIM_GT, SCIM_GE, SCIM_LT, SCIM_LE,
	SCIM_PR,
	SCIM_AND, SCIM_OR, SCIM_NOT,
	SCIM_VALUEPATH, /* path[a] */
};

enum scim_vtype { SCIM_V_STRING, SCIM_V_NUMBER, SCIM_V_TRUE, SCIM_V_FALSE, SCIM_V_NULL };

/* [urn ":"] attr ["." sub]; urn and sub may be NULL. Names keep the client's case. */
struct scim_attrpath {
	char *urn;
	char *attr;
	char *sub;
};

struct scim_value {
	enum scim_vtype type;
	char *s;          /* decoded string, or the number's text; NULL otherwise */
};

struct scim_filter {
	enum scim_fop op;
	struct scim_attrpath path;  /* comparisons, pr, valuepath */
	struct scim_value v;        /* comparisons */
	struct scim_filter *a, *b;  /* and/or: a, b; not, valuepath: a */
	size_t pos;                 /* where the node starts in the input */
};

/* A parse or compile error: what went wrong and where (0-based byte offset). */
struct scim_err {
	size_t pos;
	char msg[200];
};

/*
 * Parse filter text s (NUL-terminated). On success *out is the tree;
 * caller frees with scim_filter_free(). On failure TSR_INVALID and err says
 * why and where.
 */
tsr_rc scim_filter_parse(const char *s, struct scim_filter **out, struct scim_err *err) TSR_WUR;
void scim_filter_free(struct scim_filter *f);

/* A PATCH path: attrPath, or attrPath "[" filter "]" ["." subAttr]. */
struct scim_path {
	struct scim_attrpath attr;   /* attr.sub is the ".sub" of a plain attrPath */
	struct scim_filter *filter;  /* value selection, or NULL */
	char *sub;                   /* the ".sub" after "]", or NULL */
};

/* Parse a PATCH path. Caller frees with scim_path_free(). TSR_INVALID + err on bad input. */
tsr_rc scim_path_parse(const char *s, struct scim_path **out, struct scim_err *err) TSR_WUR;
void scim_path_free(struct scim_path *p);

/*
 * Evaluate f against a JSON object (a resource, or one element of a
 * multi-valued attribute). Attribute names match case-insensitively; string
 * comparisons ignore case unless case_exact(attr name) says otherwise
 * (case_exact may be NULL: never exact). Multi-valued attributes match when
 * any element does; a missing attribute only satisfies "ne" and "not".
 */
bool scim_filter_eval(const struct scim_filter *f, json_t *obj, bool (*case_exact)(const char *attr));

/* A compiled filter: a boolean SQL expression using $1..$n, and the n text parameters. */
struct scim_sql {
	struct buf sql;
	char *params[SCIM_FILTER_NODES];
	int n;
};

/* Start an empty compiled filter. */
void scim_sql_init(struct scim_sql *q);
/* Release a compiled filter (scim_sql_free on an initialised empty one is a no-op). */
void scim_sql_free(struct scim_sql *q);

/*
 * Compile f against map (a NULL-name-terminated attribute table from
 * db/scim_store.h) into q, whose parameters are numbered from first_param.
 * TSR_INVALID with err for an unknown attribute or an operator the
 * attribute's type does not support (invalidFilter).
 */
tsr_rc scim_filter_sql(const struct scim_filter *f, const struct scim_sql_attr *map, int first_param,
		       struct scim_sql *q, struct scim_err *err) TSR_WUR;

/*
 * Look up an attribute path in map: "userName", "name.givenName",
 * "emails.value", with or without the schema URN; case-insensitive.
 * Sets *top to the entry of the attribute and *sub to its sub-attribute
 * entry for a multi-valued attribute (or NULL). false when unknown.
 */
bool scim_sql_lookup(const struct scim_sql_attr *map, const struct scim_attrpath *p,
		     const struct scim_sql_attr **top, const struct scim_sql_attr **sub);

#endif
