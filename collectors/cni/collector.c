// SPDX-License-Identifier: Apache-2.0
/* The CNI collector (see cni.h and README.md): one thread, one inotify fd,
 * poll with a short timeout and a stop flag.
 *
 * Every followed directory is a "target". A present target has a watch on
 * the directory itself; a missing one has a watch on its nearest existing
 * ancestor and is resolved again when something appears there (and once a
 * second, as a safety net). Log files are tracked by (dev, inode) with an open
 * fd, so a renamed file is finished through its fd and a new file at the old
 * name starts at 0. Directory kinds (netns, results, IPAM) keep a snapshot of
 * their entries, which gives DEL events their metadata and lets a rescan after
 * IN_Q_OVERFLOW emit exactly what changed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collectors/cni/cni.h"
#include "core/collector.h"
#include "core/config.h"
#include "core/options.h"
#include "collectors/cni/parse.h"
#include "collectors/cni/tail.h"
#include "core/event.h"
#include "util/clock.h"
#include "util/log.h"
#include "core/state.h"
#include "util/strbuf.h"

#define DEFAULT_LOG_DIRS "/var/log/cni,/var/log/calico/cni"
#define DEFAULT_NETNS_DIR "/var/run/netns"
#define DEFAULT_CNI_STATE_DIR "/var/lib/cni"
#define OFFSETS_NAME "cni-offsets"
#define DIRS_NAME "cni-dirs"
#define DIRS_FILE_MAX (16u << 20)
#define POLL_MS 200
#define SAVE_INTERVAL_NS 1000000000ull
#define RETRY_INTERVAL_NS 1000000000ull
#define DETACHED_GRACE_NS 2000000000ull
#define READ_BUDGET (4u << 20)
#define IPAM_FILE_MAX 4096

enum tkind { T_LOG, T_NETNS, T_RESULTS, T_NETWORKS, T_IPAM };

enum scan_mode {
	SCAN_INITIAL, /* present at start: logs start at the end (first start) or the saved offset
		       */
	SCAN_NEW,     /* appeared while running: everything in it is new */
	SCAN_RESCAN,  /* after IN_Q_OVERFLOW: emit what changed */
};

struct snap_ent {
	char *name;
	uint64_t ino;
	int64_t mtime_ns;
	uint64_t size;
	struct cni_meta *m; /* results and IPAM: what the ADD said */
	bool seen;
};

struct target {
	enum tkind kind;
	char *path;
	char *net;  /* T_IPAM: the network name */
	int wd;	    /* watch on the directory, -1 while missing */
	int anc_wd; /* watch on the nearest ancestor while missing, or -1 */
	uint64_t dev, ino;
	bool dynamic; /* T_IPAM: forgotten when its directory goes */
	bool changed; /* the snapshot changed since the last save */
	int last_err; /* last inotify_add_watch error, reported once */
	bool removed;
	struct snap_ent *snap;
	size_t nsnap, capsnap;
};

struct cni_file {
	struct tail_file t;
	uint64_t dev, ino;
	struct target *target; /* NULL while detached (renamed out of sight) */
	char *name;
	char *path;
	uint64_t detached_ns;
	uint32_t fp_len;
	uint64_t fp;
	bool seen;
	bool more; /* stopped on the read budget */
};

struct cni_collector {
	struct collector base;
	char **log_dirs;
	size_t nlog;
	char *netns_dir;
	char *cni_state_dir;
	char *state_dir; /* NULL: offsets in memory only */
	size_t max_event;
	size_t line_max;

	pthread_t thr;
	bool started;
	atomic_bool stop;
	struct queue *q;
	int ifd;

	struct target **t;
	size_t nt, capt;
	struct cni_file **f;
	size_t nf, capf;

	struct tail_state saved;
	bool had_state;
	bool dirty;
	/* directory snapshots of the last run not yet taken up by a target */
	struct cni_dirstate_ent **ds;
	size_t nds, capds;
	bool had_dirstate;
	bool ddirty;
	uint64_t last_save_ns, last_retry_ns;

	char *buf;
	size_t bufcap;
	struct strbuf sb; /* file contents, JSON data */
	struct strbuf sb2;

	struct cni_file *cur; /* the file being read (line callback) */
	uint64_t last_oversize_log_ns;
	int last_state_err;
	uint64_t last_state_log_ns;

	_Atomic uint64_t overflows, truncations, rotations, state_errors, vanished;
};

static struct cni_collector *cc(struct collector *c)
{
	return (struct cni_collector *)c;
}

/* ---- emitting ---- */

static size_t meta_kv(const struct cni_meta *m, const char *op, const char *ip, const char *file,
		      struct meta_kv *kv)
{
	size_t n = 0;
#define KV(k, v)                                                                                   \
	do {                                                                                       \
		if ((v) && *(v))                                                                   \
			kv[n++] = (struct meta_kv){(k), (v)};                                      \
	} while (0)
	KV("operation", op ? op : m->operation);
	KV("plugin", m->plugin);
	KV("pod", m->pod);
	KV("namespace", m->namespace);
	KV("container_id", m->container_id);
	KV("netns", m->netns);
	KV("network", m->network);
	KV("ifname", m->ifname);
	KV("ip", ip);
	KV("file", file);
#undef KV
	return n;
}

static void emit(struct cni_collector *c, unsigned type, enum tapio_fmt fmt,
		 const struct cni_meta *m, const char *op, const char *ip, const char *file,
		 const void *data, size_t len)
{
	struct meta_kv kv[12];
	size_t n = meta_kv(m, op, ip, file, kv);
	int rc = event_emit(c->q, c->base.source, type, fmt, now_ns(), kv, n, data, len);
	collector_count_emit(&c->base, rc);
}

