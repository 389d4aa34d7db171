/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd journal collector (see README.md next to this file).
 *
 * One thread owns the sd_journal handle: it opens the journal, positions it
 * (stored cursor, else --journal-since), drains the entries that match the
 * unit filter into the queue, then waits on sd_journal_get_fd() and an eventfd
 * for stop, with a short poll timeout. sd_journal_process() reports appends
 * and SD_JOURNAL_INVALIDATE (rotation, files added or removed); after either,
 * reading just continues after the current entry.
 *
 * The cursor of the last entry handed to the queue is kept in the state
 * directory. An entry whose event the queue refuses is retried, and the cursor
 * does not move past it; when the agent stops during such a retry the entry is
 * read again after the restart.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-id128.h>
#include <systemd/sd-journal.h>

#include "core/collector.h"
#include "collectors/systemd/entry.h"
#include "collectors/systemd/systemd.h"
#include "core/config.h"
#include "core/options.h"
#include "core/event.h"
#include "core/state.h"
#include "util/clock.h"
#include "util/strbuf.h"
#include "util/strlist.h"
#include "http/watch.h"

#define SYSTEMD_DEFAULT_UNITS "kubelet.service,containerd.service,crio.service,docker.service"
#define SYSTEMD_CURSOR_FILE "systemd.cursor"
#define POLL_MS 500  /* upper bound of one wait: the stop flag is checked this often */
#define BATCH 512    /* entries read before the stop flag is checked again */
#define RETRY_MS 100 /* pause before retrying an event the queue refused */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define RECHECK_NS (2ull * 1000000000ull) /* journal files re-checked at least this often */
#define ERR_INTERVAL_NS (5ull * 1000000000ull)

/* A journal file seen by the file check. */
struct seen_file {
	char *path; /* where the last scan found it */
	dev_t dev;
	ino_t ino;
	off_t size;
	bool bad;     /* failed the open check, or found corrupt by the walk */
	bool walked;  /* every entry walked (see verify_next_file) */
	bool present; /* found by the current scan */
};


struct systemd_collector {
	struct collector base;

	/* config (owned copies) */
	char *dir;   /* "" = the local journal */
	char *since; /* now | head | a cursor */
	struct strlist units;
	size_t max_event_size;
	bool os_root; /* dir is an OS tree (holds var/log/journal) */

	/* thread */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int stop_fd; /* eventfd */
	struct queue *q;

	/* thread-only state */
	sd_journal *j;
	struct cursor cur;
	struct strbuf arena; /* field bytes of the current entry */
	size_t *offs;	     /* field offsets into arena */
	size_t *lens;
	struct journal_field *fields;
	size_t fields_cap;
	struct strbuf json;
	struct seen_file *files;
	size_t nfiles, files_cap;
	uint64_t last_check_ns;
	struct ratelimit rl_read, rl_entry, rl_emit;

	/* extra counters */
	_Atomic uint64_t emit_retries;	/* queue refusals that were retried */
	_Atomic uint64_t invalidations; /* SD_JOURNAL_INVALIDATE seen */
	_Atomic uint64_t bad_files;	/* journal files that failed the check */
};

static inline struct systemd_collector *to_sd(struct collector *c)
{
	return (struct systemd_collector *)c;
}

static void count(_Atomic uint64_t *v)
{
	atomic_fetch_add_explicit(v, 1, memory_order_relaxed);
}

static bool stopping(struct systemd_collector *s)
{
	return atomic_load_explicit(&s->stop, memory_order_acquire);
}

/* Reports through collector_report(): rl NULL reports always, else at most
 * once per ERR_INTERVAL_NS per kind. */
#define report(s, rl, ...) collector_report(&(s)->base, (rl), __VA_ARGS__)

/* Waits up to ms on the stop eventfd. Returns true when stopping. */
static bool sleep_ms(struct systemd_collector *s, int ms)
{
	struct pollfd p = {.fd = s->stop_fd, .events = POLLIN};

	if (stopping(s))
		return true;
	(void)poll(&p, 1, ms);
	return stopping(s);
}

