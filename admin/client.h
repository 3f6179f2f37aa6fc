/*
 * client.h — the CLI's HTTP client (libcurl) and its notion of "where is
 * tesserad and who am I": TESSERA_URL / --url / ~/.config/tessera/config,
 * and TESSERA_TOKEN / ~/.config/tessera/session.
 */
#ifndef TSR_ADMIN_CLIENT_H
#define TSR_ADMIN_CLIENT_H

#include <stdbool.h>
#include <jansson.h>
#include "../lib/status.h"

struct client {
	char *url;     /* base URL without trailing slash */
	char *token;   /* may be NULL; wiped on free */
	bool json;     /* --json */
};

/* Resolve URL and credential. url_flag may be NULL. Caller frees with client_free(). */
tsr_rc client_init(struct client *c, const char *url_flag) TSR_WUR;
void client_free(struct client *c);

/*
 * Send METHOD path with an optional JSON body; on any HTTP answer *reply is
 * the parsed JSON (or NULL if it was not JSON) and the rc is mapped from the
 * status. Transport errors print "tessera: cannot reach URL: …" and return
 * TSR_UNAVAILABLE. Caller json_decref()s *reply.
 */
tsr_rc client_call(struct client *c, const char *method, const char *path, json_t *body, json_t **reply,
		   long *http_status) TSR_WUR;

/* Percent-encode s for a URL path segment or query value. Caller frees with free(). */
char *client_escape(const char *s);

/* Where the CLI keeps its files: ~/.config/tessera/LEAF (or $XDG_CONFIG_HOME). Caller frees. */
char *client_config_path(const char *leaf);

/* The "message" of a tesserad error reply, or a fallback. */
const char *client_error_message(json_t *reply, const char *fallback);

#endif
