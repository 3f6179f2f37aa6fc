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

static const struct command rotate_cmds[] = {
	{ "rotate master-key", "tessera rotate master-key --new-key-file FILE [--no-wait]",
	  "re-wrap every data key under a new master key (tesserad reads FILE; crash-safe, re-run to complete)",
	  cmd_rotate_master },
	{ "rotate upstream", "tessera rotate upstream NAME --key-file FILE | --now",
	  "make a new provider key the active key of an upstream; the old one retires after grace_period",
	  cmd_rotate_upstream },
	{ "rotate scim-token", "tessera rotate scim-token [--label NAME]",
	  "create a new SCIM bearer token (printed once); older ones work for [scim] token_overlap", cmd_rotate_scim },
};
COMMAND_GROUP(rotate_commands, rotate_cmds);
