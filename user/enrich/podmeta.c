/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes metadata for kernel events (see podmeta.h): the cgroup-id cache
 * and the lookup that fills it.
 *
 * Two bounded LRU tables behind one mutex: cgroup id -> parsed ids (negative
 * results too, so a host process costs one resolution; here), and pod uid ->
 * name and namespace (enrich/pods.c). Ids resolve to paths in
 * enrich/cgroup_resolve.c and paths parse in enrich/cgroup_path.c.
 *
 * The event hook reads through a small per-thread cache in front of them
 * (direct-mapped by cgroup id): a hit takes no lock. Every change to the
 * tables (a pod update, a forgotten cgroup, a finished resolution) bumps a
 * generation, which invalidates every thread's copies at once.
 *
 * With the resolver started (podmeta_start_resolver), a miss in the hook
 * does not resolve on the caller's thread (the kernel collector's ring
 * buffer thread): it enters the id as pending (-EINPROGRESS), queues it and
 * wakes the resolver thread, which resolves and parses the path and replaces
 * the pending entry. Until then the hook gives pod_meta=pending; the events
 * after it carry the ids and names. A full request queue leaves nothing
 * behind (the next event asks again) and is counted.
 */
#include "enrich/podmeta.h"

#include <errno.h>
#include <poll.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/collector.h"
#include "core/event.h"
#include "enrich/lru.h"
#include "enrich/pods.h"
#include "util/strlist.h"
#include "util/worker.h"

#define RESOLVE_QUEUE 1024 /* misses waiting for the resolver thread */

struct cg_entry {
	uint64_t id;
	int status; /* 0: ids below; -ENOENT: not a container's cgroup */
	struct cgroup_ids ids;
	struct cg_entry *hnext;	      /* hash chain */
	struct cg_entry *prev, *next; /* LRU, most recent first */
};

struct podmeta {
	pthread_mutex_t mu;
	struct cgroup_resolver res;
	struct cgroup_resolver res_v1; /* the v1 memory hierarchy (root_fd -1: none) */
	size_t max;

	struct cg_entry *cg;
	struct cg_entry *cg_free; /* forgotten slots, linked by next */
	struct cg_entry **cg_hash;
	size_t cg_hmask, cg_used;
	struct cg_entry cg_lru; /* sentinel */

	struct pod_table pods;
	struct strlist want_labels;

	struct podmeta_stats st;
	uint64_t serial;      /* tells this cache from an earlier one at the same address */
	_Atomic uint64_t gen; /* bumped on every change to the tables */

	/* the resolver thread (podmeta_start_resolver); the queue is under mu */
	struct worker resolver;
	bool async;
	int req_fd; /* eventfd: requests are queued */
	uint64_t reqs[RESOLVE_QUEUE];
	size_t req_head, req_n;
};

static _Atomic uint64_t podmeta_serials;

static size_t hash_id(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id;
}

struct podmeta *podmeta_new(const char *cgroup_root, size_t max_entries)
{
	if (max_entries == 0 || max_entries > (1u << 24)) {
		errno = EINVAL;
		return NULL;
	}
	struct podmeta *pm = calloc(1, sizeof(*pm));
	if (!pm)
		return NULL;
	int err = cgroup_resolver_open(&pm->res, cgroup_root);
	if (err)
		goto fail;
	/* On a v1/hybrid host, ids with CGROUP_KEY_V1 resolve in the v1
	 * memory hierarchy (autodetected only, like the cgroup2 root). */
	char v1[PATH_MAX];
	unsigned v1_id;
	pm->res_v1.root_fd = -1;
	if (!cgroup_root && !cgroup_v1_find("memory", &v1_id, v1, sizeof(v1)) &&
	    cgroup_resolver_open(&pm->res_v1, v1))
		pm->res_v1.root_fd = -1;

	pm->max = max_entries;
	pm->cg = calloc(max_entries, sizeof(*pm->cg));
	size_t hs = pow2_at_least(max_entries);
	pm->cg_hash = calloc(hs, sizeof(*pm->cg_hash));
	pm->cg_hmask = hs - 1;
	int pods_rc = pod_table_init(&pm->pods, max_entries, hs);
	if (!pm->cg || !pm->cg_hash || pods_rc) {
		err = ENOMEM;
		goto fail;
	}
	pm->cg_lru.next = pm->cg_lru.prev = &pm->cg_lru;
	pm->serial = atomic_fetch_add(&podmeta_serials, 1) + 1;
	worker_init(&pm->resolver);
	pm->req_fd = -1;
	pthread_mutex_init(&pm->mu, NULL);
	return pm;
fail:
	cgroup_resolver_close(&pm->res);
	cgroup_resolver_close(&pm->res_v1);
	free(pm->cg);
	free(pm->cg_hash);
	pod_table_free(&pm->pods);
	free(pm);
	errno = err;
	return NULL;
}

