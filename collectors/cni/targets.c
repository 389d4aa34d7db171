// SPDX-License-Identifier: Apache-2.0
/* Watch targets of the CNI collector. Every followed directory is a target. A
 * present target has a watch on the directory itself; a missing one has a
 * watch on its nearest existing ancestor and is resolved again when something
 * appears there (and once a second, as a safety net). A scan lists a
 * target's directory; inotify events are dispatched to the target they are
 * for. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collectors/cni/cni.h"
#include "collectors/cni/internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/vec.h"

struct target *cni_target_add(struct cni_collector *c, enum tkind kind, const char *path,
			      const char *net)
{
	if (VEC_RESERVE(c->t, c->capt, c->nt + 1))
		return NULL;
	struct target *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->kind = kind;
	t->path = strdup(path);
	t->net = net ? strdup(net) : NULL;
	t->wd = t->anc_wd = -1;
	if (!t->path || (net && !t->net)) {
		free(t->path);
		free(t->net);
		free(t);
		return NULL;
	}
	c->t[c->nt++] = t;
	return t;
}

void cni_target_free(struct target *t)
{
	if (!t)
		return;
	cni_snap_clear(t);
	free(t->snap);
	free(t->path);
	free(t->net);
	free(t);
}

static uint32_t dir_mask(enum tkind k)
{
	uint32_t m = IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD | IN_MOVED_FROM |
		     IN_MOVED_TO | IN_DELETE;
	switch (k) {
	case T_LOG:
		return m | IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE;
	case T_NETNS:
	case T_NETWORKS:
		return m | IN_CREATE;
	case T_RESULTS:
	case T_IPAM:
		return m | IN_CLOSE_WRITE;
	}
	return m;
}

/* Removes a watch that no target uses any more. */
void cni_release_wd(struct cni_collector *c, int wd)
{
	if (wd < 0)
		return;
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i]->wd == wd || c->t[i]->anc_wd == wd)
			return;
	inotify_rm_watch(c->ifd, wd);
}

char cni_ds_kind(enum tkind k)
{
	return k == T_NETNS ? 'n' : k == T_RESULTS ? 'r' : 'i';
}

/* Whether path is dir/<name> for a single name. */
static const char *in_dir(const char *path, const char *dir)
{
	size_t l = strlen(dir);
	if (strncmp(path, dir, l) || path[l] != '/' || !path[l + 1] || strchr(path + l + 1, '/'))
		return NULL;
	return path + l + 1;
}

static void ds_del(struct cni_collector *c, size_t i)
{
	free(c->ds[i]);
	c->ds[i] = c->ds[--c->nds];
	c->ddirty = true;
}

/* Moves the saved entries of t's directory into its snapshot. */
static void take_saved(struct cni_collector *c, struct target *t)
{
	for (size_t i = c->nds; i-- > 0;) {
		struct cni_dirstate_ent *e = c->ds[i];
		const char *name = in_dir(e->path, t->path);
		if (!name || e->kind != cni_ds_kind(t->kind))
			continue;
		struct stat st = {0};
		st.st_ino = (ino_t)e->ino;
		st.st_mtim.tv_sec = (time_t)(e->mtime_ns / 1000000000);
		st.st_mtim.tv_nsec = (long)(e->mtime_ns % 1000000000);
		st.st_size = (off_t)e->size;
		cni_snap_set(c, t, name, &st, t->kind == T_NETNS ? NULL : &e->m);
		ds_del(c, i);
	}
}

/* The directory of t went away (deleted, renamed, or replaced). */
static void target_lost(struct cni_collector *c, struct target *t)
{
	if (t->kind == T_LOG) {
		for (size_t i = c->nf; i-- > 0;)
			if (i < c->nf && c->f[i]->target == t)
				cni_file_finish(c, c->f[i]);
	}
	cni_snap_clear(t);
	int wd = t->wd;
	t->wd = -1;
	cni_release_wd(c, wd);
	if (t->dynamic)
		t->removed = true;
	else
		tlog(TLOG_INFO, "cni", "%s: directory gone, waiting for it to come back", t->path);
}

static void target_found(struct cni_collector *c, struct target *t, int wd, enum scan_mode mode)
{
	t->last_err = 0;
	struct stat st;
	if (lstat(t->path, &st) == 0) {
		t->dev = (uint64_t)st.st_dev;
		t->ino = (uint64_t)st.st_ino;
	}
	t->wd = wd;
	int anc = t->anc_wd;
	t->anc_wd = -1;
	cni_release_wd(c, anc);
	if (t->kind == T_NETNS || t->kind == T_RESULTS || t->kind == T_IPAM) {
		take_saved(c, t);
		/* With a snapshot from the last run, report what changed since. */
		if (mode != SCAN_INITIAL || c->had_dirstate)
			mode = SCAN_RESCAN;
	}
	cni_scan(c, t, mode);
}

