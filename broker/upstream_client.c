/*
 * upstream_client.c — see upstream_client.h.
 *
 * The engine thread owns the CURLM handle, the epoll set and every easy
 * handle that was added. An epoll item's data is either a tagged file
 * descriptor (bit 63 set: the wake-up eventfd, the hook's descriptor or a
 * libcurl socket, so an event for a socket libcurl closed meanwhile is
 * harmless) or a pointer to a job whose client socket is watched
 * (EPOLLRDHUP only: a hang-up, never data). Client events of a batch are
 * handled before anything in that batch can finish (and free) a job.
 * Commands queued by the engine's own thread (from the hook or a callback)
 * need no wake-up: the queue is looked at on every turn of the loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "upstream_client.h"
#include "../lib/log.h"

/*
 * A client's socket is watched for a hang-up only once its transfer has run
 * this long: most answers come sooner, and watching costs two epoll_ctl.
 */
#define WATCH_AFTER_NS (50LL * 1000000LL)
#define TAG_FD (1ULL << 63)
#define TAG_WAKE (1ULL << 62)
#define TAG_HOOK (1ULL << 61)
#define TAG_ACCEPT (1ULL << 60)
enum cmd_kind { CMD_ADD, CMD_CANCEL, CMD_UNPAUSE, CMD_CALL };

struct cmd {
	struct cmd *next;
	enum cmd_kind kind;
	struct ujob *job;
	void (*fn)(void *arg); /* CMD_CALL */
	void *arg;
};

struct uclient {
	pthread_t thread;
	CURLM *multi;
	int epfd;
	int wake_fd;
	pthread_mutex_t mu;
	struct cmd *head, *tail;
	bool stop, exited;   /* exited: the thread is gone, every job finished; commands are dropped */
	bool joined;         /* uclient_stop()'s caller's */
	int64_t deadline_ns; /* libcurl's timer; -1 none */
	struct ujob *jobs;   /* in the multi handle (engine thread) */
	struct uclient_hook hook;
	bool has_hook;
	bool accepting;   /* hook.accept_fd is in the epoll set */
	atomic_bool kick; /* run the hook on the next turn */
};

static atomic_int active_total;       /* transfers in flight, every engine */
static __thread struct uclient *self; /* the engine whose thread this is */

struct uclient *uclient_self(void)
{
	return self;
}

int64_t uclient_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void ujob_ref(struct ujob *job)
{
	atomic_fetch_add(&job->refs, 1);
}

void ujob_unref(struct ujob *job)
{
	if (atomic_fetch_sub(&job->refs, 1) == 1)
		job->release(job);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct uclient *en = userp;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(en->epfd, EPOLL_CTL_DEL, s, NULL); /* libcurl forgets socketp with it */
		return 0;
	}
	struct epoll_event ev = { 0 };
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.u64 = TAG_FD | (uint32_t)s;
	/* socketp marks a socket already in the epoll set: one epoll_ctl, not a failing MOD and an ADD */
	if (socketp && epoll_ctl(en->epfd, EPOLL_CTL_MOD, s, &ev) == 0)
		return 0;
	if (epoll_ctl(en->epfd, EPOLL_CTL_ADD, s, &ev) == 0 || (errno == EEXIST && epoll_ctl(en->epfd, EPOLL_CTL_MOD, s, &ev) == 0))
		curl_multi_assign(en->multi, s, en);
	return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct uclient *en = userp;
	en->deadline_ns = timeout_ms < 0 ? -1 : uclient_now_ns() + (int64_t)timeout_ms * 1000000LL;
	return 0;
}

void uclient_unwatch(struct uclient *en, struct ujob *job)
{
	if (job->watched) {
		epoll_ctl(en->epfd, EPOLL_CTL_DEL, job->client_fd, NULL);
		job->watched = false;
	}
	job->client_fd = -1; /* and never again */
}

/* The transfer ended: out of the multi handle, tell the owner, drop the engine's reference. */
static void finish(struct uclient *en, struct ujob *job, CURLcode code)
{
	if (job->finished)
		return;
	job->finished = true;
	uclient_unwatch(en, job);
	if (job->in_multi) {
		curl_multi_remove_handle(en->multi, job->easy);
		job->in_multi = false;
		if (job->prev)
			job->prev->next = job->next;
		else
			en->jobs = job->next;
		if (job->next)
			job->next->prev = job->prev;
		atomic_fetch_sub(&active_total, 1);
	}
	job->done(job, code);
	ujob_unref(job);
}

