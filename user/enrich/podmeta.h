/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes metadata for kernel events: cgroup id -> cgroup path -> container
 * id and pod uid (from the path alone), then -> pod name and namespace from a
 * cache of this node's pods that the k8s collector's stream feeds.
 *
 * The path parser is a pure function (fuzzable). The cache is bounded and
 * thread-safe: the kernel collector thread looks up, the pipeline thread feeds
 * pods, and cgroup.rmdir invalidates.
 */
#ifndef TAPIO_PODMETA_H
#define TAPIO_PODMETA_H

#include "core/counters.h"
#include "enrich/cgroup_path.h"
#include "enrich/cgroup_resolve.h"
#include "util/cgroupfs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tapio_event;

/* struct cgroup_ids and cgroup_path_parse() are in enrich/cgroup_path.h,
 * cgroup_find_by_id() in enrich/cgroup_resolve.h. */

struct podmeta;

struct podmeta_entry {
	struct cgroup_ids ids;
	char pod_name[254];
	char pod_namespace[64];
	/* from the pod's container statuses, when known ("" otherwise) */
	char container_name[64];
	char image[256];
	char image_id[256];
	char labels[512]; /* the wanted pod labels, "key\0value\0" pairs */
	size_t labels_len;
};

/* cgroup_root: where cgroup2 (or the v1 hierarchy to resolve ids in) is
 * mounted; NULL = autodetect (/sys/fs/cgroup or /sys/fs/cgroup/unified, then
 * /proc/self/mountinfo). max_entries (1 .. 2^24) bounds the cgroup cache and,
 * separately, the pod cache; the least recently used entry is evicted.
 * Returns NULL with errno EINVAL, ENOENT (no cgroup2 mount found), ENOMEM, or
 * open()'s errno for the root. */
struct podmeta *podmeta_new(const char *cgroup_root, size_t max_entries);
void podmeta_free(struct podmeta *pm); /* accepts NULL */

/* Looks a cgroup id up: from the cache, or by resolving the id to its path
 * (podmeta_cgroup_path) and parsing it; both results, container or not, are
 * cached. Returns 0 and fills out (pod name and namespace when the pod cache
 * knows the uid, else ""), -ENOENT when the cgroup is not a container's or does
 * not exist, or another negative errno (not cached). Thread-safe. */
int podmeta_lookup(struct podmeta *pm, uint64_t cgroup_id, struct podmeta_entry *out);

/* Starts the resolver thread: from then on, a miss in the cgroup_meta hook
 * (podmeta_lookup_nowait) is resolved there, not on the hook's thread.
 * podmeta_free stops it. Returns 0, -EALREADY, or a negative errno (the cache
 * stays synchronous). */
int podmeta_start_resolver(struct podmeta *pm);

/* podmeta_lookup without resolving on this thread, once the resolver runs
 * (before that it is podmeta_lookup): a cached answer as podmeta_lookup
 * gives it; for an id not known yet, -EINPROGRESS (it is queued; a later
 * lookup finds the answer), or -EAGAIN when the resolver's queue is full
 * (nothing queued: ask again). Thread-safe. */
int podmeta_lookup_nowait(struct podmeta *pm, uint64_t cgroup_id, struct podmeta_entry *out);

/* The path of a cgroup id below the cgroup root (e.g. "/kubepods.slice/...");
 * an id with CGROUP_KEY_V1 (core/collector.h) below the v1 memory
 * hierarchy's mount, found at podmeta_new() when cgroup_root is NULL (none:
 * -ENOENT),
 * by file handle (open_by_handle_at, needs CAP_DAC_READ_SEARCH) or else by a
 * walk of the tree. Returns 0, -ENOENT (no such cgroup), -ENAMETOOLONG, or
 * another negative errno. Not cached. */
int podmeta_cgroup_path(struct podmeta *pm, uint64_t cgroup_id, char *buf, size_t len);

/* Drops a cgroup from the cache (on cgroup.rmdir). */
void podmeta_forget(struct podmeta *pm, uint64_t cgroup_id);

/* Feeds a pod seen by the k8s collector (ADDED/MODIFIED add, DELETED
 * removes). */
void podmeta_pod_update(struct podmeta *pm, const char *uid, const char *ns, const char *name,
			bool deleted);

struct pod_container;

/* Sets the containers of a pod already fed by podmeta_pod_update (container
 * id -> name, image, image id). */
void podmeta_pod_containers(struct podmeta *pm, const char *uid, const struct pod_container *c,
			    size_t n);

struct meta_kv;

/* Which pod labels to keep (a comma list of keys, "" or NULL = none); they
 * go on kernel events as pod_label.KEY. Call before the hooks run. Returns 0
 * or -ENOMEM. */
int podmeta_set_labels(struct podmeta *pm, const char *keys);

/* Keeps the wanted ones of a pod's labels (after podmeta_pod_update). */
void podmeta_pod_labels(struct podmeta *pm, const char *uid, const struct meta_kv *kv, size_t n);

struct collector_hooks;

/* Fills the collector hooks that feed and read this cache: cgroup_meta
 * (container_id, pod_uid, pod_name, pod_namespace, container_name, image,
 * image_id for a cgroup id), pod_containers (podmeta_pod_containers),
 * cgroup_removed (podmeta_forget) and pod_update (podmeta_pod_update).
 * With the resolver started, a cgroup id not resolved yet gives the one key
 * pod_meta=pending instead; the events after its resolution carry the rest. */
void podmeta_hooks(struct podmeta *pm, struct collector_hooks *out);

struct podmeta_stats {
	uint64_t hits, misses, resolves, evictions, pods;
	uint64_t queue_full;	  /* misses the resolver's full queue refused */
	uint64_t resolve_errors;  /* transient failures of the resolver thread */
	uint64_t resolve_pending; /* misses queued for the resolver now */
};
void podmeta_get_stats(struct podmeta *pm, struct podmeta_stats *out);

/* The stats through fn (core/counters.h), unlabelled: the counters hits,
 * misses, resolves, evictions, queue_full and resolve_errors, and the
 * levels resolve_pending and pod_entries (pods cached). Accepts NULL (hands
 * out nothing). */
void podmeta_counters(struct podmeta *pm, counter_fn fn, void *ctx);

#endif
