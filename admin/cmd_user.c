/*
 * cmd_user.c — `tessera user …` and `tessera tokens …`: people and their
 * credentials (admin and security roles).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "--name VALUE" among argv[1..]; *used marks consumed slots. */
static const char *opt(int argc, char **argv, const char *name, bool *used)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0) {
			used[i] = used[i + 1] = true;
			return argv[i + 1];
		}
	return NULL;
}

/* The single positional argument left, or NULL; 2 (usage) via *bad if there are more or unknown flags. */
static const char *positional(int argc, char **argv, const bool *used, const char *cmd, int *bad)
{
	const char *pos = NULL;
	for (int i = 1; i < argc; i++) {
		if (used[i])
			continue;
		if (argv[i][0] == '-' || pos) {
			fprintf(stderr, "tessera %s: unexpected argument '%s'\n", cmd, argv[i]);
			*bad = 2;
			return NULL;
		}
		pos = argv[i];
	}
	return pos;
}

static char *user_path(const char *user, const char *suffix)
{
	char *e = client_escape(user);
	if (!e)
		return NULL;
	size_t n = strlen(e) + strlen(suffix) + 32;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "/admin/v1/users/%s%s", e, suffix);
	free(e);
	return p;
}

static const char *s_or(json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v && *v ? v : dflt;
}

