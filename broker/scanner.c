/*
 * scanner.c — see scanner.h.
 *
 * The loop in scanner_scan() looks at each byte once through a class table.
 * Only bytes flagged C_TRIG are examined further: '-' (a PEM header needs
 * "-----BEGIN "), '~' (Azure client secrets carry "Q~" at a fixed place),
 * and, at the start of a word, the letters that begin a known token prefix
 * (A a e g h t x), digits (SSN, card numbers, digit templates) and the first
 * bytes of configured templates. Each matcher checks its fixed prefix with a
 * few byte compares and measures the token body with the class table; a
 * match makes the loop skip past it, so nothing is examined twice.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scanner.h"

enum {
	C_ALNUM = 1 << 0,
	C_DIGIT = 1 << 1,
	C_B64URL = 1 << 2, /* A-Z a-z 0-9 - _ */
	C_B64 = 1 << 3,    /* A-Z a-z 0-9 + / */
	C_UPNUM = 1 << 4,  /* A-Z 0-9 */
	C_AZSEC = 1 << 5,  /* Azure client secret alphabet: A-Z a-z 0-9 _ ~ . - */
	C_TRIG = 1 << 6,
	C_ALPHA = 1 << 7,
};

enum tpl_kind { TK_LIT, TK_DIGIT, TK_ALPHA, TK_ALNUM };

struct tpl_item {
	unsigned char kind, ch;
};

struct template {
	char name[32];
	enum scan_group group;
	struct tpl_item item[64];
	int n;
};

struct scanner {
	unsigned char cls[256];
	uint32_t custom_first[256]; /* bit i: template i may start with this byte */
	struct template tpl[SCAN_MAX_CUSTOM];
	int n_tpl;
};

static const char *const builtin_names[SR_BUILTIN_N] = {
	"pem_private_key", "aws_access_key", "aws_secret_key", "gcp_api_key", "azure_storage_key",
	"azure_client_secret", "github_token", "gitlab_token", "slack_token", "jwt",
	"tsr_token", "us_ssn", "card_number",
};

static const enum scan_group builtin_groups[SR_BUILTIN_N] = {
	SG_SECRET, SG_SECRET, SG_SECRET, SG_SECRET, SG_SECRET, SG_SECRET, SG_SECRET,
	SG_SECRET, SG_SECRET, SG_SECRET, SG_SECRET, SG_PHI, SG_PCI,
};

static void init_classes(unsigned char *cls)
{
	memset(cls, 0, 256);
	for (int c = 0; c < 256; c++) {
		bool up = c >= 'A' && c <= 'Z', lo = c >= 'a' && c <= 'z', dg = c >= '0' && c <= '9';
		if (up || lo)
			cls[c] |= C_ALPHA;
		if (up || lo || dg)
			cls[c] |= C_ALNUM | C_B64URL | C_B64 | C_AZSEC;
		if (dg)
			cls[c] |= C_DIGIT | C_TRIG;
		if (up || dg)
			cls[c] |= C_UPNUM;
	}
	cls['-'] |= C_B64URL | C_AZSEC | C_TRIG;
	cls['_'] |= C_B64URL | C_AZSEC;
	cls['+'] |= C_B64;
	cls['/'] |= C_B64;
	cls['~'] |= C_AZSEC | C_TRIG;
	cls['.'] |= C_AZSEC;
	static const char trig[] = "Aaeghtx";
	for (const char *t = trig; *t; t++)
		cls[(unsigned char)*t] |= C_TRIG;
}

/* ---------- templates ---------- */

