/*
 * ldap.c — see ldap.h.
 *
 * Every connection is made the same way (connect_ld): LDAPv3, referrals
 * not chased, network and operation timeouts from [ldap] timeout, TLS 1.2
 * or later with the peer certificate demanded (against [ldap] ca_file when
 * set), StartTLS when configured. Paged searches ask for the RFC 2696
 * control as critical, so a server that cannot page refuses instead of
 * silently truncating at its size limit.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>

#include "ldap.h"
#include "../lib/json_write.h"
#include "../lib/log.h"

struct ldap_session {
	LDAP *ld;
	const struct config *cfg;
};

/* Map a libldap result code onto tessera's error type (for the sync and logins alike). */
static tsr_rc map_rc(int lrc)
{
	switch (lrc) {
	case LDAP_SUCCESS:
		return TSR_OK;
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
		return TSR_UNAUTHENTICATED;
	case LDAP_FILTER_ERROR:
	case LDAP_INVALID_DN_SYNTAX:
	case LDAP_PARAM_ERROR:
	case LDAP_UNDEFINED_TYPE:
	case LDAP_INAPPROPRIATE_MATCHING:
		return TSR_INVALID;
	case LDAP_NO_MEMORY:
		return TSR_INTERNAL;
	default:
		/* down, timeouts, TLS, busy, unavailable, size limits: the directory is not usable now */
		return TSR_UNAVAILABLE;
	}
}

/* "reason (server diagnostic)" for lrc on ld, one line. */
static void ldap_why(LDAP *ld, int lrc, char *out, size_t n)
{
	char *diag = NULL;
	if (ld)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	if (lrc == LDAP_TIMEOUT || lrc == LDAP_TIMELIMIT_EXCEEDED)
		snprintf(out, n, "timed out (%s)", ldap_err2string(lrc));
	else if (diag && *diag)
		snprintf(out, n, "%s (%s)", ldap_err2string(lrc), diag);
	else
		snprintf(out, n, "%s", ldap_err2string(lrc));
	if (diag)
		ldap_memfree(diag);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

static bool uri_is_ldaps(const char *uri)
{
	return strncasecmp(uri, "ldaps://", 8) == 0;
}

static atomic_bool plaintext_warned;

/* Initialise a handle for [ldap] uri with tessera's options, StartTLS included; no bind. */
static tsr_rc connect_ld(const struct config *cfg, LDAP **out, char *err, size_t errlen)
{
	*out = NULL;
	const char *uri = cfg->ldap.uri;
	if (!uri || !*uri) {
		snprintf(err, errlen, "[ldap] uri is not configured");
		return TSR_INVALID;
	}
	LDAP *ld = NULL;
	int lrc = ldap_initialize(&ld, uri);
	if (lrc != LDAP_SUCCESS || !ld) {
		snprintf(err, errlen, "bad [ldap] uri '%s': %s", uri, ldap_err2string(lrc));
		return TSR_INVALID;
	}
	int v3 = LDAP_VERSION3;
	struct timeval tv = { .tv_sec = (time_t)(cfg->ldap.timeout > 0 ? cfg->ldap.timeout : 10) };
	int demand = LDAP_OPT_X_TLS_DEMAND, tls12 = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, zero = 0;
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls12) != LDAP_OPT_SUCCESS ||
	    (cfg->ldap.ca_file &&
	     ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cfg->ldap.ca_file) != LDAP_OPT_SUCCESS) ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		snprintf(err, errlen, "cannot set up the LDAP connection options (TLS library, ca_file %s)",
			 cfg->ldap.ca_file ? cfg->ldap.ca_file : "unset");
		return TSR_INVALID;
	}
	if (cfg->ldap.starttls && !uri_is_ldaps(uri)) {
		lrc = ldap_start_tls_s(ld, NULL, NULL);
		if (lrc != LDAP_SUCCESS) {
			char why[300];
			ldap_why(ld, lrc, why, sizeof(why));
			snprintf(err, errlen, "StartTLS with %s failed: %s", uri, why);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return TSR_UNAVAILABLE;
		}
	} else if (!uri_is_ldaps(uri) && !atomic_exchange(&plaintext_warned, true)) {
		log_warn("ldap_plaintext", "uri=%s reason=\"neither ldaps:// nor starttls: passwords cross the "
					   "network in the clear\"",
			 uri);
	}
	*out = ld;
	return TSR_OK;
}