static int cmd_user_list(struct client *c, int argc, char **argv)
{
	bool used[64] = { 0 };
	if (argc > 64)
		return 2;
	const char *q = opt(argc, argv, "--query", used);
	int bad = 0;
	if (positional(argc, argv, used, "user list", &bad) || bad) {
		if (!bad)
			fprintf(stderr, "tessera user list: unexpected argument\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char path[512] = "/admin/v1/users";
	if (q) {
		char *e = client_escape(q);
		snprintf(path, sizeof(path), "/admin/v1/users?q=%s", e ? e : "");
		free(e);
	}
	json_t *reply;
	if ((r = cli_call(c, "user list", "GET", path, NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
	} else {
		printf("%-24s %-8s %-12s %-20s %s\n", "USER", "ACTIVE", "SOURCES", "ROLES", "REPOS");
		size_t i;
		json_t *u;
		json_array_foreach (json_object_get(reply, "users"), i, u)
			printf("%-24s %-8s %-12s %-20s %lld\n", s_or(u, "user", "?"),
			       json_is_true(json_object_get(u, "active")) ? "yes" : "no", s_or(u, "sources", "-"),
			       s_or(u, "roles", "-"), (long long)json_integer_value(json_object_get(u, "repos")));
	}
	json_decref(reply);
	return 0;
}

static int cmd_user_show(struct client *c, int argc, char **argv)
{
	bool used[64] = { 0 };
	int bad = 0;
	const char *user = argc <= 64 ? positional(argc, argv, used, "user show", &bad) : NULL;
	if (bad || !user) {
		if (!bad)
			fprintf(stderr, "Usage: tessera user show USER\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char *path = user_path(user, "");
	json_t *reply;
	r = path ? cli_call(c, "user show", "GET", path, NULL, &reply) : 1;
	free(path);
	if (r)
		return r;
	if (c->json) {
		cli_print_json(reply);
	} else {
		printf("user:        %s\n", s_or(reply, "user", "?"));
		printf("name:        %s\n", s_or(reply, "display_name", "-"));
		printf("email:       %s\n", s_or(reply, "email", "-"));
		printf("repo login:  %s\n", s_or(reply, "repo_login", "-"));
		printf("sources:     %s\n", s_or(reply, "sources", "-"));
		printf("roles:       %s\n", s_or(reply, "roles", "-"));
		bool active = json_is_true(json_object_get(reply, "active"));
		printf("active:      %s\n", active ? "yes" : "no");
		if (!active)
			printf("deactivated: %s by %s (%s)\n", s_or(reply, "deactivated_at", "?"),
			       s_or(reply, "deactivated_by", "?"), s_or(reply, "deactivated_reason", ""));
		printf("repos:       %lld\n", (long long)json_integer_value(json_object_get(reply, "repos")));
		json_t *creds = json_object_get(reply, "credentials");
		printf("credentials: %zu live\n", json_array_size(creds));
		size_t i;
		json_t *cr;
		json_array_foreach (creds, i, cr)
			printf("  #%lld %-9s expires %-20s last used %-20s %s\n",
			       (long long)json_integer_value(json_object_get(cr, "id")), s_or(cr, "kind", "?"),
			       s_or(cr, "expires_at", "never"), s_or(cr, "last_used_at", "never"), s_or(cr, "repos", ""));
	}
	json_decref(reply);
	return 0;
}

static int cmd_user_offboard(struct client *c, int argc, char **argv)
{
	bool used[64] = { 0 };
	if (argc > 64)
		return 2;
	const char *reason = opt(argc, argv, "--reason", used);
	int bad = 0;
	const char *user = positional(argc, argv, used, "user offboard", &bad);
	if (bad || !user || !reason || !*reason) {
		if (!bad)
			fprintf(stderr, "Usage: tessera user offboard USER --reason TEXT\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char *path = user_path(user, "/offboard");
	json_t *reply, *body = json_pack("{s:s}", "reason", reason);
	r = path ? cli_call(c, "user offboard", "POST", path, body, &reply) : 1;
	free(path);
	json_decref(body);
	if (r)
		return r;
	if (c->json)
		cli_print_json(reply);
	else if (json_is_true(json_object_get(reply, "changed")))
		printf("offboarded %s: %lld credentials revoked, %lld role grants removed\n", s_or(reply, "user", user),
		       (long long)json_integer_value(json_object_get(reply, "credentials_revoked")),
		       (long long)json_integer_value(json_object_get(reply, "roles_removed")));
	else
		printf("%s was already offboarded: nothing to revoke\n", s_or(reply, "user", user));
	json_decref(reply);
	return 0;
}

static int cmd_user_reinstate(struct client *c, int argc, char **argv)
{
	bool used[64] = { 0 };
	if (argc > 64)
		return 2;
	const char *reason = opt(argc, argv, "--reason", used);
	int bad = 0;
	const char *user = positional(argc, argv, used, "user reinstate", &bad);
	if (bad || !user) {
		if (!bad)
			fprintf(stderr, "Usage: tessera user reinstate USER [--reason TEXT]\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char *path = user_path(user, "/reinstate");
	json_t *reply, *body = json_pack("{s:s}", "reason", reason ? reason : "");
	r = path ? cli_call(c, "user reinstate", "POST", path, body, &reply) : 1;
	free(path);
	json_decref(body);
	if (r)
		return r;
	if (c->json)
		cli_print_json(reply);
	else
		printf(json_is_true(json_object_get(reply, "changed")) ? "reinstated %s: they may log in again "
									 "(old credentials stay revoked)\n"
								       : "%s is already active\n",
		       s_or(reply, "user", user));
	json_decref(reply);
	return 0;
}

static int cmd_tokens_list(struct client *c, int argc, char **argv)
{
	bool used[64] = { 0 };
	if (argc > 64)
		return 2;
	const char *user = opt(argc, argv, "--user", used);
	int bad = 0;
	if (positional(argc, argv, used, "tokens list", &bad) || bad) {
		if (!bad)
			fprintf(stderr, "Usage: tessera tokens list [--user U]\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char path[512] = "/admin/v1/tokens";
	if (user) {
		char *e = client_escape(user);
		snprintf(path, sizeof(path), "/admin/v1/tokens?user=%s", e ? e : "");
		free(e);
	}
	json_t *reply;
	if ((r = cli_call(c, "tokens list", "GET", path, NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
	} else {
		printf("%-8s %-10s %-20s %-21s %-21s %s\n", "ID", "KIND", "USER", "EXPIRES", "LAST USED", "REPOS");
		size_t i;
		json_t *t;
		json_array_foreach (json_object_get(reply, "tokens"), i, t)
			printf("%-8lld %-10s %-20s %-21s %-21s %s\n", (long long)json_integer_value(json_object_get(t, "id")),
			       s_or(t, "kind", "?"), s_or(t, "user", "?"), s_or(t, "expires_at", "never"),
			       s_or(t, "last_used_at", "never"), s_or(t, "repos", ""));
	}
	json_decref(reply);
	return 0;
}

static int cmd_tokens_revoke(struct client *c, int argc, char **argv)
{
	bool used[64] = { 0 };
	if (argc > 64)
		return 2;
	const char *user = opt(argc, argv, "--user", used);
	int bad = 0;
	const char *id = positional(argc, argv, used, "tokens revoke", &bad);
	if (bad || (!id == !user)) {
		if (!bad)
			fprintf(stderr, "Usage: tessera tokens revoke ID | tessera tokens revoke --user U\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char *path;
	if (user) {
		path = user_path(user, "/revoke-tokens");
	} else {
		if (strspn(id, "0123456789") != strlen(id)) {
			fprintf(stderr, "tessera tokens revoke: ID must be a number, got '%s'\n", id);
			return 2;
		}
		path = malloc(64 + strlen(id));
		if (path)
			snprintf(path, 64 + strlen(id), "/admin/v1/tokens/%s/revoke", id);
	}
	json_t *reply;
	r = path ? cli_call(c, "tokens revoke", "POST", path, NULL, &reply) : 1;
	free(path);
	if (r)
		return r;
	if (c->json)
		cli_print_json(reply);
	else
		printf("revoked %lld credential(s)\n", (long long)json_integer_value(json_object_get(reply, "revoked")));
	json_decref(reply);
	return 0;
}

static const struct command user_cmds[] = {
	{ "user list", "tessera user list [--query Q]", "list users with their sources, roles and repositories",
	  cmd_user_list },
	{ "user show", "tessera user show USER", "show one user, their roles and live credentials", cmd_user_show },
	{ "user offboard", "tessera user offboard USER --reason TEXT",
	  "deactivate a user and revoke every credential now, on every replica", cmd_user_offboard },
	{ "user reinstate", "tessera user reinstate USER [--reason TEXT]",
	  "let an offboarded user log in again (old credentials stay revoked)", cmd_user_reinstate },
	{ "tokens list", "tessera tokens list [--user U]", "list live sessions and access tokens", cmd_tokens_list },
	{ "tokens revoke", "tessera tokens revoke ID | --user U", "revoke one credential, or all of a user's",
	  cmd_tokens_revoke },
};
COMMAND_GROUP(user_commands, user_cmds);
