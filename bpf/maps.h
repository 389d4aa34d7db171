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
/* The hierarchy id of the v1 memory hierarchy (0: none, a pure cgroup2
 * host). Set: a task whose cgroup2 cgroup is the root is described by its
 * v1 memory cgroup (HDR_F_CGROUP_V1). */
const volatile __u32 cfg_v1_hierarchy __weak = 0;
/* Only tasks in a container: see in_container() in filter.bpf.h. */
const volatile bool cfg_containers_only __weak = false;
/* process.fork and process.exit for every thread, not just processes. */
const volatile bool cfg_all_threads __weak = false;
/* log2 of the page size, to report oom.kill sizes in kB. */
const volatile __u32 cfg_page_shift __weak = 12;
/* Socket owners live in socket-local storage (sk_socks): the kernel lets
 * tracing programs use it (bpf_sk_storage_get from tp_btf and iterators,
 * 5.11+). Userspace sets it from the kernel's BTF; without it, the socks
 * and closed_socks hashes keyed by the socket's address. */
const volatile bool cfg_sk_storage __weak = false;
/* Records go to the current CPU's ring in cpu_rings rather than to the one
 * shared `events` ring (tapio agent --ringbuf-per-cpu). */
const volatile bool cfg_ring_per_cpu __weak = false;

/* ---- maps ---- */

/* The one ring buffer. Userspace sets its size (a power of two) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps") __weak;

/* The per-CPU rings (cfg_ring_per_cpu): slot i holds CPU i's ring buffer.
 * Userspace sizes the array to the possible CPUs before load, then creates
 * the rings (of any size: the kernel does not compare a ring's size with the
 * inner map's below) and fills the slots; `events` is then shrunk to a page
 * and not used. Ring buffers as inner maps: 5.9+. */
struct cpu_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cpu_ring);
} cpu_rings SEC(".maps") __weak;

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

/* Live sockets, in socket-local storage: an entry lives and dies with its
 * socket (no leak when a CLOSE is not seen: a skipped program run, see
 * kernel_recursion_misses), and it is still there for the RST that an
 * abortive close sends after the state change. Creating one fails only when
 * the socket's option memory is at net.core.optmem_max: counted in
 * map_errors as "socks". */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} sk_socks SEC(".maps") __weak;

/* With sk_socks: the owners of sockets older than tapio, from the start-up
 * iterator (which cannot reach socket-local storage), keyed by the struct
 * sock address. The first tracepoint that sees such a socket moves its
 * entry into sk_socks; an entry goes also when a new socket takes the
 * address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sock_info);
} seeds SEC(".maps") __weak;

/* The fallback where tracing programs cannot use socket-local storage:
 * keyed by the struct sock address, entries go at CLOSE. LRU, so that
 * entries of CLOSEs not seen are evicted rather than fill it (an LRU
 * evicts, it does not fail: evictions are not counted). Userspace shrinks
 * it to one entry when sk_socks is used. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps") __weak;

/* With the socks fallback: sockets that just reached CLOSE. An abortive
 * close (SO_LINGER 0, tcp_disconnect) sends its RST after the state change,
 * and that tcp.reset still needs the owner and the ends. Small and LRU: it
 * only bridges that moment. */
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

/* process.exec: where the executed file's path is put together
 * (path.bpf.h). Per CPU, one entry. */
#define TAPIO_PATH_WALK_MAX 32 /* dentries and mounts a path walk visits */

struct path_walk {
	__u64 dentries[TAPIO_PATH_WALK_MAX]; /* from the file up; 0 for a mount step */
	__u32 steps;			     /* entries used */
	__u32 off;			     /* where the path starts in buf */
	char buf[2 * TAPIO_EXE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_walk);
} path_walks SEC(".maps") __weak;

#endif
