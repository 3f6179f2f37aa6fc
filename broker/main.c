/*
 * main.c — tesserad: command line, start-up order, signals, shutdown.
 *
 * Start-up: config → logging → (--dev: state dir, master key, private
 * cluster) → migrations (advisory-locked) → audit partitions → bootstrap
 * token (first start only, printed once on stdout) → HTTP listeners →
 * `event=ready`. Shutdown on SIGTERM/SIGINT runs the same list backwards.
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait(), so no handler runs in signal context.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "broker.h"
#include "admin_sync.h"
#include "devpg.h"
#include "http.h"
#include "jobs.h"
#include "hooks_github.h"
#include "scim.h"
#include "tokencache.h"
#include "auditlog.h"
#include "admin_audit.h"
#include "sealer.h"
#include "gateway.h"
#include "rotation.h"
#include "webhook_secret.h"
#include "../lib/masterkey.h"
#include "../db/credential.h"
#include "../db/migrate.h"
#include "../lib/config.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tesserad [-c FILE] [--listen ADDR:PORT]            serve\n"
		"       tesserad --dev [-c FILE] [--state-dir DIR] [--listen ADDR:PORT]\n"
		"                                          serve with a private PostgreSQL under DIR (default ./var)\n"
		"       tesserad [-c FILE] [--dev] migrate  apply pending database migrations and exit\n"
		"       tesserad [-c FILE] [--dev] --check-config\n"
		"       tesserad --dump-config | --list-routes | --version | --help\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE     configuration file (tessera.conf(5))\n"
		"      --dev             embedded default: private PostgreSQL when [database] url is absent\n"
		"      --state-dir DIR   state directory (overrides [server] state_dir)\n"
		"      --listen ADDR     listen address (overrides [server] listen)\n"
		"      --check-config    validate the configuration and exit\n"
		"      --dump-config     list every configuration key with its type and default\n"
		"      --list-routes     list every HTTP route with the role it needs\n"
		"See tesserad(8).\n");
}

/* Directory of migrations: config, env, installed, then the source tree. */
static const char *migrations_dir(const struct config *cfg)
{
	if (cfg->database.migrations_dir)
		return cfg->database.migrations_dir;
	const char *env = getenv("TESSERA_MIGRATIONS_DIR");
	if (env && *env)
		return env;
	struct stat st;
	if (stat(TESSERA_PKGDATADIR "/migrations", &st) == 0 && S_ISDIR(st.st_mode))
		return TESSERA_PKGDATADIR "/migrations";
	return TESSERA_SRCDIR "/migrations";
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* --dev: make sure a master key exists (generated once, 0600). */
static tsr_rc ensure_master_key(const char *path)
{
	if (access(path, F_OK) == 0)
		return TSR_OK;
	uint8_t key[32];
	char hex[65];
	if (crypto_random(key, sizeof(key)) != TSR_OK)
		return TSR_INTERNAL;
	crypto_hex(key, sizeof(key), hex);
	OPENSSL_cleanse(key, sizeof(key));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		OPENSSL_cleanse(hex, sizeof(hex));
		return errno == EEXIST ? TSR_OK : TSR_INTERNAL;
	}
	hex[64] = '\n';
	ssize_t w = write(fd, hex, 65);
	OPENSSL_cleanse(hex, sizeof(hex));
	if (w != 65 || fsync(fd) != 0) {
		close(fd);
		unlink(path);
		return TSR_INTERNAL;
	}
	close(fd);
	log_info("master_key_created", "path=%s", path);
	return TSR_OK;
}

/* First start of a fresh database: create and print the bootstrap token. */
static tsr_rc bootstrap(struct db_pool *pool)
{
	char tok[TOKEN_LEN + 1];
	uint8_t h[SHA256_LEN];
	tsr_rc rc = crypto_token_new(tok);
	if (rc != TSR_OK)
		return rc;
	crypto_sha256(tok, strlen(tok), h);
	struct db_conn *c;
	rc = db_acquire(pool, 10000, &c);
	if (rc == TSR_OK) {
		bool created = false;
		rc = db_bootstrap_create(c, h, &created);
		db_release(pool, c);
		if (rc == TSR_OK && created) {
			/* printed once, on stdout, on a line of its own; never logged */
			printf("bootstrap token: %s\n", tok);
			fflush(stdout);
			log_info("bootstrap_token_created", "user=admin role=admin");
		}
	}
	OPENSSL_cleanse(tok, sizeof(tok));
	return rc;
}

static tsr_rc ensure_partitions(struct db_pool *pool)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(pool, 10000, &c);
	if (rc != TSR_OK)
		return rc;
	rc = db_simple(c, "SELECT audit_ensure_partitions(3)");
	db_release(pool, c);
	return rc;
}

