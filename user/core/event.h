/* SPDX-License-Identifier: Apache-2.0 */
/* The raw event: one record in the queue, as docs/architecture.md "Data flow" describes.
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
struct strbuf;

/* Sources and their types are not listed here: each source (a collector) is
 * a row of the collector table (collectors/table.c), which registers its name
 * and type names at start with source_register(). A source id is small
 * (< SRC_MAX); a type id is that source's own (1..ntypes). */
#define SRC_MAX 8

struct source_desc {
	const char *name;	  /* "kernel", "k8s", ... */
	const char *const *types; /* types[t] = "process.exec"; types[0] unused */
	unsigned ntypes;	  /* entries in types, including [0] */
	/* For FMT_STRUCT data (optional): the source's own decoders. Each returns
	 * 0, or -EINVAL with nothing appended (the sink then shows base64). */
	int (*struct_json)(const void *data, size_t len, struct strbuf *out);
	int (*struct_text)(const void *data, size_t len, struct strbuf *out);
	int (*struct_pid_comm)(const void *data, size_t len, uint32_t *pid, char comm[16]);
};

/* Registers source id's name and type names (d must outlive every event).
 * Returns 0, -EINVAL (id >= SRC_MAX) or -EEXIST (id taken by another). */
int source_register(unsigned id, const struct source_desc *d);

/* How the data bytes are shown by sinks. */
enum tapio_fmt {
	FMT_STRUCT = 0, /* a binary struct its source decodes (source_codec) */
	FMT_JSON,	/* JSON text, embedded as JSON */
	FMT_TEXT,	/* text, shown as a JSON string */
	FMT_BINARY,	/* bytes, shown as base64 */
};

struct tapio_event {
	uint64_t ts;	   /* ns since the epoch */
	uint16_t source;   /* a registered source id */
	uint16_t type;	   /* that source's type id */
	uint8_t fmt;	   /* enum tapio_fmt */
	uint8_t flags;	   /* reserved, 0 */
	uint16_t reserved; /* 0 */
	uint32_t meta_len; /* bytes of "key\0value\0" pairs */
	uint32_t data_len; /* bytes of data after the meta */
	uint32_t ack;	   /* the source's position token (core/ack.h), 0 = none */
};
_Static_assert(sizeof(struct tapio_event) == 32, "tapio_event layout");

struct meta_kv {
	const char *key;
	const char *val; /* NULL values are left out */
};

/* The registered description of a source, or NULL. */
const struct source_desc *source_get(unsigned source);
/* A registered source's name, or "unknown". */
const char *source_name(unsigned source);
/* Parses a source name; returns its id or -EINVAL. */
int source_parse(const char *name);
/* "process.exec", "k8s.watch", ... or "unknown". */
const char *type_name(unsigned source, unsigned type);
/* Parses a type name ("k8s.watch"); returns 0 and sets *source and *type, or
 * -EINVAL. */
int type_parse(const char *name, unsigned *source, unsigned *type);

/* Bytes that the meta pairs take ("key\0value\0" each, NULL values skipped). */
size_t event_meta_size(const struct meta_kv *kv, size_t nkv);

/* Reserves a queue record for one event with data_len bytes of data, writes
 * the header and the meta, and returns the event; the caller writes the data
 * at event_data() and then calls event_commit() or event_discard().
 * Returns NULL with errno set when the queue refused it (see queue_reserve:
 * the drop is already counted there). */
struct tapio_event *event_reserve(struct queue *q, unsigned src, unsigned type, enum tapio_fmt fmt,
				  uint64_t ts, const struct meta_kv *kv, size_t nkv,
				  size_t data_len);
/* Writes the meta pairs as event_reserve() lays them out to dst, which has
 * room for event_meta_size() bytes; returns that size. */
size_t event_meta_put(char *dst, const struct meta_kv *kv, size_t nkv);

/* event_reserve() with the meta already laid out (meta_len bytes from
 * event_meta_put()), copied as it is: for a producer that keeps the meta of
 * the records it makes often. */
struct tapio_event *event_reserve_block(struct queue *q, unsigned src, unsigned type,
					enum tapio_fmt fmt, uint64_t ts, const char *meta,
					size_t meta_len, size_t data_len);
void event_commit(struct queue *q, struct tapio_event *ev);
void event_discard(struct queue *q, struct tapio_event *ev);

/* event_reserve + copy + commit. Returns 0 or a negative errno. */
int event_emit(struct queue *q, unsigned src, unsigned type, enum tapio_fmt fmt, uint64_t ts,
	       const struct meta_kv *kv, size_t nkv, const void *data, size_t len);

/* event_emit for an event whose acknowledgement its source waits for: ack is
 * the position token from ack_track() (core/ack.h), carried in ev->ack. */
int event_emit_ack(struct queue *q, unsigned src, unsigned type, enum tapio_fmt fmt, uint64_t ts,
		   const struct meta_kv *kv, size_t nkv, const void *data, size_t len,
		   uint32_t ack);

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

#endif
