/* SPDX-License-Identifier: Apache-2.0 */
/* The CNI collector's private parts, shared by its files:
 *   collector.c  ops, start/stop, the thread loop, emitting, the constructor
 *   targets.c    watch targets, inotify watches, directory scans, event dispatch
 *   logs.c       log-file tailing and cni.log events
 *   dirs.c       netns, results cache and IPAM snapshots and their events
 *   persist.c    the offsets and directory state files
 * See collector.c for the overall design. */
#ifndef TAPIO_CNI_INTERNAL_H
#define TAPIO_CNI_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "collectors/cni/parse.h"
#include "collectors/cni/tail.h"
#include "core/ack.h"
#include "core/collector.h"
#include "core/event.h"
#include "util/ratelimit.h"
#include "util/strbuf.h"

enum tkind { T_LOG, T_NETNS, T_RESULTS, T_NETWORKS, T_IPAM };

enum scan_mode {
	/* present at start: logs start at the end (first start) or the saved offset */
	SCAN_INITIAL,
	SCAN_NEW,    /* appeared while running: everything in it is new */
	SCAN_RESCAN, /* after IN_Q_OVERFLOW: emit what changed */
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
	struct tail_fp fp; /* at fp_off, when fp_ok */
	uint64_t fp_off;
	bool fp_ok;
	struct tail_fp rd_fp; /* at rd_off (the read position), when rd_ok */
	uint64_t rd_off;
	bool rd_ok;
	/* event ids: cni-<id_dev>-<id_ino>-<offset>-<hash of the line>; a rotated
	 * copy read after a copytruncate has the original's (dev, ino) */
	uint64_t id_dev, id_ino;
	bool seen;
	bool more; /* stopped on the read budget */
};

/* Acknowledgement of log lines: every line emitted gets the next sequence
 * number, and ring[seq % CNI_RING] keeps its file and the offset after it.
 * The tracker's commit (a sink thread) walks the sequences up to its safe
 * point into `acked`: per file, the offset up to which the sink has every
 * line. The offsets file holds those, not what was read. */
#define CNI_ACK_SLOTS 4096u
#define CNI_RING (2u * CNI_ACK_SLOTS)

struct cni_pos {
	uint64_t dev, ino, off;
	bool dir; /* a netns, result or IPAM event: no file offset */
};

/* A netns, result or IPAM event the sink has not acknowledged yet, with the
 * entry's state before it (had: it was recorded). Until it is acknowledged,
 * cni-dirs keeps that older state, so that a restart reports the change
 * again. */
struct cni_dpend {
	uint64_t seq;
	char kind; /* cni_ds_kind() */
	char *path;
	bool had;
	uint64_t ino;
	int64_t mtime_ns;
	uint64_t size;
	struct cni_meta *m; /* NULL: none */
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

	struct queue *q;
	int ifd;

	struct target **t;
	size_t nt, capt;
	struct cni_file **f;
	size_t nf, capf;

	struct tail_state saved;
	int64_t saved_at_ns; /* when the offsets file was written (its mtime), or 0 */
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

	struct cni_file *cur;	      /* the file being read (line callback) */
	struct ratelimit oversize_rl; /* skipped long lines: once a second */
	int last_state_err;
	uint64_t last_state_log_ns;

	struct ack_tracker ack;
	bool ack_ok;
	struct cni_pos *ring;
	uint64_t seq;		/* the last sequence handed out (thread) */
	uint64_t walked;	/* the last sequence walked into acked (under alock) */
	uint64_t saved_walked;	/* walked at the last save of the offsets (under alock) */
	bool refused;		/* a line was refused: retry after a pause */
	bool dir_refused;	/* a directory event was refused: rescan (sweep) */
	struct cni_dpend *pend; /* directory events not acknowledged, in seq order */
	size_t npend, cappend;
	bool pend_written; /* the last cni-dirs held reverted entries */
	bool closing;	   /* destroy's last save: the base's lock is gone */
	pthread_mutex_t alock;
	struct cni_pos *acked; /* per file: offset up to which the sink has every line */
	size_t nacked, capacked;

	_Atomic uint64_t overflows, truncations, rotations, state_errors, vanished;
	_Atomic uint64_t symlinks_refused;
	_Atomic uint64_t resume_ambiguous; /* saved offsets that could not be checked */
	_Atomic uint64_t rotated_resumed;  /* rotated copies read from a saved offset */
	uint64_t refused_names[256];	   /* hashes of the refused paths already named */
};

static inline int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* collector.c: emitting and helpers */

/* Emits a netns, result or IPAM event for the entry `path` of kind `kind`
 * (cni_ds_kind), tracked until the sink has it (cni_dpend). old: the entry as
 * recorded before (NULL: none); st: the file now (ADD; NULL for DEL). Its id
 * is stable across restarts: cni-<kind>-<op>-<ino>-<mtime ns>-<size>-<hash of
 * the path> of st (ADD) or old (DEL). Returns 0 when done with (the caller
 * records the change), nonzero when refused (full queue): nothing is
 * recorded, and a rescan reports it again. */
