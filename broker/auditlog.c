/*
 * auditlog.c — see auditlog.h.
 *
 * Each event travels in a struct item: on the waiter's stack for
 * auditlog_append() (the waiter blocks until `done`), on the heap for
 * auditlog_submit() (the writer calls back and frees it). The queue is a
 * linked list of pointers to items; items are visited only under al->mu,
 * except by the writer between detaching a batch and completing it.
 *
 * The spool is one append-only file, STATE/spool/audit.spool, of JSON lines
 * (one event each, every field of struct audit_event), written and
 * fdatasync'ed per batch. While it exists every batch first tries to replay
 * it; the file is removed only after all of it is in Postgres, and replay
 * skips events already stored, so an interrupted replay is simply re-run.
 * A torn last line (crash while writing) is ignored: its batch was never
 * acknowledged. Only the writer thread touches the spool.
 *
 * With [audit] durability = journal the same file is the write-ahead
 * journal: the writer appends every batch to it (one synchronous write,
 * O_DIRECT | O_DSYNC, into space allocated ahead so the file's size does
 * not change; see journal_write) and acknowledges; a second thread, the
 * shipper, reads what was appended since it last looked (by byte offset,
 * j_shipped) and appends it to the chain in journal order. What it ships
 * in this process's lifetime is known stored, so it appends plainly; what
 * is uncertain (a journal found at start, a chunk whose commit failed) is
 * shipped with db_audit_replay's de-duplication. Once everything is shipped
 * the journal starts over (not synced: a resurrected prefix is de-duplicated
 * on the next start): at offset 0 in the same space while busy, truncated
 * when quiet. Before each append the writer checks that the path
 * still names its open file, so records never go to a removed journal.
 * jmu guards the j_* fields and is held by the writer across its write +
 * fdatasync; al->mu and al->jmu are never held together.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "auditlog.h"
#include "auditlog_line.h"
#include "../db/audit_spool.h"
#include "../lib/buf.h"
#include "../lib/log.h"

#define MAX_BATCH 512
#define MAX_QUEUE 20000
#define REPLAY_CHUNK 500
#define SHIP_MEM (16LL << 20) /* journaled bytes the shipper may take from memory rather than the file */
#define SHIP_GATHER_NS 10000000L /* the shipper's pause after a pass that shipped something: larger COPYs */
#define TRUNCATE_AT (1 << 20) /* start a fully shipped journal over once it is this big (or when idle) */
#define JBLK 4096               /* journal writes: offset, length and buffer aligned to this */
#define J_STEP ((off_t)4 << 20) /* the journal grows in steps of this (j_grow) */
#define J_SCAN ((size_t)64 << 10) /* j_open reads the journal this much at a time */

struct item {
	struct item *next;
	struct audit_event ev; /* strings point into blob */
	char *blob;
	auditlog_done_fn cb;   /* async: called, then the item is freed */
	void *cb_arg;
	bool done;
	tsr_rc rc;
};

/*
 * A journaled batch, kept for the shipper so it need not read back and
 * parse what the writer just wrote: the journal's bytes [from, to) of
 * generation gen hold exactly these events, in this order. The items are
 * the shipper's (heap copies of synchronous waiters' events).
 */
struct shipb {
	struct shipb *next;
	off_t from, to;
	unsigned gen;
	int n;
	struct item *it[];
};

struct auditlog {
	struct broker *b;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct item *head, *tail;
	int depth;
	bool stop;
	struct db_conn conn; /* the writer's own connection */
	char spool_dir[PATH_MAX];
	char spool_path[PATH_MAX];
	/* health, read under mu by auditlog_ready() */
	bool pg_ok, spool_ok;
	bool spool_pending;
	atomic_llong spool_bytes; /* written by the writer, read by /metrics; journal: bytes not yet shipped */
	/* durability = journal */
	bool journal;
	long long journal_max;
	bool j_ok, j_full;        /* health, under mu */
	pthread_t shipper;
	bool shipper_started;
	pthread_cond_t ship;      /* with mu: work for the shipper */
	bool ship_kick, ship_stop;
	pthread_mutex_t jmu;
	int j_fd;                 /* -1: not open; the writer's (O_DIRECT | O_DSYNC when j_direct) */
	int j_rfd;                /* the same file, read-only and buffered: scans and the shipper */
	bool j_direct;
	off_t j_alloc;            /* the file's size: [j_size, j_alloc) is zeros */
	char *j_wbuf;             /* the writer's JBLK-aligned staging buffer */
	size_t j_wcap;
	char *j_zero;             /* J_STEP zero bytes, JBLK-aligned (j_grow without fallocate) */
	char j_tail[JBLK];        /* [j_size rounded down to JBLK, j_size): rewritten with each batch */
	dev_t j_dev;
	ino_t j_ino;
	off_t j_size;             /* bytes of complete, durable batches */
	off_t j_shipped;          /* prefix known to be in Postgres */
	bool j_dedup;             /* [j_shipped, ...) may be partly stored already */
	unsigned j_gen;           /* bumped when the file is truncated or replaced */
	struct shipb *sq, *sq_tail; /* journaled batches not yet shipped, in journal order (under jmu) */
	long long sq_bytes;       /* their journal bytes: at most SHIP_MEM, the rest is read back from the file */
};

/* Copy the strings of src into one allocation owned by the item. */
static tsr_rc item_fill(struct item *it, const struct audit_event *src)
{
	const char *const *fields[] = { &src->actor, &src->actor_addr, &src->action, &src->target, &src->outcome,
					&src->route, &src->model, &src->upstream, &src->decision, &src->rule_hits,
					&src->req_sha256_hex, &src->detail };
	const char **dst[] = { &it->ev.actor, &it->ev.actor_addr, &it->ev.action, &it->ev.target, &it->ev.outcome,
			       &it->ev.route, &it->ev.model, &it->ev.upstream, &it->ev.decision, &it->ev.rule_hits,
			       &it->ev.req_sha256_hex, &it->ev.detail };
	size_t n = 0;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (*fields[i])
			n += strlen(*fields[i]) + 1;
	it->ev = *src;
	it->blob = malloc(n ? n : 1);
	if (!it->blob)
		return TSR_INTERNAL;
	char *p = it->blob;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (!*fields[i]) {
			*dst[i] = NULL;
			continue;
		}
		size_t len = strlen(*fields[i]) + 1;
		memcpy(p, *fields[i], len);
		*dst[i] = p;
		p += len;
	}
	return TSR_OK;
}

