/* SPDX-License-Identifier: Apache-2.0 */
/* Headroom for the events that matter most when a node is in trouble.
 *
 * On 6.10+ every RST to a closed port is an event, raised in softirq: a SYN
 * scan, or a client hammering a dead service, can fill the one ring buffer
 * with tcp.reset (and a lossy link with tcp.retransmit), and process and OOM
 * events would then be dropped. So those two kinds are shed once more than
 * half of the ring holds unread records (bpf_ringbuf_query(BPF_RB_AVAIL_DATA),
 * 5.8+): the other half stays for everything else. A shed record is counted
 * per type in `sheds`, apart from the ring-full drops in `drops`. With
 * per-CPU rings (cfg_ring_per_cpu) the test is on the current CPU's ring. */
#ifndef TAPIO_BPF_SHED_H
#define TAPIO_BPF_SHED_H

#include "maps.h"
#include "submit.bpf.h"

/* Shed when unread data is above size >> TAPIO_SHED_SHIFT (half). */
#define TAPIO_SHED_SHIFT 1

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sheds SEC(".maps") __weak;

static __always_inline bool sheddable(__u32 type)
{
	return type == EVENT_TCP_RESET || type == EVENT_TCP_RETRANSMIT;
}

/* True when a record of this type is to be shed now (and counts it). */
static __always_inline bool shed_event(__u32 type)
{
	__u64 avail, size;
	__u64 *n;
	void *r;

	if (!sheddable(type))
		return false;
	r = cur_ring();
	if (!r)
		return false;
	avail = bpf_ringbuf_query(r, BPF_RB_AVAIL_DATA);
	size = bpf_ringbuf_query(r, BPF_RB_RING_SIZE);
	if (avail <= size >> TAPIO_SHED_SHIFT)
		return false;
	n = bpf_map_lookup_elem(&sheds, &type);
	if (n)
		__sync_fetch_and_add(n, 1);
	return true;
}

#endif
