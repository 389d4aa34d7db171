/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd collector's parts (private to collectors/systemd/):
 * collector.c (options, ops, constructor), filecheck.c (the journal files
 * check) and reader.c (the sd-journal follow loop, entry -> event). */
#ifndef TAPIO_COLLECTORS_SYSTEMD_INTERNAL_H
#define TAPIO_COLLECTORS_SYSTEMD_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-journal.h>

#include "collectors/systemd/entry.h"
#include "core/ack.h"
#include "core/collector.h"
#include "core/state.h"
#include "util/ratelimit.h"
#include "util/strbuf.h"
#include "util/strlist.h"

#define SYSTEMD_DEFAULT_UNITS "kubelet.service,containerd.service,crio.service,docker.service"
#define SYSTEMD_CURSOR_FILE "systemd.cursor"
#define POLL_MS 500 /* one wait while rescans are due (or a retry pause) */
/* One wait while inotify reports every change that matters: a change or a
 * stop (the wake fd) ends it; the timeout is a backstop rescan only. */
#define IDLE_POLL_MS 60000
#define BATCH 512    /* entries read before the stop flag is checked again */
#define RETRY_MS 100 /* pause before retrying an event the queue refused */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
/* journal files re-checked at least this often while the last scan left
 * something inotify does not report (rescan) */
#define RECHECK_NS (2ull * 1000000000ull)
#define ERR_INTERVAL_NS (5ull * 1000000000ull)
/* Entries in flight (handed to the queue, not yet acknowledged by the sink).
 * The ring of their cursors has twice as many slots, so the slot of the
 * safe point is never the one being written. */
#define ACK_SLOTS 4096u
#define RING_SLOTS (2u * ACK_SLOTS)
#define ID_MAX 120 /* a longer cursor is hashed into the event id */

/* A journal file seen by the file check. */
struct seen_file {
	char *path; /* where the last scan found it */
	dev_t dev;
	ino_t ino;
	off_t size;
	int fd;	      /* O_NOFOLLOW fd the journal reads, -1 = not read (a symlink,
		       * failed the open check, or not a journal yet) */
	bool bad;     /* failed the open check, or found corrupt by the walk */
	bool walked;  /* every entry walked (see verify_next_file) */
	bool present; /* found by the current scan */
	bool link;    /* a symlink (refused for good) */
};

struct systemd_collector {
	struct collector base; /* base.thread: the reader thread and its wake fd */

	/* config (owned copies) */
	char *dir;   /* "" = the local journal */
	char *since; /* now | head | a cursor */
	struct strlist units;
	size_t max_event_size;
	bool os_root; /* dir is an OS tree (holds var/log/journal) */

	struct queue *q;

	/* Acknowledgement: every entry read gets the next sequence number
	 * (seq, from 1) and its cursor is kept in ring[seq % RING_SLOTS]; the
	 * tracker's commit (any sink thread) saves the cursor of its safe
	 * point, the highest sequence whose entries the sink all has. */
	struct ack_tracker ack;
	bool ack_ok;
	char **ring;
	uint64_t seq;

	/* thread-only state */
	sd_journal *j;
	struct cursor cur;
	struct strbuf arena; /* field bytes of the current entry */
	size_t *offs;	     /* field offsets into arena */
	size_t *lens;
	struct journal_field *fields;
	size_t offs_cap, lens_cap, fields_cap;
	struct strbuf json;
	struct seen_file *files;
	size_t nfiles, files_cap;
	uint64_t files_gen; /* bumped when the set of readable fds changes */
	uint64_t j_gen;	    /* files_gen that s->j was opened with */
	int ndirs;	    /* journal directories found by the last scan */
	int ifd;	    /* inotify on the journal directories */
	char *pos;	    /* the reader's position: kept across reopening */
	bool opened_once;   /* positioned by --journal-since/the stored cursor */
	uint64_t last_check_ns;
	/* the last scan left what inotify does not report: a directory without
	 * a watch (or not there yet), or a file not readable yet (it grows
	 * with IN_MODIFY only): rescanned every RECHECK_NS */
	bool rescan;
	struct ratelimit rl_read, rl_entry, rl_emit;

	/* extra counters */
	_Atomic uint64_t emit_retries;	   /* queue refusals that were retried */
	_Atomic uint64_t invalidations;	   /* SD_JOURNAL_INVALIDATE seen */
	_Atomic uint64_t bad_files;	   /* journal files that failed the check */
	_Atomic uint64_t symlinks_refused; /* symlinked files and directories */
};

static inline struct systemd_collector *to_sd(struct collector *c)
{
	return (struct systemd_collector *)c;
}

static inline void count(_Atomic uint64_t *v)
{
	atomic_fetch_add_explicit(v, 1, memory_order_relaxed);
}

static inline bool stopping(struct systemd_collector *s)
{
	return collector_stopping(&s->base);
}

/* Reports through collector_report(): rl NULL reports always, else at most
 * once per ERR_INTERVAL_NS per kind. */
#define report(s, rl, ...) collector_report(&(s)->base, (rl), __VA_ARGS__)

/* ---- collector.c ---- */

/* A journal cursor: ';'-separated key=value pairs with keys s, i, b, m, t, x. */
bool cursor_syntax_ok(const char *c);
/* A whole journal cursor, every field there (cursor_load_legacy). */
bool cursor_complete(const char *c);
/* The event id of the entry at cursor c: the cursor itself, or
 * "journal-<fnv1a64 of it>" when longer than ID_MAX. */
void journal_event_id(const char *c, char *out, size_t outlen);

/* ---- filecheck.c ---- */

/* A journal file's name: *.journal or *.journal~. */
bool journal_file_name(const char *name);
/* Scans the journal directories (watched on s->ifd): opens each new file
 * with O_NOFOLLOW and checks it alone, re-checks replaced or shrunk ones,
 * refuses symlinks (named once), and forgets deleted ones. */
void check_files(struct systemd_collector *s);
/* sd_journal_open_files_fd() on duplicates of the n fds: the journal closes
 * the fds it was given when it is closed, and these stay the file check's. */
int journal_open_fds(sd_journal **j, const int *fds, unsigned n);
/* Opens each readable file alone again and drops those that fail (named
 * once). Returns how many were dropped. */
int drop_unreadable(struct systemd_collector *s);
/* Walks one file that has not been walked yet. Returns true when a file was
 * walked. */
bool verify_next_file(struct systemd_collector *s);
/* Frees the file list. */
void files_free(struct systemd_collector *s);

/* ---- reader.c ---- */

/* Waits up to ms on the thread's wake fd. Returns true when stopping. */
bool sleep_ms(struct systemd_collector *s, int ms);
/* The collector's thread (collector_spawn): arg is the collector. */
void *systemd_thread(void *arg);
void journal_close(struct systemd_collector *s);

#endif
