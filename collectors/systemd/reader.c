/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd collector's reader: the thread that owns the sd_journal handle.
 *
 * It opens the journal, positions it (stored cursor, else --journal-since),
 * drains the entries that match the unit filter into the queue, then waits on
 * the inotify fd of the journal directories (filecheck.c) and the thread's
 * wake fd, with a short poll timeout. The journal is the set of files the
 * file check opened without following symlinks (sd_journal_open_files_fd());
 * when that set changes (a new file, rotation, a deleted file) the journal is
 * opened again and positioned at the cursor of the current entry, so reading
 * continues after it. The stored cursor follows the sink's acknowledgements
 * (collector.c: commit_seq), not this thread's reading. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <systemd/sd-id128.h>
#include <systemd/sd-journal.h>

#include "collectors/systemd/internal.h"
#include "collectors/systemd/systemd.h"
#include "core/event.h"
#include "http/watch.h"
#include "util/backoff.h"
#include "util/clock.h"
#include "util/vec.h"

bool sleep_ms(struct systemd_collector *s, int ms)
{
	struct pollfd p = {.fd = worker_wake_fd(&s->base.thread), .events = POLLIN};

	if (stopping(s))
		return true;
	(void)poll(&p, 1, ms);
	return stopping(s);
}

/* Keeps the position of the current entry in s->pos (when there is one). */
static void journal_keep_pos(struct systemd_collector *s)
{
	char *c = NULL;

	if (s->j && sd_journal_get_cursor(s->j, &c) >= 0) {
		free(s->pos);
		s->pos = c;
	}
}

static void set_pos(struct systemd_collector *s, const char *c)
{
	char *p = strdup(c);

	if (p) {
		free(s->pos);
		s->pos = p;
	}
}

void journal_close(struct systemd_collector *s)
{
	journal_keep_pos(s);
	sd_journal_close(s->j); /* and its dups of the file check's fds */
	s->j = NULL;
}

static int add_unit_matches(struct systemd_collector *s)
{
	char m[300];
	int r;

	if (s->units.n == 0)
		return 0;
	/* _SYSTEMD_UNIT=a OR _SYSTEMD_UNIT=b ... (same field: OR) */
	for (size_t i = 0; i < s->units.n; i++) {
		snprintf(m, sizeof(m), "_SYSTEMD_UNIT=%s", s->units.v[i]);
		r = sd_journal_add_match(s->j, m, 0);
		if (r < 0)
			return r;
	}
	/* OR (UNIT=a OR UNIT=b ...) AND _PID=1: what systemd itself logs about
	 * the unit (started, failed, restarting), as journalctl -u shows it */
	r = sd_journal_add_disjunction(s->j);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->units.n; i++) {
		snprintf(m, sizeof(m), "UNIT=%s", s->units.v[i]);
		r = sd_journal_add_match(s->j, m, 0);
		if (r < 0)
			return r;
	}
	return sd_journal_add_match(s->j, "_PID=1", 0);
}

/* Opens the journal (s->j) with the unit matches. Returns 0, or a negative
 * errno with *what naming the call that failed. */
