/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd collector's journal files check.
 *
 * sd-journal skips what it cannot read without telling the caller: a file it
 * cannot open (truncated, bad header, unsupported features) is left out, and a
 * file whose objects turn out corrupt while iterating is dropped from then on,
 * so its later entries are silently lost. So the collector checks each
 * journal file itself, through the public API:
 * - open: when a file appears (or is replaced, or shrinks) it is opened alone
 *   with sd_journal_open_files_fd(), which does return the error;
 * - walk: when the reader is idle, one file at a time is walked alone, entry
 *   by entry, and the count is compared with the header's n_entries
 *   (JOURNAL_FILE_FORMAT: le64 at offset 152), read before the walk; fewer
 *   entries means the file is corrupt after that point.
 * A bad file is counted once (parse_errors, bad_files) and reported by path;
 * the rest of the journal goes on being read.
 *
 * The scan is also what the reader reads: libsystemd would open what the
 * directories name itself, following symlinks, so each journal file is
 * opened here with openat(O_NOFOLLOW) relative to its directory's fd (opened
 * O_NOFOLLOW too) and the reader gives these fds to
 * sd_journal_open_files_fd(). A symlinked file or machine-id directory is
 * never opened, counted once (symlinks_refused, bad_files) and named once.
 * s->files_gen changes whenever the set of fds does (a new file, a file
 * deleted, or one that became readable), and the reader opens the journal
 * again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-id128.h>
#include <systemd/sd-journal.h>

#include "collectors/systemd/internal.h"
#include "util/clock.h"
#include "util/parse.h"
#include "util/vec.h"

#define HEADER_N_ENTRIES_OFFSET 152
#define HEADER_SIZE_OFFSET 88

bool journal_file_name(const char *name)
{
	return has_suffix(name, ".journal") || has_suffix(name, ".journal~");
}

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

/* The entry at path, found again (same dev/ino) or added to the list; NULL on
 * ENOMEM. *fresh is true when it has to be checked (new, shrunk, or not
 * readable yet and changed). */
static struct seen_file *seen_file_at(struct systemd_collector *s, const char *path,
				      const struct stat *st, bool *fresh)
{
	struct seen_file *f = seen_find(s, st->st_dev, st->st_ino);
	char *p;

	*fresh = true;
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
		if (S_ISLNK(st->st_mode))
			*fresh = false; /* named already */
		else if (st->st_size > f->size && f->fd < 0)
			f->size = st->st_size; /* not readable yet: try again */
		else if (st->st_size >= f->size) {
			f->size = st->st_size;
			*fresh = false;
		} else {
			/* it shrank: check it again from the start */
			f->bad = false;
			f->walked = false;
		}
		return f;
	}
	if (VEC_RESERVE(s->files, s->files_cap, s->nfiles + 1))
		return NULL;
	p = strdup(path);
	if (!p)
		return NULL;
	f = &s->files[s->nfiles++];
	*f = (struct seen_file){
	    .path = p, .dev = st->st_dev, .ino = st->st_ino, .fd = -1, .present = true};
	return f;
}

int journal_open_fds(sd_journal **j, const int *fds, unsigned n)
{
	int *d = calloc(n ? n : 1, sizeof(*d));
	unsigned k = 0;
	int r = 0;

	if (!d)
		return -ENOMEM;
	for (; k < n && r == 0; k++) {
		d[k] = fcntl(fds[k], F_DUPFD_CLOEXEC, 3);
		if (d[k] < 0)
			r = -errno;
	}
	if (r == 0)
		r = sd_journal_open_files_fd(j, d, n, 0);
	if (r < 0) {
		/* on failure the journal has taken none of them */
		for (unsigned i = 0; i < k; i++)
			if (d[i] >= 0)
				close(d[i]);
	}
	free(d);
	return r;
}

static void seen_close(struct systemd_collector *s, struct seen_file *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
		s->files_gen++;
	}
}

/* A symlink in a journal directory: counted and named once (f->bad), never
 * opened. */
static void refuse_symlink(struct systemd_collector *s, struct seen_file *f)
{
	f->link = true;
	if (!f->bad)
		count(&s->symlinks_refused);
	file_bad(s, f, "a symlink, not followed");
}

/* The journal file name in the directory dfd (path: its path). Returns its
 * entry, or NULL. */
static struct seen_file *check_file_at(struct systemd_collector *s, int dfd, const char *path,
				       const char *name);

/* check_file_at; a file it could not take yet is looked at again by the
 * rescans (it grows with IN_MODIFY only, which does not start a scan). */
static void check_file(struct systemd_collector *s, int dfd, const char *path, const char *name)
{
	struct seen_file *f = check_file_at(s, dfd, path, name);

	if (f && f->fd < 0 && !f->link)
		s->rescan = true;
}

static struct seen_file *check_file_at(struct systemd_collector *s, int dfd, const char *path,
				       const char *name)
{
	struct stat st, fst;
	struct seen_file *f;
	sd_journal *one = NULL;
	bool fresh;
	int fd, r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
		return NULL;
	f = seen_file_at(s, path, &st, &fresh);
	if (!f || !fresh)
		return f;
	if (S_ISLNK(st.st_mode)) {
		refuse_symlink(s, f);
		return f;
	}
	f->size = st.st_size;
	if (st.st_size == 0)
		return f; /* being created: checked when it grows */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			refuse_symlink(s, f); /* swapped in since the fstatat */
		else if (errno != ENOENT)
			file_bad(s, f, "cannot open: %s", strerror(errno));
		return f;
	}
	if (fstat(fd, &fst) < 0 || fst.st_dev != f->dev || fst.st_ino != f->ino ||
	    !S_ISREG(fst.st_mode)) {
		close(fd); /* replaced since the fstatat: the next scan sees it */
		return f;
	}
	if (f->fd >= 0) {
		close(fd); /* shrunk: the same inode, already open */
		fd = f->fd;
	}
	r = journal_open_fds(&one, &fd, 1);
	sd_journal_close(one); /* closes its dup only */
	if (r < 0) {
		file_bad(s, f, "unreadable, skipped: %s", strerror(-r));
		if (f->fd >= 0)
			seen_close(s, f);
		else
			close(fd);
		return f;
	}
	if (f->fd < 0) {
		f->bad = false; /* readable now (it was being written) */
		f->fd = fd;
		s->files_gen++;
	}
	return f;
}

