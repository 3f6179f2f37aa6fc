/*
 * cmd_sync.c — `tessera sync run ldap|github [--full] [--force]` and
 * `tessera sync status` (admin and security roles).
 *
 * `sync run` asks tesserad for a run (POST /admin/v1/sync/KIND, 202 with a
 * request id), then polls GET /admin/v1/sync/runs?kind=KIND&request=ID until
 * the run it asked for has finished, showing its progress on stderr when
 * that is a terminal, and prints the run's counts. Exit 1 when the run
 * failed (directory unreachable, bad credentials, the safety valve), with
 * the reason; 1 too when the run does not start within START_TIMEOUT (a run
 * of that kind is busy on another replica).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define START_TIMEOUT_S 600 /* a run already going (a full sync) must finish first */
#define POLL_MS 300

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int ival(json_t *o, const char *k)
{
	return (int)json_integer_value(json_object_get(o, k));
}

static const char *sval(json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : dflt;
}

/* The counts of a finished run, human-readable, on f. */
static void print_counts(FILE *f, json_t *run, const char *indent)
{
	json_t *k = json_object_get(run, "counts");
	const char *kind = sval(run, "kind", "");
	if (strcmp(kind, "ldap") == 0 || ival(k, "users_added") || ival(k, "users_updated") ||
	    ival(k, "users_deactivated")) {
		fprintf(f, "%susers        %d added, %d updated, %d deactivated\n", indent, ival(k, "users_added"),
			ival(k, "users_updated"), ival(k, "users_deactivated"));
		fprintf(f, "%sgroups       %d added, %d updated, %d removed\n", indent, ival(k, "groups_added"),
			ival(k, "groups_updated"), ival(k, "groups_removed"));
		fprintf(f, "%smemberships  %d added, %d removed\n", indent, ival(k, "memberships_added"),
			ival(k, "memberships_removed"));
	}
	if (strcmp(kind, "ldap") != 0 || ival(k, "permissions_changed") || ival(k, "api_calls"))
		fprintf(f, "%spermissions  %d changed (%d API calls, %d not modified)\n", indent,
			ival(k, "permissions_changed"), ival(k, "api_calls"), ival(k, "not_modified"));
	json_t *d = json_object_get(run, "detail");
	json_int_t conflicts = json_integer_value(json_object_get(d, "conflicts_total"));
	json_int_t skipped = json_integer_value(json_object_get(d, "skipped_total"));
	if (conflicts || skipped)
		fprintf(f, "%sreported     %lld conflict(s), %lld skipped entr%s (details: tessera sync status --json)\n",
			indent, (long long)conflicts, (long long)skipped, skipped == 1 ? "y" : "ies");
}

static void print_run_line(FILE *f, json_t *run)
{
	fprintf(f, "%s sync run %lld (%s", sval(run, "kind", "?"), (long long)json_integer_value(json_object_get(run, "id")),
		sval(run, "mode", "?"));
	const char *by = sval(run, "started_by", NULL);
	if (by)
		fprintf(f, ", %s", by);
	if (json_is_true(json_object_get(run, "forced")))
		fprintf(f, ", forced");
	fprintf(f, ") %s in %.1f s", sval(run, "status", "?"), json_real_value(json_object_get(run, "duration_s")));
	const char *fin = sval(run, "finished_at", NULL);
	fprintf(f, "%s%s\n", fin ? ", finished " : "", fin ? fin : "");
}

/* Rewrite the progress line on a terminal. */
static void show_progress(json_t *run, bool tty, int *shown)
{
	if (!tty)
		return;
	json_t *p = json_object_get(run, "progress");
	char line[200];
	if (p)
		snprintf(line, sizeof(line), "%s sync run %lld: %s, %lld entries (%.0f s)", sval(run, "kind", "?"),
			 (long long)json_integer_value(json_object_get(run, "id")), sval(p, "phase", "working"),
			 (long long)json_integer_value(json_object_get(p, "entries")),
			 json_real_value(json_object_get(run, "duration_s")));
	else
		snprintf(line, sizeof(line), "%s sync run %lld: starting (%.0f s)", sval(run, "kind", "?"),
			 (long long)json_integer_value(json_object_get(run, "id")),
			 json_real_value(json_object_get(run, "duration_s")));
	fprintf(stderr, "\r%-*s", *shown > (int)strlen(line) ? *shown : (int)strlen(line), line);
	fflush(stderr);
	*shown = (int)strlen(line);
}

static void clear_progress(bool tty, int *shown)
{
	if (tty && *shown) {
		fprintf(stderr, "\r%*s\r", *shown, "");
		fflush(stderr);
		*shown = 0;
	}
}

