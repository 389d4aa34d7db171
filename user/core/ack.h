/* SPDX-License-Identifier: Apache-2.0 */
/* Acknowledgements: how a resumable source learns that the sink has an event.
 *
 * A source that keeps a cursor (etcd revision, ...) tracks every event it
 * emits with ack_track(), which hands out a position token carried in the
 * event (ev->ack, event_emit_ack). The sink settles the token with
 * ack_settle() when the event is safe (written to the file or stdout,
 * PubAck'd by JetStream) or failed for good (too big for any sink: counted).
 * The tracker then moves the source's cursor (the commit callback) up to
 * the safe point: never past an event that is not settled.
 *
 * Tags are the source's positions, non-decreasing in emit order. The source
 * also says, with ack_through(), that every position <= v is emitted or
 * skipped for good. The safe point is then
 *     through                        when nothing is pending,
 *     min(through, oldest tag - 1)   otherwise (the oldest pending event's
 *                                    position is not done yet).
 * The safe point only grows. Thread-safe: the source's thread tracks, the
 * sink's threads settle. */
#ifndef TAPIO_ACK_H
#define TAPIO_ACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define ACK_DEFAULT_SLOTS (1u << 16)

struct ack_tracker {
	pthread_mutex_t lock;
	uint64_t *tag;
	uint8_t *done;
	uint32_t mask;	   /* slots - 1 */
	uint64_t head;	   /* oldest unsettled sequence */
	uint64_t tail;	   /* next sequence */
	bool have_through; /* through is set */
	uint64_t through;
	bool have_safe;
	uint64_t safe; /* the last safe point handed to commit */
	/* Called (under the tracker's lock) when the safe point grows. */
	void (*commit)(void *ctx, uint64_t safe);
	void *ctx;
	_Atomic uint64_t tracked, settled, full, stale;
};

/* slots: a power of two (0 = ACK_DEFAULT_SLOTS). Returns 0 or -ENOMEM/-EINVAL. */
int ack_init(struct ack_tracker *t, uint32_t slots, void (*commit)(void *ctx, uint64_t safe),
	     void *ctx);
void ack_destroy(struct ack_tracker *t);

/* Tracks one event at position tag. Returns its token (never 0), or 0 when
 * every slot is pending (the source then treats it as a full queue). */
uint32_t ack_track(struct ack_tracker *t, uint64_t tag);
/* Gives back the token of the event last tracked (the queue refused it). */
void ack_untrack(struct ack_tracker *t, uint32_t token);
/* The sink has the event (or it failed for good). Unknown or repeated
 * tokens are ignored (counted: stale). */
void ack_settle(struct ack_tracker *t, uint32_t token);
/* Every position <= v is emitted or skipped for good. */
void ack_through(struct ack_tracker *t, uint64_t v);
/* Events tracked and not yet settled. */
uint64_t ack_pending(struct ack_tracker *t);
/* The current safe point; false when there is none yet. */
bool ack_safe(struct ack_tracker *t, uint64_t *v);

/* The trackers by source id, for the sinks (which know only an event's
 * source and token). A source registers its tracker at start and removes it
 * after the sink is closed. */
void ack_register(unsigned src, struct ack_tracker *t);
void ack_unregister(unsigned src, struct ack_tracker *t);
/* ack_settle on the tracker of src; nothing when token is 0 or none is
 * registered. */
void ack_settle_src(unsigned src, uint32_t token);

#endif
