/*
 * cmd_report.c — `tessera report …`: answers for a security team, from the
 * admin API's reports (broker/admin_reports.c, broker/admin_report_access.c):
 *   report access --repo R [--at T] | --user U [--at T] | --unmatched
 *   report usage --from T --to T [--by user|repo|upstream] [--user U]
 *   report offboarding USER
 *   report upstreams
 *   report compliance [--format text|json|html] [--output FILE]
 * Text by default, the API's JSON with --json; the compliance checklist also
 * as one self-contained HTML page (inline style, no external resource) an
 * auditor can open or archive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int report_unmatched(struct client *c, int argc, char **argv)
{
	bool unmatched = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--unmatched") == 0) {
			unmatched = true;
		} else {
			fprintf(stderr, "tessera report access: unexpected argument '%s'\n"
					"Usage: tessera report access --unmatched\n", argv[i]);
			return 2;
		}
	}
	if (!unmatched) {
		fprintf(stderr, "tessera report access: only --unmatched is available in this release\n"
				"Usage: tessera report access --unmatched\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *reply = NULL;
	if ((r = cli_call(c, "report access", "GET", "/admin/v1/report/access/unmatched", NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
		json_decref(reply);
		return 0;
	}
	json_t *rows = json_object_get(reply, "unmatched");
	size_t n = json_array_size(rows);
	if (n == 0) {
		printf("no unmatched repo-host accounts\n");
	} else {
		printf("%-24s %-12s %-28s %5s %7s  %s\n", "LOGIN", "GITHUB-ID", "ORGS", "TEAMS", "DIRECT", "LAST-SEEN");
		size_t i;
		json_t *row;
		json_array_foreach (rows, i, row) {
			char orgs[256] = "";
			size_t used = 0, k;
			json_t *o;
			json_array_foreach (json_object_get(row, "orgs"), k, o) {
				int w = snprintf(orgs + used, sizeof(orgs) - used, "%s%s(%s)", k ? "," : "",
						 json_string_value(json_object_get(o, "org")),
						 json_string_value(json_object_get(o, "role")));
				if (w < 0 || (size_t)w >= sizeof(orgs) - used)
					break;
				used += (size_t)w;
			}
			printf("%-24s %-12lld %-28s %5lld %7lld  %s\n", json_string_value(json_object_get(row, "login")),
			       (long long)json_integer_value(json_object_get(row, "github_id")),
			       used ? orgs : "(outside)", (long long)json_integer_value(json_object_get(row, "teams")),
			       (long long)json_integer_value(json_object_get(row, "collaborations")),
			       json_string_value(json_object_get(row, "last_seen")));
		}
	}
	long long total = (long long)json_integer_value(json_object_get(reply, "count"));
	printf("%lld unmatched account%s%s: they hold no permission in tessera until a user's repo login matches\n",
	       total, total == 1 ? "" : "s", json_is_true(json_object_get(reply, "truncated")) ? " (list truncated)" : "");
	json_decref(reply);
	return 0;
}

/* ---------- shared helpers ---------- */

static const char *sv(json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v && *v ? v : dflt;
}

