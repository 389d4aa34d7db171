/* SPDX-License-Identifier: Apache-2.0 */
/* Line tailing of one open file, and the offsets file that lets a restarted
 * collector resume where it stopped.
 *
 * A tail_file reads with pread from `off`. Complete lines ('\n'-terminated)
 * go to the line callback without the '\n'. A trailing partial line is not
 * consumed: it is read again, whole, once its '\n' has arrived. A line longer
 * than line_max bytes is skipped (up to and including its '\n') and reported
 * once through the oversize callback. `commit` is the offset to persist: the
 * end of the last line handled, or the start of an overlong line still being
 * skipped (a restart then skips it again instead of emitting its tail). */
#ifndef TAPIO_CNI_TAIL_H
#define TAPIO_CNI_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;

struct tail_file {
	int fd;
	uint64_t off;	 /* next byte to read */
	uint64_t commit; /* offset to persist */
	bool skipping;	 /* inside an overlong line */
};

struct tail_cb {
	/* A complete line starting at offset off. Returns 0 to go on, or
	 * nonzero to stop before it (it is read again by the next call). */
	int (*line)(void *ctx, const char *line, size_t len, uint64_t off);
	/* An overlong line starting at offset `start` is being skipped. */
	void (*oversize)(void *ctx, uint64_t start);
	/* The file shrank below the read offset: reading restarts at 0. */
	void (*truncated)(void *ctx, uint64_t old_off, uint64_t size);
};

/* Reads what is new in f. buf is scratch space of cap bytes; cap must be more
 * than line_max. Stops after `budget` bytes (0 = no limit). Returns 1 when it
 * stopped on the budget with more to read, 2 when the line callback refused a
 * line (off and commit are then its start), 0 at the end of the file, or a
 * negative errno from fstat/pread (f is unchanged by a failed read). */
int tail_read(struct tail_file *f, char *buf, size_t cap, size_t line_max, uint64_t budget,
	      const struct tail_cb *cb, void *ctx);

/* The offset just after the last '\n' at or before `size` (0 when there is
 * none within the last line_max + 1 bytes and size <= line_max); used to start
 * at the end of a file without emitting the tail of a line. Sets *skipping when
 * the file ends in an overlong line. Returns the offset or a negative errno. */
int64_t tail_end_offset(int fd, uint64_t size, char *buf, size_t cap, size_t line_max,
			bool *skipping);

/* A fingerprint of a file read up to an offset `off`: FNV-1a 64 of its first
 * min(off, TAIL_FP_MAX) bytes (the head) and of the min(off, TAIL_FP_TAIL)
 * bytes just before off (the tail). It tells the file of a saved offset from
 * a later one that got the same inode, from the same file after a
 * copytruncate (shorter, or rewritten with other bytes before the offset),
 * and finds the rotated copy that holds what was not read yet. */
#define TAIL_FP_MAX 4096
#define TAIL_FP_TAIL 64
#define TAIL_FP_V1_MAX 64 /* version 1 files: a head of at most 64 bytes, no tail */
struct tail_fp {
	uint32_t head_len;
	uint64_t head;
	uint32_t tail_len;
	uint64_t tail;
};
/* Returns 0, or a negative errno (-ENODATA when the file is shorter than off). */
int tail_fingerprint(int fd, uint64_t off, struct tail_fp *fp);

/* One saved offset. */
struct tail_saved {
	uint64_t dev, ino, off;
	struct tail_fp fp;
	bool has_tail; /* false for a version 1 entry: a head of <= 64 bytes only */
	/* the identity in event ids: (dev, ino) of the file, or for a rotated copy
	 * read after a copytruncate, the original's */
	uint64_t id_dev, id_ino;
	char *path; /* owned */
};

/* Is the file (fd, size) the one of saved entry s, up to s->off? */
enum tail_match {
	TAIL_SAME,    /* head and tail match: resume at s->off */
	TAIL_OTHER,   /* other bytes: a new file, or truncated and rewritten */
	TAIL_SHORTER, /* shorter than s->off: truncated or replaced */
	TAIL_UNSURE,  /* cannot tell (a version 1 entry whose 64-byte head matches) */
};
/* Returns an enum tail_match, or a negative errno when the file cannot be read. */
int tail_match(int fd, uint64_t size, const struct tail_saved *s);

struct tail_state {
	struct tail_saved *v;
	size_t n, cap;
};

/* Parses an offsets file: a "tapio-cni-offsets 2" line, then one line per file
 * "<dev> <ino> <offset> <head_len> <head hex> <tail_len> <tail hex> <id_dev>
 * <id_ino> <path>" (version 1: "<dev> <ino> <offset> <fp_len> <fp hex>
 * <path>", read as a head without a tail). Bad lines are skipped and
 * counted in *bad. Returns 0, -EINVAL for a missing/unknown header (nothing is
 * loaded), or -ENOMEM. st must be zeroed or freed first. */
int tail_state_parse(struct tail_state *st, const char *buf, size_t len, size_t *bad);
/* Appends one entry (path is copied). Paths holding '\n' are refused with
 * -EINVAL. Returns 0, -EINVAL or -ENOMEM. */
int tail_state_add(struct tail_state *st, const struct tail_saved *e);
/* Removes entry i (frees its path; the last entry takes its place). */
void tail_state_del(struct tail_state *st, size_t i);
/* Index of the entry with that dev/ino, or -1. */
long tail_state_find(const struct tail_state *st, uint64_t dev, uint64_t ino);
/* Writes the file text (header and entries) into sb. */
void tail_state_format(const struct tail_state *st, struct strbuf *sb);
void tail_state_free(struct tail_state *st);

#endif