/* data {"name":..,"path":..} for netns events and deletions. */
static void emit_name_path(struct cni_collector *c, unsigned type, const struct cni_meta *m,
			   const char *op, const char *ip, const char *name, const char *path)
{
	sb_reset(&c->sb2);
	sb_puts(&c->sb2, "{\"name\":");
	sb_json_cstr(&c->sb2, name);
	sb_puts(&c->sb2, ",\"path\":");
	sb_json_cstr(&c->sb2, path);
	sb_putc(&c->sb2, '}');
	if (c->sb2.err) {
		atomic_fetch_add(&c->base.n.errors, 1);
		return;
	}
	emit(c, type, FMT_JSON, m, op, ip, path, c->sb2.buf, c->sb2.len);
}

/* ---- helpers ---- */

static char *join(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* Reads a whole regular file (at most max bytes) into c->sb. Returns 0,
 * -EFBIG when it is larger, or a negative errno (-ENOENT when it is gone). */
static int read_file(struct cni_collector *c, const char *path, size_t max, struct stat *st)
{
	sb_reset(&c->sb);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	int err = 0;
	if (fstat(fd, st)) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		err = -EINVAL;
		goto out;
	}
	if ((uint64_t)st->st_size > max) {
		err = -EFBIG;
		goto out;
	}
	for (;;) {
		if (sb_grow(&c->sb, 4096)) {
			err = -ENOMEM;
			goto out;
		}
		ssize_t n = read(fd, c->sb.buf + c->sb.len, c->sb.cap - c->sb.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out;
		}
		if (n == 0)
			break;
		c->sb.len += (size_t)n;
		if (c->sb.len > max) {
			err = -EFBIG;
			goto out;
		}
	}
	c->sb.buf[c->sb.len] = '\0';
out:
	close(fd);
	return err;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* ---- snapshots ---- */

static struct snap_ent *snap_find(struct target *t, const char *name)
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

static void snap_del(struct target *t, const char *name)
{
	struct snap_ent *e = snap_find(t, name);
	if (!e)
		return;
	snap_ent_free(e);
	*e = t->snap[--t->nsnap];
	t->changed = true;
}

static void snap_clear(struct target *t)
{
	for (size_t i = 0; i < t->nsnap; i++)
		snap_ent_free(&t->snap[i]);
	t->changed = t->changed || t->nsnap > 0;
	t->nsnap = 0;
}

/* Records name with its stat and (copied) meta. */
static void snap_set(struct cni_collector *c, struct target *t, const char *name,
		     const struct stat *st, const struct cni_meta *m)
{
	struct snap_ent *e = snap_find(t, name);
	if (!e) {
		if (t->nsnap == t->capsnap) {
			size_t nc = t->capsnap ? t->capsnap * 2 : 16;
			struct snap_ent *nv = realloc(t->snap, nc * sizeof(*nv));
			if (!nv)
				goto nomem;
			t->snap = nv;
			t->capsnap = nc;
		}
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
static bool snap_same(struct target *t, const char *name, const struct stat *st)
{
	struct snap_ent *e = snap_find(t, name);
	return e && st && e->ino == (uint64_t)st->st_ino && e->mtime_ns == mtime_ns(st) &&
	       e->size == (uint64_t)st->st_size;
}

/* ---- log files ---- */

static void on_line(void *ctx, const char *line, size_t len)
{
	struct cni_collector *c = ctx;
	struct cni_meta m;
	cni_line_meta(line, len, &m);
	emit(c, TYPE_CNI_LOG, FMT_TEXT, &m, NULL, NULL, c->cur->path, line, len);
}

static void on_oversize(void *ctx, uint64_t start)
{
	struct cni_collector *c = ctx;
	atomic_fetch_add(&c->base.n.oversize, 1);
	uint64_t now = mono_ns();
	if (now - c->last_oversize_log_ns >= 1000000000ull || !c->last_oversize_log_ns) {
		c->last_oversize_log_ns = now;
		collector_error(&c->base,
				"%s: skipped a line longer than %zu bytes at offset %" PRIu64,
				c->cur->path, c->line_max, start);
	}
}

static void on_truncated(void *ctx, uint64_t old_off, uint64_t size)
{
	struct cni_collector *c = ctx;
	atomic_fetch_add(&c->truncations, 1);
	tlog(TLOG_INFO, "cni",
	     "%s: truncated from %" PRIu64 " to %" PRIu64 " bytes, reading from the start",
	     c->cur->path, old_off, size);
	c->cur->fp_len = 0;
}

static const struct tail_cb tail_cbs = {on_line, on_oversize, on_truncated};

static void file_read(struct cni_collector *c, struct cni_file *f)
{
	uint64_t before = f->t.commit;
	c->cur = f;
	int rc = tail_read(&f->t, c->buf, c->bufcap, c->line_max, READ_BUDGET, &tail_cbs, c);
	c->cur = NULL;
	f->more = rc == 1;
	if (rc < 0) {
		atomic_fetch_add(&c->base.n.errors, 1);
		collector_error(&c->base, "%s: read: %s", f->path, strerror(-rc));
	}
	if (f->t.commit != before)
		c->dirty = true;
}

static void file_free(struct cni_file *f)
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
	file_free(f);
	c->dirty = true;
}

/* Reads what is left through the fd, then forgets the file. */
static void file_finish(struct cni_collector *c, struct cni_file *f)
{
	do
		file_read(c, f);
	while (f->more);
	file_remove(c, f);
}

static struct cni_file *file_by_name(struct cni_collector *c, struct target *t, const char *name)
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
	char *n = strdup(name), *p = join(t->path, name);
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

/* Finds or opens the file name in log target t and reads what is new. */
static void log_touch(struct cni_collector *c, struct target *t, const char *name,
		      enum scan_mode mode, bool check_inode)
{
	if (cni_log_name_skip(name))
		return;
	struct cni_file *f = file_by_name(c, t, name);
	if (f && !check_inode) {
		file_read(c, f);
		return;
	}
	char *path = join(t->path, name);
	if (!path) {
		atomic_fetch_add(&c->base.n.errors, 1);
		return;
	}
	struct stat st;
	if (stat(path, &st) || !S_ISREG(st.st_mode)) {
		/* gone again, or not a regular file */
		if (f)
			file_finish(c, f);
		free(path);
		return;
	}
	if (f && (f->dev != (uint64_t)st.st_dev || f->ino != (uint64_t)st.st_ino)) {
		file_finish(c, f); /* the name now points at another file */
		f = NULL;
	}
	if (!f) {
		f = file_by_ino(c, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
		if (f) {
			/* renamed into this name (rotation) */
			struct cni_file *other = file_by_name(c, t, name);
			if (other && other != f)
				file_finish(c, other);
			if (file_set_name(f, t, name))
				atomic_fetch_add(&c->base.n.errors, 1);
			atomic_fetch_add(&c->rotations, 1);
			c->dirty = true;
		}
	}
	if (!f && cni_log_name_rotated(name) &&
	    tail_state_find(&c->saved, (uint64_t)st.st_dev, (uint64_t)st.st_ino) < 0) {
		/* a rotated copy (copytruncate) of lines already read */
		free(path);
		return;
	}
	if (!f) {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		struct stat fst;
		if (fd < 0 || fstat(fd, &fst)) {
			if (fd >= 0)
				close(fd);
			if (errno != ENOENT) {
				atomic_fetch_add(&c->base.n.errors, 1);
				collector_error(&c->base, "%s: open: %s", path, strerror(errno));
			}
			free(path);
			return;
		}
		if (c->nf == c->capf) {
			size_t nc = c->capf ? c->capf * 2 : 16;
			struct cni_file **nv = realloc(c->f, nc * sizeof(*nv));
			if (!nv) {
				close(fd);
				free(path);
				atomic_fetch_add(&c->base.n.errors, 1);
				return;
			}
			c->f = nv;
			c->capf = nc;
		}
		f = calloc(1, sizeof(*f));
		if (!f || file_set_name(f, t, name)) {
			free(f);
			close(fd);
			free(path);
			atomic_fetch_add(&c->base.n.errors, 1);
			return;
		}
		f->t.fd = fd;
		f->dev = (uint64_t)fst.st_dev;
		f->ino = (uint64_t)fst.st_ino;
		c->f[c->nf++] = f;
		file_start_offset(c, f, (uint64_t)fst.st_size, mode);
		c->dirty = true;
	}
	free(path);
	f->seen = true;
	file_read(c, f);
}

/* ---- result cache ---- */

/* scanned: found by a directory scan rather than an IN_CLOSE_WRITE, so the
 * file may still be being written: an empty file or one that is not JSON yet
 * is left for the IN_CLOSE_WRITE that will follow. */
static void result_add(struct cni_collector *c, struct target *t, const char *name, bool scanned)
{
	if (cni_result_name_skip(name))
		return;
	char *path = join(t->path, name);
	if (!path)
		return;
	struct stat st;
	int err = read_file(c, path, c->max_event, &st);
	struct cni_meta m = {0};
	if (!err && snap_same(t, name, &st)) {
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
		snap_set(c, t, name, &st, &m);
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
		emit(c, TYPE_CNI_RESULT, fmt, &m, "ADD", NULL, path, c->sb.buf, c->sb.len);
		snap_set(c, t, name, &st, &m);
	}
	free(path);
}

static void result_del(struct cni_collector *c, struct target *t, const char *name)
{
	if (cni_result_name_skip(name))
		return;
	char *path = join(t->path, name);
	if (!path)
		return;
	struct cni_meta m = {0};
	struct snap_ent *e = snap_find(t, name);
	if (e && e->m)
		m = *e->m;
	struct cni_meta nm = {0};
	if (cni_result_name_parse(name, &nm) == 0) {
		strcpy(m.network, nm.network);
		strcpy(m.container_id, nm.container_id);
		strcpy(m.ifname, nm.ifname);
	}
	emit_name_path(c, TYPE_CNI_RESULT, &m, "DEL", NULL, name, path);
	snap_del(t, name);
	free(path);
}

/* ---- host-local IPAM ---- */

static void ipam_add(struct cni_collector *c, struct target *t, const char *name, bool scanned)
{
	if (!cni_ipam_name_ok(name))
		return;
	char *path = join(t->path, name);
	if (!path)
		return;
	struct stat st;
	int err = read_file(c, path, IPAM_FILE_MAX, &st);
	struct cni_meta m = {0};
	snprintf(m.network, sizeof(m.network), "%s", t->net);
	if (!err && (snap_same(t, name, &st) || (scanned && c->sb.len == 0))) {
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
		emit(c, TYPE_CNI_IPAM, FMT_TEXT, &m, "ADD", name, path, c->sb.buf, c->sb.len);
		snap_set(c, t, name, &st, &m);
	}
	free(path);
}

static void ipam_del(struct cni_collector *c, struct target *t, const char *name)
{
	if (!cni_ipam_name_ok(name))
		return;
	char *path = join(t->path, name);
	if (!path)
		return;
	struct cni_meta m = {0};
	struct snap_ent *e = snap_find(t, name);
	if (e && e->m)
		m = *e->m;
	snprintf(m.network, sizeof(m.network), "%s", t->net);
	emit_name_path(c, TYPE_CNI_IPAM, &m, "DEL", name, name, path);
	snap_del(t, name);
	free(path);
}

/* ---- netns ---- */

static void netns_event(struct cni_collector *c, struct target *t, const char *name, bool add,
			const struct stat *st)
{
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return;
	char *path = join(t->path, name);
	if (!path)
		return;
	struct cni_meta m = {0};
	snprintf(m.netns, sizeof(m.netns), "%s", name);
	emit_name_path(c, TYPE_CNI_NETNS, &m, add ? "ADD" : "DEL", NULL, name, path);
	if (add)
		snap_set(c, t, name, st, NULL);
	else
		snap_del(t, name);
	free(path);
}

/* ---- targets ---- */

static struct target *target_add(struct cni_collector *c, enum tkind kind, const char *path,
				 const char *net)
{
	if (c->nt == c->capt) {
		size_t nc = c->capt ? c->capt * 2 : 8;
		struct target **nv = realloc(c->t, nc * sizeof(*nv));
		if (!nv)
			return NULL;
		c->t = nv;
		c->capt = nc;
	}
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

static void target_free(struct target *t)
{
	if (!t)
		return;
	snap_clear(t);
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
static void release_wd(struct cni_collector *c, int wd)
{
	if (wd < 0)
		return;
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i]->wd == wd || c->t[i]->anc_wd == wd)
			return;
	inotify_rm_watch(c->ifd, wd);
}

static void scan(struct cni_collector *c, struct target *t, enum scan_mode mode);
static void resolve(struct cni_collector *c, struct target *t);

static char ds_kind(enum tkind k)
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
		if (!name || e->kind != ds_kind(t->kind))
			continue;
		struct stat st = {0};
		st.st_ino = (ino_t)e->ino;
		st.st_mtim.tv_sec = (time_t)(e->mtime_ns / 1000000000);
		st.st_mtim.tv_nsec = (long)(e->mtime_ns % 1000000000);
		st.st_size = (off_t)e->size;
		snap_set(c, t, name, &st, t->kind == T_NETNS ? NULL : &e->m);
		ds_del(c, i);
	}
}

/* The directory of t went away (deleted, renamed, or replaced). */
static void target_lost(struct cni_collector *c, struct target *t)
{
	if (t->kind == T_LOG) {
		for (size_t i = c->nf; i-- > 0;)
			if (i < c->nf && c->f[i]->target == t)
				file_finish(c, c->f[i]);
	}
	snap_clear(t);
	int wd = t->wd;
	t->wd = -1;
	release_wd(c, wd);
	if (t->dynamic)
		t->removed = true;
	else
		tlog(TLOG_INFO, "cni", "%s: directory gone, waiting for it to come back", t->path);
}

static void target_found(struct cni_collector *c, struct target *t, int wd, enum scan_mode mode)
{
	t->last_err = 0;
	struct stat st;
	if (stat(t->path, &st) == 0) {
		t->dev = (uint64_t)st.st_dev;
		t->ino = (uint64_t)st.st_ino;
	}
	t->wd = wd;
	int anc = t->anc_wd;
	t->anc_wd = -1;
	release_wd(c, anc);
	if (t->kind == T_NETNS || t->kind == T_RESULTS || t->kind == T_IPAM) {
		take_saved(c, t);
		/* With a snapshot from the last run, report what changed since. */
		if (mode != SCAN_INITIAL || c->had_dirstate)
			mode = SCAN_RESCAN;
	}
	scan(c, t, mode);
}

/* Tries to watch t's directory; when missing, watches its nearest existing
 * ancestor instead. */
static void resolve_mode(struct cni_collector *c, struct target *t, enum scan_mode mode)
{
	if (t->wd >= 0 || t->removed)
		return;
	for (int tries = 0; tries < 64; tries++) {
		int wd = inotify_add_watch(c->ifd, t->path, dir_mask(t->kind));
		if (wd >= 0) {
			target_found(c, t, wd, mode);
			return;
		}
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
			release_wd(c, old);
		}
		/* The next level down may have appeared before the watch: look again. */
		size_t pl = strlen(p);
		const char *rest = t->path + (pl == 1 ? 1 : pl + 1);
		const char *end = strchr(rest, '/');
		char child[PATH_MAX];
		snprintf(child, sizeof(child), "%.*s%s%.*s", (int)pl, p, pl == 1 ? "" : "/",
			 (int)(end ? (size_t)(end - rest) : strlen(rest)), rest);
		struct stat st;
		if (stat(child, &st) || !S_ISDIR(st.st_mode))
			return;
	}
}

