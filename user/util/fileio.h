/* SPDX-License-Identifier: Apache-2.0 */
/* Whole writes and whole-file reads, once for every module. */
#ifndef TAPIO_UTIL_FILEIO_H
#define TAPIO_UTIL_FILEIO_H

#include <stdbool.h>
#include <stddef.h>

struct stat;
struct strbuf;

/* Writes all len bytes, retrying on EINTR and short writes. Returns 0 or a
 * negative errno. */
int fd_write_all(int fd, const void *buf, size_t len);

/* Flags for file_read_all(). */
enum {
	FILE_NOFOLLOW = 1 << 0, /* refuse a symlink as the last component (-ELOOP) */
	FILE_REGULAR = 1 << 1,	/* refuse anything but a regular file (-EINVAL) */
};

/* Replaces the contents of out with the whole file at path relative to dirfd
 * (AT_FDCWD for a plain path), at most max bytes; out->buf stays
 * NUL-terminated. st (optional) gets the file's fstat. Opens with O_CLOEXEC
 * and O_NONBLOCK (a FIFO never blocks the caller). Returns 0, -EFBIG when the
 * file is larger than max, or a negative errno (-ENOENT when it is gone). */
int file_read_all(int dirfd, const char *path, size_t max, unsigned flags, struct strbuf *out,
		  struct stat *st);

#endif
