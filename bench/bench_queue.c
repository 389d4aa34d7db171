/* SPDX-License-Identifier: Apache-2.0 */
/* Queue throughput: the arena queue (user/core/queue.c) against a plain
 * mutex + condvar ring given the same records.
 *
 * Each producer thread copies a prepared record of the given size into the
 * queue (one memcpy, as the kernel collector does with a ringbuf sample); one
 * consumer thread takes every record, reads it (a checksum of its words) and
 * releases it. Full queue: producers wait (queue_set_wait / a condvar), so no
 * record is dropped and every run moves exactly N records.
 *
 * Prints, per case: events/s and ns/event (and, for the arena, the wake-up
 * syscalls of the median run) over the wall time from the start of
 * the producers to the last record consumed, the median of three runs (the
 * machine may be shared). TAPIO_BENCH_SCALE (default 1) multiplies the record
 * counts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/queue.h"

#define QSIZE (16u << 20)
#define MAX_PRODUCERS 4

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t touch(const unsigned char *p, size_t len)
{
	uint64_t sum = 0, w;
	for (size_t i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		sum += w;
	}
	return sum;
}

/* ---- the mutex + condvar ring, for comparison ---- */
struct mq {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	unsigned char *buf;
	size_t size, head, tail; /* byte positions, head - tail = used */
};

static void mq_init(struct mq *m, size_t size)
{
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->not_empty, NULL);
	pthread_cond_init(&m->not_full, NULL);
	m->buf = malloc(size);
	memset(m->buf, 0, size);
	m->size = size;
	m->head = m->tail = 0;
}

static void mq_destroy(struct mq *m)
{
	free(m->buf);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->not_empty);
	pthread_cond_destroy(&m->not_full);
}

static void ring_copy_in(struct mq *m, size_t pos, const void *src, size_t len)
{
	size_t off = pos % m->size, first = m->size - off < len ? m->size - off : len;
	memcpy(m->buf + off, src, first);
	memcpy(m->buf, (const unsigned char *)src + first, len - first);
}

static void ring_copy_out(struct mq *m, size_t pos, void *dst, size_t len)
{
	size_t off = pos % m->size, first = m->size - off < len ? m->size - off : len;
	memcpy(dst, m->buf + off, first);
	memcpy((unsigned char *)dst + first, m->buf, len - first);
}

static void mq_push(struct mq *m, const void *rec, uint32_t len)
{
	size_t need = sizeof(len) + len;
	pthread_mutex_lock(&m->mu);
	while (m->size - (m->head - m->tail) < need)
		pthread_cond_wait(&m->not_full, &m->mu);
	ring_copy_in(m, m->head, &len, sizeof(len));
	ring_copy_in(m, m->head + sizeof(len), rec, len);
	m->head += need;
	pthread_cond_signal(&m->not_empty);
	pthread_mutex_unlock(&m->mu);
}

static uint32_t mq_pop(struct mq *m, void *out)
{
	uint32_t len;
	pthread_mutex_lock(&m->mu);
	while (m->head == m->tail)
		pthread_cond_wait(&m->not_empty, &m->mu);
	ring_copy_out(m, m->tail, &len, sizeof(len));
	ring_copy_out(m, m->tail + sizeof(len), out, len);
	m->tail += sizeof(len) + len;
	pthread_cond_signal(&m->not_full);
	pthread_mutex_unlock(&m->mu);
	return len;
}

/* ---- the cases ---- */
struct prod {
	struct queue *q;
	struct mq *m;
	unsigned src;
	size_t len;
	uint64_t n;
	atomic_int *go;
	uint64_t failed;
};

static void *arena_producer(void *arg)
{
	struct prod *p = arg;
	unsigned char rec[512];
	memset(rec, 0xa5 ^ (int)p->src, sizeof(rec));
	while (!atomic_load(p->go))
		;
	for (uint64_t i = 0; i < p->n; i++) {
		void *r = queue_reserve(p->q, p->src, p->len);
		if (!r) {
			p->failed++;
			i--;
			continue;
		}
		memcpy(rec, &i, sizeof(i));
		memcpy(r, rec, p->len);
		queue_commit(p->q, r);
	}
	return NULL;
}

static void *mutex_producer(void *arg)
{
	struct prod *p = arg;
	unsigned char rec[512];
	memset(rec, 0xa5 ^ (int)p->src, sizeof(rec));
	while (!atomic_load(p->go))
		;
	for (uint64_t i = 0; i < p->n; i++) {
		memcpy(rec, &i, sizeof(i));
		mq_push(p->m, rec, (uint32_t)p->len);
	}
	return NULL;
}