static tsr_rc parse_template(const char *entry, struct template *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	const char *colon = strchr(entry, ':');
	if (!colon || colon == entry) {
		snprintf(err, errlen, "pattern '%s': expected name:TEMPLATE", entry);
		return TSR_INVALID;
	}
	size_t nlen = (size_t)(colon - entry);
	const char *at = memchr(entry, '@', nlen);
	t->group = SG_PHI;
	if (at) {
		const char *g = at + 1;
		size_t glen = (size_t)(colon - g);
		if (glen == 3 && strncmp(g, "phi", 3) == 0)
			t->group = SG_PHI;
		else if (glen == 3 && strncmp(g, "pci", 3) == 0)
			t->group = SG_PCI;
		else if (glen == 6 && strncmp(g, "secret", 6) == 0)
			t->group = SG_SECRET;
		else {
			snprintf(err, errlen, "pattern '%s': the class after '@' must be phi, pci or secret", entry);
			return TSR_INVALID;
		}
		nlen = (size_t)(at - entry);
	}
	if (nlen >= sizeof(t->name)) {
		snprintf(err, errlen, "pattern '%s': name too long", entry);
		return TSR_INVALID;
	}
	for (size_t i = 0; i < nlen; i++)
		if (!(isalnum((unsigned char)entry[i]) || entry[i] == '_')) {
			snprintf(err, errlen, "pattern '%s': names use letters, digits and '_'", entry);
			return TSR_INVALID;
		}
	memcpy(t->name, entry, nlen);
	for (const char *p = colon + 1; *p; p++) {
		if (t->n >= (int)(sizeof(t->item) / sizeof(t->item[0]))) {
			snprintf(err, errlen, "pattern '%s': template longer than 64 items", entry);
			return TSR_INVALID;
		}
		struct tpl_item *it = &t->item[t->n++];
		switch (*p) {
		case '#': it->kind = TK_DIGIT; break;
		case '@': it->kind = TK_ALPHA; break;
		case '*': it->kind = TK_ALNUM; break;
		case '\\':
			if (!p[1]) {
				snprintf(err, errlen, "pattern '%s': trailing '\\'", entry);
				return TSR_INVALID;
			}
			p++;
			it->kind = TK_LIT;
			it->ch = (unsigned char)*p;
			break;
		default:
			it->kind = TK_LIT;
			it->ch = (unsigned char)*p;
		}
	}
	int variable = 0;
	for (int i = 0; i < t->n; i++)
		variable += t->item[i].kind != TK_LIT;
	if (t->n < 4 || variable < 3) {
		snprintf(err, errlen, "pattern '%s': a template needs at least 4 items, 3 of them '#', '@' or '*'",
			 entry);
		return TSR_INVALID;
	}
	return TSR_OK;
}

tsr_rc scanner_new(const char *const *templates, size_t n, struct scanner **out, char *err, size_t errlen)
{
	if (n > SCAN_MAX_CUSTOM) {
		snprintf(err, errlen, "at most %d patterns", SCAN_MAX_CUSTOM);
		return TSR_INVALID;
	}
	struct scanner *s = calloc(1, sizeof(*s));
	if (!s)
		return TSR_INTERNAL;
	init_classes(s->cls);
	for (size_t i = 0; i < n; i++) {
		struct template *t = &s->tpl[i];
		if (parse_template(templates[i], t, err, errlen) != TSR_OK) {
			free(s);
			return TSR_INVALID;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(s->tpl[k].name, t->name) == 0) {
				snprintf(err, errlen, "pattern '%s': duplicate name", t->name);
				free(s);
				return TSR_INVALID;
			}
		for (int k = 0; k < SR_BUILTIN_N; k++)
			if (strcmp(builtin_names[k], t->name) == 0) {
				snprintf(err, errlen, "pattern '%s': name of a built-in rule", t->name);
				free(s);
				return TSR_INVALID;
			}
		for (int c = 0; c < 256; c++) {
			bool first;
			switch (t->item[0].kind) {
			case TK_DIGIT: first = s->cls[c] & C_DIGIT; break;
			case TK_ALPHA: first = s->cls[c] & C_ALPHA; break;
			case TK_ALNUM: first = s->cls[c] & C_ALNUM; break;
			default: first = c == t->item[0].ch;
			}
			if (first) {
				s->custom_first[c] |= 1u << i;
				s->cls[c] |= C_TRIG;
			}
		}
	}
	s->n_tpl = (int)n;
	*out = s;
	return TSR_OK;
}

void scanner_free(struct scanner *s)
{
	free(s);
}

int scanner_n_rules(const struct scanner *s)
{
	return SR_BUILTIN_N + s->n_tpl;
}

const char *scanner_rule_name(const struct scanner *s, int rule)
{
	if (rule >= 0 && rule < SR_BUILTIN_N)
		return builtin_names[rule];
	if (rule >= SR_BUILTIN_N && rule < SR_BUILTIN_N + s->n_tpl)
		return s->tpl[rule - SR_BUILTIN_N].name;
	return NULL;
}

enum scan_group scanner_rule_group(const struct scanner *s, int rule)
{
	if (rule >= 0 && rule < SR_BUILTIN_N)
		return builtin_groups[rule];
	if (rule >= SR_BUILTIN_N && rule < SR_BUILTIN_N + s->n_tpl)
		return s->tpl[rule - SR_BUILTIN_N].group;
	return SG_SECRET;
}

