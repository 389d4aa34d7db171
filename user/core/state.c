// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/state.h"
#include "util/fileio.h"
#include "util/clock.h"
#include "util/strbuf.h"

/* Creates the missing parents of dir (0700 each). */
static int mkdir_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0700) && errno != EEXIST ? -errno : 0;
		*p = '/';
		if (rc)
			return rc;
	}
	return 0;
}

int state_dir_open(const char *dir, char *why, size_t whylen)
{
	char path[PATH_MAX];
	size_t n = dir ? strlen(dir) : 0;
	if (why && whylen)
		why[0] = '\0';
	if (n == 0 || n >= sizeof(path)) {
		err_printf(why, whylen, "not a usable path");
		return -EINVAL;
	}
	memcpy(path, dir, n + 1);
	int rc = mkdir_parents(path);
	if (rc) {
		err_printf(why, whylen, "cannot create its parents: %s", strerror(-rc));
		return rc;
	}
	if (mkdir(path, 0700) && errno != EEXIST) {
		rc = -errno;
		err_printf(why, whylen, "cannot create it: %s", strerror(-rc));
		return rc;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		err_printf(why, whylen, "%s",
			   rc == -ELOOP || rc == -ENOTDIR ? "not a directory (a symlink is refused)"
							  : strerror(-rc));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st)) {
		rc = -errno;
		close(fd);
		err_printf(why, whylen, "%s", strerror(-rc));
		return rc;
	}
	if (st.st_uid != geteuid()) {
		close(fd);
		err_printf(why, whylen, "owned by uid %u, not by this agent's uid %u",
			   (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 022) {
		close(fd);
		err_printf(why, whylen, "writable by group or others (mode %04o); chmod 700 it",
			   (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return fd;
}

int state_mkdir(const char *dir)
{
	int fd = state_dir_open(dir, NULL, 0);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int state_write(const char *dir, const char *name, const void *buf, size_t len)
{
	if (!dir || !*dir || !name || !*name || strchr(name, '/'))
		return -EINVAL;
	char tmp[NAME_MAX + 1];
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int dfd = state_dir_open(dir, NULL, 0);
	if (dfd < 0)
		return dfd;
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(dfd, tmp, flags, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* Left by a crash, or planted: remove the entry itself (never what a
		 * symlink points at) and create it anew. */
		if (unlinkat(dfd, tmp, 0) == 0 || errno == ENOENT)
			fd = openat(dfd, tmp, flags, 0600);
		else
			errno = EEXIST;
	}
	if (fd < 0) {
		int err = -errno;
		close(dfd);
		return err;
	}
	int err = fd_write_all(fd, buf, len);
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && renameat(dfd, tmp, dfd, name))
		err = -errno;
	if (err)
		unlinkat(dfd, tmp, 0);
	else
		fsync(dfd);
	close(dfd);
	return err;
}

int state_open(const char *dir, const char *name)
{
	if (!dir || !*dir || !name || !*name || strchr(name, '/'))
		return -EINVAL;
	int dfd = state_dir_open(dir, NULL, 0);
	if (dfd < 0)
		return dfd;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int err = fd < 0 ? -errno : 0;
	close(dfd);
	if (fd < 0)
		return err;
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL; /* a FIFO, a device: not a state file */
	}
	return fd;
}

ssize_t state_read(const char *dir, const char *name, char *buf, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	int fd = state_open(dir, name);
	if (fd < 0)
		return fd;
	size_t len = 0;
	for (;;) {
		if (len == cap - 1) {
			char extra;
			ssize_t r = read(fd, &extra, 1);
			close(fd);
			buf[len] = '\0';
			return r > 0 ? -EFBIG : (ssize_t)len;
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int err = -errno;
			close(fd);
			return err;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

void cursor_init(struct cursor *c, const char *dir, const char *name, unsigned interval_ms)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	snprintf(c->dir, sizeof(c->dir), "%s", dir ? dir : "");
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->interval_ms = interval_ms;
}

void cursor_destroy(struct cursor *c)
{
	pthread_mutex_destroy(&c->lock);
}

int cursor_load(struct cursor *c)
{
	pthread_mutex_lock(&c->lock);
	c->val[0] = '\0';
	int ret = 0;
	if (c->dir[0]) {
		ssize_t n = state_read(c->dir, c->name, c->val, sizeof(c->val));
		if (n == -ENOENT)
			ret = 0;
		else if (n < 0)
			ret = (int)n;
		else
			ret = (int)n;
		if (ret < 0)
			c->val[0] = '\0';
		/* A cursor file ends with a newline for people who cat it. */
		else if (ret > 0 && c->val[ret - 1] == '\n')
			c->val[--ret] = '\0';
	}
	c->dirty = false;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cursor_load_checked(struct cursor *c)
{
	bool legacy;
	return cursor_load_legacy(c, NULL, &legacy);
}

int cursor_load_legacy(struct cursor *c, bool (*whole)(const char *val), bool *legacy)
{
	pthread_mutex_lock(&c->lock);
	c->val[0] = '\0';
	c->dirty = false;
	*legacy = false;
	int ret = 0;
	if (c->dir[0]) {
		ssize_t n = state_read(c->dir, c->name, c->val, sizeof(c->val));
		if (n == -ENOENT)
			ret = 0;
		else if (n < 0)
			ret = (int)n;
		else if (n > 0 && c->val[n - 1] == '\n')
			c->val[ret = (int)n - 1] = '\0'; /* every cursor_flush writes "value\n" */
		else if (n > 0 && whole && strlen(c->val) == (size_t)n && whole(c->val)) {
			*legacy = true;
			ret = (int)n;
		} else
			ret = -EBADMSG;
		if (ret <= 0)
			c->val[0] = '\0';
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

bool cursor_decimal_whole(const char *val)
{
	size_t n = strlen(val);
	if (n == 0 || n > 19 || (val[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++)
		if (val[i] < '0' || val[i] > '9')
			return false;
	return true;
}

static int cursor_write_locked(struct cursor *c)
{
	if (!c->dir[0]) {
		c->dirty = false;
		return 0;
	}
	char buf[CURSOR_MAX + 1];
	size_t n = strlen(c->val);
	memcpy(buf, c->val, n);
	buf[n++] = '\n';
	int err = state_write(c->dir, c->name, buf, n);
	c->last_err = err;
	c->last_write_ns = mono_ns();
	if (!err)
		c->dirty = false;
	return err;
}

int cursor_update(struct cursor *c, const char *val)
{
	size_t n = strlen(val);
	if (n >= sizeof(c->val))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&c->lock);
	int err = 0;
	if (strcmp(c->val, val)) {
		memcpy(c->val, val, n + 1);
		c->dirty = true;
	}
	if (c->dirty && mono_ns() - c->last_write_ns >= (uint64_t)c->interval_ms * 1000000ull)
		err = cursor_write_locked(c);
	pthread_mutex_unlock(&c->lock);
	return err;
}

int cursor_flush(struct cursor *c)
{
	pthread_mutex_lock(&c->lock);
	int err = c->dirty ? cursor_write_locked(c) : 0;
	pthread_mutex_unlock(&c->lock);
	return err;
}

void cursor_get(struct cursor *c, char *buf, size_t size)
{
	pthread_mutex_lock(&c->lock);
	snprintf(buf, size, "%s", c->val);
	pthread_mutex_unlock(&c->lock);
}
