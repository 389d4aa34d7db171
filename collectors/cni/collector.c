// SPDX-License-Identifier: Apache-2.0
/* The CNI collector (see cni.h and README.md): one thread, one inotify fd,
 * poll with a short timeout, woken on stop.
 *
 * Every followed directory is a "target" (targets.c). A present target has a
 * watch on the directory itself; a missing one has a watch on its nearest
 * existing ancestor and is resolved again when something appears there (and
 * once a second, as a safety net). Log files (logs.c) are tracked by (dev,
 * inode) with an open fd, so a renamed file is finished through its fd and a
 * new file at the old name starts at 0. Directory kinds (dirs.c: netns,
 * results, IPAM) keep a snapshot of their entries, which gives DEL events
 * their metadata and lets a rescan after IN_Q_OVERFLOW emit exactly what
 * changed. The offsets and snapshots survive a restart (persist.c).
 *
 * This file: emitting, the thread loop, the ops and the constructor. */
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
#include "collectors/cni/internal.h"
#include "core/collector.h"
#include "core/config.h"
#include "core/event.h"
#include "core/options.h"
#include "util/clock.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/strlist.h"
#include "util/vec.h"
#include "util/hash.h"

#define DEFAULT_LOG_DIRS "/var/log/cni,/var/log/calico/cni"
#define DEFAULT_NETNS_DIR "/var/run/netns"
#define DEFAULT_CNI_STATE_DIR "/var/lib/cni"
/* The longest wait while work is due (a sweep, an offset save, lines the
 * sink has not acknowledged yet): inotify and the stop fd wake the thread at
 * once; this paces the once-a-second sweeps and offset saves below. With
 * nothing due the thread waits IDLE_POLL_MS (a backstop): an idle collector
 * wakes for inotify and the stop only. */
#define POLL_MS 1000
#define IDLE_POLL_MS 60000
#define RETRY_MS 100 /* pause before offering a refused line again */
#define SAVE_INTERVAL_NS 1000000000ull
#define RETRY_INTERVAL_NS 1000000000ull
#define DETACHED_GRACE_NS 2000000000ull
#define OVERSIZE_REPORT_NS 1000000000ull

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

/* Under alock. */
static struct cni_pos *acked_find(struct cni_collector *c, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < c->nacked; i++)
		if (c->acked[i].dev == dev && c->acked[i].ino == ino)
			return &c->acked[i];
	return NULL;
}

/* Under alock. */
static void acked_put(struct cni_collector *c, uint64_t dev, uint64_t ino, uint64_t off)
{
	struct cni_pos *p = acked_find(c, dev, ino);
	if (!p) {
		if (VEC_RESERVE(c->acked, c->capacked, c->nacked + 1))
			return; /* the file keeps an older offset: read again, not lost */
		p = &c->acked[c->nacked++];
		p->dev = dev;
		p->ino = ino;
	}
	p->off = off;
}

void cni_acked_set(struct cni_collector *c, uint64_t dev, uint64_t ino, uint64_t off)
{
	pthread_mutex_lock(&c->alock);
	acked_put(c, dev, ino, off);
	pthread_mutex_unlock(&c->alock);
}

bool cni_acked_get(struct cni_collector *c, uint64_t dev, uint64_t ino, uint64_t *off)
{
	pthread_mutex_lock(&c->alock);
	struct cni_pos *p = acked_find(c, dev, ino);
	if (p)
		*off = p->off;
	pthread_mutex_unlock(&c->alock);
	return p != NULL;
}

/* The tracker's commit (under its lock, from a sink thread): the sink has
 * every line up to sequence safe. The ring slots walked are intact: at most
 * CNI_ACK_SLOTS lines are unsettled, and the ring holds twice as many. */
static void commit_lines(void *ctx, uint64_t safe)
{
	struct cni_collector *c = ctx;
	pthread_mutex_lock(&c->alock);
	for (uint64_t s = c->walked + 1; s <= safe; s++) {
		const struct cni_pos *p = &c->ring[s % CNI_RING];
		if (!p->dir)
			acked_put(c, p->dev, p->ino, p->off);
	}
	if (safe > c->walked)
		c->walked = safe;
	pthread_mutex_unlock(&c->alock);
}

/* Emits one event at position seq, tracked for its acknowledgement. Returns
 * 0 when it went out, 1 when it can never fit (counted as dropped, settled
 * at once: done with), or the negative errno of a refusal (nothing tracked:
 * read again). */
