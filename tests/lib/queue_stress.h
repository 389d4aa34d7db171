/* SPDX-License-Identifier: Apache-2.0 */
/* The queue stress test, shared by the Criterion unit test and the standalone
 * ThreadSanitizer driver (tests/tsan/queue_tsan.c; Criterion itself does not
 * start under TSan). The includer defines STRESS_CHECK(cond, fmt, ...). */
#ifndef TAPIO_QUEUE_STRESS_H
#define TAPIO_QUEUE_STRESS_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "core/queue.h"

/* Fills a record with bytes that depend on (tag, seq). */
static inline void stress_fill(unsigned char *p, size_t len, uint32_t tag, uint32_t seq)
{
	uint32_t x = tag * 2654435761u ^ (seq + 0x9e3779b9u);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

static inline int stress_same(const unsigned char *p, size_t len, uint32_t tag, uint32_t seq)
{
	uint32_t x = tag * 2654435761u ^ (seq + 0x9e3779b9u);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (p[i] != (unsigned char)x)
			return 0;
	}
	return 1;
}

/* Stress: producers of different sources and policies; every committed record
 * is seen once, in each producer's order, with intact contents. */
#define STRESS_PRODUCERS 4

struct stress {
	struct queue *q;
	unsigned src;
	uint32_t n;
	uint64_t retries;
};

static inline size_t stress_len(unsigned src, uint32_t seq)
{
	return 8 + (seq * 2654435761u + src * 97) % 400;
}

static void *stress_producer(void *arg)
{
	struct stress *s = arg;
	for (uint32_t seq = 0; seq < s->n;) {
		size_t len = stress_len(s->src, seq);
		unsigned char *p = queue_reserve(s->q, s->src, len);
		if (!p) {
			STRESS_CHECK(errno == ENOSPC || errno == ETIMEDOUT, "errno %d", errno);
			s->retries++;
			sched_yield();
			continue;
		}
		memcpy(p, &seq, sizeof(seq));
		stress_fill(p + 4, len - 4, s->src, seq);
		if (seq % 7 == 3)
			queue_discard(s->q, p);
		else
			queue_commit(s->q, p);
		seq++;
	}
	return NULL;
}

static inline void stress_run(size_t qsize, uint32_t per_producer)
{
	struct queue *q = queue_new(qsize);
	STRESS_CHECK(q != NULL, "queue_new: errno %d", errno);
	struct stress st[STRESS_PRODUCERS];
	pthread_t th[STRESS_PRODUCERS];
	for (unsigned i = 0; i < STRESS_PRODUCERS; i++) {
		st[i] = (struct stress){.q = q, .src = i, .n = per_producer};
		if (i % 2)
			queue_set_wait(q, i, 1000);
		pthread_create(&th[i], NULL, stress_producer, &st[i]);
	}
	uint32_t next[STRESS_PRODUCERS] = {0};
	uint64_t expected = 0, seen = 0;
	for (unsigned i = 0; i < STRESS_PRODUCERS; i++)
		for (uint32_t s = 0; s < per_producer; s++)
			expected += s % 7 != 3;
	while (seen < expected) {
		size_t len;
		unsigned src;
		unsigned char *p = queue_peek(q, &len, &src, 10000);
		STRESS_CHECK(p != NULL, "consumer stalled after %lu of %lu records (errno %d)",
			     (unsigned long)seen, (unsigned long)expected, errno);
		STRESS_CHECK(src < STRESS_PRODUCERS, "source %u", src);
		uint32_t seq;
		memcpy(&seq, p, sizeof(seq));
		if (next[src] % 7 == 3)
			next[src]++; /* the producer discarded it */
		STRESS_CHECK(seq == next[src], "source %u: seq %u, want %u", src, seq, next[src]);
		STRESS_CHECK(len == stress_len(src, seq), "source %u seq %u: len %zu", src, seq,
			     len);
		STRESS_CHECK(stress_same(p + 4, len - 4, src, seq),
			     "source %u seq %u: contents differ", src, seq);
		next[src]++;
		seen++;
		queue_release(q, p);
	}
	for (unsigned i = 0; i < STRESS_PRODUCERS; i++)
		pthread_join(th[i], NULL);
	errno = 0;
	STRESS_CHECK(!queue_peek(q, NULL, NULL, 0) && errno == EAGAIN, "a record too many");
	STRESS_CHECK(queue_used(q) == 0, "used %zu after the drain", queue_used(q));
	for (unsigned i = 0; i < STRESS_PRODUCERS; i++) {
		struct queue_src_stats s;
		queue_stats(q, i, &s);
		STRESS_CHECK(s.reserved == per_producer, "source %u reserved %lu", i,
			     (unsigned long)s.reserved);
		STRESS_CHECK(s.committed + s.discarded == per_producer, "source %u: %lu + %lu", i,
			     (unsigned long)s.committed, (unsigned long)s.discarded);
		STRESS_CHECK(s.dropped_full + s.dropped_timeout == st[i].retries,
			     "source %u: drops %lu, retries %lu", i, (unsigned long)s.dropped,
			     (unsigned long)st[i].retries);
	}
	queue_free(q);
}

#endif
