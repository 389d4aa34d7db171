/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the arena event queue (user/core/queue.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/queue.h"

#define STRESS_CHECK(cond, ...) cr_assert(cond, __VA_ARGS__)
#include "tests/lib/queue_stress.h"

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void msleep(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void *put(struct queue *q, unsigned src, size_t len, uint32_t seq)
{
	unsigned char *p = queue_reserve(q, src, len);
	if (p)
		stress_fill(p, len, src, seq);
	return p;
}

/* Peeks without waiting and checks the record is (src, seq, len). */
static void expect(struct queue *q, unsigned src, uint32_t seq, size_t len)
{
	size_t l = 0;
	unsigned s = 99;
	unsigned char *p = queue_peek(q, &l, &s, 0);
	cr_assert_not_null(p, "record seq %u missing: errno %d", seq, errno);
	cr_assert_eq(((uintptr_t)p) & 7, 0, "records are 8-byte aligned");
	cr_assert_eq(l, len, "seq %u: len %zu, want %zu", seq, l, len);
	cr_assert_eq(s, src);
	cr_assert(stress_same(p, l, src, seq), "seq %u: contents differ", seq);
	queue_release(q, p);
}

static void expect_empty(struct queue *q)
{
	errno = 0;
	cr_assert_null(queue_peek(q, NULL, NULL, 0));
	cr_assert_eq(errno, EAGAIN);
}

Test(queue, bad_sizes)
{
	size_t bad[] = {0, 1, 2048, 4095, 4097, 6000, (size_t)1 << 31};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert_null(queue_new(bad[i]), "size %zu accepted", bad[i]);
		cr_assert_eq(errno, EINVAL);
	}
	struct queue *q = queue_new(4096);
	cr_assert_not_null(q);
	cr_assert_eq(queue_capacity(q), 4096);
	cr_assert_eq(queue_used(q), 0);
	queue_free(q);
	queue_free(NULL);
}

Test(queue, bad_arguments_not_counted)
{
	struct queue *q = queue_new(4096);
	errno = 0;
	cr_assert_null(queue_reserve(q, QUEUE_MAX_SOURCES, 8));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(queue_reserve(q, 0, 0));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(queue_set_wait(q, QUEUE_MAX_SOURCES, 1), -EINVAL);
	struct queue_src_stats st;
	queue_stats(q, 0, &st);
	cr_assert_eq(st.reserved + st.dropped, 0);
	queue_stats(q, QUEUE_MAX_SOURCES, &st);
	cr_assert_eq(st.reserved, 0);
	queue_free(q);
}

Test(queue, order_one_by_one_with_wraparound)
{
	struct queue *q = queue_new(4096);
	uint64_t bytes = 0;
	/* lengths 1..300 sweep every alignment and many arena offsets; 2000
	 * records of ~150 B wrap a 4 KiB arena about 80 times */
	for (uint32_t seq = 0; seq < 2000; seq++) {
		size_t len = 1 + (seq * 37) % 300;
		void *p = put(q, 1, len, seq);
		cr_assert_not_null(p, "seq %u: errno %d", seq, errno);
		queue_commit(q, p);
		expect(q, 1, seq, len);
		bytes += len;
	}
	expect_empty(q);
	cr_assert_eq(queue_used(q), 0);
	struct queue_src_stats st;
	queue_stats(q, 1, &st);
	cr_assert_eq(st.reserved, 2000);
	cr_assert_eq(st.committed, 2000);
	cr_assert_eq(st.bytes, bytes);
	cr_assert_eq(st.dropped, 0);
	queue_free(q);
}

Test(queue, order_batches_fill_and_drain)
{
	/* Fill until full, drain a part, fill again: the queue wraps with many
	 * records in flight, and reservation order is kept across the pad. */
	struct queue *q = queue_new(8192);
	uint32_t next_put = 0, next_get = 0;
	size_t lens[64];
	for (int round = 0; round < 200; round++) {
		for (;;) {
			size_t len = 8 + (next_put * 53) % 700;
			void *p = put(q, 2, len, next_put);
			if (!p) {
				cr_assert_eq(errno, ENOSPC);
				break;
			}
			lens[next_put % 64] = len;
			next_put++;
			queue_commit(q, p);
			cr_assert_lt(next_put - next_get, 64);
		}
		cr_assert_leq(queue_used(q), 8192);
		/* drain a varying share */
		uint32_t n = (next_put - next_get) * (1 + round % 3) / 3;
		for (uint32_t i = 0; i < n; i++, next_get++)
			expect(q, 2, next_get, lens[next_get % 64]);
	}
	while (next_get < next_put) {
		expect(q, 2, next_get, lens[next_get % 64]);
		next_get++;
	}
	expect_empty(q);
	struct queue_src_stats st;
	queue_stats(q, 2, &st);
	cr_assert_eq(st.committed, next_put);
	cr_assert_eq(st.dropped_full, 200);
	queue_free(q);
}

Test(queue, peek_returns_same_record_until_release)
{
	struct queue *q = queue_new(4096);
	void *a = put(q, 0, 10, 1);
	queue_commit(q, a);
	void *b = put(q, 0, 20, 2);
	queue_commit(q, b);
	size_t l;
	cr_assert_eq(queue_peek(q, &l, NULL, 0), a);
	cr_assert_eq(queue_peek(q, &l, NULL, 0), a);
	cr_assert_eq(l, 10);
	queue_release(q, b); /* not the peeked record: ignored */
	cr_assert_eq(queue_peek(q, &l, NULL, 0), a);
	queue_release(q, a);
	cr_assert_eq(queue_peek(q, &l, NULL, 0), b);
	cr_assert_eq(l, 20);
	queue_release(q, b);
	expect_empty(q);
	queue_free(q);
}

Test(queue, out_of_order_commit)
{
	struct queue *q = queue_new(4096);
	void *a = put(q, 0, 100, 0);
	void *b = put(q, 0, 50, 1);
	void *c = put(q, 0, 70, 2);
	cr_assert(a && b && c);
	queue_commit(q, c);
	queue_commit(q, b);
	expect_empty(q); /* a is still being written */
	queue_commit(q, a);
	expect(q, 0, 0, 100);
	expect(q, 0, 1, 50);
	expect(q, 0, 2, 70);
	expect_empty(q);
	queue_free(q);
}

struct waiter {
	struct queue *q;
	int timeout_ms;
	atomic_int done;
	void *rec;
	size_t len;
	int err;
	uint64_t waited_ms;
	atomic_int started;
	atomic_int tid;
};

static void *peek_thread(void *arg)
{
	struct waiter *w = arg;
	atomic_store(&w->tid, (int)gettid());
	atomic_store(&w->started, 1);
	uint64_t t0 = ms_now();
	errno = 0;
	w->rec = queue_peek(w->q, &w->len, NULL, w->timeout_ms);
	w->err = errno;
	w->waited_ms = ms_now() - t0;
	atomic_store(&w->done, 1);
	return NULL;
}

Test(queue, sleeping_consumer_waits_for_the_oldest_record)
{
	struct queue *q = queue_new(4096);
	struct waiter w = {.q = q, .timeout_ms = -1};
	void *a = put(q, 3, 16, 0);
	void *b = put(q, 3, 24, 1);
	pthread_t t;
	pthread_create(&t, NULL, peek_thread, &w);
	msleep(30);
	queue_commit(q, b); /* wakes the consumer, which must keep waiting */
	msleep(30);
	cr_assert_eq(atomic_load(&w.done), 0, "consumer returned before the oldest commit");
	queue_commit(q, a);
	pthread_join(t, NULL);
	cr_assert_eq(w.rec, a);
	cr_assert_eq(w.len, 16);
	queue_release(q, a);
	expect(q, 3, 1, 24);
	queue_free(q);
}

Test(queue, sleeping_consumer_woken_by_commit)
{
	struct queue *q = queue_new(4096);
	struct waiter w = {.q = q, .timeout_ms = 5000};
	pthread_t t;
	pthread_create(&t, NULL, peek_thread, &w);
	msleep(30);
	void *a = put(q, 0, 8, 7);
	queue_commit(q, a);
	pthread_join(t, NULL);
	cr_assert_eq(w.rec, a);
	cr_assert_lt(w.waited_ms, 2000, "woken late: %lu ms", (unsigned long)w.waited_ms);
	queue_free(q);
}

/* Waits (up to 10 s) until the waiter's thread sleeps in a futex wait. */
static void wait_asleep(struct waiter *w)
{
	for (int i = 0; i < 1000; i++) {
		char path[64], wchan[64] = "";
		int tid = atomic_load(&w->tid);
		if (tid) {
			snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
			FILE *f = fopen(path, "r");
			if (f) {
				if (!fgets(wchan, sizeof(wchan), f))
					wchan[0] = '\0';
				fclose(f);
			}
			if (strstr(wchan, "futex"))
				return;
		}
		msleep(10);
	}
	cr_assert_fail("the consumer did not go to sleep");
}

Test(queue, quiet_commits_wake_the_consumer_once_per_batch)
{
	struct queue *q = queue_new(4096);
	struct waiter w = {.q = q, .timeout_ms = -1};
	pthread_t t;
	pthread_create(&t, NULL, peek_thread, &w);
	wait_asleep(&w); /* past its spin: asleep */
	uint64_t w0 = queue_wakeups(q);
	void *a = put(q, 2, 8, 1);
	void *b = put(q, 2, 16, 2);
	queue_commit_quiet(q, a);
	queue_commit_quiet(q, b);
	msleep(50);
	cr_assert_eq(atomic_load(&w.done), 0, "a quiet commit woke the consumer");
	cr_assert_eq(queue_wakeups(q), w0);
	queue_wake(q);
	pthread_join(t, NULL);
	cr_assert_eq(w.rec, a);
	cr_assert_eq(queue_wakeups(q), w0 + 1, "one wake-up for the batch");
	queue_release(q, a);
	expect(q, 2, 2, 16);
	queue_wake(q); /* nobody waits: nothing to do */
	cr_assert_eq(queue_wakeups(q), w0 + 1);
	queue_free(q);
}

Test(queue, discard)
{
	struct queue *q = queue_new(4096);
	void *a = put(q, 0, 40, 0);
	void *b = put(q, 1, 40, 1);
	void *c = put(q, 0, 40, 2);
	queue_discard(q, b);
	queue_commit(q, c);
	queue_commit(q, a);
	expect(q, 0, 0, 40);
	expect(q, 0, 2, 40);
	expect_empty(q);
	cr_assert_eq(queue_used(q), 0);
	/* a discarded oldest record unblocks a waiting consumer */
	struct waiter w = {.q = q, .timeout_ms = 5000};
	void *d = put(q, 0, 8, 3);
	void *e = put(q, 0, 8, 4);
	queue_commit(q, e);
	pthread_t t;
	pthread_create(&t, NULL, peek_thread, &w);
	msleep(20);
	queue_discard(q, d);
	pthread_join(t, NULL);
	cr_assert_eq(w.rec, e);
	queue_release(q, e);
	struct queue_src_stats st;
	queue_stats(q, 0, &st);
	cr_assert_eq(st.reserved, 4);
	cr_assert_eq(st.committed, 3);
	cr_assert_eq(st.discarded, 1);
	cr_assert_eq(st.bytes, 88);
	queue_stats(q, 1, &st);
	cr_assert_eq(st.reserved, 1);
	cr_assert_eq(st.committed, 0);
	cr_assert_eq(st.discarded, 1);
	cr_assert_eq(st.bytes, 0);
	queue_free(q);
}

Test(queue, full_drops_and_counts)
{
	struct queue *q = queue_new(4096);
	int n = 0;
	void *first = NULL;
	for (;;) {
		void *p = put(q, 3, 120, (uint32_t)n);
		if (!p)
			break;
		if (!first)
			first = p;
		queue_commit(q, p);
		n++;
	}
	cr_assert_eq(errno, ENOSPC);
	cr_assert_eq(n, 4096 / 128, "128-byte records fill 4 KiB: %d", n);
	cr_assert_eq(queue_used(q), 4096);
	for (int i = 0; i < 5; i++) {
		errno = 0;
		cr_assert_null(queue_reserve(q, 3, 8));
		cr_assert_eq(errno, ENOSPC);
	}
	struct queue_src_stats st;
	queue_stats(q, 3, &st);
	cr_assert_eq(st.dropped_full, 6);
	cr_assert_eq(st.dropped, 6);
	cr_assert_eq(st.reserved, (uint64_t)n);
	/* releasing one record makes room for exactly one more */
	expect(q, 3, 0, 120);
	void *p = put(q, 3, 120, (uint32_t)n);
	cr_assert_not_null(p);
	queue_commit(q, p);
	cr_assert_null(queue_reserve(q, 3, 8));
	for (int i = 1; i <= n; i++)
		expect(q, 3, (uint32_t)i, 120);
	expect_empty(q);
	queue_free(q);
}

Test(queue, full_waits_with_a_bound)
{
	struct queue *q = queue_new(4096);
	while (queue_reserve(q, 2, 504))
		;
	cr_assert_eq(queue_set_wait(q, 2, 100), 0);
	uint64_t t0 = ms_now();
	errno = 0;
	cr_assert_null(queue_reserve(q, 2, 504));
	uint64_t took = ms_now() - t0;
	cr_assert_eq(errno, ETIMEDOUT);
	cr_assert_geq(took, 99, "gave up after %lu ms", (unsigned long)took);
	cr_assert_lt(took, 1000, "waited %lu ms for a 100 ms bound", (unsigned long)took);
	struct queue_src_stats st;
	queue_stats(q, 2, &st);
	cr_assert_eq(st.dropped_timeout, 1);
	cr_assert_eq(st.dropped_full, 1); /* the fill loop's last try */
	cr_assert_eq(st.dropped, 2);
	queue_free(q);
}

struct producer_arg {
	struct queue *q;
	unsigned src;
	size_t len;
	void *rec;
	int err;
	uint64_t took_ms;
	atomic_int started, done;
};

static void *reserve_thread(void *arg)
{
	struct producer_arg *a = arg;
	atomic_store(&a->started, 1);
	uint64_t t0 = ms_now();
	errno = 0;
	a->rec = queue_reserve(a->q, a->src, a->len);
	a->err = errno;
	a->took_ms = ms_now() - t0;
	atomic_store(&a->done, 1);
	return NULL;
}

/* Waits until the thread is about to reserve, then gives it time to sleep. */
static void wait_started(struct producer_arg *a)
{
	while (!atomic_load(&a->started))
		msleep(1);
	msleep(50);
}

Test(queue, waiting_producer_gets_space_when_released)
{
	struct queue *q = queue_new(4096);
	uint32_t n = 0;
	void *p;
	while ((p = put(q, 1, 1016, n))) {
		queue_commit(q, p);
		n++;
	}
	cr_assert_eq(n, 4);
	queue_set_wait(q, 1, 5000);
	struct producer_arg a = {.q = q, .src = 1, .len = 1016};
	pthread_t t;
	pthread_create(&t, NULL, reserve_thread, &a);
	wait_started(&a);
	cr_assert_eq(atomic_load(&a.done), 0, "reserved in a full queue");
	expect(q, 1, 0, 1016); /* frees 1 KiB: the producer must wake */
	pthread_join(t, NULL);
	cr_assert_not_null(a.rec, "errno %d", a.err);
	cr_assert_lt(a.took_ms, 2500, "took %lu ms", (unsigned long)a.took_ms);
	stress_fill(a.rec, 1016, 1, n);
	queue_commit(q, a.rec);
	for (uint32_t i = 1; i <= n; i++)
		expect(q, 1, i, 1016);
	queue_free(q);
}

Test(queue, oversize)
{
	struct queue *q = queue_new(4096);
	/* the largest record, header included, is half the arena */
	size_t max = 2048 - 8;
	errno = 0;
	cr_assert_null(queue_reserve(q, 4, max + 1));
	cr_assert_eq(errno, E2BIG);
	cr_assert_null(queue_reserve(q, 4, 1u << 20));
	cr_assert_eq(errno, E2BIG);
	struct queue_src_stats st;
	queue_stats(q, 4, &st);
	cr_assert_eq(st.dropped_oversize, 2);
	cr_assert_eq(st.dropped, 2);
	/* a maximal record fits in an empty queue at every offset */
	for (uint32_t seq = 0; seq < 600; seq++) {
		size_t pre = 8 * (seq % 256);
		if (pre) {
			void *p = put(q, 4, pre, 9999);
			cr_assert_not_null(p);
			queue_discard(q, p);
		}
		void *p = put(q, 4, max, seq);
		cr_assert_not_null(p, "offset %zu: errno %d", pre, errno);
		queue_commit(q, p);
		expect(q, 4, seq, max);
	}
	queue_free(q);
}

Test(queue, close_delivers_reserved_then_shuts_down)
{
	struct queue *q = queue_new(4096);
	void *a = put(q, 0, 30, 0);
	void *b = put(q, 0, 30, 1);
	queue_commit(q, b);
	queue_close(q);
	errno = 0;
	cr_assert_null(queue_reserve(q, 0, 8));
	cr_assert_eq(errno, ESHUTDOWN);
	expect_empty(q); /* a is still outstanding: not yet shut down */
	queue_commit(q, a);
	expect(q, 0, 0, 30);
	expect(q, 0, 1, 30);
	errno = 0;
	cr_assert_null(queue_peek(q, NULL, NULL, -1));
	cr_assert_eq(errno, ESHUTDOWN);
	struct queue_src_stats st;
	queue_stats(q, 0, &st);
	cr_assert_eq(st.dropped_closed, 1);
	cr_assert_eq(st.committed, 2);
	queue_free(q);
}

Test(queue, close_wakes_consumer_and_waiting_producers)
{
	struct queue *q = queue_new(4096);
	struct waiter w = {.q = q, .timeout_ms = -1};
	pthread_t t;
	pthread_create(&t, NULL, peek_thread, &w);
	msleep(30);
	queue_close(q);
	pthread_join(t, NULL);
	cr_assert_null(w.rec);
	cr_assert_eq(w.err, ESHUTDOWN);
	cr_assert_lt(w.waited_ms, 2000);
	queue_free(q);

	q = queue_new(4096);
	while (queue_reserve(q, 5, 1000))
		;
	queue_set_wait(q, 5, 10000);
	struct producer_arg a = {.q = q, .src = 5, .len = 1000};
	pthread_create(&t, NULL, reserve_thread, &a);
	wait_started(&a);
	queue_close(q);
	pthread_join(t, NULL);
	cr_assert_null(a.rec);
	cr_assert_eq(a.err, ESHUTDOWN);
	cr_assert_lt(a.took_ms, 2000, "took %lu ms", (unsigned long)a.took_ms);
	struct queue_src_stats st;
	queue_stats(q, 5, &st);
	cr_assert_eq(st.dropped_closed, 1);
	cr_assert_eq(st.dropped_full, 1);
	cr_assert_eq(st.dropped_timeout, 0);
	queue_free(q);
}

Test(queue, peek_timeout_and_kick)
{
	struct queue *q = queue_new(4096);
	uint64_t t0 = ms_now();
	errno = 0;
	cr_assert_null(queue_peek(q, NULL, NULL, 60));
	uint64_t took = ms_now() - t0;
	cr_assert_eq(errno, EAGAIN);
	cr_assert_geq(took, 59);
	cr_assert_lt(took, 1000);

	struct waiter w = {.q = q, .timeout_ms = -1};
	pthread_t t;
	pthread_create(&t, NULL, peek_thread, &w);
	msleep(30);
	queue_kick(q);
	pthread_join(t, NULL);
	cr_assert_null(w.rec);
	cr_assert_eq(w.err, EAGAIN);
	/* the queue still works after a kick */
	void *a = put(q, 0, 8, 0);
	queue_commit(q, a);
	expect(q, 0, 0, 8);
	queue_free(q);
}

Test(queue, counters_are_per_source)
{
	struct queue *q = queue_new(4096);
	for (unsigned s = 0; s < QUEUE_MAX_SOURCES; s++) {
		for (unsigned i = 0; i <= s; i++) {
			void *p = put(q, s, 10 + s, i);
			if (i == 1)
				queue_discard(q, p);
			else
				queue_commit(q, p);
		}
	}
	for (unsigned s = 0; s < QUEUE_MAX_SOURCES; s++) {
		struct queue_src_stats st;
		queue_stats(q, s, &st);
		uint64_t disc = s >= 1 ? 1 : 0;
		cr_assert_eq(st.reserved, s + 1);
		cr_assert_eq(st.discarded, disc);
		cr_assert_eq(st.committed, s + 1 - disc);
		cr_assert_eq(st.bytes, (s + 1 - disc) * (10 + s));
	}
	queue_free(q);
}

Test(queue, stress_small_queue, .timeout = 100)
{
	stress_run(16384, 50000); /* mostly full: drops, waits and wrap-around */
}

Test(queue, stress_large_queue, .timeout = 100)
{
	stress_run(1 << 20, 100000);
}

static void *drain_thread(void *arg)
{
	struct waiter *w = arg;
	size_t n = 0;
	for (;;) {
		void *p = queue_peek(w->q, NULL, NULL, -1);
		if (!p)
			break;
		queue_release(w->q, p);
		n++;
	}
	w->len = n;
	w->err = errno;
	return NULL;
}

Test(queue, no_syscall_per_event)
{
	struct queue *q = queue_new(1 << 20);
	/* a sleeping consumer: one commit, one wake-up */
	struct waiter w = {.q = q, .timeout_ms = -1};
	pthread_t t;
	pthread_create(&t, NULL, peek_thread, &w);
	while (!atomic_load(&w.started))
		msleep(1);
	msleep(50); /* it polls for 20 us, then sleeps */
	cr_assert_eq(queue_wakeups(q), 0);
	void *a = put(q, 0, 8, 0);
	queue_commit(q, a);
	pthread_join(t, NULL);
	cr_assert_eq(w.rec, a);
	cr_assert_eq(queue_wakeups(q), 1);
	queue_release(q, a);
	/* a stream: the consumer keeps up, producers rarely need to wake it */
	pthread_create(&t, NULL, drain_thread, &w);
	const int n = 200000;
	for (int i = 0; i < n; i++) {
		void *p = queue_reserve(q, 0, 64);
		if (!p) {
			i--;
			continue;
		}
		memset(p, 1, 64);
		queue_commit(q, p);
	}
	queue_close(q);
	pthread_join(t, NULL);
	cr_assert_eq(w.len, (size_t)n);
	cr_assert_eq(w.err, ESHUTDOWN);
	uint64_t wakes = queue_wakeups(q);
	cr_log_info("%d records, %lu wake-ups", n, (unsigned long)wakes);
	cr_assert_lt(wakes, (uint64_t)n / 20, "%lu wake-ups for %d records", (unsigned long)wakes,
		     n);
	queue_free(q);
}