static int journal_open_handle(struct systemd_collector *s, const char **what)
{
	int *fds = NULL, r;
	unsigned n = 0;

	/* Every machine id's directory, as sd_journal_open(0) would: inside a
	 * container /etc/machine-id is not the host's. */
	s->j_gen = s->files_gen;
	*what = "open";
	if (s->ndirs == 0)
		return -ENOENT;
	fds = calloc(s->nfiles + 1, sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	for (size_t i = 0; i < s->nfiles; i++)
		if (s->files[i].fd >= 0)
			fds[n++] = s->files[i].fd;
	if (n == 0) {
		free(fds);
		return 0; /* no journal file yet: waited for */
	}
	*what = "sd_journal_open_files_fd";
	r = journal_open_fds(&s->j, fds, n);
	free(fds);
	if (r < 0 && drop_unreadable(s) > 0)
		return journal_open_handle(s, what); /* without the files that failed */
	if (r < 0)
		return r;
	/* Compressed fields are cut at the threshold: one byte over the event
	 * limit is enough to see that the entry is too big. */
	*what = "sd_journal_set_data_threshold";
	r = sd_journal_set_data_threshold(s->j, s->max_event_size ? s->max_event_size + 1 : 0);
	if (r < 0)
		return r;
	*what = "sd_journal_add_match";
	return add_unit_matches(s);
}

/* --journal-since=now: the last entry counts as read and becomes the cursor.
 * Returns 1 when positioned, 0 for an empty journal (everything that arrives
 * is new), or a negative errno with *what set. */
static int journal_seek_now(struct systemd_collector *s, const char **what)
{
	char *c = NULL;
	int r;

	*what = "sd_journal_seek_tail";
	r = sd_journal_seek_tail(s->j);
	if (r < 0)
		return r;
	*what = "sd_journal_previous";
	r = sd_journal_previous(s->j);
	if (r <= 0)
		return r;
	*what = "sd_journal_get_cursor";
	r = sd_journal_get_cursor(s->j, &c);
	if (r < 0)
		return r;
	cursor_update(&s->cur, c);
	cursor_flush(&s->cur);
	set_pos(s, c);
	free(c);
	return 1;
}

/* Positions the opened journal: the stored cursor, else --journal-since.
 * Returns 0 or a negative errno with *what set. */
static int journal_seek(struct systemd_collector *s, char *skip, size_t skiplen, const char **what)
{
	char pos[CURSOR_MAX];
	int r;

	cursor_get(&s->cur, pos, sizeof(pos));
	if (!pos[0] && strcmp(s->since, "now") && strcmp(s->since, "head"))
		snprintf(pos, sizeof(pos), "%s", s->since);
	if (pos[0]) {
		r = sd_journal_seek_cursor(s->j, pos);
		if (r >= 0) {
			snprintf(skip, skiplen, "%s", pos);
			set_pos(s, pos);
			return 0;
		}
		count(&s->base.n.errors);
		report(s, NULL, "sd_journal_seek_cursor(%s): %s; starting at --journal-since=%s",
		       pos, strerror(-r), s->since);
	}
	if (!strcmp(s->since, "now")) {
		r = journal_seek_now(s, what);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	*what = "sd_journal_seek_head";
	r = sd_journal_seek_head(s->j);
	return r < 0 ? r : 0;
}

/* Opens the journal and positions it. *skip gets the cursor whose entry the
 * first sd_journal_next() may land on and that was already emitted ("" when
 * none). Returns 0 or a negative errno (reported). */
static int journal_open(struct systemd_collector *s, char *skip, size_t skiplen)
{
	const char *what = "sd_journal_open";
	int r;

	skip[0] = '\0';
	r = journal_open_handle(s, &what);
	if (r >= 0 && s->j) {
		if (!s->opened_once) {
			r = journal_seek(s, skip, skiplen, &what);
		} else if (s->pos) {
			/* opened again: continue after the current entry */
			what = "sd_journal_seek_cursor";
			r = sd_journal_seek_cursor(s->j, s->pos);
			snprintf(skip, skiplen, "%s", s->pos);
		} else {
			/* nothing read yet: what the journal holds now is new */
			what = "sd_journal_seek_head";
			r = sd_journal_seek_head(s->j);
		}
	}
	if (r >= 0) {
		s->opened_once = true;
		return 0;
	}
	count(&s->base.n.errors);
	report(s, &s->rl_read, "%s(%s): %s", what, *s->dir ? s->dir : "local journal",
	       strerror(-r));
	journal_close(s);
	return r;
}

/* Appends one field, prefix followed by len bytes of d, to the field arena. */
static void arena_field(struct systemd_collector *s, size_t *n, const char *prefix, const void *d,
			size_t len)
{
	if (VEC_RESERVE(s->offs, s->offs_cap, *n + 1) ||
	    VEC_RESERVE(s->lens, s->lens_cap, *n + 1) ||
	    VEC_RESERVE(s->fields, s->fields_cap, *n + 1)) {
		s->arena.err = -ENOMEM;
		return;
	}
	s->offs[*n] = s->arena.len;
	sb_puts(&s->arena, prefix);
	sb_add(&s->arena, d, len);
	s->lens[*n] = s->arena.len - s->offs[*n];
	(*n)++;
}

enum step { STEP_NEXT, STEP_RETRY_LATER, STEP_STOP };

/* What a phase of handle_entry() did with the entry. */
enum phase { PHASE_OK, PHASE_SKIP, PHASE_NOMEM };

/* Reads the current entry's fields into the arena, address fields first (as
 * journalctl -o export shows them), and points s->fields at them; *n gets the
 * count, *rt the realtime stamp. PHASE_SKIP when unreadable (counted and
 * reported). */
static enum phase entry_fields(struct systemd_collector *s, const char *cur, size_t *n,
			       uint64_t *rt)
{
	char num[64];
	uint64_t mono = 0;
	sd_id128_t boot;
	const void *d;
	size_t len;
	bool have_boot = false;
	int r;

	r = sd_journal_get_realtime_usec(s->j, rt);
	if (r >= 0)
		r = sd_journal_get_monotonic_usec(s->j, &mono, &boot);
	if (r < 0) {
		count(&s->base.n.parse_errors);
		report(s, &s->rl_entry, "entry %s: timestamps unreadable, skipped: %s", cur,
		       strerror(-r));
		return PHASE_SKIP;
	}
	sb_reset(&s->arena);
	arena_field(s, n, "__CURSOR=", cur, strlen(cur));
	len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, *rt);
	arena_field(s, n, "__REALTIME_TIMESTAMP=", num, len);
	len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, mono);
	arena_field(s, n, "__MONOTONIC_TIMESTAMP=", num, len);
	sd_journal_restart_data(s->j);
	while ((r = sd_journal_enumerate_data(s->j, &d, &len)) > 0) {
		if (len > 9 && !memcmp(d, "_BOOT_ID=", 9))
			have_boot = true;
		arena_field(s, n, "", d, len);
	}
	if (r < 0) {
		count(&s->base.n.parse_errors);
		report(s, &s->rl_entry, "entry %s: sd_journal_enumerate_data: %s; entry skipped",
		       cur, strerror(-r));
		return PHASE_SKIP;
	}
	if (!have_boot) {
		char b[SD_ID128_STRING_MAX];

		sd_id128_to_string(boot, b);
		arena_field(s, n, "_BOOT_ID=", b, strlen(b));
	}
	if (s->arena.err)
		return PHASE_NOMEM;
	for (size_t i = 0; i < *n; i++)
		s->fields[i] =
		    (struct journal_field){.data = s->arena.buf + s->offs[i], .len = s->lens[i]};
	return PHASE_OK;
}