static long long iv(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* --name VALUE or --name=VALUE at argv[*i]. */
static const char *flag(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	if (strcmp(argv[*i], name) == 0)
		return *i + 1 < argc ? argv[++*i] : NULL;
	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	return NULL;
}

static void add_query(char *path, size_t n, const char *name, const char *value)
{
	if (!value)
		return;
	char *e = client_escape(value);
	size_t used = strlen(path);
	snprintf(path + used, n - used, "%s%s=%s", strchr(path, '?') ? "&" : "?", name, e ? e : "");
	free(e);
}

/* GET path; prints JSON and returns -1 (done) when --json, else leaves *reply. */
static int get_report(struct client *c, const char *cmd, const char *path, json_t **reply)
{
	int r = cli_need_token(c);
	if (r)
		return r;
	if ((r = cli_call(c, cmd, "GET", path, NULL, reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(*reply);
		json_decref(*reply);
		*reply = NULL;
	}
	return 0;
}

static void human_bytes(long long b, char *out, size_t n)
{
	if (b >= 10LL * 1000 * 1000 * 1000)
		snprintf(out, n, "%.1f GB", (double)b / 1e9);
	else if (b >= 10LL * 1000 * 1000)
		snprintf(out, n, "%.1f MB", (double)b / 1e6);
	else if (b >= 10LL * 1000)
		snprintf(out, n, "%.1f kB", (double)b / 1e3);
	else
		snprintf(out, n, "%lld B", b);
}

/* ---------- access ---------- */

static void print_sources(json_t *sources)
{
	size_t k;
	json_t *s;
	json_array_foreach (sources, k, s)
		printf("%s%s (%s, since %s)", k ? "; " : "", sv(s, "grant", "?"), sv(s, "permission", "?"),
		       sv(s, "since", "?"));
}

static int report_access_repo_or_user(struct client *c, const char *repo, const char *user, const char *at)
{
	char path[2048] = "/admin/v1/report/access";
	add_query(path, sizeof(path), "repo", repo);
	add_query(path, sizeof(path), "user", user);
	add_query(path, sizeof(path), "at", at);
	json_t *reply = NULL;
	int r = get_report(c, "report access", path, &reply);
	if (r || !reply)
		return r;
	const char *when = json_is_true(json_object_get(reply, "now")) ? "now" : sv(reply, "at", "?");
	const char *hist = sv(reply, "history_starts", NULL);
	size_t i;
	json_t *row;
	if (repo) {
		json_t *rp = json_object_get(reply, "repo");
		printf("Who could get a token for %s at %s\n", sv(rp, "full_name", repo), when);
		json_t *cls = json_object_get(rp, "classifications");
		if (json_array_size(cls)) {
			printf("classifications:");
			json_array_foreach (cls, i, row)
				printf(" %s", json_string_value(row));
			printf("\n");
		}
		printf("\n%-24s %-10s %-6s %s\n", "USER", "PERMISSION", "TOKEN", "THROUGH");
		json_array_foreach (json_object_get(reply, "users"), i, row) {
			printf("%-24s %-10s %-6s ", sv(row, "user", "?"), sv(row, "permission", "?"),
			       json_is_true(json_object_get(row, "could_get_token")) ? "yes" : "no");
			print_sources(json_object_get(row, "sources"));
			if (!json_is_true(json_object_get(row, "active")))
				printf(" — user inactive then");
			printf("\n");
		}
		printf("\n%lld user%s could get a token (%lld held a permission)\n", iv(reply, "could_get_token"),
		       iv(reply, "could_get_token") == 1 ? "" : "s", iv(reply, "count"));
	} else {
		json_t *u = json_object_get(reply, "user");
		printf("Repositories %s could reach at %s (user %s then)\n", sv(u, "user_name", user), when,
		       json_is_true(json_object_get(u, "active")) ? "active" : "INACTIVE");
		json_t *roles = json_object_get(reply, "roles");
		if (json_array_size(roles)) {
			printf("roles now:");
			json_array_foreach (roles, i, row)
				printf(" %s (via %s)", sv(row, "role", "?"), sv(row, "via", "?"));
			printf("\n");
		}
		printf("\n%-32s %-10s %s\n", "REPOSITORY", "PERMISSION", "THROUGH");
		json_array_foreach (json_object_get(reply, "repos"), i, row) {
			printf("%-32s %-10s ", sv(row, "repo", "?"), sv(row, "permission", "?"));
			print_sources(json_object_get(row, "sources"));
			printf("\n");
		}
		printf("\n%lld repositor%s\n", iv(reply, "count"), iv(reply, "count") == 1 ? "y" : "ies");
	}
	if (hist && !json_is_true(json_object_get(reply, "now")) && strcmp(at ? at : "", hist) < 0)
		printf("note: permission history starts at %s; earlier times cannot be answered from it\n", hist);
	json_decref(reply);
	return 0;
}

static int cmd_report_access(struct client *c, int argc, char **argv)
{
	static const char syn[] = "tessera report access --repo R [--at T] | --user U [--at T] | --unmatched";
	const char *repo = NULL, *user = NULL, *at = NULL, *v;
	bool unmatched = false;
	for (int i = 1; i < argc; i++) {
		if ((v = flag(argc, argv, &i, "--repo")))
			repo = v;
		else if ((v = flag(argc, argv, &i, "--user")))
			user = v;
		else if ((v = flag(argc, argv, &i, "--at")))
			at = v;
		else if (strcmp(argv[i], "--unmatched") == 0)
			unmatched = true;
		else {
			fprintf(stderr, "tessera report access: unexpected argument '%s'\nUsage: %s\n", argv[i], syn);
			return 2;
		}
	}
	if (unmatched) {
		if (repo || user || at) {
			fprintf(stderr, "tessera report access: --unmatched takes no other option\nUsage: %s\n", syn);
			return 2;
		}
		return report_unmatched(c, argc, argv);
	}
	if (!!repo == !!user) {
		fprintf(stderr, "tessera report access: give --repo or --user\nUsage: %s\n", syn);
		return 2;
	}
	return report_access_repo_or_user(c, repo, user, at);
}

/* ---------- usage ---------- */

static int cmd_report_usage(struct client *c, int argc, char **argv)
{
	static const char syn[] = "tessera report usage --from T --to T [--by user|repo|upstream] [--user U]";
	const char *from = NULL, *to = NULL, *by = NULL, *user = NULL, *v;
	for (int i = 1; i < argc; i++) {
		if ((v = flag(argc, argv, &i, "--from")))
			from = v;
		else if ((v = flag(argc, argv, &i, "--to")))
			to = v;
		else if ((v = flag(argc, argv, &i, "--by")))
			by = v;
		else if ((v = flag(argc, argv, &i, "--user")))
			user = v;
		else {
			fprintf(stderr, "tessera report usage: unexpected argument '%s'\nUsage: %s\n", argv[i], syn);
			return 2;
		}
	}
	if (!from || !to) {
		fprintf(stderr, "tessera report usage: --from and --to are required\nUsage: %s\n", syn);
		return 2;
	}
	if (by && strcmp(by, "user") != 0 && strcmp(by, "repo") != 0 && strcmp(by, "upstream") != 0) {
		fprintf(stderr, "tessera report usage: --by must be user, repo or upstream\n");
		return 2;
	}
	char path[2048] = "/admin/v1/report/usage";
	add_query(path, sizeof(path), "from", from);
	add_query(path, sizeof(path), "to", to);
	add_query(path, sizeof(path), "by", by);
	add_query(path, sizeof(path), "user", user);
	json_t *reply = NULL;
	int r = get_report(c, "report usage", path, &reply);
	if (r || !reply)
		return r;
	const char *key = sv(reply, "by", "user");
	printf("Gateway use from %s to %s, by %s%s%s — bytes sent = what left the environment\n\n", sv(reply, "from", "?"),
	       sv(reply, "to", "?"), key, user ? ", user " : "", user ? user : "");
	printf("%-28s %-18s %9s %8s %12s %12s %10s %10s\n", strcmp(key, "repo") == 0 ? "REPOSITORY" : strcmp(key, "upstream") == 0 ? "UPSTREAM" : "USER",
	       "UPSTREAM", "REQUESTS", "BLOCKED", "BYTES SENT", "BYTES RECV", "TOKENS IN", "TOKENS OUT");
	size_t i, k;
	json_t *row, *up;
	json_array_foreach (json_object_get(reply, "rows"), i, row) {
		char sent[32], recv[32];
		json_array_foreach (json_object_get(row, "upstreams"), k, up) {
			human_bytes(iv(up, "bytes_sent"), sent, sizeof(sent));
			human_bytes(iv(up, "bytes_received"), recv, sizeof(recv));
			printf("%-28s %-18s %9lld %8lld %12s %12s %10lld %10lld\n", k ? "" : sv(row, "key", "?"),
			       sv(up, "upstream", "?"), iv(up, "requests"), iv(up, "blocked"), sent, recv, iv(up, "tokens_in"),
			       iv(up, "tokens_out"));
		}
		if (json_array_size(json_object_get(row, "upstreams")) > 1) {
			human_bytes(iv(row, "bytes_sent"), sent, sizeof(sent));
			human_bytes(iv(row, "bytes_received"), recv, sizeof(recv));
			printf("%-28s %-18s %9lld %8lld %12s %12s %10lld %10lld\n", "", "(all)", iv(row, "requests"),
			       iv(row, "blocked"), sent, recv, iv(row, "tokens_in"), iv(row, "tokens_out"));
		}
		if (json_is_integer(json_object_get(row, "access_tokens_minted")))
			printf("%-28s access tokens minted: %lld\n", "", iv(row, "access_tokens_minted"));
	}
	json_t *t = json_object_get(reply, "totals");
	char sent[32];
	human_bytes(iv(t, "bytes_sent"), sent, sizeof(sent));
	printf("\ntotal: %lld requests (%lld blocked), %s sent upstream (%lld bytes)\n", iv(t, "requests"), iv(t, "blocked"),
	       sent, iv(t, "bytes_sent"));
	json_decref(reply);
	return 0;
}

/* ---------- offboarding ---------- */

static int cmd_report_offboarding(struct client *c, int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "Usage: tessera report offboarding USER\n");
		return 2;
	}
	char path[1024] = "/admin/v1/report/offboarding";
	add_query(path, sizeof(path), "user", argv[1]);
	json_t *reply = NULL;
	int r = get_report(c, "report offboarding", path, &reply);
	if (r || !reply)
		return r;
	json_t *u = json_object_get(reply, "user");
	printf("User %s: %s", sv(u, "user_name", argv[1]), json_is_true(json_object_get(u, "active")) ? "active" : "INACTIVE");
	if (!json_is_true(json_object_get(u, "active")))
		printf(" since %s (trigger: %s; reason: %s)", sv(u, "deactivated_at", "?"), sv(u, "deactivated_by", "?"),
		       sv(u, "deactivated_reason", "-"));
	printf("\n");
	size_t i, k;
	json_t *rc, *cr;
	json_array_foreach (json_object_get(reply, "receipts"), i, rc) {
		json_t *seal = json_object_get(rc, "sealed_by");
		printf("\nRevocation receipt: audit record seq %lld at %s\n", iv(rc, "seq"), sv(rc, "at", "?"));
		printf("  trigger %s, by %s, reason: %s\n", sv(rc, "trigger", "?"), sv(rc, "actor", "?"), sv(rc, "reason", "-"));
		printf("  record hash %s, %s", sv(rc, "record_hash", "?"), json_is_object(seal) ? "sealed by seal #" : "not sealed yet");
		if (json_is_object(seal))
			printf("%lld at %s", iv(seal, "id"), sv(seal, "sealed_at", "?"));
		printf("\n");
		json_array_foreach (json_object_get(rc, "credentials"), k, cr)
			printf("  revoked %-9s #%-6lld at %s (last used %s)\n", sv(cr, "kind", "?"), iv(cr, "id"),
			       sv(cr, "revoked_at", "?"), sv(cr, "last_used_at", "never"));
		json_array_foreach (json_object_get(rc, "roles_removed"), k, cr)
			printf("  role %s (via %s) removed\n", sv(cr, "role", "?"), sv(cr, "via", "?"));
	}
	json_array_foreach (json_object_get(reply, "reinstatements"), i, rc)
		printf("\nReinstated at %s by %s (audit seq %lld)\n", sv(rc, "at", "?"), sv(rc, "actor", "?"), iv(rc, "seq"));
	printf("\n%-8s %-9s %-28s %-28s %-9s %-28s %s\n", "ID", "KIND", "CREATED", "STOPPED WORKING", "HOW",
	       "LAST WORKED", "REPOS");
	json_array_foreach (json_object_get(reply, "credentials"), i, cr) {
		const char *stopped = sv(cr, "stopped_at", NULL);
		bool working = json_is_true(json_object_get(cr, "working_now"));
		printf("%-8lld %-9s %-28s %-28s %-9s %-28s %s\n", iv(cr, "id"), sv(cr, "kind", "?"), sv(cr, "created_at", "?"),
		       working ? "STILL WORKING" : stopped ? stopped : "?", working ? "-" : sv(cr, "stopped_by", "-"),
		       sv(cr, "last_worked_at", "never"), sv(cr, "repos", "-"));
		if (iv(cr, "used_after_stop"))
			printf("         WARNING: %lld successful requests after it stopped\n", iv(cr, "used_after_stop"));
	}
	json_decref(reply);
	return 0;
}

/* ---------- upstreams ---------- */

static int cmd_report_upstreams(struct client *c, int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "Usage: tessera report upstreams\n");
		return 2;
	}
	json_t *reply = NULL;
	int r = get_report(c, "report upstreams", "/admin/v1/report/upstreams", &reply);
	if (r || !reply)
		return r;
	printf("Subprocessors: every upstream prompts may be sent to\n\n");
	printf("%-18s %-18s %-12s %-4s %-7s %-28s %-28s %s\n", "UPSTREAM", "KIND", "REGION", "BAA", "ON-PREM", "FIRST USE",
	       "LAST USE", "REQUESTS (30 d)");
	size_t i;
	json_t *u;
	json_array_foreach (json_object_get(reply, "upstreams"), i, u)
		printf("%-18s %-18s %-12s %-4s %-7s %-28s %-28s %lld%s\n", sv(u, "name", "?"), sv(u, "kind", "-"),
		       sv(u, "region", "-"), json_is_true(json_object_get(u, "baa")) ? "yes" : "no",
		       json_is_true(json_object_get(u, "on_prem")) ? "yes" : "no", sv(u, "first_use", "never"),
		       sv(u, "last_use", "never"), iv(u, "requests_30d"),
		       json_is_true(json_object_get(u, "in_config")) ? "" : "  (not configured now)");
	json_decref(reply);
	return 0;
}

