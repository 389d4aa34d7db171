/* SPDX-License-Identifier: Apache-2.0 */
/* The arena event queue (see queue.h), modelled on the kernel BPF ring buffer.
 *
 * Positions are 64-bit byte counters that only grow; a position's place in the
 * arena is pos & mask. Every record starts with an 8-byte header:
 *
 *   u32 len   payload length, plus REC_BUSY (reserved, not yet committed) and
 *             REC_DISCARD (skip it) in the top bits
 *   u32 src   the source
 *
 * and takes 8 + round_up(len, 8) bytes. A record never straddles the end of
 * the arena: when it does not fit in the tail, the producer also reserves the
 * tail and writes a discarded pad record there.
 *
 * Producers advance prod_pos with a compare-and-swap (build with
 * -DQUEUE_LOCKED_RESERVE for a short spinlock instead, as the kernel does), then
 * write the header with REC_BUSY set. With the CAS, a reservation is visible
 * (prod_pos moved) before its header is written, so the consumer must be able
 * to tell an unwritten header from a stale one: it zeroes the space it releases,
 * and a header of 0 means "not yet written" (a real header always has a length
 * or a flag). The arena starts zeroed (a fresh memfd or anonymous mmap).
 *
 * commit clears REC_BUSY with a release store and a full barrier (a batch of
 * quiet commits shares the barrier of the queue_wake() after it), then looks
 * at cons_wait: only if the consumer announced that it sleeps does
 * the producer make a syscall (futex wake). The consumer announces, re-checks,
 * then sleeps on the futex; the barrier pair makes a lost wake-up impossible.
 * Producers that wait for space do the same with space_wait / space_seq; the
 * consumer wakes them (all at once, one syscall) when it has freed a quarter of
 * the arena or is about to sleep itself, and only if one announced itself.
 *
 * Before it sleeps, the consumer polls for a short while (SPIN_NS): when it
 * keeps up with the producers, it would otherwise sleep after every record and
 * make every commit a syscall.
 * the consumer wakes them on release only when there are any.
 */
#include "core/queue.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CACHELINE 64
#define REC_HDR 8u
#define REC_BUSY (1u << 31)
#define REC_DISCARD (1u << 30)
#define REC_LEN_MASK (REC_DISCARD - 1)
#define QUEUE_MAX_SIZE ((size_t)1 << 30)
#ifndef SPIN_NS
#define SPIN_NS 20000 /* how long the consumer polls before it sleeps */
#endif

struct rec_hdr {
	_Atomic uint32_t len;
	_Atomic uint32_t src;
};
_Static_assert(sizeof(struct rec_hdr) == REC_HDR, "record header is 8 bytes");

struct src_slot {
	alignas(CACHELINE) _Atomic uint64_t reserved;
	_Atomic uint64_t committed;
	_Atomic uint64_t discarded;
	_Atomic uint64_t bytes;
	_Atomic uint64_t dropped_full;
	_Atomic uint64_t dropped_timeout;
	_Atomic uint64_t dropped_oversize;
	_Atomic uint64_t dropped_closed;
	_Atomic uint32_t wait_ms;
};

struct queue {
	/* read-mostly */
	alignas(CACHELINE) unsigned char *data;
	uint64_t mask;
	size_t size;
	size_t max_len;
	_Atomic int closed;

	/* producers */
	alignas(CACHELINE) _Atomic uint64_t prod_pos;
	_Atomic uint64_t cons_cache; /* a recent cons_pos, saves reading the consumer's line */
#ifdef QUEUE_LOCKED_RESERVE
	_Atomic int lock;
#endif

	/* consumer */
	alignas(CACHELINE) _Atomic uint64_t cons_pos;
	uint64_t prod_cache; /* consumer-private: a recent prod_pos */

	/* consumer sleep: 1 while the consumer sleeps or is about to */
	alignas(CACHELINE) _Atomic uint32_t cons_wait;
	_Atomic uint32_t kicked;
	_Atomic uint64_t wakeups;

