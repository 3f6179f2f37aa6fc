/*
 * ldap.h — talking to the directory: one module over libldap (OpenLDAP's
 * client library; no hand-written LDAP or BER anywhere in tessera).
 *
 * Owns: the connection (ldap:// with optional or required StartTLS,
 * ldaps://, the CA file, certificate verification always demanded), the
 * service bind with the password from [ldap] bind_password or
 * bind_password_file (read with config_secret() for each connection and
 * wiped after the bind), network and operation timeouts, RFC 2696 paged
 * searches that follow the server's cookie until the last page, RFC 4515
 * filter-value escaping (every value placed into a filter goes through
 * ldap_filter_escape(); scripts/checksrc enforces it), RFC 4514 DN handling
 * through ldap_str2dn()/ldap_dn2str(), and password verification for logins
 * (ldap_authenticate()).
 * Does not own: what the entries mean (sync_ldap.c) or Postgres (db/).
 *
 * Threads: a struct ldap_session belongs to one thread. Every other
 * function is thread-safe and may be called from HTTP workers, but a
 * connection blocks for up to [ldap] timeout per operation, so request
 * paths call only ldap_authenticate() (a login), never a search loop.
 * Secrets: the bind password and a user's password never reach a log line,
 * an error text or Postgres; error texts name the URI and bind DN only.
 */
#ifndef TSR_SYNC_LDAP_H
#define TSR_SYNC_LDAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ldap.h>

#include "../lib/config.h"
#include "../lib/status.h"

struct ldap_session;

/*
 * Connect to [ldap] uri, set TLS and timeouts, StartTLS when [ldap]
 * starttls is set, and bind as [ldap] bind_dn (anonymous when bind_dn is
 * unset; a bind_dn with an empty password is refused rather than sent as
 * an unauthenticated bind). err gets a one-line reason on failure:
 * TSR_INVALID (configuration), TSR_UNAUTHENTICATED (bad service
 * credentials), TSR_UNAVAILABLE (unreachable, TLS failure, timeout).
 * Caller frees with ldap_session_close().
 */
tsr_rc ldap_session_open(const struct config *cfg, struct ldap_session **out, char *err, size_t errlen) TSR_WUR;
/* Unbind and free; ldap_session_close(NULL) is a no-op. */
void ldap_session_close(struct ldap_session *s);

/* One entry of a search result, valid only during the callback. */
struct ldap_entry {
	const char *dn;     /* as the server sent it */
	LDAP *ld;
	LDAPMessage *msg;
};

/*
 * Values of attr in e (binary-safe), or NULL when absent. A ranged value
 * ("member;range=0-1499", Active Directory) is not followed.
 * Caller frees with ldap_value_free_len().
 */
struct berval **ldap_entry_values(const struct ldap_entry *e, const char *attr);

/*
 * All values of attr in e, following Active Directory's ranged retrieval
 * (a group over its MaxValRange comes back as "member;range=0-1499"; the
 * rest is fetched with base searches for "member;range=1500-*" and so on
 * until the range ends in '*'). NULL with TSR_OK when absent; on a failed
 * or inconsistent range fetch NULL with the reason in err (never a partial
 * list). Caller frees with ldap_value_free_len().
 */
struct berval **ldap_entry_values_all(const struct ldap_entry *e, const char *attr, int timeout_s, tsr_rc *rc,
				      char *err, size_t errlen);
/* "member;range=0-1499" of attr "member": true, *low 0, *high 1499 (-1 for '*'). Exposed for tests. */
bool ldap_range_attr(const char *name, const char *attr, long *low, long *high);

/* Return non-OK from the callback to stop the search with that rc. */
typedef tsr_rc (*ldap_entry_fn)(void *arg, const struct ldap_entry *e);

/*
 * Subtree search of base with filter, asking for attrs (NULL-terminated;
 * {"1.1", NULL} for none), one RFC 2696 page of [ldap] page_size entries at
 * a time, following the server's cookie until it is empty; fn is called
 * for every entry. A base that does not exist (noSuchObject) is an empty
 * result and *missing_base is set, so the caller can say so (the sync's
 * safety valve then decides). Any other error — size limit, time limit,
 * lost connection, no paging support — fails the whole search: a partial
 * result is never returned as complete. *count (may be NULL) gets the
 * number of entries passed to fn.
 */
