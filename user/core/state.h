/* SPDX-License-Identifier: Apache-2.0 */
/* Resume state: small files in the state directory (--state-dir), one per
 * cursor. Writes are atomic (temporary file, fsync, renameat, fsync of the
 * directory). A `struct cursor` keeps the latest value in memory and writes it
 * at a bounded rate; cursor_flush() writes what is pending (call it on stop). */
#ifndef TAPIO_STATE_H
#define TAPIO_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The state directory is the agent's own: created with mode 0700 (and its
 * missing parents), and refused when it is a symlink, is owned by another uid
 * or is writable by group or others, since whoever can write there could
 * plant symlinks. Every state file is opened relative to the directory's fd
 * with O_NOFOLLOW; a temporary file is created with O_EXCL and renamed into
 * place with renameat. Callers' messages name files, never their content. */

/* Creates or checks dir as above. Returns an O_DIRECTORY fd or -errno
 * (-EPERM for a wrong owner or mode); why (whylen bytes, may be NULL) gets
 * the reason in words. */
int state_dir_open(const char *dir, char *why, size_t whylen);

/* state_dir_open without the fd. Returns 0 or -errno. */
int state_mkdir(const char *dir);

/* Atomically replaces dir/name with len bytes. name may not contain '/'.
 * Returns 0 or a negative errno. */
int state_write(const char *dir, const char *name, const void *buf, size_t len);

/* Opens dir/name for reading: -ELOOP for a symlink, -EINVAL for anything
 * but a regular file. Returns the fd or a negative errno. */
int state_open(const char *dir, const char *name);

/* Reads dir/name into buf (at most cap - 1 bytes, NUL-terminated).
 * Returns the length, -ENOENT when there is none, -EFBIG when it does not fit,
 * -ELOOP for a symlink, or another negative errno. */
ssize_t state_read(const char *dir, const char *name, char *buf, size_t cap);

#define CURSOR_MAX 4096
#define CURSOR_DEFAULT_INTERVAL_MS 1000

struct cursor {
	pthread_mutex_t lock;
	char dir[1024];
	char name[128];
	char val[CURSOR_MAX]; /* "" when unset */
	bool dirty;
	uint64_t last_write_ns; /* monotonic */
	unsigned interval_ms;
	int last_err; /* last write error, 0 when fine */
};

/* Sets the cursor up; does not touch the disk. dir NULL or "" keeps the cursor
 * in memory only. interval_ms 0 writes on every update. */
void cursor_init(struct cursor *c, const char *dir, const char *name, unsigned interval_ms);
void cursor_destroy(struct cursor *c);
/* Loads the stored value into c->val. Returns its length, 0 when there is no
 * stored cursor, or a negative errno (the value is then ""). */
int cursor_load(struct cursor *c);
/* cursor_load for a cursor that must not lie: a stored file that is empty
 * or lacks its final newline (cut short: a crash between create and write,
 * a full disk) gives -EBADMSG, the value is then "". Returns the length, 0
 * when there is no stored cursor, or a negative errno. */
int cursor_load_checked(struct cursor *c);
/* cursor_load_checked that also takes a stored value without its final
 * newline when whole(value) accepts it, and sets *legacy (else false).
 * Every tapio write is atomic and ends with a newline, so such a file comes
 * from elsewhere (an older tapio, a hand-written file) or lost its end: whole
 * must accept only values whose every cut-short form either fails whole or
 * resumes no later than the full value would (a decimal number: a prefix is
 * smaller; a structured cursor whose fields must all be there), so trusting
 * it can re-read but never skip. Empty, or refused by whole (or whole NULL):
 * -EBADMSG, the value is then "". */
int cursor_load_legacy(struct cursor *c, bool (*whole)(const char *val), bool *legacy);
/* A whole decimal cursor for cursor_load_legacy: 1..19 digits, no leading
 * zero (a prefix of one is a smaller number). */
bool cursor_decimal_whole(const char *val);
/* Sets the value; writes it when interval_ms has passed since the last write.
 * Returns 0 or the negative errno of a failed write (the value is kept and
 * retried on the next update). -ENAMETOOLONG when val does not fit. */
int cursor_update(struct cursor *c, const char *val);
/* Writes the value if it changed since the last write. Returns 0 or -errno. */
int cursor_flush(struct cursor *c);
/* Copies the current value. */
void cursor_get(struct cursor *c, char *buf, size_t size);

#endif
