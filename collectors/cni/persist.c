// SPDX-License-Identifier: Apache-2.0
/* The CNI collector's resume state in --state-dir: the log offsets
 * (cni-offsets, see tail.h) and the directory snapshots (cni-dirs, see
 * parse.h), so that a restart neither repeats nor misses events. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collectors/cni/internal.h"
#include "core/state.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/textstate.h"
#include "util/vec.h"

#define OFFSETS_NAME "cni-offsets"
#define DIRS_NAME "cni-dirs"
#define DIRS_FILE_MAX (16u << 20)

/* The first unacknowledged event of the entry (kind, path), or NULL. */
static const struct cni_dpend *first_pending(const struct cni_collector *c, char kind,
					     const char *path)
{
	for (size_t i = 0; i < c->npend; i++)
		if (c->pend[i].kind == kind && !strcmp(c->pend[i].path, path))
			return &c->pend[i];
	return NULL;
}

/* What cni-dirs holds: the recorded entries, except that an entry with an
 * event the sink has not acknowledged keeps its state from before that
 * event (absent for an ADD of a new entry, present for a DEL), so that a
 * restart reports the change again. */
static int save_dirs(struct cni_collector *c, uint64_t walked)
{
	cni_dpend_prune(c, walked);
	bool changed = c->ddirty || c->npend || c->pend_written;
	for (size_t i = 0; i < c->nt; i++)
		changed = changed || c->t[i]->changed;
	if (!c->state_dir || !changed)
		return 0;
	struct cni_dirstate_ent *e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	sb_reset(&c->sb2);
	textstate_header(&c->sb2, CNI_DIRSTATE_KIND, CNI_DIRSTATE_VERSION);
	for (size_t i = 0; i < c->nds; i++)
		cni_dirstate_format(&c->sb2, c->ds[i]);
	for (size_t i = 0; i < c->nt; i++) {
		struct target *t = c->t[i];
		if (t->wd < 0 || t->removed ||
		    (t->kind != T_NETNS && t->kind != T_RESULTS && t->kind != T_IPAM))
			continue;
		for (size_t j = 0; j < t->nsnap; j++) {
			struct snap_ent *s = &t->snap[j];
			memset(e, 0, sizeof(*e));
			e->kind = cni_ds_kind(t->kind);
			e->ino = s->ino;
			e->mtime_ns = s->mtime_ns;
			e->size = s->size;
			if (s->m)
				e->m = *s->m;
			if (snprintf(e->path, sizeof(e->path), "%s/%s", t->path, s->name) >=
				(int)sizeof(e->path) ||
			    first_pending(c, e->kind, e->path))
				continue; /* too long, or written below as it was */
			cni_dirstate_format(&c->sb2,
					    e); /* names with a tab or newline are not kept */
		}
	}
	for (size_t i = 0; i < c->npend; i++) {
		const struct cni_dpend *p = &c->pend[i];
		if (!p->had || first_pending(c, p->kind, p->path) != p ||
		    strlen(p->path) >= sizeof(e->path))
			continue;
		memset(e, 0, sizeof(*e));
		e->kind = p->kind;
		e->ino = p->ino;
		e->mtime_ns = p->mtime_ns;
		e->size = p->size;
		if (p->m)
			e->m = *p->m;
		memcpy(e->path, p->path, strlen(p->path) + 1);
		cni_dirstate_format(&c->sb2, e);
	}
	free(e);
	int err =
	    c->sb2.err ? c->sb2.err : state_write(c->state_dir, DIRS_NAME, c->sb2.buf, c->sb2.len);
	if (!err) {
		c->ddirty = false;
		c->pend_written = c->npend > 0;
		for (size_t i = 0; i < c->nt; i++)
			c->t[i]->changed = false;
	}
	return err;
}

