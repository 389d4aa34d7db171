// SPDX-License-Identifier: Apache-2.0
/* Directory kinds of the CNI collector: the netns directory, libcni's result
 * cache and host-local IPAM reservations. Each keeps a snapshot of its entries,
 * which gives DEL events their metadata and lets a rescan emit exactly what
 * changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collectors/cni/cni.h"
#include "collectors/cni/internal.h"
#include "util/vec.h"

#define IPAM_FILE_MAX 4096

/* ---- snapshots ---- */

struct snap_ent *cni_snap_find(struct target *t, const char *name)
{
	for (size_t i = 0; i < t->nsnap; i++)
		if (!strcmp(t->snap[i].name, name))
			return &t->snap[i];
	return NULL;
}

static void snap_ent_free(struct snap_ent *e)
{
	free(e->name);
	free(e->m);
}

void cni_snap_del(struct target *t, const char *name)
{
	struct snap_ent *e = cni_snap_find(t, name);
	if (!e)
		return;
	snap_ent_free(e);
	*e = t->snap[--t->nsnap];
	t->changed = true;
}

void cni_snap_clear(struct target *t)
{
	for (size_t i = 0; i < t->nsnap; i++)
		snap_ent_free(&t->snap[i]);
	t->changed = t->changed || t->nsnap > 0;
	t->nsnap = 0;
}

/* Records name with its stat and (copied) meta. */
void cni_snap_set(struct cni_collector *c, struct target *t, const char *name,
		  const struct stat *st, const struct cni_meta *m)
{
	struct snap_ent *e = cni_snap_find(t, name);
	if (!e) {
		if (VEC_RESERVE(t->snap, t->capsnap, t->nsnap + 1))
			goto nomem;
		e = &t->snap[t->nsnap];
		memset(e, 0, sizeof(*e));
		e->name = strdup(name);
		if (!e->name)
			goto nomem;
		t->nsnap++;
	}
	e->ino = st ? (uint64_t)st->st_ino : 0;
	e->mtime_ns = st ? mtime_ns(st) : 0;
	e->size = st ? (uint64_t)st->st_size : 0;
	e->seen = true;
	t->changed = true;
	if (m) {
		if (!e->m && !(e->m = malloc(sizeof(*e->m))))
			goto nomem;
		*e->m = *m;
	}
	return;
nomem:
	atomic_fetch_add(&c->base.n.errors, 1);
}

/* True when name is already recorded with this very file (same inode, mtime
 * and size): a directory scan saw it before its IN_CLOSE_WRITE arrived. */
bool cni_snap_same(struct target *t, const char *name, const struct stat *st)
{
	struct snap_ent *e = cni_snap_find(t, name);
	return e && st && e->ino == (uint64_t)st->st_ino && e->mtime_ns == mtime_ns(st) &&
	       e->size == (uint64_t)st->st_size;
}

/* ---- result cache ---- */

/* scanned: found by a directory scan rather than an IN_CLOSE_WRITE, so the
 * file may still be being written: an empty file or one that is not JSON yet
 * is left for the IN_CLOSE_WRITE that will follow. */
void cni_result_add(struct cni_collector *c, struct target *t, const char *name, bool scanned)
{
	if (cni_result_name_skip(name))
		return;
	char *path = cni_join(t->path, name);
	if (!path)
		return;
	struct stat st;
	int err = cni_read_file(c, path, c->max_event, &st);
	struct cni_meta m = {0};
	if (!err && cni_snap_same(t, name, &st)) {
		/* already reported */
	} else if (!err && scanned &&
		   (c->sb.len == 0 || cni_result_parse(c->sb.buf, c->sb.len, &m))) {
		/* still being written */
	} else if (err == -ENOENT) {
		atomic_fetch_add(&c->vanished, 1); /* renamed or removed before we read it */
	} else if (err == -EFBIG) {
		atomic_fetch_add(&c->base.n.oversize, 1);
		collector_error(&c->base, "%s: larger than %zu bytes, skipped", path, c->max_event);
		cni_result_name_parse(name, &m);
		cni_snap_set(c, t, name, &st, &m);
	} else if (err) {
		atomic_fetch_add(&c->base.n.errors, 1);
		collector_error(&c->base, "%s: %s", path, strerror(-err));
	} else {
		enum tapio_fmt fmt = FMT_JSON;
		if (cni_result_parse(c->sb.buf, c->sb.len, &m)) {
			fmt = FMT_TEXT;
			atomic_fetch_add(&c->base.n.parse_errors, 1);
			collector_error(&c->base, "%s: not a JSON object, emitted as text", path);
		}
		struct cni_meta nm = {0};
		if (cni_result_name_parse(name, &nm) == 0) {
			if (!m.network[0])
				strcpy(m.network, nm.network);
			if (!m.container_id[0])
				strcpy(m.container_id, nm.container_id);
			if (!m.ifname[0])
				strcpy(m.ifname, nm.ifname);
		}
		if (cni_emit_dir(c, 'r', path, cni_snap_find(t, name), &st, TYPE_CNI_RESULT, fmt,
				 &m, "ADD", NULL, c->sb.buf, c->sb.len) == 0)
			cni_snap_set(c, t, name, &st, &m);
	}
	free(path);
}

