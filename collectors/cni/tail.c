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
#include "util/hash.h"
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

/* FNV-1a of the len bytes at off; -ENODATA when the file ends before. */
static int hash_range(int fd, uint64_t off, uint32_t len, uint64_t *h)
{
	char b[TAIL_FP_MAX];
	if (len > sizeof(b))
		return -EINVAL;
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, b + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		got += (size_t)n;
	}
	*h = fnv1a64(b, len);
	return 0;
}

int tail_fingerprint(int fd, uint64_t off, struct tail_fp *fp)
{
	struct tail_fp r = {0};
	r.head_len = (uint32_t)(off < TAIL_FP_MAX ? off : TAIL_FP_MAX);
	r.tail_len = (uint32_t)(off < TAIL_FP_TAIL ? off : TAIL_FP_TAIL);
	int err = hash_range(fd, 0, r.head_len, &r.head);
	if (!err)
		err = hash_range(fd, off - r.tail_len, r.tail_len, &r.tail);
	if (!err)
		*fp = r;
	return err;
}

int tail_match(int fd, uint64_t size, const struct tail_saved *s)
{
	if (size < s->off)
		return TAIL_SHORTER;
	uint64_t h;
	int err = hash_range(fd, 0, s->fp.head_len, &h);
	if (err)
		return err == -ENODATA ? TAIL_SHORTER : err;
	if (h != s->fp.head)
		return TAIL_OTHER;
	if (!s->has_tail)
		return s->off <= s->fp.head_len ? TAIL_SAME : TAIL_UNSURE;
	err = hash_range(fd, s->off - s->fp.tail_len, s->fp.tail_len, &h);
	if (err)
		return err == -ENODATA ? TAIL_SHORTER : err;
	return h == s->fp.tail ? TAIL_SAME : TAIL_OTHER;
}

#define STATE_KIND "cni-offsets"
#define STATE_VERSION 2

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

/* One line of a version 1 or 2 file into *e (path not set: *q is its start). */
static bool parse_entry(const char **q, const char *le, unsigned version, struct tail_saved *e)
{
	uint64_t hl, tl = 0;
	if (!parse_u64_field(q, le, 10, &e->dev) || !parse_u64_field(q, le, 10, &e->ino) ||
	    !parse_u64_field(q, le, 10, &e->off) || !parse_u64_field(q, le, 10, &hl) ||
	    !parse_u64_field(q, le, 16, &e->fp.head))
		return false;
	if (version == 1) {
		if (hl > TAIL_FP_V1_MAX)
			return false;
		e->id_dev = e->dev;
		e->id_ino = e->ino;
	} else if (!parse_u64_field(q, le, 10, &tl) || !parse_u64_field(q, le, 16, &e->fp.tail) ||
		   !parse_u64_field(q, le, 10, &e->id_dev) ||
		   !parse_u64_field(q, le, 10, &e->id_ino) || hl > TAIL_FP_MAX ||
		   tl > TAIL_FP_TAIL || hl > e->off || tl > e->off ||
		   hl != (e->off < TAIL_FP_MAX ? e->off : TAIL_FP_MAX) ||
		   tl != (e->off < TAIL_FP_TAIL ? e->off : TAIL_FP_TAIL)) {
		return false;
	}
	e->fp.head_len = (uint32_t)hl;
	e->fp.tail_len = (uint32_t)tl;
	e->has_tail = version >= 2;
	return true;
}

int tail_state_parse(struct tail_state *st, const char *buf, size_t len, size_t *bad)
{
	*bad = 0;
	unsigned version = 0;
	long hl = textstate_body(buf, len, STATE_KIND, STATE_VERSION, &version);
	if (hl < 0)
		return (int)hl;
	const char *p = buf + hl, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		struct tail_saved e = {0};
		const char *q = p;
		char path[4096];
		if (parse_entry(&q, le, version, &e) && q < le && *q == '/' &&
		    (size_t)(le - q) < sizeof(path) && !memchr(q, '\0', (size_t)(le - q)) &&
		    tail_state_find(st, e.dev, e.ino) < 0) {
			memcpy(path, q, (size_t)(le - q));
			path[le - q] = '\0';
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
		sb_printf(sb,
			  "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu32 " %016" PRIx64 " %" PRIu32
			  " %016" PRIx64 " %" PRIu64 " %" PRIu64 " %s\n",
			  e->dev, e->ino, e->off, e->fp.head_len, e->fp.head, e->fp.tail_len,
			  e->fp.tail, e->id_dev, e->id_ino, e->path);
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
