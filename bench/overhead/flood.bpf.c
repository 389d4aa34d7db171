// SPDX-License-Identifier: Apache-2.0
/* A benchmark-only program: floods the kernel collector's ring buffer with
 * tcp.connect records through the same submit path as the real programs
 * (submit.bpf.h), so that the consumer's ceiling (ring buffer -> queue ->
 * JSON Lines) is measured apart from any workload. Run with
 * bpf_prog_test_run; userspace points `events` at a running agent's ring
 * (bpf_map__reuse_fd). Never part of the agent. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "submit.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct flood_args {
	__u32 n;       /* records to submit */
	__u32 written; /* out: records submitted */
	__u32 refused; /* out: records the full ring refused */
	__u32 pad;
};

static long one(__u32 i, void *ctx)
{
	struct flood_args *a = ctx;
	struct tcp_event *e = reserve_event(EVENT_TCP_CONNECT, sizeof(*e));

	if (!e) {
		a->refused++;
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();

	e->hdr.ts = bpf_ktime_get_boot_ns();
	e->hdr.cgroup_id = bpf_get_current_cgroup_id();
	e->hdr.type = EVENT_TCP_CONNECT;
	e->hdr.cpu = bpf_get_smp_processor_id();
	e->hdr.pid = (__u32)id;
	e->hdr.tgid = id >> 32;
	bpf_get_current_comm(e->hdr.comm, sizeof(e->hdr.comm));
	e->family = 2; /* AF_INET */
	e->sport = 40000 + (i & 0x3fff);
	e->dport = 8080;
	e->oldstate = 7; /* CLOSE */
	e->state = 2;	 /* SYN_SENT */
	e->flags = TCP_F_OWNER_KNOWN;
	e->saddr[0] = 127;
	e->saddr[3] = 1;
	e->daddr[0] = 127;
	e->daddr[3] = 1;
	submit_event(e);
	a->written++;
	return 0;
}

SEC("syscall")
int flood(struct flood_args *a)
{
	struct flood_args l = {.n = a->n};

	bpf_loop(l.n, one, &l, 0);
	a->written = l.written;
	a->refused = l.refused;
	return 0;
}