void cni_result_del(struct cni_collector *c, struct target *t, const char *name)
{
	if (cni_result_name_skip(name))
		return;
	char *path = cni_join(t->path, name);
	if (!path)
		return;
	struct cni_meta m = {0};
	struct snap_ent *e = cni_snap_find(t, name);
	if (e && e->m)
		m = *e->m;
	struct cni_meta nm = {0};
	if (cni_result_name_parse(name, &nm) == 0) {
		strcpy(m.network, nm.network);
		strcpy(m.container_id, nm.container_id);
		strcpy(m.ifname, nm.ifname);
	}
	if (cni_emit_dir_name_path(c, 'r', path, e, NULL, TYPE_CNI_RESULT, &m, "DEL", NULL, name) ==
	    0)
		cni_snap_del(t, name);
	free(path);
}

/* ---- host-local IPAM ---- */

void cni_ipam_add(struct cni_collector *c, struct target *t, const char *name, bool scanned)
{
	if (!cni_ipam_name_ok(name))
		return;
	char *path = cni_join(t->path, name);
	if (!path)
		return;
	struct stat st;
	int err = cni_read_file(c, path, IPAM_FILE_MAX, &st);
	struct cni_meta m = {0};
	snprintf(m.network, sizeof(m.network), "%s", t->net);
	if (!err && (cni_snap_same(t, name, &st) || (scanned && c->sb.len == 0))) {
		/* already reported, or created and not written yet */
	} else if (err == -ENOENT) {
		atomic_fetch_add(&c->vanished, 1);
	} else if (err) {
		atomic_fetch_add(err == -EFBIG ? &c->base.n.oversize : &c->base.n.errors, 1);
		collector_error(&c->base, "%s: %s", path,
				err == -EFBIG ? "too large for a reservation, skipped"
					      : strerror(-err));
	} else {
		if (cni_ipam_parse(c->sb.buf, c->sb.len, &m)) {
			atomic_fetch_add(&c->base.n.parse_errors, 1);
			collector_error(&c->base, "%s: no container ID in the reservation", path);
		}
		if (cni_emit_dir(c, 'i', path, cni_snap_find(t, name), &st, TYPE_CNI_IPAM, FMT_TEXT,
				 &m, "ADD", name, c->sb.buf, c->sb.len) == 0)
			cni_snap_set(c, t, name, &st, &m);
	}
	free(path);
}

void cni_ipam_del(struct cni_collector *c, struct target *t, const char *name)
{
	if (!cni_ipam_name_ok(name))
		return;
	char *path = cni_join(t->path, name);
	if (!path)
		return;
	struct cni_meta m = {0};
	struct snap_ent *e = cni_snap_find(t, name);
	if (e && e->m)
		m = *e->m;
	snprintf(m.network, sizeof(m.network), "%s", t->net);
	if (cni_emit_dir_name_path(c, 'i', path, e, NULL, TYPE_CNI_IPAM, &m, "DEL", name, name) ==
	    0)
		cni_snap_del(t, name);
	free(path);
}

/* ---- netns ---- */

/* `ip netns add` creates the file, then mounts the namespace on it, which
 * changes what stat sees (and so the event's id). A file that is not a mount
 * yet (on the directory's device) is given a few milliseconds to become one,
 * so that the id is the one a restart would see. */
#define NETNS_MOUNT_TRIES 20
#define NETNS_MOUNT_WAIT_US 500

static const struct stat *netns_settle(struct target *t, const char *path, const struct stat *st,
				       struct stat *buf)
{
	if (!st)
		return NULL;
	*buf = *st;
	for (int i = 0; i < NETNS_MOUNT_TRIES && (uint64_t)buf->st_dev == t->dev &&
			S_ISREG(buf->st_mode) && buf->st_size == 0;
	     i++) {
		usleep(NETNS_MOUNT_WAIT_US);
		if (lstat(path, buf))
			return st;
	}
	return buf;
}

void cni_netns_event(struct cni_collector *c, struct target *t, const char *name, bool add,
		     const struct stat *st)
{
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return;
	char *path = cni_join(t->path, name);
	if (!path)
		return;
	struct stat mst;
	if (add)
		st = netns_settle(t, path, st, &mst);
	struct cni_meta m = {0};
	snprintf(m.netns, sizeof(m.netns), "%s", name);
	struct snap_ent *old = cni_snap_find(t, name);
	if (cni_emit_dir_name_path(c, 'n', path, old, add ? st : NULL, TYPE_CNI_NETNS, &m,
				   add ? "ADD" : "DEL", NULL, name) != 0) {
		/* refused: recorded as it was, reported again by a rescan */
	} else if (add) {
		cni_snap_set(c, t, name, st, NULL);
	} else {
		cni_snap_del(t, name);
	}
	free(path);
}

/* ---- the first scan ---- */

void cni_dir_record(struct cni_collector *c, struct target *t, const char *name,
		    const struct stat *st)
{
	struct cni_meta m = {0};
	struct stat fst;
	char *p;
	switch (t->kind) {
	case T_RESULTS:
		if (cni_result_name_skip(name))
			return;
		p = cni_join(t->path, name);
		if (p && cni_read_file(c, p, c->max_event, &fst) == 0)
			cni_result_parse(c->sb.buf, c->sb.len, &m);
		cni_result_name_parse(name, &m);
		free(p);
		cni_snap_set(c, t, name, st, &m);
		return;
	case T_IPAM:
		if (!cni_ipam_name_ok(name))
			return;
		p = cni_join(t->path, name);
		if (p && cni_read_file(c, p, IPAM_FILE_MAX, &fst) == 0)
			cni_ipam_parse(c->sb.buf, c->sb.len, &m);
		free(p);
		cni_snap_set(c, t, name, st, &m);
		return;
	case T_NETNS:
		cni_snap_set(c, t, name, st, NULL);
		return;
	case T_LOG:
	case T_NETWORKS:
		return;
	}
}
