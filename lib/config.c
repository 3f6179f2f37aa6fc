/*
 * config.c — the key table and the INI loader (libinih). See config.h.
 *
 * inih does the lexing; this file owns meaning: which sections and keys
 * exist, their types and defaults, and error messages with line numbers
 * (inih's handler has no line number in Debian's build, so the reader
 * callback counts lines; multi-line values are disabled so the count is exact).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <ini.h>

#include "config.h"
#include "log.h"

enum cfg_type { T_STR, T_PATH, T_BOOL, T_INT, T_RATIO, T_DURATION, T_ADDR, T_LIST, T_ENUM };

static const char *type_names[] = { "str", "path", "bool", "int", "ratio", "duration", "addr", "list", "enum" };

struct cfg_key {
	const char *section; /* "upstream.*" for per-upstream keys */
	const char *key;
	enum cfg_type type;
	const char *def;     /* NULL: no default */
	size_t off;          /* into struct config, or struct cfg_upstream for upstream.* */
	bool reloadable;
	bool secret;
	int64_t min, max;    /* ints and durations; 0,0 = unbounded */
	const char *choices; /* T_ENUM: "a|b|c" */
	const char *doc;
};

#define C(f) offsetof(struct config, f)
#define U(f) offsetof(struct cfg_upstream, f)
#define DAY 86400LL

