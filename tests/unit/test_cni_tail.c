// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the CNI line tailer (on real files) and the offsets file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collectors/cni/tail.h"
#include "util/strbuf.h"

struct rec {
	char lines[64][256];
	size_t n;
	size_t oversize;
	uint64_t over_at[8];
	size_t truncated;
	uint64_t at[64];
	size_t refuse_at; /* refuse line number refuse_at (1-based), 0 = never */
};

static int on_line(void *ctx, const char *l, size_t len, uint64_t off)
{
	struct rec *r = ctx;
	cr_assert_lt(r->n, 64);
	cr_assert_lt(len, 256);
	if (r->refuse_at && r->n + 1 == r->refuse_at)
		return -1;
	memcpy(r->lines[r->n], l, len);
	r->lines[r->n][len] = '\0';
	r->at[r->n] = off;
	r->n++;
	return 0;
}

static void on_over(void *ctx, uint64_t at)
{
	struct rec *r = ctx;
	if (r->oversize < 8)
		r->over_at[r->oversize] = at;
	r->oversize++;
}

static void on_trunc(void *ctx, uint64_t old, uint64_t size)
{
	(void)old;
	(void)size;
	((struct rec *)ctx)->truncated++;
}

static const struct tail_cb cb = {on_line, on_over, on_trunc};

struct fx {
	char path[64];
	int wfd;
	struct tail_file f;
	char buf[64];
};

static void fx_open(struct fx *x)
{
	strcpy(x->path, "/tmp/tapio-tail-XXXXXX");
	x->wfd = mkstemp(x->path);
	cr_assert_geq(x->wfd, 0);
	memset(&x->f, 0, sizeof(x->f));
	x->f.fd = open(x->path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(x->f.fd, 0);
}

static void fx_close(struct fx *x)
{
	close(x->wfd);
	close(x->f.fd);
	unlink(x->path);
}

static void put(struct fx *x, const char *s)
{
	cr_assert_eq(write(x->wfd, s, strlen(s)), (ssize_t)strlen(s));
}

/* line_max 16, buffer 40 bytes: small enough to exercise the chunking. */
static int rd(struct fx *x, struct rec *r)
{
	return tail_read(&x->f, x->buf, 40, 16, 0, &cb, r);
}

Test(tail, complete_lines_and_partial_held)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	put(&x, "one\ntwo\nthr");
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_str_eq(r.lines[0], "one");
	cr_assert_str_eq(r.lines[1], "two");
	cr_assert_eq(x.f.commit, 8); /* the partial line is not consumed */
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 2);
	put(&x, "ee\n\nfour\n");
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 5);
	cr_assert_str_eq(r.lines[2], "three");
	cr_assert_str_eq(r.lines[3], ""); /* an empty line is a line */
	cr_assert_str_eq(r.lines[4], "four");
	cr_assert_eq(x.f.commit, 20);
	fx_close(&x);
}

Test(tail, many_lines_across_buffers)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	for (int i = 0; i < 40; i++) {
		char l[32];
		snprintf(l, sizeof(l), "line-%02d\n", i);
		put(&x, l);
	}
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 40);
	for (int i = 0; i < 40; i++) {
		char l[32];
		snprintf(l, sizeof(l), "line-%02d", i);
		cr_assert_str_eq(r.lines[i], l);
	}
	cr_assert_eq(x.f.commit, 40 * 8);
	fx_close(&x);
}

Test(tail, overlong_line_skipped_next_intact)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	/* 16 bytes fit; 17 do not. The long one spans buffers. */
	put(&x, "sixteen-bytes-ok\n");
	put(&x, "this line is far too long for the sixteen byte limit and spans reads\nnext\n");
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_str_eq(r.lines[0], "sixteen-bytes-ok");
	cr_assert_str_eq(r.lines[1], "next");
	cr_assert_eq(r.oversize, 1);
	cr_assert_eq(r.over_at[0], 17);
	cr_assert_eq(x.f.skipping, false);
	fx_close(&x);
}

Test(tail, overlong_line_still_growing)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	put(&x, "ok\nAAAAAAAAAAAAAAAAAAAAAAAAA"); /* 25 bytes, no newline yet */
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.oversize, 1);
	cr_assert(x.f.skipping);
	cr_assert_eq(x.f.commit, 3); /* persisted offset: the start of the long line */
	put(&x, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.oversize, 1); /* counted once */
	put(&x, "AAA\nafter\n");
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_str_eq(r.lines[1], "after");
	cr_assert(!x.f.skipping);
	fx_close(&x);
}

Test(tail, exactly_line_max_partial_then_newline)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	put(&x, "0123456789abcdef"); /* 16 bytes: may still be a valid line */
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 0);
	cr_assert_eq(r.oversize, 0);
	put(&x, "\n");
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.lines[0], "0123456789abcdef");
	fx_close(&x);
}

