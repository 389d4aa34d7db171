// SPDX-License-Identifier: Apache-2.0
/* Log files of the CNI collector: tracked by (dev, inode) with an open fd, so
 * a renamed file is finished through its fd and a new file at the old name
 * starts at 0. Every complete line is a cni.log event. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collectors/cni/cni.h"
#include "collectors/cni/internal.h"
#include "util/log.h"
#include "util/vec.h"

#define READ_BUDGET (4u << 20)

/* ---- log files ---- */

static int on_line(void *ctx, const char *line, size_t len, uint64_t off)
{
	struct cni_collector *c = ctx;
	struct cni_meta m;
	cni_line_meta(line, len, &m);
	return cni_emit_line(c, c->cur, &m, line, len, off);
}

static void on_oversize(void *ctx, uint64_t start)
{
	struct cni_collector *c = ctx;
	atomic_fetch_add(&c->base.n.oversize, 1);
	collector_report(&c->base, &c->oversize_rl,
			 "%s: skipped a line longer than %zu bytes at offset %" PRIu64,
			 c->cur->path, c->line_max, start);
}

static void on_truncated(void *ctx, uint64_t old_off, uint64_t size)
{
	struct cni_collector *c = ctx;
	atomic_fetch_add(&c->truncations, 1);
	tlog(TLOG_INFO, "cni",
	     "%s: truncated from %" PRIu64 " to %" PRIu64 " bytes, reading from the start",
	     c->cur->path, old_off, size);
	c->cur->fp_len = 0;
	cni_acked_set(c, c->cur->dev, c->cur->ino, 0);
}

static const struct tail_cb tail_cbs = {on_line, on_oversize, on_truncated};

void cni_file_read(struct cni_collector *c, struct cni_file *f)
{
	uint64_t before = f->t.commit;
	c->cur = f;
	int rc = tail_read(&f->t, c->buf, c->bufcap, c->line_max, READ_BUDGET, &tail_cbs, c);
	c->cur = NULL;
	f->more = rc == 1 || rc == 2; /* 2: a line refused, offered again after a pause */
	if (rc < 0) {
		atomic_fetch_add(&c->base.n.errors, 1);
		collector_error(&c->base, "%s: read: %s", f->path, strerror(-rc));
	}
	if (f->t.commit != before)
		c->dirty = true;
}

void cni_file_free(struct cni_file *f)
{
	if (!f)
		return;
	if (f->t.fd >= 0)
		close(f->t.fd);
	free(f->name);
	free(f->path);
	free(f);
}

static void file_remove(struct cni_collector *c, struct cni_file *f)
{
	for (size_t i = 0; i < c->nf; i++) {
		if (c->f[i] == f) {
			c->f[i] = c->f[--c->nf];
			break;
		}
	}
	cni_file_free(f);
	c->dirty = true;
}

/* Reads what is left through the fd, then forgets the file. */
void cni_file_finish(struct cni_collector *c, struct cni_file *f)
{
	do
		cni_file_read(c, f);
	while (f->more);
	file_remove(c, f);
}

struct cni_file *cni_file_by_name(struct cni_collector *c, struct target *t, const char *name)
{
	for (size_t i = 0; i < c->nf; i++)
		if (c->f[i]->target == t && c->f[i]->name && !strcmp(c->f[i]->name, name))
			return c->f[i];
	return NULL;
}

static struct cni_file *file_by_ino(struct cni_collector *c, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < c->nf; i++)
		if (c->f[i]->dev == dev && c->f[i]->ino == ino)
			return c->f[i];
	return NULL;
}

static int file_set_name(struct cni_file *f, struct target *t, const char *name)
{
	char *n = strdup(name), *p = cni_join(t->path, name);
	if (!n || !p) {
		free(n);
		free(p);
		return -ENOMEM;
	}
	free(f->name);
	free(f->path);
	f->name = n;
	f->path = p;
	f->target = t;
	f->detached_ns = 0;
	return 0;
}

/* Where a newly seen file starts: its saved offset when the saved (dev, inode)
 * and fingerprint match; the end of its last complete line at a first start;
 * otherwise 0. */