static int64_t daily(const struct config *cfg)
{
	return 86400;
}

static tsr_rc job_partitions(struct broker *b, const char *arg)
{
	return ensure_partitions(b->pool);
}

/* Background jobs of every module (jobs.h): a module adds its line here. */
static const struct job_def job_defs[] = {
	{ "audit.partitions", daily, job_partitions },
	{ "audit.seal", sealer_interval, sealer_job },
	{ "audit.retention", retention_interval, retention_job },
	{ "sync.ldap", ldap_sync_interval, ldap_sync_job },
	{ "sync.github", github_sync_interval, github_sync_job },
	{ "sync.github.queue", github_queue_interval, github_queue_job },
	{ "rotation.retire", rotation_retire_interval, rotation_retire_job },
	{ "rotation.master_key", rotation_master_interval, rotation_master_job },
	{ "rotation.upstreams", rotation_upstreams_interval, rotation_upstreams_job },
	{ "webhook_secret.retire", webhook_secret_retire_interval, webhook_secret_retire_job },
	{ "webhook_secret.rotate", webhook_secret_rotate_interval, webhook_secret_rotate_job },
};

enum { OPT_DEV = 256, OPT_STATE, OPT_LISTEN, OPT_CHECK, OPT_DUMP, OPT_ROUTES, OPT_VERSION };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "dev", no_argument, NULL, OPT_DEV },
		{ "state-dir", required_argument, NULL, OPT_STATE }, { "listen", required_argument, NULL, OPT_LISTEN },
		{ "check-config", no_argument, NULL, OPT_CHECK }, { "dump-config", no_argument, NULL, OPT_DUMP },
		{ "list-routes", no_argument, NULL, OPT_ROUTES }, { "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *conf_path = NULL, *state_dir = NULL, *listen = NULL;
	bool dev = false, check = false;
	int o;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': conf_path = optarg; break;
		case OPT_DEV: dev = true; break;
		case OPT_STATE: state_dir = optarg; break;
		case OPT_LISTEN: listen = optarg; break;
		case OPT_CHECK: check = true; break;
		case OPT_DUMP: config_dump_keys(stdout); return 0;
		case OPT_ROUTES: http_list_routes(stdout); return 0;
		case OPT_VERSION: printf("tesserad %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	bool migrate_only = false;
	if (optind < argc) {
		if (strcmp(argv[optind], "migrate") == 0 && optind + 1 == argc) {
			migrate_only = true;
		} else {
			fprintf(stderr, "tesserad: unknown command '%s'\n", argv[optind]);
			usage(stderr);
			return 2;
		}
	}

	struct config *cfg = NULL;
	if (config_load(conf_path, dev, &cfg, stderr) != TSR_OK)
		return 1;
	if (listen) {
		free(cfg->server.listen);
		cfg->server.listen = strdup(listen);
		/* the same check as the config key */
		const char *colon = strrchr(listen, ':');
		if (!colon || colon == listen || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
			fprintf(stderr, "tesserad: --listen expects HOST:PORT, got '%s'\n", listen);
			config_free(cfg);
			return 2;
		}
	}
	if (state_dir) {
		free(cfg->server.state_dir);
		cfg->server.state_dir = strdup(state_dir);
	}
	if (check) {
		printf("%s: OK\n", conf_path ? conf_path : "(defaults)");
		config_free(cfg);
		return 0;
	}
	log_set_level((enum log_level)log_level_parse(cfg->server.log_level));

	/* signals: taken by sigwait() in this thread only */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	int status = 1;
	struct devpg *pg = NULL;
	struct db_pool *pool = NULL;
	struct http_server *http = NULL;
	struct jobs *jobs = NULL;
	struct tokencache *tokens = NULL;
	struct auditlog *audit = NULL;
	struct gateway *gateway = NULL;
	struct masterkey *mk = NULL;
	char *conninfo = NULL;
	char master[PATH_MAX];
	struct broker b = { .cfg = cfg, .started_at = time(NULL) };
	b.migrations_dir = migrations_dir(cfg);

	bool embedded = dev && !cfg->database.url && !cfg->database.url_file;
	if (dev) {
		/* 0711: the postgres account must traverse it when we are root; files inside are 0600/0700 */
		if (mkdir_p(cfg->server.state_dir, geteuid() == 0 ? 0711 : 0700) != 0) {
			fprintf(stderr, "tesserad: cannot create state directory %s: %s\n", cfg->server.state_dir,
				strerror(errno));
			goto out;
		}
		if (geteuid() == 0)
			chmod(cfg->server.state_dir, 0711);
		if (!cfg->server.master_key_file) {
			snprintf(master, sizeof(master), "%s/master.key", cfg->server.state_dir);
			if (ensure_master_key(master) != TSR_OK) {
				fprintf(stderr, "tesserad: cannot create master key %s\n", master);
				goto out;
			}
		}
	}
	if (embedded) {
		if (devpg_start(cfg->server.state_dir, &pg, &conninfo) != TSR_OK)
			goto out;
	} else if (config_secret(cfg->database.url, cfg->database.url_file, &conninfo) != TSR_OK) {
		fprintf(stderr, "tesserad: cannot read [database] url_file %s\n",
			cfg->database.url_file ? cfg->database.url_file : "");
		goto out;
	}

	/* migrations: every replica may run this; the advisory lock serialises them */
	{
		PGconn *mc;
		if (db_connect(conninfo, (int)cfg->database.connect_timeout, &mc) != TSR_OK) {
			fprintf(stderr, "tesserad: cannot connect to the database (see the log line above)\n");
			goto out;
		}
		char err[1024];
		int applied = 0;
		tsr_rc rc = migrate_run(mc, b.migrations_dir, MIGRATE_APPLY, &applied, err, sizeof(err));
		PQfinish(mc);
		if (rc != TSR_OK) {
			fprintf(stderr, "tesserad: %s\n", err);
			log_error("migrate_failed", "dir=%s", b.migrations_dir);
			goto out;
		}
		log_info("migrations_current", "dir=%s applied_now=%d", b.migrations_dir, applied);
	}
	if (db_pool_new(conninfo, (int)cfg->database.pool_size, (int)cfg->database.connect_timeout, &pool) != TSR_OK)
		goto out;
	b.pool = pool;
	b.conninfo = conninfo;
	if (ensure_partitions(pool) != TSR_OK) {
		fprintf(stderr, "tesserad: cannot create audit partitions\n");
		goto out;
	}
	if (migrate_only) {
		status = 0;
		goto out;
	}
	if (bootstrap(pool) != TSR_OK) {
		fprintf(stderr, "tesserad: cannot create the bootstrap token\n");
		goto out;
	}
	if (scim_import_token_file(&b) != TSR_OK) {
		fprintf(stderr, "tesserad: cannot import the SCIM token from [scim] token_file (see the log)\n");
		goto out;
	}
	if (auditlog_start(&b, &audit) != TSR_OK)
		goto out;
	b.audit = audit;
	if (tokencache_start(&b, &tokens) != TSR_OK)
		goto out;
	b.tokens = tokens;
	/* the master key: [server] master_key_file, --dev's generated one, or TESSERA_MASTER_KEY */
	{
		const char *mkf = cfg->server.master_key_file ? cfg->server.master_key_file : dev ? master : NULL;
		const char *env = getenv("TESSERA_MASTER_KEY");
		char mkerr[256];
		if ((mkf || (env && *env)) && masterkey_load(mkf, &mk, mkerr, sizeof(mkerr)) != TSR_OK) {
			fprintf(stderr, "tesserad: cannot load the master key: %s\n", mkerr);
			goto out;
		}
		if (rotation_load_previous_key(cfg, mk) != TSR_OK)
			goto out;
	}
	b.masterkey = mk;
	if (gateway_start(&b, mk, &gateway) != TSR_OK)
		goto out;
	b.gateway = gateway;
	if (jobs_start(&b, job_defs, (int)(sizeof(job_defs) / sizeof(job_defs[0])), &jobs) != TSR_OK)
		goto out;
	b.jobs = jobs;
	rotation_master_resume(&b);
	if (http_start(&b, &http) != TSR_OK)
		goto out;
	log_info("ready", "listen=%s dev=%s", cfg->server.listen, dev ? "true" : "false");

	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			struct config *fresh = NULL;
			if (conf_path && config_load(conf_path, dev, &fresh, stderr) == TSR_OK) {
				log_set_level((enum log_level)log_level_parse(fresh->server.log_level));
				log_info("reloaded", "reloadable=log_level");
				config_free(fresh);
			} else {
				log_warn("reload_skipped", "reason=\"%s\"", conf_path ? "config has errors" : "no config file");
			}
			continue;
		}
		log_info("shutdown", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
		break;
	}
	atomic_store(&b.shutting_down, true);
	status = 0;
out:
	http_stop(http, (int)cfg->server.shutdown_timeout);
	admin_audit_stop(); /* exports and verifications still running hold pooled connections */
	gateway_stop(gateway);
	jobs_stop(jobs);
	masterkey_free(mk); /* after the jobs: the sealer signs with it */
	tokencache_stop(tokens);
	auditlog_stop(audit);
	db_pool_free(pool);
	devpg_stop(pg);
	secret_free(conninfo);
	if (status == 0 && !migrate_only)
		log_info("stopped", "pid=%d", (int)getpid());
	config_free(cfg);
	return status;
}
