/*
 * scim_filter.c — see scim_filter.h.
 *
 * Grammar (RFC 7644 §3.4.2.2, with the precedence of its table 3):
 *   filter   = or
 *   or       = and *(WS "or" WS and)
 *   and      = unary *(WS "and" WS unary)
 *   unary    = "not" WS* "(" or ")" | "(" or ")" | attrexp | valuepath
 *   valuepath= attrPath "[" or "]"            (no valuepath inside brackets)
 *   attrexp  = attrPath WS "pr" | attrPath WS op WS value
 *   value    = JSON string | JSON number | true | false | null
 *   attrPath = [urn ":"] name ["." name]      name = ALPHA *(ALPHA / DIGIT / "-" / "_") | "$ref"
 * Keywords and operators are matched without regard to case. Whitespace is
 * any run of spaces or tabs. JSON strings and numbers are decoded with
 * jansson (no hand-written JSON parser).
 *
 * SQL compilation: each leaf becomes a fixed fragment from the attribute map
 * with $n placeholders; and/or/not map onto SQL. SQL's NULL logic differs
 * from SCIM's "absent attribute": a comparison on an absent (NULL) column is
 * NULL, which a WHERE treats as false — right everywhere except under NOT,
 * so leaves under an odd or even number of NOTs are wrapped in
 * coalesce(..., false) (EXISTS subqueries are two-valued already, and
 * outside NOT the bare form keeps expression indexes usable).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim_filter.h"

struct parser {
	const char *s;
	size_t len;
	size_t pos;
	int depth;
	int nodes;
	struct scim_err *err;
	bool failed;
};

static void perr(struct parser *p, size_t pos, const char *fmt, ...) TSR_PRINTF(3, 4);
static void perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	if (p->failed)
		return; /* keep the first, most precise error */
	p->failed = true;
	p->err->pos = pos;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
}

/* A short, printable excerpt of the input at pos for error messages. */
static void excerpt(const struct parser *p, size_t pos, char *out, size_t n)
{
	size_t o = 0;
	for (size_t i = pos; i < p->len && o + 1 < n && i < pos + 16; i++) {
		unsigned char ch = (unsigned char)p->s[i];
		out[o++] = (ch >= 0x20 && ch < 0x7f && ch != '\'') ? (char)ch : '?';
	}
	out[o] = '\0';
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
		p->pos++;
}

static bool is_name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '-' || ch == '_';
}

static bool is_path_char(char ch)
{
	return is_name_char(ch) || ch == ':' || ch == '.' || ch == '$';
}

/* The run of letters at pos, compared case-insensitively with kw, followed by a non-name char. */
static bool at_keyword(const struct parser *p, size_t pos, const char *kw)
{
	size_t n = strlen(kw);
	if (pos + n > p->len || strncasecmp(p->s + pos, kw, n) != 0)
		return false;
	return pos + n == p->len || !is_path_char(p->s[pos + n]);
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static struct scim_filter *node_new(struct parser *p, enum scim_fop op, size_t pos)
{
	if (++p->nodes > SCIM_FILTER_NODES) {
		perr(p, pos, "filter is too complex (more than %d terms)", SCIM_FILTER_NODES);
		return NULL;
	}
	struct scim_filter *f = calloc(1, sizeof(*f));
	if (!f) {
		perr(p, pos, "out of memory");
		return NULL;
	}
	f->op = op;
	f->pos = pos;
	return f;
}

static void attrpath_clear(struct scim_attrpath *a)
{
	free(a->urn);
	free(a->attr);
	free(a->sub);
	memset(a, 0, sizeof(*a));
}

void scim_filter_free(struct scim_filter *f)
{
	if (!f)
		return;
	scim_filter_free(f->a);
	scim_filter_free(f->b);
	attrpath_clear(&f->path);
	free(f->v.s);
	free(f);
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 4 && strncmp(s, "$ref", 4) == 0)
		return true;
	if (n == 0 || !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_name_char(s[i]))
			return false;
	return true;
}

/*
 * Split the path text [start, end) into urn / attr / sub. The URN is
 * everything up to the last ':' (it may contain dots, "2.0"); the rest is
 * name ["." name].
 */