static int emit_tracked(struct cni_collector *c, uint64_t seq, unsigned type, enum tapio_fmt fmt,
			const struct meta_kv *kv, size_t n, const void *data, size_t len)
{
	uint32_t token = ack_track(&c->ack, seq);
	int rc = token ? event_emit_ack(c->q, c->base.source, type, fmt, now_ns(), kv, n, data, len,
					token)
		       : -ENOSPC; /* too many unacknowledged: wait like a full queue */
	if (rc && token)
		ack_untrack(&c->ack, token);
	collector_count_emit_resumable(&c->base, rc);
	if (rc != -E2BIG && rc != -EINVAL)
		return rc;
	token = ack_track(&c->ack, seq);
	if (token)
		ack_settle(&c->ack, token);
	return 1;
}

int cni_emit_line(struct cni_collector *c, struct cni_file *f, const struct cni_meta *m,
		  const char *line, size_t len, uint64_t off)
{
	struct meta_kv kv[13];
	char id[80];
	size_t n = meta_kv(m, NULL, NULL, f->path, kv);
	/* The line's hash tells it from another line at the same offset (the file
	 * truncated and rewritten): each gets its own Nats-Msg-Id. */
	uint64_t h = fnv1a64(line, len);
	snprintf(id, sizeof(id), "cni-%" PRIu64 "-%" PRIu64 "-%" PRIu64 "-%016" PRIx64, f->id_dev,
		 f->id_ino, off, h);
	kv[n++] = (struct meta_kv){"id", id};
	uint64_t seq = c->seq + 1;
	c->ring[seq % CNI_RING] = (struct cni_pos){f->dev, f->ino, off + len + 1, false};
	int rc = emit_tracked(c, seq, TYPE_CNI_LOG, FMT_TEXT, kv, n, line, len);
	if (rc >= 0) {
		c->seq = seq;
		ack_through(&c->ack, seq);
		return 0;
	}
	c->refused = true;
	return rc;
}

static int dpend_add(struct cni_collector *c, uint64_t seq, char kind, const char *path,
		     const struct snap_ent *old)
{
	if (VEC_RESERVE(c->pend, c->cappend, c->npend + 1))
		return -ENOMEM;
	struct cni_dpend *p = &c->pend[c->npend];
	memset(p, 0, sizeof(*p));
	p->seq = seq;
	p->kind = kind;
	p->path = strdup(path);
	if (!p->path)
		return -ENOMEM;
	if (old) {
		p->had = true;
		p->ino = old->ino;
		p->mtime_ns = old->mtime_ns;
		p->size = old->size;
		if (old->m && (p->m = malloc(sizeof(*p->m))))
			*p->m = *old->m;
	}
	c->npend++;
	return 0;
}

void cni_dpend_prune(struct cni_collector *c, uint64_t walked)
{
	size_t k = 0;
	for (size_t i = 0; i < c->npend; i++) {
		if (c->pend[i].seq <= walked) {
			free(c->pend[i].path);
			free(c->pend[i].m);
		} else {
			c->pend[k++] = c->pend[i];
		}
	}
	c->npend = k;
}

int cni_emit_dir(struct cni_collector *c, char kind, const char *path, const struct snap_ent *old,
		 const struct stat *st, unsigned type, enum tapio_fmt fmt, const struct cni_meta *m,
		 const char *op, const char *ip, const void *data, size_t len)
{
	uint64_t ino = st ? (uint64_t)st->st_ino : old ? old->ino : 0;
	int64_t mt = st ? mtime_ns(st) : old ? old->mtime_ns : 0;
	uint64_t size = st ? (uint64_t)st->st_size : old ? old->size : 0;
	uint64_t h = fnv1a64(path, strlen(path));
	const char *kn = kind == 'n' ? "netns" : kind == 'r' ? "result" : "ipam";
	char id[128];
	snprintf(id, sizeof(id), "cni-%s-%s-%" PRIu64 "-%" PRId64 "-%" PRIu64 "-%016" PRIx64, kn,
		 op && !strcmp(op, "DEL") ? "del" : "add", ino, mt, size, h);
	struct meta_kv kv[13];
	size_t n = meta_kv(m, op, ip, path, kv);
	kv[n++] = (struct meta_kv){"id", id};
	uint64_t seq = c->seq + 1;
	c->ring[seq % CNI_RING] = (struct cni_pos){0, 0, 0, true};
	int rc = emit_tracked(c, seq, type, fmt, kv, n, data, len);
	if (rc >= 0) {
		if (rc == 0 && dpend_add(c, seq, kind, path, old)) {
			atomic_fetch_add(&c->base.n.errors, 1); /* recorded at once: at most once */
		}
		c->seq = seq;
		ack_through(&c->ack, seq);
		return 0;
	}
	c->dir_refused = true;
	return rc;
}

