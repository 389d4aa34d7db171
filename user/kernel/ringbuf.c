/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel collector's ring buffer thread: polls the BPF ring buffer and
 * copies each record once into the queue, with the cgroup's meta from the
 * enrichment hook. */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernel/internal.h"
#include "kernel/kernel_decode.h"

/* Decimal text of v in buf (at least 21 bytes), NUL-terminated. */
static void u64_dec(char *buf, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct kcollector *kc = ctx;
	const struct event_header *h = data;
	struct tapio_event *ev;
	size_t used, nkv = 0;
	uint64_t cgid;
	unsigned type;
	bool v1;

	used = kevent_used_len(data, size);
	if (!used) {
		atomic_fetch_add_explicit(&kc->base.n.parse_errors, 1, memory_order_relaxed);
		return 0;
	}
	type = h->type;
	cgid = h->cgroup_id;
	v1 = h->flags & HDR_F_CGROUP_V1;
	/* A cgroup2 event is described by the cgroup it concerns, not its writer. */
	if (type >= EVENT_CGROUP_MKDIR && type <= EVENT_CGROUP_ATTACH &&
	    ((const struct cgroup_event *)data)->hierarchy_id == 0) {
		cgid = ((const struct cgroup_event *)data)->id;
		v1 = false;
	}
	u64_dec(kc->idbuf, cgid);
	kc->kv[nkv++] = (struct meta_kv){"cgroup_id", kc->idbuf};
	/* An id from the v1 memory hierarchy (a v1/hybrid host) is looked up
	 * there, apart from cgroup2 ids. */
	if (v1) {
		kc->kv[nkv++] = (struct meta_kv){"cgroup_hierarchy", "v1:memory"};
		cgid |= CGROUP_KEY_V1;
	}
	const struct collector_hooks *hk = kc->o.hooks;
	if (hk && hk->cgroup_meta && cgid)
		nkv += hk->cgroup_meta(hk->ctx, cgid, kc->kv + nkv, META_MAX - nkv, kc->scratch,
				       sizeof(kc->scratch));
	ev = event_reserve(kc->q, kc->o.source, type, FMT_STRUCT,
			   (uint64_t)((int64_t)h->ts + kc->boot_to_epoch), kc->kv, nkv, used);
	if (!ev) {
		atomic_fetch_add_explicit(&kc->qdrops[type], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&kc->base.n.dropped, 1, memory_order_relaxed);
	} else {
		memcpy(event_data(ev), data, used);
		event_commit(kc->q, ev);
		atomic_fetch_add_explicit(&kc->events[type], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&kc->base.n.events, 1, memory_order_relaxed);
	}
	if (type == EVENT_CGROUP_RMDIR && hk && hk->cgroup_removed) {
		const struct cgroup_event *ce = data;

		if (ce->hierarchy_id == 0)
			hk->cgroup_removed(hk->ctx, ce->id);
	}
	return 0;
}

void *kernel_poll_thread(void *arg)
{
	struct kcollector *kc = arg;

	while (!collector_stopping(&kc->base)) {
		/* The programs wake this thread only past a fill threshold; on the
		 * timeout, take what is below it. */
		int n = ring_buffer__poll(kc->rb, KERNEL_POLL_MS);

		if (n == 0)
			n = ring_buffer__consume(kc->rb);

		if (n < 0 && n != -EINTR) {
			collector_error(&kc->base, "ring buffer poll: %s", strerror(-n));
			atomic_store(&kc->base.healthy, false);
			atomic_fetch_add_explicit(&kc->base.n.errors, 1, memory_order_relaxed);
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	/* What the programs wrote before they were stopped. */
	ring_buffer__consume(kc->rb);
	return NULL;
}

uint64_t kernel_ringbuf_wakeup(uint32_t ringbuf_size)
{
	/* An eighth of the ring, at most 256 KiB: thousands of records per
	 * wake-up in a storm, and room left for a reader that is late. */
	uint64_t t = ringbuf_size / 8;

	return t > (256u << 10) ? (256u << 10) : t;
}

int kernel_ringbuf_open(struct kcollector *kc)
{
	kc->rb = ring_buffer__new(bpf_map__fd(kc->skel->maps.events), on_sample, kc, NULL);
	return kc->rb ? 0 : -errno;
}

int64_t kernel_clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
