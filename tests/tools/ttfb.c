/*
 * ttfb — time to first byte of sequential streaming chat completions (bench/gateway).
 *
 *   ttfb PORT PATH TOKEN|- new|kept N
 *
 * Sends N streaming requests to 127.0.0.1:PORT, one at a time, each on a
 * new connection (new) or all on one kept-alive connection (kept), reads
 * each answer to its end (Content-Length or the last chunk) and prints
 * "p50 p99" of the time from sending to the first byte of the answer, in
 * microseconds. A new connection's time includes its connect(). The
 * figures of one program on both sides of a hop, without a process start
 * per request (as curl -w would have).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static int connect_to(long port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		fprintf(stderr, "ttfb: connect to 127.0.0.1:%ld: %s\n", port, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Is the answer in buf[0, len) complete? -1: malformed. */
static int complete(const char *buf, size_t len)
{
	const char *eoh = memmem(buf, len, "\r\n\r\n", 4);
	if (!eoh)
		return 0;
	size_t hlen = (size_t)(eoh - buf) + 4;
	const char *cl = memmem(buf, hlen, "\r\nContent-Length:", 17);
	if (!cl)
		cl = memmem(buf, hlen, "\r\ncontent-length:", 17);
	if (cl)
		return len >= hlen + strtoul(cl + 17, NULL, 10);
	if (!memmem(buf, hlen, "chunked", 7))
		return -1;
	return len >= hlen + 5 && memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0;
}

/* A whole decimal number in [lo, hi], else -1. */
static long number(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || end == s || *end || v < lo || v > hi ? -1 : v;
}

int main(int argc, char **argv)
{
	long port = argc == 6 ? number(argv[1], 1, 65535) : -1, nl = argc == 6 ? number(argv[5], 1, 10000000) : -1;
	if (port < 0 || nl < 0 || (strcmp(argv[4], "new") != 0 && strcmp(argv[4], "kept") != 0)) {
		fprintf(stderr, "usage: ttfb PORT PATH TOKEN|- new|kept N\n");
		return 2;
	}
	int n = (int)nl;
	bool kept = strcmp(argv[4], "kept") == 0;
	char auth[1024] = "";
	if (strcmp(argv[3], "-") != 0)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", argv[3]);
	char req[2048];
	int rlen = snprintf(req, sizeof(req),
			    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
			    "Content-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
			    argv[2], auth, strlen(BODY), BODY);
	long long *t = calloc((size_t)n, sizeof(*t));
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	if (!t || !buf || rlen < 0 || (size_t)rlen >= sizeof(req))
		return 1;
	int fd = -1;
	for (int i = 0; i < n; i++) {
		long long t0 = now_ns();
		if (fd < 0)
			fd = connect_to(port);
		if (write(fd, req, (size_t)rlen) != rlen) {
			fprintf(stderr, "ttfb: write: %s\n", strerror(errno));
			return 1;
		}
		size_t len = 0;
		int done = 0;
		while (!done) {
			ssize_t r = read(fd, buf + len, cap - len);
			if (r <= 0) {
				fprintf(stderr, "ttfb: request %d: %s\n", i, r < 0 ? strerror(errno) : "connection closed");
				return 1;
			}
			if (len == 0)
				t[i] = now_ns() - t0;
			len += (size_t)r;
			done = complete(buf, len);
			if (done < 0 || (!done && len == cap)) {
				fprintf(stderr, "ttfb: request %d: an answer this tool cannot read\n", i);
				return 1;
			}
		}
		if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
			const char *eol = memchr(buf, '\r', len);
			fprintf(stderr, "ttfb: request %d: %.*s\n", i, (int)(eol ? (size_t)(eol - buf) : len < 40 ? len : 40), buf);
			return 1;
		}
		if (!kept) {
			close(fd);
			fd = -1;
		}
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_ll);
	printf("%lld %lld\n", t[n / 2] / 1000, t[(long long)n * 99 / 100] / 1000);
	free(t);
	free(buf);
	return 0;
}
