/*
 * devpg.c — see devpg.h.
 *
 * Finding the server binaries: TESSERA_PG_BINDIR, else PATH, else the
 * newest /usr/lib/postgresql/N/bin (Debian keeps them off PATH).
 * Files: STATE/pg (data dir and socket), STATE/pg.log (server log),
 * STATE/initdb.log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>

#include "devpg.h"
#include "../lib/log.h"

struct devpg {
	pid_t pid;
	char datadir[PATH_MAX];
};

static bool executable(const char *dir, const char *name)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, X_OK) == 0;
}

static bool find_bindir(char *out, size_t n)
{
	const char *env = getenv("TESSERA_PG_BINDIR");
	if (env) {
		snprintf(out, n, "%s", env);
		return executable(out, "initdb") && executable(out, "postgres");
	}
	const char *path = getenv("PATH");
	if (path) {
		char *copy = strdup(path), *save = NULL;
		for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
			if (executable(d, "initdb") && executable(d, "postgres")) {
				snprintf(out, n, "%s", d);
				free(copy);
				return true;
			}
		}
		free(copy);
	}
	DIR *dd = opendir("/usr/lib/postgresql");
	long best = -1;
	if (dd) {
		struct dirent *e;
		while ((e = readdir(dd)) != NULL) {
			char *end;
			long v = strtol(e->d_name, &end, 10);
			if (*end || end == e->d_name || v <= best)
				continue;
			char d[PATH_MAX];
			snprintf(d, sizeof(d), "/usr/lib/postgresql/%s/bin", e->d_name);
			if (executable(d, "initdb") && executable(d, "postgres")) {
				best = v;
				snprintf(out, n, "%s", d);
			}
		}
		closedir(dd);
	}
	return best >= 0;
}

struct runas {
	bool drop;
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* In a forked child: become the cluster's account. Never returns on failure. */
static void child_become(const struct runas *ra)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (ra->drop) {
		if (initgroups(ra->name, ra->gid) != 0 || setgid(ra->gid) != 0 || setuid(ra->uid) != 0) {
			fprintf(stderr, "tesserad: cannot switch to the '%s' account: %s\n", ra->name, strerror(errno));
			_exit(127);
		}
	}
}

/* Run argv as the cluster's account with output to logpath; returns exit status or -1. */
static int run_wait(const struct runas *ra, const char *logpath, char *const argv[])
{
	/* opened here, as the caller: the cluster's account may not create files in the state dir */
	int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(fd);
		return -1;
	}
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		child_become(ra);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fd);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Can the cluster's account reach dir? Checked in a child that drops privileges. */
static bool reachable(const struct runas *ra, const char *dir)
{
	if (!ra->drop)
		return true;
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		child_become(ra);
		_exit(access(dir, R_OK | W_OK | X_OK) == 0 ? 0 : 1);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void tail_log(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char lines[8][512];
	int n = 0;
	while (fgets(lines[n % 8], sizeof(lines[0]), f))
		n++;
	fclose(f);
	for (int i = n > 8 ? n - 8 : 0; i < n; i++)
		fprintf(stderr, "  | %s", lines[i % 8]);
}

static tsr_rc create_database(const char *sockdir)
{
	char ci[PATH_MAX + 64];
	snprintf(ci, sizeof(ci), "host='%s' port=5432 dbname=postgres user=tessera connect_timeout=10", sockdir);
	PGconn *c = PQconnectdb(ci);
	tsr_rc rc = TSR_UNAVAILABLE;
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = 'tessera'"); /* checksrc: ok */
		bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
		bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
		if (ok && !exists) {
			r = PQexec(c, "CREATE DATABASE tessera"); /* checksrc: ok */
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			if (!ok)
				fprintf(stderr, "tesserad: cannot create database tessera: %s", PQerrorMessage(c));
			PQclear(r);
		}
		rc = ok ? TSR_OK : TSR_INTERNAL;
	} else {
		fprintf(stderr, "tesserad: cannot connect to the private cluster: %s", PQerrorMessage(c));
	}
	PQfinish(c);
	return rc;
}

