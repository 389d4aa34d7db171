/* SPDX-License-Identifier: Apache-2.0 */
/* Layer 3: submitting. reserve_event() takes a ring buffer record for a type
 * and counts a drop for that type when the buffer is full; submit_event()
 * hands the filled record to userspace. The ring is the shared `events` one,
 * or the current CPU's (cur_ring()). */
#ifndef TAPIO_BPF_SUBMIT_H
#define TAPIO_BPF_SUBMIT_H

#include "maps.h"

static __always_inline void count_drop(__u32 type)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &type);

	if (n)
		/* Per-CPU, but a program in softirq (tcp state changes) can
		 * interrupt one in process context on the same CPU between a
		 * plain load and store: add atomically. */
		__sync_fetch_and_add(n, 1);
}

/* The ring records go to: the shared one, or this CPU's (cfg_ring_per_cpu).
 * A program runs with migration disabled, so the reserve and the submit of
 * one record find the same ring. NULL only when a CPU's slot is empty. */
static __always_inline void *cur_ring(void)
{
	__u32 cpu;

	if (!cfg_ring_per_cpu)
		return &events;
	cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&cpu_rings, &cpu);
}

/* Returns a record of size bytes whose first zero bytes are zeroed, or NULL
 * (drop counted). Both sizes must be constants. */
#define reserve_event_z(type, size, zero)                                                          \
	({                                                                                         \
		void *__r = cur_ring();                                                            \
		void *__e = __r ? bpf_ringbuf_reserve(__r, (size), 0) : NULL;                      \
		if (!__e)                                                                          \
			count_drop(type);                                                          \
		else                                                                               \
			__builtin_memset(__e, 0, (zero));                                          \
		__e;                                                                               \
	})

/* Returns a zeroed record of size bytes, or NULL (drop counted). */
#define reserve_event(type, size) reserve_event_z((type), (size), (size))

/* Wake-ups are batched: a record is submitted without waking the reader
 * until the ring holds at least this many bytes, which forces one. The
 * reader also polls with a timeout and consumes on it, so a lone record
 * waits at most that long. 0: the kernel's default (wake a reader that has
 * caught up). Set by userspace before load (kernel_ringbuf_wakeup()), from
 * the size of one ring: with per-CPU rings each is judged on its own. */
const volatile __u64 cfg_wakeup_bytes __weak = 0;

/* Set by the reader when a whole poll period brought nothing and it is about
 * to sleep for longer (KERNEL_IDLE_POLL_MS): the first record after that
 * wakes it at once and clears the flag. A quiet node's reader then sleeps
 * instead of waking every poll period, and a lone record after a quiet spell
 * arrives at once; in a stream the reader's timed poll takes the records
 * below the fill threshold. */
volatile __u32 reader_asleep __weak = 0;

static __always_inline void submit_event(void *e)
{
	__u64 flags = 0;
	void *r = cfg_wakeup_bytes ? cur_ring() : NULL;

	if (r) {
		if (reader_asleep) {
			reader_asleep = 0;
			flags = BPF_RB_FORCE_WAKEUP;
		} else {
			flags = bpf_ringbuf_query(r, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes
				    ? BPF_RB_FORCE_WAKEUP
				    : BPF_RB_NO_WAKEUP;
		}
	}
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void discard_event(void *e)
{
	bpf_ringbuf_discard(e, cfg_wakeup_bytes ? BPF_RB_NO_WAKEUP : 0);
}

#ifdef TAPIO_BPF_DEBUG
#define dbg(fmt, ...) bpf_printk(fmt, ##__VA_ARGS__)
#else
#define dbg(fmt, ...) ((void)0)
#endif

#endif