void podmeta_free(struct podmeta *pm)
{
	if (!pm)
		return;
	worker_stop(&pm->resolver);
	if (pm->req_fd >= 0)
		close(pm->req_fd);
	pod_table_free(&pm->pods);
	strlist_free(&pm->want_labels);
	pthread_mutex_destroy(&pm->mu);
	cgroup_resolver_close(&pm->res);
	cgroup_resolver_close(&pm->res_v1);
	free(pm->cg);
	free(pm->cg_hash);
	free(pm);
}

int podmeta_cgroup_path(struct podmeta *pm, uint64_t cgroup_id, char *buf, size_t len)
{
	if (!pm || !buf || len < 2)
		return -EINVAL;
	if (cgroup_id & CGROUP_KEY_V1) {
		if (pm->res_v1.root_fd < 0)
			return -ENOENT;
		return cgroup_resolver_path(&pm->res_v1, cgroup_id & ~CGROUP_KEY_V1, buf, len);
	}
	return cgroup_resolver_path(&pm->res, cgroup_id, buf, len);
}

static struct cg_entry *cg_find(struct podmeta *pm, uint64_t id)
{
	for (struct cg_entry *e = pm->cg_hash[hash_id(id) & pm->cg_hmask]; e; e = e->hnext)
		if (e->id == id)
			return e;
	return NULL;
}

static void cg_unhash(struct podmeta *pm, struct cg_entry *e)
{
	struct cg_entry **pp = &pm->cg_hash[hash_id(e->id) & pm->cg_hmask];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	LRU_UNLINK(e);
}

/* Fills out from a cache entry and the pod table. Called locked. */
static int fill(struct podmeta *pm, const struct cg_entry *e, struct podmeta_entry *out)
{
	memset(out, 0, sizeof(*out));
	if (e->status)
		return e->status;
	out->ids = e->ids;
	if (e->ids.pod_uid[0]) {
		struct pod_entry *p = pod_table_find(&pm->pods, e->ids.pod_uid);
		if (p) {
			memcpy(out->pod_name, p->name, sizeof(out->pod_name));
			memcpy(out->pod_namespace, p->ns, sizeof(out->pod_namespace));
			const struct pod_cont *c = e->ids.container_id[0]
						       ? pod_entry_container(p, e->ids.container_id)
						       : NULL;
			if (c) {
				memcpy(out->container_name, c->name, sizeof(out->container_name));
				memcpy(out->image, c->image, sizeof(out->image));
				memcpy(out->image_id, c->image_id, sizeof(out->image_id));
			}
			memcpy(out->labels, p->labels, p->labels_len);
			out->labels_len = p->labels_len;
		}
	}
	return 0;
}

/* The ids of a cgroup, without the lock (syscalls, maybe a walk): 0 (ids
 * filled), -ENOENT (no container's cgroup, or none at all) or a transient
 * negative errno. */
static int resolve(struct podmeta *pm, uint64_t cgroup_id, struct cgroup_ids *ids)
{
	char path[CGROUP_PATH_MAX + 1];
	if (cgroup_id == 0)
		return -ENOENT;
	int rc = podmeta_cgroup_path(pm, cgroup_id, path, sizeof(path));
	if (rc == -ENAMETOOLONG)
		rc = -ENOENT; /* deeper than any container's cgroup */
	if (rc)
		return rc;
	rc = cgroup_path_parse(path, strlen(path), ids);
	return rc == -EINVAL ? -ENOENT : rc;
}

/* Sets an entry's result (ids may be NULL unless status is 0). Called
 * locked. */
static void cg_set(struct cg_entry *e, int status, const struct cgroup_ids *ids)
{
	e->status = status;
	if (!status && ids)
		e->ids = *ids;
	else
		memset(&e->ids, 0, sizeof(e->ids));
}

/* Enters a cgroup id, evicting the least recently used entry when full.
 * Called locked. */
static struct cg_entry *cg_insert(struct podmeta *pm, uint64_t cgroup_id, int status,
				  const struct cgroup_ids *ids)
{
	struct cg_entry *e;
	if (pm->cg_free) {
		e = pm->cg_free;
		pm->cg_free = e->next;
	} else if (pm->cg_used < pm->max) {
		e = &pm->cg[pm->cg_used++];
	} else {
		e = pm->cg_lru.prev; /* the least recently used */
		cg_unhash(pm, e);
		pm->st.evictions++;
	}
	e->id = cgroup_id;
	cg_set(e, status, ids);
	size_t b = hash_id(cgroup_id) & pm->cg_hmask;
	e->hnext = pm->cg_hash[b];
	pm->cg_hash[b] = e;
	LRU_PUSH(&pm->cg_lru, e);
	return e;
}

