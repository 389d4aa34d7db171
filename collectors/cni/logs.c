// SPDX-License-Identifier: Apache-2.0
/* Log files of the CNI collector: tracked by (dev, inode) with an open fd, so
 * a renamed file is finished through its fd and a new file at the old name
 * starts at 0. Every complete line is a cni.log event. */
#include <dirent.h>
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

static struct cni_file *open_rotated_copy(struct cni_collector *c, struct target *t,
					  const char *name, const struct tail_saved *s,
					  uint64_t live_ino, bool since_save, uint64_t start);

static void on_truncated(void *ctx, uint64_t old_off, uint64_t size)
{
	struct cni_collector *c = ctx;
	atomic_fetch_add(&c->truncations, 1);
	tlog(TLOG_INFO, "cni",
	     "%s: truncated from %" PRIu64 " to %" PRIu64 " bytes, reading from the start",
	     c->cur->path, old_off, size);
	struct cni_file *f = c->cur;
	f->fp_ok = false;
	cni_acked_set(c, f->dev, f->ino, 0);
	/* A copytruncate while running: the lines written since the last read
	 * are only in the copy, which holds the very bytes read so far (those up
	 * to rd_off are checked). */
	if (f->target && f->rd_ok && f->rd_off > 0 && f->rd_off <= old_off) {
		struct tail_saved s = {.dev = f->dev,
				       .ino = f->ino,
				       .off = f->rd_off,
				       .fp = f->rd_fp,
				       .has_tail = true,
				       .id_dev = f->id_dev,
				       .id_ino = f->id_ino};
		struct cni_file *copy =
		    open_rotated_copy(c, f->target, f->name, &s, f->ino, false, old_off);
		if (copy) {
			atomic_fetch_add(&c->rotated_resumed, 1);
			tlog(TLOG_INFO, "cni", "%s: copytruncate; reading %s from offset %" PRIu64,
			     f->path, copy->path, old_off);
		}
	}
	f->rd_ok = false;
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
	if (rc >= 0 && (!f->rd_ok || f->rd_off != f->t.commit)) {
		/* truncated meanwhile: the last one taken still holds */
		struct tail_fp fp;
		if (tail_fingerprint(f->t.fd, f->t.commit, &fp) == 0) {
			f->rd_fp = fp;
			f->rd_off = f->t.commit;
			f->rd_ok = true;
		}
	}
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

/* Is the open file fd a copy of saved entry s made since the save? */
static bool copy_candidate(struct cni_collector *c, int fd, struct stat *st,
			   const struct tail_saved *s, uint64_t live_ino, bool since_save)
{
	if (fstat(fd, st) || !S_ISREG(st->st_mode) || (uint64_t)st->st_ino == live_ino)
		return false;
	int64_t ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	uint64_t dev = (uint64_t)st->st_dev, ino = (uint64_t)st->st_ino;
	return (!since_save || ctime >= c->saved_at_ns) && !file_by_ino(c, dev, ino) &&
	       tail_state_find(&c->saved, dev, ino) < 0 &&
	       tail_match(fd, (uint64_t)st->st_size, s) == TAIL_SAME;
}

/* The rotated sibling of the file `name` in t (`name.<digits>`,
 * `name-<8+ digits>`, `name.old`) that holds the bytes of saved entry s up to
 * s->off (since_save: and was made since the offsets were saved, its ctime
 * not older) and is at least `start` bytes long: a copytruncate while
 * stopped, or while running. Opened at `start` with the original's event
 * ids, to be read to its end by the thread loop. Returns it, or NULL when
 * there is none. */
static struct cni_file *open_rotated_copy(struct cni_collector *c, struct target *t,
					  const char *name, const struct tail_saved *s,
					  uint64_t live_ino, bool since_save, uint64_t start)
{
	int dfd = open(t->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return NULL;
	}
	size_t nl = strlen(name);
	struct cni_file *f = NULL;
	struct dirent *de;
	while (!f && (de = readdir(d))) {
		const char *n = de->d_name;
		if (strncmp(n, name, nl) || (n[nl] != '.' && n[nl] != '-') ||
		    !cni_log_name_rotated(n) || cni_log_name_skip(n))
			continue;
		int fd = openat(dirfd(d), n, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
		struct stat st;
		if (fd < 0)
			continue;
		if (!copy_candidate(c, fd, &st, s, live_ino, since_save) ||
		    (uint64_t)st.st_size < start || VEC_RESERVE(c->f, c->capf, c->nf + 1) ||
		    !(f = calloc(1, sizeof(*f)))) {
			close(fd);
			continue;
		}
		if (file_set_name(f, t, n)) {
			free(f);
			f = NULL;
			close(fd);
			break;
		}
		f->t.fd = fd;
		f->dev = (uint64_t)st.st_dev;
		f->ino = (uint64_t)st.st_ino;
		f->t.off = f->t.commit = start;
		f->id_dev = s->id_dev;
		f->id_ino = s->id_ino;
		f->seen = true;
		f->more = true; /* read by the thread loop */
		c->f[c->nf++] = f;
		cni_acked_set(c, f->dev, f->ino, f->t.commit);
	}
	closedir(d);
	return f;
}

/* Where a newly seen file starts: its saved offset when the saved (dev, inode)
 * and fingerprint match; the end of its last complete line at a first start;
 * otherwise 0. A saved file with a rotated copy made since the save (a
 * copytruncate while stopped) is read from 0, the copy from the saved offset
 * to its end. A saved file that no longer matches (truncated, rewritten or
 * replaced) and has no copy is read from 0, and when it cannot be told, that
 * is said and counted (resume_ambiguous). */
static void file_start_offset(struct cni_collector *c, struct target *t, struct cni_file *f,
			      uint64_t size, enum scan_mode mode)
{
	f->id_dev = f->dev;
	f->id_ino = f->ino;
	long i = tail_state_find(&c->saved, f->dev, f->ino);
	if (i >= 0) {
		struct tail_saved s = c->saved.v[i];
		c->saved.v[i].path = NULL;
		tail_state_del(&c->saved, (size_t)i);
		f->id_dev = s.id_dev;
		f->id_ino = s.id_ino;
		int m = tail_match(f->t.fd, size, &s);
		/* The live file still holds the bytes before the saved offset: not
		 * truncated (a copy of it is a backup, not a rotation). At offset 0
		 * nothing can be checked: a copy made since the save is the rotation. */
		struct cni_file *copy =
		    m == TAIL_SAME && s.off > 0
			? NULL
			: open_rotated_copy(c, t, f->name, &s, f->ino, true, s.off);
		if (copy) {
			atomic_fetch_add(&c->rotated_resumed, 1);
			tlog(TLOG_INFO, "cni",
			     "%s: rotated while stopped; reading %s from offset %" PRIu64
			     " to its end, then %s from the start",
			     f->path, copy->path, s.off, f->path);
		} else if (m == TAIL_SAME) {
			f->t.off = f->t.commit = s.off;
		} else if (m == TAIL_OTHER) {
			atomic_fetch_add(&c->truncations, 1);
			tlog(TLOG_INFO, "cni",
			     "%s: not the file of the saved offset (rewritten or replaced), "
			     "reading from the start",
			     f->path);
		} else {
			/* Shorter with no rotated copy, unreadable, or a version 1
			 * offset that cannot be checked: lines after the saved offset
			 * may be gone (shorter) or be read again. */
			atomic_fetch_add(&c->resume_ambiguous, 1);
			collector_error(
			    &c->base,
			    "%s: cannot tell whether the saved offset %" PRIu64
			    " is still valid (%s); "
			    "reading from the start",
			    f->path, s.off,
			    m == TAIL_UNSURE ? "only its first 64 bytes were recorded"
			    : m < 0	     ? strerror(-m)
				    : "the file is shorter and no rotated copy holds the rest");
		}
		free(s.path);
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
	file_start_offset(c, t, f, (uint64_t)fst.st_size, mode);
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
