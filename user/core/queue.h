/* SPDX-License-Identifier: Apache-2.0 */
/* The arena event queue: multi-producer, single-consumer, variable-length
 * records in one preallocated power-of-two arena. Modelled on the BPF ring
 * buffer: reserve, fill in place, then commit or discard. The consumer sees
 * records in reservation order, each once it is committed, and releases it
 * after the sink has written it. Nothing here calls malloc after queue_new().
 *
 * Records are 8-byte aligned; each is preceded by an 8-byte queue-private
 * header. A record that, header included, is longer than half the arena
 * (len > size / 2 - 8) is refused with E2BIG.
 *
 * Full queue: per source, either drop at once (wait_ms == 0, the default) or
 * wait up to wait_ms for space (queue_set_wait). Every refusal is counted in the
 * source's stats with its reason.
 */
#ifndef TAPIO_QUEUE_H
#define TAPIO_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct queue;

#define QUEUE_MAX_SOURCES 8
#define QUEUE_DEFAULT_SIZE (16u << 20)

/* Creates a queue with an arena of `size` bytes (a power of two, at least
 * 4096). Returns NULL with errno EINVAL (bad size) or ENOMEM. */
struct queue *queue_new(size_t size);

/* Frees the queue. Accepts NULL. No thread may still use it. */
void queue_free(struct queue *q);

/* Full-queue policy for one source: 0 = drop and count at once; > 0 = wait up
 * to wait_ms ms for space, then drop and count. Returns 0 or -EINVAL. */
int queue_set_wait(struct queue *q, unsigned src, unsigned wait_ms);

/* Reserves len bytes (len > 0) for source src. Thread-safe. Returns a pointer
 * to 8-byte-aligned space, or NULL with errno:
 *   E2BIG      len + 8 is more than half the arena (counted: oversize)
 *   ENOSPC     the queue is full and the source drops (counted: full)
 *   ETIMEDOUT  the queue stayed full for the source's wait bound (counted: timeout)
 *   ESHUTDOWN  the queue is closed (counted: closed)
 *   EINVAL     bad src or len (not counted) */
void *queue_reserve(struct queue *q, unsigned src, size_t len);

/* Publishes a reserved record. Wakes the consumer only if it is waiting. */
void queue_commit(struct queue *q, void *rec);

/* Publishes a reserved record without waking the consumer: for a producer
 * that commits a batch, then calls queue_wake() once (a consumer that sleeps
 * meanwhile sleeps until then, or until its timeout). */
void queue_commit_quiet(struct queue *q, void *rec);

/* Wakes the consumer if it is waiting: after queue_commit_quiet(). */
void queue_wake(struct queue *q);

/* Gives a reserved record up; the consumer skips it. */
void queue_discard(struct queue *q, void *rec);

/* Consumer (one thread only). Returns the oldest committed record and sets
 * *len and *src, waiting up to timeout_ms (-1 = forever) while the queue is
 * empty or the oldest record is still being written. Returns NULL with errno
 * EAGAIN on timeout, or ESHUTDOWN when the queue is closed and drained.
 * The same record is returned again until queue_release() is called. */
void *queue_peek(struct queue *q, size_t *len, unsigned *src, int timeout_ms);

/* Frees the space of the record last returned by queue_peek(). */
void queue_release(struct queue *q, void *rec);

/* Closes the queue: later reserves fail with ESHUTDOWN, waiting producers and
 * the consumer wake up. Records already reserved may still be committed and
 * are still delivered. */
void queue_close(struct queue *q);

/* Wakes a consumer blocked in queue_peek() (it returns EAGAIN). When none is
 * blocked, the next queue_peek() that would block returns EAGAIN at once. */
void queue_kick(struct queue *q);

struct queue_src_stats {
	uint64_t reserved;  /* successful reserves */
	uint64_t committed; /* records committed */
	uint64_t discarded; /* records discarded by the producer */
	uint64_t bytes;	    /* payload bytes committed */
	uint64_t dropped;   /* sum of the reasons below */
	uint64_t dropped_full;
	uint64_t dropped_timeout;
	uint64_t dropped_oversize;
	uint64_t dropped_closed;
};

/* Snapshot of one source's counters (zeroes for an unknown source). */
void queue_stats(const struct queue *q, unsigned src, struct queue_src_stats *out);

/* Arena size in bytes. */
size_t queue_capacity(const struct queue *q);

/* Bytes between the consumer and the producers right now. */
size_t queue_used(const struct queue *q);

/* Wake-up syscalls made so far (a producer waking the sleeping consumer, the
 * consumer waking producers that wait for space). Far fewer than records when
 * the consumer keeps up: a producer only wakes a consumer that sleeps. */
uint64_t queue_wakeups(const struct queue *q);

#endif