Test(tail, truncation_restarts_at_zero)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	put(&x, "alpha\nbeta\n");
	rd(&x, &r);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(ftruncate(x.wfd, 0), 0);
	lseek(x.wfd, 0, SEEK_SET);
	put(&x, "gamma\n");
	cr_assert_eq(rd(&x, &r), 0);
	cr_assert_eq(r.truncated, 1);
	cr_assert_eq(r.n, 3);
	cr_assert_str_eq(r.lines[2], "gamma");
	fx_close(&x);
}

Test(tail, budget_stops_early)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	for (int i = 0; i < 20; i++)
		put(&x, "0123456789\n");
	cr_assert_eq(tail_read(&x.f, x.buf, 40, 16, 40, &cb, &r), 1);
	cr_assert_lt(r.n, 20);
	while (tail_read(&x.f, x.buf, 40, 16, 40, &cb, &r) == 1)
		;
	cr_assert_eq(r.n, 20);
	fx_close(&x);
}

Test(tail, bad_args)
{
	struct fx x;
	struct rec r = {0};
	fx_open(&x);
	cr_assert_eq(tail_read(&x.f, x.buf, 16, 16, 0, &cb, &r), -EINVAL);
	struct tail_file bad = {.fd = -1};
	cr_assert_eq(tail_read(&bad, x.buf, 40, 16, 0, &cb, &r), -EBADF);
	fx_close(&x);
}

Test(tail, end_offset)
{
	struct fx x;
	fx_open(&x);
	char buf[64];
	bool skip;
	cr_assert_eq(tail_end_offset(x.f.fd, 0, buf, sizeof(buf), 16, &skip), 0);
	put(&x, "aa\nbb\ncc");
	cr_assert_eq(tail_end_offset(x.f.fd, 8, buf, sizeof(buf), 16, &skip), 6);
	cr_assert(!skip);
	put(&x, "ccccccccccccccccccccccc"); /* the last line is now overlong */
	cr_assert_eq(tail_end_offset(x.f.fd, 31, buf, sizeof(buf), 16, &skip), 31);
	cr_assert(skip);
	fx_close(&x);
	fx_open(&x);
	put(&x, "partial");
	cr_assert_eq(tail_end_offset(x.f.fd, 7, buf, sizeof(buf), 16, &skip), 0);
	fx_close(&x);
}

Test(tail, fingerprint)
{
	struct fx x;
	fx_open(&x);
	put(&x, "hello world\n");
	struct tail_fp f1, f2;
	cr_assert_eq(tail_fingerprint(x.f.fd, 5, &f1), 0);
	cr_assert_eq(f1.head_len, 5);
	cr_assert_eq(f1.tail_len, 5);
	put(&x, "more\n");
	cr_assert_eq(tail_fingerprint(x.f.fd, 5, &f2), 0);
	cr_assert_eq(f1.head, f2.head);
	cr_assert_eq(f1.tail, f2.tail);
	cr_assert_eq(tail_fingerprint(x.f.fd, 17, &f2), 0);
	cr_assert_eq(f2.head_len, 17);
	cr_assert_eq(f2.tail_len, 17);
	cr_assert_neq(f1.head, f2.head);
	/* past the end of the file: cannot be taken */
	cr_assert_eq(tail_fingerprint(x.f.fd, 18, &f2), -ENODATA);
	cr_assert_eq(tail_fingerprint(x.f.fd, 0, &f2), 0);
	cr_assert_eq(f2.head_len, 0);
	cr_assert_eq(f2.tail_len, 0);
	fx_close(&x);
}

/* A long file: a head of 4096 bytes and a tail of 64 bytes before the offset. */
static void put_lines(struct fx *x, const char *fmt, int from, int to)
{
	char l[200];
	for (int i = from; i < to; i++) {
		snprintf(l, sizeof(l), fmt, i);
		put(x, l);
	}
}

#define SHARED                                                                                     \
	"2024-05-01T10:00:00Z calico-cni-plugin ContainerID=aaaaaaaaaaaaaaaaaaaaaa line %04d\n"

static struct tail_saved saved_at(struct fx *x, uint64_t off)
{
	struct tail_saved s = {0};
	cr_assert_eq(tail_fingerprint(x->f.fd, off, &s.fp), 0);
	s.off = off;
	s.has_tail = true;
	return s;
}

