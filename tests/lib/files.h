/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper: a whole file into a buffer, and a string into a file.
 * Header-only, plain C (no Criterion). */
#ifndef TAPIO_TEST_FILES_H
#define TAPIO_TEST_FILES_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The file's bytes, NUL-terminated, malloc'd (len, if given, without the
 * NUL); NULL if it cannot be read. */
static inline char *tl_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return NULL;
	do {
		if (cap - n < 4096) {
			char *nb = realloc(buf, cap + 8192);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 8192;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* Creates or truncates path and writes s: 0 or -1. */
static inline int tl_write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(s);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, len);
	if (close(fd) != 0 || n != (ssize_t)len)
		return -1;
	return 0;
}

#endif
