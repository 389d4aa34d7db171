/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel collector's ring buffer thread: polls the BPF ring buffer and
 * copies each record once into the queue, with the cgroup's meta from the
 * enrichment hook. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/queue.h"
#include "kernel/internal.h"
#include "kernel/kernel_decode.h"
#include "util/strbuf.h"

/* Adds the records committed since the last call to the counters. */
static void kernel_tally_flush(struct kcollector *kc)
{
	if (!kc->tallied)
		return;
	for (unsigned t = 0; t < EVENT_MAX; t++) {
		if (kc->tally[t]) {
			atomic_fetch_add_explicit(&kc->events[t], kc->tally[t],
						  memory_order_relaxed);
			kc->tally[t] = 0;
		}
	}
	atomic_fetch_add_explicit(&kc->base.n.events, kc->tallied, memory_order_relaxed);
	kc->tallied = 0;
}

/* The hook's stamp for key's meta: 1 when no hook adds to it (the meta is
 * the id alone), 0 when the hook has none. */
static uint64_t meta_stamp(const struct collector_hooks *hk, bool hooked, uint64_t key)
{
	if (!hooked)
		return 1;
	return hk->cgroup_meta_stamp ? hk->cgroup_meta_stamp(hk->ctx, key) : 0;
}

/* Lays out the meta of cgroup cgid (v1: of the v1 memory hierarchy) into
 * kc->meta_cache's slot ms (left empty when it does not fit) and reserves
 * the record with it. */
static struct tapio_event *reserve_fresh(struct kcollector *kc, struct kmeta_slot *ms,
					 unsigned type, uint64_t cgid, bool v1, uint64_t key,
					 uint64_t ts, size_t used)
{
	const struct collector_hooks *hk = kc->o.hooks;
	bool hooked = hk && hk->cgroup_meta && key;
	size_t nkv = 0;

	kc->idbuf[u64_put(kc->idbuf, cgid)] = '\0';
	kc->kv[nkv++] = (struct meta_kv){"cgroup_id", kc->idbuf};
	/* An id from the v1 memory hierarchy (a v1/hybrid host) is looked up
	 * there, apart from cgroup2 ids. */
	if (v1)
		kc->kv[nkv++] = (struct meta_kv){"cgroup_hierarchy", "v1:memory"};
	if (hooked)
		nkv += hk->cgroup_meta(hk->ctx, key, kc->kv + nkv, META_MAX - nkv, kc->scratch,
				       sizeof(kc->scratch));
	ms->stamp = 0;
	if (event_meta_size(kc->kv, nkv) > KMETA_MAX)
		return event_reserve(kc->q, kc->o.source, type, FMT_STRUCT, ts, kc->kv, nkv, used);
	ms->len = (uint32_t)event_meta_put(ms->b, kc->kv, nkv);
	ms->key = key;
	/* asked after the answer: one that changed meanwhile gives no stamp */
	ms->stamp = meta_stamp(hk, hooked, key);
	return event_reserve_block(kc->q, kc->o.source, type, FMT_STRUCT, ts, ms->b, ms->len, used);
}

/* Reserves the queue record of a kernel event of cgroup cgid with its meta:
 * copied from the cgroup's slot while the hook's stamp says it holds, else
 * laid out again. */