static const struct cfg_key keys[] = {
	{ "server", "listen", T_ADDR, "127.0.0.1:8080", C(server.listen), false, false, 0, 0, NULL,
	  "address the gateway, auth, SCIM and hooks listen on" },
	{ "server", "admin_listen", T_ADDR, NULL, C(server.admin_listen), false, false, 0, 0, NULL,
	  "separate address for /admin/v1 (empty: same as listen)" },
	{ "server", "state_dir", T_PATH, "./var", C(server.state_dir), false, false, 0, 0, NULL,
	  "local state: embedded cluster (--dev), master key (--dev), audit spool" },
	{ "server", "public_url", T_STR, NULL, C(server.public_url), true, false, 0, 0, NULL,
	  "URL clients use to reach tesserad (empty: http://LISTEN)" },
	{ "server", "master_key_file", T_PATH, NULL, C(server.master_key_file), false, false, 0, 0, NULL,
	  "file holding the 256-bit master key (--dev: generated under state_dir)" },
	{ "server", "previous_master_key_file", T_PATH, NULL, C(server.previous_master_key_file), false, false, 0, 0,
	  NULL, "the master key being rotated away from: rows still wrapped by it stay readable" },
	{ "server", "workers", T_INT, "4", C(server.workers), false, false, 1, 256, NULL,
	  "HTTP worker threads" },
	{ "server", "shutdown_timeout", T_DURATION, "30s", C(server.shutdown_timeout), false, false, 0, 3600, NULL,
	  "how long SIGTERM waits for in-flight requests" },
	{ "server", "log_level", T_ENUM, "info", C(server.log_level), true, false, 0, 0, "debug|info|warn|error",
	  "minimum level of log lines written to stderr" },

	{ "database", "url", T_STR, NULL, C(database.url), false, true, 0, 0, NULL,
	  "libpq conninfo or URI (absent with --dev: the embedded cluster)" },
	{ "database", "url_file", T_PATH, NULL, C(database.url_file), false, false, 0, 0, NULL,
	  "file holding the database url" },
	{ "database", "pool_size", T_INT, "8", C(database.pool_size), false, false, 1, 1000, NULL,
	  "connections per tesserad" },
	{ "database", "migrations_dir", T_PATH, NULL, C(database.migrations_dir), false, false, 0, 0, NULL,
	  "where the NNNN_name.sql migrations are (default: installed data dir)" },
	{ "database", "connect_timeout", T_DURATION, "5s", C(database.connect_timeout), false, false, 1, 600, NULL,
	  "how long to wait for a connection" },

	{ "tokens", "session_ttl", T_DURATION, "12h", C(tokens.session_ttl), true, false, 60, 90 * DAY, NULL,
	  "lifetime of a CLI session" },
	{ "tokens", "default_ttl", T_DURATION, "15m", C(tokens.default_ttl), true, false, 60, 8 * 3600, NULL,
	  "lifetime of an access token when none is asked for" },
	{ "tokens", "max_ttl", T_DURATION, "8h", C(tokens.max_ttl), true, false, 60, 8 * 3600, NULL,
	  "longest access token lifetime a client may ask for (at most 8h)" },

	{ "roles", "admin", T_LIST, NULL, C(roles.admin), true, false, 0, 0, NULL, "groups whose members are admins" },
	{ "roles", "security", T_LIST, NULL, C(roles.security), true, false, 0, 0, NULL,
	  "groups whose members read audit, run reports, revoke and offboard" },
	{ "roles", "developer", T_LIST, NULL, C(roles.developer), true, false, 0, 0, NULL,
	  "groups whose members may mint access tokens" },

	{ "ldap", "uri", T_STR, NULL, C(ldap.uri), false, false, 0, 0, NULL, "ldap:// or ldaps:// URI of the directory" },
	{ "ldap", "starttls", T_BOOL, "false", C(ldap.starttls), false, false, 0, 0, NULL, "require StartTLS on ldap://" },
	{ "ldap", "ca_file", T_PATH, NULL, C(ldap.ca_file), false, false, 0, 0, NULL, "CA bundle for the directory's certificate" },
	{ "ldap", "bind_dn", T_STR, NULL, C(ldap.bind_dn), false, false, 0, 0, NULL, "service account DN" },
	{ "ldap", "bind_password", T_STR, NULL, C(ldap.bind_password), false, true, 0, 0, NULL,
	  "service account password (prefer bind_password_file)" },
	{ "ldap", "bind_password_file", T_PATH, NULL, C(ldap.bind_password_file), false, false, 0, 0, NULL,
	  "file holding the service account password" },
	{ "ldap", "user_base", T_STR, NULL, C(ldap.user_base), false, false, 0, 0, NULL, "base DN of user entries" },
	{ "ldap", "user_filter", T_STR, "(objectClass=inetOrgPerson)", C(ldap.user_filter), false, false, 0, 0, NULL,
	  "filter selecting user entries" },
	{ "ldap", "group_base", T_STR, NULL, C(ldap.group_base), false, false, 0, 0, NULL, "base DN of group entries" },
	{ "ldap", "group_filter", T_STR, "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))",
	  C(ldap.group_filter), false, false, 0, 0, NULL, "filter selecting group entries" },
	{ "ldap", "login_attr", T_STR, "uid", C(ldap.login_attr), false, false, 0, 0, NULL,
	  "attribute holding the login name (uid, sAMAccountName)" },
	{ "ldap", "id_attr", T_STR, "entryUUID", C(ldap.id_attr), false, false, 0, 0, NULL,
	  "stable id attribute (entryUUID, objectGUID)" },
	{ "ldap", "mail_attr", T_STR, "mail", C(ldap.mail_attr), false, false, 0, 0, NULL, "e-mail attribute" },
	{ "ldap", "name_attr", T_STR, "cn", C(ldap.name_attr), false, false, 0, 0, NULL, "display name attribute" },
	{ "ldap", "repo_login_attr", T_STR, NULL, C(ldap.repo_login_attr), false, false, 0, 0, NULL,
	  "attribute holding the repo-host (GitHub) login" },
	{ "ldap", "disabled_filter", T_STR, NULL, C(ldap.disabled_filter), false, false, 0, 0, NULL,
	  "filter matching disabled users, e.g. (pwdAccountLockedTime=*)" },
	{ "ldap", "sync_interval", T_DURATION, "15m", C(ldap.sync_interval), true, false, 10, 7 * DAY, NULL,
	  "time between scheduled incremental syncs" },
	{ "ldap", "max_deactivate_ratio", T_RATIO, "0.1", C(ldap.max_deactivate_ratio), true, false, 0, 0, NULL,
	  "a sync deactivating a larger share of active users stops (--force overrides)" },
	{ "ldap", "timeout", T_DURATION, "10s", C(ldap.timeout), true, false, 1, 600, NULL, "network timeout per LDAP operation" },
	{ "ldap", "page_size", T_INT, "500", C(ldap.page_size), true, false, 1, 100000, NULL,
	  "entries per page of a paged search (RFC 2696)" },
	{ "ldap", "member_of", T_BOOL, "false", C(ldap.member_of), false, false, 0, 0, NULL,
	  "also read memberships from users' memberOf (Active Directory, the memberof overlay)" },

	{ "scim", "enabled", T_BOOL, "false", C(scim.enabled), false, false, 0, 0, NULL, "serve /scim/v2" },
	{ "scim", "token_file", T_PATH, NULL, C(scim.token_file), false, false, 0, 0, NULL,
	  "file with an initial SCIM bearer token (else: tessera rotate scim-token)" },
	{ "scim", "token_overlap", T_DURATION, "24h", C(scim.token_overlap), true, false, 0, 30 * DAY, NULL,
	  "how long a rotated-out SCIM token still works" },
	{ "scim", "profile_source", T_ENUM, "scim", C(scim.profile_source), false, false, 0, 0, "scim|ldap",
	  "whose userName/displayName/name win for a person known to both SCIM and LDAP" },

	{ "github", "api_url", T_STR, "https://api.github.com", C(github.api_url), false, false, 0, 0, NULL,
	  "REST API base (GitHub Enterprise Server: https://HOST/api/v3)" },
	{ "github", "orgs", T_LIST, NULL, C(github.orgs), false, false, 0, 0, NULL, "organisations to sync" },
	{ "github", "token_file", T_PATH, NULL, C(github.token_file), false, false, 0, 0, NULL, "file with an API token" },
	{ "github", "app_id", T_STR, NULL, C(github.app_id), false, false, 0, 0, NULL, "GitHub App id (instead of a token)" },
	{ "github", "app_key_file", T_PATH, NULL, C(github.app_key_file), false, false, 0, 0, NULL,
	  "GitHub App private key (PEM)" },
	{ "github", "webhook_secret_file", T_PATH, NULL, C(github.webhook_secret_file), false, false, 0, 0, NULL,
	  "secret for X-Hub-Signature-256" },
	{ "github", "webhook_secret_overlap", T_DURATION, "24h", C(github.webhook_secret_overlap), true, false, 0, 30 * DAY,
	  NULL, "how long the previous webhook secret still verifies after tessera rotate webhook-secret github" },
	{ "github", "webhook_hook_id", T_STR, NULL, C(github.webhook_hook_id), false, false, 0, 0, NULL,
	  "organisation webhook (ID, or ORG:ID) whose secret tesserad sets itself when it rotates (admin:org_hook)" },
	{ "github", "webhook_secret_rotation_period", T_DURATION, "0", C(github.webhook_secret_rotation_period), false,
	  false, 0, 3650 * DAY, NULL, "age at which the GitHub webhook secret is rotated and pushed (0: never; needs webhook_hook_id)" },
	{ "github", "sync_interval", T_DURATION, "1h", C(github.sync_interval), true, false, 10, 7 * DAY, NULL,
	  "time between scheduled syncs" },
	{ "github", "topic_classifications", T_LIST, NULL, C(github.topic_classifications), true, false, 0, 0, NULL,
	  "topic:classification pairs, e.g. hipaa:phi,pci:pci" },

	{ "upstream.*", "kind", T_ENUM, NULL, U(kind_s), false, false, 0, 0,
	  "openai|anthropic|azure-openai|openai-compatible", "API dialect of the upstream" },
	{ "upstream.*", "base_url", T_STR, NULL, U(base_url), false, false, 0, 0, NULL, "base URL of the upstream API" },
	{ "upstream.*", "key_file", T_PATH, NULL, U(key_file), false, false, 0, 0, NULL,
	  "file with the initial org key (imported encrypted)" },
	{ "upstream.*", "models", T_LIST, NULL, U(models), true, false, 0, 0, NULL, "models served" },
	{ "upstream.*", "region", T_STR, NULL, U(region), true, false, 0, 0, NULL, "data residency region" },
	{ "upstream.*", "baa", T_BOOL, "false", U(baa), true, false, 0, 0, NULL,
	  "a Business Associate Agreement covers it" },
	{ "upstream.*", "on_prem", T_BOOL, "false", U(on_prem), true, false, 0, 0, NULL, "runs inside the organisation" },
	{ "upstream.*", "rotation_period", T_DURATION, "30d", U(rotation_period), true, false, 5, 3650 * DAY, NULL,
	  "age at which the org key is rotated" },
	{ "upstream.*", "grace_period", T_DURATION, "1h", U(grace_period), true, false, 0, 30 * DAY, NULL,
	  "how long a rotated-out key stays valid" },
	{ "upstream.*", "ca_file", T_PATH, NULL, U(ca_file), false, false, 0, 0, NULL, "CA bundle for the upstream" },
	{ "upstream.*", "tls_verify", T_BOOL, "true", U(tls_verify), false, false, 0, 0, NULL, "verify the upstream's certificate" },
	{ "upstream.*", "provider", T_ENUM, "none", U(provider), false, false, 0, 0, "none|openai-admin",
	  "who creates new keys: none (operator-supplied) or openai-admin (OpenAI organisation Admin API)" },
	{ "upstream.*", "admin_key_file", T_PATH, NULL, U(admin_key_file), false, false, 0, 0, NULL,
	  "file with the provider admin key (provider = openai-admin)" },
	{ "upstream.*", "admin_url", T_STR, "https://api.openai.com/v1", U(admin_url), false, false, 0, 0, NULL,
	  "base URL of the provider admin API" },
	{ "upstream.*", "project_id", T_STR, NULL, U(project_id), false, false, 0, 0, NULL,
	  "provider project whose service-account keys tesserad creates and deletes" },

	{ "policy", "classified_upstreams", T_LIST, "phi:baa|on_prem,pci:baa|on_prem", C(policy.classified_upstreams),
	  true, false, 0, 0, NULL, "classification:attribute|attribute pairs" },
	{ "policy", "allowed_regions", T_LIST, NULL, C(policy.allowed_regions), true, false, 0, 0, NULL,
	  "regions upstreams may be in (empty: any)" },
	{ "policy", "scanner_action", T_LIST, NULL, C(policy.scanner_action), true, false, 0, 0, NULL,
	  "rule:block|redact|log pairs overriding the defaults" },
	{ "policy", "model_access", T_LIST, NULL, C(policy.model_access), true, false, 0, 0, NULL,
	  "which roles/groups may use which models, as MODEL_GLOB:role|group|any|none (unmatched models: allowed)" },
	{ "policy", "patterns", T_LIST, NULL, C(policy.patterns), false, false, 0, 0, NULL,
	  "extra scanner rules as name:TEMPLATE (# digit, @ letter, * either), e.g. mrn:MRN-#######" },

	{ "gateway", "max_body", T_INT, "10485760", C(gateway.max_body), false, false, 1024, 10485760, NULL,
	  "largest request body the gateway accepts, in bytes (413 above)" },
	{ "gateway", "connect_timeout", T_DURATION, "10s", C(gateway.connect_timeout), false, false, 1, 300, NULL,
	  "how long to wait for a connection to an upstream (502 after)" },
	{ "gateway", "read_timeout", T_DURATION, "120s", C(gateway.read_timeout), false, false, 1, 3600, NULL,
	  "longest silence from an upstream before the request fails (504)" },
	{ "gateway", "rate_limit", T_INT, "0", C(gateway.rate_limit), false, false, 0, 1000000, NULL,
	  "requests per minute per user, shared by all replicas (0: no limit; 429 with Retry-After above)" },
	{ "gateway", "daily_token_budget", T_INT, "0", C(gateway.daily_token_budget), false, false, 0, 1000000000000LL,
	  NULL, "tokens per user per UTC day, shared by all replicas (0: no budget; 429 when spent)" },

	{ "hr", "webhook_secret_file", T_PATH, NULL, C(hr.webhook_secret_file), false, false, 0, 0, NULL,
	  "shared secret of the HR offboarding webhook (POST /hooks/hr); absent: the hook is off" },
	{ "hr", "replay_window", T_DURATION, "5m", C(hr.replay_window), true, false, 1, 3600, NULL,
	  "how far a signed HR webhook's timestamp may be from now" },
	{ "hr", "webhook_secret_overlap", T_DURATION, "24h", C(hr.webhook_secret_overlap), true, false, 0, 30 * DAY, NULL,
	  "how long the previous webhook secret still verifies after tessera rotate webhook-secret hr" },
	{ "audit", "spool_dir", T_PATH, NULL, C(audit.spool_dir), false, false, 0, 0, NULL,
	  "local fsync'd spool used while Postgres is unreachable (default STATE/spool)" },
	{ "audit", "seal_interval", T_DURATION, "5m", C(audit.seal_interval), true, false, 1, DAY, NULL,
	  "how often the chain head is signed" },
	{ "audit", "retention", T_DURATION, "7y", C(audit.retention), true, false, DAY, 100 * 365 * DAY, NULL,
	  "how long audit partitions are kept" },
	{ "audit", "durability", T_ENUM, "journal", C(audit.durability), false, false, 0, 0, "postgres|journal",
	  "when a gateway answer may go: after its audit record is committed in Postgres, or fsync'd to the local journal" },
	{ "audit", "journal_max_bytes", T_INT, "268435456", C(audit.journal_max_bytes), false, false, 65536,
	  INT64_C(1099511627776), NULL, "journal bytes not yet shipped to Postgres at which the gateway fails closed" },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const char *sections[] = { "server", "database", "tokens", "roles", "ldap", "scim", "github", "policy", "audit", "hr",
				  "gateway" };
#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

/* ---------- value parsing ---------- */

tsr_rc config_parse_duration(const char *s, int64_t *out)
{
	int64_t total = 0;
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return TSR_INVALID;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return TSR_INVALID;
		errno = 0;
		char *end;
		long long v = strtoll(p, &end, 10);
		if (errno || v < 0)
			return TSR_INVALID;
		p = end;
		int64_t mul;
		switch (*p) {
		case '\0': mul = 1; break;
		case 's': mul = 1; p++; break;
		case 'm': mul = 60; p++; break;
		case 'h': mul = 3600; p++; break;
		case 'd': mul = DAY; p++; break;
		case 'w': mul = 7 * DAY; p++; break;
		case 'y': mul = 365 * DAY; p++; break;
		default: return TSR_INVALID;
		}
		if (v > (INT64_MAX - total) / mul)
			return TSR_INVALID;
		total += v * mul;
		while (isspace((unsigned char)*p))
			p++;
	}
	*out = total;
	return TSR_OK;
}

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static char *trim_dup(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

static tsr_rc parse_list(const char *s, struct strlist *out)
{
	struct strlist l = { 0 };
	const char *p = s;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		char *item = trim_dup(p, n);
		if (!item)
			goto oom;
		if (*item) {
			char **v = realloc(l.v, (l.n + 1) * sizeof(*v));
			if (!v) {
				free(item);
				goto oom;
			}
			l.v = v;
			l.v[l.n++] = item;
		} else {
			free(item);
		}
		if (!c)
			break;
		p = c + 1;
	}
	strlist_free(out);
	*out = l;
	return TSR_OK;
oom:
	strlist_free(&l);
	return TSR_INTERNAL;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *yes[] = { "true", "yes", "on", "1" }, *no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static bool parse_addr(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s)
		return false;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	return !errno && *end == '\0' && colon[1] && port >= 0 && port <= 65535;
}