static void item_free(struct item *it)
{
	if (it) {
		free(it->blob);
		free(it);
	}
}

/* A heap item holding a copy of ev (NULL: out of memory). */
static struct item *item_copy(const struct audit_event *ev)
{
	struct item *it = calloc(1, sizeof(*it));
	if (it && item_fill(it, ev) != TSR_OK) {
		item_free(it);
		it = NULL;
	}
	return it;
}

/* Free sb and the batches chained after it. */
static void shipb_free(struct shipb *sb)
{
	while (sb) {
		struct shipb *next = sb->next;
		for (int i = 0; i < sb->n; i++)
			item_free(sb->it[i]);
		free(sb);
		sb = next;
	}
}

/* ---------- Postgres ---------- */

static void drop_conn(struct auditlog *al)
{
	if (al->conn.pg)
		PQfinish(al->conn.pg);
	free(al->conn.prepared);
	memset(&al->conn, 0, sizeof(al->conn));
}

static tsr_rc writer_conn(struct auditlog *al)
{
	if (al->conn.pg && PQstatus(al->conn.pg) == CONNECTION_OK)
		return TSR_OK;
	drop_conn(al);
	tsr_rc rc = db_connect(al->b->conninfo, 5, &al->conn.pg);
	if (rc != TSR_OK) {
		al->conn.pg = NULL;
		return TSR_UNAVAILABLE;
	}
	return TSR_OK;
}

/* Did rc come from an unreachable server (as opposed to a bad event)? */
static bool unreachable(struct auditlog *al, tsr_rc rc)
{
	return rc == TSR_UNAVAILABLE || !al->conn.pg || PQstatus(al->conn.pg) != CONNECTION_OK;
}

static void rollback_if_open(struct auditlog *al)
{
	if (al->conn.pg && PQstatus(al->conn.pg) == CONNECTION_OK &&
	    PQtransactionStatus(al->conn.pg) != PQTRANS_IDLE) {
		tsr_rc ignored = db_simple(&al->conn, "ROLLBACK");
		(void)ignored;
	}
}

/* ---------- spool ---------- */

/* Fill e from a spool line's object (written by auditlog_line()); strings point into j (keep j alive). */
static bool event_from_json(json_t *j, struct audit_event *e)
{
	memset(e, 0, sizeof(*e)); /* detail_canonical too: a replayed detail is canonicalised again */
	const char *id = json_string_value(json_object_get(j, "event_id"));
	if (!json_is_object(j) || !id || strlen(id) != 36)
		return false;
	memcpy(e->event_id, id, 37);
#define S(f) e->f = json_string_value(json_object_get(j, #f))
#define I(f) e->f = (int64_t)json_integer_value(json_object_get(j, #f))
	I(at_us); S(actor); I(actor_user_id); S(actor_addr); S(action); S(target); S(outcome); I(user_id); I(repo_id);
	I(credential_id); S(route); S(model); S(upstream); I(upstream_key_id); S(decision); S(rule_hits); I(req_bytes);
	I(resp_bytes); S(req_sha256_hex); I(status); I(latency_us); I(tokens_in); I(tokens_out); S(detail);
#undef S
#undef I
	return e->actor && e->action && e->outcome && e->at_us > 0;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) != 0)
			log_warn("audit_spool_dir_fsync_failed", "error=\"%s\"", strerror(errno));
		close(fd);
	}
}

/* n events as JSON lines, into out (initialised here; the caller frees it). */
static tsr_rc events_dump(const struct audit_event *ev, int n, struct buf *out)
{
	buf_init(out, (size_t)1 << 30);
	tsr_rc rc = TSR_OK;
	for (int i = 0; i < n && rc == TSR_OK; i++)
		rc = auditlog_line(out, &ev[i]);
	return rc;
}