static struct tapio_event *reserve_record(struct kcollector *kc, unsigned type, uint64_t cgid,
					  bool v1, uint64_t ts, size_t used)
{
	const struct collector_hooks *hk = kc->o.hooks;
	uint64_t key = v1 ? cgid | CGROUP_KEY_V1 : cgid;
	bool hooked = hk && hk->cgroup_meta && key;
	struct kmeta_slot *ms = &kc->meta_cache[(key * 0x9e3779b97f4a7c15ull) >> 60];
	uint64_t stamp = meta_stamp(hk, hooked, key);

	_Static_assert(KMETA_SLOTS == 16, "the slot is the hash's top 4 bits");
	if (stamp && ms->stamp == stamp && ms->key == key)
		return event_reserve_block(kc->q, kc->o.source, type, FMT_STRUCT, ts, ms->b,
					   ms->len, used);
	return reserve_fresh(kc, ms, type, cgid, v1, key, ts, used);
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct kcollector *kc = ctx;
	const struct event_header *h = data;
	struct tapio_event *ev;
	size_t used;
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
	ev = reserve_record(kc, type, cgid, v1, (uint64_t)((int64_t)h->ts + kc->boot_to_epoch),
			    used);
	if (!ev) {
		atomic_fetch_add_explicit(&kc->qdrops[type], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&kc->base.n.dropped, 1, memory_order_relaxed);
	} else {
		memcpy(event_data(ev), data, used);
		/* the consumer is woken once per batch (kernel_poll_thread), and
		 * within a long batch every KERNEL_WAKE_EVERY records, so that
		 * it does not sleep while the queue fills */
		queue_commit_quiet(kc->q, ev);
		kc->tally[type]++;
		kc->tallied++;
		if (++kc->unwoken >= KERNEL_WAKE_EVERY) {
			kc->unwoken = 0;
			queue_wake(kc->q);
			kernel_tally_flush(kc);
		}
	}
	const struct collector_hooks *hk = kc->o.hooks;
	if (type == EVENT_CGROUP_RMDIR && hk && hk->cgroup_removed) {
		const struct cgroup_event *ce = data;

		if (ce->hierarchy_id == 0)
			hk->cgroup_removed(hk->ctx, ce->id);
	}
	return 0;
}

/* The reader_asleep protocol (bpf/submit.bpf.h), one step per poll:
 *   BUSY     flag clear; records below the fill threshold are taken on the
 *            KERNEL_POLL_MS timeout, one wake-up per period in a stream
 *            (KERNEL_STREAM_POLL_MS after a period of a dense stream).
 *   CONFIRM  flag set; one more KERNEL_POLL_MS period. A program that read
 *            the flag just before it was set commits its record within it,
 *            so that record waits at most KERNEL_POLL_MS.
 *   IDLE     flag set; a record wakes the thread at once; the timeout
 *            (KERNEL_IDLE_POLL_MS) is a backstop only.
 * A batch that woke the thread out of CONFIRM or IDLE (its program cleared
 * the flag) goes back to BUSY when it followed the last batch within a
 * period (records keep coming), or else sets the flag again at once: a lone
 * record after a quiet spell costs two wake-ups, not three. Returns the
 * next poll's timeout; n is the poll's record count (updated). */
enum idle_state { IDLE_BUSY, IDLE_CONFIRM, IDLE_ASLEEP };

struct idle_poll {
	volatile __u32 *flag; /* NULL: no flag, always BUSY */
	enum idle_state st;
	uint64_t last_ns; /* monotonic ns of the last batch */
};

static int idle_step(struct idle_poll *ip, struct ring_buffer *rb, int *n)
{
	if (!ip->flag || *n < 0)
		return KERNEL_POLL_MS;
	if (*n > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		bool lone = now - ip->last_ns >= (uint64_t)KERNEL_POLL_MS * 1000000ull;
		ip->last_ns = now;
		if (ip->st == IDLE_BUSY)
			return *n >= KERNEL_STREAM_RECORDS ? KERNEL_STREAM_POLL_MS : KERNEL_POLL_MS;
		if (!lone) {
			__atomic_store_n(ip->flag, 0, __ATOMIC_RELAXED);
			ip->st = IDLE_BUSY;
			return KERNEL_POLL_MS;
		}
		__atomic_store_n(ip->flag, 1, __ATOMIC_SEQ_CST);
		ip->st = IDLE_CONFIRM;
		return KERNEL_POLL_MS;
	}
	if (ip->st == IDLE_BUSY) {
		/* Nothing for a whole period: say so, then look once more for a
		 * record submitted before the flag was seen. */
		__atomic_store_n(ip->flag, 1, __ATOMIC_SEQ_CST);
		ip->st = IDLE_CONFIRM;
		*n = ring_buffer__consume(rb);
		if (*n > 0) {
			__atomic_store_n(ip->flag, 0, __ATOMIC_RELAXED);
			ip->st = IDLE_BUSY;
		}
		return KERNEL_POLL_MS;
	}
	ip->st = IDLE_ASLEEP;
	return KERNEL_IDLE_POLL_MS;
}