int cni_emit_dir_name_path(struct cni_collector *c, char kind, const char *path,
			   const struct snap_ent *old, const struct stat *st, unsigned type,
			   const struct cni_meta *m, const char *op, const char *ip,
			   const char *name)
{
	sb_reset(&c->sb2);
	sb_puts(&c->sb2, "{\"name\":");
	sb_json_cstr(&c->sb2, name);
	sb_puts(&c->sb2, ",\"path\":");
	sb_json_cstr(&c->sb2, path);
	sb_putc(&c->sb2, '}');
	if (c->sb2.err) {
		atomic_fetch_add(&c->base.n.errors, 1);
		return 0;
	}
	return cni_emit_dir(c, kind, path, old, st, type, FMT_JSON, m, op, ip, c->sb2.buf,
			    c->sb2.len);
}

/* ---- helpers ---- */

void cni_refuse_symlink(struct cni_collector *c, const char *path)
{
	uint64_t h = fnv1a64(path, strlen(path));
	h |= 1; /* 0 marks a free slot */
	size_t n = sizeof(c->refused_names) / sizeof(c->refused_names[0]);
	for (size_t i = 0; i < n; i++) {
		size_t k = (h + i) % n;
		if (c->refused_names[k] == h)
			return; /* named already */
		if (c->refused_names[k] == 0) {
			c->refused_names[k] = h;
			break;
		}
	}
	atomic_fetch_add(&c->symlinks_refused, 1);
	collector_error(&c->base, "%s: a symlink, not followed", path);
}

char *cni_join(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int cni_read_file(struct cni_collector *c, const char *path, size_t max, struct stat *st)
{
	return file_read_all(AT_FDCWD, path, max, FILE_NOFOLLOW | FILE_REGULAR, &c->sb, st);
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
			cni_file_finish(c, f);
	}
	for (size_t i = 0; i < c->nt;) {
		struct target *t = c->t[i];
		if (t->removed) {
			int wd = t->wd, awd = t->anc_wd;
			c->t[i] = c->t[--c->nt];
			cni_target_free(t);
			cni_release_wd(c, wd);
			cni_release_wd(c, awd);
			continue;
		}
		if (t->wd < 0)
			cni_resolve(c, t);
		i++;
	}
	if (c->dir_refused) {
		c->dir_refused = false;
		cni_rescan_dirs(c);
	}
}

static bool state_dirty(struct cni_collector *c)
{
	if (c->dirty || c->ddirty)
		return true;
	pthread_mutex_lock(&c->alock);
	bool acked = c->walked != c->saved_walked; /* the sink acknowledged lines */
	pthread_mutex_unlock(&c->alock);
	if (acked)
		return true;
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i]->changed)
			return true;
	return false;
}

/* Loads the resume state and watches and scans every target. */
static void thread_setup(struct cni_collector *c)
{
	cni_load_offsets(c);
	cni_load_dirs(c);
	for (size_t i = 0; i < c->nt; i++)
		cni_resolve_mode(c, c->t[i], SCAN_INITIAL);
	atomic_store(&c->base.healthy, true); /* until the state cannot be written */
	c->dirty = c->ddirty = true;
	cni_save_offsets(c);
	tlog(TLOG_INFO, "cni", "following %zu log files in %zu log dirs, netns %s, cache %s", c->nf,
	     c->nlog, c->netns_dir, c->cni_state_dir);
}

/* Whether the once-a-second work below has anything to do: a detached
 * file, a removed or unwatched target, a refused directory, offsets to
 * save, or lines whose acknowledgement will make offsets to save. */
static bool work_due(struct cni_collector *c)
{
	if (c->dir_refused || state_dirty(c) || ack_pending(&c->ack))
		return true;
	for (size_t i = 0; i < c->nf; i++)
		if (!c->f[i]->target)
			return true;
	/* a missing directory whose ancestor is watched comes with inotify */
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i]->removed || (c->t[i]->wd < 0 && c->t[i]->anc_wd < 0))
			return true;
	return false;
}

/* Waits for inotify events (not at all while a file has more to read, at
 * most POLL_MS while work is due, woken on stop) and dispatches them. */
