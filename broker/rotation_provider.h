/*
 * rotation_provider.h — obtaining and deleting upstream keys through a
 * provider's admin API (issue 8), behind one small interface so another
 * provider (Anthropic admin keys, Azure) can be added as another
 * implementation.
 *
 * One implementation today: the OpenAI organisation Admin API
 * ([upstream.NAME] provider = openai-admin). A new key is a new project
 * service account (POST {admin_url}/organization/projects/{project_id}/
 * service_accounts), whose one API key the response carries; deleting the
 * service account (DELETE .../service_accounts/{id}) deletes the key. The
 * service account id is the provider_key_id tesserad stores (not secret).
 *
 * Secrets: the admin key is read from admin_key_file for each call and
 * wiped after it; the created key is handed to the caller in a buffer the
 * caller wipes (provider_key_wipe). Neither appears in an error text: errors
 * carry the HTTP status and the provider's error message only.
 * Calls are synchronous (libcurl easy handle, bounded time): call them from
 * a job thread, never from an HTTP worker. Thread-safe (no shared state).
 */
#ifndef TSR_ROTATION_PROVIDER_H
#define TSR_ROTATION_PROVIDER_H

#include <stddef.h>
#include "../lib/config.h"

#define PROVIDER_KEY_MAX 4096
#define PROVIDER_ID_MAX 128

/* A key the provider created. */
struct provider_key {
	char key[PROVIDER_KEY_MAX + 1]; /* the secret: wipe with provider_key_wipe() */
	char id[PROVIDER_ID_MAX];       /* the provider's id, needed to delete it; not secret */
};
void provider_key_wipe(struct provider_key *k);

struct rotation_provider {
	const char *name; /* "openai-admin" */
	/* Create a new key called key_name ("tessera-NAME-vN"). err: a message without secrets. */
	tsr_rc (*create_key)(const struct cfg_upstream *u, const char *key_name, struct provider_key *out, char *err,
			     size_t errlen);
	/* Delete the key the provider knows as id; an already deleted key (404) is success. */
	tsr_rc (*delete_key)(const struct cfg_upstream *u, const char *id, char *err, size_t errlen);
};

/* The provider configured for u, or NULL (provider = none: operator-supplied keys). */
const struct rotation_provider *rotation_provider_for(const struct cfg_upstream *u);

/*
 * The parsers of the admin API's answers (network input; fuzzed by
 * tests/fuzz/fuzz_rotation_provider.c). Create: the service account's id and
 * its api_key.value into out (TSR_INVALID, out wiped, when the shape is not
 * the documented one or the key is not 1..4096 printable ASCII characters).
 * Delete: TSR_OK when the answer says id was deleted.
 */
tsr_rc openai_admin_parse_create(const char *body, size_t n, struct provider_key *out) TSR_WUR;
tsr_rc openai_admin_parse_delete(const char *body, size_t n, const char *id) TSR_WUR;

#endif
