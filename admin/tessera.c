/*
 * tessera.c — the one CLI for developers, admins and auditors.
 *
 * A command table (name, synopsis, summary, handler) drives dispatch,
 * `--help` and `COMMAND --help`, so help cannot drift from what exists.
 * Exit codes follow DESIGN.md: 0 ok, 1 failure, 2 usage, 3 denied,
 * 4 not found (status_exit()). Only commands that work are listed; the
 * rest of DESIGN.md's commands arrive with their issues.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

struct command {
	const char *name;
	const char *synopsis;
	const char *summary;
	int (*fn)(struct client *c, int argc, char **argv);
};

static int cmd_whoami(struct client *c, int argc, char **argv);

static const struct command commands[] = {
	{ "whoami", "tessera whoami", "show who the current credential belongs to, its roles and expiry", cmd_whoami },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "Usage: tessera [--url URL] [--json] COMMAND [ARGS]\n"
		   "       tessera --version | --help | COMMAND --help\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  --url URL   tesserad base URL (default: $TESSERA_URL, ~/.config/tessera/config, "
		   "http://127.0.0.1:8080)\n"
		   "  --json      machine-readable output\n\n"
		   "Credential: $TESSERA_TOKEN, else ~/.config/tessera/session.\n"
		   "Exit status: 0 ok, 1 failure, 2 usage error, 3 denied, 4 not found. See tessera(1).\n");
}

/* Handle `COMMAND --help` and reject unknown flags; returns -1 to continue. */
static int common_flags(const struct command *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("Usage: %s\n\n%s\n", cmd->synopsis, cmd->summary);
			return 0;
		}
		fprintf(stderr, "tessera %s: unexpected argument '%s'\nUsage: %s\n", cmd->name, argv[i], cmd->synopsis);
		return 2;
	}
	return -1;
}

static int need_token(struct client *c)
{
	if (c->token)
		return 0;
	fprintf(stderr, "tessera: not logged in: run 'tessera login', or set TESSERA_TOKEN\n");
	return status_exit(TSR_UNAUTHENTICATED);
}

static int cmd_whoami(struct client *c, int argc, char **argv)
{
	int r = need_token(c);
	if (r)
		return r;
	json_t *reply = NULL;
	tsr_rc rc = client_call(c, "GET", "/admin/v1/whoami", NULL, &reply, NULL);
	if (rc == TSR_UNAVAILABLE && !reply)
		return 1;
	if (rc != TSR_OK) {
		fprintf(stderr, "tessera whoami: %s\n", client_error_message(reply, "request failed"));
		json_decref(reply);
		return status_exit(rc);
	}
	if (c->json) {
		char *s = json_dumps(reply, JSON_INDENT(2));
		printf("%s\n", s ? s : "{}");
		free(s);
	} else {
		json_t *cred = json_object_get(reply, "credential");
		const char *exp = json_string_value(json_object_get(cred, "expires_at"));
		printf("%s (%s)\n", json_string_value(json_object_get(reply, "user")),
		       json_string_value(json_object_get(reply, "source")));
		printf("roles: ");
		json_t *roles = json_object_get(reply, "roles");
		size_t i;
		json_t *v;
		json_array_foreach (roles, i, v)
			printf("%s%s", i ? ", " : "", json_string_value(v));
		printf("%s\n", json_array_size(roles) ? "" : "(none)");
		printf("credential: %s #%lld, %s%s\n", json_string_value(json_object_get(cred, "kind")),
		       (long long)json_integer_value(json_object_get(cred, "id")), exp ? "expires " : "no expiry",
		       exp ? exp : "");
	}
	json_decref(reply);
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	bool json = false;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("tessera %s\n", PACKAGE_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strncmp(argv[i], "--url=", 6) == 0) {
			url = argv[i] + 6;
		} else {
			fprintf(stderr, "tessera: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const struct command *cmd = NULL;
	for (size_t k = 0; k < N_COMMANDS; k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd) {
		fprintf(stderr, "tessera: unknown command '%s' (see tessera --help)\n", argv[i]);
		return 2;
	}
	int sub_argc = argc - i;
	char **sub_argv = argv + i;
	/* --json may also follow the command */
	for (int k = 1; k < sub_argc; k++) {
		if (strcmp(sub_argv[k], "--json") == 0) {
			json = true;
			memmove(&sub_argv[k], &sub_argv[k + 1], (size_t)(sub_argc - k - 1) * sizeof(char *));
			sub_argc--;
			k--;
		}
	}
	int r = common_flags(cmd, sub_argc, sub_argv);
	if (r >= 0)
		return r;
	struct client c;
	tsr_rc rc = client_init(&c, url);
	if (rc != TSR_OK) {
		client_free(&c);
		return status_exit(rc);
	}
	c.json = json;
	r = cmd->fn(&c, sub_argc, sub_argv);
	client_free(&c);
	return r;
}