int podmeta_lookup(struct podmeta *pm, uint64_t cgroup_id, struct podmeta_entry *out)
{
	if (!pm || !out)
		return -EINVAL;
	pthread_mutex_lock(&pm->mu);
	struct cg_entry *e = cg_find(pm, cgroup_id);
	if (e && e->status != -EINPROGRESS) {
		LRU_UNLINK(e);
		LRU_PUSH(&pm->cg_lru, e);
		pm->st.hits++;
		int rc = fill(pm, e, out);
		pthread_mutex_unlock(&pm->mu);
		return rc;
	}
	pm->st.misses++;
	pthread_mutex_unlock(&pm->mu);

	struct cgroup_ids ids;
	int status = resolve(pm, cgroup_id, &ids);
	if (status && status != -ENOENT) {
		memset(out, 0, sizeof(*out));
		return status; /* transient: not cached */
	}
	pthread_mutex_lock(&pm->mu);
	if (!status)
		pm->st.resolves++;
	e = cg_find(pm, cgroup_id); /* another thread may have added it */
	if (!e)
		e = cg_insert(pm, cgroup_id, status, &ids);
	else if (e->status == -EINPROGRESS)
		cg_set(e, status, &ids);
	int rc = fill(pm, e, out);
	pthread_mutex_unlock(&pm->mu);
	return rc;
}

int podmeta_lookup_nowait(struct podmeta *pm, uint64_t cgroup_id, struct podmeta_entry *out)
{
	if (!pm || !out)
		return -EINVAL;
	if (!pm->async)
		return podmeta_lookup(pm, cgroup_id, out);
	if (cgroup_id == 0) {
		memset(out, 0, sizeof(*out));
		return -ENOENT;
	}
	pthread_mutex_lock(&pm->mu);
	struct cg_entry *e = cg_find(pm, cgroup_id);
	if (e) {
		LRU_UNLINK(e);
		LRU_PUSH(&pm->cg_lru, e);
		if (e->status != -EINPROGRESS)
			pm->st.hits++;
		int rc = fill(pm, e, out);
		pthread_mutex_unlock(&pm->mu);
		return rc;
	}
	pm->st.misses++;
	if (pm->req_n == RESOLVE_QUEUE) {
		pm->st.queue_full++;
		pthread_mutex_unlock(&pm->mu);
		memset(out, 0, sizeof(*out));
		return -EAGAIN; /* nothing entered: the next event asks again */
	}
	pm->reqs[(pm->req_head + pm->req_n++) % RESOLVE_QUEUE] = cgroup_id;
	cg_insert(pm, cgroup_id, -EINPROGRESS, NULL);
	pthread_mutex_unlock(&pm->mu);
	uint64_t one = 1;
	if (write(pm->req_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the resolver is awake anyway */
	}
	memset(out, 0, sizeof(*out));
	return -EINPROGRESS;
}

/* The resolver thread: takes the queued ids one by one, resolves each
 * without the lock and replaces its pending entry. An entry forgotten or
 * evicted meanwhile is left alone (a later event asks again); a transient
 * failure removes the pending entry, so that the next event retries. */
static void *resolver_main(void *arg)
{
	struct podmeta *pm = arg;
	struct pollfd p[2] = {
	    {.fd = pm->req_fd, .events = POLLIN},
	    {.fd = worker_wake_fd(&pm->resolver), .events = POLLIN},
	};
	while (!worker_stopping(&pm->resolver)) {
		uint64_t n;
		if (read(pm->req_fd, &n, sizeof(n)) < 0) {
			(void)poll(p, 2, -1); /* nothing queued: sleep until a miss or stop */
			continue;
		}
		for (;;) {
			pthread_mutex_lock(&pm->mu);
			if (!pm->req_n) {
				pthread_mutex_unlock(&pm->mu);
				break;
			}
			uint64_t id = pm->reqs[pm->req_head];
			pm->req_head = (pm->req_head + 1) % RESOLVE_QUEUE;
			pm->req_n--;
			pthread_mutex_unlock(&pm->mu);

			struct cgroup_ids ids;
			int status = resolve(pm, id, &ids);

			pthread_mutex_lock(&pm->mu);
			struct cg_entry *e = cg_find(pm, id);
			if (e && e->status == -EINPROGRESS) {
				if (status && status != -ENOENT) {
					cg_unhash(pm, e);
					e->next = pm->cg_free;
					pm->cg_free = e;
					pm->st.resolve_errors++;
				} else {
					cg_set(e, status, &ids);
					if (!status)
						pm->st.resolves++;
				}
				atomic_fetch_add_explicit(&pm->gen, 1, memory_order_release);
			}
			pthread_mutex_unlock(&pm->mu);
		}
	}
	return NULL;
}

int podmeta_start_resolver(struct podmeta *pm)
{
	if (!pm)
		return -EINVAL;
	if (pm->async)
		return -EALREADY;
	pm->req_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pm->req_fd < 0)
		return -errno;
	int rc = worker_start(&pm->resolver, resolver_main, pm);
	if (rc) {
		close(pm->req_fd);
		pm->req_fd = -1;
		return rc;
	}
	worker_set_name(&pm->resolver, "podmeta");
	pm->async = true;
	return 0;
}