int scanner_rule_find(const struct scanner *s, const char *name, size_t len)
{
	for (int i = 0; i < scanner_n_rules(s); i++) {
		const char *r = scanner_rule_name(s, i);
		if (strlen(r) == len && strncmp(r, name, len) == 0)
			return i;
	}
	return -1;
}

/* ---------- matchers: each returns the match's length (0: none) and may move *start ---------- */

struct ctx {
	const unsigned char *p;
	size_t n;
	const unsigned char *cls;
};

/* Bytes of class mask starting at i, at most max. */
static inline size_t run(const struct ctx *x, size_t i, unsigned mask, size_t max)
{
	size_t k = 0;
	while (i + k < x->n && k < max && (x->cls[x->p[i + k]] & mask))
		k++;
	return k;
}

static inline bool has(const struct ctx *x, size_t i, const char *lit, size_t len)
{
	return x->n - i >= len && memcmp(x->p + i, lit, len) == 0;
}

/* Does byte i end a token of class mask (end of input or another class)? */
static inline bool ends(const struct ctx *x, size_t i, unsigned mask)
{
	return i >= x->n || !(x->cls[x->p[i]] & mask);
}

/* A word starts at i: input start, a non-alphanumeric byte, or a JSON escape (\n \t \r) before it. */
static inline bool word_start(const struct ctx *x, size_t i)
{
	if (i == 0)
		return true;
	unsigned char b = x->p[i - 1];
	if (!(x->cls[b] & C_ALNUM))
		return true;
	return i >= 2 && x->p[i - 2] == '\\' && (b == 'n' || b == 't' || b == 'r' || b == 'f' || b == 'b');
}

/* Offset of the next '"' not escaped by a backslash, from i; n if none. */
static size_t next_quote(const struct ctx *x, size_t i)
{
	while (i < x->n) {
		const unsigned char *q = memchr(x->p + i, '"', x->n - i);
		if (!q)
			return x->n;
		size_t at = (size_t)(q - x->p), bs = 0;
		while (at - bs > 0 && x->p[at - bs - 1] == '\\')
			bs++;
		if (!(bs & 1))
			return at;
		i = at + 1;
	}
	return x->n;
}

static size_t m_pem(const struct ctx *x, size_t i, int *rule)
{
	if (!has(x, i, "-----BEGIN ", 11))
		return 0;
	size_t lab = i + 11, k = 0;
	while (lab + k < x->n && k < 64 && x->p[lab + k] != '-' && x->p[lab + k] != '"')
		k++;
	if (!has(x, lab + k, "-----", 5))
		return 0;
	const unsigned char *pk = NULL;
	for (size_t j = 0; j + 11 <= k; j++)
		if (has(x, lab + j, "PRIVATE KEY", 11)) {
			pk = x->p + lab + j;
			break;
		}
	if (!pk)
		return 0;
	*rule = SR_PEM_PRIVATE_KEY;
	/* through the END line, or the end of the enclosing JSON string */
	size_t body = lab + k + 5;
	size_t stop = next_quote(x, body);
	const unsigned char *end = NULL;
	if (stop > body) {
		const unsigned char *e = memmem(x->p + body, stop - body, "-----END ", 9);
		if (e) {
			size_t at = (size_t)(e - x->p) + 9;
			const unsigned char *close = memmem(x->p + at, stop - at, "-----", 5);
			if (close && (size_t)(close - x->p) + 5 - at <= 80)
				end = close + 5;
		}
	}
	return end ? (size_t)(end - x->p) - i : stop - i;
}

static size_t m_upper_a(const struct ctx *x, size_t i, int *rule)
{
	const unsigned char *p = x->p + i;
	size_t left = x->n - i;
	if (left >= 20 && ((p[1] == 'K' && p[2] == 'I' && p[3] == 'A') || (p[1] == 'S' && p[2] == 'I' && p[3] == 'A') ||
			   (p[1] == 'B' && p[2] == 'I' && p[3] == 'A') || (p[1] == 'C' && p[2] == 'C' && p[3] == 'A'))) {
		if (run(x, i + 4, C_UPNUM, 17) == 16 && ends(x, i + 20, C_ALNUM)) {
			*rule = SR_AWS_ACCESS_KEY;
			return 20;
		}
		return 0;
	}
	if (left >= 39 && p[1] == 'I' && p[2] == 'z' && p[3] == 'a') {
		if (run(x, i + 4, C_B64URL, 36) == 35) {
			*rule = SR_GCP_API_KEY;
			return 39;
		}
		return 0;
	}
	if (left >= 11 + 80 && has(x, i, "AccountKey=", 11)) {
		size_t b = run(x, i + 11, C_B64, 100);
		size_t pad = 0;
		while (pad < 2 && i + 11 + b + pad < x->n && x->p[i + 11 + b + pad] == '=')
			pad++;
		if (b + pad >= 84 && b + pad <= 92) {
			*rule = SR_AZURE_STORAGE_KEY;
			return 11 + b + pad;
		}
	}
	return 0;
}