static bool split_attrpath(struct parser *p, size_t start, size_t end, struct scim_attrpath *out)
{
	const char *s = p->s + start;
	size_t n = end - start;
	size_t name_at = 0;
	if (n > 4 && strncasecmp(s, "urn:", 4) == 0) {
		size_t last = 0;
		for (size_t i = 0; i < n; i++)
			if (s[i] == ':')
				last = i;
		if (last + 1 >= n || last < 5) {
			perr(p, start, "attribute path '%.*s' names a schema URN but no attribute", (int)(n > 80 ? 80 : n),
			     s);
			return false;
		}
		name_at = last + 1;
	}
	const char *name = s + name_at;
	size_t name_len = n - name_at;
	const char *dot = memchr(name, '.', name_len);
	size_t attr_len = dot ? (size_t)(dot - name) : name_len;
	if (!valid_name(name, attr_len)) {
		perr(p, start + name_at, "invalid attribute name '%.*s'", (int)(attr_len > 80 ? 80 : attr_len), name);
		return false;
	}
	if (dot) {
		size_t sub_len = name_len - attr_len - 1;
		if (!valid_name(dot + 1, sub_len)) {
			perr(p, start + name_at + attr_len + 1, "invalid sub-attribute name '%.*s'",
			     (int)(sub_len > 80 ? 80 : sub_len), dot + 1);
			return false;
		}
	}
	if (name_at) {
		/* the URN itself: a colon-separated run without dots in the wrong place is all we ask */
		out->urn = dup_n(s, name_at - 1);
		if (!out->urn)
			goto oom;
	}
	out->attr = dup_n(name, attr_len);
	if (!out->attr)
		goto oom;
	if (dot) {
		out->sub = dup_n(dot + 1, name_len - attr_len - 1);
		if (!out->sub)
			goto oom;
	}
	return true;
oom:
	perr(p, start, "out of memory");
	attrpath_clear(out);
	return false;
}

/* attrPath at p->pos (no leading whitespace). */
static bool parse_attrpath(struct parser *p, struct scim_attrpath *out)
{
	size_t start = p->pos;
	while (p->pos < p->len && is_path_char(p->s[p->pos]))
		p->pos++;
	if (p->pos == start) {
		char ex[20];
		excerpt(p, start, ex, sizeof(ex));
		if (start >= p->len)
			perr(p, start, "expected an attribute name, found the end of the filter");
		else
			perr(p, start, "expected an attribute name, found '%s'", ex);
		return false;
	}
	return split_attrpath(p, start, p->pos, out);
}

static const struct {
	const char *kw;
	enum scim_fop op;
} ops[] = {
	{ "eq", SCIM_EQ }, { "ne", SCIM_NE }, { "co", SCIM_CO }, { "sw", SCIM_SW }, { "ew", SCIM_EW },
	{ "gt", SCIM_GT }, { "ge", SCIM_GE }, { "lt", SCIM_LT }, { "le", SCIM_LE }, { "pr", SCIM_PR },
};

/* A JSON string at p->pos: find the closing quote, let jansson decode it. */
static bool parse_string(struct parser *p, struct scim_value *v)
{
	size_t start = p->pos;
	size_t i = start + 1;
	for (; i < p->len; i++) {
		if (p->s[i] == '\\') {
			i++;
			continue;
		}
		if (p->s[i] == '"')
			break;
	}
	if (i >= p->len) {
		perr(p, start, "unterminated string starting at position %zu", start);
		return false;
	}
	json_error_t je;
	json_t *j = json_loadb(p->s + start, i + 1 - start, JSON_DECODE_ANY, &je);
	if (!j || !json_is_string(j)) {
		json_decref(j);
		perr(p, start, "invalid string value: %s", je.text);
		return false;
	}
	v->type = SCIM_V_STRING;
	v->s = strdup(json_string_value(j));
	json_decref(j);
	if (!v->s) {
		perr(p, start, "out of memory");
		return false;
	}
	p->pos = i + 1;
	return true;
}

static bool parse_value(struct parser *p, struct scim_value *v)
{
	size_t start = p->pos;
	if (start >= p->len) {
		perr(p, start, "expected a value (a \"string\", number, true, false or null), found the end of the filter");
		return false;
	}
	char ch = p->s[start];
	if (ch == '"')
		return parse_string(p, v);
	if (at_keyword(p, start, "true")) {
		v->type = SCIM_V_TRUE;
		p->pos += 4;
		return true;
	}
	if (at_keyword(p, start, "false")) {
		v->type = SCIM_V_FALSE;
		p->pos += 5;
		return true;
	}
	if (at_keyword(p, start, "null")) {
		v->type = SCIM_V_NULL;
		p->pos += 4;
		return true;
	}
	if (ch == '-' || isdigit((unsigned char)ch)) {
		size_t i = start;
		while (i < p->len && (isdigit((unsigned char)p->s[i]) || strchr("+-.eE", p->s[i])))
			i++;
		json_t *j = i - start <= 64 ? json_loadb(p->s + start, i - start, JSON_DECODE_ANY, NULL) : NULL;
		bool okn = j && json_is_number(j);
		json_decref(j);
		if (!okn) {
			perr(p, start, "invalid number '%.*s'", (int)(i - start > 40 ? 40 : i - start), p->s + start);
			return false;
		}
		v->type = SCIM_V_NUMBER;
		v->s = dup_n(p->s + start, i - start);
		if (!v->s) {
			perr(p, start, "out of memory");
			return false;
		}
		p->pos = i;
		return true;
	}
	char ex[20];
	excerpt(p, start, ex, sizeof(ex));
	perr(p, start, "expected a value (a \"string\", number, true, false or null), found '%s'", ex);
	return false;
}

static struct scim_filter *parse_or(struct parser *p, bool in_brackets);

