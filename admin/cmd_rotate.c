/*
 * cmd_rotate.c — `tessera rotate …`: secrets that get replaced.
 *
 * `rotate scim-token` asks tesserad for a new SCIM bearer token and prints
 * it once, alone on stdout, so it can go straight into the identity
 * provider's settings or a file (`tessera rotate scim-token > token`);
 * what happens to the previous token goes to stderr. The token is never
 * written anywhere else and is wiped from memory after printing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const struct command rotate_cmds[] = {
	{ "rotate scim-token", "tessera rotate scim-token [--label NAME]",
	  "create a new SCIM bearer token (printed once); older ones work for [scim] token_overlap", cmd_rotate_scim },
};
COMMAND_GROUP(rotate_commands, rotate_cmds);