/* Builds the event body in s->json from the n fields. */
static enum phase entry_json(struct systemd_collector *s, const char *cur, size_t n)
{
	size_t bad = 0;
	int r;

	sb_reset(&s->json);
	r = journal_entry_json(&s->json, s->fields, n, s->max_event_size, &bad);
	if (bad) {
		count(&s->base.n.parse_errors);
		report(s, &s->rl_entry, "entry %s: %zu malformed fields skipped", cur, bad);
	}
	if (r == -E2BIG) {
		count(&s->base.n.oversize);
		report(s, &s->rl_entry, "entry %s: larger than max_event_size (%zu bytes), skipped",
		       cur, s->max_event_size);
		return PHASE_SKIP;
	}
	return r < 0 ? PHASE_NOMEM : PHASE_OK;
}

/* Gives the entry read next its sequence number, with its cursor in the
 * ring. Returns the number, or 0 when out of memory. */
static uint64_t entry_seq(struct systemd_collector *s, const char *cur)
{
	uint64_t seq = s->seq + 1;
	char **slot = &s->ring[seq % RING_SLOTS];
	char *c = strdup(cur);

	if (!c)
		return 0;
	/* the slot's old cursor is RING_SLOTS entries back: at most ACK_SLOTS
	 * are unsettled, so it is behind the safe point and no longer read */
	free(*slot);
	*slot = c;
	s->seq = seq;
	return seq;
}

/* The entry at seq is done with without an event (skipped for good and
 * counted): the cursor may move past it once the sink has what came before. */
static void entry_done(struct systemd_collector *s, uint64_t seq)
{
	uint32_t token = ack_track(&s->ack, seq);

	if (token)
		ack_settle(&s->ack, token);
	ack_through(&s->ack, seq);
}

/* Offers the event to the queue until it is taken, can never fit, or the
 * collector stops. Returns STEP_NEXT or STEP_STOP. */