	/* producers sleeping for space */
	alignas(CACHELINE) _Atomic uint32_t space_seq;
	_Atomic uint32_t space_wait; /* 1 when a producer may sleep for space */

	struct src_slot src[QUEUE_MAX_SOURCES];
};

static inline uint64_t rec_total(uint32_t len)
{
	return REC_HDR + (((uint64_t)len + 7) & ~(uint64_t)7);
}

static inline struct rec_hdr *hdr_at(const struct queue *q, uint64_t pos)
{
	return (struct rec_hdr *)(q->data + (pos & q->mask));
}

static inline struct rec_hdr *hdr_of(void *rec)
{
	return (struct rec_hdr *)rec - 1;
}

static void futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

/* Sleeps while *addr == val, until the absolute CLOCK_MONOTONIC deadline (NULL =
 * none). Returns 0 when woken (or the value differed), -ETIMEDOUT, or -EINTR. */
static int futex_wait_until(_Atomic uint32_t *addr, uint32_t val, const struct timespec *deadline)
{
	long rc = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, deadline,
			  NULL, FUTEX_BITSET_MATCH_ANY);
	if (rc == 0 || errno == EAGAIN)
		return 0;
	return -errno;
}

static void deadline_after(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool deadline_passed(const struct timespec *ts)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* The arena: a memfd named "tapio-queue", so that /proc/PID/smaps tells it
 * apart from the heap and the other anonymous mappings (it shows as
 * "/memfd:tapio-queue (deleted)"; an anonymous mapping merges with its
 * neighbours and has no name unless the kernel has CONFIG_ANON_VMA_NAME).
 * The memory is the same: zeroed, populated at start, private to the process.
 * Without memfd_create (seccomp, old kernels) an anonymous mapping. */
static void *arena_map(size_t size)
{
	int fd = memfd_create("tapio-queue", MFD_CLOEXEC);
	if (fd >= 0) {
		void *mem = MAP_FAILED;
		if (ftruncate(fd, (off_t)size) == 0)
			mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
				   fd, 0);
		close(fd);
		if (mem != MAP_FAILED)
			return mem;
	}
	return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		    -1, 0);
}

struct queue *queue_new(size_t size)
{
	if (size < 4096 || size > QUEUE_MAX_SIZE || (size & (size - 1))) {
		errno = EINVAL;
		return NULL;
	}
	struct queue *q = NULL;
	int err = posix_memalign((void **)&q, CACHELINE, sizeof(*q));
	if (err) {
		errno = err;
		return NULL;
	}
	memset(q, 0, sizeof(*q));
	void *mem = arena_map(size);
	if (mem == MAP_FAILED) {
		free(q);
		errno = ENOMEM;
		return NULL;
	}
	q->data = mem;
	q->size = size;
	q->mask = size - 1;
	q->max_len = size / 2 - REC_HDR;
	return q;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	munmap(q->data, q->size);
	free(q);
}

int queue_set_wait(struct queue *q, unsigned src, unsigned wait_ms)
{
	if (!q || src >= QUEUE_MAX_SOURCES || wait_ms > INT_MAX)
		return -EINVAL;
	atomic_store_explicit(&q->src[src].wait_ms, wait_ms, memory_order_relaxed);
	return 0;
}

static inline void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Space a record of len bytes takes at position pos, with the pad record in
 * front of it when it would straddle the end; sets *pad to the pad's size. */
static inline uint64_t space_for(const struct queue *q, uint64_t pos, uint64_t need, uint64_t *pad)
{
	uint64_t tail = q->size - (pos & q->mask);
	*pad = tail < need ? tail : 0;
	return *pad + need;
}

/* Writes the header of a fresh reservation [pos, pos + total) and returns the
 * record's payload. */