struct result {
	double ns_per_event, events_per_s;
	uint64_t failed, wakeups;
};

static struct result run(int arena, unsigned producers, size_t len, uint64_t total)
{
	struct queue *q = NULL;
	struct mq m;
	if (arena) {
		q = queue_new(QSIZE);
		if (!q) {
			perror("queue_new");
			exit(1);
		}
	} else {
		mq_init(&m, QSIZE);
	}
	atomic_int go = 0;
	struct prod p[MAX_PRODUCERS];
	pthread_t th[MAX_PRODUCERS];
	uint64_t per = total / producers;
	for (unsigned i = 0; i < producers; i++) {
		p[i] = (struct prod){.q = q, .m = &m, .src = i, .len = len, .n = per, .go = &go};
		if (arena)
			queue_set_wait(q, i, 10000);
		pthread_create(&th[i], NULL, arena ? arena_producer : mutex_producer, &p[i]);
	}
	uint64_t want = per * producers, sum = 0;
	unsigned char buf[512];
	uint64_t t0 = mono();
	atomic_store(&go, 1);
	for (uint64_t got = 0; got < want; got++) {
		if (arena) {
			size_t l;
			unsigned char *r = queue_peek(q, &l, NULL, -1);
			if (!r) {
				perror("queue_peek");
				exit(1);
			}
			sum += touch(r, l);
			queue_release(q, r);
		} else {
			uint32_t l = mq_pop(&m, buf);
			sum += touch(buf, l);
		}
	}
	uint64_t dt = mono() - t0;
	struct result res = {0};
	for (unsigned i = 0; i < producers; i++) {
		pthread_join(th[i], NULL);
		res.failed += p[i].failed;
	}
	if (arena) {
		res.wakeups = queue_wakeups(q);
		queue_free(q);
	} else
		mq_destroy(&m);
	if (sum == 42)
		fputc(' ', stderr); /* keeps the checksum alive */
	res.ns_per_event = (double)dt / (double)want;
	res.events_per_s = 1e9 * (double)want / (double)dt;
	return res;
}

static int by_rate(const void *a, const void *b)
{
	const struct result *x = a, *y = b;
	return (x->events_per_s > y->events_per_s) - (x->events_per_s < y->events_per_s);
}

int main(void)
{
	double scale = 1.0;
	const char *s = getenv("TAPIO_BENCH_SCALE");
	if (s && atof(s) > 0)
		scale = atof(s);
	struct {
		unsigned producers;
		size_t len;
		uint64_t n;
	} cases[] = {
	    {1, 128, 3000000}, {1, 64, 3000000},  {2, 64, 3000000},  {4, 64, 3000000},
	    {1, 512, 1000000}, {2, 512, 1000000}, {4, 512, 1000000},
	};
#ifdef QUEUE_LOCKED_RESERVE
	const char *variant = "arena(spinlock)";
#else
	const char *variant = "arena(cas)";
#endif
	printf("queue bench: %u MiB arena, one consumer that reads and releases each record,\n"
	       "median of 3 runs\n",
	       QSIZE >> 20);
	printf("%-16s %9s %7s %10s %12s %9s %8s\n", "queue", "producers", "bytes", "records",
	       "events/s", "ns/event", "wakeups");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t n = (uint64_t)(cases[i].n * scale);
		for (int arena = 1; arena >= 0; arena--) {
			struct result rs[3];
			for (int k = 0; k < 3; k++)
				rs[k] = run(arena, cases[i].producers, cases[i].len, n);
			qsort(rs, 3, sizeof(rs[0]), by_rate);
			struct result r = rs[1];
			r.failed = rs[0].failed + rs[1].failed + rs[2].failed;
			char wk[24] = "-";
			if (arena)
				snprintf(wk, sizeof(wk), "%lu", (unsigned long)r.wakeups);
			printf("%-16s %9u %7zu %10lu %12.0f %9.1f %8s\n",
			       arena ? variant : "mutex+condvar", cases[i].producers, cases[i].len,
			       (unsigned long)n, r.events_per_s, r.ns_per_event, wk);
			if (r.failed)
				printf("  (%lu reserves timed out and were retried)\n",
				       (unsigned long)r.failed);
			fflush(stdout);
		}
	}
	return 0;
}
