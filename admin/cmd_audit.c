/*
 * cmd_audit.c — `tessera audit export|verify|search` (roles security, admin).
 *
 * export streams GET /admin/v1/audit/export to stdout (or --output FILE) in
 * constant memory, shows progress on stderr when that is a terminal, and
 * checks what it writes as it goes (admin/audit_check.c, with the keys
 * tesserad publishes): the summary goes to stderr, exit 1 if the export
 * does not verify. verify either asks tesserad to verify a time range, or
 * verifies an export file offline against a published key (--file F --key K),
 * without any server. Exit 1 when anything is wrong, naming the first bad
 * record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "audit_check.h"
#include "cli.h"
#include "../lib/buf.h"

/* --name VALUE or --name=VALUE at argv[*i]; advances *i past a separate value. */
static const char *flag(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	if (strcmp(argv[*i], name) == 0) {
		if (*i + 1 >= argc)
			return NULL;
		return argv[++*i];
	}
	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	return NULL;
}

static int usage_error(const char *cmd, const char *arg, const char *synopsis)
{
	fprintf(stderr, "tessera %s: unexpected argument '%s'\nUsage: %s\n", cmd, arg, synopsis);
	return 2;
}

/* Append "&name=value" (escaped) to path when value is set. */
static void add_query(char *path, size_t n, const char *name, const char *value)
{
	if (!value)
		return;
	char *e = client_escape(value);
	size_t used = strlen(path);
	snprintf(path + used, n - used, "%s%s=%s", strchr(path, '?') ? "&" : "?", name, e ? e : "");
	free(e);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---------- export ---------- */

struct dl {
	FILE *out;
	struct audit_check *check;
	bool tty;
	long status;
	CURL *h;
	struct buf err;      /* an error reply's body */
	int64_t expected;    /* X-Tessera-Expected-Records */
	uint64_t bytes;
	int64_t lines;
	double t0, shown_at;
	bool write_failed;
};

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct dl *d = arg;
	size_t len = size * n;
	static const char name[] = "x-tessera-expected-records:";
	if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0)
		d->expected = strtoll(p + sizeof(name) - 1, NULL, 10);
	return len;
}

static void progress(struct dl *d, bool final)
{
	if (!d->tty)
		return;
	double t = now_s();
	if (!final && t - d->shown_at < 0.1)
		return;
	d->shown_at = t;
	int64_t recs = audit_check_records(d->check);
	double mb = (double)d->bytes / 1e6, rate = t > d->t0 ? mb / (t - d->t0) : 0;
	char bar[32] = "";
	if (d->expected > 0) {
		int fill = (int)(20.0 * (double)recs / (double)d->expected);
		if (fill > 20)
			fill = 20;
		for (int i = 0; i < 20; i++)
			bar[i] = i < fill ? '=' : ' ';
		bar[20] = '\0';
		fprintf(stderr, "\r[%s] %3d%% %" PRId64 "/%" PRId64 " records  %.1f MB  %.1f MB/s ", bar,
			(int)(100.0 * (double)recs / (double)d->expected), recs, d->expected, mb, rate);
	} else {
		fprintf(stderr, "\r%" PRId64 " records  %.1f MB  %.1f MB/s ", recs, mb, rate);
	}
	if (final)
		fprintf(stderr, "\n");
	fflush(stderr);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct dl *d = arg;
	size_t len = size * n;
	if (!d->status)
		curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &d->status);
	if (d->status != 200)
		return buf_append(&d->err, p, len) == TSR_OK ? len : 0;
	if (fwrite(p, 1, len, d->out) != len) {
		d->write_failed = true;
		return 0;
	}
	d->bytes += len;
	audit_check_feed(d->check, p, len);
	progress(d, false);
	return len;
}

/* GET path from the server as JSON (the published keys). */
static int fetch_keys(struct client *c, struct audit_pubkey **keys, int *nkeys)
{
	json_t *reply = NULL;
	int r = cli_call(c, "audit export", "GET", "/audit/v1/keys", NULL, &reply);
	if (r)
		return r;
	tsr_rc rc = audit_keys_from_json(reply, keys, nkeys);
	json_decref(reply);
	if (rc != TSR_OK) {
		fprintf(stderr, "tessera audit export: tesserad published malformed keys\n");
		return 1;
	}
	return 0;
}

