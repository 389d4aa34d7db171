/* SPDX-License-Identifier: Apache-2.0 */
/* cgroup id -> path (see cgroup_resolve.h). */
#include "enrich/cgroup_resolve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cgroupfs.h"

#define FILEID_KERNFS 0xfe /* include/linux/exportfs.h: a kernfs node id */
#define WALK_MAX_DEPTH 64

static int walk(int fd0, uint64_t id, char *buf, size_t len, size_t at, int depth)
{
	if (depth > WALK_MAX_DEPTH) {
		close(fd0);
		return -ENOENT;
	}
	DIR *d = fdopendir(fd0);
	if (!d) {
		int err = -errno;
		close(fd0);
		return err;
	}
	int rc = -ENOENT;
	struct dirent *de;
	while (rc == -ENOENT && (de = readdir(d))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		size_t nl = strlen(de->d_name);
		if (at + 1 + nl + 1 > len)
			continue; /* deeper than the buffer: cannot be named */
		buf[at] = '/';
		memcpy(buf + at + 1, de->d_name, nl + 1);
		if ((uint64_t)de->d_ino == id)
			rc = 0;
		else {
			int fd = openat(dirfd(d), de->d_name,
					O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (fd >= 0)
				rc = walk(fd, id, buf, len, at + 1 + nl, depth + 1);
		}
		if (rc)
			buf[at] = 0;
	}
	closedir(d);
	return rc;
}

int cgroup_find_by_id(int root_fd, uint64_t id, char *buf, size_t len)
{
	if (root_fd < 0 || !buf || len < 2)
		return -EINVAL;
	struct stat st;
	if (fstat(root_fd, &st))
		return -errno;
	buf[0] = 0;
	if ((uint64_t)st.st_ino == id) {
		snprintf(buf, len, "/");
		return 0;
	}
	int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return walk(fd, id, buf, len, 0, 0);
}

/* Learns kernfs's handle format from the root itself. */
static void learn_handles(struct cgroup_resolver *r)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[MAX_HANDLE_SZ];
	} h;
	int mnt;
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (!name_to_handle_at(r->root_fd, "", &h.fh, &mnt, AT_EMPTY_PATH) &&
	    h.fh.handle_type == FILEID_KERNFS && h.fh.handle_bytes == sizeof(uint64_t)) {
		uint64_t v;
		struct stat st;
		memcpy(&v, h.fh.f_handle, sizeof(v));
		if (!fstat(r->root_fd, &st) && v == (uint64_t)st.st_ino) {
			atomic_store(&r->use_handles, true);
			r->handle_type = h.fh.handle_type;
			r->handle_bytes = h.fh.handle_bytes;
		}
	}
}

int cgroup_resolver_open(struct cgroup_resolver *r, const char *cgroup_root)
{
	memset(r, 0, sizeof(*r));
	r->root_fd = -1;
	if (cgroup_root) {
		if (strlen(cgroup_root) >= sizeof(r->root))
			return ENAMETOOLONG;
		snprintf(r->root, sizeof(r->root), "%s", cgroup_root);
	} else if (cgroup2_find_mount(r->root, sizeof(r->root))) {
		return ENOENT;
	}
	r->root_len = strlen(r->root);
	while (r->root_len > 1 && r->root[r->root_len - 1] == '/')
		r->root[--r->root_len] = 0;
	r->root_fd = open(r->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->root_fd < 0)
		return errno;
	learn_handles(r);
	return 0;
}

void cgroup_resolver_close(struct cgroup_resolver *r)
{
	if (r->root_fd >= 0)
		close(r->root_fd);
	r->root_fd = -1;
}

/* The path an open cgroup directory has, relative to the root: 0, 1 when
 * readlink gave nothing (no /proc), or a negative errno. */
static int path_of_fd(const struct cgroup_resolver *r, int fd, char *buf, size_t len)
{
	char proc[64], full[PATH_MAX];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, full, sizeof(full) - 1);
	close(fd);
	if (n >= (ssize_t)sizeof(full) - 1)
		return -ENAMETOOLONG;
	if (n <= 0)
		return 1;
	full[n] = 0;
	/* removed since: the path it had */
	static const char deleted[] = " (deleted)";
	if ((size_t)n > sizeof(deleted) - 1 && !strcmp(full + n - (sizeof(deleted) - 1), deleted))
		full[n - (sizeof(deleted) - 1)] = 0;
	const char *rel = full;
	if (!strncmp(full, r->root, r->root_len) &&
	    (full[r->root_len] == '/' || !full[r->root_len]))
		rel = full + r->root_len;
	if (strlen(rel) + 1 > len)
		return -ENAMETOOLONG;
	snprintf(buf, len, "%s", *rel ? rel : "/");
	return 0;
}

int cgroup_resolver_path(struct cgroup_resolver *r, uint64_t cgroup_id, char *buf, size_t len)
{
	if (atomic_load(&r->use_handles)) {
		struct {
			struct file_handle fh;
			unsigned char bytes[sizeof(uint64_t)];
		} h;
		h.fh.handle_bytes = r->handle_bytes;
		h.fh.handle_type = r->handle_type;
		memcpy(h.fh.f_handle, &cgroup_id, sizeof(cgroup_id));
		int fd = open_by_handle_at(r->root_fd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ESTALE || errno == ENOENT || errno == ENOTDIR)
				return -ENOENT; /* no such cgroup (any more) */
			if (errno != EPERM && errno != EOPNOTSUPP && errno != EINVAL)
				return -errno;
			atomic_store(&r->use_handles, false); /* not allowed: walk from now on */
		} else {
			int rc = path_of_fd(r, fd, buf, len);
			if (rc <= 0)
				return rc;
			/* no /proc: fall through to the walk */
		}
	}
	return cgroup_find_by_id(r->root_fd, cgroup_id, buf, len);
}
