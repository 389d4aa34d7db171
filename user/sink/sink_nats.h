/* SPDX-License-Identifier: Apache-2.0 */
/* The NATS JetStream sink.
 *
 * Each event becomes one message: the JSON line of format_json() without its
 * newline, on subject "<prefix>.<source>.<type>" (tapio.events.kernel.process.exec),
 * with a Nats-Msg-Id header "<node>-<start ns>-<sequence>" that is unique per
 * event and stays the same when the message is published again, so the
 * stream's duplicate window drops a republished copy.
 *
 * Publishing is asynchronous, on a connection of the sink's own (the NATS
 * client protocol over plain TCP: nats:// only, no TLS, no authentication):
 * write() buffers an HPUB frame with a reply subject of the sink's inbox,
 * the frames go out in one write() when the pipeline runs out of events (or
 * 64 KiB wait), and one reader thread settles the PubAcks of each read().
 * At most cfg->nats_max_inflight messages wait for their ack (an entry per
 * reply number; a full window waits 100 ms, then -EAGAIN). The stream is
 * looked up and created over a second connection (libnats). write() answers
 * -EAGAIN while the connection is down, while the stream cannot be created,
 * or while the in-flight window stays full; the pipeline then keeps the record
 * in the queue and retries, so the queue is the buffer while NATS is away.
 *
 * A message whose ack does not come (timeout, no responders after a server
 * restart, a connection that dropped) is kept in a bounded retry list and
 * published again with the same id once the connection is back (at most
 * o->max_attempts times, by default SINK_NATS_MAX_ATTEMPTS; after a round of
 * failures the list waits 100 ms, doubling to 5 s while rounds keep failing,
 * so that a leader election does not use the attempts up; a publish that
 * could not even be sent uses none).
 * One that cannot be kept, exhausts its attempts or is refused by the server
 * for good is counted as lost and failed and reported through tlog():
 * nothing is lost silently. Such a loss inside a running sink is settled
 * (ack_settle_src) like a delivered event, so its source's cursor moves past
 * it instead of waiting for a restart; only what is still unacknowledged when
 * the sink closes is left unsettled, for the source to read again after a
 * restart.
 *
 * Limit: the stream's duplicate window (--nats-duplicate-window, 120 s by
 * default, set when the sink creates the stream; --nats-replicas sets its
 * replicas). JetStream drops a message whose Nats-Msg-Id it stored within
 * the window. A message the server stored but whose ack was lost (a server
 * or agent crash, a leader change) is published again with the same id
 * after the reconnect or restart: it is dropped when the republish comes
 * within the window of the first store, i.e. when the outage (server down,
 * or agent down plus its restart and re-read) is shorter than the window;
 * a longer outage can store that copy a second time. Only what was in
 * flight (at most nats_max_inflight, plus the unacknowledged events a
 * resumable source reads again) can be affected, and consumers can drop
 * them by Nats-Msg-Id.
 *
 * Counters (the counters op; metric suffixes): published (first publishes),
 * republished, acked, duplicates (acks the server marked as duplicate), failed,
 * lost, reconnects, too_big (events larger than the server's max_payload:
 * write() answers -EMSGSIZE, failed for good), stable_ids (messages with
 * their source's own id), late_acks (PubAcks that came after their ack
 * timeout, for a message already taken back: its republish is then a
 * duplicate), protocol_errors (frames from the server the sink could not
 * follow: logged with the server's address; what loses the stream's framing
 * or is an -ERR drops the connection, which is made again; a PubAck for a
 * reply number never sent or malformed PubAck JSON keeps it, the message is
 * published again); and two levels: inflight (publishes waiting for their
 * ack now) and unacked_pending (what the last flush() left without an ack).
 *
 * flush() waits up to cfg->nats_ack_wait_ms for the outstanding acks and
 * returns -ETIMEDOUT when some are missing; it gives nothing up (the agent
 * also calls it whenever its queue runs empty). destroy() counts what still
 * has no ack as lost and failed, and says so.
 * struct sink's own fields: `acked` and `failed` are kept here (they are only
 * known from the ack handler); `written` and `retries` are for the caller
 * (sink_write) to count from write()'s return value.
 */
#ifndef TAPIO_SINK_NATS_H
#define TAPIO_SINK_NATS_H

#include <stddef.h>
#include <stdint.h>

#include "sink/sink.h"

struct opt_group;

/* The sink's options (--nats-*). */
struct nats_options {
	char *subject_prefix;  /* tapio.events */
	char *stream;	       /* TAPIO_EVENTS */
	char *retention;       /* limits | interest | workqueue */
	uint64_t max_age_s;    /* 0 = unlimited */
	unsigned max_inflight; /* unacked publishes at most */
	unsigned ack_wait_ms;  /* on shutdown */
	unsigned replicas;     /* the stream's replicas when tapio creates it (1..5) */
	uint64_t dup_window_s; /* the stream's duplicate window when tapio creates it */
	unsigned max_attempts; /* publishes of one message at most (0 = the default) */
};
extern const struct opt_group nats_options_group;

#define SINK_NATS_MAX_ATTEMPTS 10

/* url: "nats://HOST:PORT[,nats://HOST2:PORT...]" (also "HOST:PORT,...";
 * IPv6 as [ADDR]:PORT). Connects, retrying in the background while the server
 * is down (creation does not fail because NATS is down: the queue buffers),
 * and creates or reuses the stream o->stream with subjects "<prefix>.>",
 * o->retention and o->max_age_s once connected. node (NULL or "" = none)
 * goes into the message ids.
 * Returns the sink (free with sink_destroy), or NULL with errno EINVAL and a
 * one-line reason in err for a bad URL or config, ENOMEM, or EIO when libnats
 * cannot be set up. o is read during the call only. */
struct sink *sink_nats_new(const char *url, const struct nats_options *o, const char *node,
			   char *err, size_t errlen);

/* Splits and checks a server list. On success fills out[0..*n) with
 * malloc'd "nats://HOST:PORT" strings (free each) and returns 0; returns
 * -EINVAL with a reason in err for a bad list, -ENOMEM. max: size of out. */
int sink_nats_parse_url(const char *url, char **out, size_t max, size_t *n, char *err,
			size_t errlen);

/* Messages left without an ack by the last flush() (0 when none). */
uint64_t sink_nats_unacked(struct sink *s);

#endif