static void file_start_offset(struct cni_collector *c, struct cni_file *f, uint64_t size,
			      enum scan_mode mode)
{
	long i = tail_state_find(&c->saved, f->dev, f->ino);
	if (i >= 0) {
		struct tail_saved *s = &c->saved.v[i];
		uint32_t fl;
		uint64_t fp;
		if (s->off <= size && tail_fingerprint(f->t.fd, s->fp_len, &fl, &fp) == 0 &&
		    fl == s->fp_len && fp == s->fp) {
			f->t.off = f->t.commit = s->off;
		} else {
			tlog(TLOG_INFO, "cni",
			     "%s: not the file of the saved offset (truncated or replaced), "
			     "reading from the start",
			     f->path);
		}
		tail_state_del(&c->saved, (size_t)i);
		return;
	}
	if (mode == SCAN_INITIAL && !c->had_state) {
		bool skipping;
		int64_t off =
		    tail_end_offset(f->t.fd, size, c->buf, c->bufcap, c->line_max, &skipping);
		if (off > 0) {
			f->t.off = (uint64_t)off;
			f->t.commit = (uint64_t)off;
			f->t.skipping = skipping;
		}
	}
}

/* Opens the regular file at path as name in t and sets where reading starts.
 * Returns NULL when it is gone or on an error (counted). */
static struct cni_file *log_open(struct cni_collector *c, struct target *t, const char *name,
				 const char *path, enum scan_mode mode)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	struct stat fst;
	if (fd < 0 && errno == ELOOP) {
		cni_refuse_symlink(c, path); /* swapped in since the lstat */
		return NULL;
	}
	if (fd < 0 || fstat(fd, &fst) || !S_ISREG(fst.st_mode)) {
		if (fd >= 0)
			close(fd);
		if (errno != ENOENT) {
			atomic_fetch_add(&c->base.n.errors, 1);
			collector_error(&c->base, "%s: open: %s", path, strerror(errno));
		}
		return NULL;
	}
	struct cni_file *f = NULL;
	if (VEC_RESERVE(c->f, c->capf, c->nf + 1) || !(f = calloc(1, sizeof(*f))) ||
	    file_set_name(f, t, name)) {
		free(f);
		close(fd);
		atomic_fetch_add(&c->base.n.errors, 1);
		return NULL;
	}
	f->t.fd = fd;
	f->dev = (uint64_t)fst.st_dev;
	f->ino = (uint64_t)fst.st_ino;
	c->f[c->nf++] = f;
	file_start_offset(c, f, (uint64_t)fst.st_size, mode);
	cni_acked_set(c, f->dev, f->ino, f->t.commit);
	c->dirty = true;
	return f;
}

/* A file we do not follow by name: one renamed into this name (rotation)
 * takes the name; otherwise NULL. */
static struct cni_file *log_renamed(struct cni_collector *c, struct target *t, const char *name,
				    const struct stat *st)
{
	struct cni_file *f = file_by_ino(c, (uint64_t)st->st_dev, (uint64_t)st->st_ino);
	if (!f)
		return NULL;
	struct cni_file *other = cni_file_by_name(c, t, name);
	if (other && other != f)
		cni_file_finish(c, other);
	if (file_set_name(f, t, name))
		atomic_fetch_add(&c->base.n.errors, 1);
	atomic_fetch_add(&c->rotations, 1);
	c->dirty = true;
	return f;
}

/* Finds or opens the file name in log target t and reads what is new. */
void cni_log_touch(struct cni_collector *c, struct target *t, const char *name, enum scan_mode mode,
		   bool check_inode)
{
	if (cni_log_name_skip(name))
		return;
	struct cni_file *f = cni_file_by_name(c, t, name);
	if (f && !check_inode) {
		cni_file_read(c, f);
		return;
	}
	char *path = cni_join(t->path, name);
	if (!path) {
		atomic_fetch_add(&c->base.n.errors, 1);
		return;
	}
	struct stat st;
	int lrc = lstat(path, &st);
	if (lrc == 0 && S_ISLNK(st.st_mode))
		cni_refuse_symlink(c, path);
	if (lrc || !S_ISREG(st.st_mode)) {
		/* gone again, a symlink, or not a regular file */
		if (f)
			cni_file_finish(c, f);
		free(path);
		return;
	}
	if (f && (f->dev != (uint64_t)st.st_dev || f->ino != (uint64_t)st.st_ino)) {
		cni_file_finish(c, f); /* the name now points at another file */
		f = NULL;
	}
	if (!f)
		f = log_renamed(c, t, name, &st);
	if (!f && cni_log_name_rotated(name) &&
	    tail_state_find(&c->saved, (uint64_t)st.st_dev, (uint64_t)st.st_ino) < 0) {
		/* a rotated copy (copytruncate) of lines already read */
		free(path);
		return;
	}
	if (!f)
		f = log_open(c, t, name, path, mode);
	free(path);
	if (!f)
		return;
	f->seen = true;
	cni_file_read(c, f);
}
