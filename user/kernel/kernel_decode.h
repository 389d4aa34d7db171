/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding of kernel event records (the structs of bpf/events.h) for the
 * sinks. They check the record's length and type before they read a field,
 * so a short, truncated or hostile record gives -EINVAL and never a read past
 * len. Their only state is kevent_json's per-thread cache of the header's
 * task part (KEVENT_TASK_SLOTS). */
#ifndef TAPIO_KERNEL_DECODE_H
#define TAPIO_KERNEL_DECODE_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;

/* Appends the JSON object for a kernel event's data: the common fields (pid,
 * tgid, ppid, uid, gid, comm, cgroup_id, pidns, mntns, cpu, boot_ns), then the
 * type's own (see bpf/README.md "Fields"). Returns 0, or -EINVAL for a short
 * or unknown record; then nothing is appended and the caller shows base64. */
int kevent_json(const void *data, size_t len, struct strbuf *out);

/* kevent_json keeps the task part of the header ("pid" to "mntns") it wrote
 * last for this many thread ids (by thread id modulo the count), per calling
 * thread, and copies it for a record whose task fields are all the same. */
#define KEVENT_TASK_SLOTS 16

/* Appends the type-specific text columns for `tapio trace -o text` (what
 * follows TIME TYPE PID COMM), no newline. Odd bytes are shown as \xNN.
 * Returns 0 or -EINVAL (nothing appended). */
int kevent_text(const void *data, size_t len, struct strbuf *out);

/* The event's pid (tgid) and comm (NUL-terminated) for the common columns.
 * Returns 0 or -EINVAL. */
int kevent_pid_comm(const void *data, size_t len, uint32_t *pid, char comm[16]);

/* The bytes of a record of size len that matter: the fixed part plus the used
 * part of a variable tail (exec args, cgroup path). Returns 0 for a record
 * that is too short or of an unknown type. The kernel collector copies only
 * this much into the queue. */
size_t kevent_used_len(const void *data, size_t len);

/* Minimum record size for a kernel event type (1..12), 0 for others. */
size_t kevent_min_len(unsigned type);

/* The kernel source: its name, type names and the decoders above. */
extern const struct source_desc kernel_source;

#endif