static bool expect_char(struct parser *p, char want, size_t opened_at, const char *what)
{
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == want) {
		p->pos++;
		return true;
	}
	if (p->pos >= p->len) {
		perr(p, p->pos, "expected '%c' to close the %s opened at position %zu, found the end of the filter",
		     want, what, opened_at);
	} else {
		char ex[20];
		excerpt(p, p->pos, ex, sizeof(ex));
		perr(p, p->pos, "expected 'and', 'or' or '%c' to close the %s opened at position %zu, found '%s'", want,
		     what, opened_at, ex);
	}
	return false;
}

static struct scim_filter *parse_unary(struct parser *p, bool in_brackets)
{
	skip_ws(p);
	size_t start = p->pos;
	if (++p->depth > SCIM_FILTER_DEPTH) {
		perr(p, start, "filter nests deeper than %d levels", SCIM_FILTER_DEPTH);
		return NULL;
	}
	struct scim_filter *f = NULL;
	if (at_keyword(p, start, "not")) {
		size_t save = p->pos;
		p->pos += 3;
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == '(') {
			size_t open = p->pos++;
			f = node_new(p, SCIM_NOT, start);
			if (!f)
				goto fail;
			f->a = parse_or(p, in_brackets);
			if (!f->a || !expect_char(p, ')', open, "'not ('"))
				goto fail;
			goto done;
		}
		p->pos = save; /* an attribute called "not" */
	}
	if (start < p->len && p->s[start] == '(') {
		p->pos++;
		f = parse_or(p, in_brackets);
		if (!f || !expect_char(p, ')', start, "parenthesis"))
			goto fail;
		goto done;
	}
	f = node_new(p, SCIM_EQ, start);
	if (!f || !parse_attrpath(p, &f->path))
		goto fail;
	if (p->pos < p->len && p->s[p->pos] == '[') {
		size_t open = p->pos;
		if (in_brackets) {
			perr(p, open, "a value filter cannot contain another '[' (nested value paths are not allowed)");
			goto fail;
		}
		if (f->path.sub) {
			perr(p, open, "'[' must follow the attribute name, not a sub-attribute ('%s.%s[')", f->path.attr,
			     f->path.sub);
			goto fail;
		}
		p->pos++;
		f->op = SCIM_VALUEPATH;
		f->a = parse_or(p, true);
		if (!f->a || !expect_char(p, ']', open, "value filter '['"))
			goto fail;
		goto done;
	}
	size_t before_ws = p->pos;
	skip_ws(p);
	if (p->pos == before_ws && p->pos < p->len) {
		char ex[20];
		excerpt(p, p->pos, ex, sizeof(ex));
		perr(p, p->pos, "unexpected '%s' after attribute '%s'", ex, f->path.attr);
		goto fail;
	}
	size_t op_at = p->pos;
	size_t wl = 0;
	while (op_at + wl < p->len && isalpha((unsigned char)p->s[op_at + wl]))
		wl++;
	bool found = false;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (wl == 2 && strncasecmp(p->s + op_at, ops[i].kw, 2) == 0) {
			f->op = ops[i].op;
			found = true;
			break;
		}
	}
	if (!found) {
		char ex[20];
		excerpt(p, op_at, ex, sizeof(ex));
		if (op_at >= p->len)
			perr(p, op_at, "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '%s', found the "
			     "end of the filter", f->path.attr);
		else
			perr(p, op_at, "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '%s', found '%s'",
			     f->path.attr, ex);
		goto fail;
	}
	p->pos += 2;
	if (f->op == SCIM_PR)
		goto done;
	before_ws = p->pos;
	skip_ws(p);
	if (p->pos == before_ws && p->pos < p->len) {
		perr(p, p->pos, "expected a space after the operator");
		goto fail;
	}
	if (!parse_value(p, &f->v))
		goto fail;
done:
	p->depth--;
	return f;
fail:
	scim_filter_free(f);
	return NULL;
}

static struct scim_filter *parse_and(struct parser *p, bool in_brackets)
{
	struct scim_filter *left = parse_unary(p, in_brackets);
	while (left) {
		size_t save = p->pos;
		skip_ws(p);
		if (!at_keyword(p, p->pos, "and")) {
			p->pos = save;
			break;
		}
		size_t at = p->pos;
		p->pos += 3;
		struct scim_filter *n = node_new(p, SCIM_AND, at);
		if (!n) {
			scim_filter_free(left);
			return NULL;
		}
		n->a = left;
		left = n;
		n->b = parse_unary(p, in_brackets);
		if (!n->b) {
			scim_filter_free(left);
			return NULL;
		}
	}
	return left;
}

static struct scim_filter *parse_or(struct parser *p, bool in_brackets)
{
	if (++p->depth > SCIM_FILTER_DEPTH) {
		perr(p, p->pos, "filter nests deeper than %d levels", SCIM_FILTER_DEPTH);
		return NULL;
	}
	struct scim_filter *left = parse_and(p, in_brackets);
	while (left) {
		size_t save = p->pos;
		skip_ws(p);
		if (!at_keyword(p, p->pos, "or")) {
			p->pos = save;
			break;
		}
		size_t at = p->pos;
		p->pos += 2;
		struct scim_filter *n = node_new(p, SCIM_OR, at);
		if (!n) {
			scim_filter_free(left);
			return NULL;
		}
		n->a = left;
		left = n;
		n->b = parse_and(p, in_brackets);
		if (!n->b) {
			scim_filter_free(left);
			return NULL;
		}
	}
	p->depth--;
	return left;
}