/* aws_secret_access_key = "40 base64 chars" (the keyword is case-insensitive; the value is the hit). */
static size_t m_aws_secret(const struct ctx *x, size_t *start, int *rule)
{
	size_t i = *start;
	if (x->n - i < 21 + 40 || strncasecmp((const char *)x->p + i, "aws_secret_access_key", 21) != 0)
		return 0;
	size_t j = i + 21, k = 0;
	while (j < x->n && k < 12 && strchr(" \t\"'=:\\", x->p[j]) && x->p[j]) {
		j++;
		k++;
	}
	if (run(x, j, C_B64, 41) == 40 && ends(x, j + 40, C_B64)) {
		*rule = SR_AWS_SECRET_KEY;
		*start = j;
		return 40;
	}
	return 0;
}

static size_t m_g(const struct ctx *x, size_t i, int *rule)
{
	const unsigned char *p = x->p + i;
	size_t left = x->n - i;
	if (left >= 40 && p[1] == 'h' && p[3] == '_' && strchr("pousr", p[2]) && p[2]) {
		size_t b = run(x, i + 4, C_ALNUM, 256);
		if (b >= 36 && ends(x, i + 4 + b, C_B64URL)) {
			*rule = SR_GITHUB_TOKEN;
			return 4 + b;
		}
		return 0;
	}
	if (left >= 11 + 22 && memcmp(p, "github_pat_", 11) == 0) {
		size_t b = run(x, i + 11, C_B64URL, 256);
		if (b >= 22) {
			*rule = SR_GITHUB_TOKEN;
			return 11 + b;
		}
		return 0;
	}
	if (left >= 5 + 20 && p[1] == 'l') {
		size_t pre = memcmp(p, "glpat-", 6) == 0 ? 6 : (memcmp(p, "glrt-", 5) == 0 || memcmp(p, "gldt-", 5) == 0) ? 5 : 0;
		if (pre) {
			size_t b = run(x, i + pre, C_B64URL, 256);
			if (b >= 20) {
				*rule = SR_GITLAB_TOKEN;
				return pre + b;
			}
		}
	}
	return 0;
}

static size_t m_x(const struct ctx *x, size_t i, int *rule)
{
	const unsigned char *p = x->p + i;
	if (x->n - i < 15)
		return 0;
	size_t pre = 0;
	if (p[1] == 'o' && p[2] == 'x' && p[3] && strchr("baprse", p[3]) && p[4] == '-')
		pre = 5;
	else if (memcmp(p, "xapp-", 5) == 0)
		pre = 5;
	if (!pre)
		return 0;
	size_t b = run(x, i + pre, C_B64URL, 512);
	if (b >= 10) {
		*rule = SR_SLACK_TOKEN;
		return pre + b;
	}
	return 0;
}

static size_t m_h(const struct ctx *x, size_t i, int *rule)
{
	static const char hook[] = "hooks.slack.com/services/";
	size_t pre = has(x, i, "https://", 8) ? 8 : 0;
	if (!has(x, i + pre, hook, sizeof(hook) - 1))
		return 0;
	size_t at = i + pre + sizeof(hook) - 1;
	size_t b = 0;
	while (at + b < x->n && b < 256 && ((x->cls[x->p[at + b]] & C_B64URL) || x->p[at + b] == '/'))
		b++;
	if (b < 20)
		return 0;
	*rule = SR_SLACK_TOKEN;
	return at + b - i;
}

static size_t m_jwt(const struct ctx *x, size_t i, int *rule)
{
	if (!has(x, i, "eyJ", 3))
		return 0;
	size_t h = run(x, i + 3, C_B64URL, 4096);
	size_t j = i + 3 + h;
	if (h < 10 || !has(x, j, ".eyJ", 4))
		return 0;
	size_t pl = run(x, j + 4, C_B64URL, 65536);
	j += 4 + pl;
	if (pl < 10 || j >= x->n || x->p[j] != '.')
		return 0;
	size_t sig = run(x, j + 1, C_B64URL, 4096);
	*rule = SR_JWT;
	return j + 1 + sig - i;
}