Test(tail, match_tells_rewritten_content_from_the_old)
{
	struct fx x;
	fx_open(&x);
	put_lines(&x, SHARED, 0, 200); /* 84 bytes a line: more than the 64 the lines share */
	uint64_t off = 150 * 84;
	struct tail_saved s = saved_at(&x, off);
	cr_assert_eq(s.fp.head_len, TAIL_FP_MAX);
	cr_assert_eq(s.fp.tail_len, TAIL_FP_TAIL);
	cr_assert_eq(tail_match(x.f.fd, 200 * 84, &s), TAIL_SAME);
	cr_assert_eq(tail_match(x.f.fd, off - 1, &s), TAIL_SHORTER);
	/* truncated and rewritten with lines that share their first 64+ bytes */
	cr_assert_eq(ftruncate(x.wfd, 0), 0);
	cr_assert_eq(lseek(x.wfd, 0, SEEK_SET), 0);
	put_lines(&x, SHARED, 1000, 1200);
	cr_assert_eq(tail_match(x.f.fd, 200 * 84, &s), TAIL_OTHER);
	/* the same lines up to the 4 KiB head, other ones before the offset */
	cr_assert_eq(ftruncate(x.wfd, 0), 0);
	cr_assert_eq(lseek(x.wfd, 0, SEEK_SET), 0);
	put_lines(&x, SHARED, 0, 100);
	put_lines(&x, SHARED, 2000, 2100);
	cr_assert_eq(tail_match(x.f.fd, 200 * 84, &s), TAIL_OTHER);
	/* a version 1 entry: the 64-byte head cannot tell */
	struct tail_saved v1 = {0};
	v1.off = off;
	cr_assert_eq(tail_fingerprint(x.f.fd, 64, &v1.fp), 0);
	v1.fp.tail_len = 0;
	cr_assert_eq(tail_match(x.f.fd, 200 * 84, &v1), TAIL_UNSURE);
	v1.off = 64; /* all of it in the head: it can */
	cr_assert_eq(tail_match(x.f.fd, 200 * 84, &v1), TAIL_SAME);
	/* an unreadable fd */
	cr_assert_lt(tail_match(-1, 200 * 84, &s), 0);
	fx_close(&x);
}

Test(tail, match_finds_the_copy_of_a_copytruncate)
{
	struct fx x, copy;
	fx_open(&x);
	fx_open(&copy);
	put_lines(&x, SHARED, 0, 100);
	struct tail_saved s = saved_at(&x, 60 * 84);
	put_lines(&x, SHARED, 100, 140);  /* written after the save */
	put_lines(&copy, SHARED, 0, 140); /* cp f f.1 */
	cr_assert_eq(ftruncate(x.wfd, 0), 0);
	cr_assert_eq(tail_match(copy.f.fd, 140 * 84, &s), TAIL_SAME);
	cr_assert_eq(tail_match(x.f.fd, 0, &s), TAIL_SHORTER);
	fx_close(&x);
	fx_close(&copy);
}

/* ---- offsets file ---- */

Test(tail_state, round_trip)
{
	struct tail_state st = {0};
	struct tail_saved a = {.dev = 2049,
			       .ino = 77,
			       .off = 1234,
			       .fp = {1234, 0xdeadbeefcafef00dull, 64, 0x0123456789abcdefull},
			       .has_tail = true,
			       .id_dev = 2049,
			       .id_ino = 70,
			       .path = "/var/log/cni/a b.log"};
	struct tail_saved b = {.dev = 2049, .ino = 78, .path = "/var/log/calico/cni/cni.log"};
	cr_assert_eq(tail_state_add(&st, &a), 0);
	cr_assert_eq(tail_state_add(&st, &b), 0);
	struct tail_saved nl = {.dev = 1, .ino = 2, .off = 3, .path = "/bad\nname"};
	cr_assert_eq(tail_state_add(&st, &nl), -EINVAL);
	struct strbuf sb = STRBUF_INIT;
	tail_state_format(&st, &sb);
	struct tail_state back = {0};
	size_t bad = 9;
	cr_assert_eq(tail_state_parse(&back, sb.buf, sb.len, &bad), 0);
	cr_assert_eq(bad, 0);
	cr_assert_eq(back.n, 2);
	long i = tail_state_find(&back, 2049, 77);
	cr_assert_geq(i, 0);
	cr_assert_eq(back.v[i].off, 1234);
	cr_assert_eq(back.v[i].fp.head_len, 1234);
	cr_assert_eq(back.v[i].fp.head, 0xdeadbeefcafef00dull);
	cr_assert_eq(back.v[i].fp.tail_len, 64);
	cr_assert_eq(back.v[i].fp.tail, 0x0123456789abcdefull);
	cr_assert(back.v[i].has_tail);
	cr_assert_eq(back.v[i].id_dev, 2049);
	cr_assert_eq(back.v[i].id_ino, 70);
	cr_assert_str_eq(back.v[i].path, "/var/log/cni/a b.log");
	cr_assert_eq(tail_state_find(&back, 2049, 99), -1);
	tail_state_del(&back, (size_t)i);
	cr_assert_eq(back.n, 1);
	cr_assert_str_eq(back.v[0].path, "/var/log/calico/cni/cni.log");
	sb_free(&sb);
	tail_state_free(&st);
	tail_state_free(&back);
	tail_state_free(NULL);
}