static bool enum_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *p = choices;
	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

/*
 * Set key k in the struct at base from text v. On a bad value write the reason
 * into why and return TSR_INVALID.
 */
static tsr_rc set_value(const struct cfg_key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *field = (char *)base + k->off;
	switch (k->type) {
	case T_STR:
	case T_PATH:
	case T_ENUM: {
		if (k->type == T_ENUM && !enum_ok(k->choices, v)) {
			snprintf(why, whylen, "expected one of %s", k->choices);
			return TSR_INVALID;
		}
		char *d = strdup(v);
		if (!d)
			return TSR_INTERNAL;
		char **slot = (char **)(void *)field;
		if (*slot && k->secret)
			OPENSSL_cleanse(*slot, strlen(*slot));
		free(*slot);
		*slot = *d ? d : NULL;
		if (!*d)
			free(d);
		return TSR_OK;
	}
	case T_ADDR: {
		if (*v && !parse_addr(v)) {
			snprintf(why, whylen, "expected HOST:PORT");
			return TSR_INVALID;
		}
		char *d = *v ? strdup(v) : NULL;
		if (*v && !d)
			return TSR_INTERNAL;
		char **slot = (char **)(void *)field;
		free(*slot);
		*slot = d;
		return TSR_OK;
	}
	case T_BOOL:
		if (!parse_bool(v, (bool *)(void *)field)) {
			snprintf(why, whylen, "expected true or false");
			return TSR_INVALID;
		}
		return TSR_OK;
	case T_INT: {
		char *end;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (errno || end == v || *end || (k->max && (n < k->min || n > k->max))) {
			snprintf(why, whylen, "expected an integer from %lld to %lld", (long long)k->min, (long long)k->max);
			return TSR_INVALID;
		}
		*(int64_t *)(void *)field = n;
		return TSR_OK;
	}
	case T_RATIO: {
		char *end;
		errno = 0;
		double d = strtod(v, &end);
		if (errno || end == v || *end || !(d >= 0.0 && d <= 1.0)) {
			snprintf(why, whylen, "expected a number from 0 to 1");
			return TSR_INVALID;
		}
		*(double *)(void *)field = d;
		return TSR_OK;
	}
	case T_DURATION: {
		int64_t secs;
		if (config_parse_duration(v, &secs) != TSR_OK) {
			snprintf(why, whylen, "expected a duration like 90s, 15m, 12h, 30d");
			return TSR_INVALID;
		}
		if (k->max && (secs < k->min || secs > k->max)) {
			snprintf(why, whylen, "expected a duration from %llds to %llds", (long long)k->min,
				 (long long)k->max);
			return TSR_INVALID;
		}
		*(int64_t *)(void *)field = secs;
		return TSR_OK;
	}
	case T_LIST:
		return parse_list(v, (struct strlist *)(void *)field);
	}
	return TSR_INTERNAL;
}