static void run_cmd(struct uclient *en, struct cmd *c)
{
	struct ujob *job = c->job;
	if (c->kind == CMD_CALL) {
		c->fn(c->arg);
		return;
	}
	switch (c->kind) {
	case CMD_ADD:
		if (curl_multi_add_handle(en->multi, job->easy) != CURLM_OK) {
			finish(en, job, CURLE_FAILED_INIT);
			break;
		}
		job->in_multi = true;
		job->last_ns = uclient_now_ns();
		job->prev = NULL;
		job->next = en->jobs;
		if (en->jobs)
			en->jobs->prev = job;
		en->jobs = job;
		atomic_fetch_add(&active_total, 1);
		job->added_ns = job->last_ns;
		break;
	case CMD_CANCEL:
		finish(en, job, CURLE_ABORTED_BY_CALLBACK);
		break;
	case CMD_UNPAUSE:
		if (job->in_multi && !job->finished) {
			job->paused = false;
			job->last_ns = uclient_now_ns();
			curl_easy_pause(job->easy, CURLPAUSE_CONT);
		}
		break;
	case CMD_CALL:
		break;
	}
	ujob_unref(job); /* the command's reference */
}

static void drain_done(struct uclient *en)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(en->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct ujob *job = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&job);
		CURLcode code = m->data.result;
		if (job)
			finish(en, job, code);
	}
}

/* Run the queued commands (engine thread); when stopping, a transfer not yet started is aborted instead. */
static void run_queue(struct uclient *en, bool stopping)
{
	pthread_mutex_lock(&en->mu);
	struct cmd *c = en->head;
	en->head = en->tail = NULL;
	pthread_mutex_unlock(&en->mu);
	while (c) {
		struct cmd *next = c->next;
		if (stopping && c->kind == CMD_ADD) {
			finish(en, c->job, CURLE_ABORTED_BY_CALLBACK);
			ujob_unref(c->job);
		} else {
			run_cmd(en, c);
		}
		free(c);
		c = next;
	}
}

/*
 * Run the hook, again at once while it says it has more to do (an MHD
 * connection that sent its headers sends its body on the next pass), a
 * few times at most: fewer turns of the loop, each an epoll_wait.
 */
static void hook_run(struct uclient *en)
{
	for (int i = 0; i < 4 && en->has_hook; i++) {
		en->hook.run(en->hook.arg);
		if (!en->has_hook || en->hook.timeout_ms(en->hook.arg) != 0)
			break;
	}
}