static inline void *place(struct queue *q, unsigned src, uint64_t pos, uint64_t pad, uint32_t len)
{
	if (pad) {
		struct rec_hdr *p = hdr_at(q, pos);
		atomic_store_explicit(&p->src, src, memory_order_relaxed);
		atomic_store_explicit(&p->len, (uint32_t)(pad - REC_HDR) | REC_DISCARD,
				      memory_order_release);
		pos += pad;
	}
	struct rec_hdr *h = hdr_at(q, pos);
	atomic_store_explicit(&h->src, src, memory_order_relaxed);
	atomic_store_explicit(&h->len, len | REC_BUSY, memory_order_relaxed);
	return h + 1;
}

/* Wakes the consumer if it sleeps or is about to. Callers have just made a
 * change visible with a seq_cst operation. */
static inline void wake_consumer(struct queue *q)
{
	if (atomic_load_explicit(&q->cons_wait, memory_order_seq_cst) &&
	    atomic_exchange_explicit(&q->cons_wait, 0, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&q->wakeups, 1, memory_order_relaxed);
		futex_wake(&q->cons_wait, 1);
	}
}

/* One attempt. Returns the record, or NULL when the queue is full (errno
 * ENOSPC) or closed (ESHUTDOWN). */
static void *try_reserve(struct queue *q, unsigned src, uint32_t len)
{
	uint64_t need = rec_total(len), pad, total, pos, cons;
#ifdef QUEUE_LOCKED_RESERVE
	for (;;) {
		if (!atomic_exchange_explicit(&q->lock, 1, memory_order_acquire))
			break;
		while (atomic_load_explicit(&q->lock, memory_order_relaxed))
			cpu_relax();
	}
	pos = atomic_load_explicit(&q->prod_pos, memory_order_relaxed);
	total = space_for(q, pos, need, &pad);
	cons = atomic_load_explicit(&q->cons_cache, memory_order_relaxed);
	if (pos + total - cons > q->size) {
		cons = atomic_load_explicit(&q->cons_pos, memory_order_seq_cst);
		atomic_store_explicit(&q->cons_cache, cons, memory_order_relaxed);
		if (pos + total - cons > q->size) {
			atomic_store_explicit(&q->lock, 0, memory_order_release);
			errno = ENOSPC;
			return NULL;
		}
	}
	void *rec = place(q, src, pos, pad, len);
	/* seq_cst: ordered before the closed check below */
	atomic_store_explicit(&q->prod_pos, pos + total, memory_order_seq_cst);
	atomic_store_explicit(&q->lock, 0, memory_order_release);
#else
	pos = atomic_load_explicit(&q->prod_pos, memory_order_relaxed);
	for (;;) {
		total = space_for(q, pos, need, &pad);
		/* acquire: the consumer zeroed the space before it released it */
		cons = atomic_load_explicit(&q->cons_cache, memory_order_acquire);
		if (pos + total - cons > q->size) {
			cons = atomic_load_explicit(&q->cons_pos, memory_order_seq_cst);
			atomic_store_explicit(&q->cons_cache, cons, memory_order_release);
			if (pos + total - cons > q->size) {
				errno = ENOSPC;
				return NULL;
			}
		}
		if (atomic_compare_exchange_weak_explicit(&q->prod_pos, &pos, pos + total,
							  memory_order_seq_cst,
							  memory_order_relaxed))
			break;
	}
	void *rec = place(q, src, pos, pad, len);
#endif
	/* the lines the next records go to, for writing: a large arena is
	 * cold by the time the producers come round to it again */
	for (uint64_t ahead = 0; ahead < 512; ahead += CACHELINE)
		__builtin_prefetch(q->data + ((pos + total + 512 + ahead) & q->mask), 1);
	/* A reservation published after queue_close() is given up, so that a
	 * consumer that has seen the queue closed and then empty never misses a
	 * record. */
	if (atomic_load_explicit(&q->closed, memory_order_seq_cst)) {
		atomic_store_explicit(&hdr_of(rec)->len, len | REC_DISCARD, memory_order_seq_cst);
		wake_consumer(q);
		errno = ESHUTDOWN;
		return NULL;
	}
	return rec;
}