void *kernel_poll_thread(void *arg)
{
	struct kcollector *kc = arg;

	struct idle_poll ip = {.flag = kc->skel && kc->skel->bss ? &kc->skel->bss->reader_asleep
								 : NULL};
	int timeout = KERNEL_POLL_MS;

	while (!collector_stopping(&kc->base)) {
		/* The programs wake this thread only past a fill threshold, or on
		 * the first record after it said it sleeps; on the timeout, take
		 * what is below the threshold. */
		int n = ring_buffer__poll(kc->rb, timeout);

		if (n == 0)
			n = ring_buffer__consume(kc->rb);
		timeout = idle_step(&ip, kc->rb, &n);
		/* One wake-up of the consumer for the whole batch: on_sample()
		 * commits quietly, so that a consumer that catches up in the
		 * middle of a batch is not woken again for each record. */
		if (n > 0) {
			kc->unwoken = 0;
			queue_wake(kc->q);
			kernel_tally_flush(kc);
		}

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
	queue_wake(kc->q);
	kernel_tally_flush(kc);
	return NULL;
}

uint64_t kernel_ringbuf_wakeup(uint32_t ringbuf_size)
{
	/* An eighth of the ring, at most 256 KiB: thousands of records per
	 * wake-up in a storm, and room left for a reader that is late. */
	uint64_t t = ringbuf_size / 8;

	return t > (256u << 10) ? (256u << 10) : t;
}

uint32_t kernel_ring_per_cpu_size(uint32_t ringbuf_size, uint32_t ncpu)
{
	uint32_t page = (uint32_t)sysconf(_SC_PAGESIZE);
	uint32_t each = ncpu ? ringbuf_size / ncpu : ringbuf_size;
	uint32_t p = page;

	while (p <= each / 2)
		p <<= 1;
	return p;
}

bool kernel_ring_per_cpu_supported(const char **why)
{
	uint32_t page = (uint32_t)sysconf(_SC_PAGESIZE);
	LIBBPF_OPTS(bpf_map_create_opts, o);
	int inner, outer;

	inner = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "tapio_probe", 0, 0, page, NULL);
	if (inner < 0) {
		*why = strerror(errno);
		return false;
	}
	o.inner_map_fd = inner;
	outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "tapio_probe", 4, 4, 1, &o);
	if (outer < 0)
		*why = strerror(errno);
	else
		close(outer);
	close(inner);
	return outer >= 0;
}

/* Per-CPU mode: a ring per possible CPU into cpu_rings, all in one
 * ring_buffer manager. Returns 0 or a negative errno. */
static int open_per_cpu(struct kcollector *kc, const struct load_cfg *cfg)
{
	int outer = bpf_map__fd(kc->skel->maps.cpu_rings);

	kc->ring_fds = malloc(cfg->ring_ncpu * sizeof(*kc->ring_fds));
	if (!kc->ring_fds)
		return -ENOMEM;
	for (uint32_t cpu = 0; cpu < cfg->ring_ncpu; cpu++) {
		int fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "tapio_cpu_ring", 0, 0,
					cfg->ring_size, NULL);
		int rc;

		if (fd < 0)
			return -errno;
		kc->ring_fds[kc->nrings++] = fd;
		if (bpf_map_update_elem(outer, &cpu, &fd, BPF_ANY))
			return -errno;
		if (!kc->rb)
			kc->rb = ring_buffer__new(fd, on_sample, kc, NULL);
		else if ((rc = ring_buffer__add(kc->rb, fd, on_sample, kc)) < 0)
			return rc;
		if (!kc->rb)
			return -errno;
	}
	return 0;
}

int kernel_ringbuf_open(struct kcollector *kc, const struct load_cfg *cfg)
{
	if (cfg->ring_per_cpu)
		return open_per_cpu(kc, cfg);
	kc->rb = ring_buffer__new(bpf_map__fd(kc->skel->maps.events), on_sample, kc, NULL);
	return kc->rb ? 0 : -errno;
}

void kernel_ringbuf_close(struct kcollector *kc)
{
	ring_buffer__free(kc->rb);
	kc->rb = NULL;
	for (int i = 0; i < kc->nrings; i++)
		close(kc->ring_fds[i]);
	free(kc->ring_fds);
	kc->ring_fds = NULL;
	kc->nrings = 0;
}

int64_t kernel_clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