static void resolve(struct cni_collector *c, struct target *t)
{
	resolve_mode(c, t, SCAN_NEW);
}

static void add_ipam_target(struct cni_collector *c, struct target *nets, const char *name,
			    enum scan_mode mode)
{
	if (name[0] == '.')
		return;
	char *path = join(nets->path, name);
	if (!path)
		return;
	for (size_t i = 0; i < c->nt; i++) {
		if (c->t[i]->kind == T_IPAM && !c->t[i]->removed && !strcmp(c->t[i]->path, path)) {
			free(path);
			if (c->t[i]->wd < 0)
				resolve_mode(c, c->t[i], mode);
			else if (mode == SCAN_RESCAN)
				scan(c, c->t[i], mode);
			return;
		}
	}
	struct target *t = target_add(c, T_IPAM, path, name);
	free(path);
	if (!t) {
		atomic_fetch_add(&c->base.n.errors, 1);
		return;
	}
	t->dynamic = true;
	resolve_mode(c, t, mode == SCAN_RESCAN ? SCAN_NEW : mode);
}

/* Lists t's directory. SCAN_INITIAL records what is there (and catches log
 * files up from their saved offsets); SCAN_NEW and SCAN_RESCAN emit what is
 * new or changed and, for a rescan, what went away. */
static void scan(struct cni_collector *c, struct target *t, enum scan_mode mode)
{
	DIR *d = opendir(t->path);
	if (!d) {
		if (errno != ENOENT) {
			atomic_fetch_add(&c->base.n.errors, 1);
			collector_error(&c->base, "%s: opendir: %s", t->path, strerror(errno));
		}
		return;
	}
	if (t->kind == T_LOG) {
		for (size_t i = 0; i < c->nf; i++)
			if (c->f[i]->target == t)
				c->f[i]->seen = false;
		/* Saved offsets of this directory that match no file are dropped. */
	} else {
		for (size_t i = 0; i < t->nsnap; i++)
			t->snap[i].seen = false;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, 0))
			continue;
		switch (t->kind) {
		case T_LOG:
			if (S_ISREG(st.st_mode))
				log_touch(c, t, name, mode, true);
			break;
		case T_NETWORKS:
			if (S_ISDIR(st.st_mode))
				add_ipam_target(c, t, name, mode);
			break;
		case T_NETNS:
		case T_RESULTS:
		case T_IPAM: {
			if (S_ISDIR(st.st_mode))
				break;
			struct snap_ent *e = snap_find(t, name);
			/* A netns entry is compared by name only: `ip netns add` mounts
			 * the namespace over the file, which changes what stat sees. */
			bool changed =
			    !e || (t->kind != T_NETNS &&
				   (e->ino != (uint64_t)st.st_ino || e->mtime_ns != mtime_ns(&st) ||
				    e->size != (uint64_t)st.st_size));
			if (e)
				e->seen = true;
			if (!changed)
				break;
			if (mode == SCAN_INITIAL) {
				struct cni_meta m = {0};
				if (t->kind == T_RESULTS && !cni_result_name_skip(name)) {
					char *p = join(t->path, name);
					struct stat fst;
					if (p && read_file(c, p, c->max_event, &fst) == 0)
						cni_result_parse(c->sb.buf, c->sb.len, &m);
					cni_result_name_parse(name, &m);
					free(p);
					snap_set(c, t, name, &st, &m);
				} else if (t->kind == T_IPAM && cni_ipam_name_ok(name)) {
					char *p = join(t->path, name);
					struct stat fst;
					if (p && read_file(c, p, IPAM_FILE_MAX, &fst) == 0)
						cni_ipam_parse(c->sb.buf, c->sb.len, &m);
					free(p);
					snap_set(c, t, name, &st, &m);
				} else if (t->kind == T_NETNS) {
					snap_set(c, t, name, &st, NULL);
				}
			} else if (t->kind == T_NETNS) {
				netns_event(c, t, name, true, &st);
			} else if (t->kind == T_RESULTS) {
				result_add(c, t, name, true);
			} else {
				ipam_add(c, t, name, true);
			}
			break;
		}
		}
	}
	closedir(d);
	if (t->kind == T_LOG) {
		/* Files we follow that are no longer in the directory. */
		for (size_t i = c->nf; i-- > 0;)
			if (i < c->nf && c->f[i]->target == t && !c->f[i]->seen)
				file_finish(c, c->f[i]);
		for (size_t i = c->saved.n; i-- > 0;) {
			const char *p = c->saved.v[i].path;
			size_t pl = strlen(t->path);
			if (!strncmp(p, t->path, pl) && p[pl] == '/' && !strchr(p + pl + 1, '/')) {
				tail_state_del(&c->saved, i);
				c->dirty = true;
			}
		}
	} else if (t->kind == T_NETWORKS) {
		/* Saved reservations of networks whose directory went away meanwhile. */
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
			if (gone) {
				struct cni_meta m = e->m;
				snprintf(m.network, sizeof(m.network), "%s", net);
				char *path = join(e->path, slash + 1);
				if (path)
					emit_name_path(c, TYPE_CNI_IPAM, &m, "DEL", slash + 1,
						       slash + 1, path);
				free(path);
			}
			*slash = '/';
			if (gone)
				ds_del(c, i);
		}
	} else if (mode != SCAN_INITIAL) {
		for (size_t i = t->nsnap; i-- > 0;) {
			if (i >= t->nsnap || t->snap[i].seen)
				continue;
			char *name = strdup(t->snap[i].name);
			if (!name) {
				atomic_fetch_add(&c->base.n.errors, 1);
				continue;
			}
			if (t->kind == T_NETNS)
				netns_event(c, t, name, false, NULL);
			else if (t->kind == T_RESULTS)
				result_del(c, t, name);
			else
				ipam_del(c, t, name);
			snap_del(t, name);
			free(name);
		}
	}
}