static int entry_emit(struct systemd_collector *s, char *cur, uint64_t seq, size_t n, uint64_t rt)
{
	char unit[256] = "", host[256] = "", prio[32] = "", id[ID_MAX + 1];
	int r;

	/* meta: the watched unit (_SYSTEMD_UNIT, or UNIT for systemd's own
	 * messages about it), hostname, priority, cursor, and the event id
	 * (the cursor: the same entry read again has the same id) */
	r = journal_field_get(s->fields, n, "_SYSTEMD_UNIT", unit, sizeof(unit));
	if (s->units.n && (r < 0 || !strlist_has(&s->units, unit)))
		journal_field_get(s->fields, n, "UNIT", unit, sizeof(unit));
	journal_field_get(s->fields, n, "_HOSTNAME", host, sizeof(host));
	journal_field_get(s->fields, n, "PRIORITY", prio, sizeof(prio));
	journal_event_id(cur, id, sizeof(id));
	struct meta_kv kv[] = {
	    {"unit", unit[0] ? unit : NULL},
	    {"hostname", host[0] ? host : NULL},
	    {"priority", prio[0] ? prio : NULL},
	    {"cursor", cur},
	    {"id", id},
	};

	for (;;) {
		uint32_t token = ack_track(&s->ack, seq);

		r = token ? event_emit_ack(s->q, s->base.source, TYPE_SYSTEMD_JOURNAL, FMT_JSON,
					   rt * 1000ull, kv, sizeof(kv) / sizeof(kv[0]),
					   s->json.buf, s->json.len, token)
			  : -ENOSPC; /* too many unacknowledged: wait like a full queue */
		if (r && token)
			ack_untrack(&s->ack, token);
		if (r == 0) {
			collector_count_emit(&s->base, 0);
			ack_through(&s->ack, seq);
			return STEP_NEXT;
		}
		if (r == -E2BIG || r == -EINVAL) {
			/* can never fit in the queue: skip it */
			count(&s->base.n.oversize);
			report(s, &s->rl_emit,
			       "entry %s: %zu bytes do not fit in the queue, skipped", cur,
			       s->json.len);
			entry_done(s, seq);
			return STEP_NEXT;
		}
		if (r == -ESHUTDOWN || stopping(s)) {
			/* not enqueued and the cursor stays before it: read again
			 * after the next start */
			count(&s->base.n.refetched);
			return STEP_STOP;
		}
		/* full queue (the wait bound passed) or too many entries waiting
		 * for the sink: the journal still holds the entry, so wait and
		 * offer it again */
		count(&s->emit_retries);
		count(&s->base.n.refetched);
		report(s, &s->rl_emit, "queue full, retrying entry %s", cur);
		if (sleep_ms(s, RETRY_MS))
			return STEP_STOP;
	}
}

/* Reads the current entry and emits it. Returns STEP_NEXT when the entry is
 * done with (emitted, or skipped and counted), STEP_STOP when stopping before
 * it was emitted, STEP_RETRY_LATER when out of memory, or a negative errno
 * from sd-journal. */
static int handle_entry(struct systemd_collector *s)
{
	char *cur = NULL;
	uint64_t rt = 0, seq;
	size_t n = 0;
	enum phase p;
	int r;

	r = sd_journal_get_cursor(s->j, &cur);
	if (r < 0)
		return r;
	p = entry_fields(s, cur, &n, &rt);
	if (p == PHASE_OK)
		p = entry_json(s, cur, n);
	seq = p == PHASE_NOMEM ? 0 : entry_seq(s, cur);
	if (!seq) {
		/* out of memory: try the entry again later */
		free(cur);
		count(&s->base.n.errors);
		report(s, &s->rl_entry, "out of memory building an entry");
		return STEP_RETRY_LATER;
	}
	if (p != PHASE_OK) {
		entry_done(s, seq);
	} else if (entry_emit(s, cur, seq, n, rt) == STEP_STOP) {
		free(cur);
		return STEP_STOP;
	}
	free(cur);
	return STEP_NEXT;
}

/* Drains matching entries. Returns 0 when caught up, 1 when a batch was read
 * and there may be more, STEP_STOP-style 2 when stopping, or -errno. */
