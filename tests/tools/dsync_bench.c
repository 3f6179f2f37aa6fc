/*
 * dsync_bench — what one durable write costs on a file system (bench/gateway).
 *
 *   dsync_bench DIR N
 *
 * Writes N batches the way the audit journal does ([audit] durability =
 * journal, broker/auditlog.c): one O_DIRECT | O_DSYNC pwrite of the 4 KiB
 * block(s) holding the end of the content, into a file whose space was
 * written with zeros beforehand (the journal's steady state), each batch
 * 800 bytes further on. Prints "p50 p99 cpu": the wall time of a write at
 * the 50th and 99th percentile and the mean CPU time (user + system) per
 * write, in microseconds. This is the floor under every answer that waits
 * for its audit record: no request can be answered sooner after its last
 * byte from the upstream than one such write. The file is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096
#define STEP 800

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return ((long long)u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000LL +
	       ((long long)u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000LL;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	char *rest = NULL;
	long nl = argc == 3 ? strtol(argv[2], &rest, 10) : 0;
	if (argc != 3 || *rest || nl < 1 || nl > 1000000) {
		fprintf(stderr, "usage: dsync_bench DIR N (1 to 1000000 writes)\n");
		return 2;
	}
	int n = (int)nl;
	char path[4096];
	snprintf(path, sizeof(path), "%s/dsync_bench.%d", argv[1], (int)getpid());
	size_t size = ((size_t)n * STEP + 2 * BLK + BLK - 1) / BLK * BLK;
	char *buf = NULL;
	long long *t = calloc((size_t)n, sizeof(*t));
	if (posix_memalign((void **)&buf, BLK, size) != 0 || !t) {
		fprintf(stderr, "dsync_bench: out of memory\n");
		return 1;
	}
	memset(buf, 0, size);
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || pwrite(fd, buf, size, 0) != (ssize_t)size || fsync(fd) != 0) {
		fprintf(stderr, "dsync_bench: %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	fd = open(path, O_WRONLY | O_DIRECT | O_DSYNC | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "dsync_bench: %s: O_DIRECT: %s\n", path, strerror(errno));
		unlink(path);
		return 1;
	}
	memset(buf, 'x', size);
	long long c0 = cpu_ns();
	for (int i = 0; i < n; i++) {
		off_t end = (off_t)i * STEP + STEP, from = ((off_t)i * STEP) & ~(off_t)(BLK - 1);
		size_t len = (size_t)((end - from + BLK - 1) & ~(off_t)(BLK - 1));
		long long t0 = now_ns();
		if (pwrite(fd, buf, len, from) != (ssize_t)len) {
			fprintf(stderr, "dsync_bench: write: %s\n", strerror(errno));
			unlink(path);
			return 1;
		}
		t[i] = now_ns() - t0;
	}
	long long cpu = cpu_ns() - c0;
	close(fd);
	unlink(path);
	qsort(t, (size_t)n, sizeof(*t), cmp_ll);
	printf("%lld %lld %lld\n", t[n / 2] / 1000, t[(n * 99) / 100] / 1000, cpu / n / 1000);
	free(t);
	free(buf);
	return 0;
}