/* Checks that a present target's directory is still the one we watch. */
static void recheck(struct cni_collector *c, struct target *t)
{
	if (t->removed)
		return;
	if (t->wd < 0) {
		resolve(c, t);
		return;
	}
	struct stat st;
	if (stat(t->path, &st) || (uint64_t)st.st_dev != t->dev || (uint64_t)st.st_ino != t->ino) {
		target_lost(c, t);
		resolve(c, t);
		return;
	}
	scan(c, t, SCAN_RESCAN);
}

static void rescan_all(struct cni_collector *c)
{
	for (size_t i = c->nf; i-- > 0;)
		if (i < c->nf && !c->f[i]->target)
			file_finish(c, c->f[i]);
	for (size_t i = 0; i < c->nt; i++)
		recheck(c, c->t[i]);
}

/* ---- event dispatch ---- */

static void dir_event(struct cni_collector *c, struct target *t, const struct inotify_event *ev)
{
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
		target_lost(c, t);
		resolve(c, t);
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
			struct cni_file *f = file_by_name(c, t, name);
			if (!f)
				return;
			if (ev->mask & IN_DELETE) {
				file_finish(c, f);
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
		log_touch(c, t, name, SCAN_NEW, (ev->mask & (IN_CREATE | IN_MOVED_TO)) != 0);
		return;
	case T_NETNS:
		if (isdir)
			return;
		if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
			struct stat st;
			char *p = join(t->path, name);
			bool ok = p && lstat(p, &st) == 0;
			free(p);
			/* a scan of the new directory may have reported it already */
			if (!snap_find(t, name))
				netns_event(c, t, name, true, ok ? &st : NULL);
		} else if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
			netns_event(c, t, name, false, NULL);
		}
		return;
	case T_RESULTS:
		if (isdir)
			return;
		if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
			result_add(c, t, name, false);
		else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
			result_del(c, t, name);
		return;
	case T_NETWORKS:
		if (isdir && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
			add_ipam_target(c, t, name, SCAN_NEW);
		return;
	case T_IPAM:
		if (isdir)
			return;
		if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
			ipam_add(c, t, name, false);
		else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
			ipam_del(c, t, name);
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
				resolve(c, t);
			} else {
				dir_event(c, t, ev);
			}
		} else if (t->anc_wd == ev->wd) {
			/* Only a directory appearing (or the ancestor going) matters. */
			if (ev->mask & IN_IGNORED)
				t->anc_wd = -1;
			if (ev->mask & (IN_ISDIR | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
				resolve(c, t);
		}
	}
}

