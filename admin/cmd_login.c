/*
 * cmd_login.c — the developer's commands: `tessera login`, `logout`,
 * `token`.
 *
 * Files (directory ~/.config/tessera, mode 0700; every file 0600, written
 * to a temporary name and renamed so a reader never sees half a token):
 *   session              the session token from `tessera login`
 *   tokens/OWNER__NAME   the cached access token for one repository, as JSON
 *                        {token, repo, models, expires} (expires: Unix time)
 * `tessera token` prints the cached token until 2 minutes before it
 * expires, so it can serve as Claude Code's apiKeyHelper or as
 * OPENAI_API_KEY=$(tessera token).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "../lib/config.h"

#define REUSE_MARGIN_S 120

static int write_private(const char *path, const char *data)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	size_t n = strlen(data);
	bool ok = write(fd, data, n) == (ssize_t)n && fsync(fd) == 0;
	close(fd);
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int save_session(json_t *reply)
{
	const char *tok = json_string_value(json_object_get(reply, "token"));
	char *path = client_config_path("session");
	if (!tok || !path || write_private(path, tok) != 0) {
		fprintf(stderr, "tessera login: cannot save the session to %s\n", path ? path : "~/.config/tessera");
		free(path);
		return 1;
	}
	free(path);
	return 0;
}

/* Read a password: from the terminal without echo, else one line of stdin. */
static char *read_password(const char *user)
{
	char buf[1024];
	FILE *tty = fopen("/dev/tty", "r+");
	bool echo_off = false;
	struct termios old;
	FILE *in = stdin;
	if (tty && isatty(fileno(tty)) && isatty(STDIN_FILENO)) {
		fprintf(tty, "LDAP password for %s: ", user);
		fflush(tty);
		if (tcgetattr(fileno(tty), &old) == 0) {
			struct termios quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
		}
		in = tty;
	}
	char *line = fgets(buf, sizeof(buf), in);
	if (echo_off) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
		fputc('\n', tty);
	}
	if (tty)
		fclose(tty);
	if (!line)
		return NULL;
	buf[strcspn(buf, "\r\n")] = '\0';
	char *pw = strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return pw;
}

/* A GitHub token from GITHUB_TOKEN, else `gh auth token`. */
static char *github_token(void)
{
	const char *env = getenv("GITHUB_TOKEN");
	if (env && *env)
		return strdup(env);
	FILE *p = popen("gh auth token 2>/dev/null", "r");
	if (!p)
		return NULL;
	char buf[512];
	char *line = fgets(buf, sizeof(buf), p);
	pclose(p);
	if (!line)
		return NULL;
	buf[strcspn(buf, "\r\n")] = '\0';
	char *t = *buf ? strdup(buf) : NULL;
	OPENSSL_cleanse(buf, sizeof(buf));
	return t;
}

static int cmd_login(struct client *c, int argc, char **argv)
{
	const char *ldap_user = NULL;
	bool github = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ldap") == 0 && i + 1 < argc)
			ldap_user = argv[++i];
		else if (strcmp(argv[i], "--github") == 0)
			github = true;
		else {
			fprintf(stderr, "tessera login: unexpected argument '%s'\nUsage: tessera login --ldap USER | --github\n",
				argv[i]);
			return 2;
		}
	}
	if (!!ldap_user == github) {
		fprintf(stderr, "Usage: tessera login --ldap USER | --github\n");
		return 2;
	}
	json_t *body, *reply = NULL;
	int r;
	if (ldap_user) {
		char *pw = read_password(ldap_user);
		if (!pw) {
			fprintf(stderr, "tessera login: no password given\n");
			return 2;
		}
		body = json_pack("{s:s,s:s}", "user", ldap_user, "password", pw);
		OPENSSL_cleanse(pw, strlen(pw));
		free(pw);
		r = cli_call(c, "login", "POST", "/auth/v1/login/ldap", body, &reply);
	} else {
		char *t = github_token();
		if (!t) {
			fprintf(stderr, "tessera login: no GitHub token: set GITHUB_TOKEN or log in with `gh auth login`\n");
			return 3;
		}
		body = json_pack("{s:s}", "token", t);
		OPENSSL_cleanse(t, strlen(t));
		free(t);
		r = cli_call(c, "login", "POST", "/auth/v1/login/github", body, &reply);
	}
	json_decref(body); /* jansson frees the password copy; it never reaches a log */
	if (r)
		return r;
	r = save_session(reply);
	if (!r && !c->json)
		fprintf(stderr, "logged in as %s until %s\n", json_string_value(json_object_get(reply, "user")),
			json_string_value(json_object_get(reply, "expires_at")));
	json_decref(reply);
	return r;
}

