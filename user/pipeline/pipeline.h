/* SPDX-License-Identifier: Apache-2.0 */
/* The one consumer loop that `tapio agent` and `tapio trace` share: take
 * each committed record from the queue, check it, filter it, write it to the
 * sink, release it; on a stop request (a signal, or a hook's say), stop the
 * producers on a helper thread while the queue keeps draining, then close
 * the queue, drain the rest and return. Signals are installed once, here. */
#ifndef TAPIO_PIPELINE_H
#define TAPIO_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/event.h"
#include "sink/sink.h"

struct queue;
struct sink;

struct pipeline_hooks {
	void *ctx;
	/* Optional: false leaves the event out (released, not written). */
	bool (*want)(void *ctx, const struct tapio_event *ev);
	/* Optional: after each write, with sink_write's answer; false takes no
	 * more events (the run then stops, e.g. -n reached, or EPIPE). */
	bool (*written)(void *ctx, const struct tapio_event *ev, int rc);
	/* Optional: polled between events; true starts the stop (-d elapsed). */
	bool (*should_stop)(void *ctx);
	/* Stops the producers (joins their threads). Runs on a helper thread
	 * while the pipeline keeps draining, so a producer waiting for queue
	 * space gets it; the pipeline closes the queue after it returns. */
	void (*stop_producers)(void *ctx);
};

#define PIPELINE_IDLE_FOREVER SINK_IDLE_FOREVER
#define PIPELINE_IDLE_MS 200 /* the idle wait of a sink with timed work */

struct pipeline_opts {
	struct queue *q;
	struct sink *sink;
	const char *output;   /* for the message on a failed write */
	bool report_failures; /* log the first failed write (EPIPE too) */
	unsigned idle_ms;     /* queue wait when idle (0 = PIPELINE_IDLE_MS; PIPELINE_IDLE_FOREVER:
				 until a record or a stop request, for a sink with
				 nothing to do on a timer) */
	unsigned retry_ms;    /* after a stop request, how long a write may be
				 retried on -EAGAIN before it counts as unsent */
	struct pipeline_hooks hooks;
};

struct pipeline_result {
	uint64_t unsent[SRC_MAX]; /* left when the sink stayed unavailable at the stop */
	uint64_t skipped;	  /* records that failed the check (never written by ours) */
};

/* SIGINT and SIGTERM request a stop; SIGPIPE is ignored. */
void pipeline_install_signals(void);
void pipeline_request_stop(void);
bool pipeline_stop_requested(void);

/* Runs until the queue is closed and drained. Returns 0. */
int pipeline_run(const struct pipeline_opts *o, struct pipeline_result *res);

#endif