static void free_value(const struct cfg_key *k, void *base)
{
	char *field = (char *)base + k->off;
	switch (k->type) {
	case T_STR:
	case T_PATH:
	case T_ENUM:
	case T_ADDR: {
		char **slot = (char **)(void *)field;
		if (*slot && k->secret)
			OPENSSL_cleanse(*slot, strlen(*slot));
		free(*slot);
		*slot = NULL;
		break;
	}
	case T_LIST:
		strlist_free((struct strlist *)(void *)field);
		break;
	default:
		break;
	}
}

/* ---------- loading ---------- */

struct load_ctx {
	struct config *cfg;
	const char *path;
	FILE *in;
	FILE *err;
	int line;
	bool line_continues;        /* the last read did not end its line */
	bool section_bad;           /* current section is unknown (already reported) */
	int errors;
	bool seen[N_KEYS];          /* global keys set by the file, for duplicates */
	unsigned char *useen;       /* per upstream, per key */
};

static bool section_known(const char *name)
{
	if (strncmp(name, "upstream.", 9) == 0)
		return true; /* the name itself is checked by the handler */
	for (size_t i = 0; i < N_SECTIONS; i++)
		if (strcmp(name, sections[i]) == 0)
			return true;
	return false;
}

static void errf(struct load_ctx *ctx, const char *fmt, ...) TSR_PRINTF(2, 3);

