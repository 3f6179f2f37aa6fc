/*
 * scan_bench — the data-governance scanner alone: MB/s on one core over a
 * 32 KiB prompt shaped like what coding tools send (a JSON chat body with
 * source code, prose, numbers and JSON escapes, and no secret), plus the
 * same prompt with a few hits. Used by bench/gateway/run.
 *   scan_bench [SECONDS] [SIZE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/scanner.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const chunks[] = {
	"{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"system\",\"content\":\"You are a careful coding "
	"assistant. Answer with code.\"},{\"role\":\"user\",\"content\":\"",
	"static int parse_header(const char *line, struct header *out)\\n{\\n\\tsize_t n = strlen(line);\\n\\tif (n > 8192)"
	"\\n\\t\\treturn -1;\\n\\tconst char *colon = memchr(line, ':', n);\\n\\tif (!colon)\\n\\t\\treturn -2;\\n\\t"
	"out->name_len = (size_t)(colon - line);\\n\\treturn 0;\\n}\\n",
	"The function above fails when the header line is longer than 8192 bytes; on 2024-03-15 at 10:42 the service "
	"logged 1532 errors of type 413 from 17 clients. Explain why, and rewrite it to stream the value instead. ",
	"for (int i = 0; i < 1024; i++) { total += values[i] * 3 - offsets[i % 7]; } // sum with weights 0.25, 0.5, 1\\n",
	"def handler(event, context):\\n    items = event.get(\\\"items\\\", [])\\n    return {\\\"status\\\": 200, "
	"\\\"count\\\": len(items), \\\"version\\\": \\\"1.4.2\\\"}\\n",
	"SELECT u.id, u.user_name, count(*) FROM users u JOIN events e ON e.user_id = u.id WHERE e.at > now() - "
	"interval '7 days' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 50;\\n",
};

static char *make_prompt(size_t size, bool with_hits)
{
	char *p = malloc(size + 1);
	size_t at = 0, k = 1;
	size_t head = strlen(chunks[0]);
	memcpy(p, chunks[0], head);
	at = head;
	while (at < size - 4) {
		const char *c = chunks[k];
		size_t len = strlen(c);
		if (at + len > size - 4)
			len = size - 4 - at;
		memcpy(p + at, c, len);
		at += len;
		k = k % 5 + 1;
	}
	memcpy(p + at, "\"}]}", 4);
	p[size] = '\0';
	if (with_hits) {
		memcpy(p + size / 3, " 123-45-6789 ", 13);
		memcpy(p + size / 2, " AKIAIOSFODNN7EXAMPLE ", 22);
	}
	return p;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? strtod(argv[1], NULL) : 1.0;
	size_t size = argc > 2 ? strtoul(argv[2], NULL, 10) : 32768;
	struct scanner *s;
	char err[200];
	const char *tpl[] = { "mrn:MRN-#######", "claim_id:CLM-##########" };
	if (scanner_new(tpl, 2, &s, err, sizeof(err)) != TSR_OK) {
		fprintf(stderr, "scan_bench: %s\n", err);
		return 1;
	}
	for (int hits = 0; hits < 2; hits++) {
		char *p = make_prompt(size, hits);
		struct scan_result r;
		long iters = 0;
		double t0 = now_s(), t;
		do {
			for (int k = 0; k < 64; k++)
				scanner_scan(s, p, size, &r);
			iters += 64;
			t = now_s();
		} while (t - t0 < secs);
		printf("scanner %s: %zu-byte prompt, %u hits, %.0f MB/s, %.1f us per prompt\n",
		       hits ? "with hits" : "clean", size, r.total, (double)iters * (double)size / (t - t0) / 1e6,
		       (t - t0) / (double)iters * 1e6);
		free(p);
	}
	scanner_free(s);
	return 0;
}