static int read_events(struct cni_collector *c)
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

static int save_dirs(struct cni_collector *c)
{
	bool changed = c->ddirty;
	for (size_t i = 0; i < c->nt; i++)
		changed = changed || c->t[i]->changed;
	if (!c->state_dir || !changed)
		return 0;
	struct cni_dirstate_ent *e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	sb_reset(&c->sb2);
	sb_puts(&c->sb2, CNI_DIRSTATE_HEADER);
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
			e->kind = ds_kind(t->kind);
			e->ino = s->ino;
			e->mtime_ns = s->mtime_ns;
			e->size = s->size;
			if (s->m)
				e->m = *s->m;
			if (snprintf(e->path, sizeof(e->path), "%s/%s", t->path, s->name) >=
			    (int)sizeof(e->path))
				continue;
			cni_dirstate_format(&c->sb2,
					    e); /* names with a tab or newline are not kept */
		}
	}
	free(e);
	int err =
	    c->sb2.err ? c->sb2.err : state_write(c->state_dir, DIRS_NAME, c->sb2.buf, c->sb2.len);
	if (!err) {
		c->ddirty = false;
		for (size_t i = 0; i < c->nt; i++)
			c->t[i]->changed = false;
	}
	return err;
}

static void load_dirs(struct cni_collector *c)
{
	if (!c->state_dir)
		return;
	char *buf = malloc(DIRS_FILE_MAX);
	struct cni_dirstate_ent *e = malloc(sizeof(*e));
	ssize_t n = buf && e ? state_read(c->state_dir, DIRS_NAME, buf, DIRS_FILE_MAX) : -ENOMEM;
	if (n == -ENOENT)
		goto out;
	c->had_dirstate = true;
	if (n < 0 || (size_t)n < strlen(CNI_DIRSTATE_HEADER) ||
	    memcmp(buf, CNI_DIRSTATE_HEADER, strlen(CNI_DIRSTATE_HEADER))) {
		atomic_fetch_add(&c->base.n.parse_errors, 1);
		collector_error(
		    &c->base, "%s/%s: %s; directory changes while stopped are not reported",
		    c->state_dir, DIRS_NAME, n < 0 ? strerror((int)-n) : "not a snapshot file");
		c->had_dirstate = false;
		goto out;
	}
	size_t bad = 0;
	for (char *p = buf + strlen(CNI_DIRSTATE_HEADER), *end = buf + n; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len && cni_dirstate_parse(p, len, e) == 0) {
			if (c->nds == c->capds) {
				size_t nc = c->capds ? c->capds * 2 : 64;
				struct cni_dirstate_ent **nv = realloc(c->ds, nc * sizeof(*nv));
				if (!nv)
					break;
				c->ds = nv;
				c->capds = nc;
			}
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

static int save_offsets(struct cni_collector *c)
{
	if (!c->state_dir)
		return 0;
	struct tail_state st = {0};
	int err = 0;
	for (size_t i = 0; i < c->saved.n && !err; i++)
		err = tail_state_add(&st, &c->saved.v[i]); /* dirs that are missing now */
	for (size_t i = 0; i < c->nf && !err; i++) {
		struct cni_file *f = c->f[i];
		if (!f->target || strchr(f->path, '\n'))
			continue;
		if (f->fp_len < TAIL_FP_MAX)
			tail_fingerprint(f->t.fd, f->t.commit, &f->fp_len, &f->fp);
		struct tail_saved e = {f->dev, f->ino, f->t.commit, f->fp_len, f->fp, f->path};
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
		err = save_dirs(c);
	c->last_save_ns = mono_ns();
	if (err) {
		atomic_fetch_add(&c->state_errors, 1);
		atomic_store(&c->base.healthy, false);
		/* retried every second; reported when it changes, else once a minute */
		if (err != c->last_state_err ||
		    c->last_save_ns - c->last_state_log_ns >= 60000000000ull) {
			c->last_state_log_ns = c->last_save_ns;
			collector_error(&c->base, "%s: cannot save the resume state: %s",
					c->state_dir, strerror(-err));
		}
		c->last_state_err = err;
		return err;
	}
	if (c->last_state_err)
		tlog(TLOG_INFO, "cni", "%s: resume state saved again", c->state_dir);
	c->last_state_err = 0;
	c->dirty = false;
	atomic_store(&c->base.healthy, true);
	return 0;
}

static void load_offsets(struct cni_collector *c)
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

static void sweep(struct cni_collector *c)
{
	uint64_t now = mono_ns();
	for (size_t i = c->nf; i-- > 0;) {
		if (i >= c->nf)
			continue;
		struct cni_file *f = c->f[i];
		if (!f->target && now - f->detached_ns >= DETACHED_GRACE_NS)
			file_finish(c, f);
	}
	for (size_t i = 0; i < c->nt;) {
		struct target *t = c->t[i];
		if (t->removed) {
			int wd = t->wd, awd = t->anc_wd;
			c->t[i] = c->t[--c->nt];
			target_free(t);
			release_wd(c, wd);
			release_wd(c, awd);
			continue;
		}
		if (t->wd < 0)
			resolve(c, t);
		i++;
	}
}

static bool state_dirty(struct cni_collector *c)
{
	if (c->dirty || c->ddirty)
		return true;
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i]->changed)
			return true;
	return false;
}

static void *thread_main(void *arg)
{
	struct cni_collector *c = arg;
	load_offsets(c);
	load_dirs(c);
	for (size_t i = 0; i < c->nt; i++)
		resolve_mode(c, c->t[i], SCAN_INITIAL);
	atomic_store(&c->base.healthy, true); /* until the state cannot be written */
	c->dirty = c->ddirty = true;
	save_offsets(c);
	tlog(TLOG_INFO, "cni", "following %zu log files in %zu log dirs, netns %s, cache %s", c->nf,
	     c->nlog, c->netns_dir, c->cni_state_dir);
	while (!atomic_load(&c->stop)) {
		bool more = false;
		for (size_t i = 0; i < c->nf; i++)
			if (c->f[i]->more)
				more = true;
		struct pollfd p = {.fd = c->ifd, .events = POLLIN};
		int r = poll(&p, 1, more ? 0 : POLL_MS);
		if (r < 0 && errno != EINTR) {
			atomic_fetch_add(&c->base.n.errors, 1);
			collector_error(&c->base, "poll: %s", strerror(errno));
		}
		if (r > 0) {
			int err = read_events(c);
			if (err) {
				atomic_fetch_add(&c->base.n.errors, 1);
				atomic_store(&c->base.healthy, false);
				collector_error(&c->base, "inotify read: %s", strerror(-err));
			}
		}
		for (size_t i = 0; i < c->nf; i++)
			if (c->f[i]->more)
				file_read(c, c->f[i]);
		uint64_t now = mono_ns();
		if (now - c->last_retry_ns >= RETRY_INTERVAL_NS) {
			c->last_retry_ns = now;
			sweep(c);
		}
		if (state_dirty(c) && now - c->last_save_ns >= SAVE_INTERVAL_NS)
			save_offsets(c);
	}
	if (state_dirty(c))
		save_offsets(c);
	return NULL;
}

static int cni_start(struct collector *base, struct queue *q)
{
	struct cni_collector *c = cc(base);
	if (c->started)
		return -EALREADY;
	c->q = q;
	c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ifd < 0) {
		int err = -errno;
		collector_error(base, "inotify_init1: %s", strerror(errno));
		return err;
	}
	atomic_store(&c->stop, false);
	int err = pthread_create(&c->thr, NULL, thread_main, c);
	if (err) {
		close(c->ifd);
		c->ifd = -1;
		return -err;
	}
	c->started = true;
	return 0;
}

