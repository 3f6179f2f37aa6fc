/*
 * cmd_rotate.c — `tessera rotate ...`: secrets that get replaced.
 *
 * `rotate scim-token` asks tesserad for a new SCIM bearer token and prints
 * it once, alone on stdout, so it can go straight into the identity
 * provider's settings or a file (`tessera rotate scim-token > token`);
 * what happens to the previous token goes to stderr. The token is never
 * written anywhere else and is wiped from memory after printing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "cli.h"

static int cmd_rotate_scim(struct client *c, int argc, char **argv)
{
	const char *label = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
			label = argv[++i];
		} else if (strncmp(argv[i], "--label=", 8) == 0) {
			label = argv[i] + 8;
		} else {
			fprintf(stderr, "tessera rotate scim-token: unexpected argument '%s'\n"
					"Usage: tessera rotate scim-token [--label NAME]\n",
				argv[i]);
			return 2;
		}
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *body = label ? json_pack("{s:s}", "label", label) : json_object();
	json_t *reply = NULL;
	r = cli_call(c, "rotate scim-token", "POST", "/admin/v1/scim/token", body, &reply);
	json_decref(body);
	if (r)
		return r;
	json_t *tok = json_object_get(reply, "token");
	if (!json_is_string(tok)) {
		fprintf(stderr, "tessera rotate scim-token: the server's reply has no token\n");
		json_decref(reply);
		return 1;
	}
	if (c->json) {
		cli_print_json(reply);
	} else {
		printf("%s\n", json_string_value(tok));
		fflush(stdout);
		const char *prev = json_string_value(json_object_get(reply, "previous_tokens_expire_at"));
		fprintf(stderr, "new SCIM token #%lld (label %s) printed above; it is shown only once.\n",
			(long long)json_integer_value(json_object_get(reply, "id")),
			json_string_value(json_object_get(reply, "label")));
		if (prev)
			fprintf(stderr, "previous SCIM tokens keep working until %s.\n", prev);
		if (!json_is_true(json_object_get(reply, "scim_enabled")))
			fprintf(stderr, "note: SCIM is not enabled on the server ([scim] enabled = false).\n");
	}
	/* wipe the token held by the reply before freeing it */
	char *s = (char *)json_string_value(tok);
	OPENSSL_cleanse(s, strlen(s));
	json_decref(reply);
	return 0;
}

/*
 * Read a provider key from a regular file that only its owner can read
 * (at most 4 KiB; one trailing newline dropped) into buf. 0 or an exit code.
 */
