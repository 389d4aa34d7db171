// SPDX-License-Identifier: Apache-2.0
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/strbuf.h"

int fd_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int read_fd(int fd, size_t max, struct strbuf *out)
{
	for (;;) {
		if (sb_grow(out, 4096))
			return -ENOMEM;
		ssize_t n = read(fd, out->buf + out->len, out->cap - out->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		out->len += (size_t)n;
		out->buf[out->len] = '\0';
		if (out->len > max)
			return -EFBIG;
	}
}

int file_read_all(int dirfd, const char *path, size_t max, unsigned flags, struct strbuf *out,
		  struct stat *st)
{
	struct stat tmp;
	if (!st)
		st = &tmp;
	sb_reset(out);
	int oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (flags & FILE_NOFOLLOW ? O_NOFOLLOW : 0);
	int fd = openat(dirfd, path, oflags);
	if (fd < 0)
		return -errno;
	int err = 0;
	if (fstat(fd, st))
		err = -errno;
	else if ((flags & FILE_REGULAR) && !S_ISREG(st->st_mode))
		err = -EINVAL;
	else if (S_ISREG(st->st_mode) && (uint64_t)st->st_size > max)
		err = -EFBIG;
	else
		err = read_fd(fd, max, out);
	close(fd);
	if (!err && out->err)
		err = out->err;
	return err;
}
