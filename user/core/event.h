/* SPDX-License-Identifier: Apache-2.0 */
/* The raw event: one record in the queue, as DESIGN.md "The raw event" says.
 *
 * Layout inside a queue record (8-byte aligned, no pointers):
 *   struct tapio_event | meta ("key\0value\0" pairs, meta_len bytes) | data
 *
 * Producers build an event with event_reserve() + event_commit() (one copy of
 * the data, straight into the queue) or event_emit() when the data is already
 * in a buffer. Nothing here calls malloc.
 */
#ifndef TAPIO_EVENT_H
#define TAPIO_EVENT_H

#include <stddef.h>
#include <stdint.h>

struct queue;

enum tapio_source {
	SRC_KERNEL = 0,
	SRC_K8S,
	SRC_SYSTEMD,
	SRC_CNI,
	SRC_ETCD,
	SRC__MAX,
};

/* Event types. The kernel ones (1..12) have the same values as the EVENT_*
 * constants in bpf/events.h; a _Static_assert in the kernel collector keeps
 * them equal. */
enum tapio_type {
	TYPE_NONE = 0,
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
	TYPE_KERNEL__LAST = TYPE_OOM_KILL,
	TYPE_K8S_WATCH,
	TYPE_SYSTEMD_JOURNAL,
	TYPE_CNI_LOG,
	TYPE_CNI_NETNS,
	TYPE_CNI_RESULT,
	TYPE_CNI_IPAM,
	TYPE_ETCD_WATCH,
	TYPE_ETCD_COMPACTED,
	TYPE__MAX,
};

/* How the data bytes are shown by sinks. */
enum tapio_fmt {
	FMT_KERNEL = 0, /* a struct from bpf/events.h, decoded by kernel_decode */
	FMT_JSON,       /* JSON text, embedded as JSON */
	FMT_TEXT,       /* text, shown as a JSON string */
	FMT_BINARY,     /* bytes, shown as base64 */
};

struct tapio_event {
	uint64_t ts;       /* ns since the epoch */
	uint16_t source;   /* enum tapio_source */
	uint16_t type;     /* enum tapio_type */
	uint8_t fmt;       /* enum tapio_fmt */
	uint8_t flags;     /* reserved, 0 */
	uint16_t reserved; /* 0 */
	uint32_t meta_len; /* bytes of "key\0value\0" pairs */
	uint32_t data_len; /* bytes of data after the meta */
	uint32_t pad;      /* 0 */
};
_Static_assert(sizeof(struct tapio_event) == 32, "tapio_event layout");

struct meta_kv {
	const char *key;
	const char *val; /* NULL values are left out */
};

/* "kernel", "k8s", ... or "unknown". */
const char *source_name(unsigned source);
/* Parses a source name; returns the enum value or -EINVAL. */
int source_parse(const char *name);
/* "process.exec", "k8s.watch", ... or "unknown". */
const char *type_name(unsigned type);
/* Parses a type name; returns the enum value or -EINVAL. */
int type_parse(const char *name);
/* The source a type belongs to. */
enum tapio_source type_source(unsigned type);

/* Bytes that the meta pairs take ("key\0value\0" each, NULL values skipped). */
size_t event_meta_size(const struct meta_kv *kv, size_t nkv);

/* Reserves a queue record for one event with data_len bytes of data, writes
 * the header and the meta, and returns the event; the caller writes the data
 * at event_data() and then calls event_commit() or event_discard().
 * Returns NULL with errno set when the queue refused it (see queue_reserve:
 * the drop is already counted there). */
struct tapio_event *event_reserve(struct queue *q, enum tapio_source src, enum tapio_type type,
				  enum tapio_fmt fmt, uint64_t ts, const struct meta_kv *kv,
				  size_t nkv, size_t data_len);
void event_commit(struct queue *q, struct tapio_event *ev);
void event_discard(struct queue *q, struct tapio_event *ev);

/* event_reserve + copy + commit. Returns 0 or a negative errno. */
int event_emit(struct queue *q, enum tapio_source src, enum tapio_type type, enum tapio_fmt fmt,
	       uint64_t ts, const struct meta_kv *kv, size_t nkv, const void *data, size_t len);

static inline char *event_meta(const struct tapio_event *ev)
{
	return (char *)(ev + 1);
}

static inline void *event_data(const struct tapio_event *ev)
{
	return event_meta(ev) + ev->meta_len;
}

/* Iterates the meta pairs: start with *pos = 0; returns 1 and sets key/val,
 * or 0 at the end (also when the meta is malformed). */
int event_meta_next(const struct tapio_event *ev, size_t *pos, const char **key, const char **val);

/* The value of one meta key, or NULL. */
const char *event_meta_get(const struct tapio_event *ev, const char *key);

/* Wall clock, ns since the epoch. */
uint64_t now_ns(void);
/* CLOCK_MONOTONIC in ns. */
uint64_t mono_ns(void);

#endif