int cni_emit_dir(struct cni_collector *c, char kind, const char *path, const struct snap_ent *old,
		 const struct stat *st, unsigned type, enum tapio_fmt fmt, const struct cni_meta *m,
		 const char *op, const char *ip, const void *data, size_t len);
/* cni_emit_dir with data {"name":..,"path":..} (netns events, deletions). */
int cni_emit_dir_name_path(struct cni_collector *c, char kind, const char *path,
			   const struct snap_ent *old, const struct stat *st, unsigned type,
			   const struct cni_meta *m, const char *op, const char *ip,
			   const char *name);
/* Drops the acknowledged entries of c->pend (seq <= walked). */
void cni_dpend_prune(struct cni_collector *c, uint64_t walked);
/* A symlink where a followed directory or file should be: never followed (at
 * start or later). Counted and named once per path. */
void cni_refuse_symlink(struct cni_collector *c, const char *path);
/* "dir/name", malloc'd; NULL when out of memory. */
char *cni_join(const char *dir, const char *name);
/* Reads a whole regular file (at most max bytes) into c->sb. Returns 0,
 * -EFBIG when it is larger, or a negative errno (-ENOENT when it is gone). */
int cni_read_file(struct cni_collector *c, const char *path, size_t max, struct stat *st);

/* Emits one log line of file f starting at off (resumable: tracked until
 * the sink has it, id cni-<dev>-<ino>-<off>-<line hash>). Returns 0 when done with,
 * nonzero when refused (full queue, stopping): it is read again later. */
int cni_emit_line(struct cni_collector *c, struct cni_file *f, const struct cni_meta *m,
		  const char *line, size_t len, uint64_t off);
/* The acknowledged offset of a file (set: sets it, e.g. where reading starts). */
void cni_acked_set(struct cni_collector *c, uint64_t dev, uint64_t ino, uint64_t off);
bool cni_acked_get(struct cni_collector *c, uint64_t dev, uint64_t ino, uint64_t *off);

/* logs.c */
void cni_file_read(struct cni_collector *c, struct cni_file *f);
void cni_file_free(struct cni_file *f);
/* Reads what is left through the fd, then forgets the file. */
void cni_file_finish(struct cni_collector *c, struct cni_file *f);
struct cni_file *cni_file_by_name(struct cni_collector *c, struct target *t, const char *name);
/* Finds or opens the file name in log target t and reads what is new. */
void cni_log_touch(struct cni_collector *c, struct target *t, const char *name, enum scan_mode mode,
		   bool check_inode);

/* dirs.c */
struct snap_ent *cni_snap_find(struct target *t, const char *name);
void cni_snap_del(struct target *t, const char *name);
void cni_snap_clear(struct target *t);
/* Records name with its stat and (copied) meta. */
void cni_snap_set(struct cni_collector *c, struct target *t, const char *name,
		  const struct stat *st, const struct cni_meta *m);
/* True when name is already recorded with this very file (same inode, mtime
 * and size). */
bool cni_snap_same(struct target *t, const char *name, const struct stat *st);
void cni_result_add(struct cni_collector *c, struct target *t, const char *name, bool scanned);
void cni_result_del(struct cni_collector *c, struct target *t, const char *name);
void cni_ipam_add(struct cni_collector *c, struct target *t, const char *name, bool scanned);
void cni_ipam_del(struct cni_collector *c, struct target *t, const char *name);
void cni_netns_event(struct cni_collector *c, struct target *t, const char *name, bool add,
		     const struct stat *st);
/* SCAN_INITIAL: records a present entry (reading its metadata) without an event. */
void cni_dir_record(struct cni_collector *c, struct target *t, const char *name,
		    const struct stat *st);

/* targets.c */
struct target *cni_target_add(struct cni_collector *c, enum tkind kind, const char *path,
			      const char *net);
void cni_target_free(struct target *t);
/* Removes a watch that no target uses any more. */
void cni_release_wd(struct cni_collector *c, int wd);
/* The kind letter of a directory target in the state file. */
char cni_ds_kind(enum tkind k);
/* Tries to watch t's directory; when missing, watches its nearest existing
 * ancestor instead. */
void cni_resolve_mode(struct cni_collector *c, struct target *t, enum scan_mode mode);
void cni_resolve(struct cni_collector *c, struct target *t);
void cni_scan(struct cni_collector *c, struct target *t, enum scan_mode mode);
/* Reads and dispatches pending inotify events. Returns 0 or a negative errno. */
int cni_read_events(struct cni_collector *c);
/* Rescans the netns, results, networks and IPAM directories (after a
 * refused event). */
void cni_rescan_dirs(struct cni_collector *c);

/* persist.c */
void cni_load_offsets(struct cni_collector *c);
void cni_load_dirs(struct cni_collector *c);
/* Saves the offsets and (when changed) the directory snapshots. */
int cni_save_offsets(struct cni_collector *c);

#endif