void cni_load_dirs(struct cni_collector *c)
{
	if (!c->state_dir)
		return;
	char *buf = malloc(DIRS_FILE_MAX);
	struct cni_dirstate_ent *e = malloc(sizeof(*e));
	ssize_t n = buf && e ? state_read(c->state_dir, DIRS_NAME, buf, DIRS_FILE_MAX) : -ENOMEM;
	if (n == -ENOENT)
		goto out;
	c->had_dirstate = true;
	long hl =
	    n < 0 ? -EINVAL
		  : textstate_body(buf, (size_t)n, CNI_DIRSTATE_KIND, CNI_DIRSTATE_VERSION, NULL);
	if (n < 0 || hl < 0) {
		atomic_fetch_add(&c->base.n.parse_errors, 1);
		collector_error(
		    &c->base, "%s/%s: %s; directory changes while stopped are not reported",
		    c->state_dir, DIRS_NAME, n < 0 ? strerror((int)-n) : "not a snapshot file");
		c->had_dirstate = false;
		goto out;
	}
	size_t bad = 0;
	for (char *p = buf + hl, *end = buf + n; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len && cni_dirstate_parse(p, len, e) == 0) {
			if (VEC_RESERVE(c->ds, c->capds, c->nds + 1))
				break;
			struct cni_dirstate_ent *copy = malloc(sizeof(*copy));
			if (!copy)
				break;
			*copy = *e;
			c->ds[c->nds++] = copy;
		} else if (len) {
			bad++;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (bad) {
		atomic_fetch_add(&c->base.n.parse_errors, bad);
		collector_error(&c->base, "%s/%s: %zu bad lines skipped", c->state_dir, DIRS_NAME,
				bad);
	}
out:
	free(buf);
	free(e);
}

/* The saved entry of a followed file: the offset up to which the sink has
 * every line (not what was read), with the fingerprint of the bytes before
 * it. A file cut under us (a truncation not read yet) keeps the last offset
 * whose fingerprint is known, or 0: earlier, never past what was acked. */
static struct tail_saved file_entry(struct cni_collector *c, struct cni_file *f)
{
	uint64_t off = f->t.commit;
	cni_acked_get(c, f->dev, f->ino, &off);
	if (!f->fp_ok || f->fp_off != off) {
		struct tail_fp fp;
		if (tail_fingerprint(f->t.fd, off, &fp) == 0) {
			f->fp = fp;
			f->fp_off = off;
			f->fp_ok = true;
		}
	}
	if (!f->fp_ok) {
		f->fp_off = 0;
		f->fp = (struct tail_fp){0, FNV1A64_BASIS, 0, FNV1A64_BASIS};
		f->fp_ok = true;
	}
	return (struct tail_saved){.dev = f->dev,
				   .ino = f->ino,
				   .off = f->fp_off,
				   .fp = f->fp,
				   .has_tail = true,
				   .id_dev = f->id_dev,
				   .id_ino = f->id_ino,
				   .path = f->path};
}

/* A save failed: counted, the collector unhealthy; retried every second and
 * reported when the error changes, else once a minute. */
static int save_failed(struct cni_collector *c, int err)
{
	atomic_fetch_add(&c->state_errors, 1);
	atomic_store(&c->base.healthy, false);
	if (err != c->last_state_err || c->last_save_ns - c->last_state_log_ns >= 60000000000ull) {
		c->last_state_log_ns = c->last_save_ns;
		if (c->closing)
			tlog(TLOG_WARN, "cni", "%s: cannot save the resume state: %s", c->state_dir,
			     strerror(-err));
		else
			collector_error(&c->base, "%s: cannot save the resume state: %s",
					c->state_dir, strerror(-err));
	}
	c->last_state_err = err;
	return err;
}

int cni_save_offsets(struct cni_collector *c)
{
	if (!c->state_dir)
		return 0;
	struct tail_state st = {0};
	int err = 0;
	pthread_mutex_lock(&c->alock);
	uint64_t walked = c->walked;
	pthread_mutex_unlock(&c->alock);
	for (size_t i = 0; i < c->saved.n && !err; i++)
		err = tail_state_add(&st, &c->saved.v[i]); /* dirs that are missing now */
	for (size_t i = 0; i < c->nf && !err; i++) {
		struct cni_file *f = c->f[i];
		if (!f->target || strchr(f->path, '\n'))
			continue;
		struct tail_saved e = file_entry(c, f);
		err = tail_state_add(&st, &e);
	}
	if (!err) {
		sb_reset(&c->sb2);
		tail_state_format(&st, &c->sb2);
		err = c->sb2.err ? c->sb2.err
				 : state_write(c->state_dir, OFFSETS_NAME, c->sb2.buf, c->sb2.len);
	}
	tail_state_free(&st);
	if (!err)
		err = save_dirs(c, walked);
	c->last_save_ns = mono_ns();
	if (err)
		return save_failed(c, err);
	if (c->last_state_err)
		tlog(TLOG_INFO, "cni", "%s: resume state saved again", c->state_dir);
	c->last_state_err = 0;
	c->dirty = false;
	pthread_mutex_lock(&c->alock);
	c->saved_walked = walked;
	pthread_mutex_unlock(&c->alock);
	atomic_store(&c->base.healthy, true);
	return 0;
}

void cni_load_offsets(struct cni_collector *c)
{
	if (!c->state_dir)
		return;
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	if (!buf)
		return;
	ssize_t n = state_read(c->state_dir, OFFSETS_NAME, buf, cap);
	if (n == -ENOENT) {
		free(buf);
		return;
	}
	if (n < 0) {
		/* unreadable: like a first start, existing files start at their end */
		c->had_state = n == -EFBIG;
		atomic_fetch_add(&c->state_errors, 1);
		collector_error(&c->base, "%s/%s: %s; log files are read from %s", c->state_dir,
				OFFSETS_NAME, strerror((int)-n),
				c->had_state ? "the start" : "their end");
		free(buf);
		return;
	}
	c->had_state = true; /* even a damaged file means this is not a first start */
	int sfd = state_open(c->state_dir, OFFSETS_NAME);
	struct stat sst;
	if (sfd >= 0 && fstat(sfd, &sst) == 0)
		c->saved_at_ns = mtime_ns(&sst);
	if (sfd >= 0)
		close(sfd);
	size_t bad = 0;
	int err = tail_state_parse(&c->saved, buf, (size_t)n, &bad);
	free(buf);
	if (err) {
		atomic_fetch_add(&c->base.n.parse_errors, 1);
		collector_error(&c->base,
				"%s/%s: not an offsets file; log files are read from the start",
				c->state_dir, OFFSETS_NAME);
		tail_state_free(&c->saved);
		return;
	}
	if (bad) {
		atomic_fetch_add(&c->base.n.parse_errors, bad);
		collector_error(&c->base, "%s/%s: %zu bad lines skipped", c->state_dir,
				OFFSETS_NAME, bad);
	}
	/* Keep only entries of the configured log directories. */
	for (size_t i = c->saved.n; i-- > 0;) {
		const char *p = c->saved.v[i].path;
		bool keep = false;
		for (size_t j = 0; j < c->nlog && !keep; j++) {
			size_t l = strlen(c->log_dirs[j]);
			keep = !strncmp(p, c->log_dirs[j], l) && p[l] == '/' &&
			       !strchr(p + l + 1, '/');
		}
		if (!keep)
			tail_state_del(&c->saved, i);
	}
}

/* ---- thread ---- */
