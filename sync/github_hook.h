/*
 * github_hook.h — GitHub webhook deliveries: the X-Hub-Signature-256 check
 * and the payload parser, both facing the network (libFuzzer targets
 * tests/fuzz/fuzz_github_webhook.c). Pure functions of their input: no
 * I/O, no allocation that outlives a call, thread-safe.
 */
#ifndef TSR_SYNC_GITHUB_HOOK_H
#define TSR_SYNC_GITHUB_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "github.h"

/*
 * Verify X-Hub-Signature-256 ("sha256=" + 64 hex digits) of body against
 * HMAC-SHA256(secret, body), in constant time (CRYPTO_memcmp).
 */
bool gh_signature_ok(const char *secret, size_t secret_len, const void *body, size_t len, const char *header);

#define GH_MAX_TOPICS 32

/* The parts of a webhook delivery tessera acts on (see gh_event_parse). */
struct gh_event {
	char event[32];           /* X-GitHub-Event: member, membership, … */
	char action[48];          /* payload "action" ("" when absent) */
	char org[101];            /* organization.login, lower case ("" when absent) */
	bool has_repo;
	int64_t repo_id;
	char repo_name[101];
	char repo_owner[101];     /* repository.owner.login, lower case */
	char visibility[16];      /* public|private|internal ("" when absent) */
	bool archived;
	char topics[GH_MAX_TOPICS][51];
	int ntopics;
	bool has_topics;
	bool has_team;
	int64_t team_id;
	char team_slug[101];
	int64_t team_parent_id;   /* 0: none or unknown */
	bool has_user;            /* member (member, membership) or membership.user (organization) */
	int64_t user_id;
	char user_login[101];
	char scope[16];           /* membership: "team" */
};

/*
 * Parse a delivery's JSON body for event. TSR_INVALID when the body is not
 * a JSON object or a field tessera needs has the wrong shape; unknown
 * events parse to their name and action only.
 */
tsr_rc gh_event_parse(const char *event, const char *body, size_t len, struct gh_event *out) TSR_WUR;

#endif