static int drain(struct systemd_collector *s, char *skip)
{
	for (int i = 0; i < BATCH; i++) {
		int r;

		if (stopping(s))
			return 2;
		r = sd_journal_next(s->j);
		if (r < 0) {
			count(&s->base.n.errors);
			report(s, &s->rl_read, "sd_journal_next: %s", strerror(-r));
			return r;
		}
		if (r == 0)
			return 0;
		if (skip[0]) {
			/* the first entry after a seek to a stored cursor is that
			 * entry itself when it still exists: already emitted */
			bool same = sd_journal_test_cursor(s->j, skip) > 0;

			skip[0] = '\0';
			if (same)
				continue;
		}
		r = handle_entry(s);
		if (r == STEP_STOP)
			return 2;
		if (r == STEP_RETRY_LATER) {
			sd_journal_previous(s->j);
			return sleep_ms(s, RETRY_MS) ? 2 : 1;
		}
		if (r < 0) {
			count(&s->base.n.errors);
			report(s, &s->rl_read, "reading an entry: %s", strerror(-r));
			return r;
		}
	}
	return 1;
}

/* Waits for a change in the journal directories (or the wake fd, or the poll
 * timeout). Returns 1 when files were added, removed or renamed (or inotify
 * overflowed), 0 otherwise, or -errno. */
static int wait_journal(struct systemd_collector *s)
{
	struct pollfd p[2] = {
	    {.fd = s->ifd, .events = POLLIN},
	    {.fd = worker_wake_fd(&s->base.thread), .events = POLLIN},
	};
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int changed = 0, r;
	ssize_t n;

	r = poll(p, 2, s->rescan ? POLL_MS : IDLE_POLL_MS);
	if (r < 0 && errno != EINTR)
		return -errno;
	if (s->ifd < 0 || !(p[0].revents & POLLIN))
		return 0;
	while ((n = read(s->ifd, buf, sizeof(buf))) > 0) {
		for (char *e = buf; e < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)e;

			if (ev->mask & ~(uint32_t)IN_MODIFY)
				changed = 1;
			e += sizeof(*ev) + ev->len;
		}
	}
	return changed;
}

/* Reads the open journal until it fails or the collector stops. */
static void follow(struct systemd_collector *s, char *skip)
{
	for (;;) {
		int r = s->j ? drain(s, skip) : 0;

		if (r == 2 && !stopping(s)) {
			/* the queue is closed: nothing more can be sent */
			while (!sleep_ms(s, POLL_MS))
				;
		}
		if (r == 2 || r < 0)
			return;
		if (r == 1)
			continue;
		/* caught up: spend the idle time walking one journal file */
		if (verify_next_file(s))
			continue;
		r = wait_journal(s);
		if (r < 0) {
			count(&s->base.n.errors);
			report(s, &s->rl_read, "poll on the journal fd: %s", strerror(-r));
			return;
		}
		if (stopping(s))
			return;
		if (r == 1 || (s->rescan && mono_ns() - s->last_check_ns > RECHECK_NS) ||
		    mono_ns() - s->last_check_ns >= (uint64_t)IDLE_POLL_MS * 1000000ull)
			check_files(s);
		if (s->files_gen != s->j_gen) {
			/* files were added, removed or rotated: open the journal
			 * with the new set, at the current entry */
			count(&s->invalidations);
			journal_close(s);
			if (journal_open(s, skip, CURSOR_MAX) < 0)
				return;
		}
	}
}

void *systemd_thread(void *arg)
{
	struct systemd_collector *s = arg;
	char skip[CURSOR_MAX];
	unsigned attempt = 0;
	int r;

	s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->ifd < 0) {
		/* the directories are scanned every RECHECK_NS instead */
		count(&s->base.n.errors);
		report(s, NULL, "inotify_init1: %s; journal directories polled", strerror(errno));
	}
	while (!stopping(s)) {
		check_files(s);
		if (journal_open(s, skip, sizeof(skip)) == 0) {
			atomic_store(&s->base.healthy, true);
			attempt = 0;
			follow(s, skip);
			journal_close(s);
			if (stopping(s))
				break;
			count(&s->base.n.reconnects);
		}
		atomic_store(&s->base.healthy, false);
		if (sleep_ms(s, (int)backoff_ms(attempt++, BACKOFF_MIN_MS, BACKOFF_MAX_MS)))
			break;
	}
	if (s->ifd >= 0)
		close(s->ifd);
	s->ifd = -1;
	r = cursor_flush(&s->cur);
	if (r < 0) {
		count(&s->base.n.errors);
		report(s, NULL, "saving the cursor in %s: %s", s->cur.dir, strerror(-r));
	}
	atomic_store(&s->base.healthy, false);
	return NULL;
}