/* Tries to watch t's directory; when missing, watches its nearest existing
 * ancestor instead. */
void cni_resolve_mode(struct cni_collector *c, struct target *t, enum scan_mode mode)
{
	if (t->wd >= 0 || t->removed)
		return;
	for (int tries = 0; tries < 64; tries++) {
		int wd = inotify_add_watch(c->ifd, t->path, dir_mask(t->kind) | IN_DONT_FOLLOW);
		if (wd >= 0) {
			target_found(c, t, wd, mode);
			return;
		}
		int werr = errno;
		struct stat lst;
		if (werr == ENOTDIR && lstat(t->path, &lst) == 0 && S_ISLNK(lst.st_mode))
			cni_refuse_symlink(c, t->path); /* then waited for like a missing one */
		errno = werr;
		if (errno != ENOENT && errno != ENOTDIR) {
			/* ENOSPC (fs.inotify.max_user_watches), EACCES: retried each second */
			if (errno != t->last_err) {
				t->last_err = errno;
				atomic_fetch_add(&c->base.n.errors, 1);
				collector_error(&c->base, "%s: inotify_add_watch: %s", t->path,
						strerror(errno));
			}
			return;
		}
		if (t->dynamic) {
			t->removed = true;
			return;
		}
		/* Walk up to the nearest existing directory. */
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s", t->path);
		int awd = -1;
		char *slash;
		while ((slash = strrchr(p, '/'))) {
			if (slash == p)
				slash[1] = '\0';
			else
				*slash = '\0';
			awd = inotify_add_watch(c->ifd, p,
						IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF |
						    IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD);
			if (awd >= 0 || slash == p)
				break;
		}
		if (awd < 0)
			return;
		if (t->anc_wd != awd) {
			int old = t->anc_wd;
			t->anc_wd = awd;
			cni_release_wd(c, old);
		}
		/* The next level down may have appeared before the watch: look again. */
		size_t pl = strlen(p);
		const char *rest = t->path + (pl == 1 ? 1 : pl + 1);
		const char *end = strchr(rest, '/');
		char child[PATH_MAX];
		snprintf(child, sizeof(child), "%.*s%s%.*s", (int)pl, p, pl == 1 ? "" : "/",
			 (int)(end ? (size_t)(end - rest) : strlen(rest)), rest);
		struct stat st;
		if (lstat(child, &st) || !S_ISDIR(st.st_mode))
			return; /* missing, or a symlink: not followed */
	}
}

void cni_resolve(struct cni_collector *c, struct target *t)
{
	cni_resolve_mode(c, t, SCAN_NEW);
}

static void add_ipam_target(struct cni_collector *c, struct target *nets, const char *name,
			    enum scan_mode mode)
{
	if (name[0] == '.')
		return;
	char *path = cni_join(nets->path, name);
	if (!path)
		return;
	for (size_t i = 0; i < c->nt; i++) {
		if (c->t[i]->kind == T_IPAM && !c->t[i]->removed && !strcmp(c->t[i]->path, path)) {
			free(path);
			if (c->t[i]->wd < 0)
				cni_resolve_mode(c, c->t[i], mode);
			else if (mode == SCAN_RESCAN)
				cni_scan(c, c->t[i], mode);
			return;
		}
	}
	struct target *t = cni_target_add(c, T_IPAM, path, name);
	free(path);
	if (!t) {
		atomic_fetch_add(&c->base.n.errors, 1);
		return;
	}
	t->dynamic = true;
	cni_resolve_mode(c, t, mode == SCAN_RESCAN ? SCAN_NEW : mode);
}

/* Before a scan: nothing in t's directory has been seen yet. */
static void scan_unmark(struct cni_collector *c, struct target *t)
{
	if (t->kind == T_LOG) {
		for (size_t i = 0; i < c->nf; i++)
			if (c->f[i]->target == t)
				c->f[i]->seen = false;
		/* Saved offsets of this directory that match no file are dropped. */
	} else {
		for (size_t i = 0; i < t->nsnap; i++)
			t->snap[i].seen = false;
	}
}

/* One entry of a netns, results or IPAM directory. */
static void scan_dir_entry(struct cni_collector *c, struct target *t, const char *name,
			   const struct stat *st, enum scan_mode mode)
{
	if (S_ISDIR(st->st_mode))
		return;
	struct snap_ent *e = cni_snap_find(t, name);
	/* A netns entry is compared by name only: `ip netns add` mounts
	 * the namespace over the file, which changes what stat sees. */
	bool changed = !e || (t->kind != T_NETNS &&
			      (e->ino != (uint64_t)st->st_ino || e->mtime_ns != mtime_ns(st) ||
			       e->size != (uint64_t)st->st_size));
	if (e)
		e->seen = true;
	if (!changed)
		return;
	if (mode == SCAN_INITIAL)
		cni_dir_record(c, t, name, st);
	else if (t->kind == T_NETNS)
		cni_netns_event(c, t, name, true, st);
	else if (t->kind == T_RESULTS)
		cni_result_add(c, t, name, true);
	else
		cni_ipam_add(c, t, name, true);
}

