/*
 * upstream_client.h — the HTTP client side of the gateway: an engine is one
 * thread that drives upstream transfers with libcurl's multi interface on
 * epoll. Each HTTP worker is an engine whose hook is its MHD daemon (see
 * http.c): a request, its upstream transfer and its reply share one thread
 * and one epoll set, and nothing blocks on an upstream.
 *
 * A transfer is a struct ujob embedded in its owner (the gateway request):
 * the owner configures job->easy (URL, headers, body, write and header
 * callbacks, timeouts) and hands it over with uclient_add(). From then on
 * every libcurl callback of that handle runs on the engine thread, and so do
 * the job's own callbacks:
 *   hangup(job)  the client's socket (job->client_fd, watched from 50 ms
 *                after the start until the owner calls uclient_unwatch or
 *                the transfer ends) hung up; the owner usually cancels;
 *   done(job, code)  exactly once: the transfer ended (CURLE_OK or why);
 *                the handle is out of the multi handle and the client socket
 *                is no longer watched.
 * Commands (add, cancel, unpause, call) go through a queue; from another
 * thread with an eventfd to wake the engine. A job is reference-counted:
 * the engine holds a reference from uclient_add() until done() has
 * returned and for every queued command; release(job) runs when the count
 * drops to zero.
 * Lock order: en->mu is a leaf.
 */
#ifndef TSR_UPSTREAM_CLIENT_H
#define TSR_UPSTREAM_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <curl/curl.h>
#include "../lib/status.h"

struct uclient;

struct ujob {
	int client_fd;    /* -1: nothing to watch */
	CURL *easy;
	atomic_int refs;
	/*
	 * Read timeout: the transfer fails with CURLE_OPERATION_TIMEDOUT when
	 * nothing arrived for idle_ns (0: never) while not paused. The owner
	 * sets idle_ns before uclient_add and, from its write callback (engine
	 * thread), last_ns = uclient_now_ns() and paused when it returns
	 * CURL_WRITEFUNC_PAUSE.
	 */
	int64_t idle_ns, last_ns;
	bool paused;
	/* engine-thread state, private */
	bool in_multi, finished, watched;
	int64_t added_ns;
	struct ujob *prev, *next;
	void (*hangup)(struct ujob *job);
	void (*done)(struct ujob *job, CURLcode code);
	void (*release)(struct ujob *job);
};

/*
 * A second source of events for the engine's thread: run(arg) is called
 * when fd is readable or timeout_ms(arg) (-1: none) has passed, always on
 * the engine's thread. The HTTP server's MHD daemon in external polling.
 * Optionally a listening socket shared by several engines: accept(arg) is
 * called when it is readable (watched with EPOLLEXCLUSIVE, so one engine
 * of those idle is woken per connection), before run(arg) in that turn.
 */
struct uclient_hook {
	int fd;
	int64_t (*timeout_ms)(void *arg);
	void (*run)(void *arg);
	void *arg;
	const char *name;   /* the thread's name */
	int accept_fd;      /* -1: none; watched once uclient_accepting(en, true) has run */
	void (*accept)(void *arg);
};

/* Start an engine; hook may be NULL (a thread of transfers only). */
tsr_rc uclient_start(struct uclient **out, const struct uclient_hook *hook) TSR_WUR;
/*
 * Run the queued commands, abort every transfer (done(job,
 * CURLE_ABORTED_BY_CALLBACK)), stop the thread; later commands are dropped
 * (every job has finished). Idempotent; NULL is a no-op.
 */
void uclient_stop(struct uclient *en);
/* Stop (if not yet) and free. NULL is a no-op. */
void uclient_free(struct uclient *en);
/* Stop calling the hook (engine thread only). */
void uclient_hook_clear(struct uclient *en);
/*
 * Watch the hook's accept_fd, or stop watching it (engine thread only;
 * idempotent). Once no engine watches it, the socket may be closed.
 */
void uclient_accepting(struct uclient *en, bool on);
/* Call fn(arg) on the engine's thread (any thread). TSR_UNAVAILABLE once the engine has stopped. */
tsr_rc uclient_call(struct uclient *en, void (*fn)(void *arg), void *arg) TSR_WUR;
/* Run the hook on the engine's next turn (any thread). */
void uclient_kick(struct uclient *en);
/* The engine whose thread calls this, or NULL. */
struct uclient *uclient_self(void);

/* Take a reference / drop one (release() at zero). */
void ujob_ref(struct ujob *job);
void ujob_unref(struct ujob *job);

/* Start the transfer (any thread). TSR_UNAVAILABLE when the engine is stopping (done is not called then). */
tsr_rc uclient_add(struct uclient *en, struct ujob *job) TSR_WUR;
/* Stop it (any thread): done(job, CURLE_ABORTED_BY_CALLBACK) follows unless it already finished. */
void uclient_cancel(struct uclient *en, struct ujob *job);
/* Resume a transfer whose write callback returned CURL_WRITEFUNC_PAUSE (any thread). */
void uclient_unpause(struct uclient *en, struct ujob *job);
/* Stop watching the client socket, for good (engine thread only: from a libcurl callback of this job). */
void uclient_unwatch(struct uclient *en, struct ujob *job);

/* CLOCK_MONOTONIC in ns (the clock of last_ns). */
int64_t uclient_now_ns(void);

/* Transfers in flight, all engines (for /metrics). */
int uclient_active(void);

#endif