/*
 * inih reads through this. Besides counting lines it checks section headers
 * as they are read, so an unknown section is reported at its own line (and
 * once), even when it has no keys.
 */
static char *reader(char *str, int num, void *stream)
{
	struct load_ctx *ctx = stream;
	char *r = fgets(str, num, ctx->in);
	if (r) {
		size_t n = strlen(r);
		/* a line longer than the buffer arrives in pieces: count its first piece only */
		bool starts_line = !ctx->line_continues;
		if (starts_line)
			ctx->line++;
		ctx->line_continues = !(n > 0 && r[n - 1] == '\n');
		const char *p = r;
		while (starts_line && (*p == ' ' || *p == '\t'))
			p++;
		if (starts_line && *p == '[') {
			const char *end = strchr(p, ']');
			if (end) {
				char name[128];
				size_t len = (size_t)(end - p - 1);
				snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : sizeof(name) - 1), p + 1);
				ctx->section_bad = !section_known(name);
				if (ctx->section_bad)
					errf(ctx, "unknown section [%s]", name);
			}
		}
	}
	return r;
}

static void errf(struct load_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(ctx->err, "%s:%d: ", ctx->path, ctx->line);
	vfprintf(ctx->err, fmt, ap);
	fputc('\n', ctx->err);
	va_end(ap);
	ctx->errors++;
}

