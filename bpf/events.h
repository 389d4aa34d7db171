/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel/user ABI: the records the BPF programs put in the ring buffer.
 * Only constants and plain structs with fixed-width fields live here, so that
 * both the BPF side (with vmlinux.h) and userspace (with <linux/types.h>) can
 * include it. Each struct's size is pinned with _Static_assert: a change here
 * is a change of the ABI, and both sides must be rebuilt together.
 *
 * Every record starts with struct event_header. Records with a variable tail
 * (exec args, cgroup path) are reserved at full size in the ring buffer; the
 * *_len fields say how much of the tail is used, and userspace copies only
 * that much into the queue.
 */
#ifndef TAPIO_BPF_EVENTS_H
#define TAPIO_BPF_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define TAPIO_COMM_LEN 16
#define TAPIO_FILENAME_MAX 256 /* exec filename bytes, NUL included */
#define TAPIO_ARGS_MAX 1024    /* exec argv bytes (NUL-separated); more is truncated */
#define TAPIO_EXE_MAX 256      /* exec exe path bytes, NUL included; longer is cut */
#define TAPIO_CGROUP_PATH_MAX 512
#define TAPIO_MEMCG_PATH_MAX 256 /* oom.kill memcg paths, NUL included; longer is cut */

/* Event types. Equal to enum kernel_type in user/kernel/kernel_types.h. */
enum event_type {
	EVENT_PROCESS_EXEC = 1,
	EVENT_PROCESS_FORK = 2,
	EVENT_PROCESS_EXIT = 3,
	EVENT_TCP_CONNECT = 4,
	EVENT_TCP_ACCEPT = 5,
	EVENT_TCP_CLOSE = 6,
	EVENT_TCP_RETRANSMIT = 7,
	EVENT_TCP_RESET = 8,
	EVENT_CGROUP_MKDIR = 9,
	EVENT_CGROUP_RMDIR = 10,
	EVENT_CGROUP_ATTACH = 11,
	EVENT_OOM_KILL = 12,
	EVENT_TCP_LISTEN = 13,
	EVENT_MAX = 14, /* size of per-type arrays (index 0 unused) */
};

/* Index of the per-CPU map_errors counters: map updates that failed (a
 * full map), per map; userspace reports them as kernel_map_errors. */
enum map_error {
	MAP_ERR_SOCKS = 0,
	MAP_ERR_LISTENERS = 1,
	MAP_ERR_CLOSED_SOCKS = 2,
	MAP_ERR__N = 3,
};

/* event_header.flags */
#define HDR_F_NO_TASK                                                                              \
	0x1u /* no task is known for the event (e.g. an RST sent                                   \
	      * for a packet to a closed port, or a socket that                                    \
	      * existed before tapio started): the task fields are 0 */
#define HDR_F_CGROUP_V1                                                                            \
	0x2u /* cgroup_id is from the v1 memory hierarchy: the task's cgroup2                      \
	      * cgroup is the root and its v1 memory cgroup is not (a v1 or                        \
	      * hybrid host, where containers live in the v1 hierarchies) */

/* The common part. The task it describes is the one the event is about:
 * the current task for process and cgroup events, the socket's owner (the
 * task that connected, or the one that listened, for accepted sockets) for
 * tcp events, and the victim for oom.kill. */
struct event_header {
	__u64 ts;	 /* CLOCK_BOOTTIME ns */
	__u64 cgroup_id; /* cgroup id (inode of the cgroup2 directory; see HDR_F_CGROUP_V1) */
	__u32 type;	 /* enum event_type */
	__u32 cpu;	 /* CPU the program ran on */
	__u32 pid;	 /* thread id */
	__u32 tgid;	 /* process id */
	__u32 ppid;	 /* parent's tgid */
	__u32 uid;
	__u32 gid;
	__u32 pidns; /* pid namespace inode */
	__u32 mntns; /* mount namespace inode */
	__u32 flags; /* HDR_F_* */
	char comm[TAPIO_COMM_LEN];
};

/* exec_event.flags */
#define EXEC_F_ARGS_UNREAD 0x1u	  /* argv could not be read from the new stack */
#define EXEC_F_EXE_KNOWN 0x2u	  /* exe was read from the executed file (bprm->file) */
#define EXEC_F_EXE_TRUNCATED 0x4u /* exe is cut: only its last components fit */
#define EXEC_F_MEMFD 0x8u	  /* the file is a memfd (memfd_create(), shmem or hugetlbfs) */