int drop_unreadable(struct systemd_collector *s)
{
	int dropped = 0;

	for (size_t i = 0; i < s->nfiles; i++) {
		struct seen_file *f = &s->files[i];
		sd_journal *one = NULL;
		int r;

		if (f->fd < 0)
			continue;
		r = journal_open_fds(&one, &f->fd, 1);
		sd_journal_close(one);
		if (r < 0) {
			file_bad(s, f, "unreadable, skipped: %s", strerror(-r));
			seen_close(s, f);
			dropped++;
		}
	}
	return dropped;
}

/* Reads a little-endian u64 from the file header. */
static int header_u64(int fd, off_t off, uint64_t *v)
{
	unsigned char b[8];
	ssize_t n = pread(fd, b, sizeof(b), off);

	if (n != (ssize_t)sizeof(b))
		return -EBADMSG;
	*v = 0;
	for (int i = 7; i >= 0; i--)
		*v = (*v << 8) | b[i];
	return 0;
}

/* Walks one file that has not been walked yet (see above). Returns true when
 * a file was walked. */
bool verify_next_file(struct systemd_collector *s)
{
	struct seen_file *f = NULL;
	sd_journal *one = NULL;
	uint64_t want = 0, hsize = 0, got = 0;
	int r;

	for (size_t i = 0; i < s->nfiles && !f; i++)
		if (s->files[i].fd >= 0 && !s->files[i].bad && !s->files[i].walked)
			f = &s->files[i];
	if (!f)
		return false;
	f->walked = true;
	/* n_entries first: a file being appended to only grows past it */
	if (header_u64(f->fd, HEADER_SIZE_OFFSET, &hsize) < 0 ||
	    hsize < HEADER_N_ENTRIES_OFFSET + 8 ||
	    header_u64(f->fd, HEADER_N_ENTRIES_OFFSET, &want) < 0)
		return true; /* too old a format to say: the open check covers it */
	r = journal_open_fds(&one, &f->fd, 1);
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

#define DIR_EVENTS                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB |             \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)

/* Scans the directory dfd (path: its path; root: a top directory, whose
 * machine-id subdirectories are scanned too). Takes dfd. */
static void check_dir(struct systemd_collector *s, int dfd, const char *dir, bool root)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	char w[64];

	if (!d) {
		close(dfd);
		return;
	}
	if (s->ifd >= 0) {
		/* the directory opened, not whatever the path names by now */
		snprintf(w, sizeof(w), "/proc/self/fd/%d", dfd);
		if (inotify_add_watch(s->ifd, w, DIR_EVENTS & ~IN_DONT_FOLLOW) < 0 &&
		    inotify_add_watch(s->ifd, dir, DIR_EVENTS) < 0)
			s->rescan = true;
	} else {
		s->rescan = true;
	}
	while ((de = readdir(d))) {
		char p[PATH_MAX];
		sd_id128_t id;

		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= sizeof(p))
			continue;
		if (journal_file_name(de->d_name)) {
			check_file(s, dfd, p, de->d_name);
		} else if (root && sd_id128_from_string(de->d_name, &id) == 0) {
			/* a symlinked machine-id directory is not followed either */
			struct stat st;
			struct seen_file *f;
			bool fresh;
			int sub;

			if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (S_ISLNK(st.st_mode)) {
				f = seen_file_at(s, p, &st, &fresh);
				if (f && fresh)
					refuse_symlink(s, f);
				continue;
			}
			sub = openat(dfd, de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				check_dir(s, sub, p, false);
		}
	}
	closedir(d);
}

/* A top journal directory: the configured path is trusted up to its last
 * component, which is not followed. */
static void check_top(struct systemd_collector *s, const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0) {
		s->rescan = true; /* rescanned until it appears */
		return;
	}
	s->ndirs++;
	check_dir(s, dfd, dir, true);
}

void check_files(struct systemd_collector *s)
{
	char p[PATH_MAX];
	size_t k = 0;

	for (size_t i = 0; i < s->nfiles; i++)
		s->files[i].present = false;
	s->ndirs = 0;
	s->rescan = false;
	if (!*s->dir) {
		check_top(s, "/var/log/journal");
		check_top(s, "/run/log/journal");
	} else if (s->os_root) {
		snprintf(p, sizeof(p), "%s/var/log/journal", s->dir);
		check_top(s, p);
		snprintf(p, sizeof(p), "%s/run/log/journal", s->dir);
		check_top(s, p);
	} else {
		check_top(s, s->dir);
	}
	/* forget deleted files */
	for (size_t i = 0; i < s->nfiles; i++) {
		if (s->files[i].present) {
			s->files[k++] = s->files[i];
		} else {
			seen_close(s, &s->files[i]);
			free(s->files[i].path);
		}
	}
	s->nfiles = k;
	s->last_check_ns = mono_ns();
}

void files_free(struct systemd_collector *s)
{
	for (size_t i = 0; i < s->nfiles; i++) {
		if (s->files[i].fd >= 0)
			close(s->files[i].fd);
		free(s->files[i].path);
	}
	free(s->files);
	s->files = NULL;
	s->nfiles = s->files_cap = 0;
}