/* Simple bind; TSR_UNAUTHENTICATED for refused credentials. */
static tsr_rc simple_bind(LDAP *ld, const char *dn, const char *pw, char *why, size_t whylen)
{
	struct berval cred = { .bv_len = strlen(pw), .bv_val = (char *)pw };
	int lrc = ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (lrc == LDAP_SUCCESS)
		return TSR_OK;
	ldap_why(ld, lrc, why, whylen);
	return map_rc(lrc);
}

tsr_rc ldap_session_open(const struct config *cfg, struct ldap_session **out, char *err, size_t errlen)
{
	*out = NULL;
	LDAP *ld;
	tsr_rc rc = connect_ld(cfg, &ld, err, errlen);
	if (rc != TSR_OK)
		return rc;
	if (cfg->ldap.bind_dn) {
		char *pw = NULL;
		rc = config_secret(cfg->ldap.bind_password, cfg->ldap.bind_password_file, &pw);
		if (rc != TSR_OK || !pw || !*pw) {
			if (rc == TSR_NOT_FOUND && cfg->ldap.bind_password_file)
				snprintf(err, errlen, "cannot read [ldap] bind_password_file %s",
					 cfg->ldap.bind_password_file);
			else
				snprintf(err, errlen, "[ldap] bind_dn is set but its password is empty or missing "
						      "(bind_password_file or bind_password)");
			secret_free(pw);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return TSR_INVALID;
		}
		char why[300];
		rc = simple_bind(ld, cfg->ldap.bind_dn, pw, why, sizeof(why));
		secret_free(pw);
		if (rc != TSR_OK) {
			snprintf(err, errlen, "service bind to %s as '%s' failed: %s", cfg->ldap.uri, cfg->ldap.bind_dn,
				 why);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return rc == TSR_INVALID ? TSR_INVALID : rc;
		}
	} else {
		/* anonymous: LDAPv3 needs no bind; make sure the server is there (and TLS done) */
		LDAPMessage *res = NULL;
		char *attrs[] = { "1.1", NULL };
		struct timeval tv = { .tv_sec = (time_t)(cfg->ldap.timeout > 0 ? cfg->ldap.timeout : 10) };
		int lrc = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1,
					    &res);
		ldap_msgfree(res);
		if (lrc != LDAP_SUCCESS && lrc != LDAP_NO_SUCH_OBJECT && lrc != LDAP_INSUFFICIENT_ACCESS) {
			char why[300];
			ldap_why(ld, lrc, why, sizeof(why));
			snprintf(err, errlen, "cannot reach %s: %s", cfg->ldap.uri, why);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return map_rc(lrc) == TSR_OK ? TSR_UNAVAILABLE : map_rc(lrc);
		}
	}
	struct ldap_session *s = calloc(1, sizeof(*s));
	if (!s) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		snprintf(err, errlen, "out of memory");
		return TSR_INTERNAL;
	}
	s->ld = ld;
	s->cfg = cfg;
	*out = s;
	return TSR_OK;
}

void ldap_session_close(struct ldap_session *s)
{
	if (!s)
		return;
	if (s->ld)
		ldap_unbind_ext_s(s->ld, NULL, NULL);
	free(s);
}

struct berval **ldap_entry_values(const struct ldap_entry *e, const char *attr)
{
	return ldap_get_values_len(e->ld, e->msg, attr);
}