/* process.exec: the header is the task after the exec (new comm). */
struct exec_event {
	struct event_header hdr;
	__u32 filename_len;  /* bytes in filename, without the NUL */
	__u32 args_len;	     /* bytes of args used */
	__u32 argc;	     /* argv entries the program was given */
	__u8 args_truncated; /* argv was longer than TAPIO_ARGS_MAX */
	__u8 filename_truncated;
	__u16 pad;
	__u32 euid; /* effective ids after the exec (a setuid binary's owner) */
	__u32 egid;
	__u32 flags;   /* EXEC_F_* */
	__u32 exe_len; /* bytes in exe, without the NUL */
	/* The capability sets of the new credentials (bit n = capability n). */
	__u64 cap_inheritable;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_ambient;
	char filename[TAPIO_FILENAME_MAX]; /* as given to execve() ("/dev/fd/3" for fexecve) */
	/* What was run: the path of the executed file (bprm->file) as
	 * /proc/PID/exe shows it, relative to the task's root; a memfd is
	 * "/memfd:NAME (deleted)". */
	char exe[TAPIO_EXE_MAX];
	char args[TAPIO_ARGS_MAX]; /* argv strings, each NUL-terminated; the last
				    * one may be cut when args_truncated */
};

/* process.fork: the header is the parent (the current task). */
struct fork_event {
	struct event_header hdr;
	__u32 parent_pid;
	__u32 parent_tgid;
	__u32 child_pid;
	__u32 child_tgid;
};

/* process.exit: the end of a process (its last thread; every thread with
 * cfg_all_threads). The header is that exiting thread. */
struct exit_event {
	struct event_header hdr;
	__u64 duration_ns; /* since the process started (the leader's start_boottime) */
	__u32 status;	   /* raw exit status: code << 8 | signal | 0x80 core */
	__u32 pad;
};

/* tcp_event.flags */
#define TCP_F_RESET_RECEIVED 0x1u /* tcp.reset: 1 = received, 0 = sent */
#define TCP_F_OWNER_KNOWN 0x2u	  /* the header is the socket's owner */
#define TCP_F_START_SEEN                                                                           \
	0x4u /* tcp.close: duration_ns is known (the socket was seen from its start) */

/* tcp.connect, tcp.accept, tcp.close, tcp.retransmit, tcp.reset, tcp.listen.
 * saddr/sport are the local end, daddr/dport the remote end. IPv4 addresses
 * take the first 4 bytes of saddr/daddr; an IPv4 peer of a dual-stack socket
 * (::ffff:a.b.c.d on both ends) is reported as AF_INET. Ports in host byte
 * order. */
struct tcp_event {
	struct event_header hdr;
	__u64 duration_ns;    /* tcp.close: since the first state change seen */
	__u64 bytes_sent;     /* tcp.close: payload bytes the peer acknowledged */
	__u64 bytes_received; /* tcp.close: payload bytes received */
	__u16 family;	      /* AF_INET (2) or AF_INET6 (10) */
	__u16 sport;
	__u16 dport;
	__u8 oldstate; /* TCP state numbers (TCP_ESTABLISHED = 1 ...) */
	__u8 state;    /* new state (or the current one for retransmit/reset) */
	__u32 flags;   /* TCP_F_* */
	__u32 reason;  /* tcp.reset sent: enum sk_rst_reason where the kernel has it */
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 bytes_acked;	  /* tcp.close: tcp_sock.bytes_acked (SYN and FIN count one) */
	__u64 raw_bytes_received; /* tcp.close: tcp_sock.bytes_received (a FIN counts one) */
	__u64 handshake_ns;  /* tcp.connect: SYN_SENT -> ESTABLISHED; tcp.accept: SYN_RECV -> */
	__u32 srtt_us;	     /* tcp.close: smoothed RTT (tcp_sock.srtt_us >> 3) */
	__u32 total_retrans; /* tcp.close: tcp_sock.total_retrans */
	__s32 error;	     /* tcp.close: sk_err (ECONNREFUSED, ETIMEDOUT ...), 0 if none */
	__u32 pad2;
};

/* cgroup_event.flags */
#define CG_F_PATH_TRUNCATED 0x1u /* the path did not fit TAPIO_CGROUP_PATH_MAX and is cut */

/* cgroup.mkdir, cgroup.rmdir, cgroup.attach: the header is the current task
 * (the one that made, removed, or wrote cgroup.procs). */
