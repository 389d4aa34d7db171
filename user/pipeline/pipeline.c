// SPDX-License-Identifier: Apache-2.0
#include "pipeline/pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/queue.h"
#include "sink/sink.h"
#include "util/clock.h"
#include "util/log.h"

static volatile sig_atomic_t stop_flag;
/* The queue of the running pipeline: a stop request kicks its consumer, which
 * may be waiting without a timeout (PIPELINE_IDLE_FOREVER). queue_kick() is
 * atomics and a futex wake: safe in a signal handler. */
static struct queue *_Atomic stop_queue;

static void kick_consumer(void)
{
	struct queue *q = atomic_load(&stop_queue);
	if (q)
		queue_kick(q);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
	kick_consumer();
}

void pipeline_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void pipeline_request_stop(void)
{
	stop_flag = 1;
	kick_consumer();
}

bool pipeline_stop_requested(void)
{
	return stop_flag != 0;
}

struct run {
	const struct pipeline_opts *o;
	struct pipeline_result *res;
	bool closing;
	bool taking; /* false once a hook said "no more" */
	uint64_t retry_deadline;
	pthread_t stopper;
	bool stopper_started;
	bool reported;
};

/* Stops the producers, then closes the queue (on the helper thread). */
static void *stop_producers(void *arg)
{
	const struct pipeline_opts *o = arg;
	if (o->hooks.stop_producers)
		o->hooks.stop_producers(o->hooks.ctx);
	queue_close(o->q);
	return NULL;
}

static void begin_close(struct run *r)
{
	r->closing = true;
	r->retry_deadline = mono_ns() + (uint64_t)r->o->retry_ms * 1000000ull;
	if (pthread_create(&r->stopper, NULL, stop_producers, (void *)r->o) == 0)
		r->stopper_started = true;
	else
		stop_producers((void *)r->o);
}

static bool want_stop(struct run *r)
{
	const struct pipeline_hooks *h = &r->o->hooks;
	return stop_flag || !r->taking || (h->should_stop && h->should_stop(h->ctx));
}

/* Logs the first failed write (a buffering sink's fails at its flush). */
static void report_failure(struct run *r, int rc)
{
	if (rc && rc != -EAGAIN && r->o->report_failures && !r->reported) {
		tlog(TLOG_ERR, "sink", "writing to %s: %s (failures are counted in the summary)",
		     r->o->output ? r->o->output : "the output", strerror(-rc));
		r->reported = true;
	}
}

/* Writes one record and counts the answer; returns false when the sink
 * asked to retry later. */
static bool deliver(struct run *r, const struct tapio_event *ev, unsigned src, int *rc)
{
	struct sink *s = r->o->sink;
	*rc = sink_write(s, ev);
	if (*rc == -EAGAIN) {
		atomic_fetch_add(&s->retries, 1);
		return false;
	}
	if (!s->self_counted) {
		atomic_fetch_add(*rc == 0 ? &s->src_written[src] : &s->src_failed[src], 1);
		atomic_fetch_add(*rc == 0 ? &s->written : &s->failed, 1);
		/* Such a sink has the event once write() returns. */
		if (*rc == 0 || sink_failed_for_good(*rc))
			ack_settle_src(src, ev->ack);
	}
	if (*rc)
		report_failure(r, *rc);
	return true;
}

/* Delivers with retries while the sink says -EAGAIN. Returns false when the
 * record must stay at the head (a stop began: retried while closing). */
static bool deliver_retrying(struct run *r, const struct tapio_event *ev, unsigned src)
{
	const struct pipeline_hooks *h = &r->o->hooks;
	int rc;
	while (!deliver(r, ev, src, &rc)) {
		if (r->closing && mono_ns() > r->retry_deadline) {
			r->res->unsent[src]++;
			return true;
		}
		if (stop_flag && !r->closing)
			return false;
		usleep(100 * 1000);
	}
	if (h->written && !h->written(h->ctx, ev, rc))
		r->taking = false;
	return true;
}

static void *next_record(struct run *r, size_t *len, unsigned *src)
{
	void *rec = queue_peek(r->o->q, len, src, 0);
	if (!rec && errno == EAGAIN) {
		/* Out of events: hand what is buffered on before sleeping, as
		 * long as the sink has nothing due (a retry, an ack) or until a
		 * record comes. */
		report_failure(r, sink_poll(r->o->sink));
		unsigned idle =
		    sink_idle_ms(r->o->sink, r->o->idle_ms ? r->o->idle_ms : PIPELINE_IDLE_MS);
		int wait = idle == PIPELINE_IDLE_FOREVER ? -1 : (int)idle;
		rec = queue_peek(r->o->q, len, src, r->closing ? 10 : wait);
	}
	return rec;
}

static bool record_ok(const struct tapio_event *ev, size_t len, unsigned src)
{
	return len >= sizeof(*ev) && sizeof(*ev) + ev->meta_len + (size_t)ev->data_len <= len &&
	       src < SRC_MAX;
}

int pipeline_run(const struct pipeline_opts *o, struct pipeline_result *res)
{
	struct run r = {.o = o, .res = res, .taking = true};
	const struct pipeline_hooks *h = &o->hooks;
	memset(res, 0, sizeof(*res));
	atomic_store(&stop_queue, o->q); /* before the first look at stop_flag */
	for (;;) {
		if (!r.closing && want_stop(&r))
			begin_close(&r);
		size_t len;
		unsigned src;
		void *rec = next_record(&r, &len, &src);
		if (!rec) {
			if (errno == ESHUTDOWN)
				break;
			continue; /* timeout, or a producer is still finishing a record */
		}
		const struct tapio_event *ev = rec;
		bool release = true;
		if (!record_ok(ev, len, src))
			res->skipped++; /* our producers never write such a record */
		else if (r.taking && (!h->want || h->want(h->ctx, ev)))
			release = deliver_retrying(&r, ev, src);
		else
			ack_settle_src(src, ev->ack); /* not wanted: done with */
		if (release)
			queue_release(o->q, rec);
	}
	atomic_store(&stop_queue, NULL);
	if (r.stopper_started)
		pthread_join(r.stopper, NULL);
	return 0;
}