bool ldap_range_attr(const char *name, const char *attr, long *low, long *high)
{
	size_t n = strlen(attr);
	if (strncasecmp(name, attr, n) != 0 || strncasecmp(name + n, ";range=", 7) != 0)
		return false;
	const char *p = name + n + 7;
	char *end;
	if (!isdigit((unsigned char)*p))
		return false;
	long lo = strtol(p, &end, 10);
	if (*end != '-' || lo < 0)
		return false;
	p = end + 1;
	long hi;
	if (*p == '*' && p[1] == '\0') {
		hi = -1;
	} else {
		if (!isdigit((unsigned char)*p))
			return false;
		hi = strtol(p, &end, 10);
		if (*end || hi < lo)
			return false;
	}
	*low = lo;
	*high = hi;
	return true;
}

/* The ranged variant of attr in message m: its name (caller ldap_memfree()s) and range. */
static char *find_range(LDAP *ld, LDAPMessage *m, const char *attr, long *lo, long *hi)
{
	BerElement *ber = NULL;
	char *found = NULL;
	for (char *a = ldap_first_attribute(ld, m, &ber); a; a = ldap_next_attribute(ld, m, ber)) {
		if (!found && ldap_range_attr(a, attr, lo, hi))
			found = a;
		else
			ldap_memfree(a);
	}
	if (ber)
		ber_free(ber, 0);
	return found;
}

/* Append the values of name in m to *v (a NULL-terminated ber_memalloc'd array of n). */
static tsr_rc append_values(LDAP *ld, LDAPMessage *m, const char *name, struct berval ***v, size_t *n)
{
	struct berval **got = ldap_get_values_len(ld, m, name);
	size_t k = 0;
	while (got && got[k])
		k++;
	struct berval **nv = ber_memrealloc(*v, (*n + k + 1) * sizeof(*nv));
	if (!nv) {
		ldap_value_free_len(got);
		return TSR_INTERNAL;
	}
	*v = nv;
	for (size_t i = 0; i < k; i++)
		nv[(*n)++] = got[i]; /* the values move over */
	nv[*n] = NULL;
	ber_memfree(got);
	return TSR_OK;
}

struct berval **ldap_entry_values_all(const struct ldap_entry *e, const char *attr, int timeout_s, tsr_rc *rc,
				      char *err, size_t errlen)
{
	*rc = TSR_OK;
	struct berval **plain = ldap_get_values_len(e->ld, e->msg, attr);
	if (plain)
		return plain;
	long lo, hi;
	char *name = find_range(e->ld, e->msg, attr, &lo, &hi);
	if (!name)
		return NULL; /* absent */
	struct berval **v = NULL;
	size_t n = 0;
	*rc = lo == 0 ? append_values(e->ld, e->msg, name, &v, &n) : TSR_UNAVAILABLE;
	ldap_memfree(name);
	struct timeval tv = { .tv_sec = timeout_s > 0 ? timeout_s : 10 };
	for (int rounds = 0; *rc == TSR_OK && hi >= 0; rounds++) {
		long next = hi + 1;
		char want[160];
		snprintf(want, sizeof(want), "%s;range=%ld-*", attr, next);
		char *attrs[] = { want, NULL };
		LDAPMessage *res = NULL;
		int lrc = rounds > 100000 ? LDAP_LOOP_DETECT
					  : ldap_search_ext_s(e->ld, e->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
							      NULL, NULL, &tv, 1, &res);
		LDAPMessage *m = lrc == LDAP_SUCCESS ? ldap_first_entry(e->ld, res) : NULL;
		name = m ? find_range(e->ld, m, attr, &lo, &hi) : NULL;
		if (!name || lo != next) {
			char why[200];
			ldap_why(e->ld, lrc == LDAP_SUCCESS ? LDAP_OTHER : lrc, why, sizeof(why));
			snprintf(err, errlen, "ranged retrieval of %s of '%s' stopped at %ld: %s", attr, e->dn, next,
				 lrc == LDAP_SUCCESS ? "the server answered another range" : why);
			*rc = lrc == LDAP_SUCCESS || map_rc(lrc) == TSR_OK ? TSR_UNAVAILABLE : map_rc(lrc);
		} else {
			*rc = append_values(e->ld, m, name, &v, &n);
		}
		if (name)
			ldap_memfree(name);
		ldap_msgfree(res);
	}
	if (*rc != TSR_OK) {
		ldap_value_free_len(v);
		return NULL;
	}
	return v;
}