static int cmd_logout(struct client *c, int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "Usage: tessera logout\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *reply;
	r = cli_call(c, "logout", "POST", "/auth/v1/logout", NULL, &reply);
	json_decref(reply);
	/* forget local copies whatever the server said: they are dead or about to be */
	char *sess = client_config_path("session");
	if (sess)
		unlink(sess);
	free(sess);
	char *dir = client_config_path("tokens");
	DIR *d = dir ? opendir(dir) : NULL;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char p[4400];
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	free(dir);
	if (!r && !c->json)
		fprintf(stderr, "logged out\n");
	return r;
}

/* OWNER/NAME from a git remote URL (https, ssh, scp-like); false if it has no such shape. */
static bool repo_from_url(const char *url, char *out, size_t n)
{
	char u[1024];
	snprintf(u, sizeof(u), "%s", url);
	u[strcspn(u, "\r\n")] = '\0';
	size_t len = strlen(u);
	if (len > 4 && strcmp(u + len - 4, ".git") == 0)
		u[len -= 4] = '\0';
	while (len && u[len - 1] == '/')
		u[--len] = '\0';
	char *name = strrchr(u, '/');
	if (!name)
		return false;
	*name++ = '\0';
	char *owner = strrchr(u, '/');
	char *colon = strrchr(u, ':');
	if (colon && (!owner || colon > owner))
		owner = colon;
	owner = owner ? owner + 1 : u;
	if (!*owner || !*name)
		return false;
	snprintf(out, n, "%s/%s", owner, name);
	return true;
}

static bool repo_from_git(char *out, size_t n)
{
	FILE *p = popen("git remote get-url origin 2>/dev/null", "r");
	if (!p)
		return false;
	char buf[1024];
	char *line = fgets(buf, sizeof(buf), p);
	int st = pclose(p);
	return line && st == 0 && repo_from_url(buf, out, n);
}

static char *cache_path(const char *repo)
{
	char leaf[300] = "tokens/";
	size_t o = strlen(leaf);
	for (const char *p = repo; *p && o + 3 < sizeof(leaf); p++) {
		if (*p == '/') {
			leaf[o++] = '_';
			leaf[o++] = '_';
		} else {
			bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
				  *p == '-' || *p == '.' || *p == '_';
			leaf[o++] = ok ? *p : '_';
		}
	}
	leaf[o] = '\0';
	return client_config_path(leaf);
}

static void print_token(struct client *c, const char *fmt, const char *tok, const char *repo, const char *expires_iso,
			long long expires)
{
	if (strcmp(fmt, "env") == 0) {
		printf("OPENAI_API_KEY=%s\nOPENAI_BASE_URL=%s/openai/v1\nANTHROPIC_AUTH_TOKEN=%s\nANTHROPIC_BASE_URL=%s/anthropic\n",
		       tok, c->url, tok, c->url);
	} else if (strcmp(fmt, "json") == 0) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:s}", "token", tok, "repo", repo, "expires", (json_int_t)expires,
				      "openai_base_url", "", "anthropic_base_url", "");
		char base[1100];
		snprintf(base, sizeof(base), "%s/openai/v1", c->url);
		json_object_set_new(j, "openai_base_url", json_string(base));
		snprintf(base, sizeof(base), "%s/anthropic", c->url);
		json_object_set_new(j, "anthropic_base_url", json_string(base));
		if (expires_iso)
			json_object_set_new(j, "expires_at", json_string(expires_iso));
		cli_print_json(j);
		json_decref(j);
	} else {
		printf("%s\n", tok);
	}
}