static void wait_events(struct cni_collector *c)
{
	bool more = false;
	for (size_t i = 0; i < c->nf; i++)
		if (c->f[i]->more)
			more = true;
	struct pollfd p[2] = {
	    {.fd = c->ifd, .events = POLLIN},
	    {.fd = worker_wake_fd(&c->base.thread), .events = POLLIN},
	};
	/* a refused line (full queue): offer it again after a pause */
	int r = poll(p, 2, c->refused ? RETRY_MS : more ? 0 : work_due(c) ? POLL_MS : IDLE_POLL_MS);
	c->refused = false;
	if (r < 0 && errno != EINTR) {
		atomic_fetch_add(&c->base.n.errors, 1);
		collector_error(&c->base, "poll: %s", strerror(errno));
	}
	if (r > 0 && p[0].revents) {
		int err = cni_read_events(c);
		if (err) {
			atomic_fetch_add(&c->base.n.errors, 1);
			atomic_store(&c->base.healthy, false);
			collector_error(&c->base, "inotify read: %s", strerror(-err));
		}
	}
}

static void *thread_main(void *arg)
{
	struct cni_collector *c = arg;
	thread_setup(c);
	while (!collector_stopping(&c->base)) {
		wait_events(c);
		for (size_t i = 0; i < c->nf; i++)
			if (c->f[i]->more)
				cni_file_read(c, c->f[i]);
		uint64_t now = mono_ns();
		if (now - c->last_retry_ns >= RETRY_INTERVAL_NS) {
			c->last_retry_ns = now;
			sweep(c);
		}
		if (state_dirty(c) && now - c->last_save_ns >= SAVE_INTERVAL_NS)
			cni_save_offsets(c);
	}
	if (state_dirty(c))
		cni_save_offsets(c);
	return NULL;
}

static int cni_start(struct collector *base, struct queue *q)
{
	struct cni_collector *c = cc(base);
	if (base->thread.started)
		return -EALREADY;
	c->q = q;
	ack_register(base->source, &c->ack);
	c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ifd < 0) {
		int err = -errno;
		collector_error(base, "inotify_init1: %s", strerror(errno));
		return err;
	}
	int err = collector_spawn(base, thread_main);
	if (err) {
		close(c->ifd);
		c->ifd = -1;
		return err;
	}
	return 0;
}

static void cni_stop(struct collector *base)
{
	if (!base->thread.started)
		return;
	collector_join(base);
	atomic_store(&base->healthy, false);
}

static void cni_destroy(struct collector *base)
{
	struct cni_collector *c = cc(base);
	if (c->ack_ok) {
		ack_unregister(base->source, &c->ack);
		/* what the sink acknowledged after the thread ended */
		c->closing = true;
		if (base->thread.started && (c->nf || c->npend))
			cni_save_offsets(c);
		ack_destroy(&c->ack);
	}
	free(c->ring);
	free(c->acked);
	cni_dpend_prune(c, UINT64_MAX);
	free(c->pend);
	pthread_mutex_destroy(&c->alock);
	for (size_t i = 0; i < c->nf; i++)
		cni_file_free(c->f[i]);
	free(c->f);
	for (size_t i = 0; i < c->nt; i++)
		cni_target_free(c->t[i]);
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
	fn(ctx, "symlinks_refused", "", atomic_load(&c->symlinks_refused));
	fn(ctx, "resume_ambiguous", "", atomic_load(&c->resume_ambiguous));
	fn(ctx, "rotated_resumed", "", atomic_load(&c->rotated_resumed));
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

const struct opt_group cni_options_group =
    OPT_GROUP("cni", struct cni_options, cni_opt_table, NULL);

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

/* Splits --cni-log-dirs into c->log_dirs: clean paths, duplicates left out.
 * Returns 0, -EINVAL (reason in err) or -ENOMEM. */
static int parse_log_dirs(struct cni_collector *c, const char *dirs, char *err, size_t errlen)
{
	struct strlist l;
	if (strlist_split(&l, dirs))
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < l.n && !rc; i++) {
		char *p = clean_path(l.v[i], "--cni-log-dirs", err, errlen);
		if (!p) {
			rc = -EINVAL;
			break;
		}
		bool dup = false;
		for (size_t j = 0; j < c->nlog; j++)
			dup = dup || !strcmp(c->log_dirs[j], p);
		if (dup) {
			free(p);
			continue;
		}
		char **nv = realloc(c->log_dirs, (c->nlog + 1) * sizeof(*nv));
		if (!nv) {
			free(p);
			rc = -ENOMEM;
			break;
		}
		c->log_dirs = nv;
		c->log_dirs[c->nlog++] = p;
	}
	strlist_free(&l);
	return rc;
}