void *queue_reserve(struct queue *q, unsigned src, size_t len)
{
	if (!q || src >= QUEUE_MAX_SOURCES || len == 0) {
		errno = EINVAL;
		return NULL;
	}
	struct src_slot *s = &q->src[src];
	if (len > q->max_len) {
		count(&s->dropped_oversize, 1);
		errno = E2BIG;
		return NULL;
	}
	if (atomic_load_explicit(&q->closed, memory_order_relaxed)) {
		count(&s->dropped_closed, 1);
		errno = ESHUTDOWN;
		return NULL;
	}
	void *rec = try_reserve(q, src, (uint32_t)len);
	if (rec) {
		count(&s->reserved, 1);
		return rec;
	}
	if (errno == ESHUTDOWN) {
		count(&s->dropped_closed, 1);
		return NULL;
	}
	unsigned wait_ms = atomic_load_explicit(&s->wait_ms, memory_order_relaxed);
	if (!wait_ms) {
		count(&s->dropped_full, 1);
		errno = ENOSPC;
		return NULL;
	}

	struct timespec deadline;
	deadline_after(&deadline, wait_ms);
	for (;;) {
		uint32_t seq = atomic_load_explicit(&q->space_seq, memory_order_seq_cst);
		atomic_store_explicit(&q->space_wait, 1, memory_order_seq_cst);
		rec = try_reserve(q, src, (uint32_t)len);
		int err = rec ? 0 : errno, rc = 0;
		if (err == ENOSPC && !atomic_load(&q->closed))
			rc = futex_wait_until(&q->space_seq, seq, &deadline);
		if (rec) {
			count(&s->reserved, 1);
			return rec;
		}
		if (err == ESHUTDOWN || atomic_load(&q->closed)) {
			count(&s->dropped_closed, 1);
			errno = ESHUTDOWN;
			return NULL;
		}
		if (rc == -ETIMEDOUT || deadline_passed(&deadline)) {
			count(&s->dropped_timeout, 1);
			errno = ETIMEDOUT;
			return NULL;
		}
	}
}

void queue_commit(struct queue *q, void *rec)
{
	queue_commit_quiet(q, rec);
	/* the header store before the load of cons_wait: the consumer
	 * announces, then checks the header, so one of us sees the other */
	atomic_thread_fence(memory_order_seq_cst);
	wake_consumer(q);
}

void queue_wake(struct queue *q)
{
	/* The header stores of the queue_commit_quiet() calls before this are
	 * ordered against wake_consumer()'s load, as in queue_commit(). */
	atomic_thread_fence(memory_order_seq_cst);
	wake_consumer(q);
}

void queue_commit_quiet(struct queue *q, void *rec)
{
	struct rec_hdr *h = hdr_of(rec);
	uint32_t src = atomic_load_explicit(&h->src, memory_order_relaxed);
	uint32_t len = atomic_load_explicit(&h->len, memory_order_relaxed) & REC_LEN_MASK;
	struct src_slot *s = &q->src[src];
	count(&s->committed, 1);
	count(&s->bytes, len);
	/* release: the record's bytes before its header. Only its producer
	 * writes the header of a reserved record, so a plain store clears
	 * REC_BUSY; the full barrier that orders it against the load of
	 * cons_wait is queue_commit()'s or queue_wake()'s, once per batch. */
	atomic_store_explicit(&h->len, len, memory_order_release);
}

void queue_discard(struct queue *q, void *rec)
{
	struct rec_hdr *h = hdr_of(rec);
	uint32_t src = atomic_load_explicit(&h->src, memory_order_relaxed);
	uint32_t len = atomic_load_explicit(&h->len, memory_order_relaxed) & REC_LEN_MASK;
	count(&q->src[src].discarded, 1);
	atomic_exchange_explicit(&h->len, len | REC_DISCARD, memory_order_seq_cst);
	wake_consumer(q);
}

