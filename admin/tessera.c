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

#include "cli.h"

static int cmd_whoami(struct client *c, int argc, char **argv);

static const struct command core_cmds[] = {
	{ "whoami", "tessera whoami", "show who the current credential belongs to, its roles and expiry", cmd_whoami },
};
static COMMAND_GROUP(core_commands, core_cmds);

/* Every area's commands, in --help order. */
extern const struct command_group login_commands, user_commands;
extern const struct command_group rotate_commands;
extern const struct command_group report_commands;
extern const struct command_group sync_commands;
extern const struct command_group upstream_commands;
extern const struct command_group audit_commands;

const struct command_group *const command_groups[] = {
	&login_commands,
	&core_commands,
	&user_commands,
	&rotate_commands,
	&audit_commands,
	&report_commands,
	&sync_commands,
	&upstream_commands,
	NULL,
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: tessera [--url URL] [--json] COMMAND [ARGS]\n"
		   "       tessera --version | --help | COMMAND --help\n\n"
		   "Commands:\n");
	for (const struct command_group *const *g = command_groups; *g; g++)
		for (int i = 0; i < (*g)->n; i++)
			fprintf(f, "  %-18s %s\n", (*g)->cmds[i].name, (*g)->cmds[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  --url URL   tesserad base URL (default: $TESSERA_URL, ~/.config/tessera/config, "
		   "http://127.0.0.1:8080)\n"
		   "  --json      machine-readable output\n\n"
		   "Credential: $TESSERA_TOKEN, else ~/.config/tessera/session.\n"
		   "Exit status: 0 ok, 1 failure, 2 usage error, 3 denied, 4 not found. See tessera(1).\n");
}

/* Handle `COMMAND --help`; returns -1 to continue. */
static int help_flag(const struct command *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("Usage: %s\n\n%s\n", cmd->synopsis, cmd->summary);
			return 0;
		}
	}
	return -1;
}

int cli_need_token(struct client *c)
{
	if (c->token)
		return 0;
	fprintf(stderr, "tessera: not logged in: run 'tessera login', or set TESSERA_TOKEN\n");
	return status_exit(TSR_UNAUTHENTICATED);
}

int cli_call(struct client *c, const char *cmd, const char *method, const char *path, json_t *body, json_t **reply)
{
	*reply = NULL;
	tsr_rc rc = client_call(c, method, path, body, reply, NULL);
	if (rc == TSR_UNAVAILABLE && !*reply)
		return 1; /* client_call said why */
	if (rc != TSR_OK) {
		fprintf(stderr, "tessera %s: %s\n", cmd, client_error_message(*reply, "request failed"));
		json_decref(*reply);
		*reply = NULL;
		return status_exit(rc);
	}
	return 0;
}

void cli_print_json(json_t *reply)
{
	char *s = json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS);
	printf("%s\n", s ? s : "null");
	free(s);
}

static int cmd_whoami(struct client *c, int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "tessera whoami: unexpected argument '%s'\nUsage: tessera whoami\n", argv[1]);
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *reply = NULL;
	if ((r = cli_call(c, "whoami", "GET", "/admin/v1/whoami", NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
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
	/* longest command name matching the leading words */
	const struct command *cmd = NULL;
	int words = 0;
	for (const struct command_group *const *g = command_groups; *g; g++) {
		for (int k = 0; k < (*g)->n; k++) {
			const char *name = (*g)->cmds[k].name;
			int w = 0, j = i;
			const char *p = name;
			while (j < argc) {
				size_t len = strcspn(p, " ");
				if (strlen(argv[j]) != len || strncmp(argv[j], p, len) != 0)
					break;
				w++;
				j++;
				p += len;
				if (!*p)
					break;
				p++;
			}
			if (!*p && w > words) {
				cmd = &(*g)->cmds[k];
				words = w;
			}
		}
	}
	if (!cmd) {
		fprintf(stderr, "tessera: unknown command '%s' (see tessera --help)\n", argv[i]);
		return 2;
	}
	int sub_argc = argc - i - words + 1;
	char **sub_argv = argv + i + words - 1;
	/* --json may also follow the command */
	for (int k = 1; k < sub_argc; k++) {
		if (strcmp(sub_argv[k], "--json") == 0) {
			json = true;
			memmove(&sub_argv[k], &sub_argv[k + 1], (size_t)(sub_argc - k - 1) * sizeof(char *));
			sub_argc--;
			k--;
		}
	}
	int r = help_flag(cmd, sub_argc, sub_argv);
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
