/* SPDX-License-Identifier: Apache-2.0 */
/* Sinks: where events leave. The pipeline thread takes each committed record
 * from the queue, hands it to the sink, and releases it afterwards.
 *
 * write() returns:
 *   0        written (or handed to an asynchronous publisher): release it
 *   -EAGAIN  not now (the destination is down): keep the record in the queue
 *            and retry after a pause; the queue buffers meanwhile
 *   other    failed (EPIPE, ENOSPC, ...): counted in `failed`, the record is
 *            released, and the pipeline reports the error once
 *
 * Acknowledgement (core/ack.h): a sink settles an event's token
 * (ack_settle_src(ev->source, ev->ack)) once the event is safe: written to
 * the file descriptor (after the fsync, with one), PubAck'd by JetStream. An
 * event that can never be delivered by any attempt (sink_failed_for_good:
 * too big, unencodable) is settled too, so its source's cursor can move on
 * (it is counted as failed). An event lost to a destination that is down or
 * failing is not settled: its source reads it again after a restart. One
 * exception: a NATS message the running sink gives up on (its attempts used
 * up, a full retry list) is settled as failed (counted and logged), so that
 * its source's cursor does not wait for it until a restart (sink_nats.h).
 * The pipeline settles for sinks that are not self_counted when write()
 * returns.
 */
#ifndef TAPIO_SINK_H
#define TAPIO_SINK_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/counters.h"

struct tapio_event;
struct sink;

struct sink_ops {
	const char *name;
	int (*write)(struct sink *s, const struct tapio_event *ev);
	/* Flushes buffered output and waits (bounded) for acks. 0 or -errno. */
	int (*flush)(struct sink *s);
	/* Optional: the pipeline ran out of events; hand on what is buffered
	 * without waiting (default: flush). 0 or -errno. */
	int (*poll)(struct sink *s);
	/* Optional: how long (ms) the pipeline may wait for a record, once
	 * poll() ran, before poll() may have work again; SINK_IDLE_FOREVER
	 * when nothing is due until the next record (default: the
	 * pipeline's own idle wait). */
	unsigned (*idle_ms)(struct sink *s);
	/* Optional: ends delivery before the summary: what is still unconfirmed
	 * is counted as failed, and the counters are final. 0 or -errno. */
	int (*close)(struct sink *s);
	/* Optional: whether the destination is reachable (default true). */
	bool (*connected)(struct sink *s);
	/* Optional: extra counters, as for collectors. */
	void (*counters)(struct sink *s, counter_fn fn, void *ctx);
	/* Frees the sink. */
	void (*destroy)(struct sink *s);
};

#define SINK_IDLE_FOREVER 0xffffffffu

#define SINK_SOURCES 8 /* enum tapio_source values are below this */

struct sink {
	const struct sink_ops *ops;
	_Atomic uint64_t written; /* events handed on (published, for NATS) */
	_Atomic uint64_t acked;	  /* confirmed by the destination (NATS acks) */
	_Atomic uint64_t failed;  /* events that could not be written */
	_Atomic uint64_t retries; /* -EAGAIN answers */
	/* Per source. A sink that buffers counts these itself (self_counted):
	 * an event is written once its buffer reached the destination, and
	 * failed when that write failed. Otherwise the pipeline counts each
	 * write() answer. */
	bool self_counted;
	_Atomic uint64_t src_written[SINK_SOURCES];
	_Atomic uint64_t src_failed[SINK_SOURCES];
};

/* Output formats for the stream sinks. */
enum sink_format { SINK_JSON, SINK_TEXT, SINK_TEXT_PODS /* text with POD and CONTAINER */ };

/* A JSON Lines or text sink on a file descriptor (not closed by the sink
 * unless own_fd). flush_each: flush after every event (live terminals and
 * pipes). Returns NULL with errno. */
struct sink *sink_stream_new(int fd, bool own_fd, enum sink_format fmt, bool flush_each);

/* With sync, a stream sink fdatasyncs after each write before its events
 * count as safe (acknowledged to their sources). */
void sink_stream_set_sync(struct sink *s, bool sync);

struct tapio_config;

/* Opens "stdout" (or "" / "-"), "file:PATH" (appended), "nats://..." (see
 * sink_nats_new in sink_nats.h) or "otlp://..." / "otlps://..." (sink/otlp.h). The stream sinks
 * buffer: the caller flushes when it runs out of events. Returns NULL with errno and a one-line
 * reason in err. */
struct sink *sink_open(const char *spec, enum sink_format fmt, const struct tapio_config *cfg,
		       char *err, size_t errlen);

/* True for a write() answer that no retry or restart can change (the
 * event is too big or cannot be encoded). */
static inline bool sink_failed_for_good(int rc)
{
	return rc == -EMSGSIZE || rc == -E2BIG || rc == -EINVAL || rc == -ENAMETOOLONG;
}

int sink_write(struct sink *s, const struct tapio_event *ev);
int sink_flush(struct sink *s);
int sink_poll(struct sink *s);
/* The sink's idle_ms(), or dflt without one. */
unsigned sink_idle_ms(struct sink *s, unsigned dflt);
int sink_close(struct sink *s);
bool sink_connected(struct sink *s);
void sink_destroy(struct sink *s); /* accepts NULL */

#endif