static int cmd_sync_run(struct client *c, int argc, char **argv)
{
	const char *kind = NULL;
	bool full = false, force = false, wait = true;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--full") == 0)
			full = true;
		else if (strcmp(argv[i], "--force") == 0)
			force = true;
		else if (strcmp(argv[i], "--no-wait") == 0)
			wait = false;
		else if (argv[i][0] != '-' && !kind)
			kind = argv[i];
		else {
			fprintf(stderr, "tessera sync run: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!kind || strspn(kind, "abcdefghijklmnopqrstuvwxyz") != strlen(kind)) {
		fprintf(stderr, "Usage: tessera sync run ldap|github [--full] [--force] [--no-wait]\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char path[160];
	snprintf(path, sizeof(path), "/admin/v1/sync/%s", kind);
	json_t *body = json_pack("{s:b,s:b}", "full", full, "force", force), *reply = NULL;
	r = cli_call(c, "sync run", "POST", path, body, &reply);
	json_decref(body);
	if (r)
		return r;
	char req[64];
	snprintf(req, sizeof(req), "%s", sval(reply, "request_id", ""));
	json_decref(reply);
	if (!wait) {
		if (c->json)
			printf("{\"kind\":\"%s\",\"request_id\":\"%s\"}\n", kind, req);
		else
			printf("requested a %s%s sync (request %s); see tessera sync status\n", full ? "full " : "", kind,
			       req);
		return 0;
	}
	bool tty = isatty(2);
	int shown = 0;
	snprintf(path, sizeof(path), "/admin/v1/sync/runs?kind=%s&request=%s", kind, req);
	time_t start = time(NULL);
	json_t *run = NULL;
	int lost = 0;
	for (;;) {
		long http = 0;
		json_t *rep = NULL;
		tsr_rc rc = client_call(c, "GET", path, NULL, &rep, &http);
		if (rc == TSR_OK && json_is_object(rep)) {
			if (strcmp(sval(rep, "status", "running"), "running") != 0) {
				run = rep;
				break;
			}
			show_progress(rep, tty, &shown);
		} else if (rc == TSR_NOT_FOUND) {
			if (time(NULL) - start > START_TIMEOUT_S) {
				clear_progress(tty, &shown);
				json_decref(rep);
				fprintf(stderr,
					"tessera sync run: the %s run did not start within %d s (is one running on "
					"another replica? see tessera sync status)\n",
					kind, START_TIMEOUT_S);
				return 1;
			}
		} else if (rc != TSR_UNAVAILABLE || rep) {
			clear_progress(tty, &shown);
			fprintf(stderr, "tessera sync run: %s\n", client_error_message(rep, "cannot read the run"));
			json_decref(rep);
			return status_exit(rc);
		}
		/* transport errors (tesserad restarting) were reported by client_call: keep polling a while */
		json_decref(rep);
		if (rc == TSR_UNAVAILABLE && !rep && ++lost > 60000 / POLL_MS) {
			clear_progress(tty, &shown);
			fprintf(stderr, "tessera sync run: lost tesserad for a minute; see tessera sync status\n");
			return 1;
		} else if (rc != TSR_UNAVAILABLE) {
			lost = 0;
		}
		sleep_ms(POLL_MS);
	}
	clear_progress(tty, &shown);
	bool ok = strcmp(sval(run, "status", ""), "ok") == 0;
	if (c->json) {
		cli_print_json(run);
	} else {
		print_run_line(stdout, run);
		if (ok)
			print_counts(stdout, run, "  ");
	}
	if (!ok)
		fprintf(stderr, "tessera sync run: run %lld %s: %s\n", (long long)json_integer_value(json_object_get(run, "id")),
			sval(run, "status", "failed"), sval(run, "error", "no reason recorded"));
	json_decref(run);
	return ok ? 0 : 1;
}

static int cmd_sync_status(struct client *c, int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "tessera sync status: unexpected argument '%s'\nUsage: tessera sync status\n", argv[1]);
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *reply;
	if ((r = cli_call(c, "sync status", "GET", "/admin/v1/sync/status", NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
		json_decref(reply);
		return 0;
	}
	json_t *kinds = json_object_get(reply, "kinds");
	if (json_array_size(kinds) == 0)
		printf("no sync has run yet\n");
	size_t i;
	json_t *k;
	json_array_foreach (kinds, i, k) {
		json_t *latest = json_object_get(k, "latest"), *ok = json_object_get(k, "last_ok");
		printf("%s\n", sval(k, "kind", "?"));
		if (json_is_object(latest)) {
			printf("  latest: ");
			print_run_line(stdout, latest);
			const char *err = sval(latest, "error", NULL);
			if (err)
				printf("  error:  %s\n", err);
			print_counts(stdout, latest, "    ");
		}
		if (json_is_object(ok) && json_integer_value(json_object_get(ok, "id")) !=
					      json_integer_value(json_object_get(latest, "id")))
			printf("  last successful: run %lld, finished %s\n",
			       (long long)json_integer_value(json_object_get(ok, "id")), sval(ok, "finished_at", "?"));
		else if (!json_is_object(ok))
			printf("  last successful: none\n");
	}
	json_decref(reply);
	return 0;
}

static const struct command sync_cmds[] = {
	{ "sync run", "tessera sync run ldap|github [--full] [--force] [--no-wait]",
	  "run a directory or repository sync now and wait for its result (exit 1 if it failed)", cmd_sync_run },
	{ "sync status", "tessera sync status", "show the latest run of each sync and the last successful one",
	  cmd_sync_status },
};
COMMAND_GROUP(sync_commands, sync_cmds);
