// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>
#include <time.h>

#include "core/event.h"
#include "core/queue.h"

static const char *const source_names[SRC__MAX] = {
	[SRC_KERNEL] = "kernel", [SRC_K8S] = "k8s",   [SRC_SYSTEMD] = "systemd",
	[SRC_CNI] = "cni",       [SRC_ETCD] = "etcd",
};

static const char *const type_names[TYPE__MAX] = {
	[TYPE_PROCESS_EXEC] = "process.exec",
	[TYPE_PROCESS_FORK] = "process.fork",
	[TYPE_PROCESS_EXIT] = "process.exit",
	[TYPE_TCP_CONNECT] = "tcp.connect",
	[TYPE_TCP_ACCEPT] = "tcp.accept",
	[TYPE_TCP_CLOSE] = "tcp.close",
	[TYPE_TCP_RETRANSMIT] = "tcp.retransmit",
	[TYPE_TCP_RESET] = "tcp.reset",
	[TYPE_CGROUP_MKDIR] = "cgroup.mkdir",
	[TYPE_CGROUP_RMDIR] = "cgroup.rmdir",
	[TYPE_CGROUP_ATTACH] = "cgroup.attach",
	[TYPE_OOM_KILL] = "oom.kill",
	[TYPE_K8S_WATCH] = "k8s.watch",
	[TYPE_SYSTEMD_JOURNAL] = "systemd.journal",
	[TYPE_CNI_LOG] = "cni.log",
	[TYPE_CNI_NETNS] = "cni.netns",
	[TYPE_CNI_RESULT] = "cni.result",
	[TYPE_CNI_IPAM] = "cni.ipam",
	[TYPE_ETCD_WATCH] = "etcd.watch",
	[TYPE_ETCD_COMPACTED] = "etcd.compacted",
};

const char *source_name(unsigned source)
{
	return source < SRC__MAX ? source_names[source] : "unknown";
}

int source_parse(const char *name)
{
	for (unsigned i = 0; i < SRC__MAX; i++)
		if (!strcmp(name, source_names[i]))
			return (int)i;
	return -EINVAL;
}

const char *type_name(unsigned type)
{
	return type < TYPE__MAX && type_names[type] ? type_names[type] : "unknown";
}

int type_parse(const char *name)
{
	for (unsigned i = 1; i < TYPE__MAX; i++)
		if (!strcmp(name, type_names[i]))
			return (int)i;
	return -EINVAL;
}

enum tapio_source type_source(unsigned type)
{
	if (type <= TYPE_KERNEL__LAST)
		return SRC_KERNEL;
	switch (type) {
	case TYPE_K8S_WATCH:
		return SRC_K8S;
	case TYPE_SYSTEMD_JOURNAL:
		return SRC_SYSTEMD;
	case TYPE_ETCD_WATCH:
	case TYPE_ETCD_COMPACTED:
		return SRC_ETCD;
	default:
		return SRC_CNI;
	}
}

size_t event_meta_size(const struct meta_kv *kv, size_t nkv)
{
	size_t n = 0;
	for (size_t i = 0; i < nkv; i++)
		if (kv[i].key && kv[i].val)
			n += strlen(kv[i].key) + strlen(kv[i].val) + 2;
	return n;
}

struct tapio_event *event_reserve(struct queue *q, enum tapio_source src, enum tapio_type type,
				  enum tapio_fmt fmt, uint64_t ts, const struct meta_kv *kv,
				  size_t nkv, size_t data_len)
{
	size_t meta_len = event_meta_size(kv, nkv);
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
	ev->pad = 0;
	char *m = event_meta(ev);
	for (size_t i = 0; i < nkv; i++) {
		if (!kv[i].key || !kv[i].val)
			continue;
		size_t kl = strlen(kv[i].key) + 1, vl = strlen(kv[i].val) + 1;
		memcpy(m, kv[i].key, kl);
		m += kl;
		memcpy(m, kv[i].val, vl);
		m += vl;
	}
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

int event_emit(struct queue *q, enum tapio_source src, enum tapio_type type, enum tapio_fmt fmt,
	       uint64_t ts, const struct meta_kv *kv, size_t nkv, const void *data, size_t len)
{
	struct tapio_event *ev = event_reserve(q, src, type, fmt, ts, kv, nkv, len);
	if (!ev)
		return -errno;
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

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
