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

int state_mkdir(const char *dir)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof(path))
		return -EINVAL;
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int state_write(const char *dir, const char *name, const void *buf, size_t len)
{
	if (!dir || !*dir || !name || !*name || strchr(name, '/'))
		return -EINVAL;
	char tmp[PATH_MAX], dst[PATH_MAX];
	if (snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		int err = state_mkdir(dir);
		if (err)
			return err;
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -errno;
	int err = fd_write_all(fd, buf, len);
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, dst))
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

ssize_t state_read(const char *dir, const char *name, char *buf, size_t cap)
{
	if (!dir || !*dir || !name || strchr(name, '/') || cap == 0)
		return -EINVAL;
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
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
	pthread_mutex_lock(&c->lock);
	c->val[0] = '\0';
	c->dirty = false;
	int ret = 0;
	if (c->dir[0]) {
		ssize_t n = state_read(c->dir, c->name, c->val, sizeof(c->val));
		if (n == -ENOENT)
			ret = 0;
		else if (n < 0)
			ret = (int)n;
		else if (n == 0 || c->val[n - 1] != '\n')
			ret = -EBADMSG; /* every cursor_flush writes "value\n" */
		else
			c->val[ret = (int)n - 1] = '\0';
		if (ret <= 0)
			c->val[0] = '\0';
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
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