/* ---- config ---- */

/* A unit name as systemd allows it: printable ASCII, no '=' or space. */
static bool unit_name_ok(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n > 255)
		return false;
	for (const char *p = u; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '=' || *p == '/')
			return false;
	return true;
}

/* A journal cursor: ';'-separated key=value pairs with keys s, i, b, m, t, x. */
static bool cursor_syntax_ok(const char *c)
{
	const char *p = c;
	bool any = false;

	if (!*c || strlen(c) >= CURSOR_MAX)
		return false;
	while (*p) {
		const char *end = strchr(p, ';');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n < 2 || p[1] != '=' || !strchr("sibmtx", p[0]))
			return false;
		for (size_t i = 2; i < n; i++)
			if (p[i] <= ' ' || p[i] >= 0x7f)
				return false;
		any = true;
		p += n;
		if (*p == ';')
			p++;
	}
	return any;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && !strcmp(s + n - m, suf);
}

static bool journal_file_name(const char *name)
{
	return has_suffix(name, ".journal") || has_suffix(name, ".journal~");
}

/* True when dir or one of its machine-id subdirectories holds a journal file. */
static bool dir_has_journal(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		sd_id128_t id;

		if (journal_file_name(de->d_name)) {
			found = true;
		} else if (sd_id128_from_string(de->d_name, &id) == 0) {
			char sub[PATH_MAX];

			if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) <
			    sizeof(sub)) {
				DIR *d2 = opendir(sub);
				struct dirent *e2;

				while (d2 && !found && (e2 = readdir(d2)))
					found = journal_file_name(e2->d_name);
				if (d2)
					closedir(d2);
			}
		}
	}
	closedir(d);
	return found;
}

/* An OS tree (a mounted host root) rather than a journal directory. */
static bool looks_like_os_root(const char *dir)
{
	char p[PATH_MAX];

	if ((size_t)snprintf(p, sizeof(p), "%s/var/log/journal", dir) < sizeof(p) && is_dir(p))
		return true;
	if ((size_t)snprintf(p, sizeof(p), "%s/run/log/journal", dir) < sizeof(p) && is_dir(p))
		return true;
	return false;
}

#define SO(n, t, f, d, h) OPT_ENTRY(struct systemd_options, n, t, f, d, h)

static const struct opt systemd_opt_table[] = {
	SO("journal-dir", OPT_STR, journal_dir, "", "journal directory, empty = the local journal"),
	SO("journal-units", OPT_STR, journal_units,
	   "kubelet.service,containerd.service,crio.service,docker.service",
	   "comma list of units to follow"),
	SO("journal-since", OPT_STR, journal_since, "now",
	   "first start without a cursor: now | head | a journal cursor"),
};

const struct opt_group systemd_options_group =
	OPT_GROUP("systemd", struct systemd_options, systemd_opt_table, NULL);

static const char *const systemd_type_names[SYSTEMD_NTYPES] = {
	[TYPE_SYSTEMD_JOURNAL] = "systemd.journal",
};

const struct source_desc systemd_source = {
	.name = "systemd",
	.types = systemd_type_names,
	.ntypes = SYSTEMD_NTYPES,
};

bool systemd_collector_available(const struct collector_env *env)
{
	const struct systemd_options *o = env->opts;
	const char *dir = o && o->journal_dir ? o->journal_dir : "";

	if (*dir)
		return is_dir(dir);
	return dir_has_journal("/var/log/journal") || dir_has_journal("/run/log/journal");
}

/* ---- journal files check ----
 *
 * sd-journal skips what it cannot read without telling the caller: a file it
 * cannot open (truncated, bad header, unsupported features) is left out, and a
 * file whose objects turn out corrupt while iterating is dropped from then on,
 * so its later entries are silently lost. So the collector checks each
 * journal file itself, through the public API:
 * - open: when a file appears (or is replaced, or shrinks) it is opened alone
 *   with sd_journal_open_files(), which does return the error;
 * - walk: when the reader is idle, one file at a time is walked alone, entry
 *   by entry, and the count is compared with the header's n_entries
 *   (JOURNAL_FILE_FORMAT: le64 at offset 152), read before the walk; fewer
 *   entries means the file is corrupt after that point.
 * A bad file is counted once (parse_errors, bad_files) and reported by path;
 * the rest of the journal goes on being read. */

