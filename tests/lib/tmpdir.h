/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper: a fresh directory under /tmp and its removal, without a shell.
 * Header-only, plain C (no Criterion), so the TSan programs can use it too. */
#ifndef TAPIO_TEST_TMPDIR_H
#define TAPIO_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Makes /tmp/tapio-<tag>-XXXXXX into buf; returns buf, or NULL (errno set). */
static inline char *tl_mkdtemp(char *buf, size_t size, const char *tag)
{
	if ((size_t)snprintf(buf, size, "/tmp/tapio-%s-XXXXXX", tag) >= size)
		return NULL;
	return mkdtemp(buf);
}

static inline int tl_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

/* rm -rf: removes path and everything below it, without following links.
 * 0 (also when path is gone already) or -1. */
static inline int tl_rmtree(const char *path)
{
	if (access(path, F_OK) != 0)
		return 0;
	return nftw(path, tl_rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

#endif
