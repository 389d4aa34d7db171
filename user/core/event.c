// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>

#include "core/event.h"
#include "core/queue.h"

static const struct source_desc *sources[SRC_MAX];

int source_register(unsigned id, const struct source_desc *d)
{
	if (id >= SRC_MAX || !d || !d->name)
		return -EINVAL;
	if (sources[id] && sources[id] != d)
		return -EEXIST;
	sources[id] = d;
	return 0;
}

const struct source_desc *source_get(unsigned source)
{
	return source < SRC_MAX ? sources[source] : NULL;
}

const char *source_name(unsigned source)
{
	return source < SRC_MAX && sources[source] ? sources[source]->name : "unknown";
}

int source_parse(const char *name)
{
	for (unsigned i = 0; i < SRC_MAX; i++)
		if (sources[i] && !strcmp(name, sources[i]->name))
			return (int)i;
	return -EINVAL;
}

const char *type_name(unsigned source, unsigned type)
{
	const struct source_desc *d = source < SRC_MAX ? sources[source] : NULL;
	if (!d || !type || type >= d->ntypes || !d->types[type])
		return "unknown";
	return d->types[type];
}

int type_parse(const char *name, unsigned *source, unsigned *type)
{
	for (unsigned s = 0; s < SRC_MAX; s++) {
		const struct source_desc *d = sources[s];
		for (unsigned t = 1; d && t < d->ntypes; t++) {
			if (d->types[t] && !strcmp(name, d->types[t])) {
				*source = s;
				*type = t;
				return 0;
			}
		}
	}
	return -EINVAL;
}

size_t event_meta_size(const struct meta_kv *kv, size_t nkv)
{
	size_t n = 0;
	for (size_t i = 0; i < nkv; i++)
		if (kv[i].key && kv[i].val)
			n += strlen(kv[i].key) + strlen(kv[i].val) + 2;
	return n;
}

size_t event_meta_put(char *dst, const struct meta_kv *kv, size_t nkv)
{
	char *m = dst;

	for (size_t i = 0; i < nkv; i++) {
		if (!kv[i].key || !kv[i].val)
			continue;
		/* each string with its NUL, in one pass over it */
		m = stpcpy(m, kv[i].key) + 1;
		m = stpcpy(m, kv[i].val) + 1;
	}
	return (size_t)(m - dst);
}

/* Reserves the record and writes the event header; the meta is the
 * caller's to write. */
static struct tapio_event *reserve_head(struct queue *q, unsigned src, unsigned type,
					enum tapio_fmt fmt, uint64_t ts, size_t meta_len,
					size_t data_len)
{
	if (meta_len > UINT32_MAX || data_len > UINT32_MAX) {
		errno = E2BIG;
		return NULL;
	}
	struct tapio_event *ev = queue_reserve(q, src, sizeof(*ev) + meta_len + data_len);
	if (!ev)
		return NULL;
	ev->ts = ts;
	ev->source = (uint16_t)src;
	ev->type = (uint16_t)type;
	ev->fmt = (uint8_t)fmt;
	ev->flags = 0;
	ev->reserved = 0;
	ev->meta_len = (uint32_t)meta_len;
	ev->data_len = (uint32_t)data_len;
	ev->ack = 0;
	return ev;
}

struct tapio_event *event_reserve(struct queue *q, unsigned src, unsigned type, enum tapio_fmt fmt,
				  uint64_t ts, const struct meta_kv *kv, size_t nkv,
				  size_t data_len)
{
	struct tapio_event *ev =
	    reserve_head(q, src, type, fmt, ts, event_meta_size(kv, nkv), data_len);

	if (ev)
		event_meta_put(event_meta(ev), kv, nkv);
	return ev;
}

struct tapio_event *event_reserve_block(struct queue *q, unsigned src, unsigned type,
					enum tapio_fmt fmt, uint64_t ts, const char *meta,
					size_t meta_len, size_t data_len)
{
	struct tapio_event *ev = reserve_head(q, src, type, fmt, ts, meta_len, data_len);

	if (ev)
		memcpy(event_meta(ev), meta, meta_len);
	return ev;
}

void event_commit(struct queue *q, struct tapio_event *ev)
{
	queue_commit(q, ev);
}

void event_discard(struct queue *q, struct tapio_event *ev)
{
	queue_discard(q, ev);
}

int event_emit(struct queue *q, unsigned src, unsigned type, enum tapio_fmt fmt, uint64_t ts,
	       const struct meta_kv *kv, size_t nkv, const void *data, size_t len)
{
	return event_emit_ack(q, src, type, fmt, ts, kv, nkv, data, len, 0);
}

int event_emit_ack(struct queue *q, unsigned src, unsigned type, enum tapio_fmt fmt, uint64_t ts,
		   const struct meta_kv *kv, size_t nkv, const void *data, size_t len, uint32_t ack)
{
	struct tapio_event *ev = event_reserve(q, src, type, fmt, ts, kv, nkv, len);
	if (!ev)
		return -errno;
	ev->ack = ack;
	if (len)
		memcpy(event_data(ev), data, len);
	event_commit(q, ev);
	return 0;
}

int event_meta_next(const struct tapio_event *ev, size_t *pos, const char **key, const char **val)
{
	const char *m = event_meta(ev);
	size_t n = ev->meta_len;
	if (*pos >= n)
		return 0;
	const char *k = m + *pos;
	const char *kend = memchr(k, '\0', n - *pos);
	if (!kend)
		return 0;
	const char *v = kend + 1;
	if ((size_t)(v - m) >= n)
		return 0;
	const char *vend = memchr(v, '\0', n - (size_t)(v - m));
	if (!vend)
		return 0;
	*key = k;
	*val = v;
	*pos = (size_t)(vend + 1 - m);
	return 1;
}

const char *event_meta_get(const struct tapio_event *ev, const char *key)
{
	size_t pos = 0;
	const char *k, *v;
	while (event_meta_next(ev, &pos, &k, &v))
		if (!strcmp(k, key))
			return v;
	return NULL;
}