void podmeta_forget(struct podmeta *pm, uint64_t cgroup_id)
{
	if (!pm)
		return;
	pthread_mutex_lock(&pm->mu);
	struct cg_entry *e = cg_find(pm, cgroup_id);
	if (e) {
		cg_unhash(pm, e);
		e->next = pm->cg_free;
		pm->cg_free = e;
	}
	atomic_fetch_add_explicit(&pm->gen, 1, memory_order_release);
	pthread_mutex_unlock(&pm->mu);
}

void podmeta_pod_update(struct podmeta *pm, const char *uid, const char *ns, const char *name,
			bool deleted)
{
	if (!pm || !uid || !*uid || strlen(uid) >= sizeof(((struct pod_entry *)0)->uid))
		return;
	pthread_mutex_lock(&pm->mu);
	pm->st.evictions += pod_table_update(&pm->pods, uid, ns, name, deleted);
	atomic_fetch_add_explicit(&pm->gen, 1, memory_order_release);
	pthread_mutex_unlock(&pm->mu);
}

void podmeta_pod_containers(struct podmeta *pm, const char *uid, const struct pod_container *c,
			    size_t n)
{
	if (!pm || !uid || !*uid)
		return;
	pthread_mutex_lock(&pm->mu);
	pod_table_set_containers(&pm->pods, uid, c, n);
	pthread_mutex_unlock(&pm->mu);
}

int podmeta_set_labels(struct podmeta *pm, const char *keys)
{
	strlist_free(&pm->want_labels);
	return strlist_split(&pm->want_labels, keys ? keys : "") ? -ENOMEM : 0;
}

void podmeta_pod_labels(struct podmeta *pm, const char *uid, const struct meta_kv *kv, size_t n)
{
	if (!pm || !uid || !*uid || !pm->want_labels.n)
		return;
	pthread_mutex_lock(&pm->mu);
	pod_table_set_labels(&pm->pods, uid, kv, n, &pm->want_labels);
	pthread_mutex_unlock(&pm->mu);
}

static size_t put_kv(struct meta_kv *kv, size_t n, size_t max, const char *key, const char *val,
		     char **scratch, size_t *left)
{
	size_t len = strlen(val);
	if (n >= max || !len || len + 1 > *left)
		return n;
	memcpy(*scratch, val, len + 1);
	kv[n].key = key;
	kv[n].val = *scratch;
	*scratch += len + 1;
	*left -= len + 1;
	return n + 1;
}

/* One cgroup's answer as the hook last gave it. */
struct read_slot {
	uint64_t serial, gen, id;
	int rc;
	struct podmeta_entry e;
};

#define READ_SLOTS 16
static _Thread_local struct read_slot read_cache[READ_SLOTS];

static struct read_slot *read_slot_of(uint64_t cgroup_id)
{
	return &read_cache[hash_id(cgroup_id) & (READ_SLOTS - 1)];
}

/* The slot holds cgroup_id's answer from this cache at generation gen. */
static bool read_slot_holds(const struct read_slot *s, const struct podmeta *pm, uint64_t cgroup_id,
			    uint64_t gen)
{
	return s->serial == pm->serial && s->gen == gen && s->id == cgroup_id;
}

/* podmeta_lookup() through this thread's cache: no lock on a hit. */
static int cached_lookup(struct podmeta *pm, uint64_t cgroup_id, struct podmeta_entry **out)
{
	struct read_slot *s = read_slot_of(cgroup_id);
	/* the generation is read before the tables: a change after it makes
	 * the slot stale at the next lookup */
	uint64_t gen = atomic_load_explicit(&pm->gen, memory_order_acquire);
	if (read_slot_holds(s, pm, cgroup_id, gen)) {
		*out = &s->e;
		return s->rc;
	}
	int rc = podmeta_lookup_nowait(pm, cgroup_id, &s->e);
	if (rc == 0 || rc == -ENOENT || rc == -EINPROGRESS) {
		s->serial = pm->serial;
		s->gen = gen;
		s->id = cgroup_id;
		s->rc = rc;
	} else {
		s->serial = 0; /* transient: ask again next time */
	}
	*out = &s->e;
	return rc;
}