/* Append n events to the spool file and make them durable. */
static tsr_rc spool_write(struct auditlog *al, const struct audit_event *ev, int n)
{
	if (mkdir(al->spool_dir, 0700) != 0 && errno != EEXIST) {
		log_error("audit_spool_unwritable", "dir=%s error=\"%s\"", al->spool_dir, strerror(errno));
		return TSR_UNAVAILABLE;
	}
	bool created = access(al->spool_path, F_OK) != 0;
	int fd = open(al->spool_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("audit_spool_unwritable", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		return TSR_UNAVAILABLE;
	}
	struct buf out;
	tsr_rc rc = events_dump(ev, n, &out);
	size_t off = 0;
	while (rc == TSR_OK && off < out.len) {
		ssize_t w = write(fd, out.data + off, out.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_error("audit_spool_write_failed", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
			rc = TSR_UNAVAILABLE;
			break;
		}
		off += (size_t)w;
	}
	if (rc == TSR_OK && fdatasync(fd) != 0) {
		log_error("audit_spool_fsync_failed", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		rc = TSR_UNAVAILABLE;
	}
	if (rc != TSR_OK && off > 0 && ftruncate(fd, lseek(fd, 0, SEEK_END) - (off_t)off) != 0)
		log_error("audit_spool_truncate_failed", "path=%s", al->spool_path);
	close(fd);
	if (rc == TSR_OK && created)
		fsync_dir(al->spool_dir);
	if (rc == TSR_OK) {
		long long total = atomic_fetch_add(&al->spool_bytes, (long long)out.len) + (long long)out.len;
		log_warn("audit_spooled", "events=%d spool_bytes=%lld", n, total);
	}
	buf_free(&out);
	return rc;
}

/* Can the spool take a write right now? (creates and removes a probe file) */
static bool spool_probe(struct auditlog *al)
{
	if (mkdir(al->spool_dir, 0700) != 0 && errno != EEXIST)
		return false;
	char probe[PATH_MAX + 16];
	snprintf(probe, sizeof(probe), "%s/.probe", al->spool_dir);
	int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	bool ok = write(fd, "x", 1) == 1 && fdatasync(fd) == 0;
	close(fd);
	unlink(probe);
	return ok;
}

/* Append a chunk of replayed events; on a bad event fall back to one by one, skipping what can never be stored. */
static tsr_rc replay_chunk(struct auditlog *al, const struct audit_event *ev, int n, int *stored)
{
	int appended = 0;
	tsr_rc rc = db_audit_replay(&al->conn, ev, n, &appended);
	if (rc == TSR_OK) {
		*stored += appended;
		return TSR_OK;
	}
	rollback_if_open(al);
	if (unreachable(al, rc))
		return TSR_UNAVAILABLE;
	for (int i = 0; i < n; i++) {
		rc = db_audit_replay(&al->conn, &ev[i], 1, &appended);
		if (rc == TSR_OK) {
			*stored += appended;
			continue;
		}
		rollback_if_open(al);
		if (unreachable(al, rc))
			return TSR_UNAVAILABLE;
		log_error("audit_spool_event_unstorable", "event_id=%s action=%s error=%s", ev[i].event_id,
			  ev[i].action ? ev[i].action : "-", status_name(rc));
	}
	return TSR_OK;
}

/* Replay the whole spool into Postgres, in order; remove it when all of it is stored. */
static tsr_rc spool_replay(struct auditlog *al)
{
	if (writer_conn(al) != TSR_OK)
		return TSR_UNAVAILABLE;
	FILE *f = fopen(al->spool_path, "re");
	if (!f) {
		if (errno == ENOENT) {
			al->spool_pending = false;
			atomic_store(&al->spool_bytes, 0);
			return TSR_OK;
		}
		log_error("audit_spool_unreadable", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		return TSR_UNAVAILABLE;
	}
	struct audit_event *evs = calloc(REPLAY_CHUNK, sizeof(*evs));
	json_t **docs = calloc(REPLAY_CHUNK, sizeof(*docs));
	char *line = NULL;
	size_t cap = 0;
	int n = 0, stored = 0, total = 0;
	tsr_rc rc = evs && docs ? TSR_OK : TSR_INTERNAL;
	for (;;) {
		ssize_t len = rc == TSR_OK ? getline(&line, &cap, f) : -1;
		if (len > 0 && line[0] == '\0')
			len = 0; /* a journal's zero padding (left by durability = journal): the end */
		if (len > 0 && line[len - 1] == '\n') {
			json_t *j = json_loadb(line, (size_t)len, 0, NULL);
			if (j && event_from_json(j, &evs[n])) {
				docs[n++] = j;
				total++;
			} else {
				json_decref(j);
				log_error("audit_spool_line_invalid", "path=%s", al->spool_path);
			}
		} else if (len > 0) {
			log_warn("audit_spool_torn_line", "path=%s bytes=%zd", al->spool_path, len);
		}
		if (n > 0 && (n == REPLAY_CHUNK || len <= 0)) {
			rc = replay_chunk(al, evs, n, &stored);
			for (int i = 0; i < n; i++)
				json_decref(docs[i]);
			n = 0;
		}
		if (len <= 0)
			break;
	}
	fclose(f);
	free(line);
	free(evs);
	free(docs);
	if (rc != TSR_OK)
		return rc;
	if (unlink(al->spool_path) != 0 && errno != ENOENT) {
		log_error("audit_spool_unlink_failed", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		return TSR_INTERNAL;
	}
	fsync_dir(al->spool_dir);
	al->spool_pending = false;
	atomic_store(&al->spool_bytes, 0);
	log_info("audit_spool_replayed", "events=%d stored=%d", total, stored);
	return TSR_OK;
}

/* ---------- the writer ---------- */

static void set_health(struct auditlog *al, bool pg_ok, bool spool_ok)
{
	pthread_mutex_lock(&al->mu);
	if (al->pg_ok != pg_ok || al->spool_ok != spool_ok)
		log_info("audit_health", "postgres=%s spool=%s", pg_ok ? "ok" : "down", spool_ok ? "ok" : "unwritable");
	al->pg_ok = pg_ok;
	al->spool_ok = spool_ok;
	pthread_mutex_unlock(&al->mu);
}

/* ---------- the journal (durability = journal) ---------- */

/* Does the journal's path still name the file we have open? (jmu held) */
static bool j_same_file(struct auditlog *al)
{
	struct stat st;
	return stat(al->spool_path, &st) == 0 && st.st_dev == al->j_dev && st.st_ino == al->j_ino;
}

static void j_close(struct auditlog *al)
{
	if (al->j_fd >= 0)
		close(al->j_fd);
	if (al->j_rfd >= 0)
		close(al->j_rfd);
	al->j_fd = al->j_rfd = -1;
	al->j_gen++;
}

/*
 * Open (or create) the journal (jmu held). Its content ends at the first
 * zero byte (every batch is written padded with zeros to a JBLK boundary,
 * at least one) or at the end of the file. A line without its newline
 * before that end is a torn batch (a crash in the middle of a write): it
 * was never acknowledged and is cut off with whatever follows the content.
 * Whatever the file holds is treated as possibly stored already (shipped
 * with de-duplication).
 */
static tsr_rc j_open(struct auditlog *al)
{
	if (al->j_fd >= 0)
		return TSR_OK;
	if (mkdir(al->spool_dir, 0700) != 0 && errno != EEXIST) {
		log_error("audit_journal_unwritable", "dir=%s error=\"%s\"", al->spool_dir, strerror(errno));
		return TSR_UNAVAILABLE;
	}
	bool created = access(al->spool_path, F_OK) != 0;
	/* each batch is one synchronous write to blocks already allocated: no file-size change to journal */
	bool direct = true;
	int fd = open(al->spool_path, O_RDWR | O_CREAT | O_CLOEXEC | O_DIRECT | O_DSYNC, 0600);
	if (fd < 0 && errno == EINVAL) { /* no direct I/O here (tmpfs): buffered writes and fdatasync */
		direct = false;
		fd = open(al->spool_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	}
	int rfd = fd >= 0 ? open(al->spool_path, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;
	if (fd < 0 || rfd < 0 || fstat(fd, &st) != 0) {
		log_error("audit_journal_unwritable", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		if (rfd >= 0)
			close(rfd);
		return TSR_UNAVAILABLE;
	}
	char *buf = malloc(J_SCAN);
	off_t zero_at = st.st_size, end;
	bool readable = buf != NULL;
	for (off_t off = 0; readable && off < st.st_size;) {
		ssize_t got = pread(rfd, buf, J_SCAN, off);
		if (got <= 0) {
			readable = false;
			break;
		}
		char *nul = memchr(buf, 0, (size_t)got);
		if (nul) {
			zero_at = off + (off_t)(nul - buf);
			break;
		}
		off += (off_t)got;
	}
	/* back from the first zero to the last newline before it */
	for (end = zero_at; readable && end > 0;) {
		off_t from = end > (off_t)J_SCAN ? end - (off_t)J_SCAN : 0;
		ssize_t got = pread(rfd, buf, (size_t)(end - from), from);
		if (got != (ssize_t)(end - from)) {
			readable = false;
			break;
		}
		ssize_t k = got - 1;
		while (k >= 0 && buf[k] != '\n')
			k--;
		if (k >= 0) {
			end = from + (off_t)k + 1;
			break;
		}
		end = from;
	}
	free(buf);
	off_t blk = readable ? end & ~(off_t)(JBLK - 1) : 0;
	if (!readable || pread(rfd, al->j_tail, (size_t)(end - blk), blk) != (ssize_t)(end - blk)) {
		log_error("audit_journal_unreadable", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		close(fd);
		close(rfd);
		return TSR_UNAVAILABLE;
	}
	if (zero_at != end)
		log_warn("audit_journal_torn_line", "path=%s bytes=%lld", al->spool_path, (long long)(zero_at - end));
	if (end != st.st_size && ftruncate(fd, end) != 0) {
		log_error("audit_journal_truncate_failed", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		close(fd);
		close(rfd);
		return TSR_UNAVAILABLE;
	}
	if (created)
		fsync_dir(al->spool_dir);
	al->j_fd = fd;
	al->j_rfd = rfd;
	al->j_direct = direct;
	al->j_dev = st.st_dev;
	al->j_ino = st.st_ino;
	al->j_size = al->j_alloc = end;
	al->j_shipped = 0;
	al->j_dedup = end > 0;
	al->j_gen++;
	if (end > 0)
		log_warn("audit_journal_found", "path=%s bytes=%lld", al->spool_path, (long long)end);
	return TSR_OK;
}

/* Write [p, p + len) at `at` and make it durable (jmu held; JBLK-aligned when direct). */
static tsr_rc j_write_at(struct auditlog *al, const char *p, size_t len, off_t at)
{
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(al->j_fd, p + done, len - done, at + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EINVAL && al->j_direct && done == 0) {
			/* the file system took O_DIRECT at open but refuses the write: buffered from here on */
			int fl = fcntl(al->j_fd, F_GETFL);
			if (fl >= 0 && fcntl(al->j_fd, F_SETFL, fl & ~O_DIRECT) == 0) {
				al->j_direct = false;
				log_info("audit_journal_buffered", "path=%s reason=\"direct I/O refused\"", al->spool_path);
				continue;
			}
		}
		if (w <= 0) {
			log_error("audit_journal_write_failed", "path=%s error=\"%s\"", al->spool_path,
				  w < 0 ? strerror(errno) : "nothing written");
			return TSR_UNAVAILABLE;
		}
		done += (size_t)w;
	}
	if (!al->j_direct && fdatasync(al->j_fd) != 0) {
		log_error("audit_journal_fsync_failed", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		return TSR_UNAVAILABLE;
	}
	return TSR_OK;
}

/*
 * Extend the journal to at least want (jmu held; J_STEP at a time) with
 * blocks that read as zeros: allocated (fallocate) where the file system
 * can, so a batch written there changes no file size, else written zeros.
 * Not synced: a batch's own synchronous write makes what it needs durable.
 */
static tsr_rc j_grow(struct auditlog *al, off_t want)
{
	off_t from = (al->j_alloc + JBLK - 1) & ~(off_t)(JBLK - 1);
	off_t to = (want + J_STEP - 1) / J_STEP * J_STEP;
	if (fallocate(al->j_fd, 0, from, to - from) == 0) {
		al->j_alloc = to;
		return TSR_OK;
	}
	if (!al->j_zero) {
		if (posix_memalign((void **)&al->j_zero, JBLK, (size_t)J_STEP) != 0) {
			al->j_zero = NULL;
			return TSR_INTERNAL;
		}
		memset(al->j_zero, 0, (size_t)J_STEP);
	}
	for (off_t off = from; off < to; off += J_STEP) {
		size_t n = (size_t)(to - off < J_STEP ? to - off : J_STEP);
		tsr_rc rc = j_write_at(al, al->j_zero, n, off);
		if (rc != TSR_OK)
			return rc;
	}
	al->j_alloc = to;
	return TSR_OK;
}

static void set_journal_health(struct auditlog *al, bool ok, bool kick)
{
	pthread_mutex_lock(&al->mu);
	if (al->j_ok != ok)
		log_info("audit_health", "journal=%s", ok ? "ok" : "unwritable");
	al->j_ok = ok;
	if (kick) {
		al->ship_kick = true;
		pthread_cond_signal(&al->ship);
	}
	pthread_mutex_unlock(&al->mu);
}

/*
 * Append n events to the journal and make them durable (the writer thread):
 * one write of the blocks from the one holding the end of the content (its
 * bytes rewritten unchanged from j_tail) to past the new end, padded with
 * zeros; with O_DIRECT | O_DSYNC it returns once the blocks are on stable
 * storage. A torn write can only lose the new batch: the bytes already
 * acknowledged are rewritten identical.
 */
static tsr_rc journal_write(struct auditlog *al, const struct audit_event *ev, int n, struct shipb **sb)
{
	struct buf out;
	tsr_rc rc = events_dump(ev, n, &out);
	if (rc != TSR_OK) {
		buf_free(&out);
		return rc;
	}
	pthread_mutex_lock(&al->jmu);
	/* never acknowledge into a journal that was removed or replaced */
	if (al->j_fd >= 0 && !j_same_file(al)) {
		log_error("audit_journal_replaced", "path=%s unshipped_bytes=%lld", al->spool_path,
			  (long long)(al->j_size - al->j_shipped));
		j_close(al);
	}
	rc = j_open(al);
	bool full = false, wrote = false;
	if (rc == TSR_OK && (long long)(al->j_size - al->j_shipped) + (long long)out.len > al->journal_max) {
		full = true;
		rc = TSR_UNAVAILABLE;
	}
	off_t blk = al->j_size & ~(off_t)(JBLK - 1);
	size_t head = (size_t)(al->j_size - blk);
	size_t span = (head + out.len + 1 + JBLK - 1) & ~(size_t)(JBLK - 1); /* at least one zero after the content */
	if (rc == TSR_OK && span > al->j_wcap) {
		free(al->j_wbuf);
		al->j_wcap = 0;
		if (posix_memalign((void **)&al->j_wbuf, JBLK, span) != 0) {
			al->j_wbuf = NULL;
			rc = TSR_INTERNAL;
		} else {
			al->j_wcap = span;
		}
	}
	if (rc == TSR_OK && blk + (off_t)span > al->j_alloc)
		rc = j_grow(al, blk + (off_t)span);
	if (rc == TSR_OK) {
		memcpy(al->j_wbuf, al->j_tail, head);
		memcpy(al->j_wbuf + head, out.data, out.len);
		memset(al->j_wbuf + head + out.len, 0, span - head - out.len);
		wrote = true;
		rc = j_write_at(al, al->j_wbuf, span, blk);
	}
	if (rc == TSR_OK) {
		if (*sb && al->sq_bytes + (long long)out.len <= SHIP_MEM) {
			/* the shipper's now; beyond SHIP_MEM (Postgres away) it reads the file */
			(*sb)->from = al->j_size;
			(*sb)->to = al->j_size + (off_t)out.len;
			(*sb)->gen = al->j_gen;
			if (al->sq_tail)
				al->sq_tail->next = *sb;
			else
				al->sq = *sb;
			al->sq_tail = *sb;
			al->sq_bytes += (long long)out.len;
			*sb = NULL;
		}
		al->j_size += (off_t)out.len;
		off_t nblk = al->j_size & ~(off_t)(JBLK - 1);
		memcpy(al->j_tail, al->j_wbuf + (nblk - blk), (size_t)(al->j_size - nblk));
	} else if (wrote) {
		/* take the unacknowledged batch back; after a failed write the file is not trusted: reopen */
		if (ftruncate(al->j_fd, al->j_size) != 0)
			log_error("audit_journal_truncate_failed", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
		j_close(al);
	}
	long long unshipped = al->j_fd >= 0 ? (long long)(al->j_size - al->j_shipped) : 0;
	pthread_mutex_unlock(&al->jmu);
	atomic_store(&al->spool_bytes, unshipped);
	buf_free(&out);
	if (full)
		log_error("audit_journal_full", "unshipped_bytes=%lld journal_max_bytes=%lld", unshipped, al->journal_max);
	set_journal_health(al, rc == TSR_OK || full, rc == TSR_OK);
	return rc;
}

/* Append a chunk shipped from the journal; de-duplicated only when the first try failed. */
static tsr_rc ship_chunk(struct auditlog *al, const struct audit_event *ev, int n, int *stored)
{
	tsr_rc rc = db_audit_append(&al->conn, ev, n);
	if (rc == TSR_OK) {
		*stored += n;
		return TSR_OK;
	}
	rollback_if_open(al);
	/* its commit may have happened after all, or one event cannot be stored */
	return replay_chunk(al, ev, n, stored);
}

/* Ship [from, end) of the journal read through fd, in order, advancing j_shipped chunk by chunk. */
static tsr_rc ship_range(struct auditlog *al, int fd, off_t from, off_t end, bool dedup, unsigned gen)
{
	if (writer_conn(al) != TSR_OK)
		return TSR_UNAVAILABLE;
	size_t cap = (size_t)1 << 20;
	char *buf = malloc(cap);
	struct audit_event *evs = calloc(REPLAY_CHUNK, sizeof(*evs));
	json_t **docs = calloc(REPLAY_CHUNK, sizeof(*docs));
	tsr_rc rc = buf && evs && docs ? TSR_OK : TSR_INTERNAL;
	off_t off = from;
	int stored = 0;
	while (rc == TSR_OK && off < end) {
		size_t want = (size_t)(end - off) < cap ? (size_t)(end - off) : cap;
		size_t got = 0;
		while (got < want) {
			ssize_t r = pread(fd, buf + got, want - got, off + (off_t)got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got < want) {
			log_error("audit_journal_unreadable", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
			rc = TSR_INTERNAL;
			break;
		}
		size_t used = 0;
		int n = 0;
		while (n < REPLAY_CHUNK) {
			char *nl = memchr(buf + used, '\n', got - used);
			if (!nl)
				break;
			size_t len = (size_t)(nl - (buf + used)) + 1;
			json_t *j = json_loadb(buf + used, len, 0, NULL);
			if (j && event_from_json(j, &evs[n])) {
				docs[n++] = j;
			} else {
				json_decref(j);
				log_error("audit_journal_line_invalid", "path=%s offset=%lld", al->spool_path,
					  (long long)(off + (off_t)used));
			}
			used += len;
		}
		if (used == 0) { /* one line longer than the buffer */
			char *bigger = cap < ((size_t)64 << 20) ? realloc(buf, cap * 2) : NULL;
			if (!bigger) {
				log_error("audit_journal_line_invalid", "path=%s offset=%lld", al->spool_path, (long long)off);
				rc = TSR_INTERNAL;
				break;
			}
			buf = bigger;
			cap *= 2;
			continue;
		}
		if (n > 0)
			rc = dedup ? replay_chunk(al, evs, n, &stored) : ship_chunk(al, evs, n, &stored);
		for (int i = 0; i < n; i++)
			json_decref(docs[i]);
		if (rc != TSR_OK)
			break;
		off += (off_t)used;
		pthread_mutex_lock(&al->jmu);
		bool same = al->j_gen == gen;
		if (same)
			al->j_shipped = off;
		long long unshipped = al->j_fd >= 0 ? (long long)(al->j_size - al->j_shipped) : 0;
		pthread_mutex_unlock(&al->jmu);
		atomic_store(&al->spool_bytes, unshipped);
		if (!same)
			break; /* the journal was replaced under us (logged by the writer) */
	}
	free(buf);
	free(evs);
	free(docs);
	if (dedup && rc == TSR_OK)
		log_info("audit_journal_replayed", "bytes=%lld stored=%d", (long long)(off - from), stored);
	return rc;
}

/* Ship what the journal holds beyond j_shipped (the shipper thread); truncate it once all is shipped. */
/* Drop queued batches that are no longer unshipped in the current journal (jmu held). */
static void sq_prune(struct auditlog *al)
{
	while (al->sq && (al->sq->gen != al->j_gen || al->sq->to <= al->j_shipped)) {
		struct shipb *sb = al->sq;
		al->sq = sb->next;
		if (!al->sq)
			al->sq_tail = NULL;
		al->sq_bytes -= (long long)(sb->to - sb->from);
		sb->next = NULL;
		shipb_free(sb);
	}
}

/* Ship the queued batches sb (a contiguous run of the journal ending at upto), then advance j_shipped. */
static tsr_rc ship_mem(struct auditlog *al, struct shipb *sb, off_t upto, bool dedup, unsigned gen)
{
	int n = 0;
	for (struct shipb *b = sb; b; b = b->next)
		n += b->n;
	struct audit_event *evs = calloc((size_t)n ? (size_t)n : 1, sizeof(*evs));
	tsr_rc rc = evs ? writer_conn(al) : TSR_INTERNAL;
	if (rc == TSR_OK) {
		int k = 0, stored = 0;
		for (struct shipb *b = sb; b; b = b->next)
			for (int i = 0; i < b->n; i++)
				evs[k++] = b->it[i]->ev;
		rc = dedup ? replay_chunk(al, evs, n, &stored) : ship_chunk(al, evs, n, &stored);
	}
	free(evs);
	shipb_free(sb);
	if (rc != TSR_OK)
		return rc; /* what was taken is read back from the file on the retry */
	pthread_mutex_lock(&al->jmu);
	if (al->j_gen == gen)
		al->j_shipped = upto;
	long long unshipped = al->j_fd >= 0 ? (long long)(al->j_size - al->j_shipped) : 0;
	pthread_mutex_unlock(&al->jmu);
	atomic_store(&al->spool_bytes, unshipped);
	return TSR_OK;
}

/*
 * Ship what the journal holds beyond j_shipped (the shipper thread): the
 * batches the writer queued from memory, the rest (found at start, or not
 * queued) read back from the file; start the journal over once all of it
 * is shipped.
 */
static tsr_rc journal_ship(struct auditlog *al, bool idle, bool *shipped)
{
	*shipped = false;
	pthread_mutex_lock(&al->jmu);
	int fd = al->j_rfd >= 0 ? dup(al->j_rfd) : -1;
	off_t start = al->j_shipped, end = al->j_size;
	bool dedup = al->j_dedup;
	unsigned gen = al->j_gen;
	pthread_mutex_unlock(&al->jmu);
	if (fd < 0)
		return TSR_OK; /* nothing open, nothing to ship (the writer reports an unwritable journal) */
	tsr_rc rc = TSR_OK;
	for (off_t from = start; rc == TSR_OK && from < end;) {
		struct shipb *take = NULL, **tailp = &take;
		off_t upto = end;
		int cnt = 0;
		pthread_mutex_lock(&al->jmu);
		bool same = al->j_gen == gen;
		sq_prune(al);
		if (same && al->sq && al->sq->from == from) {
			for (upto = from; al->sq && al->sq->from == upto && al->sq->to <= end &&
					  (cnt == 0 || cnt + al->sq->n <= REPLAY_CHUNK);) {
				struct shipb *sb = al->sq;
				al->sq = sb->next;
				if (!al->sq)
					al->sq_tail = NULL;
				al->sq_bytes -= (long long)(sb->to - sb->from);
				sb->next = NULL;
				*tailp = sb;
				tailp = &sb->next;
				cnt += sb->n;
				upto = sb->to;
			}
		} else if (same && al->sq && al->sq->from > from && al->sq->from < end) {
			upto = al->sq->from;
		}
		pthread_mutex_unlock(&al->jmu);
		if (!same)
			break; /* the journal was replaced under us (logged by the writer) */
		rc = take ? ship_mem(al, take, upto, dedup, gen) : ship_range(al, fd, from, upto, dedup, gen);
		from = upto;
	}
	*shipped = start < end;
	close(fd);
	pthread_mutex_lock(&al->jmu);
	if (al->j_gen == gen) {
		if (rc != TSR_OK)
			al->j_dedup = true; /* a commit whose outcome is unknown: de-duplicate the retry */
		else if (al->j_shipped == end)
			al->j_dedup = false;
		if (rc == TSR_OK && al->j_shipped == al->j_size &&
		    (al->j_size >= TRUNCATE_AT || (idle && (al->j_size > 0 || al->j_alloc > 0)))) {
			/*
			 * Start over. Not synced: if the old content comes back after a crash
			 * it is de-duplicated. Busy: keep the zero-filled space; the next
			 * batch, written at 0, ends the content with its padding. Quiet: give
			 * the space back.
			 */
			if (!idle || ftruncate(al->j_fd, 0) == 0) {
				if (idle)
					al->j_alloc = 0;
				al->j_size = al->j_shipped = 0;
				al->j_gen++;
			} else {
				log_warn("audit_journal_truncate_failed", "path=%s error=\"%s\"", al->spool_path, strerror(errno));
			}
		}
	}
	pthread_mutex_unlock(&al->jmu);
	return rc;
}

static void set_pg_health(struct auditlog *al, bool ok)
{
	pthread_mutex_lock(&al->mu);
	if (al->pg_ok != ok)
		log_info("audit_health", "postgres=%s shipping=%s", ok ? "ok" : "down", ok ? "on" : "paused");
	al->pg_ok = ok;
	pthread_mutex_unlock(&al->mu);
}

static void *shipper(void *arg)
{
	pthread_setname_np(pthread_self(), "audit-shipper");
	struct auditlog *al = arg;
	bool backoff = false;
	pthread_mutex_lock(&al->mu);
	for (;;) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		bool idle = false;
		while (!al->ship_stop && (!al->ship_kick || backoff)) {
			if (pthread_cond_timedwait(&al->ship, &al->mu, &until) == ETIMEDOUT) {
				idle = true;
				break;
			}
		}
		if (al->ship_stop)
			break;
		al->ship_kick = false;
		pthread_mutex_unlock(&al->mu);
		bool shipped;
		tsr_rc rc = journal_ship(al, idle, &shipped);
		backoff = rc != TSR_OK;
		set_pg_health(al, rc == TSR_OK);
		/* let records gather: fewer, larger commits, whose fsyncs compete less with the journal's */
		if (shipped && rc == TSR_OK)
			nanosleep(&(struct timespec){ .tv_nsec = SHIP_GATHER_NS }, NULL);
		pthread_mutex_lock(&al->mu);
	}
	bool pg_ok = al->pg_ok;
	pthread_mutex_unlock(&al->mu);
	if (pg_ok) {
		bool shipped;
		/* what the writer's last batches added; then empty the journal, so a clean restart has nothing to replay */
		tsr_rc ignored = journal_ship(al, true, &shipped);
		(void)ignored;
	}
	return NULL;
}

/* Idle check (the writer thread): is the journal still there and writable? */
static void journal_maintain(struct auditlog *al)
{
	pthread_mutex_lock(&al->jmu);
	if (al->j_fd >= 0 && !j_same_file(al)) {
		log_error("audit_journal_replaced", "path=%s unshipped_bytes=%lld", al->spool_path,
			  (long long)(al->j_size - al->j_shipped));
		j_close(al);
	}
	bool ok = j_open(al) == TSR_OK;
	pthread_mutex_unlock(&al->jmu);
	pthread_mutex_lock(&al->mu);
	bool was_ok = al->j_ok;
	pthread_mutex_unlock(&al->mu);
	if (ok && !was_ok)
		ok = spool_probe(al);
	set_journal_health(al, ok, false);
}

/* Make n events durable: replay first if needed, then Postgres, else the spool. */
static tsr_rc write_batch(struct auditlog *al, const struct audit_event *evs, int n)
{
	tsr_rc rc = TSR_UNAVAILABLE;
	if (!al->spool_pending || spool_replay(al) == TSR_OK) {
		rc = writer_conn(al);
		if (rc == TSR_OK) {
			rc = db_audit_append(&al->conn, evs, n);
			if (rc != TSR_OK)
				rollback_if_open(al);
		}
		if (rc == TSR_OK) {
			set_health(al, true, true);
			return TSR_OK;
		}
		if (!unreachable(al, rc)) {
			log_error("audit_batch_failed", "events=%d error=%s", n, status_name(rc));
			return rc;
		}
	}
	rc = spool_write(al, evs, n);
	if (rc == TSR_OK) {
		al->spool_pending = true;
		set_health(al, false, true);
		return TSR_OK;
	}
	set_health(al, false, false);
	log_error("audit_batch_failed", "events=%d error=\"database unreachable and spool unwritable\"", n);
	return TSR_UNAVAILABLE;
}

/* Idle work: replay the spool when Postgres is back; notice a dead Postgres before the next request. */
static void maintain(struct auditlog *al)
{
	if (al->journal) {
		journal_maintain(al);
		return;
	}
	if (al->spool_pending) {
		if (spool_replay(al) == TSR_OK)
			set_health(al, true, true);
		else
			set_health(al, false, spool_probe(al));
		return;
	}
	tsr_rc rc = writer_conn(al);
	if (rc == TSR_OK)
		rc = db_simple(&al->conn, "SELECT 1");
	if (rc == TSR_OK)
		set_health(al, true, true);
	else
		set_health(al, false, spool_probe(al));
}

static void *writer(void *arg)
{
	pthread_setname_np(pthread_self(), "audit-writer"); /* in top -H, perf, gdb */
	struct auditlog *al = arg;
	struct audit_event *evs = calloc(MAX_BATCH, sizeof(*evs));
	struct item **batch = calloc(MAX_BATCH, sizeof(*batch));
	tsr_rc *rcs = calloc(MAX_BATCH, sizeof(*rcs));
	long long batches = 0, events = 0, singles = 0, busy_ns = 0; /* logged at the end */
	pthread_mutex_lock(&al->mu);
	for (;;) {
		while (!al->head && !al->stop) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			if (pthread_cond_timedwait(&al->work, &al->mu, &until) == ETIMEDOUT && !al->head && !al->stop) {
				pthread_mutex_unlock(&al->mu);
				maintain(al);
				pthread_mutex_lock(&al->mu);
			}
		}
		if (!al->head && al->stop)
			break;
		int n = 0;
		while (al->head && n < MAX_BATCH) {
			batch[n] = al->head;
			al->head = al->head->next;
			n++;
		}
		if (!al->head)
			al->tail = NULL;
		al->depth -= n;
		pthread_mutex_unlock(&al->mu);

		tsr_rc rc = TSR_INTERNAL;
		int m = 0;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (evs && batch && rcs && al->journal) {
			/* acknowledged from the journal, so refuse here what Postgres would refuse later */
			/* copies for the shipper (without them it reads the batch back from the file) */
			struct shipb *sb = calloc(1, sizeof(*sb) + (size_t)n * sizeof(sb->it[0]));
			for (int i = 0; i < n; i++) {
				rcs[i] = audit_event_check(&batch[i]->ev);
				if (rcs[i] != TSR_OK) {
					log_error("audit_event_invalid", "action=%s", batch[i]->ev.action ? batch[i]->ev.action : "-");
					continue;
				}
				evs[m++] = batch[i]->ev;
				if (sb && !(sb->it[sb->n++] = item_copy(&batch[i]->ev))) {
					shipb_free(sb);
					sb = NULL;
				}
			}
			rc = m > 0 ? journal_write(al, evs, m, &sb) : TSR_OK;
			shipb_free(sb); /* not taken */
		} else if (evs && batch && rcs) {
			for (int i = 0; i < n; i++) {
				evs[i] = batch[i]->ev;
				rcs[i] = TSR_OK;
			}
			rc = write_batch(al, evs, n);
		}
		for (int i = 0; i < n && rcs; i++)
			if (rcs[i] == TSR_OK)
				rcs[i] = rc;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		busy_ns += (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
		batches++;
		events += n;
		singles += n == 1;

		/* callbacks first, without the lock; then wake the blocked waiters */
		for (int i = 0; i < n; i++) {
			if (batch[i]->cb) {
				batch[i]->cb(batch[i]->cb_arg, rcs ? rcs[i] : rc);
				free(batch[i]->blob);
				free(batch[i]);
				batch[i] = NULL;
			}
		}
		pthread_mutex_lock(&al->mu);
		for (int i = 0; i < n; i++) {
			if (!batch[i])
				continue;
			batch[i]->rc = rcs ? rcs[i] : rc;
			batch[i]->done = true;
		}
		pthread_cond_broadcast(&al->done);
	}
	pthread_mutex_unlock(&al->mu);
	log_info("audit_writer_stats", "durability=%s batches=%lld events=%lld single_event_batches=%lld mean_batch_us=%lld",
		 al->journal ? "journal" : "postgres", batches, events, singles, batches ? busy_ns / batches / 1000 : 0);
	free(evs);
	free(batch);
	free(rcs);
	return NULL;
}

/* Stop the shipper thread, if it runs, and wait for it. */
static void shipper_stop(struct auditlog *al)
{
	if (!al->shipper_started)
		return;
	pthread_mutex_lock(&al->mu);
	al->ship_stop = true;
	pthread_cond_signal(&al->ship);
	pthread_mutex_unlock(&al->mu);
	pthread_join(al->shipper, NULL);
	al->shipper_started = false;
}

tsr_rc auditlog_start(struct broker *b, struct auditlog **out)
{
	struct auditlog *al = calloc(1, sizeof(*al));
	if (!al)
		return TSR_INTERNAL;
	al->b = b;
	al->pg_ok = al->spool_ok = true;
	if (b->cfg->audit.spool_dir)
		snprintf(al->spool_dir, sizeof(al->spool_dir), "%s", b->cfg->audit.spool_dir);
	else
		snprintf(al->spool_dir, sizeof(al->spool_dir), "%s/spool", b->cfg->server.state_dir);
	snprintf(al->spool_path, sizeof(al->spool_path), "%s/audit.spool", al->spool_dir);
	al->journal = !b->cfg->audit.durability || strcmp(b->cfg->audit.durability, "postgres") != 0;
	al->journal_max = b->cfg->audit.journal_max_bytes > 0 ? b->cfg->audit.journal_max_bytes : (256LL << 20);
	al->j_fd = al->j_rfd = -1;
	pthread_mutex_init(&al->jmu, NULL);
	pthread_cond_init(&al->ship, NULL);
	struct stat st;
	if (al->journal) {
		/* the file is the journal (a spool left by durability = postgres is shipped the same way) */
		al->j_ok = j_open(al) == TSR_OK;
		atomic_store(&al->spool_bytes, (long long)al->j_size);
	} else if (stat(al->spool_path, &st) == 0) {
		/* left by an earlier run: replayed before anything new */
		al->spool_pending = true;
		atomic_store(&al->spool_bytes, (long long)st.st_size);
		log_warn("audit_spool_found", "path=%s bytes=%lld", al->spool_path, (long long)st.st_size);
	} else if (mkdir(al->spool_dir, 0700) != 0 && errno != EEXIST) {
		log_warn("audit_spool_dir_unusable", "dir=%s error=\"%s\"", al->spool_dir, strerror(errno));
	}
	pthread_mutex_init(&al->mu, NULL);
	pthread_cond_init(&al->work, NULL);
	pthread_cond_init(&al->done, NULL);
	if (al->journal) {
		if (pthread_create(&al->shipper, NULL, shipper, al) != 0) {
			pthread_mutex_lock(&al->jmu);
			j_close(al);
			pthread_mutex_unlock(&al->jmu);
			free(al);
			return TSR_INTERNAL;
		}
		al->shipper_started = true;
	}
	if (pthread_create(&al->thread, NULL, writer, al) != 0) {
		shipper_stop(al);
		pthread_mutex_lock(&al->jmu);
		j_close(al);
		pthread_mutex_unlock(&al->jmu);
		free(al);
		return TSR_INTERNAL;
	}
	*out = al;
	return TSR_OK;
}

void auditlog_stop(struct auditlog *al)
{
	if (!al)
		return;
	pthread_mutex_lock(&al->mu);
	al->stop = true;
	pthread_cond_signal(&al->work);
	pthread_mutex_unlock(&al->mu);
	pthread_join(al->thread, NULL);
	/* after the writer: its last batches are in the journal, shipped on the way out when Postgres is up */
	shipper_stop(al);
	pthread_mutex_lock(&al->jmu);
	j_close(al);
	shipb_free(al->sq);
	al->sq = al->sq_tail = NULL;
	pthread_mutex_unlock(&al->jmu);
	free(al->j_wbuf);
	free(al->j_zero);
	drop_conn(al);
	pthread_mutex_destroy(&al->jmu);
	pthread_cond_destroy(&al->ship);
	pthread_mutex_destroy(&al->mu);
	pthread_cond_destroy(&al->work);
	pthread_cond_destroy(&al->done);
	free(al);
}

/* Queue it (mu held by the caller); false when the queue cannot take it. */
static bool enqueue(struct auditlog *al, struct item *it)
{
	if (al->stop || al->depth >= MAX_QUEUE) {
		log_warn("audit_queue_full", "depth=%d stopping=%s", al->depth, al->stop ? "true" : "false");
		return false;
	}
	if (al->tail)
		al->tail->next = it;
	else
		al->head = it;
	al->tail = it;
	al->depth++;
	pthread_cond_signal(&al->work);
	return true;
}

tsr_rc auditlog_append(struct auditlog *al, const struct audit_event *ev)
{
	struct item it;
	memset(&it, 0, sizeof(it));
	if (item_fill(&it, ev) != TSR_OK)
		return TSR_INTERNAL;
	pthread_mutex_lock(&al->mu);
	if (!enqueue(al, &it)) {
		pthread_mutex_unlock(&al->mu);
		free(it.blob);
		return TSR_UNAVAILABLE;
	}
	while (!it.done)
		pthread_cond_wait(&al->done, &al->mu);
	pthread_mutex_unlock(&al->mu);
	free(it.blob);
	return it.rc;
}

tsr_rc auditlog_submit(struct auditlog *al, const struct audit_event *ev, auditlog_done_fn done, void *arg)
{
	struct item *it = calloc(1, sizeof(*it));
	if (!it)
		return TSR_INTERNAL;
	if (item_fill(it, ev) != TSR_OK) {
		free(it);
		return TSR_INTERNAL;
	}
	it->cb = done;
	it->cb_arg = arg;
	pthread_mutex_lock(&al->mu);
	bool queued = enqueue(al, it);
	pthread_mutex_unlock(&al->mu);
	if (!queued) {
		free(it->blob);
		free(it);
		return TSR_UNAVAILABLE;
	}
	return TSR_OK;
}

bool auditlog_ready(struct auditlog *al, char *why, size_t whylen)
{
	pthread_mutex_lock(&al->mu);
	bool ok = al->journal ? al->j_ok : al->pg_ok || al->spool_ok;
	bool full = al->depth >= MAX_QUEUE;
	pthread_mutex_unlock(&al->mu);
	long long unshipped = atomic_load(&al->spool_bytes);
	if (al->journal && !ok) {
		snprintf(why, whylen, "audit log unavailable: journal %s not writable", al->spool_path);
		return false;
	}
	if (al->journal && unshipped + 4096 > al->journal_max) { /* less than a few records' room */
		snprintf(why, whylen, "audit log unavailable: journal full (%lld bytes not yet shipped to the database; "
				      "[audit] journal_max_bytes)", unshipped);
		return false;
	}
	if (!ok)
		snprintf(why, whylen, "audit log unavailable: database unreachable and spool directory %s not writable",
			 al->spool_dir);
	else if (full)
		snprintf(why, whylen, "audit log queue full");
	return ok && !full;
}

int auditlog_depth(struct auditlog *al)
{
	pthread_mutex_lock(&al->mu);
	int d = al->depth;
	pthread_mutex_unlock(&al->mu);
	return d;
}

long long auditlog_spool_bytes(struct auditlog *al)
{
	return atomic_load(&al->spool_bytes);
}