static bool parser_init(struct parser *p, const char *s, struct scim_err *err)
{
	memset(p, 0, sizeof(*p));
	memset(err, 0, sizeof(*err));
	p->s = s;
	p->err = err;
	p->len = strlen(s);
	if (p->len > SCIM_FILTER_MAX) {
		perr(p, SCIM_FILTER_MAX, "longer than %d bytes", SCIM_FILTER_MAX);
		return false;
	}
	return true;
}

tsr_rc scim_filter_parse(const char *s, struct scim_filter **out, struct scim_err *err)
{
	*out = NULL;
	struct parser p;
	if (!parser_init(&p, s, err))
		return TSR_INVALID;
	skip_ws(&p);
	if (p.pos >= p.len) {
		perr(&p, p.pos, "the filter is empty");
		return TSR_INVALID;
	}
	struct scim_filter *f = parse_or(&p, false);
	if (f) {
		skip_ws(&p);
		if (p.pos < p.len) {
			char ex[20];
			excerpt(&p, p.pos, ex, sizeof(ex));
			if (p.s[p.pos] == ')' || p.s[p.pos] == ']')
				perr(&p, p.pos, "unbalanced '%c'", p.s[p.pos]);
			else
				perr(&p, p.pos, "expected 'and', 'or' or the end of the filter, found '%s'", ex);
			scim_filter_free(f);
			f = NULL;
		}
	}
	if (!f) {
		if (!p.failed)
			perr(&p, p.pos, "invalid filter");
		return TSR_INVALID;
	}
	*out = f;
	return TSR_OK;
}

void scim_path_free(struct scim_path *p)
{
	if (!p)
		return;
	attrpath_clear(&p->attr);
	scim_filter_free(p->filter);
	free(p->sub);
	free(p);
}

tsr_rc scim_path_parse(const char *s, struct scim_path **out, struct scim_err *err)
{
	*out = NULL;
	struct parser p;
	if (!parser_init(&p, s, err))
		return TSR_INVALID;
	struct scim_path *path = calloc(1, sizeof(*path));
	if (!path) {
		perr(&p, 0, "out of memory");
		return TSR_INVALID;
	}
	skip_ws(&p);
	if (p.pos >= p.len) {
		perr(&p, p.pos, "the path is empty");
		goto fail;
	}
	if (!parse_attrpath(&p, &path->attr))
		goto fail;
	if (p.pos < p.len && p.s[p.pos] == '[') {
		size_t open = p.pos;
		if (path->attr.sub) {
			perr(&p, open, "'[' must follow the attribute name, not a sub-attribute");
			goto fail;
		}
		p.pos++;
		path->filter = parse_or(&p, true);
		if (!path->filter || !expect_char(&p, ']', open, "value filter '['"))
			goto fail;
		if (p.pos < p.len && p.s[p.pos] == '.') {
			size_t at = ++p.pos;
			while (p.pos < p.len && is_name_char(p.s[p.pos]))
				p.pos++;
			if (p.pos == at && p.pos + 4 <= p.len && strncmp(p.s + at, "$ref", 4) == 0)
				p.pos += 4;
			if (!valid_name(p.s + at, p.pos - at)) {
				perr(&p, at, "expected a sub-attribute name after ']. '");
				goto fail;
			}
			path->sub = dup_n(p.s + at, p.pos - at);
			if (!path->sub) {
				perr(&p, at, "out of memory");
				goto fail;
			}
		}
	}
	skip_ws(&p);
	if (p.pos < p.len) {
		char ex[20];
		excerpt(&p, p.pos, ex, sizeof(ex));
		perr(&p, p.pos, "unexpected '%s' in the path", ex);
		goto fail;
	}
	*out = path;
	return TSR_OK;
fail:
	if (!p.failed)
		perr(&p, p.pos, "invalid path");
	scim_path_free(path);
	return TSR_INVALID;
}

/* ---------------------------------------------------------------- evaluation in C */