/* The read slot's generation while it holds cgroup_id's answer: the same
 * answer as long as the tables do not change. */
static uint64_t hook_cgroup_meta_stamp(void *ctx, uint64_t cgroup_id)
{
	struct podmeta *pm = ctx;
	uint64_t gen = atomic_load_explicit(&pm->gen, memory_order_acquire);

	return read_slot_holds(read_slot_of(cgroup_id), pm, cgroup_id, gen) ? gen + 1 : 0;
}

static size_t hook_cgroup_meta(void *ctx, uint64_t cgroup_id, struct meta_kv *kv, size_t max,
			       char *scratch, size_t scratch_len)
{
	struct podmeta_entry *ep;
	int rc = cached_lookup(ctx, cgroup_id, &ep);
	if ((rc == -EINPROGRESS || rc == -EAGAIN) && max) {
		kv[0] = (struct meta_kv){"pod_meta", "pending"};
		return 1;
	}
	if (rc)
		return 0;
	size_t n = 0;
	n = put_kv(kv, n, max, "container_id", ep->ids.container_id, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_uid", ep->ids.pod_uid, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_name", ep->pod_name, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "pod_namespace", ep->pod_namespace, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "container_name", ep->container_name, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "image", ep->image, &scratch, &scratch_len);
	n = put_kv(kv, n, max, "image_id", ep->image_id, &scratch, &scratch_len);
	for (size_t o = 0; o < ep->labels_len && n < max;) {
		const char *k = ep->labels + o, *v = k + strlen(k) + 1;
		o = (size_t)(v - ep->labels) + strlen(v) + 1;
		size_t kl = strlen(k);
		if (kl + 11 > scratch_len)
			break;
		memcpy(scratch, "pod_label.", 10);
		memcpy(scratch + 10, k, kl + 1);
		const char *key = scratch;
		scratch += kl + 11;
		scratch_len -= kl + 11;
		size_t before = n;
		n = put_kv(kv, n, max, key, v, &scratch, &scratch_len);
		if (n == before)
			break;
	}
	return n;
}

static void hook_cgroup_removed(void *ctx, uint64_t cgroup_id)
{
	podmeta_forget(ctx, cgroup_id);
}

static void hook_pod_update(void *ctx, const char *uid, const char *ns, const char *name,
			    bool deleted)
{
	podmeta_pod_update(ctx, uid, ns, name, deleted);
}

static void hook_pod_containers(void *ctx, const char *uid, const struct pod_container *c, size_t n)
{
	podmeta_pod_containers(ctx, uid, c, n);
}

static void hook_pod_labels(void *ctx, const char *uid, const struct meta_kv *kv, size_t n)
{
	podmeta_pod_labels(ctx, uid, kv, n);
}

void podmeta_hooks(struct podmeta *pm, struct collector_hooks *out)
{
	*out = (struct collector_hooks){
	    .ctx = pm,
	    .cgroup_meta = hook_cgroup_meta,
	    .cgroup_meta_stamp = hook_cgroup_meta_stamp,
	    .cgroup_removed = hook_cgroup_removed,
	    .pod_update = hook_pod_update,
	    .pod_containers = hook_pod_containers,
	    .pod_labels = hook_pod_labels,
	};
}

void podmeta_get_stats(struct podmeta *pm, struct podmeta_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!pm)
		return;
	pthread_mutex_lock(&pm->mu);
	*out = pm->st;
	out->pods = pm->pods.n;
	out->resolve_pending = pm->req_n;
	pthread_mutex_unlock(&pm->mu);
}

void podmeta_counters(struct podmeta *pm, counter_fn fn, void *ctx)
{
	struct podmeta_stats st;
	if (!pm)
		return;
	podmeta_get_stats(pm, &st);
	fn(ctx, "hits", "", st.hits);
	fn(ctx, "misses", "", st.misses);
	fn(ctx, "resolves", "", st.resolves);
	fn(ctx, "evictions", "", st.evictions);
	fn(ctx, "queue_full", "", st.queue_full);
	fn(ctx, "resolve_errors", "", st.resolve_errors);
	fn(ctx, "resolve_pending", "", st.resolve_pending);
	fn(ctx, "pod_entries", "", st.pods);
}