#define HEADER_N_ENTRIES_OFFSET 152
#define HEADER_SIZE_OFFSET 88

static struct seen_file *seen_find(struct systemd_collector *s, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < s->nfiles; i++)
		if (s->files[i].dev == dev && s->files[i].ino == ino)
			return &s->files[i];
	return NULL;
}

static void file_bad(struct systemd_collector *s, struct seen_file *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void file_bad(struct systemd_collector *s, struct seen_file *f, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (f->bad)
		return;
	f->bad = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	count(&s->base.n.parse_errors);
	count(&s->bad_files);
	report(s, NULL, "journal file %s: %s", f->path, msg);
}

static void check_file(struct systemd_collector *s, const char *path)
{
	struct stat st;
	struct seen_file *f;
	sd_journal *one = NULL;
	const char *paths[2] = {path, NULL};
	char *p;
	int r;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	f = seen_find(s, st.st_dev, st.st_ino);
	if (f && strcmp(f->path, path)) {
		/* renamed (rotated): the same file under its archive name */
		p = strdup(path);
		if (p) {
			free(f->path);
			f->path = p;
		}
	}
	if (f) {
		f->present = true;
		if (st.st_size >= f->size) {
			f->size = st.st_size;
			return;
		}
		/* it shrank: check it again from the start */
		f->bad = false;
		f->walked = false;
	} else {
		if (s->nfiles == s->files_cap) {
			size_t cap = s->files_cap ? s->files_cap * 2 : 16;
			struct seen_file *n = realloc(s->files, cap * sizeof(*n));

			if (!n)
				return;
			s->files = n;
			s->files_cap = cap;
		}
		p = strdup(path);
		if (!p)
			return;
		f = &s->files[s->nfiles++];
		*f = (struct seen_file){
		    .path = p, .dev = st.st_dev, .ino = st.st_ino, .present = true};
	}
	f->size = st.st_size;
	r = sd_journal_open_files(&one, paths, 0);
	if (r < 0)
		file_bad(s, f, "unreadable, skipped: %s", strerror(-r));
	sd_journal_close(one);
}

/* Reads a little-endian u64 from the file header. */
static int header_u64(const char *path, off_t off, uint64_t *v)
{
	unsigned char b[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, b, sizeof(b), off);
	close(fd);
	if (n != (ssize_t)sizeof(b))
		return -EBADMSG;
	*v = 0;
	for (int i = 7; i >= 0; i--)
		*v = (*v << 8) | b[i];
	return 0;
}

/* Walks one file that has not been walked yet (see above). Returns true when
 * a file was walked. */
static bool verify_next_file(struct systemd_collector *s)
{
	struct seen_file *f = NULL;
	sd_journal *one = NULL;
	const char *paths[2];
	uint64_t want = 0, hsize = 0, got = 0;
	int r;

	for (size_t i = 0; i < s->nfiles && !f; i++)
		if (!s->files[i].bad && !s->files[i].walked)
			f = &s->files[i];
	if (!f)
		return false;
	f->walked = true;
	paths[0] = f->path;
	paths[1] = NULL;
	/* n_entries first: a file being appended to only grows past it */
	if (header_u64(f->path, HEADER_SIZE_OFFSET, &hsize) < 0 ||
	    hsize < HEADER_N_ENTRIES_OFFSET + 8 ||
	    header_u64(f->path, HEADER_N_ENTRIES_OFFSET, &want) < 0)
		return true; /* gone, or too old a format to say: the open check covers it */
	r = sd_journal_open_files(&one, paths, 0);
	if (r < 0) {
		file_bad(s, f, "unreadable, skipped: %s", strerror(-r));
		return true;
	}
	while (got < want && (r = sd_journal_next(one)) > 0) {
		got++;
		if ((got & 1023) == 0 && stopping(s))
			break;
	}
	if (r < 0)
		file_bad(s, f,
			 "sd_journal_next failed after %" PRIu64 " of %" PRIu64 " entries: %s", got,
			 want, strerror(-r));
	else if (got < want && !stopping(s))
		file_bad(s, f,
			 "corrupt: only %" PRIu64 " of %" PRIu64
			 " entries readable, the rest is skipped",
			 got, want);
	if (stopping(s))
		f->walked = false;
	sd_journal_close(one);
	return true;
}

static void check_dir(struct systemd_collector *s, const char *dir, bool root)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[PATH_MAX];
		sd_id128_t id;

		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= sizeof(p))
			continue;
		if (journal_file_name(de->d_name))
			check_file(s, p);
		else if (root && sd_id128_from_string(de->d_name, &id) == 0)
			check_dir(s, p, false);
	}
	closedir(d);
}

