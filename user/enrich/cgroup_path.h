/* SPDX-License-Identifier: Apache-2.0 */
/* The cgroup path parser: container id, runtime and pod uid from a cgroup
 * path alone (no syscalls; fuzzable). */
#ifndef TAPIO_CGROUP_PATH_H
#define TAPIO_CGROUP_PATH_H

#include <stddef.h>
#include <stdint.h>

#define CGROUP_PATH_MAX 4096 /* the longest path cgroup_path_parse() accepts */

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

#endif