static void scan_entry(struct cni_collector *c, struct target *t, const char *name,
		       const struct stat *st, enum scan_mode mode)
{
	switch (t->kind) {
	case T_LOG:
		if (S_ISREG(st->st_mode))
			cni_log_touch(c, t, name, mode, true);
		break;
	case T_NETWORKS:
		if (S_ISDIR(st->st_mode))
			add_ipam_target(c, t, name, mode);
		break;
	case T_NETNS:
	case T_RESULTS:
	case T_IPAM:
		scan_dir_entry(c, t, name, st, mode);
		break;
	}
}

/* After a scan of a log directory: files we follow that are no longer in it
 * are finished, and its saved offsets that matched no file are dropped. */
static void scan_done_log(struct cni_collector *c, struct target *t)
{
	for (size_t i = c->nf; i-- > 0;)
		if (i < c->nf && c->f[i]->target == t && !c->f[i]->seen)
			cni_file_finish(c, c->f[i]);
	for (size_t i = c->saved.n; i-- > 0;) {
		const char *p = c->saved.v[i].path;
		size_t pl = strlen(t->path);
		if (!strncmp(p, t->path, pl) && p[pl] == '/' && !strchr(p + pl + 1, '/')) {
			tail_state_del(&c->saved, i);
			c->dirty = true;
		}
	}
}

/* After a scan of the networks directory: saved reservations of networks
 * whose directory went away meanwhile are deleted. */
static void scan_done_networks(struct cni_collector *c, struct target *t)
{
	for (size_t i = c->nds; i-- > 0;) {
		if (i >= c->nds)
			continue;
		struct cni_dirstate_ent *e = c->ds[i];
		char *slash = strrchr(e->path, '/');
		if (e->kind != 'i' || !slash)
			continue;
		*slash = '\0';
		struct stat st;
		bool gone = in_dir(e->path, t->path) && stat(e->path, &st) != 0;
		const char *net = gone ? strrchr(e->path, '/') + 1 : NULL;
		int rc = 0;
		if (gone) {
			struct cni_meta m = e->m;
			snprintf(m.network, sizeof(m.network), "%s", net);
			char *path = cni_join(e->path, slash + 1);
			struct snap_ent old = {.name = slash + 1,
					       .ino = e->ino,
					       .mtime_ns = e->mtime_ns,
					       .size = e->size,
					       .m = &e->m};
			if (path)
				rc = cni_emit_dir_name_path(c, 'i', path, &old, NULL, TYPE_CNI_IPAM,
							    &m, "DEL", slash + 1, slash + 1);
			free(path);
		}
		*slash = '/';
		if (gone && rc == 0)
			ds_del(c, i);
	}
}

/* After a rescan of a netns, results or IPAM directory: what went away. */
static void scan_done_dir(struct cni_collector *c, struct target *t)
{
	for (size_t i = t->nsnap; i-- > 0;) {
		if (i >= t->nsnap || t->snap[i].seen)
			continue;
		char *name = strdup(t->snap[i].name);
		if (!name) {
			atomic_fetch_add(&c->base.n.errors, 1);
			continue;
		}
		if (t->kind == T_NETNS)
			cni_netns_event(c, t, name, false, NULL);
		else if (t->kind == T_RESULTS)
			cni_result_del(c, t, name);
		else
			cni_ipam_del(c, t, name);
		cni_snap_del(t, name);
		free(name);
	}
}

/* Lists t's directory. SCAN_INITIAL records what is there (and catches log
 * files up from their saved offsets); SCAN_NEW and SCAN_RESCAN emit what is
 * new or changed and, for a rescan, what went away. */
void cni_scan(struct cni_collector *c, struct target *t, enum scan_mode mode)
{
	/* The directory itself is not followed through a symlink either. */
	int dfd = open(t->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		struct stat lst;
		if (dfd >= 0)
			close(dfd);
		if (lstat(t->path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
			cni_refuse_symlink(c, t->path);
			return;
		}
		if (errno != ENOENT) {
			atomic_fetch_add(&c->base.n.errors, 1);
			collector_error(&c->base, "%s: opendir: %s", t->path, strerror(errno));
		}
		return;
	}
	scan_unmark(c, t);
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISLNK(st.st_mode)) {
			char *p = cni_join(t->path, name);
			if (p)
				cni_refuse_symlink(c, p);
			free(p);
			continue;
		}
		scan_entry(c, t, name, &st, mode);
	}
	closedir(d);
	if (t->kind == T_LOG)
		scan_done_log(c, t);
	else if (t->kind == T_NETWORKS)
		scan_done_networks(c, t);
	else if (mode != SCAN_INITIAL)
		scan_done_dir(c, t);
}