static void check_files(struct systemd_collector *s)
{
	char p[PATH_MAX];
	size_t k = 0;

	for (size_t i = 0; i < s->nfiles; i++)
		s->files[i].present = false;
	if (!*s->dir) {
		check_dir(s, "/var/log/journal", true);
		check_dir(s, "/run/log/journal", true);
	} else if (s->os_root) {
		snprintf(p, sizeof(p), "%s/var/log/journal", s->dir);
		check_dir(s, p, true);
		snprintf(p, sizeof(p), "%s/run/log/journal", s->dir);
		check_dir(s, p, true);
	} else {
		check_dir(s, s->dir, true);
	}
	/* forget deleted files */
	for (size_t i = 0; i < s->nfiles; i++) {
		if (s->files[i].present)
			s->files[k++] = s->files[i];
		else
			free(s->files[i].path);
	}
	s->nfiles = k;
	s->last_check_ns = mono_ns();
}

/* ---- reading ---- */

static void journal_close(struct systemd_collector *s)
{
	sd_journal_close(s->j);
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

/* Opens the journal and positions it. *skip gets the cursor whose entry the
 * first sd_journal_next() may land on and that was already emitted ("" when
 * none). Returns 0 or a negative errno (reported). */
static int journal_open(struct systemd_collector *s, char *skip, size_t skiplen)
{
	const char *what;
	char pos[CURSOR_MAX];
	int r;

	skip[0] = '\0';
	if (!*s->dir) {
		/* No SD_JOURNAL_LOCAL_ONLY: inside a container /etc/machine-id is
		 * not the host's, and LOCAL_ONLY would only read
		 * /var/log/journal/<container machine-id>/, which does not exist. */
		what = "sd_journal_open";
		r = sd_journal_open(&s->j, 0);
	} else {
		what = "sd_journal_open_directory";
		r = sd_journal_open_directory(&s->j, s->dir, s->os_root ? SD_JOURNAL_OS_ROOT : 0);
	}
	if (r < 0)
		goto fail;
	/* get the inotify fd at once so that no change after the open is missed */
	what = "sd_journal_get_fd";
	r = sd_journal_get_fd(s->j);
	if (r < 0)
		goto fail;
	/* Compressed fields are cut at the threshold: one byte over the event
	 * limit is enough to see that the entry is too big. */
	what = "sd_journal_set_data_threshold";
	r = sd_journal_set_data_threshold(s->j, s->max_event_size ? s->max_event_size + 1 : 0);
	if (r < 0)
		goto fail;
	what = "sd_journal_add_match";
	r = add_unit_matches(s);
	if (r < 0)
		goto fail;

	cursor_get(&s->cur, pos, sizeof(pos));
	if (!pos[0] && strcmp(s->since, "now") && strcmp(s->since, "head"))
		snprintf(pos, sizeof(pos), "%s", s->since);
	if (pos[0]) {
		r = sd_journal_seek_cursor(s->j, pos);
		if (r >= 0) {
			snprintf(skip, skiplen, "%s", pos);
			return 0;
		}
		count(&s->base.n.errors);
		report(s, NULL, "sd_journal_seek_cursor(%s): %s; starting at --journal-since=%s",
		       pos, strerror(-r), s->since);
	}
	if (!strcmp(s->since, "now")) {
		/* the last entry counts as read: it becomes the cursor */
		what = "sd_journal_seek_tail";
		r = sd_journal_seek_tail(s->j);
		if (r < 0)
			goto fail;
		what = "sd_journal_previous";
		r = sd_journal_previous(s->j);
		if (r < 0)
			goto fail;
		if (r > 0) {
			char *c = NULL;

			what = "sd_journal_get_cursor";
			r = sd_journal_get_cursor(s->j, &c);
			if (r < 0)
				goto fail;
			cursor_update(&s->cur, c);
			cursor_flush(&s->cur);
			free(c);
			return 0;
		}
		/* empty journal: everything that arrives is new */
	}
	what = "sd_journal_seek_head";
	r = sd_journal_seek_head(s->j);
	if (r < 0)
		goto fail;
	return 0;
fail:
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
	if (*n == s->fields_cap) {
		size_t cap = s->fields_cap ? s->fields_cap * 2 : 64;
		size_t *o = realloc(s->offs, cap * sizeof(*o));

		if (!o) {
			s->arena.err = -ENOMEM;
			return;
		}
		s->offs = o;
		o = realloc(s->lens, cap * sizeof(*o));
		if (!o) {
			s->arena.err = -ENOMEM;
			return;
		}
		s->lens = o;
		struct journal_field *f = realloc(s->fields, cap * sizeof(*f));
		if (!f) {
			s->arena.err = -ENOMEM;
			return;
		}
		s->fields = f;
		s->fields_cap = cap;
	}
	s->offs[*n] = s->arena.len;
	sb_puts(&s->arena, prefix);
	sb_add(&s->arena, d, len);
	s->lens[*n] = s->arena.len - s->offs[*n];
	(*n)++;
}

enum step { STEP_NEXT, STEP_RETRY_LATER, STEP_STOP };

/* Reads the current entry and emits it. Returns STEP_NEXT when the entry is
 * done with (emitted, or skipped and counted), STEP_STOP when stopping before
 * it was emitted, or a negative errno from sd-journal. */
static int handle_entry(struct systemd_collector *s)
{
	char *cur = NULL;
	char num[64], unit[256] = "", host[256] = "", prio[32] = "";
	uint64_t rt = 0, mono = 0;
	sd_id128_t boot;
	const void *d;
	size_t len, n = 0, bad = 0;
	bool have_boot = false;
	int r;

	r = sd_journal_get_cursor(s->j, &cur);
	if (r < 0)
		return r;
	r = sd_journal_get_realtime_usec(s->j, &rt);
	if (r >= 0)
		r = sd_journal_get_monotonic_usec(s->j, &mono, &boot);
	if (r < 0) {
		count(&s->base.n.parse_errors);
		report(s, &s->rl_entry, "entry %s: timestamps unreadable, skipped: %s", cur,
		       strerror(-r));
		goto done;
	}

	sb_reset(&s->arena);
	/* the entry's address fields first, as journalctl -o export shows them */
	arena_field(s, &n, "__CURSOR=", cur, strlen(cur));
	len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, rt);
	arena_field(s, &n, "__REALTIME_TIMESTAMP=", num, len);
	len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, mono);
	arena_field(s, &n, "__MONOTONIC_TIMESTAMP=", num, len);
	sd_journal_restart_data(s->j);
	while ((r = sd_journal_enumerate_data(s->j, &d, &len)) > 0) {
		if (len > 9 && !memcmp(d, "_BOOT_ID=", 9))
			have_boot = true;
		arena_field(s, &n, "", d, len);
	}
	if (r < 0) {
		count(&s->base.n.parse_errors);
		report(s, &s->rl_entry, "entry %s: sd_journal_enumerate_data: %s; entry skipped",
		       cur, strerror(-r));
		goto done;
	}
	if (!have_boot) {
		char b[SD_ID128_STRING_MAX];

		sd_id128_to_string(boot, b);
		arena_field(s, &n, "_BOOT_ID=", b, strlen(b));
	}
	if (s->arena.err) {
		r = s->arena.err;
		goto nomem;
	}
	for (size_t i = 0; i < n; i++)
		s->fields[i] =
		    (struct journal_field){.data = s->arena.buf + s->offs[i], .len = s->lens[i]};

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
		goto done;
	}
	if (r < 0)
		goto nomem;

	/* meta: the watched unit (_SYSTEMD_UNIT, or UNIT for systemd's own
	 * messages about it), hostname, priority, cursor */
	r = journal_field_get(s->fields, n, "_SYSTEMD_UNIT", unit, sizeof(unit));
	if (s->units.n && (r < 0 || !strlist_has(&s->units, unit)))
		journal_field_get(s->fields, n, "UNIT", unit, sizeof(unit));
	journal_field_get(s->fields, n, "_HOSTNAME", host, sizeof(host));
	journal_field_get(s->fields, n, "PRIORITY", prio, sizeof(prio));
	struct meta_kv kv[] = {
	    {"unit", unit[0] ? unit : NULL},
	    {"hostname", host[0] ? host : NULL},
	    {"priority", prio[0] ? prio : NULL},
	    {"cursor", cur},
	};

	for (;;) {
		r = event_emit(s->q, s->base.source, TYPE_SYSTEMD_JOURNAL, FMT_JSON, rt * 1000ull, kv,
			       sizeof(kv) / sizeof(kv[0]), s->json.buf, s->json.len);
		if (r == 0) {
			collector_count_emit(&s->base, 0);
			break;
		}
		if (r == -E2BIG || r == -EINVAL) {
			/* can never fit in the queue: skip it */
			count(&s->base.n.oversize);
			report(s, &s->rl_emit,
			       "entry %s: %zu bytes do not fit in the queue, skipped", cur,
			       s->json.len);
			break;
		}
		if (r == -ESHUTDOWN || stopping(s)) {
			/* not enqueued and the cursor stays before it: read again
			 * after the next start */
			count(&s->base.n.refetched);
			free(cur);
			return STEP_STOP;
		}
		/* full queue (the wait bound passed): the journal still holds the
		 * entry, so wait and offer it again */
		count(&s->emit_retries);
		count(&s->base.n.refetched);
		report(s, &s->rl_emit, "queue full, retrying entry %s", cur);
		if (sleep_ms(s, RETRY_MS)) {
			free(cur);
			return STEP_STOP;
		}
	}