static int read_key_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fprintf(stderr, "tessera rotate upstream: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "tessera rotate upstream: %s is not a regular file\n", path);
		close(fd);
		return 1;
	}
	if (st.st_mode & 077) {
		fprintf(stderr, "tessera rotate upstream: %s is readable by group or others; chmod 600 it first\n", path);
		close(fd);
		return 1;
	}
	size_t len = 0;
	for (;;) {
		ssize_t got = read(fd, buf + len, n - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
		if (len == n - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	if (len == n - 1) {
		OPENSSL_cleanse(buf, n);
		fprintf(stderr, "tessera rotate upstream: %s is too large for a provider key\n", path);
		return 1;
	}
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (!len) {
		fprintf(stderr, "tessera rotate upstream: %s is empty\n", path);
		return 1;
	}
	return 0;
}

/*
 * GET path every 100 ms, for at most 60 s, until done(reply, arg); after
 * 2 s without it, print `waiting` to stderr. 0 with *out the final reply,
 * or NULL when the time ran out; non-zero when a call failed.
 */
static int poll_until(struct client *c, const char *what, const char *path,
		      bool (*done)(json_t *reply, const void *arg), const void *arg, const char *waiting, json_t **out)
{
	*out = NULL;
	for (int polls = 0; polls < 600; polls++) {
		json_t *reply = NULL;
		int r = cli_call(c, what, "GET", path, NULL, &reply);
		if (r != 0)
			return r;
		if (done(reply, arg)) {
			*out = reply;
			return 0;
		}
		json_decref(reply);
		if (polls == 20)
			fprintf(stderr, "%s\n", waiting);
		usleep(100000);
	}
	return 0;
}

/* An attempt at or after *since (timestamps in one fixed UTC format compare as strings). */
static bool attempted_since(json_t *reply, const void *since)
{
	const char *at = json_string_value(json_object_get(reply, "last_attempt_at"));
	return at && strcmp(at, since) >= 0;
}

/*
 * `--now`: tesserad answered 202 with the request's time; its job creates
 * the key at the provider. Poll the rotation status until an attempt at or
 * after that time is reported (timestamps in one fixed UTC format compare
 * as strings), for at most 60 s. Takes reply.
 */
static int wait_provider_rotation(struct client *c, const char *name, const char *path, json_t *reply)
{
	char since[64];
	snprintf(since, sizeof(since), "%s", json_string_value(json_object_get(reply, "requested_at")) ?
		 json_string_value(json_object_get(reply, "requested_at")) : "");
	json_decref(reply);
	int r = poll_until(c, "rotate upstream", path, attempted_since, since,
			   "waiting for tesserad to create the new key at the provider...", &reply);
	if (r != 0)
		return r;
	if (!reply) {
		fprintf(stderr, "tessera rotate upstream: no outcome after 60 s; the request stays pending "
				"(tessera rotate upstream %s --now again to wait, or check tesserad's log)\n", name);
		return 1;
	}
	bool success = strcmp(json_string_value(json_object_get(reply, "last_outcome")) ?
			      json_string_value(json_object_get(reply, "last_outcome")) : "", "success") == 0;
	if (c->json) {
		cli_print_json(reply);
	} else if (success) {
		printf("upstream %s: key version %lld (fingerprint %s), created by the provider, is active for new "
		       "requests\n", name, (long long)json_integer_value(json_object_get(reply, "version")),
		       json_string_value(json_object_get(reply, "fingerprint")));
		printf("the previous version keeps serving requests in flight for the grace period, then is retired "
		       "and deleted at the provider\n");
	} else {
		const char *err = json_string_value(json_object_get(reply, "last_error"));
		const char *next = json_string_value(json_object_get(reply, "next_attempt_at"));
		fprintf(stderr, "tessera rotate upstream: rotating %s through its provider failed: %s\n"
				"the current key stays active; tesserad retries (attempt %lld, next at %s)\n",
			name, err ? err : "unknown error", (long long)json_integer_value(json_object_get(reply, "failures")),
			next ? next : "soon");
	}
	json_decref(reply);
	return success ? 0 : 1;
}

static int cmd_rotate_upstream(struct client *c, int argc, char **argv)
{
	const char *name = NULL, *file = NULL;
	bool now = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc) {
			file = argv[++i];
		} else if (strncmp(argv[i], "--key-file=", 11) == 0) {
			file = argv[i] + 11;
		} else if (strcmp(argv[i], "--now") == 0) {
			now = true;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			name = NULL;
			break;
		}
	}
	if (!name || (!file && !now) || (file && now)) {
		fprintf(stderr, "Usage: tessera rotate upstream NAME --key-file FILE\n"
				"       tessera rotate upstream NAME --now\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	static char key[4098];
	json_t *body;
	if (file) {
		if ((r = read_key_file(file, key, sizeof(key))) != 0)
			return r;
		body = json_pack("{s:s}", "key", key);
		OPENSSL_cleanse(key, sizeof(key));
	} else {
		body = json_pack("{s:b}", "now", 1);
	}
	if (!body)
		return 1;
	char *e = client_escape(name);
	char path[256];
	snprintf(path, sizeof(path), "/admin/v1/upstreams/%s/rotate", e ? e : "");
	free(e);
	json_t *reply = NULL;
	r = cli_call(c, "rotate upstream", "POST", path, body, &reply);
	json_t *jk = json_object_get(body, "key");
	if (json_is_string(jk))
		OPENSSL_cleanse((char *)json_string_value(jk), json_string_length(jk));
	json_decref(body);
	if (r)
		return r;
	if (now)
		return wait_provider_rotation(c, name, path, reply);
	if (c->json) {
		cli_print_json(reply);
	} else {
		printf("upstream %s: key version %lld (fingerprint %s) is active for new requests\n", name,
		       (long long)json_integer_value(json_object_get(reply, "version")),
		       json_string_value(json_object_get(reply, "fingerprint")));
		const char *ra = json_string_value(json_object_get(reply, "previous_retire_after"));
		if (ra)
			printf("previous version %lld keeps serving requests in flight until %s, then is retired\n",
			       (long long)json_integer_value(json_object_get(reply, "previous_version")), ra);
	}
	json_decref(reply);
	return 0;
}

/*
 * `rotate master-key --new-key-file F`: tesserad reads F itself (the key
 * never travels over HTTP), so F must be readable by tesserad at the same
 * path; the CLI sends the absolute path, then waits until every data key is
 * re-wrapped (unless --no-wait).
 */
static int cmd_rotate_master(struct client *c, int argc, char **argv)
{
	const char *file = NULL;
	bool wait = true;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--new-key-file") == 0 && i + 1 < argc) {
			file = argv[++i];
		} else if (strncmp(argv[i], "--new-key-file=", 15) == 0) {
			file = argv[i] + 15;
		} else if (strcmp(argv[i], "--no-wait") == 0) {
			wait = false;
		} else {
			file = NULL;
			break;
		}
	}
	if (!file) {
		fprintf(stderr, "Usage: tessera rotate master-key --new-key-file FILE [--no-wait]\n");
		return 2;
	}
	char abs[4096];
	if (!realpath(file, abs)) {
		fprintf(stderr, "tessera rotate master-key: %s: %s\n", file, strerror(errno));
		return 1;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *body = json_pack("{s:s}", "new_key_file", abs);
	json_t *reply = NULL;
	r = cli_call(c, "rotate master-key", "POST", "/admin/v1/rotate/master-key", body, &reply);
	json_decref(body);
	if (r)
		return r;
	for (int polls = 0; wait && !json_is_true(json_object_get(reply, "complete")); polls++) {
		if (polls % 20 == 0)
			fprintf(stderr, "re-wrapping data keys: %lld left\n",
				(long long)json_integer_value(json_object_get(reply, "rows_remaining")));
		usleep(100000);
		json_decref(reply);
		reply = NULL;
		if ((r = cli_call(c, "rotate master-key", "GET", "/admin/v1/rotate/master-key", NULL, &reply)) != 0)
			return r;
	}
	if (c->json) {
		cli_print_json(reply);
	} else if (json_is_true(json_object_get(reply, "complete"))) {
		printf("every data key is wrapped by master key %.16s...; the previous master key is no longer needed\n",
		       json_string_value(json_object_get(reply, "master_key_id")));
		long long other = (long long)json_integer_value(json_object_get(reply, "rows_under_unknown_keys"));
		if (other)
			printf("warning: %lld rows are wrapped by master keys tesserad does not hold\n", other);
	} else {
		printf("master key %.16s... adopted; %lld data keys left to re-wrap (tessera rotate master-key again to wait)\n",
		       json_string_value(json_object_get(reply, "master_key_id")),
		       (long long)json_integer_value(json_object_get(reply, "rows_remaining")));
	}
	json_decref(reply);
	return 0;
}

/*
 * `rotate webhook-secret NAME [--secret-file F] [--overlap DURATION]`: a new
 * secret for the HR or GitHub webhook. Without --secret-file tesserad
 * generates one (256 bits) and it is printed once, alone on stdout, to be
 * pasted into the HR system or GitHub; with it, the secret is read from F
 * (owner-only, like a key file) and never printed. The previous secret keeps
 * verifying for the overlap ([hr|github] webhook_secret_overlap by default).
 * With [github] webhook_hook_id set, a generated GitHub secret is not
 * printed: tesserad sets it at GitHub itself (wait_webhook_push()).
 */
static int read_webhook_secret(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	const char *why = NULL;
	size_t len = 0;
	if (fd < 0)
		why = strerror(errno);
	else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_mode & 077)
		why = "readable by group or others; chmod 600 it first";
	while (!why && len < n - 1) {
		ssize_t got = read(fd, buf + len, n - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	if (fd >= 0)
		close(fd);
	buf[why ? 0 : len] = '\0';
	if (!why && len == n - 1)
		why = "too large for a webhook secret";
	while (!why && len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (!why && !len)
		why = "empty";
	if (why) {
		OPENSSL_cleanse(buf, n);
		fprintf(stderr, "tessera rotate webhook-secret: %s: %s\n", path, why);
		return 1;
	}
	return 0;
}

/*
 * [github] webhook_hook_id is set: tesserad answered 202 and its job sets
 * the new secret at GitHub. Poll GET /admin/v1/webhook-secrets/github until
 * the attempt counter passes the one in reply, for at most 60 s. The secret
 * is never shown. Takes reply.
 */
/* The push attempt counter passed *before. */
static bool attempted_after(json_t *reply, const void *before)
{
	return json_integer_value(json_object_get(reply, "attempts")) > *(const json_int_t *)before;
}

static int wait_webhook_push(struct client *c, json_t *reply)
{
	json_int_t before = json_integer_value(json_object_get(reply, "attempts"));
	json_decref(reply);
	int r = poll_until(c, "rotate webhook-secret", "/admin/v1/webhook-secrets/github", attempted_after, &before,
			   "waiting for tesserad to set the new secret at GitHub...", &reply);
	if (r != 0)
		return r;
	if (!reply) {
		fprintf(stderr, "tessera rotate webhook-secret: no outcome after 60 s; check tesserad's log\n");
		return 1;
	}
	bool ok = json_is_true(json_object_get(reply, "last_ok"));
	if (c->json) {
		cli_print_json(reply);
	} else if (ok) {
		printf("github webhook secret version %lld is active and set on hook %s of %s at GitHub (not shown)\n",
		       (long long)json_integer_value(json_object_get(reply, "last_version")),
		       json_string_value(json_object_get(reply, "hook")), json_string_value(json_object_get(reply, "org")));
		printf("the previous secret keeps verifying for the overlap\n");
	} else {
		const char *err = json_string_value(json_object_get(reply, "last_error"));
		const char *next = json_string_value(json_object_get(reply, "next_attempt_at"));
		fprintf(stderr, "tessera rotate webhook-secret: setting the new secret at GitHub failed (HTTP status %lld, "
				"%s); the current secret stays active%s%s\n",
			(long long)json_integer_value(json_object_get(reply, "last_status")), err ? err : "unknown error",
			next ? "; next scheduled attempt at " : "", next ? next : "");
	}
	json_decref(reply);
	return ok ? 0 : 1;
}

static int cmd_rotate_webhook(struct client *c, int argc, char **argv)
{
	const char *name = NULL, *file = NULL, *overlap = NULL;
	bool bad = false;
	for (int i = 1; i < argc && !bad; i++) {
		if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strncmp(argv[i], "--secret-file=", 14) == 0)
			file = argv[i] + 14;
		else if (strcmp(argv[i], "--overlap") == 0 && i + 1 < argc)
			overlap = argv[++i];
		else if (strncmp(argv[i], "--overlap=", 10) == 0)
			overlap = argv[i] + 10;
		else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else
			bad = true;
	}
	if (bad || !name || (strcmp(name, "hr") != 0 && strcmp(name, "github") != 0)) {
		fprintf(stderr, "Usage: tessera rotate webhook-secret hr|github [--secret-file FILE] [--overlap DURATION]\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	static char secret[514];
	json_t *body = json_object();
	if (file) {
		if ((r = read_webhook_secret(file, secret, sizeof(secret))) != 0) {
			json_decref(body);
			return r;
		}
		json_object_set_new(body, "secret", json_string(secret));
		OPENSSL_cleanse(secret, sizeof(secret));
	}
	if (overlap)
		json_object_set_new(body, "overlap", json_string(overlap));
	char path[128];
	snprintf(path, sizeof(path), "/admin/v1/webhook-secrets/%s/rotate", name);
	json_t *reply = NULL;
	r = cli_call(c, "rotate webhook-secret", "POST", path, body, &reply);
	json_t *js = json_object_get(body, "secret");
	if (json_is_string(js))
		OPENSSL_cleanse((char *)json_string_value(js), json_string_length(js));
	json_decref(body);
	if (r)
		return r;
	if (json_is_true(json_object_get(reply, "requested")))
		return wait_webhook_push(c, reply);
	json_t *gen = json_object_get(reply, "secret");
	if (c->json) {
		cli_print_json(reply);
	} else {
		if (json_is_string(gen)) {
			printf("%s\n", json_string_value(gen));
			fflush(stdout);
			fprintf(stderr, "new %s webhook secret (version %lld) printed above; it is shown only once.\n", name,
				(long long)json_integer_value(json_object_get(reply, "version")));
		} else {
			fprintf(stderr, "the secret from %s is the %s webhook secret (version %lld).\n", file, name,
				(long long)json_integer_value(json_object_get(reply, "version")));
		}
		const char *until = json_string_value(json_object_get(reply, "previous_not_after"));
		if (until)
			fprintf(stderr, "the previous secret (version %lld) keeps verifying until %s.\n",
				(long long)json_integer_value(json_object_get(reply, "previous_version")), until);
		if (json_is_true(json_object_get(reply, "file_superseded")))
			fprintf(stderr, "note: [%s] webhook_secret_file is no longer used.\n", name);
	}
	if (json_is_string(gen))
		OPENSSL_cleanse((char *)json_string_value(gen), json_string_length(gen));
	json_decref(reply);
	return 0;
}

static const struct command rotate_cmds[] = {
	{ "rotate master-key", "tessera rotate master-key --new-key-file FILE [--no-wait]",
	  "re-wrap every data key under a new master key (tesserad reads FILE; crash-safe, re-run to complete)",
	  cmd_rotate_master },
	{ "rotate upstream", "tessera rotate upstream NAME --key-file FILE | --now",
	  "make a new provider key the active key of an upstream (--now: tesserad creates it through the provider "
	  "admin API and waits for the outcome); the old one retires after grace_period",
	  cmd_rotate_upstream },
	{ "rotate scim-token", "tessera rotate scim-token [--label NAME]",
	  "create a new SCIM bearer token (printed once); older ones work for [scim] token_overlap", cmd_rotate_scim },
	{ "rotate webhook-secret", "tessera rotate webhook-secret hr|github [--secret-file FILE] [--overlap DURATION]",
	  "new HR or GitHub webhook secret (generated and printed once, or from FILE); the old one works for the overlap",
	  cmd_rotate_webhook },
};
COMMAND_GROUP(rotate_commands, rotate_cmds);