static void cni_stop(struct collector *base)
{
	struct cni_collector *c = cc(base);
	if (!c->started)
		return;
	atomic_store(&c->stop, true);
	pthread_join(c->thr, NULL);
	c->started = false;
	atomic_store(&c->base.healthy, false);
}

static void cni_destroy(struct collector *base)
{
	struct cni_collector *c = cc(base);
	for (size_t i = 0; i < c->nf; i++)
		file_free(c->f[i]);
	free(c->f);
	for (size_t i = 0; i < c->nt; i++)
		target_free(c->t[i]);
	free(c->t);
	if (c->ifd >= 0)
		close(c->ifd);
	for (size_t i = 0; i < c->nlog; i++)
		free(c->log_dirs[i]);
	free(c->log_dirs);
	free(c->netns_dir);
	free(c->cni_state_dir);
	free(c->state_dir);
	tail_state_free(&c->saved);
	for (size_t i = 0; i < c->nds; i++)
		free(c->ds[i]);
	free(c->ds);
	free(c->buf);
	sb_free(&c->sb);
	sb_free(&c->sb2);
	free(c);
}

static void cni_counters(struct collector *base, counter_fn fn, void *ctx)
{
	struct cni_collector *c = cc(base);
	fn(ctx, "inotify_overflows", "", atomic_load(&c->overflows));
	fn(ctx, "truncations", "", atomic_load(&c->truncations));
	fn(ctx, "rotations", "", atomic_load(&c->rotations));
	fn(ctx, "state_write_errors", "", atomic_load(&c->state_errors));
	fn(ctx, "vanished_files", "", atomic_load(&c->vanished));
}