/* Case-insensitive object member lookup. */
static json_t *get_ci(json_t *obj, const char *name)
{
	if (!json_is_object(obj) || !name)
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

static int cmp_str(const char *a, const char *b, bool exact)
{
	return exact ? strcmp(a, b) : strcasecmp(a, b);
}

static bool str_has(const char *hay, const char *needle, enum scim_fop op, bool exact)
{
	size_t hn = strlen(hay), nn = strlen(needle);
	if (nn > hn)
		return false;
	if (op == SCIM_SW)
		return exact ? strncmp(hay, needle, nn) == 0 : strncasecmp(hay, needle, nn) == 0;
	if (op == SCIM_EW)
		return exact ? strcmp(hay + hn - nn, needle) == 0 : strcasecmp(hay + hn - nn, needle) == 0;
	for (size_t i = 0; i + nn <= hn; i++)
		if (exact ? strncmp(hay + i, needle, nn) == 0 : strncasecmp(hay + i, needle, nn) == 0)
			return true;
	return false;
}

/* Compare one JSON scalar with the filter's value. */
static bool cmp_scalar(json_t *j, enum scim_fop op, const struct scim_value *v, bool exact)
{
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		const char *w = NULL;
		char tmp[8];
		if (v->type == SCIM_V_STRING || v->type == SCIM_V_NUMBER)
			w = v->s;
		else if (v->type == SCIM_V_TRUE || v->type == SCIM_V_FALSE) {
			/* "True"/"False" strings as Entra sends them */
			snprintf(tmp, sizeof(tmp), "%s", v->type == SCIM_V_TRUE ? "true" : "false");
			w = tmp;
			exact = false;
		}
		if (!w)
			return op == SCIM_NE;
		switch (op) {
		case SCIM_EQ: return cmp_str(s, w, exact) == 0;
		case SCIM_NE: return cmp_str(s, w, exact) != 0;
		case SCIM_CO: case SCIM_SW: case SCIM_EW: return str_has(s, w, op, exact);
		case SCIM_GT: return cmp_str(s, w, exact) > 0;
		case SCIM_GE: return cmp_str(s, w, exact) >= 0;
		case SCIM_LT: return cmp_str(s, w, exact) < 0;
		case SCIM_LE: return cmp_str(s, w, exact) <= 0;
		default: return false;
		}
	}
	if (json_is_boolean(j)) {
		bool b = json_is_true(j);
		bool w;
		if (v->type == SCIM_V_TRUE || v->type == SCIM_V_FALSE)
			w = v->type == SCIM_V_TRUE;
		else if (v->type == SCIM_V_STRING && (strcasecmp(v->s, "true") == 0 || strcasecmp(v->s, "false") == 0))
			w = strcasecmp(v->s, "true") == 0;
		else
			return op == SCIM_NE;
		if (op == SCIM_EQ)
			return b == w;
		if (op == SCIM_NE)
			return b != w;
		return false;
	}
	if (json_is_number(j)) {
		if (v->type != SCIM_V_NUMBER)
			return op == SCIM_NE;
		double a = json_number_value(j);
		double w = strtod(v->s, NULL);
		switch (op) {
		case SCIM_EQ: return a == w;
		case SCIM_NE: return a != w;
		case SCIM_GT: return a > w;
		case SCIM_GE: return a >= w;
		case SCIM_LT: return a < w;
		case SCIM_LE: return a <= w;
		default: return false;
		}
	}
	return op == SCIM_NE;
}

static bool present(json_t *j)
{
	if (!j || json_is_null(j))
		return false;
	if (json_is_string(j))
		return json_string_length(j) > 0;
	if (json_is_array(j))
		return json_array_size(j) > 0;
	if (json_is_object(j))
		return json_object_size(j) > 0;
	return true;
}

/* Apply a leaf to the value of an attribute (which may be multi-valued, or complex). */
static bool leaf_on(json_t *val, const struct scim_filter *f, const char *sub, bool exact)
{
	if (f->op == SCIM_PR) {
		if (!sub || !json_is_array(val))
			return present(sub ? get_ci(val, sub) : val);
		size_t i;
		json_t *e;
		json_array_foreach (val, i, e)
			if (present(get_ci(e, sub)))
				return true;
		return false;
	}
	if (f->v.type == SCIM_V_NULL) {
		bool pr = json_is_array(val) ? json_array_size(val) > 0 : present(sub ? get_ci(val, sub) : val);
		return f->op == SCIM_EQ ? !pr : f->op == SCIM_NE ? pr : false;
	}
	if (json_is_array(val)) {
		/* any element; a complex element compares its sub-attribute, or "value" */
		size_t i;
		json_t *e;
		bool any = false;
		json_array_foreach (val, i, e) {
			json_t *x = json_is_object(e) ? get_ci(e, sub ? sub : "value") : e;
			if (x && !json_is_object(x) && !json_is_array(x) && cmp_scalar(x, f->op, &f->v, exact)) {
				any = true;
				break;
			}
		}
		if (f->op == SCIM_NE && !json_array_size(val))
			return true;
		return any;
	}
	if (sub)
		val = get_ci(val, sub);
	if (!val || json_is_null(val))
		return f->op == SCIM_NE;
	if (json_is_object(val) || json_is_array(val))
		return false;
	return cmp_scalar(val, f->op, &f->v, exact);
}

/* The attribute value a path names in obj (an extension URN selects the extension object). */
static json_t *resolve(json_t *obj, const struct scim_attrpath *p)
{
	json_t *base = obj;
	if (p->urn) {
		json_t *ext = get_ci(obj, p->urn);
		if (ext)
			base = ext;
	}
	return get_ci(base, p->attr);
}

