/* SPDX-License-Identifier: Apache-2.0 */
/* Layer 3: submitting. reserve_event() takes a ring buffer record for a type
 * and counts a drop for that type when the buffer is full; submit_event()
 * hands the filled record to userspace. */
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

/* Returns a record of size bytes whose first zero bytes are zeroed, or NULL
 * (drop counted). Both sizes must be constants. */
#define reserve_event_z(type, size, zero)                                                          \
	({                                                                                         \
		void *__e = bpf_ringbuf_reserve(&events, (size), 0);                               \
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
 * caught up). Set by userspace before load (kernel_ringbuf_wakeup()). */
const volatile __u64 cfg_wakeup_bytes __weak = 0;

static __always_inline void submit_event(void *e)
{
	__u64 flags = 0;

	if (cfg_wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes
			    ? BPF_RB_FORCE_WAKEUP
			    : BPF_RB_NO_WAKEUP;
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
