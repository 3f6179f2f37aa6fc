/*
 * gh_sync_once — run one GitHub sync (or one queue turn) outside tesserad,
 * the way the job "sync.github" does, and print its figures as one JSON
 * line. Used by tests/integration/github_*.sh and bench/github-sync/run to
 * drive runs deterministically; tesserad's own job path is covered by the
 * webhook tests.
 *
 *   gh_sync_once -c tessera.conf [full|queue]
 *
 * Exit 0 when the run committed (or the queue was idle), 1 otherwise.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "db/db.h"
#include "lib/config.h"
#include "lib/log.h"
#include "sync/sync_github.h"

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "-c") != 0) {
		fprintf(stderr, "usage: gh_sync_once -c tessera.conf [full|queue]\n");
		return 2;
	}
	const char *mode = argc > 3 ? argv[3] : "";
	struct config *cfg = NULL;
	if (config_load(argv[2], false, &cfg, stderr) != TSR_OK)
		return 2;
	log_set_level((enum log_level)log_level_parse(cfg->server.log_level));
	char *url = NULL;
	if (config_secret(cfg->database.url, cfg->database.url_file, &url) != TSR_OK) {
		fprintf(stderr, "gh_sync_once: no [database] url\n");
		config_free(cfg);
		return 2;
	}
	struct db_pool *pool = NULL;
	if (db_pool_new(url, 2, 5, &pool) != TSR_OK) {
		secret_free(url);
		config_free(cfg);
		return 1;
	}
	atomic_bool cancel = false;
	struct gh_sync_opts o = { cfg, pool, strcmp(mode, "full") == 0 ? "full" : "", "test", NULL, &cancel };
	struct gh_sync_result r;
	tsr_rc rc = strcmp(mode, "queue") == 0 ? sync_github_queue(&o, &r) : sync_github_run(&o, &r);
	json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
			      "rc", status_name(rc), "status", r.status, "run_id", (json_int_t)r.run_id, "ms",
			      (json_int_t)r.ms, "fetch_ms", (json_int_t)r.fetch_ms, "api_calls", (json_int_t)r.api.calls, "not_modified",
			      (json_int_t)r.api.not_modified, "wait_ms", (json_int_t)r.api.wait_ms, "retries",
			      (json_int_t)r.api.retries, "tokens_minted", (json_int_t)r.api.tokens_minted, "orgs",
			      r.orgs, "repos", r.repos, "teams", r.teams, "members", r.members, "collaborators",
			      r.collaborators, "granted", r.changes.granted, "raised", r.changes.raised, "lowered",
			      r.changes.lowered, "removed", r.changes.removed, "pairs_lost", r.changes.pairs_lost,
			      "revoked", r.changes.revoked, "queue_items", r.queue_items);
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	printf("%s\n", s ? s : "{}");
	free(s);
	json_decref(j);
	db_pool_free(pool);
	secret_free(url);
	config_free(cfg);
	return rc == TSR_OK ? 0 : 1;
}