bool scim_filter_eval(const struct scim_filter *f, json_t *obj, bool (*case_exact)(const char *attr))
{
	if (!f)
		return false;
	switch (f->op) {
	case SCIM_AND: return scim_filter_eval(f->a, obj, case_exact) && scim_filter_eval(f->b, obj, case_exact);
	case SCIM_OR: return scim_filter_eval(f->a, obj, case_exact) || scim_filter_eval(f->b, obj, case_exact);
	case SCIM_NOT: return !scim_filter_eval(f->a, obj, case_exact);
	case SCIM_VALUEPATH: {
		json_t *val = resolve(obj, &f->path);
		if (json_is_object(val))
			return scim_filter_eval(f->a, val, case_exact);
		size_t i;
		json_t *e;
		json_array_foreach (val, i, e)
			if (scim_filter_eval(f->a, e, case_exact))
				return true;
		return false;
	}
	default: break;
	}
	json_t *val = resolve(obj, &f->path);
	bool exact = case_exact ? case_exact(f->path.sub ? f->path.sub : f->path.attr) : false;
	if (!val || json_is_null(val))
		return f->op == SCIM_NE || (f->op == SCIM_EQ && f->v.type == SCIM_V_NULL);
	return leaf_on(val, f, f->path.sub, exact);
}

/* ---------------------------------------------------------------- compilation to SQL */

void scim_sql_init(struct scim_sql *q)
{
	memset(q, 0, sizeof(*q));
	buf_init(&q->sql, 64 * 1024);
}

void scim_sql_free(struct scim_sql *q)
{
	if (!q)
		return;
	buf_free(&q->sql);
	for (int i = 0; i < q->n; i++)
		free(q->params[i]);
	q->n = 0;
}

#define CORE_USER "urn:ietf:params:scim:schemas:core:2.0:user"
#define CORE_GROUP "urn:ietf:params:scim:schemas:core:2.0:group"

static const struct scim_sql_attr *find_entry(const struct scim_sql_attr *map, const char *name)
{
	for (const struct scim_sql_attr *a = map; a && a->name; a++)
		if (strcasecmp(a->name, name) == 0)
			return a;
	return NULL;
}

/* An extension attribute named without its URN: the one entry ending in ":name". */
static const struct scim_sql_attr *find_suffix(const struct scim_sql_attr *map, const char *name)
{
	const struct scim_sql_attr *hit = NULL;
	size_t n = strlen(name);
	for (const struct scim_sql_attr *a = map; a->name; a++) {
		size_t an = strlen(a->name);
		if (strncmp(a->name, "urn:", 4) == 0 && an > n + 1 && a->name[an - n - 1] == ':' &&
		    strcasecmp(a->name + an - n, name) == 0) {
			if (hit)
				return NULL; /* ambiguous */
			hit = a;
		}
	}
	return hit;
}

bool scim_sql_lookup(const struct scim_sql_attr *map, const struct scim_attrpath *p,
		     const struct scim_sql_attr **top, const struct scim_sql_attr **sub)
{
	*top = *sub = NULL;
	char key[600];
	bool core = !p->urn || strcasecmp(p->urn, CORE_USER) == 0 || strcasecmp(p->urn, CORE_GROUP) == 0;
	/* first the attribute itself (a multi-valued one, or a single-valued simple one) */
	if (core)
		snprintf(key, sizeof(key), "%s", p->attr);
	else
		snprintf(key, sizeof(key), "%s:%s", p->urn, p->attr);
	const struct scim_sql_attr *a = find_entry(map, key);
	if (!a && core)
		a = find_suffix(map, key);
	if (a && a->exists) {
		*top = a;
		const char *want = p->sub ? p->sub : a->sub[0].name;
		*sub = find_entry(a->sub, want);
		return *sub != NULL;
	}
	if (p->sub) {
		/* complex single-valued: stored flat as "attr.sub" */
		if (core)
			snprintf(key, sizeof(key), "%s.%s", p->attr, p->sub);
		else
			snprintf(key, sizeof(key), "%s:%s.%s", p->urn, p->attr, p->sub);
		a = find_entry(map, key);
		if (!a && core)
			a = find_suffix(map, key);
	}
	if (!a || a->exists)
		return false;
	*top = a;
	return true;
}

struct compiler {
	struct scim_sql *q;
	int first;
	struct scim_err *err;
	tsr_rc rc;
};

static void cerr(struct compiler *c, size_t pos, const char *fmt, ...) TSR_PRINTF(3, 4);
static void cerr(struct compiler *c, size_t pos, const char *fmt, ...)
{
	if (c->rc != TSR_OK)
		return;
	c->rc = TSR_INVALID;
	c->err->pos = pos;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
	va_end(ap);
}

static void emit(struct compiler *c, const char *s)
{
	if (c->rc == TSR_OK && buf_puts(&c->q->sql, s) != TSR_OK)
		c->rc = TSR_TOO_LARGE;
}

static void emitf(struct compiler *c, const char *fmt, ...) TSR_PRINTF(2, 3);
static void emitf(struct compiler *c, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		if (c->rc == TSR_OK)
			c->rc = TSR_INTERNAL;
		return;
	}
	emit(c, tmp);
}