/* Wakes the producers that sleep for space, if any. */
static inline void wake_producers(struct queue *q)
{
	if (atomic_load_explicit(&q->space_wait, memory_order_seq_cst) &&
	    atomic_exchange_explicit(&q->space_wait, 0, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&q->space_seq, 1, memory_order_seq_cst);
		atomic_fetch_add_explicit(&q->wakeups, 1, memory_order_relaxed);
		futex_wake(&q->space_seq, INT_MAX);
	}
}

/* Frees [cons, cons + total): zero it (see the top of the file), publish, and
 * wake producers that sleep for space once a quarter of the arena is free. */
static void advance(struct queue *q, uint64_t cons, uint64_t total)
{
#ifndef QUEUE_LOCKED_RESERVE
	memset(q->data + (cons & q->mask), 0, total);
#endif
	cons += total;
	atomic_store_explicit(&q->cons_pos, cons, memory_order_seq_cst);
	if (atomic_load_explicit(&q->space_wait, memory_order_seq_cst) &&
	    atomic_load_explicit(&q->prod_pos, memory_order_relaxed) - cons <=
		q->size - q->size / 4)
		wake_producers(q);
}

/* The state of the oldest record. */
enum head { HEAD_READY, HEAD_EMPTY, HEAD_BUSY };

/* Skips discarded records; returns the head's state and, when ready, the
 * record's header. */
static enum head head(struct queue *q, struct rec_hdr **out, memory_order mo)
{
	uint64_t cons = atomic_load_explicit(&q->cons_pos, memory_order_relaxed);
	for (;;) {
		if (cons == q->prod_cache) {
			q->prod_cache = atomic_load_explicit(&q->prod_pos, mo);
			if (cons == q->prod_cache)
				return HEAD_EMPTY;
		}
		struct rec_hdr *h = hdr_at(q, cons);
		uint32_t l = atomic_load_explicit(&h->len, mo);
		if (l == 0 || (l & REC_BUSY))
			return HEAD_BUSY;
		if (l & REC_DISCARD) {
			uint64_t total = rec_total(l & REC_LEN_MASK);
			advance(q, cons, total);
			cons += total;
			continue;
		}
		*out = h;
		return HEAD_READY;
	}
}

/* Polls for up to SPIN_NS until the head record is ready, the queue is closed
 * or kicked. */
static void spin(struct queue *q)
{
	uint64_t end = 0;
	for (unsigned i = 0;; i++) {
		struct rec_hdr *h;
		if (head(q, &h, memory_order_acquire) == HEAD_READY ||
		    atomic_load_explicit(&q->closed, memory_order_relaxed) ||
		    atomic_load_explicit(&q->kicked, memory_order_relaxed))
			return;
		if ((i & 31) == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
			if (!end)
				end = now + SPIN_NS;
			else if (now >= end)
				return;
		}
		cpu_relax();
	}
}

