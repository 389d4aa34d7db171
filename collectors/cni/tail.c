// SPDX-License-Identifier: Apache-2.0
/* Line tailing and the offsets file (see tail.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collectors/cni/tail.h"
#include "util/parse.h"
#include "util/strbuf.h"
#include "util/textstate.h"
#include "util/vec.h"

int tail_read(struct tail_file *f, char *buf, size_t cap, size_t line_max, uint64_t budget,
	      const struct tail_cb *cb, void *ctx)
{
	struct stat st;
	if (cap <= line_max)
		return -EINVAL;
	if (fstat(f->fd, &st))
		return -errno;
	uint64_t size = (uint64_t)st.st_size;
	if (size < f->off || size < f->commit) {
		if (cb->truncated)
			cb->truncated(ctx, f->commit, size);
		f->off = f->commit = 0;
		f->skipping = false;
	}
	uint64_t used = 0;
	for (;;) {
		if (budget && used >= budget)
			return 1;
		ssize_t n = pread(f->fd, buf, cap, (off_t)f->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		used += (uint64_t)n;
		const char *p = buf, *end = buf + n;
		if (f->skipping) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl) {
				f->off += (uint64_t)n;
				continue;
			}
			f->off += (uint64_t)(nl - p) + 1;
			f->commit = f->off;
			f->skipping = false;
			p = nl + 1;
		}
		uint64_t base = f->off - (uint64_t)(p - buf);
		bool partial = false;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl) {
				size_t rem = (size_t)(end - p);
				if (rem > line_max) {
					if (cb->oversize)
						cb->oversize(ctx, base + (uint64_t)(p - buf));
					f->commit = base + (uint64_t)(p - buf);
					f->off = base + (uint64_t)n;
					f->skipping = true;
				} else {
					/* partial line: read again from its start */
					f->off = f->commit = base + (uint64_t)(p - buf);
					partial = true;
				}
				break;
			}
			size_t len = (size_t)(nl - p);
			uint64_t at = base + (uint64_t)(p - buf);
			if (len > line_max) {
				if (cb->oversize)
					cb->oversize(ctx, at);
			} else if (cb->line && cb->line(ctx, p, len, at)) {
				f->off = f->commit = at;
				return 2;
			}
			p = nl + 1;
			f->off = f->commit = base + (uint64_t)(p - buf);
		}
		/* A short read that ends in a partial line: nothing more for now. */
		if (partial && (size_t)n < cap)
			return 0;
	}
}

int64_t tail_end_offset(int fd, uint64_t size, char *buf, size_t cap, size_t line_max,
			bool *skipping)
{
	*skipping = false;
	if (size == 0)
		return 0;
	size_t want = line_max + 1 < cap ? line_max + 1 : cap;
	uint64_t start = size > want ? size - want : 0;
	size_t len = (size_t)(size - start);
	ssize_t n;
	do
		n = pread(fd, buf, len, (off_t)start);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (ssize_t i = n; i > 0; i--)
		if (buf[i - 1] == '\n')
			return (int64_t)(start + (uint64_t)i);
	if (start == 0)
		return 0; /* the whole file is one partial line */
	*skipping = true;
	return (int64_t)size;
}

int tail_fingerprint(int fd, uint64_t limit, uint32_t *fp_len, uint64_t *fp)
{
	char b[TAIL_FP_MAX];
	size_t want = limit < TAIL_FP_MAX ? (size_t)limit : TAIL_FP_MAX;
	ssize_t n;
	do
		n = pread(fd, b, want, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	uint64_t h = 0xcbf29ce484222325ull;
	for (ssize_t i = 0; i < n; i++) {
		h ^= (unsigned char)b[i];
		h *= 0x100000001b3ull;
	}
	*fp_len = (uint32_t)n;
	*fp = h;
	return 0;
}

#define STATE_KIND "cni-offsets"
#define STATE_VERSION 1

int tail_state_add(struct tail_state *st, const struct tail_saved *e)
{
	if (!e->path || !*e->path || strchr(e->path, '\n'))
		return -EINVAL;
	if (VEC_RESERVE(st->v, st->cap, st->n + 1))
		return -ENOMEM;
	char *p = strdup(e->path);
	if (!p)
		return -ENOMEM;
	st->v[st->n] = *e;
	st->v[st->n].path = p;
	st->n++;
	return 0;
}

void tail_state_del(struct tail_state *st, size_t i)
{
	if (i >= st->n)
		return;
	free(st->v[i].path);
	st->v[i] = st->v[--st->n];
}

long tail_state_find(const struct tail_state *st, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].dev == dev && st->v[i].ino == ino)
			return (long)i;
	return -1;
}

int tail_state_parse(struct tail_state *st, const char *buf, size_t len, size_t *bad)
{
	*bad = 0;
	long hl = textstate_body(buf, len, STATE_KIND, STATE_VERSION, NULL);
	if (hl < 0)
		return (int)hl;
	const char *p = buf + hl, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		struct tail_saved e = {0};
		uint64_t fl;
		const char *q = p;
		char path[4096];
		if (parse_u64_field(&q, le, 10, &e.dev) && parse_u64_field(&q, le, 10, &e.ino) &&
		    parse_u64_field(&q, le, 10, &e.off) && parse_u64_field(&q, le, 10, &fl) &&
		    fl <= TAIL_FP_MAX && parse_u64_field(&q, le, 16, &e.fp) && q < le &&
		    *q == '/' && (size_t)(le - q) < sizeof(path) &&
		    !memchr(q, '\0', (size_t)(le - q)) && tail_state_find(st, e.dev, e.ino) < 0) {
			memcpy(path, q, (size_t)(le - q));
			path[le - q] = '\0';
			e.fp_len = (uint32_t)fl;
			e.path = path;
			int err = tail_state_add(st, &e);
			if (err == -ENOMEM)
				return err;
			if (err)
				(*bad)++;
		} else {
			(*bad)++;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

void tail_state_format(const struct tail_state *st, struct strbuf *sb)
{
	textstate_header(sb, STATE_KIND, STATE_VERSION);
	for (size_t i = 0; i < st->n; i++) {
		const struct tail_saved *e = &st->v[i];
		sb_printf(sb, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu32 " %016" PRIx64 " %s\n",
			  e->dev, e->ino, e->off, e->fp_len, e->fp, e->path);
	}
}

void tail_state_free(struct tail_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		free(st->v[i].path);
	free(st->v);
	memset(st, 0, sizeof(*st));
}