struct cgroup_event {
	struct event_header hdr;
	__u64 id;	    /* the cgroup's id (its kernfs inode) */
	__u32 level;	    /* depth below the hierarchy root */
	__u32 hierarchy_id; /* 0 = cgroup2 */
	__u32 task_pid;	    /* cgroup.attach: the moved task */
	__u32 task_tgid;
	char task_comm[TAPIO_COMM_LEN];
	__u16 threadgroup;		  /* cgroup.attach: the whole process moved */
	__u16 flags;			  /* CG_F_* */
	__u32 path_len;			  /* bytes in path, without the NUL */
	char path[TAPIO_CGROUP_PATH_MAX]; /* relative to the hierarchy root */
};

/* oom_event.flags */
#define OOM_F_VICTIM_TASK 0x1u /* the victim's task was read: header, rss, oom_score_adj valid */
#define OOM_F_MEMCG 0x2u       /* a cgroup OOM: limit_memcg_* is the memcg at its limit */
#define OOM_F_MEMSW 0x4u       /* v1: the limit hit is memory+swap (memory.memsw.limit_in_bytes) */
#define OOM_F_MEMCG_PATH_TRUNCATED 0x8u	 /* memcg_path was cut at TAPIO_MEMCG_PATH_MAX */
#define OOM_F_LIMIT_PATH_TRUNCATED 0x10u /* limit_memcg_path was cut */
#define OOM_F_MEMCG_KNOWN 0x20u		 /* the victim's memcg was read (memcg_*) */
#define OOM_F_OOM_CONTROL 0x40u /* limit_* and constraint are the OOM killer's oom_control's */

/* oom_event.constraint (the kernel's enum oom_constraint), with OOM_F_OOM_CONTROL */
#define OOM_CONSTRAINT_NONE 0	   /* global */
#define OOM_CONSTRAINT_CPUSET 1	   /* the allowed nodes of the task's cpuset */
#define OOM_CONSTRAINT_MEMPOLICY 2 /* an mbind()/set_mempolicy() node mask */
#define OOM_CONSTRAINT_MEMCG 3	   /* a memory cgroup's limit */

/* oom.kill: the header is the victim (its own cgroup id, pid, comm ...); the
 * trigger_* fields are the task whose allocation ran into the limit. */
struct oom_event {
	struct event_header hdr;
	__u64 total_vm;	 /* kB, as the kernel's mark_victim tracepoint */
	__u64 anon_rss;	 /* kB */
	__u64 file_rss;	 /* kB */
	__u64 shmem_rss; /* kB */
	__u64 trigger_cgroup_id;
	__u32 victim_pid;
	__u32 trigger_pid;
	__u32 trigger_tgid;
	__s32 oom_score_adj;
	__u32 flags;	  /* OOM_F_* */
	__u32 constraint; /* OOM_CONSTRAINT_*, with OOM_F_OOM_CONTROL */
	char trigger_comm[TAPIO_COMM_LEN];
	/* The victim's memory cgroup (cgroup2, or the v1 memory hierarchy on
	 * v1/hybrid hosts: memcg_hierarchy_id says which) ... */
	__u64 memcg_id;
	/* ... and the memcg whose limit was hit: oc->memcg with
	 * OOM_F_OOM_CONTROL, else the first one from the victim's up whose
	 * usage is within 72 pages of its max (memcg.bpf.h). None (a global
	 * OOM): limit_* are 0 and OOM_F_MEMCG is clear. */
	__u64 limit_memcg_id;
	__u64 limit_bytes; /* memory.max / memory.limit_in_bytes (or memsw) */
	__u64 usage_bytes; /* that counter's usage at the kill */
	__u32 memcg_hierarchy_id;
	__u32 memcg_level;
	__u32 limit_memcg_level;
	__u32 pad2;
	char memcg_path[TAPIO_MEMCG_PATH_MAX];	     /* relative to the hierarchy root */
	char limit_memcg_path[TAPIO_MEMCG_PATH_MAX]; /* "" for a global OOM */
};

#define TAPIO_EVENT_MAX_SIZE sizeof(struct exec_event)

_Static_assert(sizeof(struct event_header) == 72, "event_header layout");
_Static_assert(sizeof(struct exec_event) ==
		   72 + 64 + TAPIO_FILENAME_MAX + TAPIO_EXE_MAX + TAPIO_ARGS_MAX,
	       "exec_event layout");
_Static_assert(sizeof(struct fork_event) == 88, "fork_event layout");
_Static_assert(sizeof(struct exit_event) == 88, "exit_event layout");
_Static_assert(sizeof(struct tcp_event) == 184, "tcp_event layout");
_Static_assert(sizeof(struct cgroup_event) == 72 + 48 + TAPIO_CGROUP_PATH_MAX,
	       "cgroup_event layout");
_Static_assert(sizeof(struct oom_event) == 152 + 48 + 2 * TAPIO_MEMCG_PATH_MAX, "oom_event layout");

#endif