/* Bind a parameter; returns its $ number, 0 on failure. */
static int bind(struct compiler *c, const char *v)
{
	if (c->q->n >= SCIM_FILTER_NODES) {
		cerr(c, 0, "too many values in the filter");
		return 0;
	}
	char *d = strdup(v);
	if (!d) {
		c->rc = TSR_INTERNAL;
		return 0;
	}
	c->q->params[c->q->n++] = d;
	return c->first + c->q->n - 1;
}

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/* RFC 3339 date-time as SCIM uses it: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static bool is_datetime(const char *s)
{
	const char *shape = "dddd-dd-ddTdd:dd:dd";
	size_t i = 0;
	for (; shape[i]; i++) {
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : (s[i] != shape[i] && !(shape[i] == 'T' && s[i] == 't')))
			return false;
	}
	if (s[i] == '.') {
		i++;
		size_t d = i;
		while (isdigit((unsigned char)s[i]))
			i++;
		if (i == d || i - d > 9)
			return false;
	}
	if (s[i] == 'Z' || s[i] == 'z')
		return s[i + 1] == '\0';
	if (s[i] == '+' || s[i] == '-')
		return isdigit((unsigned char)s[i + 1]) && isdigit((unsigned char)s[i + 2]) && s[i + 3] == ':' &&
		       isdigit((unsigned char)s[i + 4]) && isdigit((unsigned char)s[i + 5]) && s[i + 6] == '\0';
	return false;
}

static const char *op_name(enum scim_fop op)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].op == op)
			return ops[i].kw;
	return "?";
}

static const char *sql_cmp(enum scim_fop op)
{
	switch (op) {
	case SCIM_EQ: return "=";
	case SCIM_NE: return "<>";
	case SCIM_GT: return ">";
	case SCIM_GE: return ">=";
	case SCIM_LT: return "<";
	case SCIM_LE: return "<=";
	default: return NULL;
	}
}

/* One comparison on a single column expression. */
static void leaf_sql(struct compiler *c, const struct scim_filter *f, const struct scim_sql_attr *a,
		     const char *name)
{
	const char *x = a->expr;
	if (f->op == SCIM_PR || f->v.type == SCIM_V_NULL) {
		if (f->op != SCIM_PR && f->op != SCIM_EQ && f->op != SCIM_NE) {
			cerr(c, f->pos, "'%s %s null' is not supported: compare with null using eq or ne", name,
			     op_name(f->op));
			return;
		}
		bool want_present = f->op == SCIM_PR || f->op == SCIM_NE;
		if (a->type == SCIM_SQL_STRING)
			emitf(c, want_present ? "(%s IS NOT NULL AND %s <> '')" : "(%s IS NULL OR %s = '')", x, x);
		else
			emitf(c, want_present ? "(%s IS NOT NULL)" : "(%s IS NULL)", x);
		return;
	}
	switch (a->type) {
	case SCIM_SQL_BOOL: {
		bool v;
		if (f->v.type == SCIM_V_TRUE || f->v.type == SCIM_V_FALSE)
			v = f->v.type == SCIM_V_TRUE;
		else if (f->v.type == SCIM_V_STRING && (!strcasecmp(f->v.s, "true") || !strcasecmp(f->v.s, "false")))
			v = strcasecmp(f->v.s, "true") == 0;
		else {
			cerr(c, f->pos, "'%s' is a boolean: compare it with true or false", name);
			return;
		}
		if (f->op != SCIM_EQ && f->op != SCIM_NE) {
			cerr(c, f->pos, "'%s' is a boolean: only eq, ne and pr apply, not %s", name, op_name(f->op));
			return;
		}
		int n = bind(c, v ? "true" : "false");
		if (n)
			emitf(c, "(%s %s $%d::boolean)", x, f->op == SCIM_EQ ? "=" : "<>", n);
		return;
	}
	case SCIM_SQL_DATETIME: {
		const char *cmp = sql_cmp(f->op);
		if (!cmp) {
			cerr(c, f->pos, "'%s' is a date-time: use eq, ne, gt, ge, lt, le or pr, not %s", name,
			     op_name(f->op));
			return;
		}
		if (f->v.type != SCIM_V_STRING || !is_datetime(f->v.s)) {
			cerr(c, f->pos, "'%s' is a date-time: compare it with a string like \"2024-01-31T12:00:00Z\"", name);
			return;
		}
		int n = bind(c, f->v.s);
		if (n)
			emitf(c, "(%s %s $%d::timestamptz)", x, cmp, n);
		return;
	}
	case SCIM_SQL_ID:
	case SCIM_SQL_STRING:
		break;
	}
	if (f->v.type != SCIM_V_STRING) {
		cerr(c, f->pos, "'%s' is a string: compare it with a \"quoted string\"", name);
		return;
	}
	if (a->type == SCIM_SQL_ID && (f->op == SCIM_EQ || f->op == SCIM_NE)) {
		if (!is_uuid(f->v.s)) {
			emit(c, f->op == SCIM_EQ ? "false" : "true"); /* not an id we could have issued */
			return;
		}
		int n = bind(c, f->v.s);
		if (n)
			emitf(c, "(%s %s $%d::uuid)", x, f->op == SCIM_EQ ? "=" : "<>", n);
		return;
	}
	char col[512];
	if (a->type == SCIM_SQL_ID)
		snprintf(col, sizeof(col), "lower(%s::text)", x);
	else if (a->case_exact)
		snprintf(col, sizeof(col), "%s", x);
	else
		snprintf(col, sizeof(col), "lower(%s)", x);
	bool exact = a->case_exact && a->type != SCIM_SQL_ID;
	int n = bind(c, f->v.s);
	if (!n)
		return;
	char val[32];
	snprintf(val, sizeof(val), exact ? "$%d" : "lower($%d)", n);
	switch (f->op) {
	case SCIM_CO: emitf(c, "(strpos(%s, %s) > 0)", col, val); return;
	case SCIM_SW: emitf(c, "starts_with(%s, %s)", col, val); return;
	case SCIM_EW: emitf(c, "(right(%s, length(%s)) = %s)", col, val, val); return;
	default: break;
	}
	const char *cmp = sql_cmp(f->op);
	if (f->op == SCIM_EQ || f->op == SCIM_NE)
		emitf(c, "(%s %s %s)", col, cmp, val);
	else
		emitf(c, "(%s %s %s COLLATE \"C\")", col, cmp, val); /* lexical order, as RFC 7644 says */
}