static bool valid_upstream_name(const char *s)
{
	if (!*s || strlen(s) > 63)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_'))
			return false;
	return true;
}

static tsr_rc apply_defaults(const char *section, void *base)
{
	char why[160];
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(keys[i].section, section) != 0 || !keys[i].def)
			continue;
		if (set_value(&keys[i], base, keys[i].def, why, sizeof(why)) != TSR_OK)
			return TSR_INTERNAL; /* a default that does not parse is a bug */
	}
	return TSR_OK;
}

static struct cfg_upstream *upstream_get(struct load_ctx *ctx, const char *name)
{
	struct config *c = ctx->cfg;
	for (size_t i = 0; i < c->n_upstreams; i++)
		if (strcmp(c->upstreams[i].name, name) == 0)
			return &c->upstreams[i];
	struct cfg_upstream *u = realloc(c->upstreams, (c->n_upstreams + 1) * sizeof(*u));
	if (!u)
		return NULL;
	c->upstreams = u;
	unsigned char *us = realloc(ctx->useen, (c->n_upstreams + 1) * N_KEYS);
	if (!us)
		return NULL;
	ctx->useen = us;
	memset(ctx->useen + c->n_upstreams * N_KEYS, 0, N_KEYS);
	u = &c->upstreams[c->n_upstreams];
	memset(u, 0, sizeof(*u));
	u->name = strdup(name);
	if (!u->name)
		return NULL;
	u->line = ctx->line;
	c->n_upstreams++;
	if (apply_defaults("upstream.*", u) != TSR_OK)
		return NULL;
	return u;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	const char *ksec = section;
	void *base = ctx->cfg;
	unsigned char *seen = NULL;
	size_t sec_index = N_SECTIONS;