/* Checks that a present target's directory is still the one we watch. */
static void recheck(struct cni_collector *c, struct target *t)
{
	if (t->removed)
		return;
	if (t->wd < 0) {
		cni_resolve(c, t);
		return;
	}
	struct stat st;
	if (lstat(t->path, &st) || (uint64_t)st.st_dev != t->dev || (uint64_t)st.st_ino != t->ino) {
		target_lost(c, t);
		cni_resolve(c, t);
		return;
	}
	cni_scan(c, t, SCAN_RESCAN);
}

void cni_rescan_dirs(struct cni_collector *c)
{
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i]->kind != T_LOG)
			recheck(c, c->t[i]);
}

static void rescan_all(struct cni_collector *c)
{
	for (size_t i = c->nf; i-- > 0;)
		if (i < c->nf && !c->f[i]->target)
			cni_file_finish(c, c->f[i]);
	for (size_t i = 0; i < c->nt; i++)
		recheck(c, c->t[i]);
}

/* ---- event dispatch ---- */

static void dir_event(struct cni_collector *c, struct target *t, const struct inotify_event *ev)
{
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
		target_lost(c, t);
		cni_resolve(c, t);
		return;
	}
	if (!ev->len || !ev->name[0])
		return;
	const char *name = ev->name;
	bool isdir = ev->mask & IN_ISDIR;
	switch (t->kind) {
	case T_LOG:
		if (isdir)
			return;
		if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
			struct cni_file *f = cni_file_by_name(c, t, name);
			if (!f)
				return;
			if (ev->mask & IN_DELETE) {
				cni_file_finish(c, f);
			} else {
				/* Renamed: the IN_MOVED_TO that usually follows gives it its
				 * new name, and reading goes on there; a file moved out of
				 * sight is finished by sweep() after a grace period. */
				free(f->name);
				f->name = NULL;
				f->target = NULL;
				f->detached_ns = mono_ns();
			}
			return;
		}
		cni_log_touch(c, t, name, SCAN_NEW, (ev->mask & (IN_CREATE | IN_MOVED_TO)) != 0);
		return;
	case T_NETNS:
		if (isdir)
			return;
		if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
			struct stat st;
			char *p = cni_join(t->path, name);
			bool ok = p && lstat(p, &st) == 0;
			free(p);
			/* a scan of the new directory may have reported it already */
			if (!cni_snap_find(t, name))
				cni_netns_event(c, t, name, true, ok ? &st : NULL);
		} else if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
			cni_netns_event(c, t, name, false, NULL);
		}
		return;
	case T_RESULTS:
		if (isdir)
			return;
		if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
			cni_result_add(c, t, name, false);
		else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
			cni_result_del(c, t, name);
		return;
	case T_NETWORKS:
		if (isdir && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
			add_ipam_target(c, t, name, SCAN_NEW);
		return;
	case T_IPAM:
		if (isdir)
			return;
		if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
			cni_ipam_add(c, t, name, false);
		else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
			cni_ipam_del(c, t, name);
		return;
	}
}

static void handle_event(struct cni_collector *c, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		atomic_fetch_add(&c->overflows, 1);
		collector_error(&c->base,
				"inotify queue overflowed (%" PRIu64
				" so far); rescanning every directory",
				(uint64_t)atomic_load(&c->overflows));
		rescan_all(c);
		return;
	}
	/* Targets may be added while we dispatch: index, and re-read the count. */
	for (size_t i = 0; i < c->nt; i++) {
		struct target *t = c->t[i];
		if (t->removed)
			continue;
		if (t->wd == ev->wd) {
			if (ev->mask & IN_IGNORED) {
				t->wd = -1; /* the kernel already removed it */
				target_lost(c, t);
				cni_resolve(c, t);
			} else {
				dir_event(c, t, ev);
			}
		} else if (t->anc_wd == ev->wd) {
			/* Only a directory appearing (or the ancestor going) matters. */
			if (ev->mask & IN_IGNORED)
				t->anc_wd = -1;
			if (ev->mask & (IN_ISDIR | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
				cni_resolve(c, t);
		}
	}
}

int cni_read_events(struct cni_collector *c)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (int round = 0; round < 64; round++) {
		ssize_t n = read(c->ifd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			handle_event(c, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	return 0;
}

/* ---- offsets ---- */