/* ---------- compliance ---------- */

static void html_escape(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void compliance_html(FILE *f, json_t *rep)
{
	json_t *sum = json_object_get(rep, "summary");
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<title>tessera security review checklist</title>\n<style>\n"
	      "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:72em;color:#1d2530;padding:0 1em}\n"
	      "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccd;padding-bottom:.2em}\n"
	      ".meta{color:#556}table{border-collapse:collapse;width:100%}td,th{text-align:left;vertical-align:top;padding:.45em .6em;border-bottom:1px solid #e3e6ea}\n"
	      ".st{font-weight:600;text-transform:uppercase;font-size:.8em;padding:.15em .5em;border-radius:.3em;color:#fff}\n"
	      ".pass{background:#2e7d32}.warn{background:#b26a00}.fail{background:#c62828}\n"
	      "details pre{background:#f5f7f9;padding:.6em;overflow:auto;font-size:.85em;max-height:24em}\n"
	      ".totals span{margin-right:1.2em}\n</style></head><body>\n",
	      f);
	fputs("<h1>Security review checklist</h1>\n<p class=\"meta\">Generated by tessera at ", f);
	html_escape(f, sv(rep, "generated_at", "?"));
	fputs(" for ", f);
	html_escape(f, sv(rep, "generated_by", "?"));
	fprintf(f, "; activity counts cover the last %lld days. Every value below was read from the live system when "
		   "the page was generated.</p>\n",
		iv(rep, "period_days"));
	fprintf(f, "<p class=\"totals\"><span>Result: <strong>");
	html_escape(f, sv(rep, "result", "?"));
	fprintf(f, "</strong></span><span class=\"st pass\">%lld pass</span> <span class=\"st warn\">%lld warn</span> "
		   "<span class=\"st fail\">%lld fail</span></p>\n",
		iv(sum, "pass"), iv(sum, "warn"), iv(sum, "fail"));
	const char *area = "";
	size_t i;
	json_t *it;
	json_array_foreach (json_object_get(rep, "items"), i, it) {
		const char *a = sv(it, "area", "");
		if (strcmp(a, area) != 0) {
			if (*area)
				fputs("</table>\n", f);
			area = a;
			fputs("<h2>", f);
			html_escape(f, a);
			fputs("</h2>\n<table><tr><th>ID</th><th>Control</th><th>Status</th><th>Evidence</th></tr>\n", f);
		}
		const char *st = sv(it, "status", "warn");
		fputs("<tr><td>", f);
		html_escape(f, sv(it, "id", ""));
		fputs("</td><td>", f);
		html_escape(f, sv(it, "control", ""));
		fprintf(f, "</td><td><span class=\"st %s\">", strcmp(st, "pass") == 0 ? "pass" : strcmp(st, "fail") == 0 ? "fail" : "warn");
		html_escape(f, st);
		fputs("</span></td><td>", f);
		html_escape(f, sv(it, "summary", ""));
		char *ev = json_dumps(json_object_get(it, "evidence"), JSON_INDENT(2) | JSON_SORT_KEYS);
		fputs("<details><summary>live evidence</summary><pre>", f);
		html_escape(f, ev ? ev : "{}");
		fputs("</pre></details></td></tr>\n", f);
		free(ev);
	}
	if (*area)
		fputs("</table>\n", f);
	fputs("<p class=\"meta\">Verify the audit trail independently: <code>tessera audit export</code> and "
	      "<code>tessera audit verify --file EXPORT --key KEY</code> with a public key from "
	      "<code>/audit/v1/keys</code>.</p>\n</body></html>\n",
	      f);
}