	if (strncmp(section, "upstream.", 9) == 0) {
		if (!valid_upstream_name(section + 9)) {
			errf(ctx, "bad upstream name in [%s]: use letters, digits, '-' and '_'", section);
			return 1;
		}
		struct cfg_upstream *u = upstream_get(ctx, section + 9);
		if (!u) {
			errf(ctx, "out of memory");
			return 0;
		}
		ksec = "upstream.*";
		base = u;
		seen = ctx->useen + (size_t)(u - ctx->cfg->upstreams) * N_KEYS;
	} else {
		for (size_t i = 0; i < N_SECTIONS; i++)
			if (strcmp(section, sections[i]) == 0)
				sec_index = i;
		if (sec_index == N_SECTIONS || ctx->section_bad)
			return 1; /* reported by the reader at the section's own line */
		ctx->cfg->sections_seen[sec_index] = true;
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &keys[i];
		if (strcmp(k->section, ksec) != 0 || strcmp(k->key, name) != 0)
			continue;
		bool *dup = seen ? (bool *)(void *)&seen[i] : &ctx->seen[i];
		if (*dup) {
			errf(ctx, "duplicate key '%s' in [%s]", name, section);
			return 1;
		}
		*dup = true;
		char why[160];
		tsr_rc rc = set_value(k, base, value, why, sizeof(why));
		if (rc == TSR_INVALID) {
			if (k->secret)
				errf(ctx, "bad value for '%s' in [%s]: %s", name, section, why);
			else
				errf(ctx, "bad value for '%s' in [%s]: %s, got '%s'", name, section, why, value);
		} else if (rc != TSR_OK) {
			errf(ctx, "out of memory");
			return 0;
		}
		return 1;
	}
	errf(ctx, "unknown key '%s' in [%s]", name, section);
	return 1;
}

static void fileerr(struct load_ctx *ctx, const char *fmt, ...) TSR_PRINTF(2, 3);
static void fileerr(struct load_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(ctx->err, "%s: ", ctx->path);
	vfprintf(ctx->err, fmt, ap);
	fputc('\n', ctx->err);
	va_end(ap);
	ctx->errors++;
}

/* Whole-file checks that no single line can make. */
static void check_whole(struct load_ctx *ctx, bool dev)
{
	struct config *c = ctx->cfg;
	if (!dev && !c->database.url && !c->database.url_file) {
		if (!c->sections_seen[1])
			fileerr(ctx, "missing required section [database] (needed without --dev)");
		else
			fileerr(ctx, "missing required key 'url' (or 'url_file') in [database] (needed without --dev)");
	}
	if (c->database.url && c->database.url_file)
		fileerr(ctx, "both 'url' and 'url_file' set in [database]: keep one");
	if (c->ldap.bind_password && c->ldap.bind_password_file)
		fileerr(ctx, "both 'bind_password' and 'bind_password_file' set in [ldap]: keep one");
	if (c->tokens.max_ttl < c->tokens.default_ttl)
		fileerr(ctx, "'max_ttl' in [tokens] is shorter than 'default_ttl'");
	if (c->sections_seen[4] && !c->ldap.uri)
		fileerr(ctx, "missing required key 'uri' in [ldap]");
	for (size_t i = 0; i < c->n_upstreams; i++) {
		struct cfg_upstream *u = &c->upstreams[i];
		if (!u->kind_s)
			fprintf(ctx->err, "%s:%d: missing required key 'kind' in [upstream.%s]\n", ctx->path, u->line,
				u->name), ctx->errors++;
		if (!u->base_url)
			fprintf(ctx->err, "%s:%d: missing required key 'base_url' in [upstream.%s]\n", ctx->path,
				u->line, u->name), ctx->errors++;
		if (u->provider && strcmp(u->provider, "openai-admin") == 0 &&
		    (!u->admin_key_file || !u->project_id || (u->kind_s && strcmp(u->kind_s, "openai") != 0)))
			fprintf(ctx->err, "%s:%d: [upstream.%s] provider = openai-admin needs kind = openai, "
				"admin_key_file and project_id\n", ctx->path, u->line, u->name), ctx->errors++;
	}
}