void *queue_peek(struct queue *q, size_t *len, unsigned *src, int timeout_ms)
{
	struct timespec deadline, *dl = NULL;
	bool spun = false;
	if (timeout_ms > 0) {
		deadline_after(&deadline, timeout_ms);
		dl = &deadline;
	}
	for (;;) {
		struct rec_hdr *h = NULL;
		enum head st = head(q, &h, memory_order_acquire);
		if (st == HEAD_EMPTY && atomic_load_explicit(&q->closed, memory_order_seq_cst)) {
			/* closed, then nothing left: producers reserve nothing more */
			st = head(q, &h, memory_order_seq_cst);
			if (st == HEAD_EMPTY) {
				errno = ESHUTDOWN;
				return NULL;
			}
		}
		if (st == HEAD_READY) {
			uint32_t l = atomic_load_explicit(&h->len, memory_order_relaxed);
			if (len)
				*len = l & REC_LEN_MASK;
			if (src)
				*src = atomic_load_explicit(&h->src, memory_order_relaxed);
			return h + 1;
		}
		if (timeout_ms == 0 || (atomic_load_explicit(&q->kicked, memory_order_relaxed) &&
					atomic_exchange(&q->kicked, 0))) {
			errno = EAGAIN;
			return NULL;
		}
		if (dl && deadline_passed(dl)) {
			errno = EAGAIN;
			return NULL;
		}
		if (!spun) {
			spun = true;
			spin(q);
			continue;
		}
		/* announce, then check again: a producer that commits after our
		 * check sees cons_wait and wakes us */
		atomic_store_explicit(&q->cons_wait, 1, memory_order_seq_cst);
		st = head(q, &h, memory_order_seq_cst);
		if (st == HEAD_READY || (st == HEAD_EMPTY && atomic_load(&q->closed)) ||
		    atomic_load(&q->kicked)) {
			atomic_store_explicit(&q->cons_wait, 0, memory_order_relaxed);
			continue;
		}
		wake_producers(q); /* nothing more will be freed for a while */
		futex_wait_until(&q->cons_wait, 1, dl);
		atomic_store_explicit(&q->cons_wait, 0, memory_order_relaxed);
		spun = false;
	}
}

void queue_release(struct queue *q, void *rec)
{
	if (!q || !rec)
		return;
	uint64_t cons = atomic_load_explicit(&q->cons_pos, memory_order_relaxed);
	struct rec_hdr *h = hdr_of(rec);
	if (h != hdr_at(q, cons))
		return; /* not the record queue_peek() returned */
	uint32_t l = atomic_load_explicit(&h->len, memory_order_relaxed);
	if (l == 0 || (l & (REC_BUSY | REC_DISCARD)))
		return;
	advance(q, cons, rec_total(l & REC_LEN_MASK));
}

void queue_close(struct queue *q)
{
	if (!q)
		return;
	atomic_store_explicit(&q->closed, 1, memory_order_seq_cst);
	atomic_fetch_add_explicit(&q->space_seq, 1, memory_order_seq_cst);
	futex_wake(&q->space_seq, INT_MAX);
	atomic_store_explicit(&q->cons_wait, 0, memory_order_seq_cst);
	futex_wake(&q->cons_wait, 1);
}

void queue_kick(struct queue *q)
{
	if (!q)
		return;
	atomic_store_explicit(&q->kicked, 1, memory_order_seq_cst);
	wake_consumer(q);
}

void queue_stats(const struct queue *q, unsigned src, struct queue_src_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!q || src >= QUEUE_MAX_SOURCES)
		return;
	const struct src_slot *s = &q->src[src];
	out->reserved = atomic_load_explicit(&s->reserved, memory_order_relaxed);
	out->committed = atomic_load_explicit(&s->committed, memory_order_relaxed);
	out->discarded = atomic_load_explicit(&s->discarded, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
	out->dropped_full = atomic_load_explicit(&s->dropped_full, memory_order_relaxed);
	out->dropped_timeout = atomic_load_explicit(&s->dropped_timeout, memory_order_relaxed);
	out->dropped_oversize = atomic_load_explicit(&s->dropped_oversize, memory_order_relaxed);
	out->dropped_closed = atomic_load_explicit(&s->dropped_closed, memory_order_relaxed);
	out->dropped =
	    out->dropped_full + out->dropped_timeout + out->dropped_oversize + out->dropped_closed;
}

size_t queue_capacity(const struct queue *q)
{
	return q ? q->size : 0;
}

size_t queue_used(const struct queue *q)
{
	if (!q)
		return 0;
	uint64_t prod = atomic_load_explicit(&q->prod_pos, memory_order_relaxed);
	uint64_t cons = atomic_load_explicit(&q->cons_pos, memory_order_relaxed);
	return prod >= cons ? (size_t)(prod - cons) : 0;
}

uint64_t queue_wakeups(const struct queue *q)
{
	return q ? atomic_load_explicit(&q->wakeups, memory_order_relaxed) : 0;
}
