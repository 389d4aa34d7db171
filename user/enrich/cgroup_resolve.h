/* SPDX-License-Identifier: Apache-2.0 */
/* cgroup id -> path: a cgroup2 id is the inode number of its directory, and
 * kernfs exports it as a file handle, so open_by_handle_at() on the cgroup2
 * mount plus readlink(/proc/self/fd/N) gives the path in two syscalls. Without
 * CAP_DAC_READ_SEARCH (or without /proc) we walk the tree and compare d_ino.
 * Both work for cgroups made before the agent started.
 */
#ifndef TAPIO_CGROUP_RESOLVE_H
#define TAPIO_CGROUP_RESOLVE_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct cgroup_resolver {
	char root[PATH_MAX];
	size_t root_len;
	int root_fd;
	atomic_bool use_handles; /* cleared for good when handles are refused */
	int handle_type;
	unsigned handle_bytes;
};

/* Opens the cgroup root (cgroup_root, or the cgroup2 mount when NULL) and
 * learns whether file handles work there. Returns 0, or ENAMETOOLONG, ENOENT
 * (no cgroup2 mount found) or open()'s errno, with r->root_fd -1. */
int cgroup_resolver_open(struct cgroup_resolver *r, const char *cgroup_root);
void cgroup_resolver_close(struct cgroup_resolver *r);

/* The path of a cgroup id below the root, by file handle or else by a walk
 * (see podmeta_cgroup_path). Returns 0, -ENOENT, -ENAMETOOLONG, or another
 * negative errno. Thread-safe. */
int cgroup_resolver_path(struct cgroup_resolver *r, uint64_t cgroup_id, char *buf, size_t len);

/* Walks the cgroup tree below root_fd (not closed) for the directory whose
 * inode number is id; writes its path relative to the root ("/" for the root
 * itself). Returns 0, -ENOENT, or a negative errno. */
int cgroup_find_by_id(int root_fd, uint64_t id, char *buf, size_t len);

#endif