static void compile(struct compiler *c, const struct scim_filter *f, const struct scim_sql_attr *map,
		    bool under_not, int depth);

/* A leaf or value path on a multi-valued attribute: EXISTS over its rows. */
static void multi_sql(struct compiler *c, const struct scim_filter *f, const struct scim_sql_attr *top,
		      const struct scim_sql_attr *sub, int depth)
{
	bool absent = f->op == SCIM_EQ && f->v.type == SCIM_V_NULL;
	if (absent || (f->op == SCIM_NE && f->v.type == SCIM_V_NULL)) {
		/* "emails eq null": no value at all; "ne null": at least one */
		emit(c, absent ? "(NOT " : "(");
		emit(c, top->exists);
		emit(c, " AND (true)))");
		return;
	}
	emit(c, top->exists);
	emit(c, " AND (");
	if (f->op == SCIM_VALUEPATH) {
		compile(c, f->a, top->sub, false, depth + 1);
	} else if (f->op == SCIM_PR && !f->path.sub) {
		emit(c, "true");
	} else {
		char name[300];
		snprintf(name, sizeof(name), "%s.%s", f->path.attr, sub->name);
		leaf_sql(c, f, sub, name);
	}
	emit(c, "))");
}

static void compile(struct compiler *c, const struct scim_filter *f, const struct scim_sql_attr *map,
		    bool under_not, int depth)
{
	if (c->rc != TSR_OK || !f)
		return;
	if (depth > SCIM_FILTER_DEPTH * 2) {
		cerr(c, f->pos, "filter nests too deeply");
		return;
	}
	switch (f->op) {
	case SCIM_AND:
	case SCIM_OR:
		emit(c, "(");
		compile(c, f->a, map, under_not, depth + 1);
		emit(c, f->op == SCIM_AND ? " AND " : " OR ");
		compile(c, f->b, map, under_not, depth + 1);
		emit(c, ")");
		return;
	case SCIM_NOT:
		emit(c, "(NOT ");
		compile(c, f->a, map, true, depth + 1);
		emit(c, ")");
		return;
	default:
		break;
	}
	const struct scim_sql_attr *top, *sub;
	char name[600];
	snprintf(name, sizeof(name), "%s%s%s", f->path.attr, f->path.sub ? "." : "", f->path.sub ? f->path.sub : "");
	if (!scim_sql_lookup(map, &f->path, &top, &sub)) {
		cerr(c, f->pos, "unknown or unfilterable attribute '%s'", name);
		return;
	}
	if (f->op == SCIM_VALUEPATH) {
		if (!top->exists) {
			cerr(c, f->pos, "'%s' is not multi-valued: a [filter] does not apply", name);
			return;
		}
		multi_sql(c, f, top, sub, depth);
		return;
	}
	if (top->exists) {
		multi_sql(c, f, top, sub, depth);
		return;
	}
	if (under_not)
		emit(c, "coalesce(");
	leaf_sql(c, f, top, name);
	if (under_not)
		emit(c, ", false)");
}

tsr_rc scim_filter_sql(const struct scim_filter *f, const struct scim_sql_attr *map, int first_param,
		       struct scim_sql *q, struct scim_err *err)
{
	memset(err, 0, sizeof(*err));
	struct compiler c = { .q = q, .first = first_param, .err = err, .rc = TSR_OK };
	compile(&c, f, map, false, 0);
	if (c.rc == TSR_TOO_LARGE) {
		snprintf(err->msg, sizeof(err->msg), "filter is too large");
		c.rc = TSR_INVALID;
	}
	return c.rc;
}
