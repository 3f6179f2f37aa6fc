/*
 * upstream_client.h — the HTTP client side of the gateway: one thread that
 * drives every upstream transfer with libcurl's multi interface on epoll,
 * so HTTP workers never block on an upstream.
 *
 * A transfer is a struct ujob embedded in its owner (the gateway request):
 * the owner configures job->easy (URL, headers, body, write and header
 * callbacks, timeouts) and hands it over with uclient_add(). From then on
 * every libcurl callback of that handle runs on the engine thread, and so do
 * the job's own callbacks:
 *   hangup(job)  the client's socket (job->client_fd, watched while the
 *                reply waits on the upstream) hung up; the owner usually
 *                cancels;
 *   done(job, code)  exactly once: the transfer ended (CURLE_OK or why);
 *                the handle is out of the multi handle and the client socket
 *                is no longer watched.
 * Commands from other threads (add, cancel, unpause) go through a queue
 * and an eventfd. A job is reference-counted: the engine holds a reference
 * from uclient_add() until done() has returned and for every queued command;
 * release(job) runs when the count drops to zero.
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
	struct ujob *prev, *next;
	void (*hangup)(struct ujob *job);
	void (*done)(struct ujob *job, CURLcode code);
	void (*release)(struct ujob *job);
};

tsr_rc uclient_start(struct uclient **out) TSR_WUR;
/* Abort every transfer (done(job, CURLE_ABORTED_BY_CALLBACK)), stop the thread. NULL is a no-op. */
void uclient_stop(struct uclient *en);

/* Take a reference / drop one (release() at zero). */
void ujob_ref(struct ujob *job);
void ujob_unref(struct ujob *job);

/* Start the transfer (any thread). TSR_UNAVAILABLE when the engine is stopping (done is not called then). */
tsr_rc uclient_add(struct uclient *en, struct ujob *job) TSR_WUR;
/* Stop it (any thread): done(job, CURLE_ABORTED_BY_CALLBACK) follows unless it already finished. */
void uclient_cancel(struct uclient *en, struct ujob *job);
/* Resume a transfer whose write callback returned CURL_WRITEFUNC_PAUSE (any thread). */
void uclient_unpause(struct uclient *en, struct ujob *job);
/* Stop watching the client socket (engine thread only: from a libcurl callback of this job). */
void uclient_unwatch(struct uclient *en, struct ujob *job);

/* CLOCK_MONOTONIC in ns (the clock of last_ns). */
int64_t uclient_now_ns(void);

/* Transfers in flight (for /metrics). */
int uclient_active(struct uclient *en);

#endif