static const struct collector_ops cni_ops = {
    .name = "cni",
    .start = cni_start,
    .stop = cni_stop,
    .destroy = cni_destroy,
    .counters = cni_counters,
};

/* ---- construction ---- */

/* A clean absolute path: no trailing '/', no "//", "." or ".." parts. */
static char *clean_path(const char *in, const char *what, char *err, size_t errlen)
{
	size_t n = strlen(in);
	while (n > 1 && in[n - 1] == '/')
		n--;
	if (n == 0 || in[0] != '/') {
		snprintf(err, errlen, "cni: %s: '%s' is not an absolute path", what, in);
		return NULL;
	}
	if (n >= PATH_MAX - NAME_MAX - 2) {
		snprintf(err, errlen, "cni: %s: path too long", what);
		return NULL;
	}
	char *p = strndup(in, n);
	if (!p) {
		snprintf(err, errlen, "cni: out of memory");
		return NULL;
	}
	if (strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../") ||
	    (n >= 2 && !strcmp(p + n - 2, "/.")) || (n >= 3 && !strcmp(p + n - 3, "/.."))) {
		snprintf(err, errlen, "cni: %s: '%s' must not hold '//', '.' or '..' parts", what,
			 p);
		free(p);
		return NULL;
	}
	return p;
}