static int cmd_token(struct client *c, int argc, char **argv)
{
	const char *repo_arg = NULL, *ttl = NULL, *fmt = c->json ? "json" : "raw";
	const char *models[16];
	int nm = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--repo") == 0 && i + 1 < argc)
			repo_arg = argv[++i];
		else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc && nm < 16)
			models[nm++] = argv[++i];
		else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
			ttl = argv[++i];
		else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
			fmt = argv[++i];
		else {
			fprintf(stderr, "tessera token: unexpected argument '%s'\n"
					"Usage: tessera token [--repo OWNER/NAME] [--model M] [--ttl DUR] "
					"[--format raw|env|json]\n",
				argv[i]);
			return 2;
		}
	}
	if (strcmp(fmt, "raw") != 0 && strcmp(fmt, "env") != 0 && strcmp(fmt, "json") != 0) {
		fprintf(stderr, "tessera token: --format must be raw, env or json\n");
		return 2;
	}
	int64_t ttl_s = 0;
	if (ttl && config_parse_duration(ttl, &ttl_s) != TSR_OK) {
		fprintf(stderr, "tessera token: --ttl expects a duration like 15m or 1h, got '%s'\n", ttl);
		return 2;
	}
	char repo[512];
	if (repo_arg)
		snprintf(repo, sizeof(repo), "%s", repo_arg);
	else if (!repo_from_git(repo, sizeof(repo))) {
		fprintf(stderr, "tessera token: no --repo given and no git remote 'origin' here\n");
		return 2;
	}
	if (!strchr(repo, '/')) {
		fprintf(stderr, "tessera token: --repo expects OWNER/NAME, got '%s'\n", repo);
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;

	/* the cached token, if it was minted with the same models and is not about to expire */
	char *cpath = cache_path(repo);
	json_t *models_j = json_array();
	for (int i = 0; i < nm; i++)
		json_array_append_new(models_j, json_string(models[i]));
	if (cpath && !ttl) {
		json_error_t e;
		json_t *cached = json_load_file(cpath, 0, &e);
		const char *tok = json_string_value(json_object_get(cached, "token"));
		long long exp = json_integer_value(json_object_get(cached, "expires"));
		if (tok && exp - REUSE_MARGIN_S > (long long)time(NULL) &&
		    json_equal(json_object_get(cached, "models"), models_j)) {
			print_token(c, fmt, tok, repo, NULL, exp);
			json_decref(cached);
			json_decref(models_j);
			free(cpath);
			return 0;
		}
		json_decref(cached);
	}
	json_t *body = json_pack("{s:s,s:O}", "repo", repo, "models", models_j);
	if (ttl)
		json_object_set_new(body, "ttl", json_integer(ttl_s));
	json_t *reply;
	time_t asked = time(NULL);
	r = cli_call(c, "token", "POST", "/auth/v1/token", body, &reply);
	json_decref(body);
	if (r) {
		json_decref(models_j);
		free(cpath);
		return r;
	}
	const char *tok = json_string_value(json_object_get(reply, "token"));
	long long exp = (long long)asked + json_integer_value(json_object_get(reply, "ttl"));
	json_t *cache = json_pack("{s:s,s:s,s:O,s:I}", "token", tok ? tok : "", "repo", repo, "models", models_j,
				  "expires", (json_int_t)exp);
	char *text = cache ? json_dumps(cache, JSON_COMPACT) : NULL;
	if (!cpath || !text || write_private(cpath, text) != 0)
		fprintf(stderr, "tessera token: warning: cannot cache the token in %s\n", cpath ? cpath : "?");
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	json_decref(cache);
	print_token(c, fmt, tok ? tok : "", repo, json_string_value(json_object_get(reply, "expires_at")), exp);
	json_decref(reply);
	json_decref(models_j);
	free(cpath);
	return 0;
}

static const struct command login_cmds[] = {
	{ "login", "tessera login --ldap USER | --github",
	  "log in (LDAP password, or a GitHub token from GITHUB_TOKEN or gh) and keep a session", cmd_login },
	{ "logout", "tessera logout", "end the session and forget cached tokens", cmd_logout },
	{ "token", "tessera token [--repo OWNER/NAME] [--model M] [--ttl DUR] [--format raw|env|json]",
	  "print a short-lived access token for a repository (default: the git remote 'origin')", cmd_token },
};
COMMAND_GROUP(login_commands, login_cmds);