static int cmd_report_compliance(struct client *c, int argc, char **argv)
{
	static const char syn[] = "tessera report compliance [--format text|json|html] [--output FILE]";
	const char *format = c->json ? "json" : "text", *output = NULL, *v;
	for (int i = 1; i < argc; i++) {
		if ((v = flag(argc, argv, &i, "--format")))
			format = v;
		else if ((v = flag(argc, argv, &i, "--output")) || (v = flag(argc, argv, &i, "-o")))
			output = v;
		else {
			fprintf(stderr, "tessera report compliance: unexpected argument '%s'\nUsage: %s\n", argv[i], syn);
			return 2;
		}
	}
	if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0 && strcmp(format, "html") != 0) {
		fprintf(stderr, "tessera report compliance: --format must be text, json or html\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	json_t *reply = NULL;
	if ((r = cli_call(c, "report compliance", "GET", "/admin/v1/report/compliance", NULL, &reply)) != 0)
		return r;
	FILE *f = output ? fopen(output, "w") : stdout;
	if (!f) {
		perror(output);
		json_decref(reply);
		return 1;
	}
	if (strcmp(format, "json") == 0) {
		char *s = json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS);
		fprintf(f, "%s\n", s ? s : "null");
		free(s);
	} else if (strcmp(format, "html") == 0) {
		compliance_html(f, reply);
	} else {
		json_t *sum = json_object_get(reply, "summary");
		fprintf(f, "Security review checklist — %s (generated %s; activity over %lld days)\n",
			sv(reply, "result", "?"), sv(reply, "generated_at", "?"), iv(reply, "period_days"));
		fprintf(f, "%lld pass, %lld warn, %lld fail\n", iv(sum, "pass"), iv(sum, "warn"), iv(sum, "fail"));
		const char *area = "";
		size_t i;
		json_t *it;
		json_array_foreach (json_object_get(reply, "items"), i, it) {
			if (strcmp(sv(it, "area", ""), area) != 0) {
				area = sv(it, "area", "");
				fprintf(f, "\n%s\n", area);
			}
			fprintf(f, "  [%-4s] %-5s %s\n         %s\n", sv(it, "status", "?"), sv(it, "id", "?"),
				sv(it, "control", "?"), sv(it, "summary", ""));
		}
	}
	bool failed = strcmp(sv(reply, "result", ""), "fail") == 0;
	json_decref(reply);
	if (f != stdout && fclose(f) != 0) {
		perror(output);
		return 1;
	}
	return failed ? 1 : 0;
}

static const struct command report_cmds[] = {
	{ "report access", "tessera report access --repo R [--at T] | --user U [--at T] | --unmatched",
	  "who could get a token for a repository (or what a user could reach), then or now, and through which grant; "
	  "--unmatched: repo-host accounts that match no user",
	  cmd_report_access },
	{ "report usage", "tessera report usage --from T --to T [--by user|repo|upstream] [--user U]",
	  "requests, tokens and bytes sent to each upstream: what left the environment", cmd_report_usage },
	{ "report offboarding", "tessera report offboarding USER",
	  "the revocation receipt: when and how USER was deactivated, and when each credential stopped working",
	  cmd_report_offboarding },
	{ "report upstreams", "tessera report upstreams",
	  "the subprocessor list: each upstream with region, BAA, on-prem and first/last use", cmd_report_upstreams },
	{ "report compliance", "tessera report compliance [--format text|json|html] [--output FILE]",
	  "the security review checklist with live evidence (exit 1 when a control fails)", cmd_report_compliance },
};
COMMAND_GROUP(report_commands, report_cmds);