tsr_rc devpg_start(const char *state_dir, struct devpg **out, char **conninfo)
{
	char bindir[PATH_MAX];
	if (!find_bindir(bindir, sizeof(bindir))) {
		fprintf(stderr,
			"tesserad: PostgreSQL server binaries (initdb, postgres) not found%s%s: "
			"install the Debian package 'postgresql' (apt-get install postgresql), "
			"or set TESSERA_PG_BINDIR, or configure [database] url\n",
			getenv("TESSERA_PG_BINDIR") ? " in TESSERA_PG_BINDIR=" : "",
			getenv("TESSERA_PG_BINDIR") ? getenv("TESSERA_PG_BINDIR") : "");
		return TSR_UNAVAILABLE;
	}

	struct runas ra = { 0 };
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (!pw) {
			fprintf(stderr, "tesserad: PostgreSQL refuses to run as root and there is no 'postgres' account "
					"to run the private cluster: install the Debian package 'postgresql' (it creates "
					"the account) or run tesserad as an unprivileged user\n");
			return TSR_UNAVAILABLE;
		}
		ra.drop = true;
		ra.uid = pw->pw_uid;
		ra.gid = pw->pw_gid;
		snprintf(ra.name, sizeof(ra.name), "%s", pw->pw_name);
	}

	struct devpg *d = calloc(1, sizeof(*d));
	if (!d)
		return TSR_INTERNAL;
	char abs_state[PATH_MAX];
	if (!realpath(state_dir, abs_state)) {
		fprintf(stderr, "tesserad: state directory %s: %s\n", state_dir, strerror(errno));
		free(d);
		return TSR_INVALID;
	}
	snprintf(d->datadir, sizeof(d->datadir), "%s/pg", abs_state);
	if (strlen(d->datadir) + sizeof("/.s.PGSQL.5432") > 107) {
		fprintf(stderr, "tesserad: state directory path %s is too long for a Unix socket; "
				"choose a shorter --state-dir\n", abs_state);
		free(d);
		return TSR_INVALID;
	}
	if (mkdir(d->datadir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "tesserad: cannot create %s: %s\n", d->datadir, strerror(errno));
		free(d);
		return TSR_INTERNAL;
	}
	if (ra.drop && chown(d->datadir, ra.uid, ra.gid) != 0) {
		fprintf(stderr, "tesserad: cannot give %s to the postgres account: %s\n", d->datadir, strerror(errno));
		free(d);
		return TSR_INTERNAL;
	}
	if (!reachable(&ra, d->datadir)) {
		fprintf(stderr,
			"tesserad: the '%s' account that runs the private PostgreSQL cannot enter %s "
			"(a parent directory is closed to it, e.g. /root); choose a state directory it can reach, "
			"e.g. --state-dir /var/lib/tessera-dev\n",
			ra.name, d->datadir);
		free(d);
		return TSR_DENIED;
	}

	char pgver[PATH_MAX + 16], logpath[PATH_MAX], initlog[PATH_MAX];
	snprintf(pgver, sizeof(pgver), "%s/PG_VERSION", d->datadir);
	snprintf(logpath, sizeof(logpath), "%s/pg.log", abs_state);
	snprintf(initlog, sizeof(initlog), "%s/initdb.log", abs_state);
	if (access(pgver, F_OK) != 0) {
		log_info("devpg_initdb", "datadir=%s", d->datadir);
		char initdb[PATH_MAX];
		snprintf(initdb, sizeof(initdb), "%s/initdb", bindir);
		char *argv[] = { initdb, "-D", d->datadir, "-U", "tessera", "--auth-local=trust",
				 "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions", NULL };
		int st = run_wait(&ra, initlog, argv);
		if (st != 0) {
			fprintf(stderr, "tesserad: initdb failed (exit %d); its log %s ends with:\n", st, initlog);
			tail_log(initlog);
			free(d);
			return TSR_INTERNAL;
		}
	}
	/* the server log is opened here and handed to the child as its stdout/stderr */
	int lfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (lfd < 0) {
		fprintf(stderr, "tesserad: cannot open %s: %s\n", logpath, strerror(errno));
		free(d);
		return TSR_INTERNAL;
	}

	char postgres[PATH_MAX];
	snprintf(postgres, sizeof(postgres), "%s/postgres", bindir);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(lfd);
		free(d);
		return TSR_INTERNAL;
	}
	if (pid == 0) {
		dup2(lfd, 1);
		dup2(lfd, 2);
		child_become(&ra);
		/* if tesserad dies, Postgres gets a fast shutdown: never an orphan */
		prctl(PR_SET_PDEATHSIG, SIGINT);
		if (getppid() != parent)
			_exit(1);
		setsid();
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (nul >= 0)
			dup2(nul, 0);
		char *argv[] = { postgres, "-D", d->datadir, "-k", d->datadir, "-p", "5432",
				 "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700",
				 "-c", "logging_collector=off", NULL };
		execv(postgres, argv);
		_exit(127);
	}
	close(lfd);
	d->pid = pid;

	char ci[PATH_MAX + 64];
	snprintf(ci, sizeof(ci), "host='%s' port=5432 dbname=postgres user=tessera", d->datadir);
	bool up = false;
	for (int i = 0; i < 600 && !up; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "tesserad: the private PostgreSQL exited at start (is another tesserad --dev "
					"using %s?); %s ends with:\n", abs_state, logpath);
			tail_log(logpath);
			free(d);
			return TSR_UNAVAILABLE;
		}
		if (PQping(ci) == PQPING_OK)
			up = true;
		else
			nanosleep(&(struct timespec){ .tv_nsec = 100000000L }, NULL);
	}
	if (!up || create_database(d->datadir) != TSR_OK) {
		if (!up)
			fprintf(stderr, "tesserad: the private PostgreSQL did not become ready in 60 s; see %s\n", logpath);
		devpg_stop(d);
		return TSR_UNAVAILABLE;
	}
	size_t n = strlen(d->datadir) + 64;
	*conninfo = malloc(n);
	if (!*conninfo) {
		devpg_stop(d);
		return TSR_INTERNAL;
	}
	snprintf(*conninfo, n, "host='%s' port=5432 dbname=tessera user=tessera", d->datadir);
	log_info("devpg_started", "pid=%d datadir=%s", (int)pid, d->datadir);
	*out = d;
	return TSR_OK;
}

void devpg_stop(struct devpg *d)
{
	if (!d)
		return;
	if (d->pid > 0) {
		kill(d->pid, SIGINT); /* fast shutdown: roll back, checkpoint, exit */
		int st;
		bool gone = false;
		for (int i = 0; i < 300 && !gone; i++) {
			pid_t r = waitpid(d->pid, &st, WNOHANG);
			if (r == d->pid || (r < 0 && errno == ECHILD))
				gone = true;
			else
				nanosleep(&(struct timespec){ .tv_nsec = 100000000L }, NULL);
		}
		if (!gone) {
			kill(d->pid, SIGQUIT); /* immediate shutdown */
			waitpid(d->pid, &st, 0);
		}
		log_info("devpg_stopped", "pid=%d", (int)d->pid);
	}
	free(d);
}