static int cmd_export(struct client *c, int argc, char **argv)
{
	static const char syn[] = "tessera audit export [--from T] [--to T] [--format jsonl|csv] [--user U] [--repo R] "
				  "[--output FILE]";
	const char *from = NULL, *to = NULL, *format = NULL, *user = NULL, *repo = NULL, *output = NULL, *v;
	for (int i = 1; i < argc; i++) {
		if ((v = flag(argc, argv, &i, "--from")))
			from = v;
		else if ((v = flag(argc, argv, &i, "--to")))
			to = v;
		else if ((v = flag(argc, argv, &i, "--format")))
			format = v;
		else if ((v = flag(argc, argv, &i, "--user")))
			user = v;
		else if ((v = flag(argc, argv, &i, "--repo")))
			repo = v;
		else if ((v = flag(argc, argv, &i, "--output")) || (v = flag(argc, argv, &i, "-o")))
			output = v;
		else
			return usage_error("audit export", argv[i], syn);
	}
	if (format && strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) {
		fprintf(stderr, "tessera audit export: --format must be jsonl or csv\n");
		return 2;
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	struct audit_pubkey *keys = NULL;
	int nkeys = 0;
	if ((r = fetch_keys(c, &keys, &nkeys)) != 0)
		return r;
	char path[4096] = "/admin/v1/audit/export";
	add_query(path, sizeof(path), "from", from);
	add_query(path, sizeof(path), "to", to);
	add_query(path, sizeof(path), "format", format);
	add_query(path, sizeof(path), "user", user);
	add_query(path, sizeof(path), "repo", repo);

	struct dl d;
	memset(&d, 0, sizeof(d));
	d.out = output ? fopen(output, "w") : stdout;
	if (!d.out) {
		fprintf(stderr, "tessera audit export: cannot write %s: %s\n", output, strerror(errno));
		free(keys);
		return 1;
	}
	d.tty = isatty(2);
	d.t0 = now_s();
	buf_init(&d.err, 1u << 20);
	tsr_rc rc = audit_check_new(keys, nkeys, NULL, &d.check);
	free(keys);
	if (rc != TSR_OK)
		return 1;
	char url[8192], auth[512];
	snprintf(url, sizeof(url), "%s%s", c->url, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
	struct curl_slist *hdr = curl_slist_append(NULL, auth);
	OPENSSL_cleanse(auth, sizeof(auth));
	d.h = curl_easy_init();
	curl_easy_setopt(d.h, CURLOPT_URL, url);
	curl_easy_setopt(d.h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
	curl_easy_setopt(d.h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(d.h, CURLOPT_HEADERDATA, &d);
	curl_easy_setopt(d.h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(d.h, CURLOPT_NOSIGNAL, 1L);
	/* an export may take long; a stalled one (under 1 byte/s for 10 minutes) is abandoned */
	curl_easy_setopt(d.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(d.h, CURLOPT_LOW_SPEED_TIME, 600L);
	curl_easy_setopt(d.h, CURLOPT_USERAGENT, "tessera/" PACKAGE_VERSION);
	if (d.tty)
		fprintf(stderr, "exporting… (tesserad verifies the chain as it streams)");
	CURLcode cc = curl_easy_perform(d.h);
	curl_easy_getinfo(d.h, CURLINFO_RESPONSE_CODE, &d.status);
	curl_easy_cleanup(d.h);
	curl_slist_free_all(hdr);
	int status = 0;
	if (d.status && d.status != 200) {
		if (d.tty)
			fprintf(stderr, "\n");
		json_error_t e;
		json_t *j = d.err.len ? json_loadb(d.err.data, d.err.len, 0, &e) : NULL;
		fprintf(stderr, "tessera audit export: %s\n", client_error_message(j, "request failed"));
		json_decref(j);
		status = status_exit(status_from_http(d.status));
	} else if (d.write_failed) {
		fprintf(stderr, "\ntessera audit export: cannot write the output: %s\n", strerror(errno));
		status = 1;
	} else if (cc != CURLE_OK) {
		fprintf(stderr, "\ntessera audit export: the transfer failed: %s\n", curl_easy_strerror(cc));
		status = 1;
	}
	if (d.out != stdout && fclose(d.out) != 0 && !status) {
		fprintf(stderr, "tessera audit export: cannot write %s: %s\n", output, strerror(errno));
		status = 1;
	} else if (d.out == stdout && fflush(stdout) != 0 && !status) {
		status = 1;
	}
	if (!status) {
		progress(&d, true);
		bool ok = audit_check_finish(d.check);
		audit_check_report(d.check, stderr);
		if (!ok)
			status = 1;
	}
	audit_check_free(d.check);
	buf_free(&d.err);
	return status;
}

/* ---------- verify ---------- */

static int verify_offline(struct client *c, const char *file, const char *const *keyv, int nk)
{
	struct audit_pubkey *keys = NULL;
	int nkeys = 0;
	char err[600];
	if (audit_keys_load(keyv, nk, &keys, &nkeys, err, sizeof(err)) != TSR_OK) {
		fprintf(stderr, "tessera audit verify: --key %s\n", err);
		return 2;
	}
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (!f) {
		fprintf(stderr, "tessera audit verify: cannot read %s: %s\n", file, strerror(errno));
		free(keys);
		return 1;
	}
	struct audit_check *k;
	if (audit_check_new(keys, nkeys, f == stdin ? NULL : file, &k) != TSR_OK) {
		free(keys);
		return 1;
	}
	free(keys);
	char chunk[1 << 16];
	size_t got;
	double t0 = now_s();
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		audit_check_feed(k, chunk, got);
	bool rerr = ferror(f);
	if (f != stdin)
		fclose(f);
	if (rerr) {
		fprintf(stderr, "tessera audit verify: cannot read %s\n", file);
		audit_check_free(k);
		return 1;
	}
	bool ok = audit_check_finish(k);
	double secs = now_s() - t0;
	if (c->json) {
		json_t *j = audit_check_json(k);
		json_object_set_new(j, "seconds", json_real(secs));
		cli_print_json(j);
		json_decref(j);
	} else {
		audit_check_report(k, ok ? stdout : stderr);
	}
	audit_check_free(k);
	return ok ? 0 : 1;
}

static int verify_online(struct client *c, const char *from, const char *to)
{
	int r = cli_need_token(c);
	if (r)
		return r;
	char path[2048] = "/admin/v1/audit/verify";
	add_query(path, sizeof(path), "from", from);
	add_query(path, sizeof(path), "to", to);
	json_t *reply = NULL;
	if ((r = cli_call(c, "audit verify", "GET", path, NULL, &reply)) != 0)
		return r;
	bool ok = json_is_true(json_object_get(reply, "ok"));
	if (c->json) {
		cli_print_json(reply);
	} else {
		json_t *rg = json_object_get(reply, "range");
		json_t *seal = json_object_get(reply, "latest_seal");
		json_t *p = json_object_get(reply, "problem");
		long long n = (long long)json_integer_value(json_object_get(reply, "records"));
		if (ok) {
			printf("OK: %lld records", n);
			if (n)
				printf(", seq %lld..%lld", (long long)json_integer_value(json_object_get(rg, "seq_first")),
				       (long long)json_integer_value(json_object_get(rg, "seq_last")));
			printf(", chain intact, %lld seals verified\n",
			       (long long)json_integer_value(json_object_get(reply, "seals")));
			if (json_is_object(seal))
				printf("sealed up to seq %lld at %s (key %.16s…); %lld record%s after it not yet sealed\n",
				       (long long)json_integer_value(json_object_get(seal, "seq_upto")),
				       json_string_value(json_object_get(seal, "sealed_at")),
				       json_string_value(json_object_get(seal, "key_id")),
				       (long long)json_integer_value(json_object_get(reply, "unsealed")),
				       json_integer_value(json_object_get(reply, "unsealed")) == 1 ? "" : "s");
			else if (n)
				printf("no seal covers these records yet\n");
		} else {
			fprintf(stderr, "FAILED: %s: first bad record seq %lld: %s\n",
				json_string_value(json_object_get(p, "kind")),
				(long long)json_integer_value(json_object_get(p, "seq")),
				json_string_value(json_object_get(p, "message")));
		}
	}
	json_decref(reply);
	return ok ? 0 : 1;
}

static int cmd_verify(struct client *c, int argc, char **argv)
{
	static const char syn[] = "tessera audit verify [--from T --to T | --file F --key PUBKEY...]";
	const char *from = NULL, *to = NULL, *file = NULL, *v;
	const char *keys[16];
	int nk = 0;
	for (int i = 1; i < argc; i++) {
		if ((v = flag(argc, argv, &i, "--from")))
			from = v;
		else if ((v = flag(argc, argv, &i, "--to")))
			to = v;
		else if ((v = flag(argc, argv, &i, "--file")))
			file = v;
		else if ((v = flag(argc, argv, &i, "--key"))) {
			if (nk == 16) {
				fprintf(stderr, "tessera audit verify: at most 16 --key\n");
				return 2;
			}
			keys[nk++] = v;
		} else
			return usage_error("audit verify", argv[i], syn);
	}
	if (file) {
		if (from || to) {
			fprintf(stderr, "tessera audit verify: --file verifies the whole file; --from/--to are for tesserad\n");
			return 2;
		}
		if (!nk) {
			fprintf(stderr, "tessera audit verify: --file needs --key (a key from GET /audit/v1/keys)\n"
					"Usage: %s\n",
				syn);
			return 2;
		}
		return verify_offline(c, file, keys, nk);
	}
	if (nk) {
		fprintf(stderr, "tessera audit verify: --key goes with --file\n");
		return 2;
	}
	return verify_online(c, from, to);
}

/* ---------- search ---------- */

static const char *str_or(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "-";
}

static int cmd_search(struct client *c, int argc, char **argv)
{
	static const char syn[] = "tessera audit search [--user U] [--repo R] [--upstream N] [--action A] "
				  "[--decision D] [--from T] [--to T] [--limit N] [--before SEQ]";
	static const char *const names[] = { "user", "repo", "upstream", "action", "decision", "from", "to", "limit",
					     "before" };
	const char *vals[9] = { 0 };
	for (int i = 1; i < argc; i++) {
		bool matched = false;
		for (int k = 0; k < 9 && !matched; k++) {
			char fl[32];
			snprintf(fl, sizeof(fl), "--%s", names[k]);
			const char *v = flag(argc, argv, &i, fl);
			if (v) {
				vals[k] = v;
				matched = true;
			}
		}
		if (!matched)
			return usage_error("audit search", argv[i], syn);
	}
	int r = cli_need_token(c);
	if (r)
		return r;
	char path[4096] = "/admin/v1/audit/search";
	for (int k = 0; k < 9; k++)
		add_query(path, sizeof(path), names[k], vals[k]);
	json_t *reply = NULL;
	if ((r = cli_call(c, "audit search", "GET", path, NULL, &reply)) != 0)
		return r;
	if (c->json) {
		cli_print_json(reply);
		json_decref(reply);
		return 0;
	}
	json_t *rows = json_object_get(reply, "records");
	if (json_array_size(rows) == 0) {
		printf("no matching records\n");
		json_decref(reply);
		return 0;
	}
	printf("%-8s %-27s %-18s %-20s %-8s %-24s %-12s %-8s %s\n", "SEQ", "AT", "ACTOR", "ACTION", "OUTCOME", "TARGET",
	       "UPSTREAM", "DECISION", "BYTES");
	size_t i;
	json_t *row;
	json_array_foreach (rows, i, row) {
		json_t *rb = json_object_get(row, "req_bytes");
		char bytes[24] = "-";
		if (json_is_integer(rb))
			snprintf(bytes, sizeof(bytes), "%lld", (long long)json_integer_value(rb));
		printf("%-8lld %-27s %-18s %-20s %-8s %-24s %-12s %-8s %s\n",
		       (long long)json_integer_value(json_object_get(row, "seq")),
		       json_string_value(json_object_get(row, "at")), json_string_value(json_object_get(row, "actor")),
		       json_string_value(json_object_get(row, "action")),
		       json_string_value(json_object_get(row, "outcome")),
		       str_or(row, "target"), str_or(row, "upstream"), str_or(row, "decision"), bytes);
	}
	json_t *next = json_object_get(reply, "next_before");
	if (json_is_integer(next))
		printf("more: --before %lld\n", (long long)json_integer_value(next));
	json_decref(reply);
	return 0;
}

static const struct command audit_cmds[] = {
	{ "audit export",
	  "tessera audit export [--from T] [--to T] [--format jsonl|csv] [--user U] [--repo R] [--output FILE]",
	  "stream the audit records of a time range with their seals and a signed verification record", cmd_export },
	{ "audit verify", "tessera audit verify [--from T --to T | --file F --key PUBKEY...]",
	  "verify the audit chain and its seals (tesserad), or an export file offline; exit 1 naming the first bad "
	  "record",
	  cmd_verify },
	{ "audit search",
	  "tessera audit search [--user U] [--repo R] [--upstream N] [--action A] [--decision D] [--from T] [--to T] "
	  "[--limit N] [--before SEQ]",
	  "find audit records (newest first)", cmd_search },
};
COMMAND_GROUP(audit_commands, audit_cmds);