static void *run(void *arg)
{
	struct uclient *en = arg;
	self = en;
	pthread_setname_np(pthread_self(), en->has_hook ? en->hook.name : "upstream");
	struct epoll_event evs[64];
	int running = 0;
	for (;;) {
		pthread_mutex_lock(&en->mu);
		bool stop = en->stop, queued = en->head != NULL;
		pthread_mutex_unlock(&en->mu);
		if (stop)
			break;
		bool kicked = atomic_load(&en->kick);
		int timeout = queued || kicked ? 0 : en->jobs ? 250 : -1; /* read timeouts are swept 4 times a second */
		int64_t t_now = uclient_now_ns();
		if (en->deadline_ns >= 0) {
			int64_t left = en->deadline_ns - t_now;
			int t = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		int64_t hook_at = -1;
		if (en->has_hook) {
			int64_t t = en->hook.timeout_ms(en->hook.arg);
			if (t >= 0) {
				if (t > 60000)
					t = 60000;
				hook_at = t_now + t * 1000000LL;
				if (timeout < 0 || t < timeout)
					timeout = (int)t;
			}
		}
		int n = epoll_wait(en->epfd, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("uclient_epoll_failed", "error=\"%s\"", strerror(errno));
			break;
		}
		/*
		 * Hang-ups first: a job finished later in this batch may be freed,
		 * and its client event must not be looked at after that. Nothing
		 * finishes until drain_done() below, except cancels (commands),
		 * which come after this pass too.
		 */
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 & TAG_FD)
				continue;
			struct ujob *job = evs[i].data.ptr;
			uclient_unwatch(en, job);
			if (!job->finished && job->hangup)
				job->hangup(job);
		}
		bool woken = false, hook_ready = false, acceptable = false;
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			if (!(tag & TAG_FD))
				continue;
			if (tag & TAG_WAKE) {
				woken = true;
				continue;
			}
			if (tag & TAG_HOOK) {
				hook_ready = true;
				continue;
			}
			if (tag & TAG_ACCEPT) {
				acceptable = true;
				continue;
			}
			int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
				    ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
				    ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
			curl_multi_socket_action(en->multi, (curl_socket_t)(tag & 0xffffffffu), flags, &running);
		}
		/*
		 * What the transfers just relayed goes to the clients before
		 * finished transfers are accounted for (their audit records), so a
		 * stream's first bytes do not wait for that.
		 */
		if (en->has_hook && atomic_exchange(&en->kick, false)) {
			hook_run(en);
			hook_ready = false;
		}
		drain_done(en);
		if (woken) {
			uint64_t v;
			if (read(en->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_warn("uclient_wake_read_failed", "error=\"%s\"", strerror(errno));
		}
		if (acceptable && en->has_hook && en->accepting) {
			en->hook.accept(en->hook.arg);
			hook_ready = true; /* what the new connections sent is read in this turn */
		}
		kicked = atomic_exchange(&en->kick, false);
		if (en->has_hook && (hook_ready || kicked || (hook_at >= 0 && uclient_now_ns() >= hook_at)))
			hook_run(en);
		run_queue(en, false);
		t_now = uclient_now_ns();
		for (struct ujob *j = en->jobs, *next; j; j = next) {
			next = j->next;
			if (j->idle_ns > 0 && !j->paused && t_now - j->last_ns > j->idle_ns) {
				finish(en, j, CURLE_OPERATION_TIMEDOUT);
			} else if (!j->watched && j->client_fd >= 0 && t_now - j->added_ns > WATCH_AFTER_NS) {
				struct epoll_event ev = { .events = EPOLLRDHUP, .data.ptr = j };
				j->watched = epoll_ctl(en->epfd, EPOLL_CTL_ADD, j->client_fd, &ev) == 0;
				if (!j->watched)
					j->client_fd = -1;
			}
		}
		if (en->deadline_ns >= 0 && uclient_now_ns() >= en->deadline_ns) {
			en->deadline_ns = -1;
			curl_multi_socket_action(en->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		drain_done(en);
	}
	/* stopping: queued commands first (their references), then abort what runs */
	run_queue(en, true);
	while (en->jobs)
		finish(en, en->jobs, CURLE_ABORTED_BY_CALLBACK);
	run_queue(en, true); /* what the aborts queued (cancels of finished jobs: references only) */
	pthread_mutex_lock(&en->mu);
	en->exited = true;
	pthread_mutex_unlock(&en->mu);
	return NULL;
}

tsr_rc uclient_start(struct uclient **out, const struct uclient_hook *hook)
{
	struct uclient *en = calloc(1, sizeof(*en));
	if (!en)
		return TSR_INTERNAL;
	if (hook) {
		en->hook = *hook;
		en->has_hook = true;
	}
	en->epfd = epoll_create1(EPOLL_CLOEXEC);
	en->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	en->multi = curl_multi_init();
	en->deadline_ns = -1;
	pthread_mutex_init(&en->mu, NULL);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_FD | TAG_WAKE };
	if (en->epfd < 0 || en->wake_fd < 0 || !en->multi ||
	    epoll_ctl(en->epfd, EPOLL_CTL_ADD, en->wake_fd, &ev) != 0)
		goto fail;
	struct epoll_event hev = { .events = EPOLLIN, .data.u64 = TAG_FD | TAG_HOOK };
	if (hook && epoll_ctl(en->epfd, EPOLL_CTL_ADD, hook->fd, &hev) != 0)
		goto fail;
	curl_multi_setopt(en->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(en->multi, CURLMOPT_SOCKETDATA, en);
	curl_multi_setopt(en->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(en->multi, CURLMOPT_TIMERDATA, en);
	curl_multi_setopt(en->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(en->multi, CURLMOPT_MAXCONNECTS, 1024L);
	if (pthread_create(&en->thread, NULL, run, en) != 0)
		goto fail;
	*out = en;
	return TSR_OK;
fail:
	if (en->multi)
		curl_multi_cleanup(en->multi);
	if (en->epfd >= 0)
		close(en->epfd);
	if (en->wake_fd >= 0)
		close(en->wake_fd);
	pthread_mutex_destroy(&en->mu);
	free(en);
	return TSR_INTERNAL;
}

static void wake(struct uclient *en)
{
	uint64_t one = 1;
	if (write(en->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("uclient_wake_failed", "error=\"%s\"", strerror(errno));
}

void uclient_stop(struct uclient *en)
{
	if (!en)
		return;
	if (en->joined)
		return;
	pthread_mutex_lock(&en->mu);
	en->stop = true;
	pthread_mutex_unlock(&en->mu);
	wake(en);
	pthread_join(en->thread, NULL);
	en->joined = true;
}

void uclient_hook_clear(struct uclient *en)
{
	uclient_accepting(en, false);
	if (en->has_hook) {
		epoll_ctl(en->epfd, EPOLL_CTL_DEL, en->hook.fd, NULL);
		en->has_hook = false;
	}
}

void uclient_accepting(struct uclient *en, bool on)
{
	if (!en->has_hook || en->hook.accept_fd < 0 || !en->hook.accept || en->accepting == on)
		return;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_FD | TAG_ACCEPT };
	if (on)
		en->accepting = epoll_ctl(en->epfd, EPOLL_CTL_ADD, en->hook.accept_fd, &ev) == 0;
	else if (epoll_ctl(en->epfd, EPOLL_CTL_DEL, en->hook.accept_fd, NULL) == 0 || errno == ENOENT)
		en->accepting = false;
}

void uclient_free(struct uclient *en)
{
	if (!en)
		return;
	uclient_stop(en);
	curl_multi_cleanup(en->multi);
	close(en->epfd);
	close(en->wake_fd);
	pthread_mutex_destroy(&en->mu);
	free(en);
}

static tsr_rc push(struct uclient *en, enum cmd_kind kind, struct ujob *job, void (*fn)(void *), void *arg)
{
	struct cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return TSR_INTERNAL;
	c->kind = kind;
	c->job = job;
	c->fn = fn;
	c->arg = arg;
	if (job)
		ujob_ref(job);
	pthread_mutex_lock(&en->mu);
	/* stopping: no new transfer; once the thread is gone every job has finished, so nothing is left to do */
	if ((en->stop && kind == CMD_ADD) || en->exited) {
		pthread_mutex_unlock(&en->mu);
		free(c);
		if (job)
			ujob_unref(job);
		return TSR_UNAVAILABLE;
	}
	if (en->tail)
		en->tail->next = c;
	else
		en->head = c;
	en->tail = c;
	pthread_mutex_unlock(&en->mu);
	if (self != en)
		wake(en);
	return TSR_OK;
}

tsr_rc uclient_add(struct uclient *en, struct ujob *job)
{
	job->finished = job->in_multi = job->watched = false;
	curl_easy_setopt(job->easy, CURLOPT_PRIVATE, job);
	ujob_ref(job); /* the transfer's reference, dropped after done() */
	tsr_rc rc = push(en, CMD_ADD, job, NULL, NULL);
	if (rc != TSR_OK)
		ujob_unref(job);
	return rc;
}

void uclient_cancel(struct uclient *en, struct ujob *job)
{
	/* TSR_UNAVAILABLE: the engine is gone and every job with it; nothing to cancel */
	if (push(en, CMD_CANCEL, job, NULL, NULL) == TSR_INTERNAL)
		log_error("uclient_cancel_lost", "reason=\"out of memory\"");
}

void uclient_unpause(struct uclient *en, struct ujob *job)
{
	if (push(en, CMD_UNPAUSE, job, NULL, NULL) == TSR_INTERNAL)
		log_error("uclient_unpause_lost", "reason=\"out of memory\"");
}

void uclient_kick(struct uclient *en)
{
	if (!atomic_exchange(&en->kick, true) && self != en)
		wake(en);
}

tsr_rc uclient_call(struct uclient *en, void (*fn)(void *arg), void *arg)
{
	return push(en, CMD_CALL, NULL, fn, arg);
}

int uclient_active(void)
{
	return atomic_load(&active_total);
}