/* The netns and CNI state directories, the resume state directory and the
 * event size limits. Returns 0, -EINVAL (reason in err) or -ENOMEM. */
static int setup_paths(struct cni_collector *c, const struct cni_options *o,
		       const struct tapio_config *cfg, char *err, size_t errlen)
{
	c->netns_dir =
	    clean_path(or_default(o->netns_dir, DEFAULT_NETNS_DIR), "--netns-dir", err, errlen);
	if (!c->netns_dir)
		return -EINVAL;
	c->cni_state_dir = clean_path(or_default(o->state_dir, DEFAULT_CNI_STATE_DIR),
				      "--cni-state-dir", err, errlen);
	if (!c->cni_state_dir)
		return -EINVAL;
	if (cfg && cfg->state_dir && *cfg->state_dir && !(c->state_dir = strdup(cfg->state_dir)))
		return -ENOMEM;
	c->max_event =
	    cfg && cfg->max_event_size ? (size_t)cfg->max_event_size : CNI_DEFAULT_MAX_EVENT;
	if (c->max_event < 1024) {
		snprintf(err, errlen, "cni: --max-event-size: %zu is too small (at least 1024)",
			 c->max_event);
		return -EINVAL;
	}
	c->line_max = c->max_event < CNI_LINE_MAX ? c->max_event : CNI_LINE_MAX;
	c->bufcap = c->line_max + 64 * 1024;
	c->buf = malloc(c->bufcap);
	return c->buf ? 0 : -ENOMEM;
}

/* One target per log directory, the netns directory, results/ and networks/. */
static int add_targets(struct cni_collector *c)
{
	for (size_t i = 0; i < c->nlog; i++)
		if (!cni_target_add(c, T_LOG, c->log_dirs[i], NULL))
			return -ENOMEM;
	if (!cni_target_add(c, T_NETNS, c->netns_dir, NULL))
		return -ENOMEM;
	char *r = cni_join(c->cni_state_dir, "results"),
	     *n = cni_join(c->cni_state_dir, "networks");
	bool ok = r && n && cni_target_add(c, T_RESULTS, r, NULL) &&
		  cni_target_add(c, T_NETWORKS, n, NULL);
	free(r);
	free(n);
	return ok ? 0 : -ENOMEM;
}

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
	pthread_mutex_init(&c->alock, NULL);
	c->ring = calloc(CNI_RING, sizeof(*c->ring));
	if (!c->ring || ack_init(&c->ack, CNI_ACK_SLOTS, commit_lines, c)) {
		free(c->ring);
		pthread_mutex_destroy(&c->alock);
		free(c);
		snprintf(err, errlen, "cni: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	c->ack_ok = true;
	c->oversize_rl.interval_ns = OVERSIZE_REPORT_NS;
	int rc = parse_log_dirs(c, o->log_dirs ? o->log_dirs : DEFAULT_LOG_DIRS, err, errlen);
	if (!rc)
		rc = setup_paths(c, o, cfg, err, errlen);
	if (!rc)
		rc = add_targets(c);
	if (!rc)
		return &c->base;
	if (rc == -ENOMEM)
		snprintf(err, errlen, "cni: out of memory");
	cni_destroy(&c->base);
	errno = -rc;
	return NULL;
}

bool cni_collector_available(const struct collector_env *env)
{
	const struct cni_options *o = env && env->opts ? env->opts : &cni_defaults;
	struct stat st;
	struct strlist l;
	if (strlist_split(&l, o->log_dirs ? o->log_dirs : DEFAULT_LOG_DIRS) == 0) {
		bool found = false;
		for (size_t i = 0; i < l.n && !found; i++)
			found = stat(l.v[i], &st) == 0 && S_ISDIR(st.st_mode);
		strlist_free(&l);
		if (found)
			return true;
	}
	const char *ns = or_default(o->netns_dir, DEFAULT_NETNS_DIR);
	const char *cs = or_default(o->state_dir, DEFAULT_CNI_STATE_DIR);
	return (stat(ns, &st) == 0 && S_ISDIR(st.st_mode)) ||
	       (stat(cs, &st) == 0 && S_ISDIR(st.st_mode));
}