done:
	r = cursor_update(&s->cur, cur);
	if (r < 0) {
		count(&s->base.n.errors);
		report(s, &s->rl_emit, "saving the cursor in %s: %s", s->cur.dir, strerror(-r));
	}
	free(cur);
	return STEP_NEXT;
nomem:
	/* out of memory: try the entry again later */
	free(cur);
	count(&s->base.n.errors);
	report(s, &s->rl_entry, "out of memory building an entry");
	return STEP_RETRY_LATER;
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

static int wait_journal(struct systemd_collector *s)
{
	struct pollfd p[2] = {
	    {.fd = sd_journal_get_fd(s->j), .events = (short)sd_journal_get_events(s->j)},
	    {.fd = s->stop_fd, .events = POLLIN},
	};
	uint64_t t = (uint64_t)-1;
	int timeout = POLL_MS, r;

	if (p[0].fd < 0)
		return p[0].fd;
	if (p[0].events <= 0)
		p[0].events = POLLIN;
	if (sd_journal_get_timeout(s->j, &t) >= 0 && t != (uint64_t)-1) {
		uint64_t now = mono_ns() / 1000;
		uint64_t ms = t > now ? (t - now + 999) / 1000 : 0;

		if (ms < (uint64_t)timeout)
			timeout = (int)ms;
	}
	r = poll(p, 2, timeout);
	if (r < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static void *systemd_thread(void *arg)
{
	struct systemd_collector *s = arg;
	char skip[CURSOR_MAX];
	unsigned attempt = 0;

	while (!stopping(s)) {
		int r;

		check_files(s);
		if (journal_open(s, skip, sizeof(skip)) < 0)
			goto backoff;
		atomic_store(&s->base.healthy, true);
		attempt = 0;

		for (;;) {
			r = drain(s, skip);
			if (r == 2 && !stopping(s)) {
				/* the queue is closed: nothing more can be sent */
				while (!sleep_ms(s, POLL_MS))
					;
			}
			if (r == 2 || r < 0)
				break;
			if (r == 1)
				continue;
			/* caught up: spend the idle time walking one journal file */
			if (verify_next_file(s))
				continue;
			r = wait_journal(s);
			if (r < 0) {
				count(&s->base.n.errors);
				report(s, &s->rl_read, "poll on the journal fd: %s", strerror(-r));
				break;
			}
			if (stopping(s))
				break;
			r = sd_journal_process(s->j);
			if (r < 0) {
				count(&s->base.n.errors);
				report(s, &s->rl_read, "sd_journal_process: %s", strerror(-r));
				break;
			}
			if (r == SD_JOURNAL_INVALIDATE) {
				/* files were added, removed or rotated: the position is
				 * kept, so reading goes on; check the new files */
				count(&s->invalidations);
				check_files(s);
			} else if (mono_ns() - s->last_check_ns > RECHECK_NS) {
				check_files(s);
			}
		}
		journal_close(s);
		if (stopping(s))
			break;
		atomic_store(&s->base.healthy, false);
		count(&s->base.n.reconnects);
	backoff:
		atomic_store(&s->base.healthy, false);
		if (sleep_ms(s, (int)backoff_ms(attempt++, BACKOFF_MIN_MS, BACKOFF_MAX_MS)))
			break;
	}
	int r = cursor_flush(&s->cur);
	if (r < 0) {
		count(&s->base.n.errors);
		report(s, NULL, "saving the cursor in %s: %s", s->cur.dir, strerror(-r));
	}
	atomic_store(&s->base.healthy, false);
	return NULL;
}

/* ---- collector ops ---- */

static int systemd_start(struct collector *c, struct queue *q)
{
	struct systemd_collector *s = to_sd(c);
	int r;

	if (s->started)
		return -EALREADY;
	s->q = q;
	atomic_store(&s->stop, false);
	{
		/* clear a stop signal left by an earlier stop() */
		uint64_t v;

		while (read(s->stop_fd, &v, sizeof(v)) > 0)
			;
	}
	if (s->cur.dir[0]) {
		r = state_mkdir(s->cur.dir);
		if (r < 0) {
			/* the cursor stays in memory; saving it is retried */
			count(&s->base.n.errors);
			report(s, NULL, "state directory %s: %s", s->cur.dir, strerror(-r));
		}
	}
	r = cursor_load(&s->cur);
	if (r < 0) {
		count(&s->base.n.errors);
		report(s, NULL, "reading the cursor from %s/%s: %s; starting at --journal-since=%s",
		       s->cur.dir, SYSTEMD_CURSOR_FILE, strerror(-r), s->since);
	} else if (r > 0 && !cursor_syntax_ok(s->cur.val)) {
		count(&s->base.n.parse_errors);
		report(s, NULL,
		       "stored cursor in %s/%s is malformed; starting at --journal-since=%s",
		       s->cur.dir, SYSTEMD_CURSOR_FILE, s->since);
		s->cur.val[0] = '\0';
	}
	r = pthread_create(&s->thread, NULL, systemd_thread, s);
	if (r)
		return -r;
	s->started = true;
	return 0;
}

static void systemd_stop(struct collector *c)
{
	struct systemd_collector *s = to_sd(c);
	uint64_t one = 1;

	if (!s->started)
		return;
	atomic_store_explicit(&s->stop, true, memory_order_release);
	if (write(s->stop_fd, &one, sizeof(one)) < 0) {
		/* the poll timeout still sees the flag */
	}
	pthread_join(s->thread, NULL);
	s->started = false;
}

/* collector_destroy() has already destroyed the base's lock. */
static void systemd_destroy(struct collector *c)
{
	struct systemd_collector *s = to_sd(c);

	journal_close(s);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	free(s->dir);
	free(s->since);
	strlist_free(&s->units);
	cursor_destroy(&s->cur);
	sb_free(&s->arena);
	sb_free(&s->json);
	free(s->offs);
	free(s->lens);
	free(s->fields);
	for (size_t i = 0; i < s->nfiles; i++)
		free(s->files[i].path);
	free(s->files);
	free(s);
}

static void systemd_counters(struct collector *c, counter_fn fn, void *ctx)
{
	struct systemd_collector *s = to_sd(c);

	fn(ctx, "emit_retries", "", atomic_load(&s->emit_retries));
	fn(ctx, "journal_invalidations", "", atomic_load(&s->invalidations));
	fn(ctx, "bad_files", "", atomic_load(&s->bad_files));
}

static const struct collector_ops systemd_ops = {
    .name = "systemd",
    .start = systemd_start,
    .stop = systemd_stop,
    .destroy = systemd_destroy,
    .counters = systemd_counters,
};

struct collector *systemd_collector_new(const struct collector_env *env, char *err, size_t errlen)
{
	const struct tapio_config *cfg = env->cfg;
	const struct systemd_options *o = env->opts;
	struct systemd_collector *s;
	const char *dir = o->journal_dir ? o->journal_dir : "";
	const char *units = o->journal_units ? o->journal_units : SYSTEMD_DEFAULT_UNITS;
	const char *since = o->journal_since && *o->journal_since ? o->journal_since : "now";
	int e = EINVAL;

	if (errlen)
		err[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "systemd: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	collector_init(&s->base, &systemd_ops, env->source);
	s->rl_read.interval_ns = s->rl_entry.interval_ns = s->rl_emit.interval_ns = ERR_INTERVAL_NS;
	s->stop_fd = -1;
	cursor_init(&s->cur, cfg->state_dir, SYSTEMD_CURSOR_FILE, CURSOR_DEFAULT_INTERVAL_MS);

	if (strlen(dir) >= PATH_MAX - 64) {
		snprintf(err, errlen, "--journal-dir: path too long");
		goto fail;
	}
	if (*dir) {
		struct stat st;

		/* a directory that does not exist yet is waited for; a file is a mistake */
		if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen,
				 "--journal-dir: %.200s is not a directory (give the journal "
				 "directory, not a file)",
				 dir);
			goto fail;
		}
	}
	if (strcmp(since, "now") && strcmp(since, "head") && !cursor_syntax_ok(since)) {
		snprintf(
		    err, errlen,
		    "--journal-since: '%.64s' is not now, head or a journal cursor (s=...;i=...)",
		    since);
		goto fail;
	}
	if (strlist_split(&s->units, units) < 0) {
		e = ENOMEM;
		snprintf(err, errlen, "systemd: out of memory");
		goto fail;
	}
	for (size_t i = 0; i < s->units.n; i++) {
		if (!unit_name_ok(s->units.v[i])) {
			snprintf(err, errlen, "--journal-units: '%.64s' is not a unit name",
				 s->units.v[i]);
			goto fail;
		}
	}
	s->max_event_size = (size_t)cfg->max_event_size;
	s->dir = strdup(dir);
	s->since = strdup(since);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!s->dir || !s->since || s->stop_fd < 0) {
		e = s->stop_fd < 0 ? errno : ENOMEM;
		snprintf(err, errlen, "systemd: %s", strerror(e));
		goto fail;
	}
	s->os_root = *dir && looks_like_os_root(dir);
	return &s->base;
fail:
	collector_destroy(&s->base);
	errno = e;
	return NULL;
}