Test(tail_state, version_1_read_as_a_head_without_a_tail)
{
	const char *s = "tapio-cni-offsets 1\n"
			"1 2 300 64 00000000000000aa /ok\n"
			"1 3 3 65 aa /fp-too-long\n";
	struct tail_state st = {0};
	size_t bad = 0;
	cr_assert_eq(tail_state_parse(&st, s, strlen(s), &bad), 0);
	cr_assert_eq(st.n, 1);
	cr_assert_eq(bad, 1);
	cr_assert_eq(st.v[0].fp.head_len, 64);
	cr_assert_eq(st.v[0].fp.head, 0xaa);
	cr_assert_not(st.v[0].has_tail);
	cr_assert_eq(st.v[0].id_dev, 1);
	cr_assert_eq(st.v[0].id_ino, 2);
	tail_state_free(&st);
}

Test(tail_state, bad_lines_skipped_and_counted)
{
	const char *s = "tapio-cni-offsets 2\n"
			"1 2 3 3 00000000000000aa 3 bb 1 2 /ok\n"
			"1 2 3 3 00000000000000aa 3 bb 1 2 /duplicate-inode\n"
			"x 2 3 3 aa 3 bb 1 2 /bad-number\n"
			"1 3 5000 4097 aa 64 bb 1 3 /head-too-long\n"
			"1 3 5000 4000 aa 64 bb 1 3 /head-not-what-the-offset-gives\n"
			"1 3 5000 4096 aa 65 bb 1 3 /tail-too-long\n"
			"1 3 30 30 aa 20 bb 1 3 /tail-not-what-the-offset-gives\n"
			"1 4 3 3 aa 3 bb 1 4 relative\n"
			"1 5 99999999999999999999999 4 aa 3 bb 1 5 /overflow\n"
			"1 5 3 3 aa 3 bb 1 /cut-short\n"
			"1 5 3 3 aa 3 bb\n"
			"garbage\n"
			"\n"
			"1 6 0 0 0 0 0 1 6 /last-without-newline";
	struct tail_state st = {0};
	size_t bad = 0;
	cr_assert_eq(tail_state_parse(&st, s, strlen(s), &bad), 0);
	cr_assert_eq(st.n, 2);
	cr_assert_eq(bad, 12);
	cr_assert_str_eq(st.v[0].path, "/ok");
	cr_assert_str_eq(st.v[1].path, "/last-without-newline");
	tail_state_free(&st);
}

Test(tail_state, wrong_header)
{
	struct tail_state st = {0};
	size_t bad;
	cr_assert_eq(tail_state_parse(&st, "", 0, &bad), -EINVAL);
	cr_assert_eq(tail_state_parse(&st, "tapio-cni-offsets 3\n", 20, &bad), -EPROTO); /* newer */
	cr_assert_eq(tail_state_parse(&st, "garbage\x01\xff", 9, &bad), -EINVAL);
	cr_assert_eq(st.n, 0);
	/* every prefix of a valid file parses without trouble */
	const char *s = "tapio-cni-offsets 2\n1 2 3 3 00000000000000aa 3 bb 1 2 /ok\n";
	for (size_t i = 0; i <= strlen(s); i++) {
		char *cp = malloc(i ? i : 1);
		memcpy(cp, s, i);
		struct tail_state t = {0};
		tail_state_parse(&t, cp, i, &bad);
		cr_assert_leq(t.n, 1);
		tail_state_free(&t);
		free(cp);
	}
}

Test(tail, refused_line_is_read_again)
{
	struct fx x;
	struct rec r = {.refuse_at = 2};
	fx_open(&x);
	put(&x, "aa\nbbb\ncc\n");
	cr_assert_eq(tail_read(&x.f, x.buf, 40, 16, 0, &cb, &r), 2);
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.lines[0], "aa");
	cr_assert_eq(r.at[0], 0);
	cr_assert_eq(x.f.off, 3, "stopped at the start of the refused line");
	cr_assert_eq(x.f.commit, 3);
	r.refuse_at = 0;
	cr_assert_eq(tail_read(&x.f, x.buf, 40, 16, 0, &cb, &r), 0);
	cr_assert_eq(r.n, 3);
	cr_assert_str_eq(r.lines[1], "bbb");
	cr_assert_eq(r.at[1], 3);
	cr_assert_str_eq(r.lines[2], "cc");
	cr_assert_eq(r.at[2], 7);
	cr_assert_eq(x.f.commit, 10);
	fx_close(&x);
}
