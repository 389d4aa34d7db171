/* SPDX-License-Identifier: Apache-2.0 */
/* The `kernel` collector: loads the CO-RE BPF programs (the skeleton built
 * from bpf/, embedded in the binary), attaches them to their tracepoints and
 * moves each ring buffer record into the event queue with source SRC_KERNEL,
 * fmt FMT_STRUCT and the record (a struct from bpf/events.h) as data.
 *
 * A program that cannot load on the running kernel is turned off and named
 * by kernel_collector_disabled(); the others run. */
#ifndef TAPIO_KERNEL_H
#define TAPIO_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "kernel/kernel_types.h"

struct collector;
struct collector_env;
struct collector_hooks;
struct opt_group;

#define KERNEL_DEFAULT_RINGBUF (8u << 20)

struct kernel_opts {
	uint64_t type_mask;	 /* bit (1ull << TYPE_x) per kernel type wanted; 0 = all */
	int32_t pid;		 /* tgid filter, 0 = none (in the kernel) */
	const char *cgroup_path; /* cgroup2 subtree filter, NULL = none (in the kernel) */
	bool containers_only;	 /* in the kernel: only tasks in a pid namespace or a
				  * cgroup namespace other than the initial one */
	bool all_threads;      /* process.fork/process.exit for every thread, not just processes */
	uint32_t ringbuf_size; /* bytes, power of two >= page size; 0 = KERNEL_DEFAULT_RINGBUF */
	/* A ring per possible CPU, ringbuf_size split among them (each a power
	 * of two, at least a page); one shared ring when the kernel lacks
	 * ring buffers as inner maps (logged). */
	bool ring_per_cpu;
	unsigned source; /* the source id of its events */
	/* Optional: cgroup_meta is called from the collector thread for each
	 * event (the victim's cgroup for oom.kill), cgroup_removed on
	 * cgroup.rmdir (cgroup2). */
	const struct collector_hooks *hooks;
};

/* The kernel collector's options in the agent (--events, --ringbuf-size,
 * --ringbuf-per-cpu, --containers, --all-threads). */
struct kernel_options {
	char *events; /* event type names/prefixes, "" = all */
	uint64_t ringbuf_size;
	bool ringbuf_per_cpu;
	bool containers_only;
	bool all_threads; /* process.exit for every thread */
};
extern const struct opt_group kernel_options_group;

/* The table's constructor: kernel_collector_new() with the agent's options. */
struct collector *kernel_collector_create(const struct collector_env *env, char *err,
					  size_t errlen);
/* The table's source check: kernel_collector_available(). */
bool kernel_collector_present(const struct collector_env *env);

/* Opens, configures, loads and attaches the programs. Returns the collector
 * (owned by the caller: collector_destroy()), or NULL with errno and a
 * one-line reason in err: EPERM (unprivileged), ENOTSUP (no BTF), EINVAL (bad
 * option: cgroup path, ring buffer size), ENOENT (nothing loads). */
struct collector *kernel_collector_new(const struct kernel_opts *o, char *err, size_t errlen);

/* Names of the programs turned off because they could not load or attach,
 * comma-separated ("" = none). The string belongs to the collector. */
const char *kernel_collector_disabled(struct collector *c);

/* The kernel types (bits 1ull << TYPE_x) that a running program produces:
 * the wanted ones minus those whose programs were turned off. */
uint64_t kernel_collector_types(struct collector *c);

/* Microseconds from open to attached, measured by kernel_collector_new(). */
uint64_t kernel_collector_startup_us(struct collector *c);

/* Parses an -e list ("process,tcp.close,oom"): type names, or prefixes
 * before a dot ("tcp" = every tcp.* type), or "all". Returns 0 and sets *mask
 * (bits 1ull << TYPE_x), or -EINVAL with err naming the bad item. */
int kernel_parse_events(const char *list, uint64_t *mask, char *err, size_t errlen);

/* True when this kernel has BTF at /sys/kernel/btf/vmlinux. */
bool kernel_collector_available(void);

/* The kernel source cannot resume: when the agent starts after an unclean
 * stop, it calls this before starting the collectors, and the kernel
 * collector emits one kernel.gap event at start naming the window it could
 * not see (from_ns: the last time the stopped run was known to be running,
 * to_ns: this start; wall clock ns).
 *
 * The window is reported once the sink has that event: the agent keeps it
 * in dir/KERNEL_GAP_FILE (kernel_gap_format) from before the start, and the
 * collector removes that file when the sink acknowledges the event (settles
 * its token, core/ack.h). A start that finds the file carries the window
 * forward (see agent.c): after another unclean stop, one event from the
 * oldest unreported from_ns to this start; after a graceful stop, the same
 * event again (same id). dir NULL or "": nothing is kept. */
#define KERNEL_GAP_FILE "kernel.gap"
void kernel_note_gap(const char *dir, uint64_t from_ns, uint64_t to_ns);
/* The file's content: "tapio-gap 1\nfrom <ns>\nto <ns>\n". Returns the
 * length, or -ENOSPC when cap is too small. */
int kernel_gap_format(char *buf, size_t cap, uint64_t from_ns, uint64_t to_ns);
/* Parses the file's content (NUL-terminated). Returns 0, or -EBADMSG for
 * anything but that exact form with 0 < from_ns <= to_ns. */
int kernel_gap_parse(const char *buf, uint64_t *from_ns, uint64_t *to_ns);

/* ---- for `tapio probe` ---- */

/* One BPF program: its name in the skeleton, the tracepoint it attaches to
 * and the kernel event types it produces. */
struct kernel_prog_info {
	const char *prog;
	const char *tracepoint; /* or "iter/task_file" for the start-up seeding */
	uint64_t types;		/* what it produces: 1ull << TYPE_x */
	const char *btf_type;	/* the kernel BTF type that shows support */
	int btf_kind;		/* btf_type's BTF_KIND_* (struct, typedef or func) */
	bool optional;		/* adds to events where it loads; never "turned off" */
};

/* The program table (n entries). */
const struct kernel_prog_info *kernel_programs(size_t *n);

/* Loads every program (without attaching) to see which would load on this
 * kernel. Sets ok[i] per kernel_programs() entry and, for failures, a short
 * reason in why[i]. Returns 0 when the check ran (even
 * if some programs fail), or a negative errno with err set when it could
 * not run at all (no privilege, no BTF). */
int kernel_probe_programs(bool *ok, char (*why)[128], char *err, size_t errlen);

#endif
