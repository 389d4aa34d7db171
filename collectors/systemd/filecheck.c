/* SPDX-License-Identifier: Apache-2.0 */
/* The systemd collector's journal files check.
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The file at path, found again (same dev/ino) or added to the list; NULL on
 * ENOMEM. *fresh is true when it has to be checked (new or shrunk). */
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
		if (st->st_size >= f->size) {
			f->size = st->st_size;
			*fresh = false;
			return f;
		}
		/* it shrank: check it again from the start */
		f->bad = false;
		f->walked = false;
		return f;
	}
	if (VEC_RESERVE(s->files, s->files_cap, s->nfiles + 1))
		return NULL;
	p = strdup(path);
	if (!p)
		return NULL;
	f = &s->files[s->nfiles++];
	*f = (struct seen_file){.path = p, .dev = st->st_dev, .ino = st->st_ino, .present = true};
	return f;
}

static void check_file(struct systemd_collector *s, const char *path)
{
	struct stat st;
	struct seen_file *f;
	sd_journal *one = NULL;
	const char *paths[2] = {path, NULL};
	bool fresh;
	int r;

	if (lstat(path, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
		return;
	f = seen_file_at(s, path, &st, &fresh);
	if (!f || !fresh)
		return;
	if (S_ISLNK(st.st_mode)) {
		/* counted and named once (f->bad); never opened here */
		file_bad(s, f, "a symlink, not followed");
		return;
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
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
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
bool verify_next_file(struct systemd_collector *s)
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
	/* a symlinked machine-id directory is not followed either */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
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

void check_files(struct systemd_collector *s)
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

void files_free(struct systemd_collector *s)
{
	for (size_t i = 0; i < s->nfiles; i++)
		free(s->files[i].path);
	free(s->files);
	s->files = NULL;
	s->nfiles = s->files_cap = 0;
}
