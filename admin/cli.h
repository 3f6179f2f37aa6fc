/*
 * cli.h — how a tessera command is declared.
 *
 * Each area keeps its commands in its own file (cmd_user.c, cmd_sync.c, …)
 * as a static array wrapped in COMMAND_GROUP and listed in tessera.c's
 * command_groups. A command's name may be several words ("sync run");
 * dispatch picks the longest name matching the leading arguments, and the
 * handler gets the remaining ones (argv[0] is the last word of the name).
 * `tessera --help` and `tessera NAME --help` are generated from these
 * entries, so help cannot drift from what exists.
 */
#ifndef TSR_ADMIN_CLI_H
#define TSR_ADMIN_CLI_H

#include "client.h"

struct command {
	const char *name;     /* "whoami", "sync run" */
	const char *synopsis; /* full usage line */
	const char *summary;  /* one line for --help */
	int (*fn)(struct client *c, int argc, char **argv);
};

struct command_group {
	const struct command *cmds;
	int n;
};
#define COMMAND_GROUP(name, arr) \
	const struct command_group name = { arr, (int)(sizeof(arr) / sizeof(arr[0])) }

extern const struct command_group *const command_groups[]; /* NULL-terminated, tessera.c */

/* Shared helpers for command handlers. */
/* Exit 3 with a login hint when there is no credential; 0 otherwise. */
int cli_need_token(struct client *c);
/*
 * Call the API and handle the failure side uniformly: on error print
 * "tessera CMD: message" and return the exit code; on success return 0 and
 * leave the reply in *reply (caller json_decref()s).
 */
int cli_call(struct client *c, const char *cmd, const char *method, const char *path, json_t *body, json_t **reply);
/* Print reply as indented JSON (for --json). */
void cli_print_json(json_t *reply);

#endif
