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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tapio_event;

struct cgroup_ids {
	char container_id[72]; /* 64 hex digits usually; "" when not in the path */
	char pod_uid[40];      /* 8-4-4-4-12, dashes restored; "" when not in the path */
	char runtime[16];      /* "containerd", "cri-o", "docker" or "" */
};

/* Parses a cgroup path (v1 or v2; cgroupfs or systemd driver layouts;
 * containerd "cri-containerd-", CRI-O "crio-", docker "docker-" prefixes, and
 * the plain kubepods/<qos>/pod<uid>/<id> form). Returns 0 when at least a pod
 * uid or a container id was found, -ENOENT when the path shows neither, or
 * -EINVAL for bad input. */
int cgroup_path_parse(const char *path, size_t len, struct cgroup_ids *out);

struct podmeta;

struct podmeta_entry {
	struct cgroup_ids ids;
	char pod_name[254];
	char pod_namespace[64];
};

/* cgroup_root: where cgroup2 (or the v1 hierarchy to resolve ids in) is
 * mounted; NULL = autodetect (/sys/fs/cgroup or /sys/fs/cgroup/unified).
 * max_entries bounds the cache. Returns NULL with errno. */
struct podmeta *podmeta_new(const char *cgroup_root, size_t max_entries);
void podmeta_free(struct podmeta *pm); /* accepts NULL */

/* Looks a cgroup id up: from the cache, or by resolving the id to its path
 * (a walk of the cgroup2 tree, cached). Returns 0 and fills out, -ENOENT when
 * the cgroup is not a container's, or another negative errno. */
int podmeta_lookup(struct podmeta *pm, uint64_t cgroup_id, struct podmeta_entry *out);

/* Drops a cgroup from the cache (on cgroup.rmdir). */
void podmeta_forget(struct podmeta *pm, uint64_t cgroup_id);

/* Feeds a pod seen by the k8s collector (ADDED/MODIFIED add, DELETED
 * removes). */
void podmeta_pod_update(struct podmeta *pm, const char *uid, const char *ns, const char *name,
			bool deleted);

/* Feeds one event from the pipeline: a k8s.watch event for a pod updates the
 * pod cache, a kernel cgroup.rmdir forgets its cgroup; others are ignored. */
void podmeta_observe(struct podmeta *pm, const struct tapio_event *ev);

struct podmeta_stats {
	uint64_t hits, misses, resolves, evictions, pods;
};
void podmeta_get_stats(struct podmeta *pm, struct podmeta_stats *out);

#endif