/* Deliver the entries of one result chain to fn. */
static tsr_rc deliver(LDAP *ld, LDAPMessage *res, ldap_entry_fn fn, void *arg, size_t *count)
{
	for (LDAPMessage *m = ldap_first_message(ld, res); m; m = ldap_next_message(ld, m)) {
		if (ldap_msgtype(m) != LDAP_RES_SEARCH_ENTRY)
			continue; /* references (Active Directory) are not chased */
		char *dn = ldap_get_dn(ld, m);
		if (!dn)
			return TSR_INTERNAL;
		struct ldap_entry e = { .dn = dn, .ld = ld, .msg = m };
		tsr_rc rc = fn ? fn(arg, &e) : TSR_OK;
		ldap_memfree(dn);
		if (rc != TSR_OK)
			return rc;
		(*count)++;
	}
	return TSR_OK;
}

/* The search loop shared by the sync (subtree, paged) and logins (base scope too). */
static tsr_rc search_scope(LDAP *ld, const struct config *cfg, const char *base, int scope, const char *filter,
			   const char *const *attrs, ldap_entry_fn fn, void *arg, size_t *countp, bool *missing_base,
			   char *err, size_t errlen)
{
	size_t count = 0;
	struct berval *cookie = NULL;
	tsr_rc rc = TSR_OK;
	int page = (int)(cfg->ldap.page_size > 0 ? cfg->ldap.page_size : 500);
	struct timeval tv = { .tv_sec = (time_t)(cfg->ldap.timeout > 0 ? cfg->ldap.timeout : 10) };
	if (missing_base)
		*missing_base = false;
	for (;;) {
		LDAPControl *pc = NULL;
		int lrc = ldap_create_page_control(ld, (ber_int_t)page, cookie, 1, &pc);
		if (lrc != LDAP_SUCCESS) {
			snprintf(err, errlen, "cannot build the paged results control: %s", ldap_err2string(lrc));
			rc = TSR_INTERNAL;
			break;
		}
		LDAPControl *sctrls[] = { pc, NULL };
		LDAPMessage *res = NULL;
		lrc = ldap_search_ext_s(ld, base, scope, filter, (char **)(uintptr_t)attrs, 0, sctrls, NULL, &tv,
					LDAP_NO_LIMIT, &res);
		ldap_control_free(pc);
		if (lrc == LDAP_NO_SUCH_OBJECT) {
			ldap_msgfree(res);
			if (missing_base)
				*missing_base = true;
			break;
		}
		if (lrc != LDAP_SUCCESS) {
			char why[300];
			ldap_why(ld, lrc, why, sizeof(why));
			snprintf(err, errlen, "search of '%s' with %s failed after %zu entries: %s", base, filter, count,
				 why);
			ldap_msgfree(res);
			rc = map_rc(lrc) == TSR_OK ? TSR_UNAVAILABLE : map_rc(lrc);
			break;
		}
		rc = deliver(ld, res, fn, arg, &count);
		if (rc != TSR_OK) {
			ldap_msgfree(res);
			snprintf(err, errlen, "search of '%s' stopped after %zu entries: %s", base, count,
				 status_name(rc));
			break;
		}
		LDAPControl **rctrls = NULL;
		int result = LDAP_SUCCESS;
		lrc = ldap_parse_result(ld, res, &result, NULL, NULL, NULL, &rctrls, 1); /* frees res */
		if (lrc != LDAP_SUCCESS || result != LDAP_SUCCESS) {
			snprintf(err, errlen, "search of '%s': cannot read the result: %s", base,
				 ldap_err2string(lrc != LDAP_SUCCESS ? lrc : result));
			ldap_controls_free(rctrls);
			rc = TSR_UNAVAILABLE;
			break;
		}
		LDAPControl *resp = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
		if (!resp) {
			ldap_controls_free(rctrls);
			snprintf(err, errlen, "search of '%s': the server answered without a paged results control",
				 base);
			rc = TSR_UNAVAILABLE;
			break;
		}
		ber_int_t estimate = 0;
		struct berval next = { 0, NULL };
		lrc = ldap_parse_pageresponse_control(ld, resp, &estimate, &next);
		ldap_controls_free(rctrls);
		if (lrc != LDAP_SUCCESS) {
			snprintf(err, errlen, "search of '%s': bad paged results cookie: %s", base,
				 ldap_err2string(lrc));
			ber_memfree(next.bv_val);
			rc = TSR_UNAVAILABLE;
			break;
		}
		if (cookie)
			ber_bvfree(cookie);
		cookie = NULL;
		if (next.bv_len == 0) {
			ber_memfree(next.bv_val);
			break; /* last page */
		}
		cookie = ber_bvdup(&next);
		ber_memfree(next.bv_val);
		if (!cookie) {
			rc = TSR_INTERNAL;
			snprintf(err, errlen, "out of memory");
			break;
		}
	}
	if (cookie)
		ber_bvfree(cookie);
	if (countp)
		*countp = count;
	return rc;
}