tsr_rc config_load(const char *path, bool dev, struct config **out, FILE *err)
{
	tsr_rc rc = TSR_INTERNAL;
	struct load_ctx ctx = { 0 };
	struct config *c = calloc(1, sizeof(*c));
	if (!c)
		return TSR_INTERNAL;
	ctx.cfg = c;
	ctx.err = err;
	ctx.path = path ? path : "(defaults)";
	for (size_t i = 0; i < N_SECTIONS; i++)
		if (apply_defaults(sections[i], c) != TSR_OK)
			goto out;
	if (path) {
		c->path = strdup(path);
		if (!c->path)
			goto out;
		ctx.in = fopen(path, "r");
		if (!ctx.in) {
			fprintf(err, "%s: cannot open: %s\n", path, strerror(errno));
			rc = TSR_INVALID;
			goto out;
		}
		/* Exact line numbers: no continuation lines; long lines allowed. */
		ini_allow_multiline = false;
		ini_stop_on_first_error = false;
		ini_allow_inline_comments = true;
		int r = ini_parse_stream(reader, &ctx, handler, &ctx);
		if (r > 0 && ctx.errors == 0) {
			fprintf(err, "%s:%d: syntax error (expected [section] or key = value)\n", path, r);
			ctx.errors++;
		} else if (r < 0) {
			fprintf(err, "%s: cannot parse: %s\n", path, r == -2 ? "out of memory" : "read error");
			ctx.errors++;
		}
	}
	check_whole(&ctx, dev);
	if (ctx.errors) {
		rc = TSR_INVALID;
		goto out;
	}
	*out = c;
	c = NULL;
	rc = TSR_OK;
out:
	if (ctx.in)
		fclose(ctx.in);
	free(ctx.useen);
	config_free(c);
	return rc;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, "upstream.*") != 0)
			free_value(&keys[i], c);
	for (size_t u = 0; u < c->n_upstreams; u++) {
		for (size_t i = 0; i < N_KEYS; i++)
			if (strcmp(keys[i].section, "upstream.*") == 0)
				free_value(&keys[i], &c->upstreams[u]);
		free(c->upstreams[u].name);
	}
	free(c->upstreams);
	free(c->path);
	free(c);
}

void config_dump_keys(FILE *f)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &keys[i];
		fprintf(f, "%s %s %s %s%s%s\n", strcmp(k->section, "upstream.*") == 0 ? "upstream.NAME" : k->section,
			k->key, type_names[k->type], k->def ? k->def : "-", k->secret ? " secret" : "",
			k->reloadable ? " reloadable" : "");
	}
}

tsr_rc config_secret(const char *inline_value, const char *file, char **out)
{
	if (file) {
		FILE *f = fopen(file, "r");
		if (!f)
			return TSR_NOT_FOUND;
		char buf[8192];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		bool more = !feof(f);
		fclose(f);
		if (more) {
			OPENSSL_cleanse(buf, sizeof(buf));
			return TSR_TOO_LARGE;
		}
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		buf[n] = '\0';
		*out = strdup(buf);
		OPENSSL_cleanse(buf, sizeof(buf));
		return *out ? TSR_OK : TSR_INTERNAL;
	}
	if (inline_value) {
		*out = strdup(inline_value);
		return *out ? TSR_OK : TSR_INTERNAL;
	}
	return TSR_NOT_FOUND;
}

void secret_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}