tsr_rc ldap_session_search(struct ldap_session *s, const char *base, const char *filter, const char *const *attrs,
			   ldap_entry_fn fn, void *arg, size_t *count, bool *missing_base, char *err,
			   size_t errlen) TSR_WUR;

/*
 * RFC 4515 escaping of the n bytes of v for use as an assertion value in a
 * filter: '*', '(', ')', '\', NUL and every byte outside printable ASCII
 * become \XX (so binary values such as objectGUID are safe too).
 * Caller frees with free(); NULL on allocation failure.
 */
char *ldap_filter_escape(const void *v, size_t n);
/*
 * "(attr=ESCAPED)" for an equality match; attr must be an attribute
 * description (ldap_attr_valid()). Caller frees with free(); NULL on a bad
 * attr or allocation failure.
 */
char *ldap_filter_eq(const char *attr, const void *v, size_t n);
/* "(attr>=ESCAPED)" (ordering match, e.g. modifyTimestamp). Caller frees with free(). */
char *ldap_filter_ge(const char *attr, const void *v, size_t n);
/* "(&AB)" of two filters; a filter without outer parentheses gets them. Caller frees with free(). */
char *ldap_filter_and(const char *a, const char *b);
/*
 * "(|F1F2…)" of the n filters f (each already built by ldap_filter_eq());
 * "(|)" never: n must be >= 1. Caller frees with free().
 */
char *ldap_filter_or(char *const *f, size_t n);
/* An attribute description: a name (letter, then letters, digits, '-') or an OID, with ;options. */
bool ldap_attr_valid(const char *attr);

/*
 * The comparison key of a DN (RFC 4514): parsed with ldap_str2dn(),
 * attribute types lower-cased, the AVAs of a multi-valued RDN sorted,
 * re-serialised with ldap_dn2str() (so "\2C" and "\," or "\20" and "\ "
 * agree) and ASCII letters lower-cased. Two spellings of one DN give one
 * key; non-ASCII case is folded by Postgres (lower()) where keys are
 * compared. TSR_INVALID for a string that is not a DN.
 * Caller frees *out with free().
 */
tsr_rc ldap_dn_key(const char *dn, char **out) TSR_WUR;

/* True when s[0..n) is well-formed UTF-8 without NUL (what Postgres text accepts). */
bool ldap_utf8_valid(const char *s, size_t n);

/*
 * A stable external id from the id attribute's value: Active Directory's
 * 16-byte objectGUID in its canonical string form
 * (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, first three groups little-endian),
 * printable UTF-8 (entryUUID) as is, anything else as lower-case hex.
 * TSR_INVALID for an empty value, TSR_TOO_LARGE when it does not fit outlen.
 */
tsr_rc ldap_external_id(const char *attr, const struct berval *v, char *out, size_t outlen) TSR_WUR;
/*
 * The filter "(attr=VALUE)" that finds the entry whose external id (as made
 * by ldap_external_id()) is ext_id: objectGUID strings go back to their 16
 * bytes. Caller frees with free(); NULL on a bad id or allocation failure.
 */
char *ldap_filter_external_id(const char *attr, const char *ext_id);

/*
 * Verify a user's password for a login (for the credentials code):
 * service bind, find the single entry with login_attr=login (escaped) within
 * user_base and user_filter, then bind as that DN with password on its own
 * connection over the configured TLS. TSR_OK and the entry's DN in dn;
 * TSR_UNAUTHENTICATED for no such user, several matches, an empty login or
 * password (never an anonymous or unauthenticated bind) or a wrong password;
 * TSR_DENIED when the password is right but the entry matches
 * disabled_filter (checked only after the password, so a guesser learns
 * nothing about the account); TSR_UNAVAILABLE when the directory cannot be
 * reached, TLS fails, or it times out; TSR_INVALID when [ldap] is not
 * configured. Blocks for at most a few [ldap] timeouts.
 */
tsr_rc ldap_authenticate(const struct config *cfg, const char *login, const char *password, char *dn,
			 size_t dnlen) TSR_WUR;

#endif
