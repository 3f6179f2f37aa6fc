/*
 * libFuzzer target: what /hooks/github does with a delivery before and
 * after its signature is checked — gh_signature_ok() over arbitrary
 * signature headers and bodies, and gh_event_parse() over arbitrary JSON
 * for every event tessera acts on. The first input byte picks the event;
 * the parsed fields must respect their bounds (names GitHub allows only).
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_github_webhook
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/github_hook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const events[] = { "member", "membership", "organization", "team", "team_add", "repository",
				      "ping", "push" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *event = events[data[0] % (sizeof(events) / sizeof(events[0]))];
	const char *body = (const char *)data + 1;
	size_t len = size - 1;

	/* the signature header: the body's first line when it looks like one, else a fixed wrong one */
	char sig[80] = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
	const char *nl = memchr(body, '\n', len);
	if (nl && (size_t)(nl - body) < sizeof(sig)) {
		memcpy(sig, body, (size_t)(nl - body));
		sig[nl - body] = '\0';
	}
	if (gh_signature_ok("fuzz-secret", 11, body, len, sig)) {
		/* finding HMAC-SHA256 preimages is not what a fuzzer does: a match means a broken check */
		abort();
	}

	struct gh_event e;
	if (gh_event_parse(event, body, len, &e) == TSR_OK) {
		if (strlen(e.org) >= sizeof(e.org) || strlen(e.repo_name) >= sizeof(e.repo_name) ||
		    strlen(e.team_slug) >= sizeof(e.team_slug) || strlen(e.user_login) >= sizeof(e.user_login) ||
		    e.ntopics < 0 || e.ntopics > GH_MAX_TOPICS)
			abort();
		if ((e.has_repo && (e.repo_id <= 0 || !gh_name_ok(e.repo_name))) ||
		    (e.has_team && (e.team_id <= 0 || !gh_name_ok(e.team_slug))) ||
		    (e.has_user && (e.user_id <= 0 || !gh_name_ok(e.user_login))) || (e.org[0] && !gh_name_ok(e.org)))
			abort();
	}
	return 0;
}
