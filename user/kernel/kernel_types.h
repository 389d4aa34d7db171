/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel source's event types. They have the values of the EVENT_*
 * constants in bpf/events.h (a _Static_assert in the kernel collector keeps
 * them equal). */
#ifndef TAPIO_KERNEL_TYPES_H
#define TAPIO_KERNEL_TYPES_H

enum kernel_type {
	TYPE_PROCESS_EXEC = 1,
	TYPE_PROCESS_FORK,
	TYPE_PROCESS_EXIT,
	TYPE_TCP_CONNECT,
	TYPE_TCP_ACCEPT,
	TYPE_TCP_CLOSE,
	TYPE_TCP_RETRANSMIT,
	TYPE_TCP_RESET,
	TYPE_CGROUP_MKDIR,
	TYPE_CGROUP_RMDIR,
	TYPE_CGROUP_ATTACH,
	TYPE_OOM_KILL, /* 12 */
	TYPE_TCP_LISTEN,
	TYPE_KERNEL__LAST = TYPE_TCP_LISTEN,
	/* Userspace only: the window an unclean stop could not see. */
	TYPE_KERNEL_GAP,
	KERNEL_NTYPES, /* entries of kernel_type_names, [0] included */
};

/* "process.exec", ... indexed by type; [0] is NULL. */
extern const char *const kernel_type_names[KERNEL_NTYPES];

#endif