static const char *or_default(const char *v, const char *def)
{
	return v && *v ? v : def;
}

#define CO(n, t, f, d, h) OPT_ENTRY(struct cni_options, n, t, f, d, h)

static const struct opt cni_opt_table[] = {
	CO("cni-log-dirs", OPT_STR, log_dirs, DEFAULT_LOG_DIRS, "comma list of CNI log directories"),
	CO("netns-dir", OPT_STR, netns_dir, DEFAULT_NETNS_DIR, "network namespace directory"),
	CO("cni-state-dir", OPT_STR, state_dir, DEFAULT_CNI_STATE_DIR,
	   "CNI state: results/ and networks/ below it"),
};

const struct opt_group cni_options_group = OPT_GROUP("cni", struct cni_options, cni_opt_table, NULL);

static const char *const cni_type_names[CNI_NTYPES] = {
	[TYPE_CNI_LOG] = "cni.log",
	[TYPE_CNI_NETNS] = "cni.netns",
	[TYPE_CNI_RESULT] = "cni.result",
	[TYPE_CNI_IPAM] = "cni.ipam",
};

const struct source_desc cni_source = {
	.name = "cni",
	.types = cni_type_names,
	.ntypes = CNI_NTYPES,
};

static const struct cni_options cni_defaults = {NULL, NULL, NULL};

struct collector *cni_collector_new(const struct collector_env *env, char *err, size_t errlen)
{
	const struct tapio_config *cfg = env ? env->cfg : NULL;
	const struct cni_options *o = env && env->opts ? env->opts : &cni_defaults;
	struct cni_collector *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "cni: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	collector_init(&c->base, &cni_ops, env ? env->source : 0);
	c->ifd = -1;
	int e = EINVAL;
	const char *dirs = o->log_dirs ? o->log_dirs : DEFAULT_LOG_DIRS;
	char *list = strdup(dirs);
	if (!list)
		goto nomem;
	char *save = NULL;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		char *end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*tok)
			continue;
		char *p = clean_path(tok, "--cni-log-dirs", err, errlen);
		if (!p) {
			free(list);
			goto fail;
		}
		bool dup = false;
		for (size_t i = 0; i < c->nlog; i++)
			dup = dup || !strcmp(c->log_dirs[i], p);
		if (dup) {
			free(p);
			continue;
		}
		char **nv = realloc(c->log_dirs, (c->nlog + 1) * sizeof(*nv));
		if (!nv) {
			free(p);
			free(list);
			goto nomem;
		}
		c->log_dirs = nv;
		c->log_dirs[c->nlog++] = p;
	}
	free(list);
	c->netns_dir = clean_path(or_default(o->netns_dir, DEFAULT_NETNS_DIR),
				  "--netns-dir", err, errlen);
	if (!c->netns_dir)
		goto fail;
	c->cni_state_dir =
	    clean_path(or_default(o->state_dir, DEFAULT_CNI_STATE_DIR),
		       "--cni-state-dir", err, errlen);
	if (!c->cni_state_dir)
		goto fail;
	if (cfg && cfg->state_dir && *cfg->state_dir && !(c->state_dir = strdup(cfg->state_dir)))
		goto nomem;
	c->max_event =
	    cfg && cfg->max_event_size ? (size_t)cfg->max_event_size : CNI_DEFAULT_MAX_EVENT;
	if (c->max_event < 1024) {
		snprintf(err, errlen, "cni: --max-event-size: %zu is too small (at least 1024)",
			 c->max_event);
		goto fail;
	}
	c->line_max = c->max_event < CNI_LINE_MAX ? c->max_event : CNI_LINE_MAX;
	c->bufcap = c->line_max + 64 * 1024;
	c->buf = malloc(c->bufcap);
	if (!c->buf)
		goto nomem;

	for (size_t i = 0; i < c->nlog; i++)
		if (!target_add(c, T_LOG, c->log_dirs[i], NULL))
			goto nomem;
	if (!target_add(c, T_NETNS, c->netns_dir, NULL))
		goto nomem;
	char *r = join(c->cni_state_dir, "results"), *n = join(c->cni_state_dir, "networks");
	bool ok = r && n && target_add(c, T_RESULTS, r, NULL) && target_add(c, T_NETWORKS, n, NULL);
	free(r);
	free(n);
	if (!ok)
		goto nomem;
	return &c->base;
nomem:
	snprintf(err, errlen, "cni: out of memory");
	e = ENOMEM;
fail:
	cni_destroy(&c->base);
	errno = e;
	return NULL;
}

bool cni_collector_available(const struct collector_env *env)
{
	const struct cni_options *o = env && env->opts ? env->opts : &cni_defaults;
	struct stat st;
	const char *dirs = o->log_dirs ? o->log_dirs : DEFAULT_LOG_DIRS;
	char *list = strdup(dirs);
	if (list) {
		char *save = NULL;
		for (char *tok = strtok_r(list, ", \t", &save); tok;
		     tok = strtok_r(NULL, ", \t", &save)) {
			if (stat(tok, &st) == 0 && S_ISDIR(st.st_mode)) {
				free(list);
				return true;
			}
		}
		free(list);
	}
	const char *ns = or_default(o->netns_dir, DEFAULT_NETNS_DIR);
	const char *cs = or_default(o->state_dir, DEFAULT_CNI_STATE_DIR);
	return (stat(ns, &st) == 0 && S_ISDIR(st.st_mode)) ||
	       (stat(cs, &st) == 0 && S_ISDIR(st.st_mode));
}