static size_t m_tsr(const struct ctx *x, size_t i, int *rule)
{
	if (!has(x, i, "tsr_", 4))
		return 0;
	size_t b = run(x, i + 4, C_B64URL, 256);
	if (b < 40)
		return 0;
	*rule = SR_TSR_TOKEN;
	return 4 + b;
}

/* Azure AD client secret: 3 chars, a digit, "Q~", 31-34 chars; the trigger is the '~'. */
static size_t m_azure_secret(const struct ctx *x, size_t *start, int *rule)
{
	size_t t = *start;
	if (t < 5 || x->p[t - 1] != 'Q' || !(x->cls[x->p[t - 2]] & C_DIGIT))
		return 0;
	size_t s = t - 5;
	for (size_t k = s; k < t - 2; k++)
		if (!(x->cls[x->p[k]] & C_AZSEC))
			return 0;
	if (s > 0 && (x->cls[x->p[s - 1]] & C_AZSEC))
		return 0;
	size_t b = run(x, t + 1, C_AZSEC, 40);
	if (b < 31 || b > 34)
		return 0;
	*rule = SR_AZURE_CLIENT_SECRET;
	*start = s;
	return 6 + b;
}

static bool luhn_ok(const unsigned char *d, int n)
{
	int sum = 0;
	for (int k = 0; k < n; k++) {
		int v = d[n - 1 - k];
		if (k & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/* Issuer prefixes of the networks whose numbers we look for (cuts Luhn's 1-in-10 false positives). */
static bool iin_ok(const unsigned char *d, int n)
{
	int p2 = d[0] * 10 + d[1], p4 = p2 * 100 + d[2] * 10 + d[3];
	switch (d[0]) {
	case 4: return n == 13 || n == 16 || n == 19;                                 /* Visa */
	case 5: return p2 >= 51 && p2 <= 55 && n == 16;                               /* Mastercard */
	case 2: return p4 >= 2221 && p4 <= 2720 && n == 16;                           /* Mastercard 2-series */
	case 3: return ((p2 == 34 || p2 == 37) && n == 15) || (p2 == 35 && n >= 16) || /* Amex, JCB */
		       ((p2 == 36 || p2 == 38 || (p2 == 30 && d[2] <= 5)) && n >= 14); /* Diners */
	case 6: return (p4 == 6011 || p2 == 65 || (p4 >= 6440 && p4 <= 6499) || p2 == 62) && n >= 16;
	default: return false;
	}
}

static size_t m_digits(const struct ctx *x, size_t i, int *rule)
{
	const unsigned char *p = x->p;
	/* US SSN: ddd-dd-dddd, not 000/666/9xx, group not 00, serial not 0000 */
	if (x->n - i >= 11 && p[i + 3] == '-' && p[i + 6] == '-') {
		bool shape = true;
		static const int pos[] = { 0, 1, 2, 4, 5, 7, 8, 9, 10 };
		for (int k = 0; k < 9 && shape; k++)
			shape = x->cls[p[i + pos[k]]] & C_DIGIT;
		if (shape && ends(x, i + 11, C_ALNUM) && !(i + 11 < x->n && p[i + 11] == '-')) {
			int area = (p[i] - '0') * 100 + (p[i + 1] - '0') * 10 + (p[i + 2] - '0');
			bool ok = area != 0 && area != 666 && area < 900 && !(p[i + 4] == '0' && p[i + 5] == '0') &&
				  memcmp(p + i + 7, "0000", 4) != 0;
			if (ok) {
				*rule = SR_US_SSN;
				return 11;
			}
		}
	}
	/* card numbers: 13-19 digits, single spaces or dashes between groups allowed */
	unsigned char d[20];
	int nd = 0;
	size_t j = i, last = i;
	while (j < x->n) {
		unsigned char c = p[j];
		if (c >= '0' && c <= '9') {
			if (nd == 20)
				return 0;
			d[nd++] = (unsigned char)(c - '0');
			last = j;
			j++;
		} else if ((c == ' ' || c == '-') && j + 1 < x->n && p[j + 1] >= '0' && p[j + 1] <= '9' && nd > 0) {
			j++;
		} else {
			break;
		}
	}
	if (nd < 13 || nd > 19 || !ends(x, last + 1, C_ALNUM))
		return 0;
	if (!iin_ok(d, nd) || !luhn_ok(d, nd))
		return 0;
	*rule = SR_CARD_NUMBER;
	return last + 1 - i;
}

static size_t m_template(const struct scanner *s, const struct ctx *x, size_t i, uint32_t mask, int *rule)
{
	for (int t = 0; t < s->n_tpl; t++) {
		if (!(mask & (1u << t)))
			continue;
		const struct template *tp = &s->tpl[t];
		if (x->n - i < (size_t)tp->n)
			continue;
		bool ok = true;
		for (int k = 0; k < tp->n && ok; k++) {
			unsigned char c = x->p[i + (size_t)k];
			switch (tp->item[k].kind) {
			case TK_DIGIT: ok = x->cls[c] & C_DIGIT; break;
			case TK_ALPHA: ok = x->cls[c] & C_ALPHA; break;
			case TK_ALNUM: ok = x->cls[c] & C_ALNUM; break;
			default: ok = c == tp->item[k].ch;
			}
		}
		if (ok && ends(x, i + (size_t)tp->n, C_ALNUM)) {
			*rule = SR_BUILTIN_N + t;
			return (size_t)tp->n;
		}
	}
	return 0;
}

static void record(struct scan_result *res, int rule, size_t off, size_t len)
{
	res->hits[rule]++;
	res->total++;
	if (res->n_spans < SCAN_MAX_SPANS) {
		res->spans[res->n_spans].off = (uint32_t)off;
		res->spans[res->n_spans].len = (uint32_t)len;
		res->spans[res->n_spans].rule = (uint16_t)rule;
		res->n_spans++;
	} else {
		res->spans_truncated = true;
	}
}

void scanner_scan(const struct scanner *s, const char *text, size_t n, struct scan_result *res)
{
	memset(res, 0, sizeof(*res));
	struct ctx x = { (const unsigned char *)text, n, s->cls };
	const unsigned char *p = x.p, *cls = s->cls;
	size_t i = 0, last_end = 0; /* matches never overlap (one that looks back must not reach into the last) */
	while (i < n) {
		/* the hot loop: one table load per byte that starts nothing */
		while (i < n && !(cls[p[i]] & C_TRIG))
			i++;
		if (i >= n)
			break;
		unsigned char c = p[i];
		size_t len = 0, start = i;
		int rule = -1;
		if (c == '-') {
			len = m_pem(&x, i, &rule);
		} else if (c == '~') {
			len = m_azure_secret(&x, &start, &rule);
		} else if (word_start(&x, i)) {
			switch (c) {
			case 'A':
				len = m_upper_a(&x, i, &rule);
				if (!len)
					len = m_aws_secret(&x, &start, &rule);
				break;
			case 'a': len = m_aws_secret(&x, &start, &rule); break;
			case 'g': len = m_g(&x, i, &rule); break;
			case 'x': len = m_x(&x, i, &rule); break;
			case 'h': len = m_h(&x, i, &rule); break;
			case 'e': len = m_jwt(&x, i, &rule); break;
			case 't': len = m_tsr(&x, i, &rule); break;
			default:
				if (c >= '0' && c <= '9')
					len = m_digits(&x, i, &rule);
				break;
			}
			if (!len && s->custom_first[c])
				len = m_template(s, &x, i, s->custom_first[c], &rule);
		}
		if (len && rule >= 0 && start >= last_end) {
			record(res, rule, start, len);
			i = last_end = start + len;
			continue;
		}
		/* skip the rest of a word: a token must start at a word start */
		i++;
		if (c != '-' && c != '~')
			while (i < n && (cls[p[i]] & C_ALNUM))
				i++;
	}
}

tsr_rc scanner_redact(const struct scanner *s, const char *p, size_t n, const struct scan_result *res,
		      const bool *redact, struct buf *out)
{
	size_t at = 0;
	tsr_rc rc = TSR_OK;
	for (int k = 0; k < res->n_spans && rc == TSR_OK; k++) {
		const struct scan_span *sp = &res->spans[k];
		if (!redact[sp->rule] || sp->off < at)
			continue;
		rc = buf_append(out, p + at, sp->off - at);
		if (rc == TSR_OK)
			rc = buf_printf(out, "[REDACTED:%s]", scanner_rule_name(s, sp->rule));
		at = sp->off + sp->len;
	}
	if (rc == TSR_OK)
		rc = buf_append(out, p + at, n - at);
	return rc;
}