tsr_rc ldap_session_search(struct ldap_session *s, const char *base, const char *filter, const char *const *attrs,
			   ldap_entry_fn fn, void *arg, size_t *count, bool *missing_base, char *err, size_t errlen)
{
	return search_scope(s->ld, s->cfg, base, LDAP_SCOPE_SUBTREE, filter, attrs, fn, arg, count, missing_base, err,
			    errlen);
}

/* ---------- filters ---------- */

char *ldap_filter_escape(const void *v, size_t n)
{
	const unsigned char *p = v;
	size_t need = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		need += (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x7f) ? 3 : 1;
	}
	char *out = malloc(need);
	if (!out)
		return NULL;
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x7f) {
			out[o++] = '\\';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

bool ldap_attr_valid(const char *a)
{
	if (!a || !*a || strlen(a) > 256)
		return false;
	const char *p = a;
	if (isalpha((unsigned char)*p)) {
		while (isalnum((unsigned char)*p) || *p == '-')
			p++;
	} else if (isdigit((unsigned char)*p)) {
		/* numericoid: number *( "." number ) */
		for (;;) {
			if (!isdigit((unsigned char)*p))
				return false;
			while (isdigit((unsigned char)*p))
				p++;
			if (*p != '.')
				break;
			p++;
		}
	} else {
		return false;
	}
	while (*p == ';') { /* options */
		p++;
		if (!isalnum((unsigned char)*p))
			return false;
		while (isalnum((unsigned char)*p) || *p == '-')
			p++;
	}
	return *p == '\0';
}

char *ldap_filter_eq(const char *attr, const void *v, size_t n)
{
	if (!ldap_attr_valid(attr))
		return NULL;
	char *esc = ldap_filter_escape(v, n);
	if (!esc)
		return NULL;
	size_t len = strlen(attr) + strlen(esc) + 4;
	char *out = malloc(len);
	if (out)
		snprintf(out, len, "(%s=%s)", attr, esc); /* checksrc: ok (value escaped above) */
	free(esc);
	return out;
}

char *ldap_filter_ge(const char *attr, const void *v, size_t n)
{
	if (!ldap_attr_valid(attr))
		return NULL;
	char *esc = ldap_filter_escape(v, n);
	if (!esc)
		return NULL;
	size_t len = strlen(attr) + strlen(esc) + 5;
	char *out = malloc(len);
	if (out)
		snprintf(out, len, "(%s>=%s)", attr, esc); /* checksrc: ok (value escaped above) */
	free(esc);
	return out;
}

/* "(f)" unless f already has its outer parentheses. */
static void put_filter(char *out, size_t len, size_t *o, const char *f)
{
	bool wrap = f[0] != '(';
	*o += (size_t)snprintf(out + *o, len - *o, "%s%s%s", wrap ? "(" : "", f, wrap ? ")" : "");
}

char *ldap_filter_and(const char *a, const char *b)
{
	size_t len = strlen(a) + strlen(b) + 8;
	char *out = malloc(len);
	if (!out)
		return NULL;
	size_t o = (size_t)snprintf(out, len, "(&");
	put_filter(out, len, &o, a);
	put_filter(out, len, &o, b);
	snprintf(out + o, len - o, ")");
	return out;
}

char *ldap_filter_or(char *const *f, size_t n)
{
	if (n == 0)
		return NULL;
	size_t len = 4;
	for (size_t i = 0; i < n; i++)
		len += strlen(f[i]) + 2;
	char *out = malloc(len);
	if (!out)
		return NULL;
	size_t o = (size_t)snprintf(out, len, "(|");
	for (size_t i = 0; i < n; i++)
		put_filter(out, len, &o, f[i]);
	snprintf(out + o, len - o, ")");
	return out;
}

/* ---------- DNs ---------- */

static int ava_cmp(const void *a, const void *b)
{
	const LDAPAVA *x = *(const LDAPAVA *const *)a, *y = *(const LDAPAVA *const *)b;
	size_t n = x->la_attr.bv_len < y->la_attr.bv_len ? x->la_attr.bv_len : y->la_attr.bv_len;
	int c = strncasecmp(x->la_attr.bv_val, y->la_attr.bv_val, n);
	if (c)
		return c;
	if (x->la_attr.bv_len != y->la_attr.bv_len)
		return x->la_attr.bv_len < y->la_attr.bv_len ? -1 : 1;
	/* values compare ASCII-case-folded: the key folds them afterwards, and the order must not change then */
	n = x->la_value.bv_len < y->la_value.bv_len ? x->la_value.bv_len : y->la_value.bv_len;
	for (ber_len_t i = 0; i < n; i++) {
		int ca = tolower((unsigned char)x->la_value.bv_val[i]), cb = tolower((unsigned char)y->la_value.bv_val[i]);
		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return x->la_value.bv_len == y->la_value.bv_len ? 0 : (x->la_value.bv_len < y->la_value.bv_len ? -1 : 1);
}

tsr_rc ldap_dn_key(const char *dn, char **out)
{
	*out = NULL;
	if (!dn)
		return TSR_INVALID;
	size_t n = strlen(dn);
	if (n == 0 || n > 65536 || !ldap_utf8_valid(dn, n))
		return TSR_INVALID;
	char *copy = strdup(dn); /* str2dn may point into its input; keep ours mutable */
	if (!copy)
		return TSR_INTERNAL;
	LDAPDN ldn = NULL;
	if (ldap_str2dn(copy, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !ldn) {
		free(copy);
		return TSR_INVALID;
	}
	tsr_rc rc = TSR_OK;
	for (int i = 0; ldn[i]; i++) {
		LDAPRDN rdn = ldn[i];
		int navas = 0;
		while (rdn[navas]) {
			struct berval *t = &rdn[navas]->la_attr;
			/* libldap takes "cn=#" as an empty BER value and then prints what it cannot parse */
			if (t->bv_len == 0 || ((rdn[navas]->la_flags & LDAP_AVA_BINARY) && rdn[navas]->la_value.bv_len == 0)) {
				rc = TSR_INVALID;
				goto done;
			}
			for (ber_len_t k = 0; k < t->bv_len; k++)
				t->bv_val[k] = (char)tolower((unsigned char)t->bv_val[k]);
			navas++;
		}
		if (navas > 1)
			qsort(rdn, (size_t)navas, sizeof(rdn[0]), ava_cmp);
	}
	char *s = NULL;
	if (rc != TSR_OK) {
		/* refused above */
	} else if (ldap_dn2str(ldn, &s, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !s) {
		rc = TSR_INVALID;
	} else {
		for (char *p = s; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		*out = strdup(s);
		if (!*out)
			rc = TSR_INTERNAL;
		ldap_memfree(s);
	}
done:
	ldap_dnfree(ldn);
	free(copy);
	return rc;
}

bool ldap_utf8_valid(const char *str, size_t n)
{
	return !memchr(str, 0, n) && json_write_utf8_ok(str, n); /* no NUL, and UTF-8 by RFC 3629 */
}

/* ---------- external ids ---------- */

tsr_rc ldap_external_id(const char *attr, const struct berval *v, char *out, size_t outlen)
{
	if (!v || v->bv_len == 0)
		return TSR_INVALID;
	const unsigned char *b = (const unsigned char *)v->bv_val;
	if (attr && strcasecmp(attr, "objectGUID") == 0 && v->bv_len == 16) {
		if (outlen < 37)
			return TSR_TOO_LARGE;
		snprintf(out, outlen, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[3], b[2],
			 b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
		return TSR_OK;
	}
	bool printable = ldap_utf8_valid(v->bv_val, v->bv_len);
	for (ber_len_t i = 0; printable && i < v->bv_len; i++)
		if (b[i] < 0x20 || b[i] == 0x7f)
			printable = false;
	if (printable) {
		if (v->bv_len + 1 > outlen)
			return TSR_TOO_LARGE;
		memcpy(out, v->bv_val, v->bv_len);
		out[v->bv_len] = '\0';
		return TSR_OK;
	}
	if (2 * v->bv_len + 1 > outlen)
		return TSR_TOO_LARGE;
	static const char hex[] = "0123456789abcdef";
	for (ber_len_t i = 0; i < v->bv_len; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * v->bv_len] = '\0';
	return TSR_OK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *ldap_filter_external_id(const char *attr, const char *ext_id)
{
	if (!attr || !ext_id || !*ext_id)
		return NULL;
	if (strcasecmp(attr, "objectGUID") == 0) {
		/* back to the 16 bytes in Active Directory's order */
		unsigned char g[16];
		static const int order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
		const char *p = ext_id;
		int k = 0;
		while (*p && k < 16) {
			if (*p == '-') {
				p++;
				continue;
			}
			int hi = hexval(p[0]), lo = hi >= 0 && p[1] ? hexval(p[1]) : -1;
			if (hi < 0 || lo < 0)
				return NULL;
			g[order[k++]] = (unsigned char)(hi << 4 | lo);
			p += 2;
		}
		if (k != 16 || *p || strlen(ext_id) != 36)
			return NULL;
		return ldap_filter_eq(attr, g, sizeof(g));
	}
	return ldap_filter_eq(attr, ext_id, strlen(ext_id));
}

/* ---------- logins ---------- */

struct one_dn {
	char dn[1024];
	int n;
	bool too_long;
};

static tsr_rc take_dn(void *arg, const struct ldap_entry *e)
{
	struct one_dn *o = arg;
	if (o->n++ == 0) {
		size_t len = strlen(e->dn);
		if (len >= sizeof(o->dn))
			o->too_long = true;
		else
			memcpy(o->dn, e->dn, len + 1);
	}
	return TSR_OK;
}

tsr_rc ldap_authenticate(const struct config *cfg, const char *login, const char *password, char *dn, size_t dnlen)
{
	if (dnlen)
		dn[0] = '\0';
	if (!cfg->ldap.uri || !cfg->ldap.user_base)
		return TSR_INVALID;
	/* RFC 4513 5.1.2: a DN with an empty password is an unauthenticated bind that "succeeds" */
	if (!login || !*login || !password || !*password)
		return TSR_UNAUTHENTICATED;
	size_t llen = strlen(login);
	if (llen > 512 || !ldap_utf8_valid(login, llen))
		return TSR_UNAUTHENTICATED;

	char err[512], why[300];
	struct ldap_session *s = NULL;
	LDAP *uld = NULL;
	char *eq = NULL, *filter = NULL;
	struct one_dn found = { .n = 0 };
	tsr_rc rc = ldap_session_open(cfg, &s, err, sizeof(err));
	if (rc != TSR_OK) {
		log_warn("ldap_auth_unavailable", "error=\"%s\"", err);
		rc = rc == TSR_INVALID ? TSR_INVALID : TSR_UNAVAILABLE;
		goto out;
	}
	eq = ldap_filter_eq(cfg->ldap.login_attr, login, llen);
	filter = eq ? ldap_filter_and(cfg->ldap.user_filter, eq) : NULL;
	if (!filter) {
		rc = eq ? TSR_INTERNAL : TSR_INVALID;
		goto out;
	}
	static const char *const no_attrs[] = { "1.1", NULL };
	rc = ldap_session_search(s, cfg->ldap.user_base, filter, no_attrs, take_dn, &found, NULL, NULL, err,
				 sizeof(err));
	if (rc != TSR_OK) {
		log_warn("ldap_auth_unavailable", "error=\"%s\"", err);
		rc = rc == TSR_INVALID ? TSR_INVALID : TSR_UNAVAILABLE;
		goto out;
	}
	if (found.n != 1 || found.too_long) {
		if (found.n > 1)
			log_warn("ldap_auth_ambiguous", "entries=%d attr=%s", found.n, cfg->ldap.login_attr);
		rc = TSR_UNAUTHENTICATED;
		goto out;
	}
	/* the user's own bind, on its own connection over the same TLS */
	rc = connect_ld(cfg, &uld, err, sizeof(err));
	if (rc != TSR_OK) {
		log_warn("ldap_auth_unavailable", "error=\"%s\"", err);
		rc = rc == TSR_INVALID ? TSR_INVALID : TSR_UNAVAILABLE;
		goto out;
	}
	rc = simple_bind(uld, found.dn, password, why, sizeof(why));
	if (rc == TSR_UNAUTHENTICATED || rc == TSR_INVALID) {
		rc = TSR_UNAUTHENTICATED;
		goto out;
	}
	if (rc != TSR_OK) {
		log_warn("ldap_auth_unavailable", "error=\"user bind: %s\"", why);
		rc = TSR_UNAVAILABLE;
		goto out;
	}
	if (cfg->ldap.disabled_filter) {
		struct one_dn dis = { .n = 0 };
		rc = search_scope(s->ld, cfg, found.dn, LDAP_SCOPE_BASE, cfg->ldap.disabled_filter, no_attrs, take_dn,
				  &dis, NULL, NULL, err, sizeof(err));
		if (rc != TSR_OK) {
			log_warn("ldap_auth_unavailable", "error=\"%s\"", err);
			rc = rc == TSR_INVALID ? TSR_INVALID : TSR_UNAVAILABLE;
			goto out;
		}
		if (dis.n > 0) {
			rc = TSR_DENIED;
			goto out;
		}
	}
	if (strlen(found.dn) >= dnlen) {
		rc = TSR_INTERNAL;
		goto out;
	}
	memcpy(dn, found.dn, strlen(found.dn) + 1);
	rc = TSR_OK;
out:
	if (uld)
		ldap_unbind_ext_s(uld, NULL, NULL);
	ldap_session_close(s);
	free(eq);
	free(filter);
	return rc;
}
