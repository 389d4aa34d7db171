/* SPDX-License-Identifier: Apache-2.0 */
/* Every map and every load-time option, defined once. Each .bpf.c includes
 * this header; the definitions are __weak so that `bpftool gen object` merges
 * them into one map (or one rodata variable) in the linked object. */
#ifndef TAPIO_BPF_MAPS_H
#define TAPIO_BPF_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "events.h"

/* ---- options, set by userspace in skel->rodata between open and load ---- */

/* Bit (1 << EVENT_x) per wanted type. */
const volatile __u64 cfg_event_mask __weak = ~0ull;
/* Only tasks of this tgid (0 = all). */
const volatile __u32 cfg_tgid __weak = 0;
/* Only tasks in this cgroup2 subtree (cgroup id, 0 = all). */
const volatile __u64 cfg_cgroup_id __weak = 0;
/* That cgroup's level (depth below the cgroup2 root), for the ancestor test. */
const volatile __u32 cfg_cgroup_level __weak = 0;
/* Only tasks in a container: see in_container() in filter.bpf.h. */
const volatile bool cfg_containers_only __weak = false;
/* process.fork and process.exit for every thread, not just processes. */
const volatile bool cfg_all_threads __weak = false;
/* log2 of the page size, to report oom.kill sizes in kB. */
const volatile __u32 cfg_page_shift __weak = 12;

/* ---- maps ---- */

/* The one ring buffer. Userspace sets its size (a power of two) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps") __weak;

/* Records the ring buffer refused, per event type (index = enum event_type). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps") __weak;

/* What tcp events need to know about a socket they did not see start:
 * its owner (the task that connected, or that listened for an accepted
 * socket) and when it was first seen. Keyed by the struct sock address. */
struct sock_info {
	__u64 start_ns;
	struct event_header owner;
	/* The ends, saved at ESTABLISHED: by the final CLOSE the kernel may
	 * already have released the local port (e.g. after TIME_WAIT took it). */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 saved;	    /* the ends below are set */
	__u8 start_unknown; /* seeded at start-up: the socket is older than tapio */
	__u8 saddr[16];
	__u8 daddr[16];
	/* tcp_sock.bytes_acked and bytes_received at ESTABLISHED (the SYN the
	 * connecting side counts), taken off the payload at CLOSE. */
	__u32 acked_base;
	__u32 received_base;
	__u8 fin_sent; /* went to FIN_WAIT1 or LAST_ACK: a FIN was queued */
	__u8 pad[7];
};

/* Live sockets. Not preallocated: a preallocated map this size takes about
 * 100 ms to create, most of tapio's start-up. Entries go at CLOSE. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps") __weak;

/* Sockets that just reached CLOSE: an abortive close (SO_LINGER 0,
 * tcp_disconnect) sends its RST after the state change, and that tcp.reset
 * still needs the owner and the ends. Small and LRU: it only bridges that
 * moment. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct sock_info);
} closed_socks SEC(".maps") __weak;

/* Listening sockets' owners, so that an accepted connection (created in
 * softirq, with no process context) is attributed to the listener. Keyed by
 * network namespace, local port, family and local address (an IPv4-mapped
 * address is keyed as IPv4; a wildcard listener has a zero address). The
 * value names the listening socket, so that only that socket's close removes
 * the entry; a listener that took the key from another (SO_REUSEPORT, or a
 * listen() that the kernel's port check then refuses: the socket enters
 * LISTEN before that check) keeps the one it displaced in listen_shadow, and
 * puts it back when it closes. With SO_REUSEPORT the last listener seen
 * names the accepts. Not LRU: live listeners are never evicted; a full map
 * is counted in map_errors. */
struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 family;
	__u8 addr[16];
};

struct listen_info {
	__u64 sk; /* struct sock * of the listener */
	struct event_header owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct listen_key);
	__type(value, struct listen_info);
} listeners SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct listen_info);
} listen_shadow SEC(".maps") __weak;

/* Map updates that failed (a full map), per map (enum map_error in events.h). */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAP_ERR__N);
	__type(key, __u32);
	__type(value, __u64);
} map_errors SEC(".maps") __weak;

/* Kernels before the mark_victim change (see oom.bpf.c) give only the
 * victim's pid; the SIGKILL that the OOM killer sends just before it names
 * the task. Keyed by the killer's thread id. */
struct oom_kill_info {
	__u64 task; /* struct task_struct * of the victim */
	__u32 pid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct oom_kill_info);
} oom_kills SEC(".maps") __weak;

#endif
