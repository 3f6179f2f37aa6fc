/*
 * config.h — tessera.conf: one table of keys, parsed once into typed fields.
 *
 * The table in config.c (name, type, default, reloadable, secret, doc) is the
 * single description of every key: the parser, `tesserad --check-config`,
 * `tesserad --dump-config` and the docs test all read it. Values are parsed
 * into the typed fields below at load; nothing re-parses strings later.
 * Errors name the file, the line and the key, e.g.
 *     tessera.conf:12: unknown key 'prot' in [server]
 * A secret's value never appears in an error or a log.
 * A struct config is immutable once loaded; share it read-only between threads.
 */
#ifndef TSR_CONFIG_H
#define TSR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "status.h"

struct strlist {
	char **v;
	size_t n;
};

enum upstream_kind { UPSTREAM_OPENAI, UPSTREAM_ANTHROPIC, UPSTREAM_AZURE_OPENAI, UPSTREAM_OPENAI_COMPATIBLE };

struct cfg_upstream {
	char *name;
	char *kind_s;
	char *base_url;
	char *key_file;
	struct strlist models;
	char *region;
	bool baa;
	bool on_prem;
	int64_t rotation_period; /* seconds */
	int64_t grace_period;
	char *ca_file;
	bool tls_verify;
	char *provider;          /* none | openai-admin: who creates keys (broker/rotation_provider.c) */
	char *admin_key_file, *admin_url, *project_id;
	int line;                /* where the section starts, for errors */
};

struct config {
	char *path; /* NULL when no file was read */
	struct {
		char *listen, *admin_listen, *state_dir, *public_url, *master_key_file, *log_level;
		char *previous_master_key_file; /* master-key rotation (broker/rotation.c) */
		int64_t workers;
		int64_t shutdown_timeout;
	} server;
	struct {
		char *url, *url_file, *migrations_dir;
		int64_t pool_size;
		int64_t connect_timeout;
	} database;
	struct {
		int64_t session_ttl, default_ttl, max_ttl;
	} tokens;
	struct {
		struct strlist admin, security, developer;
	} roles;
	struct {
		char *uri, *ca_file, *bind_dn, *bind_password, *bind_password_file;
		char *user_base, *user_filter, *group_base, *group_filter;
		char *login_attr, *id_attr, *mail_attr, *name_attr, *repo_login_attr, *disabled_filter;
		bool starttls;
		bool member_of;
		int64_t sync_interval, timeout, page_size;
		double max_deactivate_ratio;
	} ldap;
	struct {
		bool enabled;
		char *token_file;
		int64_t token_overlap;
		char *profile_source;   /* scim | ldap: whose name attributes win for people in both */
	} scim;
	struct {
		char *api_url, *token_file, *app_id, *app_key_file, *webhook_secret_file;
		struct strlist orgs, topic_classifications;
		int64_t sync_interval;
		int64_t webhook_secret_overlap; /* seconds a rotated-out secret still verifies */
		char *webhook_hook_id;          /* organisation webhook tesserad pushes new secrets to: ID or ORG:ID */
		int64_t webhook_secret_rotation_period; /* seconds; 0: no scheduled rotation */
	} github;
	struct cfg_upstream *upstreams;
	size_t n_upstreams;
	struct {
		struct strlist classified_upstreams, allowed_regions, scanner_action;
		struct strlist patterns;   /* name:TEMPLATE scanner rules (MRN, claim ids) */
		struct strlist model_access; /* MODEL_GLOB:role|group|any|none */
	} policy;
	struct {
		int64_t max_body;          /* bytes */
		int64_t connect_timeout, read_timeout; /* seconds */
		int64_t rate_limit;        /* requests per minute per user, all replicas; 0 = off */
		int64_t daily_token_budget; /* tokens per user per UTC day; 0 = off */
	} gateway;
	struct {
		char *spool_dir;
		int64_t seal_interval, retention;
		char *durability;          /* postgres | journal */
		int64_t journal_max_bytes; /* unshipped journal bytes before failing closed */
	} audit;
	struct {
		char *webhook_secret_file;
		int64_t replay_window;
		int64_t webhook_secret_overlap; /* seconds a rotated-out secret still verifies */
	} hr;
	bool sections_seen[16]; /* indexed by the section table in config.c */
};

/* Load defaults then FILE (may be NULL: defaults only). dev relaxes required
 * sections. Errors are written to err (one per line, each naming file:line).
 * On success *out is set; caller frees with config_free(). */
tsr_rc config_load(const char *path, bool dev, struct config **out, FILE *err) TSR_WUR;
/* config_free(NULL) is a no-op; inline secrets are wiped. */
void config_free(struct config *c);
/* Print "section key type default" per key (upstream keys as upstream.NAME). */
void config_dump_keys(FILE *f);

/* Parse "15m", "12h", "1h30m", "30d", "7y", "45" (seconds) into seconds. */
tsr_rc config_parse_duration(const char *s, int64_t *out) TSR_WUR;

/*
 * Read a secret that may be inline or in a file: if file is set, its contents
 * (trailing newlines stripped) win; else inline; else TSR_NOT_FOUND.
 * Caller frees *out with secret_free().
 */
tsr_rc config_secret(const char *inline_value, const char *file, char **out) TSR_WUR;
void secret_free(char *s);

#endif
